"""A served toy program on 127.0.0.1 (`rstack program serve` in a subprocess) and members as
separate processes with their own HOME, RSTACK_HOME and git clone: for the shared-program tests
and bench/program_claims.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from program_fixtures import make_project

REPO = Path(__file__).resolve().parents[1]
RSTACK = str(REPO / "bin" / "rstack")


def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSTACK_")}
    env.update(HOME=str(home), RSTACK_HOME=str(home / ".rstack"), GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


class Server:
    """`rstack program serve` over an owner project with a baseline; `url` from its first line."""

    def __init__(self, root: Path, home: Path, *args: str):
        self.root, self.home, self.args = root, home, args
        self.proc = None
        self.url = None
        self.start()

    def start(self) -> None:
        port = self.url.rsplit(":", 1)[1] if self.url else "0"  # a restart keeps its port
        self.proc = subprocess.Popen([RSTACK, "program", "serve", "--port", port, *self.args],
                                     cwd=self.root, env=clean_env(self.home), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.url = self.proc.stdout.readline().strip()
        assert re.match(r"^https?://127\.0\.0\.1:\d+$", self.url), (self.url, self.proc.stderr.read())
        self.owner_token = json.loads((self.root / ".rstack/program-server/owner.json").read_text())["token"]

    def kill(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def owner(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.root, self.home, *args, check=check)

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)


def run(cwd: Path, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([RSTACK, *args], cwd=cwd, env=clean_env(home), capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"rstack {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def owner_project(tmp_path: Path, **kw) -> tuple[Path, Path]:
    """A toy project with its baseline run (the first champion), and the owner's HOME."""
    home = tmp_path / "owner-home"
    home.mkdir()
    root = make_project(tmp_path / "owner", **kw)
    run(root, home, "program", "baseline")
    return root, home


class Member:
    """A member on "another machine": its own HOME and clone, driving the real CLI."""

    def __init__(self, tmp_path: Path, name: str):
        self.name = name
        self.home = tmp_path / f"{name}-home"
        self.home.mkdir()
        self.clone = self.home / "toy"

    def join(self, server: Server) -> None:
        proc = subprocess.Popen([RSTACK, "program", "join", server.url, "--name", self.name],
                                cwd=self.home, env=clean_env(self.home), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        code = re.search(r"user code: (\S+)", proc.stdout.readline()).group(1)
        server.owner("program", "approve", code)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        self.token = json.loads((self.home / ".rstack/programs/toy.json").read_text())["token"]

    def rstack(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return run(cwd or self.clone, self.home, *args, check=check)

    def pull(self) -> None:
        self.rstack("program", "pull", cwd=self.home)

    def candidate(self, message: str, **constants) -> str:
        """Commit a change of train.py's constants on the champion, and preflight it."""
        text = (self.clone / "train.py").read_text()
        for name, value in constants.items():
            text = re.sub(rf"^{name} = .*$", f"{name} = {value!r}", text, flags=re.M)
        (self.clone / "train.py").write_text(text)
        subprocess.run(["git", "-C", str(self.clone), "commit", "-qam", message], check=True,
                       env=clean_env(self.home))
        self.rstack("preflight", "train.py")
        return subprocess.run(["git", "-C", str(self.clone), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
