"""A real OpenSSH server on a loopback port, run as the current user with its own keys and config."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

SSHD = "/usr/sbin/sshd"
ALIAS = "rstack-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    def __init__(self, base: Path):
        self.base = base
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        base.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)],
                           check=True)
        shutil.copy(base / "user_key.pub", base / "authorized_keys")
        self.sshd_config = base / "sshd_config"
        self.sshd_config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
            f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin yes\nStrictModes no\nUsePAM no\nLogLevel ERROR\nMaxStartups 100\n"
            "MaxSessions 100\n")
        self.client_config = base / "ssh_config"
        self.client_config.write_text(
            f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {self.port}\n  User {_user()}\n"
            f"  IdentityFile {base / 'user_key'}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
            # What `vastai ssh-url` hands back in the vastai tests: ssh://user@127.0.0.1:PORT.
            f"Host 127.0.0.1\n  IdentityFile {base / 'user_key'}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
        self.remote_dir = base / "remote"

    def start(self) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.sshd_config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.answers():
                return
            time.sleep(0.1)
        raise RuntimeError("sshd did not come up")

    def answers(self) -> bool:
        result = subprocess.run(["ssh", "-F", str(self.client_config), "-o", "BatchMode=yes",
                                 "-o", "ConnectTimeout=2", ALIAS, "true"], capture_output=True)
        return result.returncode == 0

    def stop(self) -> None:
        """Kill the listener and every connection it serves (the detached runs live on)."""
        if self.proc is None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        sessions = [c for c in children if c.name().startswith("sshd")]
        self.proc.kill()
        self.proc.wait()
        for child in sessions:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc = None

    def env(self, monkeypatch, **extra) -> None:
        monkeypatch.setenv("RSTACK_SSH_HOSTS", ALIAS)
        monkeypatch.setenv("RSTACK_SSH_CONFIG", str(self.client_config))
        monkeypatch.setenv("RSTACK_SSH_REMOTE_DIR", str(self.remote_dir))
        monkeypatch.setenv("RSTACK_SSH_PYTHON", "/usr/bin/python3" if Path("/usr/bin/python3").exists()
                           else "python3")
        monkeypatch.setenv("RSTACK_SSH_POLL_S", "0.3")
        monkeypatch.setenv("RSTACK_SSH_LOST_AFTER_S", "30")
        for key, value in extra.items():
            monkeypatch.setenv(key, value)


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip(f"OpenSSH server not installed ({SSHD}); CI installs openssh-server")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()
    # Runs a test left detached (lost-host cases) must not outlive the module.
    for proc in psutil.process_iter():
        try:
            if str(server.remote_dir) in " ".join(proc.cmdline()):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass


def remote_processes(sshd: Sshd, run_id: str) -> list[psutil.Process]:
    """The run's agent and script on the 'remote' host (this machine); not the monitor's polls."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.cwd() != str(sshd.remote_dir / "runs" / run_id):
                continue
            cmd = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if cmd[1:2] == ["train.py"] or any(a.endswith(".rstack-run/agent.py") for a in cmd):
            found.append(proc)
    return found


def wait_for(predicate, timeout=30.0, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def kill(procs, sig=signal.SIGKILL):
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
