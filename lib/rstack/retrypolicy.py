"""Which retries `rstack run` may make: never one that changes an arm's design behind the
researcher's back.

guards.plan_retry proposes the smallest fix for a failure; this module decides whether that fix
keeps the arm's design. A retry with the same args (a transient failure, a larger GPU) keeps
it; so does the OOM ladder's smaller micro-batch when gradient accumulation keeps the effective
batch. Any other change of an argument (a lower --lr after a divergence) would leave one seed of
the arm with another design: it is refused, unless the plan opts the arm in with `retry: adjust`,
and then every seed of the arm is re-run with the adjusted args as a new arm version.
It never runs anything and never writes the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from .guards import RetryPlan, flag_value

RETRY = "retry"  # same design: run the failed seed again with plan.args
REFUSE = "refuse"
ADJUST_ARM = "adjust-arm"  # the arm's args change for every seed: a new arm version


@dataclass(frozen=True)
class RetryDecision:
    action: str
    message: str = ""
    grad_accum: int | None = None  # the accumulation factor a design-preserving OOM retry uses


def changed_flags(old: list[str], new: list[str]) -> list[str]:
    """The flags whose value differs between two arg lists (in the order of `new`)."""
    flags = [a.split("=", 1)[0] for a in [*new, *old] if a.startswith("-")]
    seen: list[str] = []
    for flag in flags:
        if flag not in seen and flag_value(old, flag) != flag_value(new, flag):
            seen.append(flag)
    return seen


def _effective_batch(args: list[str]) -> int | None:
    batch, accum = flag_value(args, "--batch-size"), flag_value(args, "--grad-accum") or "1"
    if batch is None or not batch.isdigit() or not accum.isdigit():
        return None
    return int(batch) * int(accum)


def same_design(a: list[str] | tuple[str, ...], b: list[str] | tuple[str, ...]) -> bool:
    """Equal args, or a design-preserving OOM retry of them (same effective batch)."""
    changed = changed_flags(list(a), list(b))
    if not changed:
        return True
    return (set(changed) <= {"--batch-size", "--grad-accum"}
            and _effective_batch(list(a)) is not None
            and _effective_batch(list(a)) == _effective_batch(list(b)))


def decide(plan: RetryPlan, old_args: list[str], *, arm: str, arm_retry: str = "refuse",
           category: str = "", hint: str = "") -> RetryDecision:
    """Keep, refuse or widen (to the whole arm) the retry `plan` proposes for one failed run."""
    if plan.args == old_args:
        return RetryDecision(RETRY)
    changed = changed_flags(old_args, plan.args)
    if plan.policy == "oom-ladder" and set(changed) <= {"--batch-size", "--grad-accum"}:
        before, after = _effective_batch(old_args), _effective_batch(plan.args)
        if before is not None and before == after:
            return RetryDecision(RETRY, grad_accum=int(flag_value(plan.args, "--grad-accum")))
    if arm_retry == "adjust":
        return RetryDecision(ADJUST_ARM, f"arm {arm} opts in to retry: adjust; every seed is "
                             f"re-run with {plan.change} (a new version of the arm)")
    what = ("the effective batch (the script has no --grad-accum flag to keep it)"
            if plan.policy == "oom-ladder" else "the arm's design")
    message = (f"design-changing retry refused: the fix for {category or plan.policy} "
               f"({plan.change}) changes {what}, and one seed of arm {arm} would then differ "
               f"from the others in {', '.join(changed)}")
    fix = (f"change it in the plan for every seed and rstack run again, or set "
           f"execution.arms.{arm}.retry: adjust to re-run the whole arm with the adjusted value")
    return RetryDecision(REFUSE, message + "; " + fix + (f" ({hint})" if hint else ""))
