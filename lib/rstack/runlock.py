"""The project run lock: one `rstack run` (or `--resume`) per project at a time.

Two live runs of one project would judge each other's in-flight runs (`--resume` closing a live
run as killed), run every arm x seed twice and each hold only its own share of the cost cap. The
lock is an fcntl lock on `.rstack/run.lock`, so the kernel releases it when its holder dies however
it dies (no stale lock to clear by hand); the file names the holder (pid, host, start, command)
for the refusal message. The descriptor is close-on-exec, so a training process never inherits it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import paths
from .errors import RStackError

LOCK_FILE = "run.lock"


class RunLockError(RStackError):
    """Another `rstack run` of this project holds the run lock."""


def lock_path(root: Path) -> Path:
    return paths.state_dir(Path(root)) / LOCK_FILE


def _holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def live_holder(root: Path) -> dict | None:
    """The holder of the run lock when one may still be alive, else None, without taking the lock
    (status must not make a starting `rstack run` fail). A holder killed with SIGKILL leaves its
    record behind: a pid that no longer exists on this host is no holder."""
    holder = _holder(lock_path(root))
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if holder.get("host") != socket.gethostname():
        return holder  # another machine's process: it cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except (PermissionError, OverflowError):
        return holder if pid < 2 ** 31 else None
    return holder


@contextmanager
def run_lock(root: Path, *, what: str = "rstack run") -> Iterator[dict]:
    """Hold the project's run lock for the block; raise RunLockError when another process holds
    it. Yields {"stale": holder} when a dead holder's record was found (and taken over)."""
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"
                   if holder else "a process that has not written its name yet")
            raise RunLockError(
                f"another `{holder.get('what') or 'rstack run'}` is running in this project "
                f"({who}; lock {path}): {what} would judge its runs in flight and run them twice",
                hint="wait for it to finish (rstack runs list --status running shows its runs), "
                     "or stop it, then rstack run --resume") from None
        previous = _holder(path)
        from .ledger import utc_now

        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now(),
                  "what": what, "argv": sys.argv[1:]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield {"stale": previous} if previous else {}
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
