"""Runs: guard, launch on a runner, ledger `run.started`/`run.finished`, retry with the minimal fix.

This is the only code that writes run records. Runners (rstack.runners.*) execute one run and hand
back its outputs; everything a run is judged by (metrics, diagnosis, status, artifacts) is decided
here, the same way for every profile. A started run always gets a finished record, Ctrl-C included.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from . import config, contract, guards, pyenv, retrypolicy
from .errors import RunError
from .gitstate import project_git_state
from .hashing import sha256_file
from .incidents import INCIDENTS, diagnose
from .ledger import Ledger
from .runids import RunIds
from .plan import DEFAULT_PROTECTED, CompiledRun, Plan, contract_flags, new_run_id, python_for
from .runners.base import (ARTIFACT_MISMATCH, LOG_FILE, STATUS_BY_CATEGORY, STATUSES,  # noqa: F401
                           RawOutcome, Runner, RunSpec, default_host)

RESULTS_DIR = "results"
@dataclass
class RunResult:
    spec: RunSpec
    status: str
    exit_code: int | None
    category: str | None
    hint: str | None
    message: str
    metrics: dict | None
    artifacts: list[dict]
    duration_s: float
    cost_usd: float
    peak_rss_mb: float | None = None
    remote_dir: str | None = None
    checks: list[dict] | None = None  # evaluation.checks results, when the plan has checks


# --------------------------------------------------------------------------------------------
# Provenance


def config_hash() -> str:
    """sha256 of the effective configuration (every key's typed value), as sorted JSON."""
    values = {item.key.name: item.value for item in config.resolve_all()}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty flag) of the project, or (None, None) outside git or before a commit."""
    state = project_git_state(root)
    if not state or state.get("commit") is None:
        return None, None
    return state["commit"], state["dirty"]


@dataclass(frozen=True)
class Provenance:
    plan_sha256: str | None
    config_hash: str
    git_commit: str | None
    git_dirty: bool | None
    script_sha256: str


def provenance(root: Path, script: str, plan: Plan | None) -> Provenance:
    path = Path(root) / script
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise RunError(f"script {script!r} resolves outside the project root {root} "
                       f"({path.resolve()}); runs execute and ledger only code inside the project",
                       hint="copy the script into the project and point execution.script at it")
    if not path.is_file():
        raise RunError(f"script {script!r} does not exist under the project root {root}",
                       hint="check execution.script in the plan (paths are relative to the project)")
    commit, dirty = git_state(Path(root))
    return Provenance(plan_sha256=plan.sha256 if plan else None, config_hash=config_hash(),
                      git_commit=commit, git_dirty=dirty, script_sha256=sha256_file(path))


def started_record(spec: RunSpec, prov: Provenance, host: str) -> dict:
    record = {"type": "run.started", "run_id": spec.run_id, "arm": spec.arm, "seed": spec.seed,
              "args": spec.args, "command": spec.command, "output_dir": spec.output_dir,
              "profile": spec.profile, "host": host, "plan_sha256": prov.plan_sha256,
              "config_hash": prov.config_hash, "git_commit": prov.git_commit,
              "git_dirty": prov.git_dirty, "script": spec.script,
              "script_sha256": prov.script_sha256, "timeout_s": spec.timeout_s,
              "cost_estimate_usd": spec.cost_estimate_usd, "attempt": spec.attempt,
              "retry_of": spec.retry_of, "gpu": spec.gpu}
    if spec.name:
        record["name"] = spec.name
    if spec.tags:
        record["tags"] = spec.tags
    if spec.profile == "local":  # how the run's process tree is contained (procwatch)
        from .procwatch import CONTAINMENT

        record["containment"] = CONTAINMENT
    return record


def finished_record(result: RunResult) -> dict:
    spec = result.spec
    return {"type": "run.finished", "run_id": spec.run_id, "arm": spec.arm, "seed": spec.seed,
            "status": result.status, "exit_code": result.exit_code, "category": result.category,
            "hint": result.hint, "metrics": result.metrics, "artifacts": result.artifacts,
            "duration_s": round(result.duration_s, 3), "cost_usd": round(result.cost_usd, 6),
            "message": result.message, "peak_rss_mb": result.peak_rss_mb,
            "remote_dir": result.remote_dir,
            **({"checks": result.checks} if result.checks is not None else {})}


# --------------------------------------------------------------------------------------------
# Judging a run from its outputs (the same for every profile)


def list_artifacts(root: Path, output_dir: str) -> list[dict]:
    """Every file under results/<run_id>/, as [{path, bytes, sha256}] with project-relative paths."""
    base = Path(root) / output_dir
    if not base.is_dir():
        return []
    items = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        items.append({"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size,
                      "sha256": sha256_file(path)})
    return items


def judge(root: Path, spec: RunSpec, raw: RawOutcome, checks: list[str] | tuple = ()) -> RunResult:
    """Diagnose the outcome, validate metrics as preflight does, evaluate the plan's checks on a
    run that is otherwise ok, and decide the run's status."""
    out = Path(root) / spec.output_dir
    context = {"timeout_s": spec.timeout_s, "peak_rss_mb": raw.peak_rss_mb}
    metrics = None
    if raw.reason == ARTIFACT_MISMATCH:
        category, message = ARTIFACT_MISMATCH, raw.message or "artifact verification failed"
        hint = INCIDENTS[ARTIFACT_MISMATCH].hint.format(remote_dir=raw.remote_dir)
    else:
        diag = diagnose(raw.output_tail, exit_code=raw.exit_code, signal=raw.signal,
                        reason=raw.reason, script_path=spec.script, **context)
        category, message, hint = diag.category, diag.message, diag.hint
        if raw.message:
            message = f"{raw.message}; {message}" if category else raw.message
        if category is None:
            try:
                metrics = contract.validate_metrics_file(out / contract.METRICS_FILE)
                history_path = out / contract.HISTORY_FILE
                history = contract.read_history(history_path) if history_path.exists() else []
                diverged = contract.check_divergence(history) if history else None
                if diverged:
                    category, message = "divergence", diverged
                    hint = INCIDENTS["divergence"].hint.format(detail=diverged)
            except contract.ContractError as exc:
                category, message, hint = exc.category, exc.message, exc.hint or INCIDENTS[
                    exc.category].hint
                metrics = None
    check_results = None
    if category is None and checks:
        from .checks import judge_checks
        check_results, failed = judge_checks(list(checks), metrics, out / contract.HISTORY_FILE)
        if failed:
            category, message = "check-failed", failed
            hint = INCIDENTS["check-failed"].hint.format(detail=failed)
    status = "ok" if category is None else STATUS_BY_CATEGORY.get(category, "failed")
    return RunResult(spec=spec, status=status, exit_code=raw.exit_code, category=category,
                     hint=hint or None, message=message, metrics=metrics,
                     artifacts=list_artifacts(root, spec.output_dir), duration_s=raw.duration_s,
                     cost_usd=raw.cost_usd, peak_rss_mb=raw.peak_rss_mb, remote_dir=raw.remote_dir,
                     checks=check_results)


# --------------------------------------------------------------------------------------------
# Building specs


def specs_from_matrix(runs: list[CompiledRun], script: str) -> list[RunSpec]:
    return [RunSpec.from_compiled(run, script) for run in runs]


def adhoc_specs(*, name: str, command: list[str], seeds: list[int], profile: str,
                timeout_s: float | None, gpu: str | None = None) -> list[RunSpec]:
    """`rstack run --name NAME -- python train.py ARGS`: one run per seed, contract flags added."""
    from .costs import estimate_run_usd
    from .plan import valid_arm_name

    if not valid_arm_name(name):  # it becomes the arm, a path component of every run id
        raise RunError(f"--name {name!r}: use letters, digits, _ . - (at most 64 characters, "
                       "starting with a letter or digit)", hint="rstack run --name quick-lr -- ...")
    if len(command) < 2 or not Path(command[0]).name.startswith("python"):
        raise RunError(f"the ad hoc command must be `python SCRIPT [ARGS...]`, got {' '.join(command)!r}",
                       hint="rstack run --name NAME -- python train.py --lr 0.1")
    script, args = command[1], list(command[2:])
    for flag in ("--output-dir", "--seed"):
        if guards.flag_value(args, flag) is not None:
            raise RunError(f"{flag} is set by rstack run for every run (the artifact contract); "
                           "remove it from the command", hint="rstack run --seeds 0,1,2 sets seeds")
    estimate = estimate_run_usd(profile, gpu, timeout_s) if timeout_s else 0.0
    specs = []
    for seed in seeds:
        run_id = new_run_id(name, seed)
        out = f"{RESULTS_DIR}/{run_id}"
        specs.append(RunSpec(run_id=run_id, arm=name, seed=seed, args=args,
                             command=[python_for(profile), script, *args, *contract_flags(out, seed)],
                             output_dir=out, profile=profile, gpu=gpu, timeout_s=timeout_s,
                             cost_estimate_usd=estimate, script=script, name=name))
    return specs


def retry_spec(spec: RunSpec, new_args: list[str], new_gpu: str | None,
               ids: "RunIds | None" = None) -> RunSpec:
    from .costs import estimate_run_usd

    run_id = new_run_id(spec.arm, spec.seed)
    out = f"{RESULTS_DIR}/{run_id}"
    # The same interpreter as the failed run (the plan's execution.python when it names one).
    command = [spec.command[0], spec.script, *new_args, *contract_flags(out, spec.seed)]
    estimate = (estimate_run_usd(spec.profile, new_gpu, spec.timeout_s) if spec.timeout_s
                else spec.cost_estimate_usd)
    new = replace(spec, run_id=run_id, args=list(new_args), gpu=new_gpu, command=command,
                  output_dir=out, attempt=spec.attempt + 1, retry_of=spec.run_id,
                  cost_estimate_usd=estimate)
    return ids.claim_spec(new) if ids is not None else new


# --------------------------------------------------------------------------------------------
# Progress


class Progress:
    """`[done/total] elapsed, latest <primary metric>`: rewritten in place on a terminal."""

    def __init__(self, total: int, primary_metric: str | None, stream=None, quiet: bool = False):
        self.total = total
        self.done = 0
        self.primary = primary_metric
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self.latest: str = ""
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.lock = threading.Lock()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        text = f"[{self.done}/{self.total}] {elapsed:.0f}s"
        return text + (f"  {self.latest}" if self.latest else "")

    def observe(self, spec: RunSpec, values: dict) -> None:
        if self.primary and isinstance(values.get(self.primary), (int, float)):
            self.latest = f"{self.primary}={values[self.primary]:.4g} ({spec.arm} s{spec.seed})"

    def tick(self) -> None:
        if self.tty and not self.quiet:
            with self.lock:
                self.stream.write("\r" + self.line().ljust(60))
                self.stream.flush()

    def finished(self, result: RunResult) -> None:
        with self.lock:
            self.done += 1
            if result.metrics:
                self.observe(result.spec, result.metrics)
            if self.quiet:
                return
            spec = result.spec
            what = f"{spec.arm} seed {spec.seed} {result.status}"
            if result.status != "ok":
                what += f" ({result.category}: {result.message})"
            prefix = "\r" if self.tty else ""
            self.stream.write(f"{prefix}[{self.done}/{self.total}] {spec.run_id} {what} "
                              f"{result.duration_s:.1f}s\n")
            self.stream.flush()


def _latest_history(root: Path, output_dir: str) -> dict:
    path = Path(root) / output_dir / contract.HISTORY_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return {}
    for text in reversed(lines):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


# --------------------------------------------------------------------------------------------
# Execution


@dataclass
class RunPolicy:
    """What guards need beyond the specs themselves."""

    plan: Plan | None = None
    max_retries: int = 2
    cap_usd: float | None = None
    protected: dict[str, str] = field(default_factory=dict)


@dataclass
class ExecutionReport:
    results: list[RunResult]
    interrupted: bool
    refusals: list[str]
    retries: list[dict] = field(default_factory=list)  # {run_id, retry_run_id, change, args_changed}

    def summary_line(self) -> str:
        """`N run(s): 2 ok, 1 diverged`, then the retries and which of them changed args."""
        final = self.final_results()
        counts: dict[str, int] = {}
        for result in final:
            counts[result.status] = counts.get(result.status, 0) + 1
        text = f"{len(final)} run(s): " + (
            ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no runs")
        if self.retries:
            changed = [r for r in self.retries if r["args_changed"]]
            text += f"; {len(self.retries)} retr{'y' if len(self.retries) == 1 else 'ies'}"
            text += (f", {len(changed)} with changed args: " + "; ".join(
                f"{r['retry_run_id']} ({r['change']})" for r in changed)) if changed else \
                ", none changed args"
        design = [r for r in self.refusals if "design-changing retry refused" in r]
        if design:
            text += (f"; {len(design)} design-changing retr{'y' if len(design) == 1 else 'ies'} "
                     "refused (the runs keep their failed status)")
        return text

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status == "ok" for r in self.final_results())

    def final_results(self) -> list[RunResult]:
        """The last attempt of each run (a retried failure is superseded by its retry)."""
        retried = {r.spec.retry_of for r in self.results if r.spec.retry_of}
        return [r for r in self.results if r.spec.run_id not in retried]


def total_estimate_usd(specs: list[RunSpec]) -> float:
    """Worst case of what the specs bill: every run's estimate plus the machines' own lifetime
    (rented instances bill while booting and tearing down)."""
    from .costs import instance_overhead_usd

    if not specs:
        return 0.0
    runs = sum(s.cost_estimate_usd for s in specs)
    return round(runs + instance_overhead_usd(specs[0].profile, [s.gpu for s in specs]), 6)


def pre_launch_guards(root: Path, specs: list[RunSpec], runner: Runner, policy: RunPolicy,
                      prov: Provenance) -> None:
    """Every guard that can refuse before anything starts or is spent."""
    if not specs:
        return
    profile = specs[0].profile
    experiments = Ledger(root, "experiments").read(types=["preflight"]).records
    guards.check_preflight(profile=profile, script=specs[0].script,
                           script_sha256=prov.script_sha256, records=experiments,
                           arg_sets=[spec.args for spec in specs])
    cap = policy.cap_usd if policy.cap_usd is not None else float(config.get("max_cost_usd"))
    guards.check_cost_cap(guards.spent_usd(root), total_estimate_usd(specs), cap)
    if runner.remote:
        local_roots = (str(Path(root).resolve()), str(Path.home()), sys.prefix, os.getcwd())
        for spec in specs:
            guards.check_remote_submit(command=spec.command, timeout_s=spec.timeout_s,
                                       persistence=runner.persistence,
                                       monitoring=runner.monitoring,
                                       local_roots=local_roots)


def execute(root: Path, specs: list[RunSpec], runner: Runner, *, policy: RunPolicy,
            jobs: int = 1, progress: Progress | None = None,
            echo: Callable[[str], None] = lambda text: print(text, file=sys.stderr)) -> ExecutionReport:
    """Run specs on runner with up to `jobs` at once; ledger every start, finish and retry.

    Ctrl-C (KeyboardInterrupt in the calling thread) cancels the runner; runs in flight are
    recorded `killed`, queued runs never start, and the report says it was interrupted.
    """
    root = Path(root)
    ledger = Ledger(root, "experiments")
    prov = provenance(root, specs[0].script, policy.plan) if specs else None
    if specs:
        pre_launch_guards(root, specs, runner, policy, prov)
    progress = progress or Progress(len(specs), None, quiet=True)
    script_flags: set[str] = set()
    if specs:
        try:
            script_flags = guards.flags_in_source((root / specs[0].script).read_text("utf-8", "replace"))
        except OSError:
            script_flags = set()
    cap = policy.cap_usd if policy.cap_usd is not None else float(config.get("max_cost_usd"))
    stopping = threading.Event()
    results: list[RunResult] = []
    refusals: list[str] = []
    active: dict[str, RunSpec] = {}
    lock = threading.Lock()
    todo: "queue.Queue[RunSpec]" = queue.Queue()
    for spec in specs:
        todo.put(spec)
    outstanding = {spec.run_id: spec.cost_estimate_usd for spec in specs}
    ids = RunIds(root)
    ids.taken.update(spec.run_id for spec in specs)
    oom_rungs: dict[str, int] = {}  # per original run
    origins: dict[str, str] = {}  # retry run id -> the original run of its chain
    retries: list[dict] = []
    versions = ArmVersions(specs, policy.plan)
    # The interpreter the runs use (the plan's execution.python), recorded with every local run.
    interpreter = pyenv.describe(specs[0].command[0]) if specs and not runner.remote else {}

    def next_attempt(result: RunResult) -> RunSpec | None:
        spec = result.spec
        if result.status == "ok" or result.status == "killed" and result.category == "interrupted":
            return None
        if stopping.is_set() or result.category is None or versions.superseded(spec):
            return None
        incident = INCIDENTS.get(result.category)
        policy_name = incident.retry if incident else None
        origin = origins.get(spec.run_id, spec.run_id)
        rung = oom_rungs.get(origin, 0) + (1 if policy_name == "oom-ladder" else 0)
        try:
            plan = guards.plan_retry(category=result.category, policy=policy_name,
                                     attempt=spec.attempt, max_retries=policy.max_retries,
                                     args=spec.args, script_flags=script_flags, profile=spec.profile,
                                     gpu=spec.gpu, oom_rung=rung, protected=policy.protected,
                                     hint=result.hint or "")
            decision = retrypolicy.decide(plan, spec.args, arm=spec.arm,
                                          arm_retry=versions.retry_policy(spec.arm),
                                          category=result.category, hint=result.hint or "")
            if decision.action == retrypolicy.REFUSE:
                raise guards.GuardError(decision.message)
            new = retry_spec(spec, plan.args, plan.gpu, ids)
            if decision.action == retrypolicy.ADJUST_ARM:
                others = versions.adjust(spec, new, plan.args)
            else:
                others = []
                versions.inherit(spec, new)
            with lock:
                pending = sum(outstanding.values())
            guards.check_cost_cap(guards.spent_usd(root), pending + sum(
                s.cost_estimate_usd for s in [new, *others]), cap)
        except guards.GuardError as exc:
            with lock:
                refusals.append(f"{spec.run_id}: {exc.message}")
            echo(f"no retry for {spec.run_id}: {exc.message}")
            return None
        oom_rungs[origin] = rung
        origins[new.run_id] = origin
        if decision.grad_accum:
            versions.extra[new.run_id] = {"grad_accum": decision.grad_accum}
        ledger.append({"type": "run.retry", "run_id": spec.run_id, "retry_run_id": new.run_id,
                       "attempt": new.attempt, "category": result.category, "policy": plan.policy,
                       "change": plan.change, "gpu": plan.gpu, "message": result.message})
        retries.append({"run_id": spec.run_id, "retry_run_id": new.run_id, "change": plan.change,
                        "args_changed": new.args != spec.args})
        echo(f"retry {spec.run_id} -> {new.run_id} ({result.category}): {plan.change}")
        if others:
            ledger.append(versions.adjusted_record(spec, new, others, plan.change,
                                                   result.category))
            echo(f"arm {spec.arm}: {decision.message}: " + ", ".join(s.run_id for s in others))
            with lock:
                for other in others:
                    outstanding[other.run_id] = other.cost_estimate_usd
                    todo.put(other)
                progress.total += len(others)
                retries.extend({"run_id": o.retry_of or "", "retry_run_id": o.run_id,
                                "change": plan.change, "args_changed": True} for o in others)
        return new

    def crosses_cap(spec: RunSpec) -> bool:
        """Would this run, at its worst case, take the money billed so far over the cap? (The
        machines bill while runs wait, so the up-front estimate is checked again per run.)"""
        accrued = runner.accrued_usd()
        with lock:
            later = sum(v for k, v in outstanding.items() if k != spec.run_id and k not in active)
        spent = guards.spent_usd(root) + accrued
        try:
            guards.check_cost_cap(spent, spec.cost_estimate_usd, cap)
        except guards.GuardError as exc:
            with lock:
                refusals.append(f"{spec.run_id}: not started: {exc.message}")
            echo(f"not starting {spec.run_id}: {exc.message} (billed so far, instances "
                 f"included; {later:.2f} more was planned)")
            return True
        return False

    def run_one(spec: RunSpec) -> None:
        if spec.cost_estimate_usd > 0 and crosses_cap(spec):
            with lock:
                outstanding.pop(spec.run_id, None)
            return
        while spec is not None and not stopping.is_set():
            if versions.superseded(spec):  # queued before its arm was adjusted: never started
                progress.total -= 1
                return
            versions.started(spec)
            (root / spec.output_dir).mkdir(parents=True, exist_ok=True)
            ledger.append({**started_record(spec, prov, runner.host_for(spec)), **interpreter,
                           **versions.extra.get(spec.run_id, {})})
            with lock:
                active[spec.run_id] = spec
            try:
                raw = runner.launch(spec, on_line=None)
            except Exception as exc:  # a runner bug or setup failure must still close the record
                raw = RawOutcome(exit_code=None, signal=None, reason=None, duration_s=0.0,
                                 output_tail=[f"runner error: {exc}"], message=f"runner error: {exc}")
                if stopping.is_set():
                    raw.reason = "interrupted"
            if stopping.is_set() and raw.reason is None and raw.exit_code != 0:
                raw.reason = "interrupted"
            save_exit(root, spec.run_id, raw)
            result = judge(root, spec, raw, policy.plan.checks if policy.plan else ())
            ledger.append(finished_record(result))
            drop_exit(root, spec.run_id)
            with lock:
                active.pop(spec.run_id, None)
                outstanding.pop(spec.run_id, None)
                results.append(result)
            progress.finished(result)
            spec = next_attempt(result)
            if spec is not None:
                with lock:
                    outstanding[spec.run_id] = spec.cost_estimate_usd
                progress.total += 1

    def worker() -> None:
        while not stopping.is_set():
            try:
                spec = todo.get_nowait()
            except queue.Empty:
                return
            run_one(spec)

    try:
        runner.prepare(specs)
    except BaseException:  # Ctrl-C or a failure mid-provisioning: release whatever was rented
        runner.close([])
        raise
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="rstack-run")
    futures = {pool.submit(worker) for _ in range(max(1, min(jobs, len(specs)) if specs else 1))}
    try:
        while futures:
            try:
                done, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
                with lock:
                    running = list(active.values())
                for spec in running[-1:]:
                    progress.observe(spec, _latest_history(root, spec.output_dir))
                progress.tick()
            except KeyboardInterrupt:
                if not interrupted:
                    interrupted = True
                    stopping.set()
                    echo("\ninterrupted: stopping runs in flight (they are recorded `killed`)")
                    runner.cancel()
    finally:
        pool.shutdown(wait=True)
        runner.close(results)
    return ExecutionReport(results=results, interrupted=interrupted, refusals=refusals,
                           retries=retries)


class ArmVersions:
    """Which version of its arm each run belongs to. `retry: adjust` moves an arm to a new
    version (every seed re-run with the adjusted args); runs of an older version are superseded:
    not started when still queued, not retried when they fail. A design-preserving retry stays
    in its run's version."""

    def __init__(self, specs: list[RunSpec], plan: Plan | None):
        self.plan = plan
        self.current = {s.arm: 1 for s in specs}
        self.of: dict[str, int] = {s.run_id: 1 for s in specs}
        self.latest: dict[tuple[str, int], RunSpec] = {(s.arm, s.seed): s for s in specs}
        self.extra: dict[str, dict] = {}  # run id -> extra run.started fields
        self.lock = threading.Lock()

    def retry_policy(self, arm: str) -> str:
        spec = self.plan.arm_specs.get(arm) if self.plan else None
        return spec.retry if spec else "refuse"

    def superseded(self, spec: RunSpec) -> bool:
        with self.lock:
            return self.of.get(spec.run_id, 1) < self.current.get(spec.arm, 1)

    def inherit(self, old: RunSpec, new: RunSpec) -> None:
        with self.lock:
            self.of[new.run_id] = self.of.get(old.run_id, 1)

    def started(self, spec: RunSpec) -> None:
        with self.lock:
            self.latest[(spec.arm, spec.seed)] = spec

    def adjust(self, failed: RunSpec, new: RunSpec, new_args: list[str]) -> list[RunSpec]:
        """Move failed.arm to new_args; `new` re-runs the failed seed, the returned specs every
        other seed of the arm (each replacing that seed's latest run)."""
        with self.lock:
            self.current[failed.arm] = version = self.current.get(failed.arm, 1) + 1
            others = []
            for (arm, seed), latest in sorted(self.latest.items(), key=lambda kv: kv[0][1]):
                if arm != failed.arm or seed == failed.seed:
                    continue
                others.append(retry_spec(latest, new_args, latest.gpu))
            for spec in [new, *others]:
                self.of[spec.run_id] = version
                self.extra[spec.run_id] = {"arm_version": version}
                self.latest[(spec.arm, spec.seed)] = spec
            return others

    def adjusted_record(self, failed: RunSpec, new: RunSpec, others: list[RunSpec], change: str,
                        category: str | None) -> dict:
        return {"type": "arm.adjusted", "arm": failed.arm, "version": self.current[failed.arm],
                "args_before": list(failed.args), "args": list(new.args), "change": change,
                "run_id": failed.run_id, "category": category,
                "run_ids": [new.run_id, *(o.run_id for o in others)]}


# --------------------------------------------------------------------------------------------
# Reading runs back


def run_json(row, started: dict, finished: dict | None, superseded: bool = False) -> dict:
    """One run as `runs list --json` / `runs show --json` give it."""
    f = finished or {}
    return {"run_id": row.run_id, "arm": started.get("arm"), "seed": started.get("seed"),
            "status": row.status or "running", "profile": started.get("profile"),
            "host": started.get("host"), "attempt": started.get("attempt"),
            "retry_of": started.get("retry_of"), "started": started.get("ts"),
            "finished": f.get("ts"), "duration_s": f.get("duration_s"),
            "category": f.get("category"), "metrics": f.get("metrics"),
            "cost_usd": f.get("cost_usd"), "output_dir": started.get("output_dir"),
            "script_sha256": started.get("script_sha256"),
            "plan_sha256": started.get("plan_sha256"), "superseded": superseded}


# `runs list` shows this many characters of metrics per line; `--json` has them all.
LIST_METRICS_WIDTH = 60


def listing_primary_metric(root: Path, plan_path: str | os.PathLike | None = None) -> str | None:
    """The primary metric `runs list` shows first: from plan_path (its PlanError is raised), else
    from experiment-plan.md when it loads (a missing or invalid default plan gives None)."""
    from .plan import PlanError, default_plan_path, load_plan

    if plan_path is not None:
        return load_plan(plan_path).primary_metric or None
    try:
        return load_plan(default_plan_path(root)).primary_metric or None
    except PlanError:
        return None


def metrics_summary(metrics: dict | None, primary: str | None = None,
                    width: int = LIST_METRICS_WIDTH) -> str:
    """One run's metrics for a `runs list` line: the primary metric first, then the others by
    name while the line stays within width characters, then `+N more` for those left out."""
    metrics = metrics or {}
    names = sorted(metrics)
    if primary in metrics:
        names.remove(primary)
        names.insert(0, primary)
    shown: list[str] = []
    for i, name in enumerate(names):
        value = metrics[name]
        text = f"{name}={value:.4g}" if isinstance(value, (int, float)) else f"{name}={value}"
        # Room for this one, and for a `+N more` when metrics are still left after it.
        tail = len(f" +{len(names) - i - 1} more") if i + 1 < len(names) else 0
        if shown and len(" ".join(shown + [text])) + tail > width:
            return " ".join(shown) + f" +{len(names) - len(shown)} more"
        shown.append(text)
    return " ".join(shown)


def list_lines(root: Path, *, arm: str | None = None, status: str | None = None,
               plan_path: str | os.PathLike | None = None) -> tuple[list[dict], list[str],
                                                                      str | None]:
    """`rstack runs list`: the runs (as_json) filtered by arm and status, one text line per run,
    and the primary metric the lines show first (None when no plan is known)."""
    from . import runview

    index = runview.load(root)
    _, old = index.split_current(runview.default_plan_versions(root))
    superseded = {row.run_id for row in old}
    rows = [row for row in index.runs() if (not arm or row.arm == arm)
            and (not status or (row.status or "running") == status)]
    views = [run_json(row, started, done, row.run_id in superseded)
             for row, started, done in index.iter_records(rows)]
    primary = listing_primary_metric(root, plan_path)
    lines = []
    for v in views:
        duration = f"{v['duration_s']:.1f}s" if v["duration_s"] is not None else "-"
        shown = "superseded" if v["superseded"] else v["status"]
        lines.append(f"{v['run_id']}  {v['arm']:<12} s{v['seed']:<3} {shown:<8} "
                     f"{duration:>8}  {metrics_summary(v['metrics'], primary)}".rstrip())
    return views, lines, primary


def find_run(root: Path, run_id: str, error: type[RStackError] = RunError):
    """(index, row) of the run with this id, or of the one run whose id starts with it."""
    from . import runview

    index = runview.load(root)
    runs = index.find(run_id)
    if not runs:
        raise error(f"no run {run_id!r} in {index.ledger_path}",
                    hint="rstack runs list shows the run ids")
    if len(runs) > 1:
        raise error(f"{run_id!r} matches {len(runs)} runs: "
                    f"{', '.join(r.run_id for r in runs[:5])}", hint="give more of the id")
    return index, runs[0]


def show_run(root: Path, run_id: str) -> dict:
    """Every ledger record about one run (prefix match allowed when unique)."""
    from . import runview

    index, row = find_run(root, run_id)
    _, started, done = next(index.iter_records([row]))
    _, old = index.split_current(runview.default_plan_versions(root))
    related = [rec for _, _, rec in Ledger(root, "experiments").stream(
                   start=row.started_offset, first_line=row.started_line,
                   containing=json.dumps(row.run_id).encode())
               if isinstance(rec, dict) and (rec.get("run_id") == row.run_id
                                             or rec.get("retry_run_id") == row.run_id)]
    return {"run": run_json(row, started, done, row in old), "records": related}


def in_flight(root: Path) -> list[dict]:
    """run.started records with no run.finished (what --resume re-attaches to)."""
    from . import runview

    index = runview.load(root)
    return [started for _, started, _ in index.iter_records(index.in_flight())]


# --------------------------------------------------------------------------------------------
# The whole `rstack run` (plan or ad hoc), as the CLI calls it


@dataclass
class RunRequest:
    root: Path
    plan_path: Path | None = None
    arms: list[str] = field(default_factory=list)
    seeds: list[int] | None = None
    profile: str | None = None
    jobs: int | None = None
    dry_run: bool = False
    resume: bool = False
    name: str | None = None
    command: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    gpu: str | None = None
    memory_mb: float | None = None
    keep_instance: bool = False


@dataclass
class Prepared:
    specs: list[RunSpec]
    policy: RunPolicy
    profile: str
    runner: Runner | None
    skipped: list[str]
    orphans: list[dict]
    reattach: list[dict]

    def dry_run_json(self) -> dict:
        return {"profile": self.profile,
                "runs": [{"run_id": s.run_id, "arm": s.arm, "seed": s.seed, "command": s.command,
                          "output_dir": s.output_dir, "timeout_s": s.timeout_s, "gpu": s.gpu,
                          "cost_estimate_usd": s.cost_estimate_usd} for s in self.specs],
                "total_estimate_usd": total_estimate_usd(self.specs),
                "skipped": self.skipped,
                "runner": self.runner.dry_run_spec(self.specs) if self.runner else None}


def prepare(request: RunRequest) -> Prepared:
    from .plan import compile_plan, cost_cap, default_plan_path, load_plan
    from .runners import make_runner, runner_class

    root = Path(request.root)
    plan = None
    if request.command:
        if not request.name:
            raise RunError("an ad hoc run needs --name NAME (it becomes the run's arm)",
                           hint="rstack run --name lr-sweep -- python train.py --lr 0.1")
        profile = request.profile or "local"
        specs = adhoc_specs(name=request.name, command=request.command,
                            seeds=request.seeds if request.seeds is not None else [0],
                            profile=profile, timeout_s=request.timeout_s, gpu=request.gpu)
        policy = RunPolicy(plan=None, max_retries=int(config.get("max_retries")),
                           protected=dict(DEFAULT_PROTECTED))
    else:
        plan = load_plan(request.plan_path or default_plan_path(root))
        matrix = compile_plan(plan, root=root, arms=request.arms or None, seeds=request.seeds,
                              profile=request.profile, spent_usd=0.0)
        profile = matrix.profile
        specs = specs_from_matrix(matrix.runs, plan.script)
        if request.timeout_s:
            from .costs import estimate_run_usd
            # The estimate is price x timeout: re-price, or the cap judges the plan's timeout.
            for spec in specs:
                spec.timeout_s = request.timeout_s
                spec.cost_estimate_usd = estimate_run_usd(profile, spec.gpu, request.timeout_s)
        policy = RunPolicy(plan=plan, max_retries=int(config.get("max_retries")),
                           cap_usd=cost_cap(plan), protected=dict(plan.protected))
    skipped: list[str] = []
    orphans: list[dict] = []
    reattach: list[dict] = []
    if request.resume:
        from . import runview

        index = runview.load(root)
        for row, started, _ in index.iter_records(index.in_flight()):
            (reattach if row.run_id in index.remote else orphans).append(started)
        # Done with this script, or still running remotely (re-attached below):
        # neither is started again. A run of another script version is superseded.
        version = (provenance(root, specs[0].script, plan).script_sha256 if specs else None,)
        done = index.done_keys() | {index.inflight[s["run_id"]].done_key for s in reattach}
        keep = []
        for spec in specs:
            if (spec.arm, spec.seed, tuple(spec.args), *version) in done:
                skipped.append(f"{spec.arm} seed {spec.seed}")
            else:
                keep.append(spec)
        specs = keep
    ids = RunIds(root)
    specs = [ids.claim_spec(spec) for spec in specs]
    jobs = request.jobs
    if jobs is None:
        jobs = runner_class(profile).default_jobs(specs)
    request.jobs = jobs
    runner = make_runner(profile, root, jobs=jobs, memory_mb=request.memory_mb,
                         gpu=specs[0].gpu if specs else request.gpu,
                         keep_instance=request.keep_instance, dry_run=request.dry_run)
    return Prepared(specs=specs, policy=policy, profile=profile, runner=runner, skipped=skipped,
                    orphans=orphans, reattach=reattach)


# --------------------------------------------------------------------------------------------
# What the disk says about a run (item 3: a finished run is never recorded as killed)


def exit_path(root: Path, run_id: str) -> Path:
    from . import paths

    return paths.state_dir(Path(root)) / "exits" / f"{run_id}.json"


def save_exit(root: Path, run_id: str, raw: RawOutcome) -> None:
    """Write how the run's process ended before it is judged and ledgered, so a crash or a full
    disk between the two leaves the truth on disk for --resume."""
    from .atomic import write_text

    data = {"exit_code": raw.exit_code, "signal": raw.signal, "reason": raw.reason,
            "duration_s": raw.duration_s, "output_tail": raw.output_tail[-50:],
            "cost_usd": raw.cost_usd, "peak_rss_mb": raw.peak_rss_mb, "message": raw.message,
            "remote_dir": raw.remote_dir}
    try:
        write_text(exit_path(root, run_id), json.dumps(data), fsync=True)
    except OSError:
        pass  # the disk is full: the run is judged and ledgered as usual, or closed by --resume


def load_exit(root: Path, run_id: str) -> RawOutcome | None:
    from .runids import is_safe

    if not is_safe(run_id):
        return None
    try:
        data = json.loads(exit_path(root, run_id).read_text(encoding="utf-8"))
        return RawOutcome(**{k: data[k] for k in ("exit_code", "signal", "reason", "duration_s",
                                                  "output_tail", "cost_usd", "peak_rss_mb",
                                                  "message", "remote_dir")})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def drop_exit(root: Path, run_id: str) -> None:
    try:
        exit_path(root, run_id).unlink()
    except OSError:
        pass


def spec_from_started(started: dict) -> RunSpec:
    return RunSpec(run_id=started["run_id"], arm=started["arm"], seed=started["seed"],
                   args=started["args"], command=started["command"],
                   output_dir=started["output_dir"], profile=started["profile"],
                   gpu=started.get("gpu"), timeout_s=started.get("timeout_s"),
                   cost_estimate_usd=started["cost_estimate_usd"], script=started["script"],
                   attempt=started["attempt"], retry_of=started.get("retry_of"))


def close_orphans(root: Path, orphans: list[dict]) -> list[str]:
    """Runs the ledger shows in flight that nothing can re-attach to: close their records.

    Local ones died with the rstack process that supervised them (`killed`); remote ones with no
    `run.remote` record (Modal calls, or a launch cut short) cannot be followed (`lost`).
    """
    ledger = Ledger(root, "experiments")
    closed = []
    for started in orphans:
        raw = load_exit(root, started["run_id"])
        if raw is not None:  # it ended before rstack could ledger it: judge it as it ended
            ledger.append(finished_record(judge(root, spec_from_started(started), raw)))
            drop_exit(root, started["run_id"])
            closed.append(started["run_id"])
            continue
        local = started.get("profile") == "local"
        category = "interrupted" if local else "host-lost"
        message = ("rstack stopped while this run was in flight; found by --resume" if local else
                   f"in flight on {started.get('profile')} when rstack stopped, and it cannot be "
                   "re-attached; found by --resume")
        ledger.append({"type": "run.finished", "run_id": started["run_id"], "arm": started["arm"],
                       "seed": started["seed"], "status": "killed" if local else "lost",
                       "exit_code": None, "category": category,
                       "hint": INCIDENTS[category].hint, "metrics": None,
                       "artifacts": list_artifacts(root, started["output_dir"]),
                       "duration_s": 0.0, "cost_usd": 0.0, "message": message})
        closed.append(started["run_id"])
    return closed


def start(request: RunRequest, *, progress_stream=None, echo=None) -> ExecutionReport:
    """Prepare and execute under the project run lock (rstack.runlock): what is in flight, what
    is done, which ids are free and what was spent stay true until the runs are ledgered."""
    from .runlock import run_lock

    with run_lock(request.root, what="rstack run --resume" if request.resume else "rstack run"):
        return _start(request, progress_stream=progress_stream, echo=echo)


def _start(request: RunRequest, *, progress_stream=None, echo=None) -> ExecutionReport:
    prepared = prepare(request)
    echo = echo or (lambda text: print(text, file=sys.stderr))
    root = Path(request.root)
    results: list[RunResult] = []
    if request.resume:
        if not prepared.runner.can_reattach:
            prepared.orphans.extend(prepared.reattach)
            prepared.reattach = []
        closed = close_orphans(root, prepared.orphans)
        for run_id in closed:
            echo(f"resume: {run_id} was in flight when rstack stopped; its record is closed")
        if closed:  # one that ended ok before rstack stopped is done: do not run it again
            from . import runview

            index = runview.load(root)
            done, versions = index.done_keys(), {index.rows[run_id].version for run_id in closed}
            keep = []
            for spec in prepared.specs:
                if any((spec.arm, spec.seed, tuple(spec.args), *v) in done for v in versions):
                    prepared.skipped.append(f"{spec.arm} seed {spec.seed}")
                else:
                    keep.append(spec)
            prepared.specs = keep
        for started in prepared.reattach:
            results.extend(reattach_runs(root, prepared.runner, [started]))
    primary = prepared.policy.plan.primary_metric if prepared.policy.plan else None
    progress = Progress(len(prepared.specs), primary, stream=progress_stream or sys.stderr)
    if not prepared.specs:
        prepared.runner.close(results)
        return ExecutionReport(results=results, interrupted=False, refusals=[])
    report = execute(root, prepared.specs, prepared.runner, policy=prepared.policy,
                     jobs=prepared.runner.followers(request.jobs or 1, prepared.specs),
                     progress=progress, echo=echo)
    report.results[:0] = results
    return report


def reattach_runs(root: Path, runner: Runner, started_records: list[dict]) -> list[RunResult]:
    """--resume: monitor remote runs the ledger shows in flight, without starting them again."""
    ledger = Ledger(root, "experiments")
    remote = {r.get("run_id"): r for r in ledger.read(types=["run.remote"]).records}
    out = []
    for started in started_records:
        spec = spec_from_started(started)
        raw = runner.reattach(spec, remote[spec.run_id])
        result = judge(root, spec, raw)
        ledger.append(finished_record(result))
        out.append(result)
    return out
