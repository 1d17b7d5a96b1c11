"""One conformance suite for every runner (Hydra's LauncherTestSuite, for rstack's profiles).

The same plan and script go through each runner; the ledger's run.finished record must say the
same thing on every profile (status, category, exit code, metrics, artifact names). Then the two
process-level cases: SIGTERM to `rstack run` stops everything it started, and a controller that
dies mid-run is followed up by `rstack run --resume` (re-attached where the runner can; closed and
run again where it cannot).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rstack.plan import compile_plan, load_plan
from rstack.runners import PROFILES
from rstack.runs import RunPolicy, execute, specs_from_matrix
from runners_fixtures import build_harness, slurm_jobs_of
from runs_fixtures import finished, records, write_project
from ssh_fixtures import sshd, wait_for  # noqa: F401
from test_runs_ssh import preflight_pass

RSTACK = Path(sys.executable).parent / "rstack"
RUNNERS_UNDER_TEST = ["local", "ssh", "vastai", "modal", "slurm", "slurm-ssh"]
ARTIFACTS = ["metrics.json", "metrics.jsonl", "stdout.log"]
pytestmark = pytest.mark.filterwarnings("ignore:The run_one function is executing locally")


def test_every_registered_profile_is_under_test():
    assert set(PROFILES) <= set(RUNNERS_UNDER_TEST)


@pytest.fixture(params=RUNNERS_UNDER_TEST)
def harness(request, project, monkeypatch, tmp_path):
    h = build_harness(request.param, request, project, monkeypatch, tmp_path)
    yield h
    for step in h.cleanup:
        step()


def fake_metrics(lr: float, seed: int = 0) -> dict:
    loss = 1.0 + seed * 0.01
    for _ in range(10):
        loss = loss * (1 - lr)
    return {"val_loss": loss * 1.1, "train_loss": loss, "lr": lr, "batch_size": 32,
            "cuda_device": -1, "saw_venv_dir": 0}


# What run.finished must say for each case, on every profile.
EXPECTED = {
    "ok": {"status": "ok", "category": None, "exit_code": 0, "metrics": fake_metrics(0.2),
           "artifacts": ARTIFACTS},
    "crash": {"status": "failed", "category": "crash", "exit_code": 1, "metrics": None,
              "artifacts": ARTIFACTS[1:]},
    "timeout": {"status": "timeout", "category": "timeout", "exit_code": None, "metrics": None,
                "artifacts": ARTIFACTS[1:]},
}
ARGS = {"ok": ["--lr", "0.2"], "crash": ["--mode", "crash"], "timeout": ["--mode", "sleep"]}


def normalized(record: dict) -> dict:
    metrics = record["metrics"]
    if metrics:
        metrics = {k: pytest.approx(v) for k, v in metrics.items()}
    return {"status": record["status"], "category": record["category"],
            "exit_code": record["exit_code"], "metrics": metrics,
            "artifacts": sorted(Path(a["path"]).name for a in record["artifacts"])}


def run_plan(h, project, args, *, timeout_s=60, runner=None):
    write_project(project, {"a": args}, seeds=(0,), timeout_s=timeout_s, profile=h.profile,
                  gpu=h.gpu, max_cost_usd=5)
    preflight_pass(project)
    plan = load_plan(project / "experiment-plan.md")
    specs = specs_from_matrix(compile_plan(plan, root=project).runs, plan.script)
    return execute(project, specs, runner or h.make(project),
                   policy=RunPolicy(plan=plan, max_retries=0, protected=plan.protected))


@pytest.mark.parametrize("case", ["ok", "crash", "timeout"])
def test_same_inputs_give_the_same_ledger_records(harness, project, case):
    report = run_plan(harness, project, ARGS[case], timeout_s=4 if case == "timeout" else 60)
    (rec,) = finished(project)
    assert normalized(rec) == EXPECTED[case], rec
    (started,) = records(project, "run.started")
    assert started["profile"] == harness.profile and started["args"] == ARGS[case]
    assert report.ok == (case == "ok")
    if case == "ok":
        out = project / rec["artifacts"][0]["path"]
        assert out.is_file(), "outputs are local when run.finished is written"


def test_artifact_mismatch_fails_verification(harness, project, monkeypatch):
    if harness.profile == "local":
        pytest.skip("local outputs are the originals: nothing is copied, so nothing to verify")
    from rstack.runners import modal_app
    from rstack.runners.ssh import SshRunner

    def tamper(path: Path) -> None:
        path.write_text(path.read_text() + " ")

    original_download = SshRunner.download  # ssh, vastai's inner runner, slurm's login node

    def corrupting_download(self, target, spec, run_dir, *, expect_manifest):
        self._checked(target, f"echo tampered >> {run_dir}/{spec.output_dir}/metrics.json",
                      "tamper")
        return original_download(self, target, spec, run_dir, expect_manifest=expect_manifest)

    original_fetch = modal_app.fetch_from_volume

    def corrupting_fetch(volume, root, manifest):
        original_fetch(volume, root, manifest)
        tamper(next(Path(root) / e["path"] for e in manifest if e["path"].endswith("metrics.json")))

    monkeypatch.setattr(SshRunner, "download", corrupting_download)
    monkeypatch.setattr(modal_app, "fetch_from_volume", corrupting_fetch)
    run_plan(harness, project, ["--lr", "0.2"])
    (rec,) = finished(project)
    assert (rec["status"], rec["category"]) == ("failed", "artifact-mismatch"), rec
    assert "metrics.json: sha256" in rec["message"]


def _start(project: Path) -> subprocess.Popen:
    return subprocess.Popen([str(RSTACK), "run"], cwd=project,
                            env=dict(os.environ, RSTACK_PROJECT=str(project)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _script_running(h, project) -> str:
    """The run id once the script has written its first history line on the far side."""
    started = records(project, "run.started")
    if not started:
        return ""
    run = started[0]
    history = h.run_dir(project, run["run_id"]) / run["output_dir"] / "metrics.jsonl"
    return run["run_id"] if history.is_file() and history.stat().st_size else ""


def _processes_of(run_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if run_id in " ".join(proc.cmdline()) or run_id in proc.cwd():
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_sigterm_stops_and_records_killed(harness, project):
    if not harness.cli:
        pytest.skip("a .local() Modal body runs inside this process: there is no container to "
                    "stop (in the cloud, cancel() stops the ephemeral app)")
    write_project(project, {"a": ["--mode", "sleep"]}, seeds=(0,), timeout_s=300,
                  profile=harness.profile, gpu=harness.gpu, max_cost_usd=5)
    preflight_pass(project)
    proc = _start(project)
    run_id = wait_for(lambda: _script_running(harness, project), timeout=90, step=0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "interrupted: runs in flight were recorded killed" in out
    (rec,) = finished(project)
    assert (rec["run_id"], rec["status"], rec["category"]) == (run_id, "killed", "interrupted")
    wait_for(lambda: not [p for p in _processes_of(run_id) if p.is_running()
                          and p.status() != psutil.STATUS_ZOMBIE], timeout=30)
    if harness.profile == "slurm":
        assert slurm_jobs_of(harness.remote_dir) == [], "scancel ended the job array"


def test_resume_after_the_controller_dies(harness, project, tmp_path):
    if not harness.cli:
        pytest.skip("Modal calls cannot be re-attached (the closed-as-lost path is tested in "
                    "test_runs_local.py::test_resume_closes_unfollowable_remote_runs_as_lost)")
    starts = tmp_path / "starts.txt"
    write_project(project, {"a": ["--sleep", "6", "--starts-file", str(starts)]}, seeds=(0,),
                  timeout_s=300, profile=harness.profile, gpu=harness.gpu, max_cost_usd=5)
    preflight_pass(project)
    proc = _start(project)
    run_id = wait_for(lambda: _script_running(harness, project), timeout=90, step=0.2)
    proc.kill()  # the controller dies; a remote run does not
    proc.wait()
    assert finished(project) == []
    result = subprocess.run([str(RSTACK), "run", "--resume"], cwd=project,
                            env=dict(os.environ, RSTACK_PROJECT=str(project)),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    done = {r["run_id"]: r for r in finished(project)}
    if harness.can_reattach:
        assert list(done) == [run_id] and done[run_id]["status"] == "ok"
        assert len(starts.read_text().splitlines()) == 1, "re-attached, never started again"
        assert len(records(project, "run.started")) == 1
    else:  # local: the run died with its supervisor; it is closed killed and run again
        assert done[run_id]["status"] == "killed" and done[run_id]["category"] == "interrupted"
        assert [r["status"] for k, r in done.items() if k != run_id] == ["ok"]
        assert len(starts.read_text().splitlines()) == 2
