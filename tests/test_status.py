"""`rstack status`: each pipeline stage's state and the recommended next step."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from rstack import paths
from rstack.ledger import Ledger
from rstack.status import STAGES, project_status

REPO = Path(__file__).resolve().parents[1]
SHA = "0" * 64


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _install_marker():
    marker = paths.install_marker()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("ok\n")


def _plan(project: Path) -> Path:
    path = project / "experiment-plan.md"
    shutil.copyfile(REPO / "templates" / "experiment-plan.md", path)
    return path


def _started(run_id, arm, seed):
    return {"type": "run.started", "run_id": run_id, "arm": arm, "seed": seed, "args": [],
            "command": ["python", "train.py"], "output_dir": f"results/{run_id}", "profile": "local",
            "host": "localhost", "plan_sha256": None, "config_hash": SHA, "git_commit": None,
            "git_dirty": None, "script": "train.py", "script_sha256": SHA, "timeout_s": 60,
            "cost_estimate_usd": 0.0, "attempt": 1, "retry_of": None}


def _finished(run_id, arm, seed, status="ok", cost=0.0):
    return {"type": "run.finished", "run_id": run_id, "arm": arm, "seed": seed, "status": status,
            "exit_code": 0 if status == "ok" else 1, "category": None if status == "ok" else "crash",
            "hint": None, "metrics": {"val_loss": 0.5} if status == "ok" else None,
            "artifacts": [], "duration_s": 1.0, "cost_usd": cost}


def _runs(project, spec):
    """Runs of the current script and plan version, as `rstack run` would ledger them."""
    ledger = Ledger(project, "experiments")
    plan, script = project / "experiment-plan.md", project / "train.py"
    version = {"plan_sha256": _sha(plan) if plan.is_file() else None,
               "script_sha256": _sha(script) if script.is_file() else SHA}
    for run_id, arm, seed, status in spec:
        ledger.append({**_started(run_id, arm, seed), **version})
        if status:
            ledger.append(_finished(run_id, arm, seed, status))


def test_empty_project_recommends_setup_then_research(project, cli):
    status = project_status(project)
    assert list(status.stages) == list(STAGES)
    assert status.stages["setup"].state == "missing"
    assert all(status.stages[s].state == "missing" for s in STAGES[1:])
    assert status.next.stage == "setup" and status.next.command == "./setup"
    _install_marker()
    status = project_status(project)
    assert status.next.stage == "idea" and status.next.skill == "/research"
    result = cli("status")
    assert result.exit_code == 0
    assert "next: /research" in result.output


def test_json_shape(project, cli):
    result = cli("status", "--json")
    data = json.loads(result.output)
    assert data["version"] == 1 and data["project_root"] == str(project)
    assert set(data["stages"]) == set(STAGES)
    assert set(data["next"]) == {"stage", "skill", "command", "why"}
    assert data["stages"]["runs"]["cap_usd"] == 10.0


def test_lit_review_counts_and_unknown_citations(project, monkeypatch):
    _install_marker()
    monkeypatch.setenv("RSTACK_LIT_COVERAGE_MIN_PAPERS", "1")  # coverage has its own test
    (project / "idea.md").write_text("Does learning-rate warmup help large minibatch SGD?\n")
    lit = Ledger(project, "lit-review")
    lit.append({"type": "search", "query": "warmup", "source": "s2"})
    lit.append({"type": "paper", "key": "goyal2017accurate", "title": "Accurate, Large Minibatch SGD",
                "abstract": "A linear scaling rule and a warmup scheme for large minibatch SGD."})
    stage = project_status(project).stages["lit_review"]
    assert stage.state == "missing" and "1 papers from 1 searches" in stage.detail
    (project / "lit-review.md").write_text("Warmup [@goyal2017accurate] and [@madeup2020x].\n")
    status = project_status(project)
    stage = status.stages["lit_review"]
    assert stage.state == "invalid" and stage.data["unknown_keys"] == ["madeup2020x"]
    assert status.next.stage == "lit_review" and "only keys in the lit ledger" in status.next.why
    # A grouped citation cites every key in it, not only the first.
    (project / "lit-review.md").write_text("Warmup [@goyal2017accurate; @madeup2020x].\n")
    assert project_status(project).stages["lit_review"].data["unknown_keys"] == ["madeup2020x"]
    (project / "lit-review.md").write_text("Warmup [see @goyal2017accurate, p. 3] (me@x.org).\n")
    assert project_status(project).stages["lit_review"].data["unknown_keys"] == []
    (project / "lit-review.md").write_text("Warmup [@goyal2017accurate].\n")
    assert project_status(project).stages["lit_review"].state == "ok"
    assert project_status(project).next.stage == "novelty"


def test_plan_states_and_skipping_early_stages(project):
    _install_marker()
    path = _plan(project)
    status = project_status(project)
    assert status.stages["plan"].state == "ok"
    assert status.stages["plan"].data["arms"] == ["baseline", "treatment"]
    # A project that starts from a plan goes straight to the script.
    assert status.next.stage == "preflight"
    assert status.next.command == "rstack preflight train.py"
    path.write_text(path.read_text().replace("seeds: [0, 1, 2]", "seeds: [0]"))
    stage = project_status(project).stages["plan"]
    assert stage.state == "invalid" and "execution.seeds" in stage.detail


def test_preflight_is_for_the_current_script_version(project):
    _install_marker()
    _plan(project)
    script = project / "train.py"
    script.write_text("print('v1')\n")
    ledger = Ledger(project, "experiments")
    ledger.append({"type": "preflight", "script": "train.py", "script_sha256": _sha(script),
                   "verdict": "FAIL", "category": "crash", "duration_s": 0.5, "message": "boom"})
    stage = project_status(project).stages["preflight"]
    assert stage.state == "failed" and "crash" in stage.detail
    ledger.append({"type": "preflight", "script": "train.py", "script_sha256": _sha(script),
                   "verdict": "PASS", "category": None, "duration_s": 0.5})
    assert project_status(project).stages["preflight"].state == "ok"
    script.write_text("print('v2')\n")
    stage = project_status(project).stages["preflight"]
    assert stage.state == "missing" and "no preflight of the current train.py" in stage.detail


def test_preflight_state_follows_the_plans_arm_args(project):
    _install_marker()
    _plan(project)  # args [--steps 400]; arms: baseline [--lr 0.01], treatment [--lr 0.1]
    script = project / "train.py"
    script.write_text("print('v1')\n")
    ledger = Ledger(project, "experiments")

    def verdict(result, args=None, category=None):
        record = {"type": "preflight", "script": "train.py", "script_sha256": _sha(script),
                  "verdict": result, "category": category, "duration_s": 0.5,
                  "message": "no" if category else "all checks passed"}
        if args is not None:
            record["args"] = args
        ledger.append(record)
        return project_status(project).stages["preflight"]

    assert verdict("PASS").state == "ok"  # a record from before `args`: run with none
    # A FAIL from args no arm uses hides nothing.
    stage = verdict("FAIL", ["--bogus"], "bad-flags")
    assert (stage.state, stage.data["verdict"], stage.data["args"]) == ("ok", "PASS", [])
    assert verdict("PASS", ["--steps", "400", "--lr", "0.01"]).state == "ok"
    # An arm's FAIL newer than every PASS with its args stands, even after a no-args PASS.
    verdict("FAIL", ["--steps", "400", "--lr", "0.1"], "divergence")
    stage = verdict("PASS", [])
    assert stage.state == "failed" and stage.data["args"] == ["--steps", "400", "--lr", "0.1"]
    assert stage.detail == ("FAIL (divergence) for the current train.py with args --steps 400 "
                            "--lr 0.1: no")
    assert project_status(project).next.command == ("rstack preflight train.py -- --steps 400 "
                                                    "--lr 0.1")
    assert verdict("PASS", ["--steps", "400", "--lr", "0.1"]).state == "ok"
    # A no-args FAIL after the no-args PASS stands too.
    assert verdict("FAIL", [], "crash").detail == "FAIL (crash) for the current train.py: no"
    # Only args the plan does not use: the newest of them stands.
    script.write_text("print('v2')\n")
    assert verdict("PASS", ["--steps", "5"]).state == "ok"
    assert verdict("FAIL", ["--bogus"], "bad-flags").state == "failed"


def test_local_runs_in_flight_with_no_live_rstack_run_are_not_called_running(project):
    # `rstack run` SIGKILLed: its local runs died with it (the reaper), but status went on
    # saying "1 running". The run lock names no live holder, so they are in flight, not running.
    import json
    import os
    import socket

    from rstack.runlock import lock_path

    _install_marker()
    _plan(project)
    _runs(project, [("r1", "baseline", 0, "ok"), ("r3", "treatment", 1, None)])
    stage = project_status(project).stages["runs"]
    assert stage.data["arms"]["treatment"]["running"] == 1
    assert stage.data["orphaned"] == ["r3"]
    assert ("treatment: 0 ok, 0 failed, 1 in flight with no live `rstack run` "
            "(rstack run --resume closes them)") in stage.detail
    # A live holder (this process) keeps them running.
    lock_path(project).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    stage = project_status(project).stages["runs"]
    assert stage.data["orphaned"] == [] and "treatment: 0 ok, 0 failed, 1 running" in stage.detail


def test_runs_per_arm_spend_and_missing_seeds(project, monkeypatch):
    _install_marker()
    _plan(project)
    _runs(project, [("r1", "baseline", 0, "ok"), ("r2", "treatment", 0, "failed"),
                    ("r3", "treatment", 1, None)])
    status = project_status(project)
    stage = status.stages["runs"]
    assert stage.data["arms"] == {"baseline": {"ok": 1, "failed": 0, "running": 0},
                                  "treatment": {"ok": 0, "failed": 1, "running": 1}}
    assert stage.state == "failed"
    assert stage.data["missing"] == {"baseline": [1, 2], "treatment": [0, 1, 2]}
    # `runs list --status failed` would hide timeout/oom/diverged runs: list them all.
    from rstack.status import Stage, next_step
    stages = {name: Stage(name, "ok", "") for name in STAGES}
    stages["runs"] = stage
    assert (next_step(stages).stage, next_step(stages).command) == ("runs", "rstack runs list")
    _runs(project, [("r9", "treatment", 0, None)])
    Ledger(project, "experiments").append(_finished("r9", "treatment", 0, cost=1.25))
    # The failed seed now has an ok run: the rest is not run yet, not failed.
    assert project_status(project).stages["runs"].state == "partial"
    monkeypatch.setenv("RSTACK_MAX_COST_USD", "5")
    stage = project_status(project).stages["runs"]
    assert stage.data["spent_usd"] == 1.25 and stage.data["cap_usd"] == 5.0
    assert "spent $1.25 of $5.00 cap" in stage.detail
    _runs(project, [(f"b{s}", "baseline", s, "ok") for s in (1, 2)]
          + [(f"t{s}", "treatment", s, "ok") for s in (1, 2)])
    status = project_status(project)
    assert status.stages["runs"].state == "ok"
    assert status.next.stage == "analysis" and status.next.command == "rstack analyze"


def _summary(project: Path):
    ledger = paths.ledger_path(project, "experiments")
    raw = ledger.read_bytes()
    summary = {"version": 1, "generated_at": "2026-01-01T00:00:00Z",
               "ledger": {"path": ".rstack/experiments.jsonl", "sha256": hashlib.sha256(raw).hexdigest(),
                          "lines": raw.count(b"\n")}}
    (project / "analysis").mkdir(exist_ok=True)
    (project / "analysis" / "summary.json").write_text(json.dumps(summary))


def test_analysis_freshness(project):
    _runs(project, [("r1", "baseline", 0, "ok")])
    _summary(project)
    assert project_status(project).stages["analysis"].state == "ok"
    Ledger(project, "experiments").append({"type": "note", "text": "looked at it"})
    stage = project_status(project).stages["analysis"]
    assert stage.state == "ok" and "no runs finished since" in stage.detail
    _runs(project, [("r2", "baseline", 1, "ok")])
    stage = project_status(project).stages["analysis"]
    assert stage.state == "stale" and "1 run(s) finished after" in stage.detail
    (project / "analysis" / "summary.json").write_text("{not json")
    assert project_status(project).stages["analysis"].state == "invalid"


def test_paper_build_and_audit_states(project):
    tex = project / "paper.tex"
    tex.write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    assert project_status(project).stages["paper"].state == "partial"
    pdf = project / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.5 fake")
    record = {"ok": True, "pages": 3, "main_pages": 3, "page_limit": 8, "within_limit": True,
              "tex_sha256": _sha(tex), "bib_sha256": None, "pdf_sha256": _sha(pdf), "errors": []}
    build = paths.state_dir(project) / "paper-build.json"
    build.parent.mkdir(parents=True, exist_ok=True)
    build.write_text(json.dumps(record))
    status = project_status(project)
    assert status.stages["paper"].state == "ok" and "3 pages, limit 8" in status.stages["paper"].detail
    # The audit is re-run live: this bare paper has no analysis, so it cannot pass.
    stage = status.stages["audit"]
    assert stage.state == "failed" and stage.data["errors"] > 0
    assert "problem(s), first:" in stage.detail
    tex.write_text(tex.read_text() + "% edited\n")
    status = project_status(project)
    assert status.stages["paper"].state == "stale"
    assert status.stages["audit"].state == "missing"
    build.write_text(json.dumps({**record, "ok": False, "errors": [{"m": 1}]}))
    assert project_status(project).stages["paper"].state == "failed"


def test_preamble_lines(project, cli, monkeypatch):
    monkeypatch.setenv("RSTACK_COMPUTE_PREFERRED", "ssh")
    result = cli("status", "--preamble")
    lines = result.output.splitlines()
    assert lines[0] == f"PROJECT_ROOT: {project}"
    assert lines[1] == "SLUG: proj"
    assert lines[2].startswith("COMPUTE: ssh (compute_preferred is ssh, but no ssh_hosts "
                               "configured (rstack config set ssh_hosts HOST); ")
    assert lines[3] == "VENUE: arxiv"
    assert lines[4] == "PROACTIVE: yes"
    assert lines[5].startswith("NEEDS_SETUP: yes")
    assert [line.split(":")[0] for line in lines[6:]] == \
        [f"STATE_{s.upper()}" for s in STAGES[1:]] + ["NEXT"]
    monkeypatch.setenv("RSTACK_PROACTIVE", "false")
    assert "PROACTIVE: no" in cli("status", "--preamble").output.splitlines()
    monkeypatch.setenv("MODAL_TOKEN_ID", "x")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "y")
    monkeypatch.delenv("RSTACK_COMPUTE_PREFERRED")
    out = cli("status", "--preamble").output
    compute_line = next(line for line in out.splitlines() if line.startswith("COMPUTE: "))
    assert compute_line.startswith("COMPUTE: modal (compute_preferred is auto and Modal is "
                                   "authenticated")


def test_status_reads_a_big_ledger(project):
    # Its speed (goal well under 1 s) is a figure of bench/timeouts.py, not an assertion.
    ledger = Ledger(project, "experiments", fsync=False)
    ledger.append_many([_started(f"r{i}", "baseline", i) for i in range(3000)])
    status = project_status(project)
    assert list(status.stages) == list(STAGES)
    assert os.environ.get("RSTACK_PROJECT") == str(project)


def test_after_the_runs_a_failing_script_is_still_flagged_but_an_unchecked_one_is_not(project):
    _install_marker()
    _plan(project)
    script = project / "train.py"
    script.write_text("print('edited after the runs')\n")
    _runs(project, [(f"{arm}{s}", arm, s, "ok") for arm in ("baseline", "treatment") for s in (0, 1, 2)])
    status = project_status(project)
    assert status.stages["preflight"].state == "missing"
    assert status.next.stage == "analysis"  # the runs it would gate are done
    Ledger(project, "experiments").append(
        {"type": "preflight", "script": "train.py", "script_sha256": _sha(script), "verdict": "FAIL",
         "category": "metrics-missing", "duration_s": 0.3, "message": "no metrics.json"})
    status = project_status(project)
    assert status.next.stage == "preflight" and "metrics-missing" in status.next.why


def test_done_says_so_and_names_the_skipped_optional_stages(project, monkeypatch):
    from rstack import status as status_mod

    stages = {name: status_mod.Stage(name, "ok", "") for name in STAGES}
    stages["bundle"] = status_mod.Stage("bundle", "ok", "bundle-v2/ created", {"dir": "bundle-v2"})
    done = "the paper is audited and bundled; share bundle-v2/, or start a new idea with /research"
    step = status_mod.next_step(stages)
    assert (step.stage, step.skill, step.command, step.why) == ("done", None, None, done)
    status = status_mod.Status(project, stages, step)
    assert status_mod.render(status).splitlines()[-1] == f"next: done — {done}"
    lines = status_mod.preamble_lines(status, slug="s", compute="local", venue="arxiv")
    assert lines[-1] == f"NEXT: done — {done}" and "/write-paper" not in "\n".join(lines)
    assert status.as_json()["next"] == {"stage": "done", "skill": None, "command": None,
                                        "why": done}
    stages["lit_review"] = status_mod.Stage("lit_review", "missing", "")
    step = status_mod.next_step(stages)
    assert step.stage == "done" and step.why == f"{done} (skipped: lit_review)"
    # Skipping is for a stage never written, not for one citing keys the ledger lacks.
    stages["lit_review"] = status_mod.Stage("lit_review", "invalid", "cites x2020y")
    step = status_mod.next_step(stages)
    assert step.stage == "lit_review" and step.command == 'rstack lit search "QUERY"'


def test_novelty_citations_must_be_ledger_keys(project):
    _install_marker()
    Ledger(project, "lit-review").append({"type": "paper", "key": "goyal2017accurate",
                                          "title": "Accurate, Large Minibatch SGD"})
    (project / "novelty-assessment.md").write_text("Closest: [@goyal2017accurate].\n")
    stage = project_status(project).stages["novelty"]
    assert stage.state == "ok" and stage.data == {"cited": 1, "unknown_keys": []}
    (project / "refined-idea.md").write_text("Differs from [@smith2021made].\n")
    status = project_status(project)
    stage = status.stages["novelty"]
    assert stage.state == "invalid" and stage.data["unknown_keys"] == ["smith2021made"]
    assert stage.detail == ("novelty-assessment.md/refined-idea.md cite 1 key(s) not in the lit "
                            "ledger: smith2021made")
    _plan(project)  # a valid plan does not hide it
    status = project_status(project)
    assert status.next.stage == "novelty" and "only keys in the lit ledger" in status.next.why


def test_a_bundle_older_than_the_paper_or_analysis_is_stale(project):
    bundle = project / "bundle"
    (bundle / "paper").mkdir(parents=True)
    (project / "paper.tex").write_text("v1\n")
    (bundle / "paper" / "paper.tex").write_text("v1\n")
    (bundle / "stamp.json").write_text("{}")
    (bundle / "checksums.sha256").write_text(f"{_sha(project / 'paper.tex')}  paper/paper.tex\n")
    assert project_status(project).stages["bundle"].state == "ok"
    (project / "paper.tex").write_text("v2\n")
    stage = project_status(project).stages["bundle"]
    assert (stage.state, stage.detail) == ("stale", "bundle/ predates the current paper.tex")
    assert stage.data == {"dir": "bundle", "next_dir": "bundle-2"}
    from rstack.status import Stage, next_step
    stages = {name: Stage(name, "ok", "") for name in STAGES}
    stages["bundle"] = stage
    assert next_step(stages).command == "rstack bundle create --out bundle-2"
