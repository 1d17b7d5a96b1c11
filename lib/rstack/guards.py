"""Guards: pure functions that refuse (raise GuardError) when a run would break a rule.

Commands call these before they act; nothing here starts processes or touches the network.
The only input read from disk is the ledger (`spent_usd`, `preflight_passed`), passed in by callers.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import RStackError


class GuardError(RStackError):
    """A guard refused: the action would break a rule. Nothing was started or spent."""


def spent_usd(root: Path) -> float:
    """Money already spent in this project: every ledgered run.finished cost_usd plus what rented
    instances billed beyond their runs (rstack.runview, the one read model of runs)."""
    from .runview import load

    return load(root).spent_usd()


def check_cost_cap(spent: float, estimate: float, cap: float) -> None:
    """Refuse when spent + estimate would exceed the cap; the message carries all three numbers."""
    if spent + estimate > cap + 1e-9:
        raise GuardError(
            f"cost cap: spent ${spent:.2f} + estimate ${estimate:.2f} = ${spent + estimate:.2f} "
            f"exceeds the cap ${cap:.2f}; nothing was started",
            hint="run fewer arms/seeds or a shorter timeout, or raise the cap after asking the human: "
                 "execution.max_cost_usd in the plan, or rstack config set max_cost_usd N")


def check_gpu_hours(spent: float, requested: float, cap: float) -> None:
    """The slurm allocation: refuse when GPU-hours spent + requested would pass max_gpu_hours
    (cap 0 = no cap). requested is each task's time limit x its GPUs, summed."""
    if cap > 0 and spent + requested > cap + 1e-9:
        raise GuardError(
            f"GPU-hour cap: spent {spent:.2f} + requested {requested:.2f} = "
            f"{spent + requested:.2f} GPU-hours exceeds max_gpu_hours {cap:g}; nothing was submitted",
            hint="run fewer arms/seeds or a shorter time limit (execution.timeout_s, slurm_time), "
                 "or raise the cap after asking the human: rstack config set max_gpu_hours N")


# --------------------------------------------------------------------------------------------
# Preflight gate


def standing_preflight(records: list[dict], script_sha256: str,
                       arg_sets: Iterable[Sequence[str]] = ()) -> dict | None:
    """The preflight verdict that stands for this script version, or None when it has none.

    Only verdicts run with no extra args or with one of arg_sets (the arms' args) count, so a
    FAIL from args nothing runs with (`rstack preflight train.py -- --bogus`) hides no PASS. Per
    args the newest verdict counts: a FAIL newer than every PASS with its args stands, else the
    newest PASS. When no verdict has those args, the newest verdict of any args stands. Records
    from before preflight recorded `args` count as run with none.
    """
    verdicts = [r for r in records
                if r.get("type") == "preflight" and r.get("script_sha256") == script_sha256]
    wanted = {()} | {tuple(args) for args in arg_sets}
    newest: dict[tuple, tuple[int, dict]] = {}
    for index, record in enumerate(verdicts):
        args = tuple(record.get("args") or ())
        if args in wanted:
            newest[args] = (index, record)
    if not newest:
        return verdicts[-1] if verdicts else None
    failed = [item for item in newest.values() if item[1].get("verdict") != "PASS"]
    return max(failed or newest.values(), key=lambda item: item[0])[1]


def preflight_passed(records: list[dict], script_sha256: str,
                     arg_sets: Iterable[Sequence[str]] = ()) -> bool:
    """Whether the standing preflight verdict for this exact script version is PASS."""
    verdict = standing_preflight(records, script_sha256, arg_sets)
    return verdict is not None and verdict.get("verdict") == "PASS"


def check_preflight(*, profile: str, script: str, script_sha256: str, records: list[dict],
                    arg_sets: Iterable[Sequence[str]] = ()) -> None:
    """No non-local run of a script version without a PASS preflight of that version (with no
    extra args or the args of the runs about to start; see standing_preflight)."""
    if profile == "local":
        return
    standing = standing_preflight(records, script_sha256, arg_sets)
    if standing is not None and standing.get("verdict") == "PASS":
        return
    args = shlex.join(standing.get("args") or ()) if standing else ""
    why = (f"its latest preflight is FAIL{f' (with args {args})' if args else ''}" if standing
           else "no preflight of this version is in the ledger")
    again = f"rstack preflight {script}{f' -- {args}' if args else ''}"
    raise GuardError(
        f"preflight gate: {script} (sha256 {script_sha256[:12]}) may not run on the {profile} "
        f"profile: {why}; paid and remote runs use only a version that passed preflight",
        hint=f"{again}  (then run again; any edit to the script needs a new PASS)")


# --------------------------------------------------------------------------------------------
# Remote submit invariant


def _absolute_paths(token: str) -> list[str]:
    found = []
    for part in (token, token.split("=", 1)[1] if "=" in token else ""):
        if part.startswith("/"):
            found.append(part)
    return found


def check_remote_submit(*, command: list[str], timeout_s: float | None, persistence: str | None,
                        monitoring: bool, local_roots: tuple[str, ...]) -> None:
    """A remote run must have a timeout, a place its results persist, no local paths, a monitor.

    local_roots: this machine's directories (project root, home, the interpreter prefix); an
    absolute path under any of them in the remote command would point at nothing over there.
    """
    problems = []
    if not timeout_s or timeout_s <= 0:
        problems.append("no timeout is set (a remote run without one can bill forever)")
    if not persistence:
        problems.append("no artifact persistence is configured (results would die with the machine)")
    if not monitoring:
        problems.append("monitoring is off (nobody would notice a dead or stuck run)")
    roots = tuple(r.rstrip("/") for r in local_roots if r and r != "/")
    for token in command:
        for path in _absolute_paths(token):
            if any(path == root or path.startswith(root + "/") for root in roots):
                problems.append(f"the command names a local absolute path {path!r}; use a path "
                                "relative to the project root")
    if problems:
        raise GuardError("remote submit refused: " + "; ".join(problems),
                         hint="set execution.timeout_s in the plan and pass project-relative paths; "
                              "rstack run sets persistence and monitoring itself")


# --------------------------------------------------------------------------------------------
# Scope change


def flag_value(args: list[str], flag: str) -> str | None:
    """The value given for flag in args (`--flag V` or `--flag=V`); the last one wins."""
    value = None
    for index, token in enumerate(args):
        if token == flag:
            value = args[index + 1] if index + 1 < len(args) else ""
        elif token.startswith(flag + "="):
            value = token[len(flag) + 1:]
    return value


def set_flag(args: list[str], flag: str, value: str) -> list[str]:
    """args with flag set to value (replacing every earlier occurrence)."""
    out: list[str] = []
    skip = False
    for index, token in enumerate(args):
        if skip:
            skip = False
            continue
        if token == flag:
            skip = index + 1 < len(args)
            continue
        if token.startswith(flag + "="):
            continue
        out.append(token)
    return out + [flag, value]


def check_scope(old_args: list[str], new_args: list[str], protected: dict[str, str]) -> None:
    """Refuse a change to any protected key (method, model, dataset, seq_len by default)."""
    changes = []
    for key, flag in protected.items():
        before, after = flag_value(old_args, flag), flag_value(new_args, flag)
        if before != after:
            changes.append(f"{key} ({flag} {before!r} -> {after!r})")
    if changes:
        raise GuardError(
            "scope change refused: the retry would change " + ", ".join(changes) + "; that changes "
            "what the experiment tests, so only the human may decide it",
            hint="ask the human (AskUserQuestion) whether to change it; if they agree, edit the plan's "
                 "arms and run `rstack run` again as a new run")


# --------------------------------------------------------------------------------------------
# Bounded retry

_FLAG_IN_SOURCE = re.compile(r"""["'](--[A-Za-z0-9][A-Za-z0-9_-]*)["']""")


def flags_in_source(source: str) -> set[str]:
    """Long flags a script declares (argparse/click string literals); read, never executed."""
    return set(_FLAG_IN_SOURCE.findall(source))


@dataclass(frozen=True)
class RetryPlan:
    """What the next attempt runs with, and the one-line change a ledger `run.retry` records."""

    args: list[str]
    gpu: str | None
    change: str
    policy: str


def _number_text(value: float) -> str:
    text = f"{value:.6g}"
    return text


def plan_retry(*, category: str, policy: str | None, attempt: int, max_retries: int,
               args: list[str], script_flags: set[str], profile: str, gpu: str | None,
               oom_rung: int, protected: dict[str, str], hint: str = "") -> RetryPlan:
    """The minimal fix for the failure `category` after `attempt` (1-based) failed, or refuse.

    policy is the category's `retry` in rstack.incidents (None: a code/config fault). oom_rung is
    1 for the first OOM retry of this run, 2 for the second, 3 for the third.
    """
    if attempt > max_retries:
        raise GuardError(
            f"bounded retry: the run failed {attempt} time(s) ({category}); max_retries is "
            f"{max_retries}, so it is not retried again",
            hint=hint or "read results/<run-id>/stdout.log, fix the cause, then rstack run again")
    if policy is None:
        raise GuardError(
            f"bounded retry: {category} is a code or configuration fault; running the same thing "
            "again would fail the same way, so it is not retried",
            hint=hint or "fix the script or the plan, then rstack run again")
    new_args, new_gpu = list(args), gpu
    if policy == "same":
        change = "none (transient infrastructure failure: same run again)"
    elif policy == "lower-lr":
        lr = flag_value(args, "--lr")
        if "--lr" not in script_flags or lr is None:
            raise GuardError(
                f"bounded retry: {category} calls for a lower learning rate, but "
                + ("the script has no --lr flag" if "--lr" not in script_flags
                   else "the run does not set --lr, so its current value is unknown"),
                hint="give the script an --lr flag and set it in the plan's arms, or fix the "
                     "instability by hand")
        try:
            lowered = float(lr) * 0.1
        except ValueError:
            raise GuardError(f"bounded retry: --lr {lr!r} is not a number",
                             hint="set --lr to a number in the plan's arms") from None
        new_args = set_flag(args, "--lr", _number_text(lowered))
        change = f"--lr {lr} -> {_number_text(lowered)}"
    elif policy == "oom-ladder":
        batch = flag_value(args, "--batch-size")
        can_halve = ("--batch-size" in script_flags and batch is not None
                     and batch.isdigit() and int(batch) >= 2)
        if oom_rung <= 2 and can_halve:
            half = int(batch) // 2
            new_args = set_flag(args, "--batch-size", str(half))
            change = f"--batch-size {batch} -> {half}"
            if "--grad-accum" in script_flags:
                accum = flag_value(args, "--grad-accum") or "1"
                if accum.isdigit():
                    new_args = set_flag(new_args, "--grad-accum", str(int(accum) * 2))
                    change += f", --grad-accum {accum} -> {int(accum) * 2}"
        else:
            from .costs import next_gpu_tier

            bigger = next_gpu_tier(profile, gpu) if profile in ("modal", "vastai") else None
            if bigger is None:
                why = ("the script has no --batch-size flag, or the run does not set it"
                       if not can_halve and oom_rung <= 2 else "batch size was halved twice already")
                where = (f"and there is no larger GPU after {gpu!r} on {profile}"
                         if profile in ("modal", "vastai") else f"and the {profile} profile has no "
                         "GPU tier to move up to")
                raise GuardError(
                    f"bounded retry: out of memory; the OOM ladder is exhausted: {why}, {where}",
                    hint="lower memory use in the script (smaller model/batch, gradient "
                         "checkpointing) or ask the human for a larger machine")
            new_gpu = bigger
            change = f"gpu {gpu} -> {bigger}"
    else:
        raise GuardError(f"bounded retry: unknown retry policy {policy!r} for {category}")
    if new_args == args and new_gpu == gpu and policy != "same":
        raise GuardError(f"bounded retry: the fix for {category} changes nothing; an identical "
                         "retry is refused", hint=hint or "fix the cause by hand")
    check_scope(args, new_args, protected)
    return RetryPlan(args=new_args, gpu=new_gpu, change=change, policy=policy)


# --------------------------------------------------------------------------------------------
# Vast.ai instance teardown


def check_destroy(*, instance_id: str, run_ids: list[str], verified: set[str], keep: bool) -> None:
    """Destroy an instance only after every run on it has its artifacts verified locally."""
    if keep:
        raise GuardError(f"instance {instance_id} is kept (--keep-instance); it keeps billing",
                         hint=f"destroy it when done: vastai destroy instance {instance_id}")
    missing = [run_id for run_id in run_ids if run_id not in verified]
    if missing:
        raise GuardError(
            f"instance {instance_id} not destroyed: {len(missing)} run(s) have no locally verified "
            f"artifacts yet ({', '.join(missing)}); destroying it now could lose their results",
            hint=f"rstack run --resume to fetch them, then: vastai destroy instance {instance_id}")
