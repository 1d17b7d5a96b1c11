"""The whole last mile on real `rstack run` records: run -> analyze -> bundle -> verify -> reproduce."""

from __future__ import annotations

import json

from analysis_fixtures import write_project


def test_run_analyze_bundle_verify_reproduce(project, cli, tmp_path):
    write_project(project)
    ran = cli("run", "--seeds", "0,1,2")
    assert ran.exit_code == 0, ran.output
    analysed = cli("analyze", "--json")
    assert analysed.exit_code == 0, analysed.output
    summary = json.loads(analysed.output)["summary"]
    assert [len(a["run_ids"]) for a in summary["arms"].values()] == [3, 3]
    assert {a["path"] for a in summary["artifacts"]} >= {"analysis/fig_curves.pdf",
                                                         "analysis/fig_bar.pdf"}
    # a second bundle made inside the project never swallows the first one
    first = cli("bundle", "create")
    assert first.exit_code == 0, first.output
    second = cli("bundle", "create", "--out", "bundle-2")
    assert second.exit_code == 0, second.output
    assert not any(p.name == "stamp.json" for p in (project / "bundle-2" / "code").rglob("*"))
    assert cli("bundle", "verify", project / "bundle-2").exit_code == 0
    run_id = summary["arms"]["treatment"]["run_ids"][0]
    again = cli("reproduce", run_id)
    assert again.exit_code == 0, again.output
    assert f"PASS: {run_id}" in again.output
