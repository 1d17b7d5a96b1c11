"""Issue 11 on real local runs: divergence judged on a smoothed loss, design-changing retries
refused by default or widened to the whole arm (`retry: adjust`), and evaluation.checks deciding
`check-failed`. Every run here is a real `rstack run` of a real script."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from ruamel.yaml import YAML

from runs_fixtures import FAKE_TRAIN, finished, plan_front, records

CORPUS = Path(__file__).parent / "data" / "preflight"


def write(root: Path, script: Path, arms: dict, *, seeds=(0, 1, 2), evaluation: dict | None = None):
    shutil.copy(script, root / "train.py")
    front = plan_front({name: (spec["args"] if isinstance(spec, dict) else spec)
                        for name, spec in arms.items()}, seeds=seeds)
    front["execution"]["arms"] = arms
    del front["hypothesis"]["metrics"], front["evaluation"]["direction"]
    del front["evaluation"]["sanity_checks"]
    front["evaluation"]["primary_metric"] = "train_loss"
    front["evaluation"]["metrics"] = {"train_loss": {"direction": "minimize"}}
    front["evaluation"].update(evaluation or {})
    buf = io.StringIO()
    YAML().dump(front, buf)
    (root / "experiment-plan.md").write_text("---\n" + buf.getvalue() + "---\n")


def test_noisy_healthy_loss_near_zero_is_not_divergent(project, cli):
    write(project, CORPUS / "ok_noisy_loss_near_zero.py", {"ft": ["--lr", "0.01"]})
    result = cli("run")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in finished(project)] == ["ok", "ok", "ok"]
    assert "3 run(s): 3 ok" in result.output
    import sys
    started = records(project, "run.started")
    assert {s["python"] for s in started} == {sys.executable}  # no execution.python: rstack's own
    assert {s["python_version"] for s in started} == {".".join(map(str, sys.version_info[:3]))}
    assert all(len(s["packages_sha256"]) == 64 for s in started)


def test_execution_python_is_the_runs_interpreter(project, cli, tmp_path):
    import os
    import sys
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    write(project, CORPUS / "ok_noisy_loss_near_zero.py", {"ft": ["--lr", "0.01"]}, seeds=(0,))
    plan = project / "experiment-plan.md"
    plan.write_text(plan.read_text().replace("  profile: local\n",
                                             f"  profile: local\n  python: {venv}\n"))
    assert cli("plan", "check").exit_code == 0
    result = cli("run")
    assert result.exit_code == 0, result.output
    (started,) = records(project, "run.started")
    assert started["command"][0] == str(venv / "bin" / "python") == started["python"]


def test_real_divergence_stays_diverged_without_opt_in(project, cli):
    write(project, CORPUS / "divergence_real.py",
          {"base": ["--lr", "0.1"], "hot": ["--lr", "1.0"]}, seeds=(0, 1, 2))
    result = cli("run")
    assert result.exit_code == 1
    by_arm = {}
    for rec in finished(project):
        by_arm.setdefault(rec["arm"], []).append(rec["status"])
    assert by_arm == {"base": ["ok"] * 3, "hot": ["diverged"] * 3}
    assert records(project, "run.retry") == [] and records(project, "arm.adjusted") == []
    assert "3 design-changing retries refused (the runs keep their failed status)" in result.output
    # analyze leaves the failed arm out: no arm ever mixes learning rates
    started = records(project, "run.started")
    assert {tuple(s["args"]) for s in started if s["arm"] == "hot"} == {("--lr", "1.0")}


def test_retry_adjust_reruns_every_seed_of_the_arm(project, cli):
    write(project, CORPUS / "divergence_real.py",
          {"base": ["--lr", "0.1"], "hot": {"args": ["--lr", "1.0"], "retry": "adjust"}})
    result = cli("run", "--jobs", "1")
    assert result.exit_code == 0, result.output
    (adjusted,) = records(project, "arm.adjusted")
    assert (adjusted["arm"], adjusted["version"], adjusted["args_before"], adjusted["args"]) == (
        "hot", 2, ["--lr", "1.0"], ["--lr", "0.1"])
    started = {s["run_id"]: s for s in records(project, "run.started")}
    hot = [started[r] for r in adjusted["run_ids"]]
    assert sorted(s["seed"] for s in hot) == [0, 1, 2]  # the whole arm, never one seed
    assert all(s["args"] == ["--lr", "0.1"] and s["arm_version"] == 2 for s in hot)
    # version-1 seeds 1 and 2 were still queued: never started, so nothing mixes designs
    v1 = [s for s in started.values() if s["arm"] == "hot" and s["args"] == ["--lr", "1.0"]]
    assert [s["seed"] for s in v1] == [0]
    done = {r["run_id"]: r["status"] for r in finished(project)}
    assert [done[r] for r in adjusted["run_ids"]] == ["ok", "ok", "ok"]
    assert "6 run(s): 6 ok; 3 retries, 3 with changed args" in result.output
    assert cli("analyze").exit_code == 0
    import json
    summary = json.loads((project / "analysis" / "summary.json").read_text())
    assert sorted(summary["arms"]["hot"]["run_ids"]) == sorted(adjusted["run_ids"])


def test_checks_pass_and_fail_on_real_runs(project, cli):
    write(project, FAKE_TRAIN, {"slow": ["--lr", "0.01"], "fast": ["--lr", "0.5"]},
          seeds=(0, 1, 2), evaluation={
              "metrics": {"train_loss": {"direction": "minimize"}, "val_loss": {}},
              "checks": ["last(train_loss) < first(train_loss)", "max(step) == 9",
                         "final(train_loss) < 0.5"]})
    result = cli("run")
    assert result.exit_code == 1
    done = finished(project)
    status = {(r["arm"], r["seed"]): r["status"] for r in done}
    assert {k: v for k, v in status.items() if k[0] == "fast"} == {
        ("fast", 0): "ok", ("fast", 1): "ok", ("fast", 2): "ok"}
    assert {v for k, v in status.items() if k[0] == "slow"} == {"check-failed"}
    failed = next(r for r in done if r["arm"] == "slow")
    assert failed["category"] == "check-failed"
    assert failed["message"].startswith("FAILED: final(train_loss) < 0.5 (final(train_loss) = 0.9")
    assert [c["passed"] for c in failed["checks"]] == [True, True, False]
    ok = next(r for r in done if r["arm"] == "fast")
    assert all(c["passed"] for c in ok["checks"])
    assert "3 check-failed, 3 ok" in result.output
    listing = cli("runs", "list", "--status", "check-failed")
    assert listing.exit_code == 0 and listing.output.count("check-failed") == 3


def test_analysis_never_mixes_designs_within_an_arm(project, cli):
    """A seed of the new design has not run yet: its older-design ok run is left out, not used."""
    write(project, CORPUS / "divergence_real.py",
          {"base": ["--lr", "0.1"], "hot": ["--lr", "0.1"]})
    assert cli("run").exit_code == 0
    # the plan changes hot's lr (a new design); only seeds 0 and 1 run with it
    plan = project / "experiment-plan.md"
    plan.write_text(plan.read_text().replace("hot:\n    - --lr\n    - '0.1'",
                                             "hot:\n    - --lr\n    - '0.05'"))
    assert "'0.05'" in plan.read_text()
    assert cli("run", "--arm", "hot", "--seeds", "0,1").exit_code == 0
    result = cli("analyze")
    assert result.exit_code == 0, result.output
    import json
    summary = json.loads((project / "analysis" / "summary.json").read_text())
    assert summary["arms"]["hot"]["seeds"] == [0, 1]
    assert any("but the arm's latest design is --lr 0.05; left out so the arm does not mix "
               "designs" in note for note in summary["notes"])
