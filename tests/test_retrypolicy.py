"""retrypolicy.decide: which proposed retries keep an arm's design."""

from rstack.guards import RetryPlan
from rstack.retrypolicy import ADJUST_ARM, REFUSE, RETRY, changed_flags, decide


def test_same_args_and_bigger_gpu_are_retried():
    assert decide(RetryPlan(["--lr", "0.1"], None, "none", "same"), ["--lr", "0.1"],
                  arm="a").action == RETRY
    assert decide(RetryPlan(["--lr", "0.1"], "A100", "gpu T4 -> A100", "oom-ladder"),
                  ["--lr", "0.1"], arm="a").action == RETRY


def test_oom_ladder_with_accumulation_keeps_the_effective_batch():
    old = ["--batch-size", "32", "--lr", "0.1"]
    plan = RetryPlan(["--batch-size", "16", "--lr", "0.1", "--grad-accum", "2"], None,
                     "--batch-size 32 -> 16, --grad-accum 1 -> 2", "oom-ladder")
    decision = decide(plan, old, arm="a")
    assert decision.action == RETRY and decision.grad_accum == 2
    halved = RetryPlan(["--batch-size", "16", "--lr", "0.1"], None, "--batch-size 32 -> 16",
                       "oom-ladder")
    refused = decide(halved, old, arm="a")
    assert refused.action == REFUSE and "effective batch" in refused.message


def test_lr_change_refused_unless_the_arm_opts_in():
    plan = RetryPlan(["--lr", "0.01"], None, "--lr 0.1 -> 0.01", "lower-lr")
    refused = decide(plan, ["--lr", "0.1"], arm="ls", category="divergence", hint="lower it")
    assert refused.action == REFUSE
    assert refused.message == (
        "design-changing retry refused: the fix for divergence (--lr 0.1 -> 0.01) changes the "
        "arm's design, and one seed of arm ls would then differ from the others in --lr; change "
        "it in the plan for every seed and rstack run again, or set execution.arms.ls.retry: "
        "adjust to re-run the whole arm with the adjusted value (lower it)")
    assert decide(plan, ["--lr", "0.1"], arm="ls", arm_retry="adjust").action == ADJUST_ARM


def test_changed_flags():
    assert changed_flags(["--lr", "0.1", "--bs", "8"], ["--lr", "0.01", "--bs", "8"]) == ["--lr"]
    assert changed_flags(["--lr=0.1"], ["--lr=0.1", "--x", "1"]) == ["--x"]
