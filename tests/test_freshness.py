"""One rule for "is the analysis current?", read the same way by status, the bundle and the audit."""

from __future__ import annotations

from paper_fixtures import append_run, make_project
from rstack.freshness import REWRITTEN, analysis_freshness
from rstack.ledger import Ledger
from rstack.status import project_status


def _failed(root, run_id="treatment-s9"):
    Ledger(root, "experiments").append({
        "type": "run.finished", "ts": "2026-11-21T09:00:00.000Z", "run_id": run_id,
        "arm": "treatment", "seed": 9, "status": "failed", "exit_code": 1, "category": "crash",
        "hint": None, "metrics": None, "artifacts": [], "duration_s": 1.0, "cost_usd": 0.0})


def test_current_until_an_ok_run_finishes(project):
    summary = make_project(project)
    assert analysis_freshness(project, summary).current
    Ledger(project, "experiments").append({"type": "note", "text": "looked at it"})
    _failed(project)  # a failed run changes nothing analyze would use
    fresh = analysis_freshness(project, summary)
    assert fresh.current and fresh.appended == 2
    assert project_status(project).stages["analysis"].state == "ok"
    append_run(project, "treatment-s3", "treatment", 3, 0.36, "2026-11-21T09:00:00.000Z")
    fresh = analysis_freshness(project, summary)
    assert not fresh.current and not fresh.rewritten
    assert fresh.reason == "1 run(s) finished after `rstack analyze`"
    assert fresh.newer == {"treatment": ["treatment-s3"]}
    assert fresh.stale_arms(["baseline"]) == {}
    stage = project_status(project).stages["analysis"]
    assert (stage.state, stage.detail) == ("stale", "1 run(s) finished after `rstack analyze`")


def test_a_rewritten_ledger_is_stale_everywhere(project, cli):
    summary = make_project(project)
    path = Ledger(project, "experiments").path
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[2:]))  # the first run's records dropped
    fresh = analysis_freshness(project, summary)
    assert (fresh.current, fresh.rewritten, fresh.reason) == (False, True, REWRITTEN)
    stage = project_status(project).stages["analysis"]
    assert (stage.state, stage.detail) == ("stale", REWRITTEN)
    # the audit reads the same rule: every analysis artifact the paper includes is stale
    (project / "paper.tex").write_text(
        "\\documentclass{article}\\begin{document}\\section{Results}\n"
        "\\input{analysis/table_main}\n\\end{document}\n")
    result = cli("paper", "audit", "--json")
    assert f"\\\\input{{analysis/table_main}}: stale: {REWRITTEN}" in result.output


def test_hostile_lines_after_the_analysis_are_skipped_not_a_crash(project):
    # A line nested 100,000 deep (RecursionError in json.loads) or not UTF-8, appended after
    # `rstack analyze`, is a damaged line: status reports the rest, it does not crash.
    summary = make_project(project)
    path = Ledger(project, "experiments").path
    with open(path, "ab") as handle:
        handle.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        handle.write(b'{"v":1,"type":"run.finished","run_id":"\xff","status":"ok"}\n')
    fresh = analysis_freshness(project, summary)
    assert fresh.current and fresh.appended == 2
    assert project_status(project).stages["analysis"].state == "ok"
