"""The ssh profile against a real sshd on 127.0.0.1: normal runs and the fault cases."""

from __future__ import annotations

import hashlib
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
from rstack.runners.ssh import SshRunner, SshTarget, verify_manifest
from rstack.runs import RunPolicy, execute, specs_from_matrix
from runs_fixtures import finished, records, write_project
from ssh_fixtures import ALIAS, kill, remote_processes, sshd, wait_for  # noqa: F401

RSTACK = Path(sys.executable).parent / "rstack"


def preflight_pass(root: Path, script="train.py") -> None:
    sha = hashlib.sha256((root / script).read_bytes()).hexdigest()
    Ledger(root, "experiments").append({"type": "preflight", "script": script, "script_sha256": sha,
                                        "verdict": "PASS", "category": None, "duration_s": 1.0})


def ssh_project(project, sshd, monkeypatch, arms, seeds=(0,), timeout_s=120, **env):
    sshd.env(monkeypatch, **env)
    write_project(project, arms, seeds=seeds, timeout_s=timeout_s, profile="ssh")
    preflight_pass(project)


def test_target_parsing():
    assert SshTarget.parse("me@box:2222").args() == ["-p", "2222", "me@box"]
    assert SshTarget.parse("gpu-alias").args() == ["gpu-alias"]
    from rstack.runs import RunError
    with pytest.raises(RunError, match="the port after ':' must be a number"):
        SshTarget.parse("me@box:ssh")
    with pytest.raises(RunError, match="is not an alias or user@host:port"):
        SshTarget.parse("me box")


def test_no_hosts_configured(project, cli, monkeypatch):
    write_project(project, {"a": []}, profile="ssh")
    preflight_pass(project)
    result = cli("run")
    assert result.exit_code == 1 and "the ssh profile has no hosts" in result.output


def test_preflight_gate_refuses_unpreflighted_script(project, cli, sshd, monkeypatch):
    sshd.env(monkeypatch)
    write_project(project, {"a": []}, profile="ssh")
    result = cli("run")
    assert result.exit_code == 1
    assert "preflight gate: train.py" in result.output and "may not run on the ssh profile" in result.output
    assert records(project, "run.started") == []


@pytest.mark.parametrize("sync", ["tar", "rsync"])
def test_normal_ssh_runs(project, cli, sshd, monkeypatch, sync):
    if sync == "rsync" and not shutil.which("rsync"):
        pytest.skip("rsync is not installed (the tar path is tested)")
    ssh_project(project, sshd, monkeypatch, {"a": ["--lr", "0.2"]}, seeds=(0, 1),
                RSTACK_SSH_SYNC=sync)
    (project / "requirements.txt").write_text("")  # an empty requirements file still bootstraps
    (project / "venv").mkdir()  # environments are never shipped
    (project / "venv" / "big.bin").write_bytes(b"x" * 1000)
    result = cli("run")
    assert result.exit_code == 0, result.output
    done = finished(project)
    assert [r["status"] for r in done] == ["ok", "ok"]
    started = records(project, "run.started")
    assert all(s["host"] == ALIAS and s["command"][0] == "python" for s in started)
    for rec in done:
        names = sorted(Path(a["path"]).name for a in rec["artifacts"])
        assert names == ["metrics.json", "metrics.jsonl", "stdout.log"]
        assert rec["metrics"]["lr"] == 0.2 and rec["metrics"]["saw_venv_dir"] == 0
        assert "start mode=ok" in (project / rec["artifacts"][-1]["path"]).read_text()
    remote = records(project, "run.remote")
    assert len(remote) == 2 and {r["sync"] for r in remote} == {sync}
    # Verified, so the remote run directories are gone; the bootstrapped env stays for reuse.
    assert not any((sshd.remote_dir / "runs" / s["run_id"]).exists() for s in started)
    envs = [e for e in (sshd.remote_dir / "envs").iterdir() if (e / "requirements.txt").exists()
            and (e / "requirements.txt").read_text() == ""]
    assert envs and all((e / ".ready").exists() for e in envs)


def _start_cli(project, *args):
    env = dict(os.environ, RSTACK_PROJECT=str(project))
    return subprocess.Popen([str(RSTACK), "run", *args], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _remote_record(project):
    recs = records(project, "run.remote") if paths.ledger_path(project, "experiments").exists() else []
    return recs[0] if recs else None


def test_remote_process_killed_mid_run(project, sshd, monkeypatch):
    ssh_project(project, sshd, monkeypatch, {"slow": ["--mode", "sleep"]},
                RSTACK_MAX_RETRIES="0")
    proc = _start_cli(project)
    remote = wait_for(lambda: _remote_record(project))
    run_id = remote["run_id"]
    child = wait_for(lambda: [p for p in remote_processes(sshd, run_id)
                              if p.cmdline()[1:2] == ["train.py"]])
    kill(child)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    (rec,) = finished(project)
    assert rec["status"] == "killed" and rec["category"] == "killed-by-signal"
    assert rec["exit_code"] is None and "SIGKILL" in rec["message"]
    # The agent survived, wrote its manifest, and the outputs verified: the remote dir is cleaned.
    assert not (sshd.remote_dir / "runs" / run_id).exists()


def test_remote_agent_death_is_not_host_loss(project, sshd, monkeypatch):
    ssh_project(project, sshd, monkeypatch, {"slow": ["--mode", "sleep"]},
                RSTACK_MAX_RETRIES="0")
    proc = _start_cli(project)
    run_id = wait_for(lambda: _remote_record(project))["run_id"]
    agent = wait_for(lambda: _agent_once_script_runs(sshd, run_id))
    kill(agent + [p for p in remote_processes(sshd, run_id) if p.cmdline()[1:2] == ["train.py"]])
    # the agent and the script: nothing writes an exit status
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    (rec,) = finished(project)
    assert rec["status"] == "killed" and rec["category"] == "killed-by-signal"
    assert "died without writing an exit status" in rec["message"]
    assert rec["remote_dir"] and (sshd.remote_dir / "runs" / run_id).exists(), "kept for inspection"


def test_connection_dropped_mid_run_reconnects_without_duplicate(project, sshd, monkeypatch, tmp_path):
    starts = tmp_path / "starts.txt"
    ssh_project(project, sshd, monkeypatch,
                {"a": ["--sleep", "4", "--starts-file", str(starts)]})
    proc = _start_cli(project)
    run_id = wait_for(lambda: _remote_record(project))["run_id"]
    wait_for(lambda: starts.exists())
    sshd.stop()  # every connection dropped; the detached run keeps going
    time.sleep(1.5)
    sshd.start()
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert starts.read_text().splitlines().__len__() == 1, "the run must have started exactly once"
    assert len(records(project, "run.started")) == 1
    (rec,) = finished(project)
    assert rec["run_id"] == run_id and rec["status"] == "ok"


def test_host_lost(project, sshd, monkeypatch):
    ssh_project(project, sshd, monkeypatch, {"a": ["--sleep", "6"]},
                RSTACK_MAX_RETRIES="0", RSTACK_SSH_LOST_AFTER_S="2")
    proc = _start_cli(project)
    wait_for(lambda: _remote_record(project))
    sshd.stop()
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        sshd.start()
    assert proc.returncode == 1, out
    (rec,) = finished(project)
    assert rec["status"] == "lost" and rec["category"] == "host-lost"


def test_resume_reattaches_without_starting_again(project, sshd, monkeypatch, tmp_path):
    starts = tmp_path / "starts.txt"
    ssh_project(project, sshd, monkeypatch, {"a": ["--sleep", "3", "--starts-file", str(starts)]})
    proc = _start_cli(project)
    run_id = wait_for(lambda: _remote_record(project))["run_id"]
    proc.kill()  # the local monitor dies; the remote run does not
    proc.wait()
    assert finished(project) == []
    result = subprocess.run([str(RSTACK), "run", "--resume"], cwd=project,
                            env=dict(os.environ, RSTACK_PROJECT=str(project)),
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(starts.read_text().splitlines()) == 1
    assert len(records(project, "run.started")) == 1
    (rec,) = finished(project)
    assert rec["run_id"] == run_id and rec["status"] == "ok"


class CorruptingRunner(SshRunner):
    """Real ssh; the only simulated thing is the corruption of a remote file before download."""

    def download(self, target, spec, run_dir, *, expect_manifest):
        self._checked(target, f"echo tampered >> {run_dir}/{spec.output_dir}/metrics.json", "tamper")
        return super().download(target, spec, run_dir, expect_manifest=expect_manifest)


def test_corrupted_artifact_fails_verification_and_keeps_remote(project, sshd, monkeypatch):
    ssh_project(project, sshd, monkeypatch, {"a": []}, RSTACK_MAX_RETRIES="0")
    from rstack.plan import compile_plan, load_plan

    plan = load_plan(project / "experiment-plan.md")
    specs = specs_from_matrix(compile_plan(plan, root=project).runs, plan.script)
    runner = CorruptingRunner.from_config(project)
    report = execute(project, specs, runner, policy=RunPolicy(plan=plan, max_retries=0,
                                                              protected=plan.protected))
    (result,) = report.results
    assert result.status == "failed" and result.category == "artifact-mismatch"
    assert "metrics.json: sha256" in result.message
    (rec,) = finished(project)
    assert rec["category"] == "artifact-mismatch" and rec["remote_dir"]
    assert rec["hint"].startswith("the downloaded outputs do not match the remote manifest")
    assert rec["remote_dir"] in rec["hint"]
    assert (sshd.remote_dir / "runs" / specs[0].run_id).is_dir(), "kept on verification failure"


def test_verify_manifest_reports_missing_and_extra(tmp_path):
    out = tmp_path / "results" / "r1"
    out.mkdir(parents=True)
    (out / "a.txt").write_text("a")
    (out / "extra.txt").write_text("x")
    manifest = [{"path": "results/r1/a.txt", "bytes": 1,
                 "sha256": hashlib.sha256(b"a").hexdigest()},
                {"path": "results/r1/gone.txt", "bytes": 1, "sha256": "0" * 64}]
    assert verify_manifest(tmp_path, "results/r1", manifest) == [
        "results/r1/gone.txt: missing locally", "results/r1/extra.txt: not in the remote manifest"]


def test_ctrl_c_stops_remote_run_and_records_killed(project, sshd, monkeypatch):
    ssh_project(project, sshd, monkeypatch, {"slow": ["--mode", "sleep"]})
    proc = _start_cli(project)
    run_id = wait_for(lambda: _remote_record(project))["run_id"]
    wait_for(lambda: [p for p in remote_processes(sshd, run_id) if p.cmdline()[1:2] == ["train.py"]])
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "interrupted: runs in flight were recorded killed" in out
    (rec,) = finished(project)
    assert rec["status"] == "killed" and rec["category"] == "interrupted"
    assert records(project, "run.retry") == []
    wait_for(lambda: not remote_processes(sshd, run_id), timeout=10)


def test_wedged_agent_is_killed_at_timeout_by_the_monitor(project, sshd, monkeypatch):
    ssh_project(project, sshd, monkeypatch, {"slow": ["--mode", "sleep"]}, timeout_s=2,
                RSTACK_MAX_RETRIES="0", RSTACK_SSH_TIMEOUT_GRACE_S="1")
    proc = _start_cli(project)
    run_id = wait_for(lambda: _remote_record(project))["run_id"]
    agent = wait_for(lambda: _agent_once_script_runs(sshd, run_id))
    kill(agent, signal.SIGSTOP)  # the agent can no longer enforce the timeout
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        kill(agent, signal.SIGKILL)
    assert proc.returncode == 1, out
    (rec,) = finished(project)
    assert rec["status"] == "timeout" and rec["category"] == "timeout"
    assert "did not stop the run at its timeout; killed from here" in rec["message"]
    wait_for(lambda: not remote_processes(sshd, run_id), timeout=10)


def _agent_once_script_runs(sshd, run_id):
    """The remote agent process, once the script it started is running too (else None)."""
    procs = remote_processes(sshd, run_id)
    cmdlines = []
    for p in procs:
        try:
            cmdlines.append((p, p.cmdline()))
        except psutil.Error:
            continue
    agent = [p for p, cmd in cmdlines if any(a.endswith(".rstack-run/agent.py") for a in cmd)]
    script = [p for p, cmd in cmdlines if cmd[1:2] == ["train.py"]]
    return agent if agent and script else None


def test_sync_method_choice(project, monkeypatch):
    from rstack.runners import ssh as ssh_module
    from rstack.runs import RunError

    runner = SshRunner(project, [SshTarget.parse("me@box:22")])
    monkeypatch.setattr(ssh_module.shutil, "which", lambda name: None)
    assert runner._sync_method(remote_rsync=True) == "tar"
    monkeypatch.setenv("RSTACK_SSH_SYNC", "rsync")
    with pytest.raises(RunError, match="ssh_sync is rsync, but rsync is missing here"):
        runner._sync_method(remote_rsync=True)
    monkeypatch.setattr(ssh_module.shutil, "which", lambda name: "/usr/bin/rsync")
    with pytest.raises(RunError, match="rsync is missing on the remote host"):
        runner._sync_method(remote_rsync=False)
    assert runner._sync_method(remote_rsync=True) == "rsync"
    monkeypatch.setenv("RSTACK_SSH_SYNC", "tar")
    assert runner._sync_method(remote_rsync=True) == "tar"
