"""The slurm profile: its pure parts offline, then the real single-node cluster (.ci/slurm-up).

Cluster tests skip with the reason when no SLURM node answers here. The conformance suite
(test_runners_conformance.py) covers ok/crash/timeout/mismatch/SIGTERM/resume on this profile too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rstack import compute
from rstack.runners.slurm_script import (ArrayTask, BatchOptions, base_state, batch_script,
                                         format_slurm_time, gres_gpu_count, parse_exit_code,
                                         parse_extra, parse_gres_map, parse_slurm_time)
from runners_fixtures import slurm_cluster_reason, slurm_jobs_of, use_slurm_cluster_dir
from runs_fixtures import finished, records, write_project
from ssh_fixtures import sshd, wait_for  # noqa: F401
from test_runs_ssh import preflight_pass

RSTACK = Path(sys.executable).parent / "rstack"


# -- offline: the pure parts ----------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("5", 300), ("05:30", 330), ("1:00:00", 3600), ("2-00", 172800), ("1-02:03", 93780),
    ("1-00:00:01", 86401), ("", None)])
def test_slurm_time_forms(text, seconds):
    assert parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["abc", "1:2:3:4", "0", "-5", "1-x"])
def test_bad_slurm_time_is_refused(text):
    with pytest.raises(ValueError, match="is not a SLURM time"):
        parse_slurm_time(text)


def test_time_limits_round_up_to_minutes():
    assert format_slurm_time(1) == "0-00:01:00"
    assert format_slurm_time(61) == "0-00:02:00"
    assert format_slurm_time(86400 + 3600) == "1-01:00:00"


def test_gres_rows_and_gpu_counts():
    assert parse_gres_map(["A100=gpu:a100:2", "H100=gpu:h100"]) == {"A100": "gpu:a100:2",
                                                                    "H100": "gpu:h100"}
    assert [gres_gpu_count(g) for g in ("gpu:a100:2", "gpu:h100", "gpu:1", "", None)] == [2, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="is not GPU=GRES"):
        parse_gres_map(["A100"])


def test_extra_options_are_validated():
    assert parse_extra("--constraint=a100; --exclusive") == ["--constraint=a100", "--exclusive"]
    with pytest.raises(ValueError, match="--array is set by rstack"):
        parse_extra("--array=0-3")
    with pytest.raises(ValueError, match="is not a long sbatch option"):
        parse_extra("--constraint=a100 && rm -rf ~")
    with pytest.raises(ValueError, match="is not a long sbatch option"):
        parse_extra("-C a100")


@pytest.mark.parametrize("key, value, message", [
    ("slurm_extra", "--time=5", "slurm_extra: --time is set by rstack or by its own slurm_* key"),
    ("slurm_time", "soon", "slurm_time 'soon' is not a SLURM time"),
    ("slurm_gres", "A100", "slurm_gres row 'A100' is not GPU=GRES"),
    ("slurm_partition", "gpu\n#SBATCH --x", "slurm_partition 'gpu\\n#SBATCH --x' may hold only"),
])
def test_config_refuses_bad_slurm_values(cli, key, value, message):
    result = cli("config", "set", key, value)
    assert result.exit_code == 1 and message in result.output, result.output


def test_scheduler_fields():
    assert base_state("CANCELLED by 0") == "CANCELLED" and base_state("FAILED+") == "FAILED"
    assert parse_exit_code("0:9") == (None, 9)
    assert parse_exit_code("3:0") == (3, None)


def test_batch_script_is_one_array_with_a_throttle():
    tasks = [ArrayTask("r0", "/c/runs/r0", ["py", ".rstack-run/agent.py", "--", "python", "t.py"]),
             ArrayTask("r1", "/c/runs/r1", ["py", ".rstack-run/agent.py", "--", "python", "t.py",
                                            "--name", "a b"])]
    script = batch_script(tasks, BatchOptions(job_name="rstack-a", output="/c/jobs/r0/slurm-%A_%a.out",
                                              time="0-00:05:00", throttle=1, partition="gpu",
                                              gres="gpu:a100:1", mem_mb=2048,
                                              extra=("--constraint=a100",)))
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --array=0-1%1" in lines and "#SBATCH --no-requeue" in lines
    assert "#SBATCH --partition=gpu" in lines and "#SBATCH --gres=gpu:a100:1" in lines
    assert "#SBATCH --mem=2048M" in lines and "#SBATCH --constraint=a100" in lines
    assert "    exec py .rstack-run/agent.py -- python t.py --name 'a b' ;;" in lines
    assert "    cd /c/runs/r1 || exit 97" in lines


def test_dry_run_prints_the_exact_batch_script(project, cli, monkeypatch):
    monkeypatch.setenv("RSTACK_SLURM_GRES", "A100=gpu:a100:1")
    monkeypatch.setenv("RSTACK_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("RSTACK_SLURM_EXTRA", "--constraint=a100")
    write_project(project, {"a": ["--lr", "0.1"], "b": ["--lr", "0.2"]}, seeds=(0, 1),
                  timeout_s=600, profile="slurm", gpu="A100", max_cost_usd=5)
    result = cli("run", "--dry-run", "--jobs", "2")
    assert result.exit_code == 0, result.output
    script = result.output.split("batch script:\n", 1)[1]
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=rstack-runs\n#SBATCH --array=0-3%2\n")
    assert "#SBATCH --time=0-00:12:00" in script  # timeout 600 s + the 120 s grace
    assert "#SBATCH --gres=gpu:a100:1" in script and "#SBATCH --partition=gpu" in script
    assert script.count("exec ") == 4 and "nothing started" in result.output
    data = json.loads(cli("run", "--dry-run", "--json").output)
    assert data["runner"]["gpu_hours_requested"] == pytest.approx(4 * 720 / 3600, abs=1e-3)
    assert data["runner"]["script"].startswith("#!/bin/bash")


def test_a_plan_gpu_without_a_gres_row_is_refused(project, cli):
    write_project(project, {"a": []}, seeds=(0,), timeout_s=600, profile="slurm", gpu="A100",
                  max_cost_usd=5)
    result = cli("run", "--dry-run")
    assert result.exit_code == 1
    assert "the slurm profile has no gres for GPU 'A100'" in result.output
    assert "rstack config set slurm_gres A100=gpu:a100:1" in result.output


def test_compute_detect_without_sinfo(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert compute.probe_slurm() == {"sinfo": None, "partitions": [], "error": None}


# -- the real cluster ------------------------------------------------------------------------


@pytest.fixture
def cluster(project, monkeypatch, tmp_path):
    reason = slurm_cluster_reason()
    if reason:
        pytest.skip(reason)
    cluster_dir = use_slurm_cluster_dir(tmp_path, monkeypatch)
    monkeypatch.setenv("RSTACK_MAX_RETRIES", "0")
    yield cluster_dir
    jobs = slurm_jobs_of(cluster_dir)
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, timeout=30)


def slurm_project(project, arms, **kw):
    kw.setdefault("seeds", (0,))
    kw.setdefault("timeout_s", 120)
    write_project(project, arms, profile="slurm", max_cost_usd=5, **kw)
    preflight_pass(project)


def test_compute_detect_reports_the_cluster(cluster):
    slurm = compute.probe_slurm()
    assert slurm["error"] is None and slurm["partitions"]
    assert any(p["default"] for p in slurm["partitions"])


def test_arms_x_seeds_go_out_as_one_throttled_array(project, cli, cluster):
    slurm_project(project, {"ok": ["--lr", "0.2"], "bad": ["--mode", "crash"]}, seeds=(0, 1))
    result = cli("run", "--jobs", "2")
    assert result.exit_code == 1 and "4 run(s): 2 failed, 2 ok" in result.output, result.output
    (job,) = records(project, "slurm.job")
    assert job["array"] == "0-3%2" and len(job["run_ids"]) == 4
    remote = {r["run_id"]: r for r in records(project, "run.remote")}
    assert sorted(r["array_index"] for r in remote.values()) == [0, 1, 2, 3]
    assert all(r["job_id"] == job["job_id"] for r in remote.values())
    by_arm = {}
    for rec in finished(project):
        by_arm.setdefault(rec["arm"], set()).add((rec["status"], rec["category"], rec["exit_code"]))
    assert by_arm == {"ok": {("ok", None, 0)}, "bad": {("failed", "crash", 1)}}
    tasks = records(project, "slurm.task")
    assert sorted(t["state"] for t in tasks) == ["COMPLETED", "COMPLETED", "FAILED", "FAILED"]
    assert all(t["gpus"] == 0 and t["gpu_hours"] == 0 for t in tasks)
    # The script ran from a copy on the cluster, which is removed once its outputs verify.
    ok_runs = [r["run_id"] for r in finished(project) if r["status"] == "ok"]
    assert not any((cluster / "runs" / run_id).exists() for run_id in ok_runs)


def test_scheduler_time_limit_is_a_timeout(project, cli, cluster, monkeypatch):
    # The run's own timeout is long; SLURM's limit (1 minute, its smallest) ends it first.
    monkeypatch.setenv("RSTACK_SLURM_TIME", "1")
    slurm_project(project, {"a": ["--mode", "sleep"]}, timeout_s=600)
    result = cli("run")
    assert result.exit_code == 1, result.output
    (rec,) = finished(project)
    assert (rec["status"], rec["category"]) == ("timeout", "timeout"), rec
    assert "ended TIMEOUT" in rec["message"]
    (task,) = records(project, "slurm.task")
    assert task["state"] == "TIMEOUT"


def test_memory_limit_is_an_oom(project, cli, cluster):
    slurm_project(project, {"a": ["--mode", "hog"]})
    result = cli("run", "--memory-mb", "150")
    assert result.exit_code == 1, result.output
    (rec,) = finished(project)
    assert (rec["status"], rec["category"]) == ("oom", "memory"), rec
    (job,) = records(project, "slurm.job")
    script = (Path(job["job_dir"]) / "job.sh").read_text()
    assert "#SBATCH --mem=150M" in script


def test_ctrl_c_scancels_even_when_started_with_sigint_ignored(project, cluster):
    # nohup and a shell's background jobs start rstack with SIGINT ignored; it handles it anyway.
    slurm_project(project, {"a": ["--mode", "sleep"]}, seeds=(0, 1))
    proc = subprocess.Popen([str(RSTACK), "run"], cwd=project,
                            env=dict(os.environ, RSTACK_PROJECT=str(project)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for(lambda: len(records(project, "run.remote")) == 2 and all(
        (cluster / "runs" / r["run_id"] / "results" / r["run_id"] / "metrics.jsonl").exists()
        for r in records(project, "run.remote")), timeout=90, step=0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "interrupted: runs in flight were recorded killed" in out, out
    assert sorted((r["status"], r["category"]) for r in finished(project)) == [
        ("killed", "interrupted")] * 2
    assert slurm_jobs_of(cluster) == []
    assert {t["state"] for t in records(project, "slurm.task")} == {"CANCELLED"}


def test_a_restarted_controller_does_not_lose_the_run(project, cli, cluster):
    """slurmctld stops and comes back mid-run: polls fail meanwhile; the run still ends ok."""
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        pytest.skip("restarting slurmctld needs root on the cluster's own machine")
    slurm_project(project, {"a": ["--sleep", "8"]})
    pidfile = Path(os.environ.get("RSTACK_SLURM_DIR", "/var/tmp/rstack-slurm")) / "slurmctld.pid"
    if not pidfile.is_file():
        pytest.skip(f"no {pidfile}: this cluster was not started by .ci/slurm-up")
    proc = subprocess.Popen([str(RSTACK), "run"], cwd=project,
                            env=dict(os.environ, RSTACK_PROJECT=str(project)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: records(project, "run.remote"), timeout=90, step=0.2)
    time.sleep(1.0)
    pid = int(pidfile.read_text().strip())
    os.kill(pid, signal.SIGTERM)  # a controller restart: it saves its state on the way down
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=30)
    time.sleep(2.0)
    subprocess.run(["slurmctld"], check=True, timeout=60)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    (rec,) = finished(project)
    assert rec["status"] == "ok"


def test_gpu_hours_spent_and_requested_are_capped_before_submit(project, cli, cluster, monkeypatch):
    from rstack.ledger import Ledger

    monkeypatch.setenv("RSTACK_SLURM_GRES", "A100=gpu:a100:2")
    monkeypatch.setenv("RSTACK_MAX_GPU_HOURS", "5.5")
    slurm_project(project, {"a": []}, timeout_s=840, gpu="A100")  # (840 + 60) s x 2 GPUs = 0.5 h
    Ledger(project, "experiments").append({
        "type": "slurm.task", "job_id": "1", "array_index": 0, "run_id": "earlier", "state":
        "COMPLETED", "elapsed_s": 9000.0, "gpus": 2, "gpu_hours": 5.0004})
    result = cli("run")
    assert result.exit_code == 1
    assert ("GPU-hour cap: spent 5.00 + requested 0.50 = 5.50 GPU-hours exceeds max_gpu_hours 5.5; "
            "nothing was submitted") in result.output
    assert records(project, "slurm.job") == [] and records(project, "run.started") == []


@pytest.mark.parametrize("state, status, category, retry", [
    ("TIMEOUT", "timeout", "timeout", None),
    ("OUT_OF_MEMORY", "oom", "memory", "oom-ladder"),
    ("PREEMPTED", "lost", "preempted", "same"),
    ("NODE_FAIL", "lost", "host-lost", "same"),
    ("CANCELLED", "killed", "interrupted", None),
])
def test_scheduler_states_map_onto_the_incident_registry(state, status, category, retry):
    from rstack.incidents import INCIDENTS, diagnose
    from rstack.runners.base import STATUS_BY_CATEGORY
    from rstack.runners.slurm_script import REASON_BY_STATE

    diag = diagnose([], exit_code=None, signal=None, reason=REASON_BY_STATE[state])
    assert diag.category == category
    assert STATUS_BY_CATEGORY.get(category, "failed") == status
    assert INCIDENTS[category].retry == retry


def test_node_failure_is_retried_with_the_same_args(project, cli, cluster, monkeypatch):
    """The node goes down under a running task (NODE_FAIL): a bounded same-args retry runs once
    the node is back."""
    node = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True).stdout.split()
    if os.geteuid() != 0 or len(node) != 1:
        pytest.skip("taking the node down needs root on a single-node cluster")
    monkeypatch.setenv("RSTACK_MAX_RETRIES", "1")
    slurm_project(project, {"a": ["--sleep", "30", "--lr", "0.2"]})
    proc = subprocess.Popen([str(RSTACK), "run"], cwd=project,
                            env=dict(os.environ, RSTACK_PROJECT=str(project)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = wait_for(lambda: records(project, "run.remote"), timeout=90, step=0.2)[0]
        wait_for(lambda: (cluster / "runs" / first["run_id"] / "results" / first["run_id"]
                          / "metrics.jsonl").exists(), timeout=60, step=0.2)
        subprocess.run(["scontrol", "update", f"nodename={node[0]}", "state=down",
                        "reason=rstack-test"], check=True, timeout=30)
        wait_for(lambda: len(records(project, "run.remote")) == 2, timeout=120, step=0.3)
    finally:
        subprocess.run(["scontrol", "update", f"nodename={node[0]}", "state=resume"],
                       capture_output=True, timeout=30)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    first_done, retry_done = finished(project)
    assert (first_done["status"], first_done["category"]) == ("lost", "host-lost")
    assert "ended NODE_FAIL" in first_done["message"]
    (retry,) = records(project, "run.retry")
    assert retry["policy"] == "same" and retry["retry_run_id"] == retry_done["run_id"]
    assert retry_done["status"] == "ok"
    started = records(project, "run.started")
    assert started[1]["args"] == started[0]["args"] and started[1]["retry_of"] == first["run_id"]


@pytest.mark.parametrize("way", ["login-node", "over-ssh"])
def test_the_demo_plan_end_to_end(project, cli, cluster, monkeypatch, request, way):
    """`rstack run --profile slurm` on the demo's plan: 2 arms x 3 seeds, one array, all ok."""
    base_python = os.path.realpath(sys.executable)  # the venv's interpreter, with its numpy
    probe = subprocess.run([base_python, "-c", "import numpy"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"the demo's train.py needs numpy in {base_python}")
    monkeypatch.setenv("RSTACK_SLURM_PYTHON", base_python)
    if way == "over-ssh":
        from ssh_fixtures import ALIAS

        request.getfixturevalue("sshd").env(monkeypatch)
        monkeypatch.setenv("RSTACK_SLURM_HOST", ALIAS)
    demo = Path(__file__).resolve().parents[1] / "examples" / "demo"
    for name in ("experiment-plan.md", "train.py"):
        shutil.copy(demo / name, project / name)
    preflight_pass(project)
    result = cli("run", "--profile", "slurm")
    assert result.exit_code == 0, result.output
    assert "6 run(s): 6 ok" in result.output
    (job,) = records(project, "slurm.job")
    assert job["array"] == "0-5%6"
    assert {r["host"] for r in records(project, "run.started")} == {
        "slurm:" + ("local" if way == "login-node" else os.environ["RSTACK_SLURM_HOST"])}
    assert all(set(r["metrics"]) >= {"val_loss", "val_accuracy", "train_loss"}
               for r in finished(project))


def test_a_job_the_controller_forgot_is_read_from_the_completion_log(project, cluster, tmp_path):
    """After MinJobAge scontrol no longer knows a job; without slurmdbd, `sacct -c` (jobcomp)
    still does, by the raw job id the task wrote into its run directory."""
    from rstack.runners import make_runner
    from rstack.runners.slurm import Task

    done = subprocess.run(["sbatch", "--parsable", "--wrap", "true", "-o", "/dev/null"],
                          capture_output=True, text=True, check=True).stdout.strip()
    wait_for(lambda: "COMPLETED" in subprocess.run(
        ["sacct", "-c", "-n", "-P", "-j", done, "-o", "State"], capture_output=True,
        text=True).stdout, timeout=60, step=0.5)
    run_dir = cluster / "runs" / "r1"
    (run_dir / ".rstack-run").mkdir(parents=True)
    (run_dir / ".rstack-run" / "slurm_job_id").write_text(done + "\n")
    runner = make_runner("slurm", project)
    contact, exit_info, fields = runner.poll(Task("r1", "999999", 0, str(run_dir), ""))
    assert (contact, exit_info) == ("ok", None)
    assert fields["state"] == "COMPLETED" and fields["exit_code"] == "0:0"


def test_compute_detect_survives_a_hanging_sinfo(monkeypatch, tmp_path):
    # A controller that does not answer makes sinfo hang; the probe gives up and says so.
    (tmp_path / "sinfo").write_text("#!/bin/sh\nexec sleep 30\n")
    (tmp_path / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    slurm = compute.probe_slurm(timeout_s=0.3)
    assert slurm["sinfo"] == str(tmp_path / "sinfo") and slurm["partitions"] == []
    assert slurm["error"] == "sinfo did not answer in 0.3s"
