"""rstack reproduce: passes on a deterministic script, fails on one that ignores its seed."""

from __future__ import annotations

import json

from analysis_fixtures import UNSEEDED_SCRIPT, record_metrics_run, record_run, write_project
from rstack.ledger import Ledger
from rstack.reproduce import compare_metrics


def test_compare_metrics_tolerance():
    assert compare_metrics({"a": 1.0}, {"a": 1.0 + 1e-7}, 1e-6) == []
    (m,) = compare_metrics({"a": 1.0}, {"a": 1.001}, 1e-6)
    assert (m.metric, m.expected, m.got) == ("a", 1.0, 1.001)
    assert abs(m.rel_diff - 1e-3) < 1e-12
    (m,) = compare_metrics({"a": 2.0, "b": 0.0}, {"a": 2.0, "b": 1e-3}, 1e-6)
    assert m.metric == "b"  # an expected 0 is compared absolutely
    (m,) = compare_metrics({"a": 1.0}, {"c": 1.0}, 1e-6)
    assert (m.metric, m.got) == ("a", None)
    assert m.describe() == "a: expected 1.0, got (absent)"


def test_deterministic_run_passes_and_is_ledgered(project, cli):
    write_project(project)
    run_id = record_run(project, "baseline", 1, ["--lr", "0.05", "--steps", "10"])
    original = (project / "results" / run_id / "metrics.json").read_bytes()
    result = cli("reproduce", run_id)
    assert result.exit_code == 0, result.output
    assert f"PASS: {run_id} reproduced 3 metric(s) within rtol 1e-06" in result.output
    assert (project / "results" / run_id / "metrics.json").read_bytes() == original
    (rec,) = Ledger(project, "experiments").records("reproduce")
    assert rec["run_id"] == run_id and rec["verdict"] == "PASS" and rec["rtol"] == 1e-6
    assert rec["mismatches"] == []
    assert rec["command"][rec["command"].index("--seed") + 1] == "1"
    out = rec["command"][rec["command"].index("--output-dir") + 1]
    assert "rstack-reproduce-" in out and not (project / out).is_relative_to(
        project / "results")


def test_run_that_ignores_its_seed_fails(project, cli):
    write_project(project, script=UNSEEDED_SCRIPT)
    run_id = record_run(project, "baseline", 0, ["--lr", "0.05", "--steps", "10"])
    expected = json.loads((project / "results" / run_id / "metrics.json").read_text())
    result = cli("reproduce", run_id)
    assert result.exit_code == 1
    assert f"FAIL: {run_id}: " in result.output and "metric(s) differ beyond rtol 1e-06" \
        in result.output
    assert f"  val_loss: expected {expected['val_loss']!r}, got " in result.output
    assert "re-run outputs kept in " in result.output
    report = json.loads(cli("reproduce", run_id, "--json").output)
    assert report["verdict"] == "FAIL"
    assert {m["metric"] for m in report["mismatches"]} >= {"val_loss", "train_loss"}
    verdicts = [r["verdict"] for r in Ledger(project, "experiments").records("reproduce")]
    assert verdicts == ["FAIL", "FAIL"]


def test_tolerance_comes_from_the_option_or_the_config_key(project, cli, monkeypatch):
    write_project(project, script=UNSEEDED_SCRIPT)
    run_id = record_run(project, "baseline", 0, ["--lr", "0.05", "--steps", "10"])
    assert cli("reproduce", run_id, "--rtol", "1e9").exit_code == 0
    monkeypatch.setenv("RSTACK_REPRODUCE_RTOL", "1e9")
    result = cli("reproduce", run_id)
    assert result.exit_code == 0, result.output
    assert "within rtol 1e+09" in result.output
    assert float(cli("config", "get", "reproduce_rtol").output) == 1e9


def test_rerun_that_crashes_fails_with_its_output(project, cli):
    write_project(project)
    run_id = record_run(project, "baseline", 0, ["--lr", "0.05", "--steps", "5"])
    (project / "train.py").write_text("raise SystemExit('boom: data file gone')\n")
    result = cli("reproduce", run_id)
    assert result.exit_code == 1
    assert f"FAIL: {run_id}: the re-run exited with code 1" in result.output
    assert "boom: data file gone" in result.output
    assert "note: train.py changed since the run" in result.output


def test_unknown_and_unfinished_runs_are_errors(project, cli):
    write_project(project)
    result = cli("reproduce", "nope")
    assert result.exit_code == 1
    assert "no run.started record for run 'nope' in .rstack/experiments.jsonl" in result.output
    failed = record_metrics_run(project, "baseline", 0, {"val_loss": 1.0}, status="failed")
    result = cli("reproduce", failed)
    assert result.exit_code == 1
    assert f"run {failed} finished with status 'failed' and no metrics: nothing to reproduce" \
        in result.output
