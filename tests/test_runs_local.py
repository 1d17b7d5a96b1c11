"""`rstack run` on the local profile, end to end with real scripts and real process trees."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rstack import paths
from rstack.ledger import Ledger
from ruamel.yaml import YAML

from runs_fixtures import finished, plan_front, records, write_project

RSTACK = Path(sys.executable).parent / "rstack"


def test_plan_runs_ok_with_full_provenance(project, cli):
    write_project(project, {"base": ["--lr", "0.1"], "fast": ["--lr", "0.2"]}, seeds=(0, 1))
    result = cli("run", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert "4 run(s): 4 ok" in result.output
    started = records(project, "run.started")
    done = finished(project)
    assert len(started) == 4 and len(done) == 4
    plan_sha = hashlib.sha256((project / "experiment-plan.md").read_bytes()).hexdigest()
    script_sha = hashlib.sha256((project / "train.py").read_bytes()).hexdigest()
    for rec in started:
        assert rec["plan_sha256"] == plan_sha and rec["script_sha256"] == script_sha
        assert rec["output_dir"] == f"results/{rec['run_id']}"
        assert rec["command"][1:2] == ["train.py"] and rec["command"][-4:] == [
            "--output-dir", rec["output_dir"], "--seed", str(rec["seed"])]
        assert rec["profile"] == "local" and rec["attempt"] == 1 and rec["retry_of"] is None
        assert len(rec["config_hash"]) == 64 and rec["cost_estimate_usd"] == 0
    for rec in done:
        assert rec["status"] == "ok" and rec["exit_code"] == 0 and rec["category"] is None
        assert set(rec["metrics"]) == {"val_loss", "train_loss", "lr", "batch_size", "cuda_device",
                                  "saw_venv_dir"}
        names = {Path(a["path"]).name for a in rec["artifacts"]}
        assert names == {"metrics.json", "metrics.jsonl", "stdout.log"}
        for art in rec["artifacts"]:
            data = (project / art["path"]).read_bytes()
            assert art["bytes"] == len(data) and art["sha256"] == hashlib.sha256(data).hexdigest()
    log = (project / done[0]["artifacts"][-1]["path"]).read_text()
    assert "start mode=ok" in log
    # Same seed, same metrics: the two arms differ only by lr.
    by = {(r["arm"], r["seed"]): r["metrics"] for r in done}
    assert by[("base", 0)]["lr"] == 0.1 and by[("fast", 1)]["lr"] == 0.2


def test_template_plan_end_to_end(project, cli):
    if not (paths.templates_dir() / "train_template.py").exists():
        pytest.skip("templates/train_template.py (the preflight concern's) is not in this checkout")
    shutil.copy(paths.templates_dir() / "experiment-plan.md", project / "experiment-plan.md")
    shutil.copy(paths.templates_dir() / "train_template.py", project / "train.py")
    result = cli("run", "--jobs", "2")
    assert result.exit_code == 0, result.output
    done = finished(project)
    assert sorted((r["arm"], r["seed"]) for r in done) == [
        ("baseline", 0), ("baseline", 1), ("baseline", 2),
        ("treatment", 0), ("treatment", 1), ("treatment", 2)]
    assert all(r["status"] == "ok" and "val_loss" in r["metrics"] for r in done)


def test_crash_is_diagnosed_and_not_retried(project, cli):
    write_project(project, {"bad": ["--mode", "crash"]}, seeds=(0,))
    result = cli("run")
    assert result.exit_code == 1
    (rec,) = finished(project)
    assert rec["status"] == "failed" and rec["category"] == "crash" and rec["exit_code"] == 1
    assert "ValueError: boom at the end" in rec["message"] and rec["hint"]
    assert rec["metrics"] is None
    assert records(project, "run.retry") == []
    assert "no retry for" in result.output and "crash is a code or configuration fault" in result.output


def test_timeout(project, cli):
    write_project(project, {"slow": ["--mode", "sleep"]}, seeds=(0,), timeout_s=1.5)
    result = cli("run")
    assert result.exit_code == 1
    (rec,) = finished(project)
    assert rec["status"] == "timeout" and rec["category"] == "timeout"
    assert 1.4 < rec["duration_s"] < 10
    # A timeout is not status "failed": the hint must not filter it out of the list.
    assert "some runs did not end ok" in result.output
    assert "--status failed" not in result.output and "rstack runs list (every status" in result.output


def test_memory_watch_kills_hog(project, cli, monkeypatch):
    monkeypatch.setenv("RSTACK_MAX_RETRIES", "0")
    write_project(project, {"hog": ["--mode", "hog"]}, seeds=(0,))
    result = cli("run", "--memory-mb", "300")
    assert result.exit_code == 1
    (rec,) = finished(project)
    assert rec["status"] == "oom" and rec["category"] == "memory"
    assert rec["peak_rss_mb"] >= 250
    assert "max_retries is 0" in result.output


def test_oom_ladder_retries_with_smaller_batch(project, cli):
    write_project(project, {"big": ["--mode", "oom-cuda", "--batch-size", "32"]}, seeds=(0,))
    result = cli("run")
    assert result.exit_code == 0, result.output
    retries = records(project, "run.retry")
    assert [r["change"] for r in retries] == ["--batch-size 32 -> 16, --grad-accum 1 -> 2",
                                              "--batch-size 16 -> 8, --grad-accum 2 -> 4"]
    done = finished(project)
    assert [r["status"] for r in done] == ["oom", "oom", "ok"]
    assert done[-1]["metrics"]["batch_size"] == 8
    started = records(project, "run.started")
    assert [s["attempt"] for s in started] == [1, 2, 3]
    assert started[1]["retry_of"] == started[0]["run_id"] and started[2]["retry_of"] == started[1]["run_id"]
    # design-preserving: the effective batch stays 32, and each run records its accumulation
    assert [s.get("grad_accum") for s in started] == [None, 2, 4]
    assert ("1 run(s): 1 ok; 2 retries, 2 with changed args: " + started[1]["run_id"]
            + " (--batch-size 32 -> 16, --grad-accum 1 -> 2)") in result.output


def test_oom_ladder_counts_rungs_across_the_whole_retry_chain(project, cli, monkeypatch):
    # With a third retry allowed, the third OOM is rung 3 (a larger GPU, none on local), not a
    # third halving: the rung belongs to the original run, not to the attempt before it.
    monkeypatch.setenv("RSTACK_MAX_RETRIES", "3")
    write_project(project, {"big": ["--mode", "oom-cuda", "--batch-size", "64"]}, seeds=(0,))
    result = cli("run")
    assert result.exit_code == 1, result.output
    assert [r["change"] for r in records(project, "run.retry")] == [
        "--batch-size 64 -> 32, --grad-accum 1 -> 2", "--batch-size 32 -> 16, --grad-accum 2 -> 4"]
    assert "batch size was halved twice already" in result.output
    assert [r["status"] for r in finished(project)] == ["oom", "oom", "oom"]


def test_divergence_retry_that_changes_args_is_refused_by_default(project, cli):
    # Lowering --lr for one seed would leave the arm with two learning rates.
    write_project(project, {"hot": ["--mode", "diverge", "--lr", "0.1"]}, seeds=(0,))
    result = cli("run")
    assert result.exit_code == 1, result.output
    assert records(project, "run.retry") == []
    (rec,) = finished(project)
    assert rec["status"] == "diverged" and rec["category"] == "divergence"
    assert ("no retry for " + rec["run_id"] + ": design-changing retry refused: the fix for "
            "divergence (--lr 0.1 -> 0.01) changes the arm's design, and one seed of arm hot would "
            "then differ from the others in --lr; change it in the plan for every seed and rstack "
            "run again, or set execution.arms.hot.retry: adjust to re-run the whole arm with the "
            "adjusted value") in result.output
    assert ("1 run(s): 1 diverged; 1 design-changing retry refused (the runs keep their failed "
            "status)") in result.output


def test_oom_ladder_without_grad_accum_is_a_design_change(project, cli):
    # Halving the batch without accumulation changes the effective batch: refused.
    script = (project / "train.py")
    write_project(project, {"big": ["--mode", "oom-cuda", "--batch-size", "32"]}, seeds=(0,))
    script.write_text(script.read_text().replace('p.add_argument("--grad-accum", type=int, '
                                                 'default=1)\n', ""))
    result = cli("run")
    assert result.exit_code == 1, result.output
    assert records(project, "run.retry") == []
    assert "changes the effective batch (the script has no --grad-accum flag to keep it)" in \
        result.output
    assert [r["status"] for r in finished(project)] == ["oom"]


def test_missing_metrics(project, cli):
    write_project(project, {"quiet": ["--mode", "nometrics"]}, seeds=(0,))
    assert cli("run").exit_code == 1
    (rec,) = finished(project)
    assert rec["status"] == "failed" and rec["category"] == "metrics-missing"


def test_dry_run_starts_nothing(project, cli):
    write_project(project, {"a": [], "b": ["--lr", "0.3"]}, seeds=(0, 1))
    result = cli("run", "--dry-run", "--arm", "b")
    assert result.exit_code == 0, result.output
    assert "2 run(s) on local; estimate $0.00; dry run: nothing started" in result.output
    assert "train.py --lr 0.3 --output-dir results/" in result.output
    assert not paths.ledger_path(project, "experiments").exists()
    data = json.loads(cli("run", "--dry-run", "--json").output)
    assert len(data["runs"]) == 4 and data["profile"] == "local"


def test_adhoc_run(project, cli):
    shutil.copy(Path(__file__).parent / "data" / "runs" / "fake_train.py", project / "train.py")
    result = cli("run", "--name", "quick", "--seeds", "3,4", "--", "python", "train.py", "--lr", "0.3")
    assert result.exit_code == 0, result.output
    started = records(project, "run.started")
    assert [(s["arm"], s["seed"], s["name"]) for s in started] == [("quick", 3, "quick"),
                                                                   ("quick", 4, "quick")] or \
        sorted((s["arm"], s["seed"]) for s in started) == [("quick", 3), ("quick", 4)]
    assert all(s["plan_sha256"] is None and s["args"] == ["--lr", "0.3"] for s in started)


def test_adhoc_usage_errors(project, cli):
    shutil.copy(Path(__file__).parent / "data" / "runs" / "fake_train.py", project / "train.py")
    result = cli("run", "--", "python", "train.py")
    assert result.exit_code == 1 and "an ad hoc run needs --name NAME" in result.output
    result = cli("run", "--name", "x", "--", "python", "train.py", "--seed", "3")
    assert result.exit_code == 1 and "--seed is set by rstack run for every run" in result.output
    result = cli("run", "--seeds", "a,b")
    assert result.exit_code == 2 and "not a comma-separated list of integers" in result.output


def test_runs_list_and_show(project, cli):
    write_project(project, {"a": [], "b": ["--mode", "crash"]}, seeds=(0,))
    cli("run")
    data = json.loads(cli("runs", "list", "--json").output)
    assert sorted((r["arm"], r["status"]) for r in data["runs"]) == [("a", "ok"), ("b", "failed")]
    only = json.loads(cli("runs", "list", "--json", "--status", "failed").output)["runs"]
    assert [r["arm"] for r in only] == ["b"]
    text = cli("runs", "list", "--arm", "a").output
    assert " a " in text and "ok" in text and "failed" not in text
    run_id = only[0]["run_id"]
    shown = cli("runs", "show", run_id[:-2])
    assert shown.exit_code == 0 and f"{run_id}: failed (b seed 0" in shown.output
    assert "run.started" in shown.output and "run.finished" in shown.output
    missing = cli("runs", "show", "nope")
    assert missing.exit_code == 1 and "no run 'nope'" in missing.output


def test_runs_list_shows_the_primary_metric_first_and_counts_the_hidden(project, cli):
    plan = write_project(project, {"a": []}, seeds=(0,))
    assert cli("run").exit_code == 0
    data = json.loads(cli("runs", "list", "--json").output)
    assert data["primary_metric"] == "val_loss"
    metrics = data["runs"][0]["metrics"]
    assert set(metrics) == {"val_loss", "train_loss", "lr", "batch_size", "cuda_device",
                            "saw_venv_dir"}  # --json has them all
    text = cli("runs", "list").output.splitlines()[0]
    shown = text.split("  ")[-1].split()
    assert shown[0].startswith("val_loss=")  # alphabetically it would come last
    assert shown[-2:] == ["+" + str(len(metrics) - len(shown) + 2), "more"]
    # Another plan's primary metric, named with --plan.
    front = plan_front({"a": []}, seeds=(0,))
    front["hypothesis"]["metrics"] = ["lr"]
    front["evaluation"]["primary_metric"] = "lr"
    buf = io.StringIO()
    YAML().dump(front, buf)
    (project / "other-plan.md").write_text("---\n" + buf.getvalue() + "---\n")
    other = cli("runs", "list", "--plan", "other-plan.md")
    assert other.output.splitlines()[0].split("  ")[-1].startswith("lr=0.1 ")
    # No plan: by name, still with the count of those hidden.
    plan.unlink()
    bare = json.loads(cli("runs", "list", "--json").output)
    assert bare["primary_metric"] is None
    line = cli("runs", "list").output.splitlines()[0].split("  ")[-1]
    assert line.startswith("batch_size=") and line.endswith(" more")
    missing = cli("runs", "list", "--plan", "nope.md")
    assert missing.exit_code == 1 and "nope.md: no such plan file" in missing.output


def test_metrics_summary_fits_the_width():
    from rstack.runs import metrics_summary

    metrics = {"a_loss": 0.5, "b": 1, "zz_primary": 0.123456, "c": "x"}
    assert metrics_summary(metrics, "zz_primary", width=200) == \
        "zz_primary=0.1235 a_loss=0.5 b=1 c=x"
    assert metrics_summary(metrics, "zz_primary", width=36) == \
        "zz_primary=0.1235 a_loss=0.5 +2 more"
    assert metrics_summary(metrics, "zz_primary", width=35) == "zz_primary=0.1235 +3 more"
    assert metrics_summary(metrics, "missing", width=10) == "a_loss=0.5 +3 more"
    assert metrics_summary(metrics, None, width=10) == "a_loss=0.5 +3 more"
    assert metrics_summary(None, "x") == "" and metrics_summary({"a": 1}, "a", width=1) == "a=1"


def test_resume_skips_done_and_closes_orphans(project, cli):
    write_project(project, {"a": []}, seeds=(0, 1))
    cli("run", "--seeds", "0")
    orphan = {"type": "run.started", "run_id": "orphan-1", "arm": "a", "seed": 1, "args": [],
              "command": ["python", "train.py"], "output_dir": "results/orphan-1", "profile": "local",
              "host": "h", "plan_sha256": None, "config_hash": "0" * 64, "git_commit": None,
              "git_dirty": None, "script": "train.py", "script_sha256": "0" * 64, "timeout_s": 60,
              "cost_estimate_usd": 0.0, "attempt": 1, "retry_of": None}
    Ledger(project, "experiments").append(orphan)
    result = cli("run", "--resume")
    assert result.exit_code == 0, result.output
    assert "orphan-1 was in flight when rstack stopped; its record is closed" in result.output
    done = finished(project)
    assert [(r["run_id"] == "orphan-1", r["status"]) for r in done] == [
        (False, "ok"), (True, "killed"), (False, "ok")]
    assert sorted(r["seed"] for r in done if r["status"] == "ok") == [0, 1]
    assert [r["category"] for r in done if r["run_id"] == "orphan-1"] == ["interrupted"]


def test_resume_closes_unfollowable_remote_runs_as_lost(project, cli):
    write_project(project, {"a": []}, seeds=(0,))
    orphan = {"type": "run.started", "run_id": "modal-1", "arm": "a", "seed": 0, "args": [],
              "command": ["python", "train.py"], "output_dir": "results/modal-1", "profile": "modal",
              "host": "modal:A10G", "plan_sha256": None, "config_hash": "0" * 64,
              "git_commit": None, "git_dirty": None, "script": "train.py",
              "script_sha256": "0" * 64, "timeout_s": 60, "cost_estimate_usd": 0.1, "attempt": 1,
              "retry_of": None}
    Ledger(project, "experiments").append(orphan)
    result = cli("run", "--resume")
    assert result.exit_code == 0, result.output
    lost = [r for r in finished(project) if r["run_id"] == "modal-1"]
    assert [(r["status"], r["category"]) for r in lost] == [("lost", "host-lost")]
    assert "cannot be re-attached" in lost[0]["message"]


def _wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_records_killed_and_leaves_nothing(project):
    write_project(project, {"slow": ["--mode", "sleep"]}, seeds=(0, 1, 2), timeout_s=120)
    env = dict(os.environ, RSTACK_PROJECT=str(project))
    proc = subprocess.Popen([str(RSTACK), "run", "--jobs", "2"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert _wait_for(lambda: paths.ledger_path(project, "experiments").exists()
                     and len(records(project, "run.started")) == 2
                     and all((project / r["output_dir"] / "metrics.jsonl").exists()
                             for r in records(project, "run.started")))
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "interrupted: runs in flight were recorded killed" in out
    started, done = records(project, "run.started"), finished(project)
    assert len(started) == 2, "the queued third run must never start"
    assert sorted(r["run_id"] for r in done) == sorted(r["run_id"] for r in started)
    assert all(r["status"] == "killed" and r["category"] == "interrupted" for r in done)
    assert Ledger(project, "experiments").check().problems == []
    run_ids = {r["run_id"] for r in started}
    for p in psutil.process_iter():
        try:
            assert p.environ().get("RSTACK_RUN_ID") not in run_ids, p
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_records_killed_and_leaves_nothing(project, signum):
    # A scheduler or a closed terminal stops `rstack run` with SIGTERM/SIGHUP, not Ctrl-C. The runs
    # live in their own sessions, so unless rstack turns the signal into an interrupt they keep
    # running (and billing) with no run.finished record.
    write_project(project, {"slow": ["--mode", "sleep"]}, seeds=(0,), timeout_s=120)
    env = dict(os.environ, RSTACK_PROJECT=str(project))
    proc = subprocess.Popen([str(RSTACK), "run", "--jobs", "1"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert _wait_for(lambda: paths.ledger_path(project, "experiments").exists()
                     and len(records(project, "run.started")) == 1
                     and all((project / r["output_dir"] / "metrics.jsonl").exists()
                             for r in records(project, "run.started")))
    time.sleep(0.5)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    run_ids = {r["run_id"] for r in records(project, "run.started")}
    survivors = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("RSTACK_RUN_ID") in run_ids and p.status() != psutil.STATUS_ZOMBIE:
                survivors.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    for p in survivors:  # never leave them behind, even when the assertion below fails
        p.kill()
    assert survivors == []
    assert proc.returncode == 1, out
    assert "interrupted: runs in flight were recorded killed" in out
    done = finished(project)
    assert [r["run_id"] for r in done] == list(run_ids)
    assert done[0]["status"] == "killed" and done[0]["category"] == "interrupted"


def test_gpu_pinning_one_run_per_gpu(project, monkeypatch):
    from rstack.plan import compile_plan, load_plan
    from rstack.runners.local import LocalRunner, default_jobs
    from rstack.runs import RunPolicy, execute, specs_from_matrix

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert default_jobs() == 2
    write_project(project, {"a": ["--sleep", "1"]}, seeds=(0, 1, 2, 3))
    plan = load_plan(project / "experiment-plan.md")
    specs = specs_from_matrix(compile_plan(plan, root=project).runs, plan.script)
    report = execute(project, specs, LocalRunner(project, jobs=2), policy=RunPolicy(plan=plan),
                     jobs=2)
    devices = [r.metrics["cuda_device"] for r in report.results]
    assert sorted(devices) == [3, 3, 5, 5], "each run pinned to one GPU, never shared"
    started = records(project, "run.started", "run.finished")
    assert [r["type"] for r in started[:2]] == ["run.started", "run.started"], "two at once"


def test_failed_prepare_releases_the_runner(project):
    """A runner that fails (or is interrupted) while provisioning is closed before the error."""
    from rstack.plan import compile_plan, load_plan
    from rstack.runners.local import LocalRunner
    from rstack.runs import RunError, RunPolicy, execute, specs_from_matrix

    class Provisioning(LocalRunner):
        closed_with = None

        def prepare(self, specs):
            raise RunError("no machine")

        def close(self, results):
            Provisioning.closed_with = list(results)

    write_project(project, {"a": []}, seeds=(0,))
    plan = load_plan(project / "experiment-plan.md")
    specs = specs_from_matrix(compile_plan(plan, root=project).runs, plan.script)
    with pytest.raises(RunError, match="no machine"):
        execute(project, specs, Provisioning(project), policy=RunPolicy(plan=plan))
    assert Provisioning.closed_with == []
    assert records(project, "run.started") == []


def test_run_records_the_projects_commit_and_dirty_flag(project):
    # Run records and bundles read the git state through one function (rstack.gitstate).
    import subprocess

    from rstack.runs import git_state

    def git(*args):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)

    assert git_state(project) == (None, None)  # not a repository
    git("init", "-q")
    assert git_state(project) == (None, None)  # a repository with no commit yet
    (project / "train.py").write_text("print('v1')\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1")
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert git_state(project) == (head, False)
    (project / "train.py").write_text("print('v2')\n")
    assert git_state(project) == (head, True)
