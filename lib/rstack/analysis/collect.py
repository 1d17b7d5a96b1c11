"""Which ledgered runs an analysis uses: finished `ok` runs, the latest one per arm x seed.

Reads `.rstack/experiments.jsonl` only through `Ledger`; never writes anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger import Ledger, ReadResult


@dataclass(frozen=True)
class UsedRun:
    run_id: str
    arm: str
    seed: int | None
    metrics: dict[str, float]
    finished_ts: str
    finished_line: int
    output_dir: str  # project-relative (results/<run_id>)
    args: tuple[str, ...] = ()  # the run's args (run.started), to keep one design per arm


@dataclass
class Collected:
    ledger: ReadResult
    runs: list[UsedRun]  # ledger order of their run.finished records
    notes: list[str] = field(default_factory=list)

    @property
    def arms(self) -> list[str]:
        seen: list[str] = []
        for run in self.runs:
            if run.arm not in seen:
                seen.append(run.arm)
        return seen

    def latest_ts(self) -> str | None:
        stamps = [rec.get("ts") for rec in self.ledger.records if isinstance(rec.get("ts"), str)]
        return max(stamps) if stamps else None


def _numeric_metrics(metrics: object) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[str(key)] = float(value)
    return out


def collect_runs(root: Path) -> Collected:
    """The runs an analysis should use, with a note for every run it passed over and why."""
    result = Ledger(root, "experiments").read()
    started: dict[str, dict] = {}
    latest: dict[tuple[str, int | None], UsedRun] = {}
    later_failure: dict[tuple[str, int | None], str] = {}
    notes: list[str] = []
    for line, rec in result.entries:
        rtype = rec.get("type")
        run_id = rec.get("run_id")
        if rtype == "run.started" and isinstance(run_id, str):
            started[run_id] = rec
            continue
        if rtype != "run.finished" or not isinstance(run_id, str):
            continue
        start = started.get(run_id, {})
        arm = rec.get("arm", start.get("arm"))
        seed = rec.get("seed", start.get("seed"))
        if not isinstance(arm, str) or not arm:
            notes.append(f"{run_id}: run.finished (line {line}) names no arm; skipped")
            continue
        key = (arm, seed if isinstance(seed, int) and not isinstance(seed, bool) else None)
        if rec.get("status") != "ok":
            if key in latest:
                later_failure[key] = f"{run_id} ({rec.get('status')})"
            continue
        metrics = _numeric_metrics(rec.get("metrics"))
        if not metrics:
            notes.append(f"{run_id}: finished ok but recorded no numeric metrics; skipped")
            continue
        previous = latest.get(key)
        if previous is not None:
            notes.append(f"{previous.run_id}: superseded by {run_id} (same arm {arm}, seed {seed})")
        later_failure.pop(key, None)
        output_dir = start.get("output_dir") or f"results/{run_id}"
        latest[key] = UsedRun(run_id=run_id, arm=arm, seed=key[1], metrics=metrics,
                              finished_ts=str(rec.get("ts")), finished_line=line,
                              output_dir=str(output_dir),
                              args=tuple(str(a) for a in start.get("args") or ()))
    for key, failed in sorted(later_failure.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        notes.append(f"arm {key[0]} seed {key[1]}: a later attempt {failed} did not finish ok; "
                     f"using the earlier ok run {latest[key].run_id}")
    runs = sorted(latest.values(), key=lambda run: run.finished_line)
    return Collected(ledger=result, runs=runs, notes=notes)


def load_history(root: Path, run: UsedRun) -> tuple[list[dict[str, float]] | None, str | None]:
    """A run's metrics.jsonl as [{step, metric: value}], or (None, why it cannot be used)."""
    path = Path(root) / run.output_dir / "metrics.jsonl"
    rel = f"{run.output_dir}/metrics.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{run.run_id}: no {rel}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{run.run_id}: cannot read {rel} ({exc})"
    from ..ledger import strict_loads

    rows: list[dict[str, float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = strict_loads(line)
        except ValueError:
            return None, f"{run.run_id}: {rel}:{lineno} is not a finite JSON object"
        if not isinstance(obj, dict):
            return None, f"{run.run_id}: {rel}:{lineno} is not a JSON object"
        row = _numeric_metrics(obj)
        if "step" not in row:
            row["step"] = float(len(rows))
        rows.append(row)
    if not rows:
        return None, f"{run.run_id}: {rel} is empty"
    return rows, None
