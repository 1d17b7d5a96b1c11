"""One harness per runner for the conformance suite: the same project, the same plan, real parts.

local: this machine; ssh: the loopback sshd; vastai: its stand-in CLI, then the loopback sshd;
modal: the real function body through `.local()`, its Volume a directory (the cloud is the one
thing simulated); slurm: the single-node cluster `.ci/slurm-up` starts (sbatch here), and
slurm-ssh: the same cluster through its login node over the loopback sshd.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from runs_fixtures import DATA

REPO = Path(__file__).resolve().parents[1]
VASTAI_OFFERS = [{"id": 8, "gpu_name": "RTX_4090", "dph_total": 0.30}]


def use_vastai_standin(tmp_path: Path, monkeypatch, ssh_port: int, offers: list[dict],
                       polls_until_running: int) -> Path:
    """`vastai` on PATH is the stand-in (its instances are the sshd on ssh_port); returns the
    state file it answers from."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vastai").symlink_to(DATA / "vastai_standin.py")
    state = tmp_path / "vast.json"
    state.write_text(json.dumps({"offers": offers, "polls_until_running": polls_until_running}))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VASTAI_STANDIN_STATE", str(state))
    monkeypatch.setenv("VASTAI_STANDIN_SSH_URL", f"ssh://root@127.0.0.1:{ssh_port}")
    return state


def use_slurm_cluster_dir(tmp_path: Path, monkeypatch) -> Path:
    """The slurm runner's run directories on the "shared filesystem" (this machine), polled
    often."""
    cluster_dir = tmp_path / "cluster"
    cluster_dir.mkdir()
    monkeypatch.setenv("RSTACK_SLURM_REMOTE_DIR", str(cluster_dir))
    monkeypatch.setenv("RSTACK_SLURM_POLL_S", "0.3")
    monkeypatch.setenv("RSTACK_SLURM_PYTHON", "/usr/bin/python3" if Path("/usr/bin/python3").exists()
                       else "python3")
    monkeypatch.setenv("RSTACK_SSH_TIMEOUT_GRACE_S", "60")
    return cluster_dir


def slurm_cluster_reason() -> str | None:
    """Why no SLURM cluster answers here (None when one does)."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return "no SLURM client here (CI installs slurmctld slurmd slurm-client munge; .ci/slurm-up)"
    # A node finishing an earlier test's job ('completing') or coming back after the NODE_FAIL
    # test is busy, not absent: wait for it instead of skipping the rest of the SLURM tests.
    deadline = time.monotonic() + 90
    while True:
        try:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                                 timeout=20)
        except subprocess.TimeoutExpired:
            return "sinfo did not answer in 20 s (is slurmctld running? sudo .ci/slurm-up)"
        states = [s.rstrip("*~#") for s in out.stdout.split()]
        up = out.returncode == 0 and any(s in ("idle", "mixed", "allocated") for s in states)
        transient = out.returncode == 0 and any(
            s in ("completing", "mixing", "powering_up", "reboot_issued") or "completing" in s
            for s in states)
        if up or not transient or time.monotonic() > deadline:
            break
        time.sleep(1)
    if not up:
        return (f"no SLURM node is up (sinfo: {(out.stdout + out.stderr).strip()[:120]!r}); "
                "start the single-node cluster with sudo .ci/slurm-up")
    return None


def slurm_jobs_of(remote_dir: Path) -> list[str]:
    """Job ids in the queue whose working directory is under remote_dir (this test's jobs)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True,
                         timeout=20).stdout
    return [line.split()[0] for line in out.splitlines()
            if len(line.split()) > 1 and line.split()[1].startswith(str(remote_dir))]


@dataclass
class Harness:
    profile: str  # the plan's profile
    name: str  # the test id (slurm-ssh is the slurm profile through a login node)
    gpu: str | None
    make: Callable[[Path], object]
    remote_dir: Path | None  # where a run's directory lives on the far side (None: local)
    can_reattach: bool
    cli: bool = True  # whether `rstack run` in a subprocess can drive it (modal's .local cannot)
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def run_dir(self, project: Path, run_id: str) -> Path:
        return project if self.remote_dir is None else self.remote_dir / "runs" / run_id


class DirVolume:
    """A Modal Volume's read side over a local directory."""

    def __init__(self, base: Path):
        self.base = base

    def read_file(self, path: str):
        yield (self.base / path).read_bytes()


class LocalCalls:
    """`fn.map`/`fn.remote` as `.local()` calls writing into a directory Volume."""

    def __init__(self, fn, project: Path, volume: Path):
        self.fn, self.project, self.volume = fn, project, volume

    def _payload(self, payload: dict) -> dict:
        return {**payload, "project_dir": str(self.project), "results_dir": str(self.volume),
                "quiet": True, "commit_volume": False}

    def remote(self, payload: dict) -> dict:
        return self.fn.local(self._payload(payload))

    def map(self, payloads, return_exceptions=True, order_outputs=False):
        for payload in payloads:
            yield self.remote(payload)


def local_modal_runner(project: Path, volume: Path):
    from rstack.costs import usd_per_hour
    from rstack.runners import modal_app

    class LocalModalRunner(modal_app.ModalRunner):
        """ModalRunner with app.run() replaced by .local() calls (no credentials, no cloud)."""

        def prepare(self, specs):
            self.usd_per_hour = usd_per_hour("modal", self.gpu)
            timeout = max((s.timeout_s or 0 for s in specs), default=0) or None
            _app, fn, _ = modal_app.build_app(self.root, gpu=self.gpu, timeout_s=timeout)
            self._fn = LocalCalls(fn, self.root, volume)
            self._volume = DirVolume(volume)
            self._pending = list(specs)
            for spec in specs:
                self._events[spec.run_id] = threading.Event()

    return LocalModalRunner(project, gpu="A10G")


def build_harness(name: str, request, project: Path, monkeypatch, tmp_path: Path) -> Harness:
    from rstack.runners import make_runner
    from rstack.runners.local import LocalRunner

    monkeypatch.setenv("RSTACK_MAX_RETRIES", "0")
    if name == "local":
        return Harness("local", name, None, lambda root: LocalRunner(root, jobs=1, gpus=[]),
                       None, can_reattach=False)
    if name == "modal":
        pytest.importorskip("modal")
        volume = tmp_path / "volume"
        return Harness("modal", name, "A10G", lambda root: local_modal_runner(root, volume),
                       None, can_reattach=False, cli=False)
    if name in ("slurm", "slurm-ssh"):
        reason = slurm_cluster_reason()
        if reason:
            pytest.skip(reason)
    sshd = request.getfixturevalue("sshd") if name in ("ssh", "vastai", "slurm-ssh") else None
    if sshd is not None:
        sshd.env(monkeypatch)
    if name == "ssh":
        return Harness("ssh", name, None, lambda root: make_runner("ssh", root), sshd.remote_dir,
                       can_reattach=True)
    if name == "vastai":
        use_vastai_standin(tmp_path, monkeypatch, sshd.port, VASTAI_OFFERS, polls_until_running=1)
        monkeypatch.setenv("RSTACK_VASTAI_POLL_S", "0.05")
        return Harness("vastai", name, "RTX_4090",
                       lambda root: make_runner("vastai", root, gpu="RTX_4090"),
                       sshd.remote_dir, can_reattach=True)
    cluster_dir = use_slurm_cluster_dir(tmp_path, monkeypatch)
    if name == "slurm-ssh":
        from ssh_fixtures import ALIAS

        monkeypatch.setenv("RSTACK_SLURM_HOST", ALIAS)
    harness = Harness("slurm", name, None, lambda root: make_runner("slurm", root), cluster_dir,
                      can_reattach=True)

    def cancel_leftovers():
        jobs = slurm_jobs_of(cluster_dir)
        if jobs:
            subprocess.run(["scancel", *jobs], capture_output=True, timeout=30)

    harness.cleanup.append(cancel_leftovers)
    return harness
