"""The ssh profile: a run in its own directory on any host `ssh` reaches, detached and monitored.

Per run: ship the code (rsync when both ends have it, else tar over ssh) into `<remote base>/runs/<run_id>`, start ssh_agent.py there
with setsid/nohup (pid, heartbeat and exit files), poll it, and on a dropped connection keep
polling until the host answers again: a live run is never started a second time (the launcher's
lock directory refuses). When it ends, download its outputs, check every file's sha256 against
the manifest the remote side wrote, and only then delete the remote directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import signal as signal_module
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import config, outbound
from ..ledger import Ledger
from .base import (ARTIFACT_MISMATCH, EXCLUDE_DIRS, LOG_FILE, RawOutcome, Runner, RunError,  # noqa: F401
                   RunSpec, verify_manifest)

AGENT = Path(__file__).with_name("ssh_agent.py")
STATE = ".rstack-run"
MAX_SHIPPED_FILE = 50 * 1024 * 1024
SSH_UNREACHABLE = 255


@dataclass(frozen=True)
class SshTarget:
    """`alias` (from ~/.ssh/config or the ssh_config key) or `user@host:port`."""

    spec: str
    dest: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> "SshTarget":
        text = text.strip()
        if not text or any(ch.isspace() for ch in text):
            raise RunError(f"ssh host {text!r} is not an alias or user@host:port",
                           hint="rstack config set ssh_hosts me@gpu-box:22")
        dest, port = text, None
        if ":" in text:
            dest, _, port_text = text.rpartition(":")
            if not port_text.isdigit() or not dest:
                raise RunError(f"ssh host {text!r}: the port after ':' must be a number",
                               hint="rstack config set ssh_hosts me@gpu-box:22")
            port = int(port_text)
        return cls(spec=text, dest=dest, port=port)

    def args(self) -> list[str]:
        return (["-p", str(self.port)] if self.port else []) + [self.dest]


def code_files(root: Path) -> list[Path]:
    """The project files a remote run needs: what may leave the project (rstack.outbound: no
    credential files, nothing .gitignore ignores) but state, outputs and environments."""
    return outbound.project_files(root, skip_dirs=[*EXCLUDE_DIRS, ".rstack*"],
                                  max_size=MAX_SHIPPED_FILE)


def code_tarball(root: Path) -> bytes:
    root = Path(root).resolve()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in code_files(root):
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
        tar.add(AGENT, arcname=f"{STATE}/agent.py")
    return buf.getvalue()


def env_key(root: Path, python: str) -> str:
    """The remote environment's identity: the requirements it installs and the interpreter."""
    req = Path(root) / "requirements.txt"
    digest = hashlib.sha256(python.encode() + b"\0")
    if req.is_file():
        digest.update(req.read_bytes())
    return digest.hexdigest()[:16]


class SshRunner(Runner):
    profile = "ssh"
    persistence = "remote run directory + sha256 manifest, verified on download"
    monitoring = True
    can_reattach = True

    def __init__(self, root: Path, targets: list[SshTarget], *, remote_base: str | None = None,
                 python: str | None = None, ssh_config: str | None = None, poll_s: float | None = None,
                 lost_after_s: float | None = None, instance_id: str | None = None,
                 cost_per_hour: float = 0.0, dry_run: bool = False, **_ignored):
        if not targets:
            raise RunError("the ssh profile has no hosts",
                           hint="rstack config set ssh_hosts me@gpu-box:22  (or an alias from ~/.ssh/config)")
        self.root = Path(root)
        self.targets = targets
        base = (remote_base or config.get("ssh_remote_dir")).rstrip("/")
        # Relative to the remote home; kept as ~/... so the remote shell (and agent) expand it.
        self.remote_base = base if base.startswith(("/", "~/")) else f"~/{base}"
        self.python = python or config.get("ssh_python")
        self.ssh_config = ssh_config if ssh_config is not None else config.get("ssh_config")
        self.poll_s = poll_s if poll_s is not None else float(config.get("ssh_poll_s"))
        self.lost_after_s = (lost_after_s if lost_after_s is not None
                             else float(config.get("ssh_lost_after_s")))
        self.timeout_grace_s = float(config.get("ssh_timeout_grace_s"))
        self.instance_id = instance_id
        self.cost_per_hour = cost_per_hour
        self.ledger = Ledger(self.root, "experiments")
        self._next = 0
        self._lock = threading.Lock()
        self._assigned: dict[str, SshTarget] = {}
        self._active: dict[str, tuple[SshTarget, str]] = {}
        self._envs: dict[str, str] = {}
        self._sync: dict[str, str] = {}
        self.verified: set[str] = set()

    @classmethod
    def from_config(cls, root: Path, **options) -> "SshRunner":
        hosts = config.get("ssh_hosts")
        return cls(root, [SshTarget.parse(h) for h in hosts], **options)

    @classmethod
    def create(cls, root: Path, **options) -> "SshRunner":
        return cls.from_config(root, **options)

    @classmethod
    def default_jobs(cls, specs: list[RunSpec]) -> int:
        """One run at a time per host: a remote box is usually one GPU."""
        return max(1, len(config.get("ssh_hosts")))

    @property
    def host(self) -> str:
        return self.targets[0].spec

    def host_for(self, spec: RunSpec) -> str:
        return self._target_for(spec).spec

    def _target_for(self, spec: RunSpec) -> SshTarget:
        with self._lock:
            if spec.run_id not in self._assigned:
                self._assigned[spec.run_id] = self.targets[self._next % len(self.targets)]
                self._next += 1
            return self._assigned[spec.run_id]

    # -- ssh plumbing

    def ssh_base(self) -> list[str]:
        base = ["ssh"]
        if self.ssh_config:
            base += ["-F", self.ssh_config]
        return base + ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                       "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]

    def ssh(self, target: SshTarget, command: str, *, input: bytes | None = None,
            timeout: float = 120, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.ssh_base() + target.args() + [command], input=input,
                                  stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, SSH_UNREACHABLE, b"", b"ssh timed out")

    def _checked(self, target: SshTarget, command: str, what: str, **kw) -> subprocess.CompletedProcess:
        result = self.ssh(target, command, **kw)
        if result.returncode != 0:
            err = (result.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
            raise RunError(f"ssh {target.spec}: {what} failed (exit {result.returncode}): "
                           f"{' | '.join(err) or 'no message'}",
                           hint=f"check that `ssh {target.spec}` works without a password prompt")
        return result

    def run_dir(self, spec: RunSpec) -> str:
        return f"{self.remote_base}/runs/{spec.run_id}"

    # -- the Runner protocol

    def prepare(self, specs: list[RunSpec]) -> None:
        """Bootstrap each host's environment once per code version (venv + requirements)."""
        key = env_key(self.root, self.python)
        req = self.root / "requirements.txt"
        used = {self._target_for(spec).spec: self._target_for(spec) for spec in specs}
        for target in used.values():
            env_dir = f"{self.remote_base}/envs/{key}"
            if req.is_file():
                make = (f"{shlex.quote(self.python)} -m venv --system-site-packages {q(env_dir)}/venv"
                        f" && {q(env_dir)}/venv/bin/pip install -q -r {q(env_dir)}/requirements.txt")
            else:
                make = (f"{shlex.quote(self.python)} -m venv --without-pip --system-site-packages "
                        f"{q(env_dir)}/venv")
            script = (f"set -e; mkdir -p {q(env_dir)}; cd {q(env_dir)}; "
                      f"if [ ! -f .ready ]; then cat > requirements.txt; rm -rf venv; {make}; "
                      f"touch .ready; echo BOOTSTRAPPED; else cat > /dev/null; echo READY; fi; "
                      f"if command -v rsync >/dev/null 2>&1; then echo RSYNC; fi")
            result = self._checked(target, script, "bootstrap (venv + requirements)",
                                   input=req.read_bytes() if req.is_file() else b"", timeout=1800)
            self._envs[target.spec] = f"{env_dir}/venv/bin/python"
            remote_rsync = b"RSYNC" in (result.stdout or b"").split()
            self._sync[target.spec] = self._sync_method(remote_rsync)

    def _sync_method(self, remote_rsync: bool) -> str:
        """rsync when both ends have it (unless ssh_sync says otherwise), else tar over ssh."""
        mode = config.get("ssh_sync")
        if mode == "rsync" and not (shutil.which("rsync") and remote_rsync):
            raise RunError("ssh_sync is rsync, but rsync is missing "
                           + ("here" if not shutil.which("rsync") else "on the remote host"),
                           hint="install rsync on both ends, or: rstack config set ssh_sync auto")
        if mode == "tar":
            return "tar"
        return "rsync" if shutil.which("rsync") and remote_rsync else "tar"

    def upload(self, target: SshTarget, run_dir: str) -> str:
        """Ship the code and the agent into run_dir; returns the method used (rsync | tar)."""
        method = self._sync.get(target.spec, "tar")
        if method == "tar":
            self._checked(target, f"mkdir -p {q(run_dir)} && tar xzf - -C {q(run_dir)}",
                          "code upload", input=code_tarball(self.root), timeout=600)
            return method
        self._checked(target, f"mkdir -p {q(run_dir)}/{STATE} && cat > {q(run_dir)}/{STATE}/agent.py",
                      "agent upload", input=AGENT.read_bytes(), timeout=120)
        shell = " ".join(shlex.quote(a) for a in self.ssh_base() + (
            ["-p", str(target.port)] if target.port else []))
        # The same file list as tar (rstack.outbound), not rsync's own excludes.
        root = self.root.resolve()
        listing = b"".join(p.relative_to(root).as_posix().encode() + b"\0" for p in code_files(root))
        argv = ["rsync", "-a", "--compress", "--from0", "--files-from=-",
                "-e", shell, f"{root}/", f"{target.dest}:{run_dir}/"]
        try:
            result = subprocess.run(argv, input=listing, capture_output=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise RunError(f"rsync to {target.spec} timed out after 600s") from None
        if result.returncode != 0:
            raise RunError(f"rsync to {target.spec} failed (exit {result.returncode}): "
                           f"{result.stderr.decode('utf-8', 'replace').strip()[-300:]}",
                           hint="rstack config set ssh_sync tar  (ships the code with tar over ssh)")
        return method

    def launch(self, spec: RunSpec, *, on_line: Callable[[str], None] | None = None) -> RawOutcome:
        target = self._target_for(spec)
        run_dir = self.run_dir(spec)
        if target.spec not in self._envs:
            self.prepare([spec])
        method = self.upload(target, run_dir)
        agent = [self.python, f"{STATE}/agent.py", "--python", self._envs[target.spec],
                 "--output-dir", spec.output_dir, "--timeout", str(spec.timeout_s or 0), "--",
                 *spec.command]
        start = (f"cd {q(run_dir)} && if mkdir {STATE}/lock 2>/dev/null; then "
                 f"setsid nohup {' '.join(shlex.quote(a) for a in agent)} > {STATE}/agent.log 2>&1 "
                 f"< /dev/null & echo STARTED; else echo ALREADY; fi")
        started_at = time.time()
        for attempt in range(5):
            result = self.ssh(target, start, timeout=60)
            if result.returncode == 0:
                break
            if result.returncode != SSH_UNREACHABLE or attempt == 4:
                raise RunError(f"ssh {target.spec}: could not start the run: "
                               f"{(result.stderr or b'').decode('utf-8', 'replace').strip()}")
            time.sleep(min(5.0, 0.5 * 2 ** attempt))  # the lock makes a repeat harmless
        self.ledger.append({"type": "run.remote", "run_id": spec.run_id, "host": target.spec,
                            "remote_dir": run_dir, "pid": None, "instance_id": self.instance_id,
                            "sync": method})
        return self._follow(spec, target, run_dir, started_at)

    def reattach(self, spec: RunSpec, remote: dict) -> RawOutcome:
        """--resume: monitor a run the ledger shows in flight; never start it again."""
        target = next((t for t in self.targets if t.spec == remote["host"]), None) or \
            SshTarget.parse(remote["host"])
        with self._lock:
            self._assigned[spec.run_id] = target
        return self._follow(spec, target, remote["remote_dir"], time.time())

    def _follow(self, spec: RunSpec, target: SshTarget, run_dir: str, started_at: float) -> RawOutcome:
        with self._lock:
            self._active[spec.run_id] = (target, run_dir)
        try:
            deadline = (started_at + spec.timeout_s + self.timeout_grace_s) if spec.timeout_s else None
            state, info = self.monitor(target, run_dir, deadline=deadline)
            if state == "overdue":  # the agent did not enforce the timeout: end it from here
                self.ssh(target, f"cd {q(run_dir)} && for f in {STATE}/child {STATE}/pid; do "
                                 f"p=$(cat $f 2>/dev/null) && kill -KILL -- -$p $p 2>/dev/null; done; true",
                         timeout=60)
                state, info = "timeout", {"reason": "timeout", "exit_code": None, "signal": None,
                                          "duration_s": time.time() - started_at}
            duration = info.get("duration_s") or (time.time() - started_at)
            cost = self.cost_per_hour * (time.time() - started_at) / 3600.0
            if state == "lost":
                return RawOutcome(exit_code=None, signal=None, reason="host-lost",
                                  duration_s=time.time() - started_at, output_tail=[],
                                  cost_usd=cost, remote_dir=run_dir,
                                  message=f"no answer from {target.spec} for {self.lost_after_s:g}s")
            problems = self.download(target, spec, run_dir, expect_manifest=(state == "exit"))
            if state == "timeout":
                return RawOutcome(exit_code=None, signal=None, reason="timeout",
                                  duration_s=time.time() - started_at,
                                  output_tail=_tail(self.root / spec.output_dir / LOG_FILE),
                                  cost_usd=cost, remote_dir=run_dir,
                                  message=f"the remote agent on {target.spec} did not stop the run "
                                          f"at its timeout; killed from here")
            tail = _tail(self.root / spec.output_dir / LOG_FILE)
            if state == "dead":
                return RawOutcome(exit_code=None, signal=signal_module.SIGKILL, reason=None,
                                  duration_s=time.time() - started_at, output_tail=tail,
                                  cost_usd=cost, remote_dir=run_dir,
                                  message=f"the remote process on {target.spec} died without "
                                          "writing an exit status (killed, or the machine rebooted)")
            if problems:
                return RawOutcome(exit_code=info.get("exit_code"), signal=info.get("signal"),
                                  reason=ARTIFACT_MISMATCH, duration_s=duration, output_tail=tail,
                                  cost_usd=cost, remote_dir=run_dir,
                                  message="artifact verification failed: " + "; ".join(problems[:5]))
            self.verified.add(spec.run_id)
            self.ssh(target, f"rm -rf {q(run_dir)}", timeout=120)
            return RawOutcome(exit_code=info.get("exit_code"), signal=info.get("signal"),
                              reason=info.get("reason"), duration_s=duration, output_tail=tail,
                              cost_usd=cost)
        finally:
            with self._lock:
                self._active.pop(spec.run_id, None)

    def monitor(self, target: SshTarget, run_dir: str, *,
                deadline: float | None = None) -> tuple[str, dict]:
        """Poll until the run ends: ("exit", exit.json) | ("dead", {}) | ("lost", {}), or
        ("overdue", {}) when the wall clock passes `deadline` (timeout + grace) while it runs."""
        poll = (f"cd {q(run_dir)} 2>/dev/null || {{ echo NODIR; exit 0; }}; "
                f"pid=$(cat {STATE}/pid 2>/dev/null); "
                f"if [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null; then alive=1; else alive=0; fi; "
                f"if [ -f {STATE}/exit.json ]; then echo EXIT; cat {STATE}/exit.json; "
                f"elif [ $alive = 1 ]; then echo ALIVE; "
                f"elif [ -z \"$pid\" ] && [ -d {STATE}/lock ] && "
                f"[ $(( $(date +%s) - $(stat -c %Y {STATE}/lock) )) -lt 30 ]; then echo STARTING; "
                f"else echo DEAD; fi")
        last_contact = time.monotonic()
        delay = self.poll_s
        while True:
            result = self.ssh(target, poll, timeout=60)
            now = time.monotonic()
            if result.returncode == SSH_UNREACHABLE:
                if now - last_contact > self.lost_after_s:
                    return "lost", {}
                time.sleep(min(delay, 10.0))
                delay = min(delay * 2, 10.0)
                continue
            last_contact, delay = now, self.poll_s
            out = (result.stdout or b"").decode("utf-8", "replace").strip().splitlines()
            head = out[0] if out else ""
            if head == "EXIT":
                try:
                    return "exit", json.loads("\n".join(out[1:]))
                except ValueError:
                    pass  # caught between write and rename: poll again
            elif head in ("DEAD", "NODIR"):
                return "dead", {}
            if deadline is not None and time.time() > deadline:
                return "overdue", {}
            time.sleep(self.poll_s)

    def download(self, target: SshTarget, spec: RunSpec, run_dir: str, *,
                 expect_manifest: bool) -> list[str]:
        """Fetch results/<run_id>/ and check it against the remote manifest; problems, or []."""
        parts = [shlex.quote(spec.output_dir)]
        if expect_manifest:
            parts.append(f"{STATE}/manifest.json")
        fetch = f"cd {q(run_dir)} && tar czf - {' '.join(parts)} 2>/dev/null; true"
        staging = Path(tempfile.mkdtemp(prefix=f"dl-{spec.run_id}-", dir=self._tmp_dir()))
        try:
            archive = staging / "fetch.tgz"
            with open(archive, "wb") as handle:
                result = self.ssh(target, fetch, timeout=3600, stdout=handle)
            if result.returncode != 0:
                return [f"download from {target.spec} failed (exit {result.returncode})"]
            unpacked = staging / "files"
            unpacked.mkdir()
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    tar.extractall(unpacked, filter="data")
            except (tarfile.TarError, EOFError, OSError) as exc:
                return [f"the downloaded archive is unreadable ({exc})"]
            src = unpacked / spec.output_dir
            dest = self.root / spec.output_dir
            dest.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                for path in sorted(p for p in src.rglob("*") if p.is_file()):
                    target_path = dest / path.relative_to(src)
                    target_path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(path), target_path)
            if not expect_manifest:
                return ["no manifest (the remote process died before writing one)"]
            manifest_path = unpacked / STATE / "manifest.json"
            if not manifest_path.is_file():
                return ["the remote manifest is missing"]
            return verify_manifest(self.root, spec.output_dir,
                                   json.loads(manifest_path.read_text("utf-8")))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _tmp_dir(self) -> Path:
        path = self.root / ".rstack" / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cancel(self) -> None:
        """Ctrl-C: ask each active agent to stop its run (it records `interrupted` itself)."""
        with self._lock:
            active = list(self._active.values())
        for target, run_dir in active:
            self.ssh(target, f"kill -TERM $(cat {q(run_dir)}/{STATE}/pid 2>/dev/null) 2>/dev/null; true",
                     timeout=30)


def _tail(path: Path, lines: int = 200) -> list[str]:
    try:
        return path.read_text("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


def q(path: str) -> str:
    """Quote a remote path, keeping a leading ~/ expandable by the remote shell."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)
