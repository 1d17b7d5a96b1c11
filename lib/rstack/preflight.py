"""`rstack preflight`: run a training script's smoke test on CPU, contained, and judge what it did.

The gate before any paid run. It compiles and import-checks the script, runs `--smoke-test` in its
own session with a fresh output dir, a scrubbed environment and no GPU, and checks every artifact
the contract promises (metrics.json, metrics.jsonl, divergence, determinism). It never leaves a
process behind and never passes a script it did not see finish.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import psutil

from . import contract, safeio, secrets
from .contract import ContractError
from .errors import RStackError
from .incidents import INCIDENTS, Diagnosis, diagnose, make_diagnosis, pip_package
from .procwatch import CONTAINMENT, Outcome, supervise

DEFAULT_BUDGET_S = 30.0
DEFAULT_STALL_S = 10.0
DEFAULT_SEED = 0
DETERMINISM_RTOL = 1e-5
DETERMINISM_ATOL = 1e-9
TAIL_SHOWN = 20

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

# Metrics that measure the machine rather than the model differ between two identical runs.
_VOLATILE_WORDS = frozenset({"time", "times", "duration", "elapsed", "wall", "walltime", "runtime",
                             "seconds", "second", "secs", "sec", "s", "ms", "throughput", "speed",
                             "mem", "memory", "rss", "timestamp", "date", "fps", "tps"})


class PreflightError(RStackError):
    """Preflight itself could not run (bad interpreter, unreadable script): exit 2, not a verdict."""

    exit_code = 2


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class PreflightResult:
    verdict: str  # PASS | FAIL
    category: str | None
    message: str
    hint: str
    checks: list[Check]
    metrics: dict | None
    duration_s: float
    peak_rss_mb: float
    script: Path
    script_sha256: str
    seed: int
    location: str | None = None
    output_tail: list[str] = field(default_factory=list)
    smoke_s: float | None = None  # wall time of the (first) smoke run alone
    args: list[str] = field(default_factory=list)  # the extra args after `--`

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    def as_json(self) -> dict:
        """The documented `--json` shape."""
        return {"verdict": self.verdict, "category": self.category, "message": self.message,
                "hint": self.hint, "checks": [c.as_json() for c in self.checks],
                "metrics": self.metrics, "duration_s": round(self.duration_s, 3),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "containment": CONTAINMENT}

    def record(self, root: Path) -> dict:
        """The `preflight` ledger record for this verdict."""
        try:
            script = str(self.script.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            script = str(self.script.resolve())
        return {"type": "preflight", "script": script, "script_sha256": self.script_sha256,
                "verdict": self.verdict, "category": self.category,
                "duration_s": round(self.duration_s, 3), "message": self.message, "hint": self.hint,
                "checks": [c.as_json() for c in self.checks], "metrics": self.metrics,
                "peak_rss_mb": round(self.peak_rss_mb, 1), "seed": self.seed,
                "args": list(self.args)}


def default_memory_mb() -> float:
    """min(4 GiB, half of this machine's RAM), in MB."""
    return float(min(4096, psutil.virtual_memory().total // (2 * 1024 * 1024)))


def contained_env(base: dict[str, str] | None = None, *, output_dir: Path, tmp_dir: Path,
                  threads: int | None = None) -> dict[str, str]:
    """The environment a script runs in: secrets removed (the one policy, rstack.secrets, with the
    `env_allow` setting), no GPU, unbuffered, private TMPDIR."""
    env = secrets.script_env(base=base)
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MPLBACKEND"] = "Agg"
    env[contract.OUTPUT_DIR_ENV] = str(output_dir)
    env["TMPDIR"] = str(tmp_dir)
    if threads is not None:
        for name in _THREAD_VARS:
            env.setdefault(name, str(threads))
    return env


_STATIC_CHECK = r"""
import ast, importlib.util, json, os, sys
path = sys.argv[1]
with open(path, "rb") as handle:
    src = handle.read()
try:
    tree = compile(src, path, "exec", ast.PyCF_ONLY_AST)
    compile(src, path, "exec")
except SyntaxError as e:
    print(json.dumps({"syntax": {"type": type(e).__name__, "msg": e.msg, "file": e.filename,
                                 "line": e.lineno, "offset": e.offset, "text": e.text}}))
    raise SystemExit(0)
except ValueError as e:
    print(json.dumps({"syntax": {"type": "ValueError", "msg": str(e), "file": path, "line": None,
                                 "offset": None, "text": None}}))
    raise SystemExit(0)
names = []
for node in tree.body:
    if isinstance(node, ast.Import):
        names += [(a.name, node.lineno) for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names.append((node.module, node.lineno))
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
missing = []
for name, line in names:
    top = name.split(".")[0]
    if top in sys.builtin_module_names:
        continue
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        missing.append({"module": top, "line": line, "full": name})
print(json.dumps({"imports": len(names), "missing": missing}))
"""


def _static_check(python: str, script: Path, env: dict[str, str]) -> dict:
    """Compile the script and resolve its top-level imports with the interpreter that will run it.

    In-process when that interpreter is this one (milliseconds); else in a child of `python`.
    """
    if _same_interpreter(python):
        namespace = {"__name__": "rstack_static_check"}
        saved_path, saved_argv = list(sys.path), list(sys.argv)
        output: list[str] = []
        try:
            sys.argv = ["-c", str(script)]
            sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
            namespace["print"] = lambda text: output.append(text)
            try:
                exec(compile(_STATIC_CHECK, "<rstack static check>", "exec"), namespace)
            except SystemExit:
                pass
        finally:
            sys.path[:], sys.argv = saved_path, saved_argv
        return json.loads(output[-1])
    import subprocess

    try:
        proc = subprocess.run([python, "-c", _STATIC_CHECK, str(script)], cwd=str(script.parent),
                              env=env, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreflightError(f"cannot run the interpreter {python}: {exc}",
                             hint="pass a working interpreter with --python PATH") from None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise PreflightError(f"the interpreter {python} could not check {script}: "
                             f"{(proc.stderr or proc.stdout).strip()[-400:]}",
                             hint="pass a working Python 3 interpreter with --python PATH") from None


def _same_interpreter(python: str) -> bool:
    # Compare paths without resolving symlinks: two venvs' pythons link to the same binary but
    # see different site-packages.
    resolved = shutil.which(python) or python
    return os.path.abspath(resolved) == os.path.abspath(sys.executable)


def _volatile(key: str) -> bool:
    lowered = key.lower()
    if "per_sec" in lowered or "per_second" in lowered or "_per_s" in lowered:
        return True
    return any(word in _VOLATILE_WORDS for word in re.split(r"[^a-z0-9]+", lowered) if word)


def compare_metrics(first: dict, second: dict, *, rtol: float = DETERMINISM_RTOL,
                    atol: float = DETERMINISM_ATOL) -> tuple[list[str], list[str]]:
    """(differences, skipped volatile keys) between two runs' metrics."""
    diffs: list[str] = []
    skipped: list[str] = []
    for key in sorted(set(first) | set(second)):
        if _volatile(key):
            skipped.append(key)
            continue
        if key not in first or key not in second:
            diffs.append(f"{key} only in the {'first' if key in first else 'second'} run")
            continue
        a, b = float(first[key]), float(second[key])
        if not math.isclose(a, b, rel_tol=rtol, abs_tol=atol):
            diffs.append(f"{key}: {a!r} vs {b!r}")
    return diffs, skipped


@dataclass
class _Run:
    out_dir: Path
    log_path: Path
    outcome: Outcome | None = None
    started_wall: float = 0.0
    error: BaseException | None = None


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s"


def _stray_metrics(script_dir: Path, since: float, work_root: Path) -> list[Path]:
    """metrics.json files the run wrote outside its output dir: cwd, /tmp, $HOME, the private
    TMPDIR."""
    found = contract.find_stray_metrics([script_dir], since=since, exclude=work_root, max_depth=3)
    found += contract.find_stray_metrics([Path("/tmp")], since=since, exclude=work_root, max_depth=1)
    found += contract.find_stray_metrics([Path.home()], since=since, exclude=work_root, max_depth=2)
    found += contract.find_stray_metrics([work_root / "tmp"], since=since, max_depth=3)
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def run_preflight(
    script: str | os.PathLike,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    stall_s: float = DEFAULT_STALL_S,
    memory_mb: float | None = None,
    seed: int = DEFAULT_SEED,
    determinism: bool = True,
    python: str | None = None,
    extra_args: Sequence[str] = (),
    on_line: Callable[[str], None] | None = None,
    concurrent: bool | None = None,
    cwd: str | os.PathLike | None = None,
    required_metrics: Sequence[str] = (),
    full_steps: int | None = None,
) -> PreflightResult:
    """Judge one script; returns a PASS/FAIL result (raises PreflightError only when it cannot run).

    concurrent: run the determinism run alongside the first (default: when >= 2 CPU cores).
    cwd: where the script runs (rehearse the runner: the project root; default: its folder); the
    command has the runner's form, `python SCRIPT EXTRA_ARGS... --output-dir D --seed N`.
    required_metrics: metrics the plan compares; a smoke run without one of them FAILs.
    full_steps: the real run's step count; memory that grows steadily over the smoke run is
    extrapolated to it and FAILs `memory-growth` when it would cross the memory cap.
    """
    started = time.monotonic()
    script = Path(script).resolve()
    if not script.is_file():
        raise PreflightError(f"{script}: {safeio.why_not_a_file(script)}",
                             hint="pass the path of the training script")
    try:
        source = script.read_bytes()
    except OSError as exc:
        raise PreflightError(f"cannot read {script}: {exc.strerror}") from None
    sha = hashlib.sha256(source).hexdigest()
    python = python or sys.executable
    run_dir = Path(cwd).resolve() if cwd is not None else script.parent
    try:
        script_arg = str(script.relative_to(run_dir))  # as the plan names it: train.py
    except ValueError:
        script_arg = str(script)
    if shutil.which(python) is None and not Path(python).is_file():
        raise PreflightError(f"--python {python}: no such interpreter",
                             hint="pass the path of a Python 3 interpreter (e.g. .venv/bin/python)")
    memory_mb = default_memory_mb() if memory_mb is None else float(memory_mb)
    cores = psutil.cpu_count() or 1
    if concurrent is None:
        concurrent = cores >= 2
    checks: list[Check] = []
    tail: list[str] = []
    peak = 0.0
    smoke_s: float | None = None

    def result(diag: Diagnosis | None, metrics: dict | None = None) -> PreflightResult:
        if diag is None:
            return PreflightResult("PASS", None, "all checks passed", "", checks, metrics,
                                   time.monotonic() - started, peak, script, sha, seed,
                                   output_tail=tail[-TAIL_SHOWN:], smoke_s=smoke_s,
                                   args=list(extra_args))
        return PreflightResult("FAIL", diag.category, diag.message, diag.hint, checks, None,
                               time.monotonic() - started, peak, script, sha, seed,
                               location=diag.location, output_tail=tail[-TAIL_SHOWN:],
                               smoke_s=smoke_s, args=list(extra_args))

    remove_stale_work_dirs()
    work_root = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    second: threading.Thread | None = None
    cancel_second = threading.Event()
    try:
        tmp_dir = work_root / "tmp"
        tmp_dir.mkdir()
        # BLAS/OpenMP pools sized for a whole machine oversubscribe it when two runs share it (and
        # thrash on a busy one); a smoke run gains nothing from more than its share of the cores.
        threads = max(1, cores // 2)
        base_env = contained_env(output_dir=work_root / "out-1", tmp_dir=tmp_dir, threads=threads)

        # 1. compile + imports, before anything runs.
        static = _static_check(python, script, base_env)
        if "syntax" in static:
            syn = static["syntax"]
            where = f"{syn['file']}:{syn['line']}" if syn.get("line") else str(script)
            text = (syn.get("text") or "").rstrip("\n")
            pointer = ""
            if text and syn.get("offset"):
                pointer = "\n  " + text.strip() + "\n  " + " " * max(
                    0, syn["offset"] - 1 - (len(text) - len(text.lstrip()))) + "^"
            checks.append(Check("compile", False, f"{syn['type']}: {syn['msg']} at {where}"))
            return result(make_diagnosis(
                "syntax-error", f"{syn['type']}: {syn['msg']} at {where}{pointer}",
                location=where, script=script.name))
        checks.append(Check("compile", True, f"{script.name} compiles"))
        if static.get("missing"):
            miss = static["missing"][0]
            package = pip_package(miss["full"])
            names = ", ".join(m["module"] for m in static["missing"])
            where = f"{script}:{miss['line']}"
            checks.append(Check("imports", False, f"not installed for {python}: {names}"))
            return result(make_diagnosis(
                "missing-module",
                f"module {miss['module']!r} is not installed for {python} (imported at {where}); "
                f"likely pip package: {package}", location=where, module=miss["module"],
                package=package))
        checks.append(Check("imports", True, f"{static.get('imports', 0)} top-level imports resolve"))

        # 2. the smoke run (and, concurrently, the determinism run).
        runs = [_Run(work_root / "out-1", work_root / "stdout-1.log")]
        if determinism:
            runs.append(_Run(work_root / "out-2", work_root / "stdout-2.log"))

        def launch(index: int, line_cb) -> None:
            run = runs[index]
            run.out_dir.mkdir()
            env = dict(base_env)
            env[contract.OUTPUT_DIR_ENV] = str(run.out_dir)
            cmd = [python, script_arg, *extra_args, *contract.contract_args(run.out_dir, seed, True)]
            run.started_wall = time.time()
            try:
                run.outcome = supervise(
                    cmd, cwd=run_dir, env=env, log_path=run.log_path, timeout_s=budget_s,
                    stall_s=stall_s, memory_mb=memory_mb, activity_paths=[run.out_dir, tmp_dir],
                    on_line=line_cb, cancel=cancel_second if index == 1 else None)
            except BaseException as exc:  # surfaced by the caller's thread
                run.error = exc

        if determinism and concurrent:
            second = threading.Thread(target=launch, args=(1, None), daemon=True)
            second.start()
        try:
            launch(0, on_line)
        except KeyboardInterrupt:
            cancel_second.set()
            raise
        finally:
            if runs[0].outcome is None or not runs[0].outcome.ok:
                cancel_second.set()
            if second is not None and cancel_second.is_set():
                second.join()
        if runs[0].error is not None:
            raise runs[0].error
        first = runs[0].outcome
        tail = first.output_tail
        peak = first.peak_rss_mb
        smoke_s = first.duration_s
        diag = _judge_outcome(first, script, budget_s=budget_s, stall_s=stall_s,
                              memory_mb=memory_mb)
        if diag is not None:
            checks.append(Check("smoke-run", False, diag.message))
            return result(diag)
        checks.append(Check("smoke-run", True,
                            f"exit 0 in {_fmt_s(first.duration_s)}, peak {first.peak_rss_mb:.0f} MB"))
        swallowed = swallowed_traceback(first.output_tail)
        if swallowed:
            checks.append(Check("exceptions", False, f"a traceback was printed: {swallowed}"))
            return result(make_diagnosis(
                "swallowed-exception", f"the script printed a traceback ({swallowed}) and still "
                "exited 0", detail=swallowed))
        if first.leftover_killed:
            checks.append(Check("processes", True, f"{first.leftover_killed} process(es) were "
                                "still running when the script exited (killed here; in a real "
                                "run they would outlive it: join or terminate them)"))

        # 3. the artifacts.
        try:
            metrics = contract.validate_metrics_file(runs[0].out_dir / contract.METRICS_FILE)
        except ContractError as exc:
            diag = _metrics_diagnosis(exc, runs[0], script, work_root)
            checks.append(Check(contract.METRICS_FILE, False, diag.message))
            return result(diag)
        inside = runs[0].out_dir / contract.METRICS_FILE
        # Only where this run could have written (its cwd, its folder, its private TMPDIR): /tmp
        # and $HOME are shared with every other process, so they cannot decide a verdict.
        newer = [p for p in contract.find_stray_metrics(
                     sorted({run_dir, script.parent}), since=runs[0].started_wall,
                     exclude=work_root, max_depth=3)
                 + contract.find_stray_metrics([tmp_dir], since=runs[0].started_wall, max_depth=3)
                 if p.stat().st_mtime >= inside.stat().st_mtime
                 and (run_dir / "results") not in p.parents]  # real runs in flight write there
        if newer:
            detail = (f"the script wrote {newer[0]} after <output-dir>/metrics.json; the results "
                      "would be read from the stale copy inside the output dir")
            checks.append(Check(contract.METRICS_FILE, False, detail))
            return result(make_diagnosis("metrics-elsewhere", detail, detail=detail))
        checks.append(Check(contract.METRICS_FILE, True,
                            f"{len(metrics)} metric(s): {', '.join(list(metrics)[:6])}"))
        absent = [m for m in required_metrics if m not in metrics]
        if absent:
            detail = (f"the plan compares {', '.join(absent)}, but the smoke run's metrics.json "
                      f"has only {', '.join(metrics) or 'nothing'}")
            checks.append(Check("plan-metrics", False, detail))
            return result(make_diagnosis("plan-metric-missing", detail, detail=detail))
        if required_metrics:
            checks.append(Check("plan-metrics", True, "every metric the plan compares is there"))
        history_path = runs[0].out_dir / contract.HISTORY_FILE
        try:
            history = contract.read_history(history_path)
        except ContractError as exc:
            message = _relabel(exc.message, runs[0].out_dir)
            checks.append(Check(contract.HISTORY_FILE, False, message))
            return result(make_diagnosis(exc.category, message, fix=exc.hint or "",
                                         detail=message.split(": ", 1)[-1]))
        checks.append(Check(contract.HISTORY_FILE, True,
                            f"{len(history)} finite record(s)" if history_path.exists()
                            else "not written (optional)"))
        for name, problem, category in (
                ("steps", contract.check_steps(history), "history-steps"),
                ("consistency", contract.check_consistency(metrics, history),
                 "metrics-inconsistent")):
            if problem:
                checks.append(Check(name, False, problem))
                return result(make_diagnosis(category, problem, detail=problem))
        growth = memory_growth(first.rss_samples, history, full_steps, memory_mb)
        if growth:
            checks.append(Check("memory-growth", False, growth))
            return result(make_diagnosis("memory-growth", growth, detail=growth))
        diverged = contract.check_divergence(history)
        if diverged:
            checks.append(Check("divergence", False, diverged))
            return result(make_diagnosis("divergence", f"the loss diverged: {diverged}",
                                         detail=diverged))
        checks.append(Check("divergence", True, "no loss diverged" if history
                            else "no history to judge"))

        # 4. determinism.
        if not determinism:
            checks.append(Check("determinism", True, "skipped (--no-determinism)"))
            return result(None, metrics)
        if second is None:
            launch(1, None)
        else:
            second.join()
        if runs[1].error is not None:
            raise runs[1].error
        other = runs[1].outcome
        peak = max(peak, other.peak_rss_mb)
        other_diag = _judge_outcome(other, script, budget_s=budget_s, stall_s=stall_s,
                                    memory_mb=memory_mb)
        if other_diag is not None:
            message = (f"a second smoke run with --seed {seed} failed where the first passed: "
                       f"[{other_diag.category}] {other_diag.message}")
            checks.append(Check("determinism", False, message))
            return result(make_diagnosis("nondeterministic", message, seed=seed,
                                         detail=other_diag.message))
        try:
            other_metrics = contract.validate_metrics_file(runs[1].out_dir / contract.METRICS_FILE)
        except ContractError as exc:
            message = (f"a second smoke run with --seed {seed} wrote bad metrics: "
                       f"{_relabel(exc.message, runs[1].out_dir)}")
            checks.append(Check("determinism", False, message))
            return result(make_diagnosis("nondeterministic", message, seed=seed, detail=exc.message))
        diffs, skipped = compare_metrics(metrics, other_metrics)
        if diffs:
            detail = "; ".join(diffs[:5])
            message = f"two smoke runs with --seed {seed} gave different metrics: {detail}"
            checks.append(Check("determinism", False, message))
            return result(make_diagnosis("nondeterministic", message, seed=seed, detail=detail))
        note = f" (not compared, timing/memory: {', '.join(skipped)})" if skipped else ""
        checks.append(Check("determinism", True,
                            f"same metrics from a second run with --seed {seed}{note}"))
        return result(None, metrics)
    finally:
        if second is not None and second.is_alive():
            cancel_second.set()  # a verdict is in: the determinism run is no longer needed
            second.join()
        shutil.rmtree(work_root, ignore_errors=True)


GROWTH_MIN_MB = 20.0  # less growth over a smoke run than this is noise (allocator, imports)


def memory_growth(samples: Sequence[tuple[float, float]], history: list[dict],
                  full_steps: int | None, cap_mb: float) -> str | None:
    """When RSS rises steadily through the smoke run (every later half-sample above the earlier
    one, by GROWTH_MIN_MB in all), its per-step rate times the real run's steps; a message when
    that would cross cap_mb, else None."""
    steps = [r["step"] for r in history if contract.is_finite_number(r.get("step"))]
    if not full_steps or len(samples) < 6 or len(steps) < 2:
        return None
    smoke_steps = max(steps) - min(steps) + 1
    half = len(samples) // 2
    early, late = samples[:half], samples[half:]
    rising = all(b[1] >= a[1] for a, b in zip(late, late[1:]))
    grown = late[-1][1] - early[0][1]
    if not rising or grown < GROWTH_MIN_MB or smoke_steps >= full_steps:
        return None
    per_step = grown / smoke_steps
    projected = late[-1][1] + per_step * (full_steps - smoke_steps)
    if projected <= cap_mb:
        return None
    return (f"memory grew {grown:.0f} MB over the smoke run's {smoke_steps} steps "
            f"(~{per_step:.2f} MB/step); at {full_steps} steps that is ~{projected:.0f} MB, over "
            f"the {cap_mb:.0f} MB cap")


_TRACEBACK = "Traceback (most recent call last):"


def swallowed_traceback(lines: Sequence[str]) -> str | None:
    """The exception line of the last traceback in output of a run that exited 0, else None
    (a prompt such as `input()` may precede the traceback on the same line)."""
    starts = [i for i, line in enumerate(lines) if _TRACEBACK in line]
    if not starts:
        return None
    for line in lines[starts[-1] + 1:]:
        text = line.strip()
        if text and not line.startswith((" ", "\t")) and not text.startswith(_TRACEBACK):
            return text[:300]
    return "Traceback (most recent call last)"


def _judge_outcome(outcome: Outcome, script: Path, *, budget_s: float, stall_s: float,
                   memory_mb: float) -> Diagnosis | None:
    """None when the smoke run exited 0 by itself; else the diagnosis of how it failed."""
    if outcome.ok:
        return None
    if outcome.reason == "timeout":
        last = next((line.strip() for line in reversed(outcome.output_tail) if line.strip()), "")
        said = (f", although it keeps printing; last output: {last[:200]}" if last
                else " (it printed nothing)")
        return make_diagnosis(
            "smoke-ignored",
            f"still running after the {budget_s:g} s budget of a --smoke-test run{said}")
    return diagnose(outcome.output_tail, exit_code=outcome.exit_code, signal=outcome.signal,
                    reason=outcome.reason, script_path=script, stall_s=stall_s,
                    timeout_s=budget_s, peak_rss_mb=outcome.peak_rss_mb, memory_mb=memory_mb,
                    **outcome.extra)


def _relabel(text: str, out_dir: Path) -> str:
    """Name files by the flag, not by a temporary directory that is gone once preflight ends."""
    return text.replace(str(out_dir), "<output-dir>")


def _metrics_diagnosis(exc: ContractError, run: _Run, script: Path, work_root: Path) -> Diagnosis:
    if exc.category != "metrics-missing":
        message = _relabel(exc.message, run.out_dir)
        return make_diagnosis(exc.category, message, fix=exc.hint or "",
                              detail=message.split(": ", 1)[-1])
    stray = _stray_metrics(script.parent, run.started_wall, work_root)
    out_files = sorted(p.name for p in run.out_dir.iterdir()) if run.out_dir.is_dir() else []
    wrote = f" (it holds: {', '.join(out_files[:8])})" if out_files else " (it is empty)"
    message = f"metrics.json was not written to the --output-dir{wrote}"
    where_hint = ""
    if stray:
        shown = []
        for path in stray[:3]:
            real = Path(os.path.realpath(path))
            try:
                label = f"{real.relative_to(work_root / 'tmp')} under the private TMPDIR"
            except ValueError:
                label = str(real)
            shown.append(label)
        message += f"; a metrics.json was written to {', '.join(shown)} instead"
        where_hint = (" instead of a hard-coded path or the working directory; take the directory "
                      "from --output-dir (default: $RSTACK_OUTPUT_DIR, else ./out)")
    else:
        where_hint = (" (it wrote no metrics.json anywhere preflight looked: the output dir, the "
                      "script's directory, /tmp, your home directory)")
    return make_diagnosis("metrics-missing", message, where_hint=where_hint)


def rehearsal(root: Path, script: str | os.PathLike, python: str | None = None) -> dict:
    """How the runner will start SCRIPT in project ROOT, as run_preflight keywords: cwd (the
    project root, when the script is inside it), python (the plan's execution.python unless
    given) and required_metrics (the primary metric and every metric the plan gives a direction).
    Outside a project, or without a valid plan, only what can be known."""
    from .plan import PlanError, default_plan_path, load_plan, python_for

    root = Path(root).resolve()
    out: dict = {"python": python}
    try:
        Path(script).resolve().relative_to(root)
    except ValueError:
        return out
    out["cwd"] = root
    try:
        plan = load_plan(default_plan_path(root))
    except PlanError:
        return out
    if python is None and plan.execution.python:
        out["python"] = python_for("local", plan, root)
    from .guards import flag_value
    for arm in plan.arms:  # the real run's step count, when the args say it
        for flag in ("--steps", "--max-steps", "--max_steps", "--iters"):
            value = flag_value(plan.arm_args(arm), flag)
            if value is not None and value.isdigit():
                out["full_steps"] = max(out.get("full_steps", 0), int(value))
    out["required_metrics"] = [plan.primary_metric] + [
        name for name, spec in plan.metrics.items()
        if spec.direction is not None and name != plan.primary_metric]
    return out


def plan_arm_args(root: Path) -> dict[str, list[str]]:
    """Each arm's full args (execution.args + the arm's) from the project's plan."""
    from .plan import default_plan_path, load_plan

    plan = load_plan(default_plan_path(root))
    return {arm: plan.arm_args(arm) for arm in plan.arms}


def check_arms_wired(script: str | os.PathLike, arm_args: dict[str, list[str]],
                     **kwargs) -> PreflightResult:
    """One smoke run per arm (no determinism run); FAIL `flag-not-wired` when two arms whose args
    differ give identical metrics. Returns the first FAIL, or the last arm's PASS."""
    results: dict[str, PreflightResult] = {}
    for arm, args in arm_args.items():
        result = run_preflight(script, extra_args=list(args), determinism=False, **kwargs)
        if not result.passed:
            result.message = f"arm {arm}: {result.message}"
            return result
        results[arm] = result
    names = list(results)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if arm_args[first] == arm_args[second]:
                continue
            diffs, _ = compare_metrics(results[first].metrics, results[second].metrics)
            if not diffs:
                last = results[second]
                detail = (f"arms {first} ({' '.join(arm_args[first])}) and {second} "
                          f"({' '.join(arm_args[second])}) gave identical smoke metrics")
                last.checks.append(Check("arms", False, detail))
                diag = make_diagnosis("flag-not-wired", detail, detail=detail)
                return PreflightResult("FAIL", diag.category, diag.message, diag.hint,
                                       last.checks, None, last.duration_s, last.peak_rss_mb,
                                       last.script, last.script_sha256, last.seed,
                                       output_tail=last.output_tail, args=last.args)
    last = results[names[-1]]
    last.checks.append(Check("arms", True, f"{len(names)} arm(s) give different smoke metrics"))
    return last


def record_preflight(root: Path, result: PreflightResult) -> dict:
    """Append the verdict to <root>/.rstack/experiments.jsonl; returns the written record."""
    from .ledger import Ledger

    return Ledger(root, "experiments").append(result.record(root))


def is_project(root: Path) -> bool:
    """Whether root is an RStack project (has .rstack/, an experiment plan or a program)."""
    from . import paths

    return paths.state_dir(root).is_dir() or any(
        (Path(root) / name).is_file() for name in ("experiment-plan.md", "program.md"))


# Work directories are named for the preflight's pid, so a SIGKILLed preflight's directory (no
# finally ran) is known to be dead once that pid is, and the next preflight removes it.
WORK_PREFIX = "rstack-preflight-"


def remove_stale_work_dirs() -> list[Path]:
    """Remove the work directories of preflights whose process is gone; returns them."""
    import psutil

    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*-*"):
        pid = path.name[len(WORK_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir() or path.is_symlink():
            continue
        if int(pid) == os.getpid() or psutil.pid_exists(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def format_human(result: PreflightResult) -> str:
    """The short human form: one line per check, then the diagnosis and the script's last lines."""
    lines = []
    width = max((len(c.name) for c in result.checks), default=8)
    for check in result.checks:
        lines.append(f"{'✓' if check.ok else '✗'} {check.name.ljust(width)}  {check.detail}")
    if result.passed:
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in list((result.metrics or {}).items())[:6])
        lines.append(f"PASS {result.script.name} in {_fmt_s(result.duration_s)} "
                     f"(peak {result.peak_rss_mb:.0f} MB, containment: {CONTAINMENT})"
                     f"{': ' + shown if shown else ''}")
        return "\n".join(lines)
    title = INCIDENTS[result.category].title if result.category in INCIDENTS else ""
    lines.append(f"FAIL {result.category}" + (f" ({title})" if title else ""))
    lines.append(f"  {result.message}")
    if result.hint:
        lines.append(f"  fix: {result.hint}")
    if result.output_tail:
        lines.append(f"  last {min(TAIL_SHOWN, len(result.output_tail))} line(s) of output:")
        lines.extend(f"  | {line}" for line in result.output_tail[-TAIL_SHOWN:])
    return "\n".join(lines)
