"""Which ledgered runs an analysis uses: finished `ok` runs, the latest one per arm x seed.

Reads `.rstack/experiments.jsonl` only through `Ledger`; never writes anything.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path



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


@dataclass(frozen=True)
class LedgerStamp:
    """Where the analysis stands in the experiments ledger (what summary.json pins)."""

    path: Path
    sha256: str
    line_count: int
    damage: list[dict]  # the first damaged lines (damage_count says how many there are)
    damage_count: int
    latest_ts: str | None


@dataclass
class Collected:
    ledger: LedgerStamp
    runs: list[UsedRun]  # ledger order of their run.finished records
    notes: list[str] = field(default_factory=list)
    latest_args: dict[str, tuple[str, ...]] = field(default_factory=dict)  # arm -> its latest run.started's args

    @property
    def arms(self) -> list[str]:
        seen: list[str] = []
        for run in self.runs:
            if run.arm not in seen:
                seen.append(run.arm)
        return seen

    def latest_ts(self) -> str | None:
        return self.ledger.latest_ts


def _numeric_metrics(metrics: object) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[str(key)] = float(value)
    return out


def collect_runs(root: Path, plan=None) -> Collected:
    """The runs an analysis should use, with a note for every run it passed over and why.

    Only runs of each arm's current script version count (rstack.runview); older ones
    are noted as superseded, never mixed in.
    """
    from .. import runview
    from ..hashing import sha256_file_or_none

    index = runview.load(root)
    versions = (runview.current_versions_for(root, plan) if plan is not None
                else runview.default_plan_versions(root))
    current, old = index.split_current(versions)
    latest: dict[tuple[str, int | None], UsedRun] = {}
    later_failure: dict[tuple[str, int | None], str] = {}
    notes: list[str] = []
    if old:
        notes.append(f"{len(old)} run(s) of an older script version are superseded and "
                     f"not used: {', '.join(r.run_id for r in old[:5])}"
                     + (" ..." if len(old) > 5 else ""))
    done = sorted((row for row in current if row.finished), key=lambda row: row.finished_line)
    ok_rows = {row.run_id for row in done if row.status == "ok" and row.arm}
    finished_records = {row.run_id: rec for row, _, rec in index.iter_records(
        [row for row in done if row.run_id in ok_rows])}
    for row in done:
        run_id, arm, line = row.run_id, row.arm, row.finished_line
        if not isinstance(arm, str) or not arm:
            notes.append(f"{run_id}: run.finished (line {line}) names no arm; skipped")
            continue
        key = (arm, row.seed)
        if row.status != "ok":
            if key in latest:
                later_failure[key] = f"{run_id} ({row.status})"
            continue
        rec = finished_records[run_id] or {}
        metrics = _numeric_metrics(rec.get("metrics"))
        if not metrics:
            notes.append(f"{run_id}: finished ok but recorded no numeric metrics; skipped")
            continue
        previous = latest.get(key)
        if previous is not None:
            notes.append(f"{previous.run_id}: superseded by {run_id} (same arm {arm}, seed {row.seed})")
        later_failure.pop(key, None)
        latest[key] = UsedRun(run_id=run_id, arm=arm, seed=row.seed, metrics=metrics,
                              finished_ts=str(row.finished_ts), finished_line=line,
                              output_dir=str(row.output_dir or f"results/{run_id}"),
                              args=tuple(row.args))
    for key, failed in sorted(later_failure.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        notes.append(f"arm {key[0]} seed {key[1]}: a later attempt {failed} did not finish ok; "
                     f"using the earlier ok run {latest[key].run_id}")
    runs = sorted(latest.values(), key=lambda run: run.finished_line)
    stamp = LedgerStamp(path=index.ledger_path,
                        sha256=sha256_file_or_none(index.ledger_path) or hashlib.sha256().hexdigest(),
                        line_count=index.line_count, damage=index.problems,
                        damage_count=index.damage_count + int(index.torn_tail), latest_ts=index.latest_ts)
    latest_args = {row.arm: tuple(row.args) for row in index.runs() if isinstance(row.arm, str)}
    return Collected(ledger=stamp, runs=runs, notes=notes, latest_args=latest_args)


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
