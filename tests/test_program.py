"""rstack program: program.md, baseline, trials decided beyond the noise, guards, knowledge base,
status/log/plot, macros. Real git repositories and a real numpy train.py with seed noise."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from program_fixtures import commit_candidate, git, make_project, preflight, set_constants

from rstack.ledger import Ledger
from rstack.program import decide
from rstack.program.kb import KnowledgeBase
from rstack.program.spec import ProgramError, load_program, parse_program
from rstack.program.trial import run_baseline, run_trial

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy(tmp_path, monkeypatch):
    root = make_project(tmp_path / "toy")
    monkeypatch.chdir(root)
    monkeypatch.setenv("RSTACK_PROJECT", str(root))
    return root


@pytest.fixture
def based(toy):
    run_baseline(toy, echo=lambda text: None)
    return toy


def quiet(text: str) -> None:
    pass


# --------------------------------------------------------------------------------------------
# program.md

GOOD = """---
name: toy
objective: {metric: val_loss, direction: minimize}
accept: {min_effect: 0.002}
trial: {script: train.py, args: [], seeds: [0, 1, 2], timeout_s: 300, profile: local}
confirm: {seeds: [100, 101, 102]}
scope: {editable: [train.py], protected: {model: --model}}
budget: {max_trials: 50, max_cost_usd: 10, max_hours: 8}
baseline: main
---
prose
"""


def test_the_issue_example_parses():
    program = parse_program(GOOD, path=Path("program.md"))
    assert (program.metric, program.direction, program.min_effect) == ("val_loss", "minimize", 0.002)
    assert program.seeds == [0, 1, 2] and program.confirm_seeds == [100, 101, 102]
    assert program.protected == {"model": "--model"} and program.baseline == "main"
    assert program.alpha == 0.05 and program.max_trials == 50


BAD = [
    ("objective: {metric: val_loss, direction: minimize}",
     "objective: {metric: val_loss, direction: lower}",
     "program.md: objective.direction: must be one of minimize, maximize, got 'lower' (line 3)"),
    ("confirm: {seeds: [100, 101, 102]}", "confirm: {seeds: [2, 101, 102]}",
     "program.md: confirm.seeds: must be fresh seeds, but [2] are also trial seeds (a "
     "confirmation on the same seeds confirms nothing) (line 6)"),
    ("seeds: [0, 1, 2]", "seeds: [0, 1]",
     "program.md: trial.seeds: needs at least 3 seeds (an interval of the difference needs "
     "them), got 2 (line 5)"),
    ("accept: {min_effect: 0.002}", "accept: {min_effect: -1}",
     "program.md: accept.min_effect: must be a number >= 0, got -1 (line 4)"),
    ("baseline: main", "baseline: main\nextra: 1",
     "program.md: extra: unknown key; keys: name, objective, accept, trial, confirm, scope, "
     "budget, baseline (line 10)"),
    ("scope: {editable: [train.py], protected: {model: --model}}", "",
     "program.md: scope: missing section (keys: editable, protected)"),
    ("args: []", "args: [--seed, '3']",
     "program.md: trial.args: --seed is set by rstack for every run; remove it (line 5)"),
    ("budget: {max_trials: 50,", "budget: {max_trials: 0,",
     "program.md: budget.max_trials: must be an integer >= 1, got 0 (line 8)"),
    # The seed range the plan and `rstack run --seeds` allow (a 46-digit seed is never ledgered:
    # the baseline stopped after its first runs).
    ("seeds: [0, 1, 2]", "seeds: [0, 1, " + "1" + "0" * 45 + "]",
     "program.md: trial.seeds: must be a list of integers from 0 to 4294967295, got "
     "a list (line 5)"),
]


@pytest.mark.parametrize("old,new,message", BAD)
def test_check_names_every_problem_with_its_line(project, cli, old, new, message):
    (project / "program.md").write_text(GOOD.replace(old, new))
    result = cli("program", "check")
    assert result.exit_code == 1
    assert message in result.output
    assert "fix: fix each line named above, then: rstack program check" in result.output


def test_check_without_a_program_says_how_to_write_one(project, cli):
    result = cli("program", "check")
    assert result.exit_code == 1
    assert "program.md: no program file" in result.output
    assert "fix: rstack program init" in result.output


def test_init_writes_a_valid_commented_program_and_never_overwrites(project, cli):
    result = cli("program", "init", "--name", "mlp", "--min-effect", "0.01", "--seeds", "0,1,2,3")
    assert result.exit_code == 0, result.output
    text = (project / "program.md").read_text()
    assert "# KEEP only when the improvement's 95% lower bound exceeds this" in text
    program = load_program(project)
    assert (program.name, program.min_effect, program.seeds) == ("mlp", 0.01, [0, 1, 2, 3])
    checked = cli("program", "check", "--json")
    assert json.loads(checked.stdout)["objective"] == {"metric": "val_loss", "direction": "minimize"}
    again = cli("program", "init")
    assert again.exit_code == 1
    assert "program.md already exists; nothing was written" in again.output


# --------------------------------------------------------------------------------------------
# The decision rule (compare's interval, applied)


def test_rule_keeps_only_beyond_min_effect():
    assert decide.rule(0.02, 0.05, 0.01) == "KEEP"
    assert decide.rule(-0.01, 0.009, 0.01) == "DISCARD"
    assert decide.rule(0.0, 0.05, 0.01) == "INCONCLUSIVE"
    assert decide.rule(None, None, 0.01) == "INCONCLUSIVE"
    assert decide.combine([]) == "INCONCLUSIVE"


def test_false_keeps_on_noise_only_candidates_stay_within_alpha():
    """800 candidates whose code changes only the seed noise: with min_effect 0 one stage may
    keep at most alpha/2 of them (the lower bound of a two-sided 95% interval); the loop's two
    stages (trial seeds, then fresh confirm seeds) keep about (alpha/2)^2."""
    rng = random.Random(7)
    one_stage = two_stage = 0
    trials = 800
    for _ in range(trials):
        def noisy(seeds):
            return {s: 1.0 + rng.gauss(0, 0.05) for s in seeds}
        first = decide.compare_stage("trial", noisy([0, 1, 2]), noisy([0, 1, 2]),
                                     direction="minimize", min_effect=0.0, alpha=0.05)
        one_stage += first.verdict == "KEEP"
        if first.verdict == "KEEP":
            second = decide.compare_stage("confirm", noisy([5, 6, 7]), noisy([5, 6, 7]),
                                          direction="minimize", min_effect=0.0, alpha=0.05)
            two_stage += decide.combine([first, second]) == "KEEP"
    expected = trials * 0.025
    # a binomial count exceeds its mean by 4 standard deviations with probability < 1e-4
    assert one_stage <= expected + 4 * (expected * 0.975) ** 0.5
    assert two_stage <= 5


def test_a_real_effect_is_kept_by_the_rule():
    rng = random.Random(3)
    champion = {s: 1.0 + rng.gauss(0, 0.01) for s in range(3)}
    candidate = {s: v - 0.1 + rng.gauss(0, 0.01) for s, v in champion.items()}
    stage = decide.compare_stage("trial", candidate, champion, direction="minimize",
                                 min_effect=0.01, alpha=0.05)
    assert stage.verdict == "KEEP" and stage.improvement_low > 0.01


# --------------------------------------------------------------------------------------------
# Baseline and trials on a real repository


def test_baseline_is_champion_zero_with_noise_and_tagged_runs(toy, cli):
    result = cli("program", "baseline", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "BASELINE" and data["trial"] == 0 and data["champion_after"] == 0
    kb = KnowledgeBase.read(toy, "toy")
    assert kb.champion["champion"] == 0 and kb.champion["commit"] == git(toy, "rev-parse", "HEAD")
    assert git(toy, "rev-parse", "refs/rstack/champion") == kb.champion["commit"]
    assert kb.baseline["noise_sd"] > 0 and kb.baseline["detectable"] > 0
    started = Ledger(toy, "experiments").records("run.started")
    assert len(started) == 3
    assert {r["seed"] for r in started} == {0, 1, 2}
    assert all(r["tags"]["program"] == "toy" and r["tags"]["trial"] == 0 for r in started)
    again = cli("program", "baseline")
    assert again.exit_code == 1
    assert "program 'toy' already has its baseline (champion 0, trial 0)" in again.output


def test_baseline_warns_when_min_effect_is_below_what_the_seeds_can_detect(tmp_path, monkeypatch,
                                                                            cli):
    root = make_project(tmp_path / "tiny", min_effect=0.0)
    monkeypatch.setenv("RSTACK_PROJECT", str(root))
    result = cli("program", "baseline")
    assert result.exit_code == 0
    assert "warning: accept.min_effect 0 is below the smallest effect 3 trial seeds can detect" \
        in result.output


def test_noise_only_candidate_is_not_kept_and_real_effect_is(based, cli):
    commit_candidate(based, "seed offset", SEED_OFFSET=11)
    noise = cli("program", "trial", "-m", "new seed offset", "--json")
    assert noise.exit_code == 0, noise.output
    data = json.loads(noise.stdout)
    assert data["verdict"] in ("DISCARD", "INCONCLUSIVE")
    assert data["champion_after"] == data["champion_before"] == 0
    assert data["reset_command"] == "git reset --hard refs/rstack/champion"
    for key in ("verdict", "trial", "champion_before", "champion_after", "metric", "direction",
                "diff", "ci_low", "ci_high", "min_effect", "n", "runs"):
        assert key in data
    assert git(based, "rev-parse", "refs/rstack/champion") == KnowledgeBase.read(
        based, "toy").champion["commit"]

    head = commit_candidate(based, "more steps", STEPS=25)
    kept = cli("program", "trial", "-m", "25 steps")
    assert kept.exit_code == 0, kept.output
    assert "trial 2: KEEP" in kept.output
    assert "champion #0 -> #1" in kept.output
    kb = KnowledgeBase.read(based, "toy")
    assert kb.champion["champion"] == 1 and kb.champion["commit"] == head
    assert git(based, "rev-parse", "refs/rstack/champion") == head
    record = kb.trial(2)
    assert [s["name"] for s in record["stages"]] == ["trial", "confirm"]
    assert record["impact"] > 0.005 and record["diff"] < 0
    # the champion (the baseline) was re-run on the confirm seeds, tagged as the champion's code
    champion_runs = [r for r in Ledger(based, "experiments").records("run.started")
                     if r["tags"]["role"] == "champion"]
    assert sorted(r["seed"] for r in champion_runs) == [100, 101, 102]
    assert all(r["script"].startswith(".rstack/program/trees/") for r in champion_runs)


def test_reset_returns_the_tree_to_the_champion(based, cli):
    champion = git(based, "rev-parse", "refs/rstack/champion")
    candidate = commit_candidate(based, "tiny bonus", BONUS=0.0001)
    result = cli("program", "trial", "--reset")
    assert result.exit_code == 0, result.output
    assert "back to the champion: git reset --hard refs/rstack/champion" in result.output
    assert git(based, "rev-parse", "HEAD") == champion
    assert git(based, "rev-parse", "refs/rstack/trials/1") == candidate  # still reachable


def test_duplicate_code_is_refused_even_as_a_new_commit(based, cli):
    commit_candidate(based, "offset 3", SEED_OFFSET=3)
    assert cli("program", "trial").exit_code == 0
    verdict = KnowledgeBase.read(based, "toy").trial(1)["verdict"]
    commit_candidate(based, "offset 5", SEED_OFFSET=5, check=False)
    commit_candidate(based, "offset 3 again", SEED_OFFSET=3, check=False)
    result = cli("program", "trial")
    assert result.exit_code == 1
    assert f"was already tried as trial 1: {verdict}; nothing was run" in result.output
    git(based, "reset", "-q", "--hard", "refs/rstack/champion")
    same = cli("program", "trial")
    assert same.exit_code == 1
    assert "was already tried as the baseline; nothing was run" in same.output
    assert len(KnowledgeBase.read(based, "toy").candidates) == 1


def test_a_trial_while_another_holds_the_run_lock_is_refused(based, cli):
    # Two `program trial`s at once both read "next trial 1, not tried yet" and both recorded
    # trial 1 and champion #1: a trial (and a baseline) holds the project's run lock.
    from rstack.runlock import run_lock

    commit_candidate(based, "offset 3", SEED_OFFSET=3)
    runs_before = Ledger(based, "experiments").read().records
    with run_lock(based, what="rstack program trial"):
        result = cli("program", "trial")
    assert result.exit_code == 1
    assert "another `rstack program trial` is running in this project" in result.output
    assert Ledger(based, "experiments").read().records == runs_before
    assert len(KnowledgeBase.read(based, "toy").candidates) == 0
    assert cli("program", "trial").exit_code == 0


def test_scope_violation_is_refused(based, cli):
    set_constants(based, STEPS=30)
    (based / "README.md").write_text("changed\n")
    git(based, "commit", "-qam", "steps and readme")
    preflight(based)
    result = cli("program", "trial")
    assert result.exit_code == 1
    assert ("scope: the candidate changed 1 file(s) outside scope.editable (README.md); a trial "
            "may change only train.py") in result.output
    assert "fix: restore them: git checkout refs/rstack/champion -- README.md" in result.output
    assert KnowledgeBase.read(based, "toy").candidates == []


def test_protected_flag_change_is_refused(based, cli):
    text = (based / "program.md").read_text().replace("args: []", "args: [--model, mlp]")
    (based / "program.md").write_text(text)
    set_constants(based, STEPS=30)
    git(based, "commit", "-qam", "model")
    preflight(based)
    result = cli("program", "trial")
    assert result.exit_code == 1
    assert "scope: trial.args change a protected key: model (--model None -> 'mlp')" in result.output


def test_uncommitted_and_unpreflighted_candidates_are_refused(based, cli):
    set_constants(based, STEPS=30)
    dirty = cli("program", "trial")
    assert dirty.exit_code == 1
    assert "the tree has uncommitted changes (train.py); a trial runs HEAD" in dirty.output
    git(based, "commit", "-qam", "30 steps")
    unchecked = cli("program", "trial")
    assert unchecked.exit_code == 1
    assert "has no standing PASS (no preflight of this version)" in unchecked.output
    assert "fix: rstack preflight train.py, then rstack program trial" in unchecked.output


def test_trial_before_baseline_is_refused(toy, cli):
    result = cli("program", "trial")
    assert result.exit_code == 1
    assert "program 'toy' has no champion yet; the baseline comes first" in result.output


def test_a_crashing_candidate_is_recorded_failed_and_the_champion_stays(based, cli):
    champion = git(based, "rev-parse", "refs/rstack/champion")
    text = (based / "train.py").read_text().replace(
        "    val_loss = float(", "    if not args.smoke_test:\n        raise SystemExit(3)\n"
        "    val_loss = float(")
    (based / "train.py").write_text(text)
    git(based, "commit", "-qam", "crash")
    preflight(based)
    result = cli("program", "trial", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "FAILED" and data["champion_after"] == 0
    assert "failed" in data["reason"]
    assert git(based, "rev-parse", "refs/rstack/champion") == champion


def _kill_tree(pid: int) -> None:
    import psutil

    for proc in psutil.process_iter(["pid", "environ"]):
        try:
            if (proc.info["environ"] or {}).get("RSTACK_PROJECT_TEST_MARK") == str(pid):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def test_killed_mid_trial_leaves_the_ledger_consistent_and_the_champion_unmoved(based):
    champion = git(based, "rev-parse", "refs/rstack/champion")
    text = (based / "train.py").read_text().replace(
        "    val_loss = float(", "    if not args.smoke_test:\n        import time\n"
        "        time.sleep(60)\n    val_loss = float(")
    (based / "train.py").write_text(text)
    git(based, "commit", "-qam", "slow")
    preflight(based)
    mark = str(os.getpid())
    env = {**os.environ, "RSTACK_PROJECT": str(based), "RSTACK_PROJECT_TEST_MARK": mark}
    proc = subprocess.Popen([str(REPO / "bin" / "rstack"), "program", "trial", "-m", "slow"],
                            cwd=based, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = [r for r in Ledger(based, "experiments").records("run.started")
                       if r["tags"]["trial"] == 1]
            if started:
                break
            time.sleep(0.1)
        assert started, "the trial never started a run"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_tree(int(mark))
    program_ledger = Ledger(based, "program").read()
    assert program_ledger.damage == []
    kb = KnowledgeBase.read(based, "toy")
    assert kb.candidates == [] and kb.champion["champion"] == 0
    assert git(based, "rev-parse", "refs/rstack/champion") == champion
    assert Ledger(based, "experiments").read().damage == []


def test_cost_cap_stops_the_loop(tmp_path, monkeypatch):
    """A paid runner is the edge we cannot reach: the local runner billing $0.50 a run."""
    from rstack.runners.local import LocalRunner

    class Billed(LocalRunner):
        def launch(self, spec, *, on_line=None):
            raw = super().launch(spec, on_line=on_line)
            raw.cost_usd = 0.5
            return raw

    root = make_project(tmp_path / "paid", max_cost_usd=3.0)
    monkeypatch.setenv("RSTACK_PROJECT", str(root))
    factory = lambda: Billed(root, jobs=3)  # noqa: E731
    run_baseline(root, runner_factory=factory, echo=quiet)  # $1.50
    commit_candidate(root, "offset", SEED_OFFSET=9)
    first = run_trial(root, runner_factory=factory, echo=quiet)  # $1.50 or more
    assert first.record["cost_usd"] >= 1.5
    commit_candidate(root, "offset 2", SEED_OFFSET=10)
    with pytest.raises(ProgramError) as refused:
        run_trial(root, runner_factory=factory, echo=quiet)
    assert "budget: cost cap: spent $3.00" in refused.value.message
    assert "exceeds budget.max_cost_usd $3.00; no trial was started" in refused.value.message
    assert len(KnowledgeBase.read(root, "toy").candidates) == 1


def test_trial_cap_stops_the_loop(tmp_path, monkeypatch, cli):
    root = make_project(tmp_path / "capped", max_trials=1)
    monkeypatch.setenv("RSTACK_PROJECT", str(root))
    run_baseline(root, echo=quiet)
    commit_candidate(root, "offset", SEED_OFFSET=9)
    assert cli("program", "trial").exit_code == 0
    commit_candidate(root, "offset 2", SEED_OFFSET=10)
    result = cli("program", "trial")
    assert result.exit_code == 1
    assert "budget: 1 of 1 trials run (budget.max_trials); no trial was started" in result.output


def test_many_noise_candidates_on_real_runs_are_never_kept(based):
    kept = []
    for offset in range(1, 9):
        commit_candidate(based, f"offset {offset}", SEED_OFFSET=100 * offset)
        result = run_trial(based, hypothesis=f"seed offset {offset}", echo=quiet)
        kept += [offset] if result.verdict == "KEEP" else []
    assert kept == []
    assert KnowledgeBase.read(based, "toy").counts()["trials"] == 8


# --------------------------------------------------------------------------------------------
# status, log, plot, macros


def test_status_log_plot_and_macros(based, cli):
    commit_candidate(based, "offset", SEED_OFFSET=5)
    run_trial(based, hypothesis="seed offset", echo=quiet)
    commit_candidate(based, "steps", STEPS=25)
    run_trial(based, hypothesis="25 steps", echo=quiet)

    status = json.loads(cli("program", "status", "--json").stdout)
    assert status["champion"]["trial"] == 2 and status["champion"]["metric"] == "val_loss"
    assert status["counts"]["trials"] == 2 and status["counts"]["kept"] == 1
    assert status["budget"]["trials_left"] == 48
    assert status["improvement"]["seeds"] == "confirm" and status["improvement"]["improvement_low"] > 0
    human = cli("program", "status").output
    assert "champion #1 (trial 2" in human and "trials: 2 run, 1 kept" in human

    log = cli("program", "log").output.splitlines()
    assert log[0].startswith("#0   BASELINE") and log[2].startswith("#2   KEEP")
    assert "25 steps" in log[2]
    rows = json.loads(cli("program", "log", "--json").stdout)["trials"]
    assert [r["trial"] for r in rows] == [0, 1, 2]

    plotted = cli("program", "plot", "--json")
    assert plotted.exit_code == 0, plotted.output
    files = json.loads(plotted.stdout)["files"]
    assert [Path(f).suffix for f in files] == [".pdf", ".png"]
    assert all(Path(f).stat().st_size > 1000 for f in files)

    from rstack.program.report import quantities

    macros = {q.macro: q for q in quantities(based)}
    assert macros["rsProgramToyTrials"].text == "2"
    assert macros["rsProgramToyKept"].text == "1"
    improvement = macros["rsProgramToyImprovement"]
    assert improvement.value > 0 and improvement.run_ids
    assert macros["rsProgramToyImprovementLow"].value <= improvement.value

    # rstack analyze carries them into numbers.tex and summary.json, where the audit reads them
    from analysis_fixtures import write_project

    write_project(based)
    assert cli("run", "--seeds", "0,1,2").exit_code == 0
    analysed = cli("analyze", "--json")
    assert analysed.exit_code == 0, analysed.output
    summary = json.loads(analysed.stdout)["summary"]
    names = {q["macro"]: q for q in summary["quantities"]}
    assert names["rsProgramToyKept"]["text"] == "1"
    assert names["rsProgramToyImprovement"]["run_ids"] == list(improvement.run_ids)
    assert "\\newcommand{\\rsProgramToyTrials}{2}" in (based / "analysis" / "numbers.tex").read_text()
    bundled = cli("bundle", "create", "--out", "bundle-program")
    assert bundled.exit_code == 0, bundled.output
    assert (based / "bundle-program" / "ledgers" / "program.jsonl").is_file()
    assert (based / "bundle-program" / "plan" / "program.md").is_file()


def test_code_that_moves_every_seed_alike_has_a_point_interval():
    """A refactor that leaves every value as it was: no interval exists, the point decides."""
    same = decide.compare_stage("trial", {0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.0, 1: 2.0, 2: 3.0},
                                direction="minimize", min_effect=0.01, alpha=0.05)
    assert (same.verdict, same.ci_low, same.ci_high) == ("DISCARD", 0.0, 0.0)
    shifted = decide.compare_stage("trial", {0: 0.5, 1: 1.5, 2: 2.5}, {0: 1.0, 1: 2.0, 2: 3.0},
                                   direction="minimize", min_effect=0.01, alpha=0.05)
    assert (shifted.verdict, shifted.diff, shifted.ci_low) == ("KEEP", -0.5, -0.5)


def test_a_gpu_trial_is_priced_into_the_budget(tmp_path):
    """trial.gpu on a paid profile: one trial's estimate (trial + confirm runs x price x timeout)
    must fit budget.max_cost_usd before anything starts: 6 x $3.95/h x 300 s = $1.975."""
    from rstack.program.trial import check_budget

    text = GOOD.replace("profile: local}", "profile: modal, gpu: H100}").replace(
        "max_cost_usd: 10", "max_cost_usd: 1")
    program = parse_program(text, path=Path("program.md"))
    assert program.gpu == "H100"
    with pytest.raises(ProgramError) as refused:
        check_budget(program, KnowledgeBase("toy"), datetime.now(timezone.utc))
    assert ("budget: cost cap: spent $0.00 + estimate $1.98 for one trial exceeds "
            "budget.max_cost_usd $1.00") in refused.value.message
