"""`rstack reproduce RUN_ID`: the determinism gate. Re-run a ledgered run, compare its metrics.

The run's own command and seed (from its run.started record) run again locally, into a fresh
temporary output directory, never into results/<run_id>: the original outputs are evidence and
are never overwritten. The verdict is ledgered as a `reproduce` record.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import secrets
from .contract import ContractError, validate_metrics_file
from .errors import ReproduceError
from .ledger import Ledger
from .procwatch import supervise

_OUTPUT_FLAGS = ("--output-dir", "--output_dir")


@dataclass
class Mismatch:
    metric: str
    expected: float | None
    got: float | None
    rel_diff: float | None

    def as_json(self) -> dict:
        return {"metric": self.metric, "expected": self.expected, "got": self.got,
                "rel_diff": self.rel_diff}

    def describe(self) -> str:
        exp = "(absent)" if self.expected is None else repr(self.expected)
        got = "(absent)" if self.got is None else repr(self.got)
        rel = f" (relative difference {self.rel_diff:.3g})" if self.rel_diff is not None else ""
        return f"{self.metric}: expected {exp}, got {got}{rel}"


@dataclass
class ReproduceReport:
    run_id: str
    verdict: str  # PASS | FAIL
    rtol: float
    command: list[str]
    output_dir: str | None  # kept on FAIL (or --keep) so the difference can be inspected
    duration_s: float
    exit_code: int | None = None
    reason: str | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    expected: dict = field(default_factory=dict)
    got: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    output_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == "PASS"

    def as_json(self) -> dict:
        return {"run_id": self.run_id, "verdict": self.verdict, "rtol": self.rtol,
                "command": self.command, "output_dir": self.output_dir,
                "duration_s": self.duration_s, "exit_code": self.exit_code,
                "reason": self.reason, "mismatches": [m.as_json() for m in self.mismatches],
                "expected": self.expected, "got": self.got, "notes": self.notes}


def compare_metrics(expected: dict, got: dict, rtol: float) -> list[Mismatch]:
    """Every expected metric must be within rtol of it, relative to |expected|.

    A metric expected to be exactly 0 must come back within rtol of 0 (absolute). Metrics the
    re-run adds are not a mismatch (they are listed in the report's `got`).
    """
    out = []
    for name in sorted(expected):
        exp = expected[name]
        if name not in got:
            out.append(Mismatch(name, exp, None, None))
            continue
        value = got[name]
        diff = abs(value - exp)
        scale = abs(exp)
        rel = diff / scale if scale > 0 else diff
        if not math.isfinite(rel) or rel > rtol:
            out.append(Mismatch(name, exp, value, rel if math.isfinite(rel) else None))
    return out


def _find_run(root: Path, run_id: str) -> tuple[dict, dict]:
    from . import runview

    index = runview.load(root)
    rows = index.find(run_id)
    if not rows:
        raise ReproduceError(f"no run.started record for run {run_id!r} in "
                             ".rstack/experiments.jsonl",
                             hint="list runs: rstack runs list")
    if len(rows) > 1:
        raise ReproduceError(f"{run_id!r} matches {len(rows)} runs: "
                             f"{', '.join(r.run_id for r in rows[:5])}", hint="give more of the id")
    row = rows[0]
    _, started, finished = next(index.iter_records([row]))
    run_id = row.run_id
    if finished is None:
        raise ReproduceError(f"run {run_id} has no run.finished record: it never finished, so "
                             "there are no metrics to compare", hint="pick a finished ok run")
    if finished.get("status") != "ok" or not isinstance(finished.get("metrics"), dict) \
            or not finished["metrics"]:
        raise ReproduceError(f"run {run_id} finished with status {finished.get('status')!r} and "
                             "no metrics: nothing to reproduce",
                             hint="reproduce a run whose status is ok")
    return started, finished


_INTERPRETER = re.compile(r"python[0-9.]*")


def check_command(root: Path, started: dict, *, yes: bool) -> None:
    """Run only the form `rstack run` writes (python SCRIPT ARGS --output-dir DIR --seed N, the
    script inside the project) unless the user read the command and passed --yes: a bundle's
    ledger comes from a stranger, and its `command` would otherwise run as written."""
    from .contract import contract_args
    from .runids import is_safe

    run_id = started.get("run_id")
    if not is_safe(run_id):
        raise ReproduceError(f"run id {run_id!r} is not a plain name (letters, digits, _.-); "
                             "it is not used in a path", hint="check the ledger: rstack log check experiments")
    command, script = started.get("command"), started.get("script")
    seed, args = started.get("seed"), started.get("args")
    usable = (isinstance(command, list) and len(command) >= 2
              and all(isinstance(c, str) for c in command) and isinstance(script, str)
              and isinstance(args, list))
    expected_tail = (list(args) + contract_args(started.get("output_dir"), seed, False)
                     if usable and isinstance(seed, int) and isinstance(started.get("output_dir"), str)
                     else None)
    recorded_form = (usable and expected_tail is not None
                     and _INTERPRETER.fullmatch(Path(command[0]).name) is not None
                     and command[1] == script and command[2:] == expected_tail
                     and (Path(root) / script).resolve().is_relative_to(Path(root).resolve()))
    if recorded_form or yes:
        return
    shown = shlex.join(command) if usable else repr(command)
    raise ReproduceError(
        f"run {run_id}: its recorded command is not the form `rstack run` writes (python SCRIPT "
        f"ARGS --output-dir DIR --seed N, the script inside the project), so it was not run: "
        f"{shown[:500]}",
        hint=f"read the command; if you trust it: rstack reproduce {run_id} --yes")


def _command_for(started: dict, out_dir: Path, notes: list[str]) -> list[str]:
    command = started.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str)
                                                                 for c in command):
        raise ReproduceError(f"run {started.get('run_id')}: run.started has no usable command",
                             hint="the record is damaged; re-run the arm with rstack run")
    cmd = list(command)
    replaced = False
    for index, part in enumerate(cmd):
        if part in _OUTPUT_FLAGS and index + 1 < len(cmd):
            cmd[index + 1] = str(out_dir)
            replaced = True
        elif any(part.startswith(flag + "=") for flag in _OUTPUT_FLAGS):
            cmd[index] = part.split("=", 1)[0] + "=" + str(out_dir)
            replaced = True
    if not replaced:
        cmd += ["--output-dir", str(out_dir)]
        notes.append("the recorded command had no --output-dir; added one")
    seed = started.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        if not any(part == "--seed" or part.startswith("--seed=") for part in cmd):
            cmd += ["--seed", str(seed)]
            notes.append(f"the recorded command had no --seed; added --seed {seed}")
    exe = cmd[0]
    if not (shutil.which(exe) or (os.sep in exe and os.access(exe, os.X_OK))):
        if Path(exe).name.startswith("python"):
            notes.append(f"interpreter {exe} not found here; using {sys.executable}")
            cmd[0] = sys.executable
        else:
            raise ReproduceError(f"the run's program {exe!r} is not found on this machine",
                                 hint="install it, or re-run from the machine that ran it")
    return cmd


def _run(cmd: list[str], root: Path, env: dict, out_dir: Path, timeout_s: float | None):
    """(exit_code, reason, output tail) of the supervised re-run (whole tree killed on timeout)."""
    outcome = supervise(cmd, cwd=root, env=env, log_path=out_dir / "stdout.log",
                        timeout_s=timeout_s)
    return outcome.exit_code, outcome.reason, list(outcome.output_tail)


def reproduce_run(root: Path, run_id: str, *, rtol: float | None = None, keep: bool = False,
                  record: bool = True, yes: bool = False) -> ReproduceReport:
    root = Path(root).resolve()
    if rtol is None:
        from . import config

        rtol = float(config.get("reproduce_rtol"))
    started, finished = _find_run(root, run_id)
    run_id = started["run_id"]  # a unique prefix names the whole id
    check_command(root, started, yes=yes)
    notes: list[str] = []
    script = started.get("script")
    if isinstance(script, str) and started.get("script_sha256") and (root / script).is_file():
        now = hashlib.sha256((root / script).read_bytes()).hexdigest()
        if now != started["script_sha256"]:
            notes.append(f"{script} changed since the run (sha256 {now[:12]} now, "
                         f"{started['script_sha256'][:12]} then): a mismatch may be the edit")
    if started.get("profile") not in (None, "local"):
        notes.append(f"the run used profile {started['profile']}; it is re-run locally")
    out_dir = Path(tempfile.mkdtemp(prefix=f"rstack-reproduce-{run_id[:40]}-"))
    cmd = _command_for(started, out_dir, notes)
    env = secrets.script_env({"RSTACK_OUTPUT_DIR": str(out_dir)})
    timeout = started.get("timeout_s")
    start = time.monotonic()
    exit_code, reason, tail = _run(cmd, root, env, out_dir,
                                   float(timeout) if isinstance(timeout, (int, float)) else None)
    duration = round(time.monotonic() - start, 3)
    expected = {k: v for k, v in finished["metrics"].items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    report = ReproduceReport(run_id=run_id, verdict="FAIL", rtol=rtol, command=cmd,
                             output_dir=str(out_dir), duration_s=duration, exit_code=exit_code,
                             expected=expected, notes=notes, output_tail=tail[-20:])
    if reason is not None or exit_code != 0:
        report.reason = (f"the re-run was killed ({reason})" if reason
                         else f"the re-run exited with code {exit_code}")
    else:
        try:
            report.got = validate_metrics_file(out_dir / "metrics.json")
        except ContractError as exc:
            report.reason = exc.message
        else:
            report.mismatches = compare_metrics(expected, report.got, rtol)
            if not report.mismatches:
                report.verdict = "PASS"
    if report.verdict == "FAIL" and report.reason is None:
        report.reason = f"{len(report.mismatches)} metric(s) differ beyond rtol {rtol:g}"
    if report.ok and not keep:
        shutil.rmtree(out_dir, ignore_errors=True)
        report.output_dir = None
    if record:
        Ledger(root, "experiments").append({
            "type": "reproduce", "run_id": run_id, "verdict": report.verdict, "rtol": rtol,
            "command": cmd, "duration_s": duration, "exit_code": exit_code,
            "reason": report.reason, "mismatches": [m.as_json() for m in report.mismatches],
            "notes": notes})
    return report
