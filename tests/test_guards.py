"""Guards: every rule, every refusal message."""

from __future__ import annotations

import pytest

from rstack import guards
from rstack.guards import GuardError
from rstack.incidents import INCIDENTS
from rstack.ledger import Ledger
from rstack.plan import DEFAULT_PROTECTED

SHA = "a" * 64
OTHER = "b" * 64


def pf(sha, verdict):
    return {"type": "preflight", "script_sha256": sha, "verdict": verdict}


# ---- preflight gate

def test_preflight_local_never_gated():
    guards.check_preflight(profile="local", script="train.py", script_sha256=SHA, records=[])


@pytest.mark.parametrize("profile", ["ssh", "vastai", "modal"])
def test_preflight_pass_of_this_version_allows(profile):
    guards.check_preflight(profile=profile, script="train.py", script_sha256=SHA,
                           records=[pf(OTHER, "FAIL"), pf(SHA, "PASS")])


def test_preflight_missing_refused():
    with pytest.raises(GuardError) as info:
        guards.check_preflight(profile="modal", script="train.py", script_sha256=SHA,
                               records=[pf(OTHER, "PASS")])
    assert info.value.message == (
        "preflight gate: train.py (sha256 aaaaaaaaaaaa) may not run on the modal profile: no "
        "preflight of this version is in the ledger; paid and remote runs use only a version that "
        "passed preflight")
    assert info.value.hint.startswith("rstack preflight train.py")


def test_preflight_latest_fail_refused():
    with pytest.raises(GuardError, match="its latest preflight is FAIL"):
        guards.check_preflight(profile="ssh", script="t.py", script_sha256=SHA,
                               records=[pf(SHA, "PASS"), pf(SHA, "FAIL")])


def test_preflight_fail_from_args_no_run_uses_hides_no_pass():
    def with_args(verdict, args):
        return {**pf(SHA, verdict), "args": args}

    records = [pf(SHA, "PASS"), with_args("FAIL", ["--bogus"])]
    guards.check_preflight(profile="ssh", script="t.py", script_sha256=SHA, records=records,
                           arg_sets=[["--lr", "0.1"]])
    records.append(with_args("FAIL", ["--lr", "0.1"]))  # the args of the runs about to start
    with pytest.raises(GuardError) as info:
        guards.check_preflight(profile="ssh", script="t.py", script_sha256=SHA, records=records,
                               arg_sets=[["--lr", "0.1"]])
    assert "its latest preflight is FAIL (with args --lr 0.1)" in info.value.message
    assert info.value.hint.startswith("rstack preflight t.py -- --lr 0.1  (then run again")
    guards.check_preflight(profile="ssh", script="t.py", script_sha256=SHA, records=records,
                           arg_sets=[["--lr", "0.01"]])  # other runs: that FAIL is not theirs
    records.append(with_args("PASS", ["--lr", "0.1"]))
    guards.check_preflight(profile="ssh", script="t.py", script_sha256=SHA, records=records,
                           arg_sets=[["--lr", "0.1"]])
    # Only args no run uses: the newest verdict of any args decides, as before.
    only = [with_args("PASS", ["--steps", "5"]), with_args("FAIL", ["--bogus"])]
    assert not guards.preflight_passed(only, SHA)
    assert guards.preflight_passed(only[:1], SHA)


# ---- cost cap

def test_cost_cap_allows_up_to_cap():
    guards.check_cost_cap(4.0, 6.0, 10.0)
    guards.check_cost_cap(0.0, 0.0, 0.0)


def test_cost_cap_refuses_with_three_numbers():
    with pytest.raises(GuardError) as info:
        guards.check_cost_cap(4.0, 6.5, 10.0)
    assert info.value.message == ("cost cap: spent $4.00 + estimate $6.50 = $10.50 exceeds the cap "
                                  "$10.00; nothing was started")
    assert "execution.max_cost_usd" in info.value.hint


def test_gpu_hour_cap_refuses_with_the_numbers():
    guards.check_gpu_hours(1.0, 2.0, 0)  # 0 = no cap
    guards.check_gpu_hours(1.0, 2.0, 3.0)
    with pytest.raises(GuardError) as info:
        guards.check_gpu_hours(1.5, 2.0, 3.0)
    assert info.value.message == ("GPU-hour cap: spent 1.50 + requested 2.00 = 3.50 GPU-hours "
                                  "exceeds max_gpu_hours 3; nothing was submitted")
    assert "rstack config set max_gpu_hours N" in info.value.hint


def test_spent_sums_ledgered_costs(project):
    ledger = Ledger(project, "experiments")
    def finished(run_id, status, cost):
        return {"type": "run.finished", "run_id": run_id, "arm": "a", "seed": 0, "status": status,
                "exit_code": 0, "category": None, "hint": None, "metrics": None, "artifacts": [],
                "duration_s": 1.0, "cost_usd": cost}

    ledger.append(finished("a", "ok", 1.25))
    ledger.append(finished("b", "failed", 0.5))
    ledger.append(finished("c", "ok", 0))
    ledger.append({"type": "note", "text": "cost_usd 100"})
    assert guards.spent_usd(project) == 1.75


# ---- remote submit invariant

GOOD = dict(command=["python", "train.py", "--output-dir", "results/r1", "--seed", "0"],
            timeout_s=600, persistence="results/r1 + manifest", monitoring=True,
            local_roots=("/home/me/proj", "/home/me"))


def test_submit_ok():
    guards.check_remote_submit(**GOOD)


@pytest.mark.parametrize("change,expected", [
    ({"timeout_s": None}, "no timeout is set (a remote run without one can bill forever)"),
    ({"timeout_s": 0}, "no timeout is set"),
    ({"persistence": None}, "no artifact persistence is configured (results would die with the machine)"),
    ({"monitoring": False}, "monitoring is off (nobody would notice a dead or stuck run)"),
    ({"command": ["python", "/home/me/proj/train.py"]},
     "the command names a local absolute path '/home/me/proj/train.py'; use a path relative to the project root"),
    ({"command": ["python", "t.py", "--data=/home/me/data.csv"]},
     "the command names a local absolute path '/home/me/data.csv'"),
])
def test_submit_refusals(change, expected):
    with pytest.raises(GuardError) as info:
        guards.check_remote_submit(**{**GOOD, **change})
    assert info.value.message.startswith("remote submit refused: ")
    assert expected in info.value.message


def test_submit_allows_remote_absolute_paths():
    guards.check_remote_submit(**{**GOOD, "command": ["python", "t.py", "--data", "/datasets/x"]})


def test_submit_lists_every_problem():
    with pytest.raises(GuardError) as info:
        guards.check_remote_submit(**{**GOOD, "timeout_s": None, "monitoring": False})
    assert info.value.message.count(";") == 1


# ---- scope change

def test_flag_value_and_set_flag():
    args = ["--lr", "0.1", "--model=gpt", "--lr", "0.2"]
    assert guards.flag_value(args, "--lr") == "0.2"
    assert guards.flag_value(args, "--model") == "gpt"
    assert guards.flag_value(args, "--seq-len") is None
    assert guards.set_flag(args, "--lr", "0.01") == ["--model=gpt", "--lr", "0.01"]
    assert guards.set_flag(["--model=gpt"], "--model", "x") == ["--model", "x"]


def test_scope_unchanged_ok():
    guards.check_scope(["--model", "a", "--lr", "1"], ["--lr", "0.1", "--model=a"], DEFAULT_PROTECTED)


@pytest.mark.parametrize("old,new,expected", [
    (["--model", "a"], ["--model", "b"], "model (--model 'a' -> 'b')"),
    (["--dataset", "x"], [], "dataset (--dataset 'x' -> None)"),
    ([], ["--seq-len", "512"], "seq_len (--seq-len None -> '512')"),
    (["--method", "sgd"], ["--method=adam"], "method (--method 'sgd' -> 'adam')"),
])
def test_scope_change_refused(old, new, expected):
    with pytest.raises(GuardError) as info:
        guards.check_scope(old, new, DEFAULT_PROTECTED)
    assert info.value.message == (f"scope change refused: the retry would change {expected}; that "
                                  "changes what the experiment tests, so only the human may decide it")
    assert "ask the human" in info.value.hint


# ---- bounded retry

FLAGS = {"--lr", "--batch-size", "--grad-accum", "--model"}


def retry(**kw):
    base = dict(category="cuda-oom", policy="oom-ladder", attempt=1, max_retries=2,
                args=["--batch-size", "32", "--lr", "0.1"], script_flags=FLAGS, profile="modal",
                gpu="A10G", oom_rung=1, protected=DEFAULT_PROTECTED)
    base.update(kw)
    return guards.plan_retry(**base)


def test_registry_policies_are_what_the_guard_knows():
    assert {i.retry for i in INCIDENTS.values()} <= {None, "oom-ladder", "lower-lr", "same"}
    assert INCIDENTS["host-lost"].retry == "same" and INCIDENTS["crash"].retry is None


def test_oom_rung_1_halves_batch_and_doubles_accum():
    plan = retry()
    assert plan.args == ["--lr", "0.1", "--batch-size", "16", "--grad-accum", "2"]
    assert plan.change == "--batch-size 32 -> 16, --grad-accum 1 -> 2" and plan.gpu == "A10G"


def test_oom_rung_2_once_more():
    plan = retry(args=["--batch-size", "16", "--grad-accum", "2"], oom_rung=2, attempt=2)
    assert plan.args == ["--batch-size", "8", "--grad-accum", "4"]


def test_oom_without_grad_accum_flag_only_halves():
    plan = retry(script_flags={"--batch-size"})
    assert plan.change == "--batch-size 32 -> 16"


def test_oom_rung_3_next_gpu_tier_modal_and_vastai():
    plan = retry(oom_rung=3, attempt=2, max_retries=3)
    assert plan.gpu == "L40S" and plan.change == "gpu A10G -> L40S" and plan.args == [
        "--batch-size", "32", "--lr", "0.1"]
    assert retry(oom_rung=3, profile="vastai", gpu="RTX_4090").gpu == "RTX_A6000"


def test_oom_no_batch_flag_goes_to_gpu_tier():
    assert retry(script_flags={"--lr"}).gpu == "L40S"


def test_oom_ladder_exhausted_local():
    with pytest.raises(GuardError) as info:
        retry(oom_rung=3, profile="local", gpu=None)
    assert info.value.message == ("bounded retry: out of memory; the OOM ladder is exhausted: batch "
                                  "size was halved twice already, and the local profile has no GPU "
                                  "tier to move up to")


def test_oom_ladder_exhausted_top_gpu():
    with pytest.raises(GuardError, match="there is no larger GPU after 'B200' on modal"):
        retry(oom_rung=3, gpu="B200")


def test_oom_ladder_no_batch_flag_local():
    with pytest.raises(GuardError, match="the script has no --batch-size flag, or the run does not set it"):
        retry(args=["--lr", "1"], profile="local", gpu=None)


def test_divergence_lowers_lr():
    plan = retry(category="divergence", policy="lower-lr", args=["--lr", "0.3"])
    assert plan.args == ["--lr", "0.03"] and plan.change == "--lr 0.3 -> 0.03"


def test_divergence_without_lr_flag_refused():
    with pytest.raises(GuardError) as info:
        retry(category="divergence", policy="lower-lr", script_flags=set(), args=[])
    assert info.value.message == ("bounded retry: divergence calls for a lower learning rate, but "
                                  "the script has no --lr flag")


def test_divergence_lr_not_set_refused():
    with pytest.raises(GuardError, match="the run does not set --lr, so its current value is unknown"):
        retry(category="divergence", policy="lower-lr", args=[])


def test_divergence_lr_not_number():
    with pytest.raises(GuardError, match="bounded retry: --lr 'fast' is not a number"):
        retry(category="divergence", policy="lower-lr", args=["--lr", "fast"])


def test_transient_same_run():
    plan = retry(category="host-lost", policy="same")
    assert plan.args == ["--batch-size", "32", "--lr", "0.1"] and plan.gpu == "A10G"
    assert plan.change.startswith("none")


@pytest.mark.parametrize("category", [c for c, i in INCIDENTS.items() if i.retry is None])
def test_code_faults_never_retried(category):
    with pytest.raises(GuardError) as info:
        retry(category=category, policy=None, hint="fix it")
    assert info.value.message == (f"bounded retry: {category} is a code or configuration fault; "
                                  "running the same thing again would fail the same way, so it is "
                                  "not retried")
    assert info.value.hint == "fix it"


def test_max_retries_bound():
    retry(attempt=2, max_retries=2)
    with pytest.raises(GuardError) as info:
        retry(attempt=3, max_retries=2, category="host-lost", policy="same")
    assert info.value.message == ("bounded retry: the run failed 3 time(s) (host-lost); max_retries "
                                  "is 2, so it is not retried again")
    with pytest.raises(GuardError, match="max_retries is 0"):
        retry(max_retries=0)


def test_unknown_policy():
    with pytest.raises(GuardError, match="unknown retry policy 'reboot'"):
        retry(policy="reboot")


def test_retry_never_touches_protected_flags():
    # A fix that would change a protected flag is refused even when it is the ladder's step.
    protected = {**DEFAULT_PROTECTED, "lr": "--lr"}
    with pytest.raises(GuardError, match=r"scope change refused: the retry would change lr \(--lr '0.3' -> '0.03'\)"):
        retry(category="divergence", policy="lower-lr", args=["--lr", "0.3"], protected=protected)


def test_flags_in_source():
    src = 'p.add_argument("--lr", type=float)\np.add_argument(\'--batch-size\')\nx = "-v"\n'
    assert guards.flags_in_source(src) == {"--lr", "--batch-size"}


# ---- instance teardown

def test_destroy_after_all_verified():
    guards.check_destroy(instance_id="42", run_ids=["a", "b"], verified={"a", "b"}, keep=False)


def test_destroy_refused_unverified():
    with pytest.raises(GuardError) as info:
        guards.check_destroy(instance_id="42", run_ids=["a", "b"], verified={"a"}, keep=False)
    assert info.value.message == ("instance 42 not destroyed: 1 run(s) have no locally verified "
                                  "artifacts yet (b); destroying it now could lose their results")


def test_destroy_refused_keep():
    with pytest.raises(GuardError, match=r"instance 42 is kept \(--keep-instance\); it keeps billing"):
        guards.check_destroy(instance_id="42", run_ids=[], verified=set(), keep=True)
