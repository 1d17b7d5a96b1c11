"""Run one command under watch: stream its output, enforce timeout/stall/memory, leave nothing behind.

The command runs in its own session (so its process group is its own); every descendant ever seen,
including grandchildren that called setsid and were re-parented away, is killed when the command
ends for any reason. Memory is the summed RSS of the whole tree, polled with psutil; RLIMIT_AS is
never used (it breaks numpy/torch, which reserve far more address space than they touch).
"""

from __future__ import annotations

import json
import os
import select
import signal as signal_module
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import psutil

# Every process the command starts inherits this variable (unless it rewrites its environment):
# it is how descendants that escaped the tree (double fork + setsid) are found again.
TOKEN_VAR = "RSTACK_PROCWATCH_ID"

REASONS = ("timeout", "stall", "memory", "interrupted", "cancelled")

# How a supervised tree is contained (ARCHITECTURE.md, "Containment"): on Linux every command runs
# under rstack/_reaper.py, a child subreaper that dies with its supervisor and takes its tree
# with it; elsewhere only the session, the descendant scan and the environment token remain.
_REAPER = Path(__file__).with_name("_reaper.py")
CONTAINMENT = "subreaper" if sys.platform.startswith("linux") else "session"

_MB = 1024 * 1024
# What the reader keeps of one output line (the log file keeps every byte): a 100 MB line with no
# newline must cost neither memory nor a rescan of what was already read.
LINE_CAP = 8192


@dataclass
class Outcome:
    """How a supervised command ended.

    exit_code is the status when it exited by itself (None when a signal ended it); signal is the
    signal number that ended it (None otherwise); reason is None when it ended by itself, else
    why it was killed: "timeout" | "stall" | "memory" | "interrupted" | "cancelled" (the caller set
    its cancel event).
    """

    exit_code: int | None
    signal: int | None
    reason: str | None
    duration_s: float
    peak_rss_mb: float
    output_tail: list[str]
    pid: int = 0
    leftover_killed: int = 0  # descendants still alive when the command ended, killed by us
    log_path: Path | None = None
    output_bytes: int = 0
    extra: dict = field(default_factory=dict)
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, tree RSS MB)

    @property
    def ok(self) -> bool:
        return self.reason is None and self.exit_code == 0


class _Reader(threading.Thread):
    """Drains the child's combined stdout/stderr so it never blocks on a full pipe."""

    def __init__(self, fd: int, log_file, on_line, tail_lines: int):
        super().__init__(daemon=True, name="procwatch-reader")
        self.fd = fd
        self.log_file = log_file
        self.on_line = on_line
        self.tail: deque[str] = deque(maxlen=max(1, tail_lines))
        self.last_output = time.monotonic()
        self.total_bytes = 0
        self.callback_error: BaseException | None = None
        self._partial = bytearray()  # the current line's kept bytes (at most LINE_CAP)
        self._dropped = 0  # bytes of the current line beyond LINE_CAP, counted, not kept
        self._lock = threading.Lock()

    def _emit(self, raw: bytes) -> None:
        # A progress bar rewrites its line with \r: keep only what the terminal would show.
        text = raw.decode("utf-8", errors="replace").rstrip("\r").split("\r")[-1]
        if self._dropped:
            text += f" [{len(raw) + self._dropped:,} bytes, rest of the line not kept]"
        with self._lock:
            self.tail.append(text)
        if self.on_line is not None and self.callback_error is None:
            try:
                self.on_line(text)
            except BaseException as exc:  # reported after cleanup; the pipe must keep draining
                self.callback_error = exc

    def _extend(self, piece: bytes) -> None:
        """Add bytes of the current line; each byte is looked at once (linear in the output)."""
        cut = piece.rfind(b"\r", 0, len(piece) - 1)  # a trailing \r may be half of \r\n
        if cut >= 0:  # a bar that never ends its line still shows progress: restart the line
            self._partial = bytearray()
            self._dropped = 0
            piece = piece[cut + 1:]
        room = LINE_CAP - len(self._partial)
        if len(piece) > room:
            self._dropped += len(piece) - max(room, 0)
            piece = piece[:max(room, 0)]
        self._partial += piece

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.last_output = time.monotonic()
            self.total_bytes += len(chunk)
            if self.log_file is not None:
                self.log_file.write(chunk)
                self.log_file.flush()
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    self._extend(chunk[start:])
                    break
                self._extend(chunk[start:end])
                self._emit(bytes(self._partial))
                self._partial = bytearray()
                self._dropped = 0
                start = end + 1
        if self._partial or self._dropped:
            self._emit(bytes(self._partial))
            self._partial = bytearray()
            self._dropped = 0

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.tail)


def _activity_signature(paths: Sequence[Path], limit: int = 5000) -> tuple:
    """A cheap fingerprint of the files under paths: it changes when anything is written."""
    newest = 0
    total = 0
    count = 0
    stack = [Path(p) for p in paths]
    while stack and count < limit:
        path = stack.pop()
        try:
            st = path.stat()
        except OSError:
            continue
        count += 1
        newest = max(newest, st.st_mtime_ns)
        if path.is_dir():
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            try:
                                est = entry.stat(follow_symlinks=False)
                            except OSError:
                                continue
                            count += 1
                            newest = max(newest, est.st_mtime_ns)
                            total += est.st_size
            except OSError:
                continue
        else:
            total += st.st_size
    return newest, total, count


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_table() -> list[tuple[int, int, float]]:
    """(pid, ppid, start time as a Unix timestamp) of every process, read straight from /proc
    (a few ms; psutil.process_iter costs several times more and this runs every poll)."""
    if not os.path.isdir("/proc/self"):
        rows = []
        for proc in psutil.process_iter(["ppid", "create_time"]):
            info = proc.info
            if info.get("ppid") is not None:
                rows.append((proc.pid, info["ppid"], info.get("create_time") or 0.0))
        return rows
    boot = psutil.boot_time()
    rows = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        fields = data[data.rfind(b")") + 2:].split()
        try:
            rows.append((int(name), int(fields[1]), boot + int(fields[19]) / _CLOCK_TICKS))
        except (IndexError, ValueError):
            continue
    return rows


def _has_token(pid: int, token: str) -> bool:
    needle = f"{TOKEN_VAR}={token}".encode()
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return needle in handle.read().split(b"\0")
    except OSError:
        pass
    try:
        return psutil.Process(pid).environ().get(TOKEN_VAR) == token
    except psutil.Error:
        return False


class _Tree:
    """Every process of one supervised command: the root, its descendants, and escapees."""

    def __init__(self, root_pid: int, token: str, started: float):
        self.root_pid = root_pid
        self.token = token
        self.started = started  # time.time() at launch, to filter the escapee scan
        self.seen: dict[int, psutil.Process] = {}
        self._not_ours: set[tuple[int, float]] = set()  # (pid, start) whose environ lacked the token
        try:
            self.seen[root_pid] = psutil.Process(root_pid)
        except psutil.Error:
            pass

    def _add(self, proc: psutil.Process) -> None:
        if proc.pid not in self.seen and proc.pid != os.getpid():
            self.seen[proc.pid] = proc

    def refresh(self, *, scan_escapees: bool) -> None:
        """Add every live descendant of a process already seen; with scan_escapees, also every
        process started since launch that carries this tree's token (re-parented escapees)."""
        me = os.getpid()
        parents: dict[int, list[int]] = {}
        fresh: list[tuple[int, float]] = []
        for pid, ppid, created in _process_table():
            if pid == me:
                continue
            parents.setdefault(ppid, []).append(pid)
            if scan_escapees and pid not in self.seen and created >= self.started - 1.0:
                fresh.append((pid, created))
        stack = list(self.seen)
        for pid, created in fresh:
            if pid in self.seen or (pid, created) in self._not_ours:
                continue
            if _has_token(pid, self.token):
                self._add_pid(pid)
                stack.append(pid)
            else:
                self._not_ours.add((pid, created))
        while stack:
            for child in parents.get(stack.pop(), ()):
                if child not in self.seen:
                    self._add_pid(child)
                    stack.append(child)

    def _add_pid(self, pid: int) -> None:
        try:
            self._add(psutil.Process(pid))
        except psutil.Error:
            pass

    def alive(self) -> list[psutil.Process]:
        out = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(proc)
            except psutil.Error:
                continue
        return out

    def cpu_s(self) -> float:
        """User + system CPU seconds of the live processes of the tree."""
        total = 0.0
        for proc in self.alive():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def rss_mb(self) -> float:
        total = 0
        for proc in self.alive():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total / _MB

    def kill_all(self, *, grace_s: float = 0.0) -> int:
        """Kill every process of the tree; returns how many were alive (root excluded)."""
        self.refresh(scan_escapees=True)
        alive_before = [p for p in self.alive() if p.pid != self.root_pid]
        if not alive_before and not self._root_alive():
            return 0  # the common case: the command exited and left nothing behind
        if grace_s > 0:
            self._signal_all(signal_module.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.05)
        # Freeze first so nothing can fork a new child while the others are being killed, then
        # re-scan until the set stops growing, then kill.
        for _ in range(20):
            before = set(self.seen)
            self._signal_all(signal_module.SIGSTOP)
            self.refresh(scan_escapees=True)
            if set(self.seen) == before:
                break
        self._signal_all(signal_module.SIGKILL)
        try:
            os.killpg(self.root_pid, signal_module.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            remaining = self.alive()
            if not remaining:
                break
            for proc in remaining:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            time.sleep(0.02)
        return len(alive_before)

    def _root_alive(self) -> bool:
        proc = self.seen.get(self.root_pid)
        try:
            return proc is not None and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _signal_all(self, sig: int) -> None:
        for proc in self.alive():
            if proc.pid == os.getpid():
                continue
            try:
                proc.send_signal(sig)
            except psutil.Error:
                continue


class _ChildWaiter:
    """Reaps the direct child with wait4, which also reports its own peak RSS (ru_maxrss)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.max_rss_mb = 0.0
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def _record(self, status: int, usage) -> None:
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.max_rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux

    def reaped(self) -> bool:
        if self.proc.returncode is not None:
            return True
        try:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        except ChildProcessError:
            self.proc.returncode = self.proc.returncode if self.proc.returncode is not None else 0
            return True
        if pid == 0:
            return False
        self._record(status, usage)
        return True

    def wait(self, timeout: float) -> None:
        if self.pidfd is not None:
            select.select([self.pidfd], [], [], timeout)
        else:
            time.sleep(timeout)

    def reap_blocking(self) -> None:
        if self.proc.returncode is not None:
            return
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
            self._record(status, usage)
        except ChildProcessError:
            self.proc.returncode = 0

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def supervise(
    cmd: Sequence[str],
    *,
    cwd: str | os.PathLike,
    env: dict[str, str] | None,
    log_path: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    stall_s: float | None = None,
    memory_mb: float | None = None,
    activity_paths: Iterable[str | os.PathLike] = (),
    on_line: Callable[[str], None] | None = None,
    poll_s: float = 0.2,
    tail_lines: int = 200,
    grace_s: float = 0.0,
    escapee_scan_s: float = 1.0,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Run cmd to completion or until a limit is crossed; return how it ended.

    Stall = no output AND no change to any file under activity_paths for stall_s seconds.
    on_line is called from a reader thread with each output line (without its newline).
    grace_s > 0 sends SIGTERM that long before SIGKILL when the command is killed.
    cancel: when another thread sets this event the tree is killed (reason "cancelled").
    On KeyboardInterrupt the whole tree is killed, then the interrupt is re-raised.
    """
    env = dict(os.environ if env is None else env)
    token = uuid.uuid4().hex
    env[TOKEN_VAR] = token
    activity = [Path(p) for p in activity_paths]
    log_file = None
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "wb")
    started_wall = time.time()
    started = time.monotonic()
    status_r = status_w = None
    argv = list(cmd)
    if CONTAINMENT == "subreaper":
        status_r, status_w = os.pipe()
        argv = [sys.executable, "-I", "-S", str(_REAPER), str(status_w), str(os.getpid()), "--",
                *argv]
    try:
        proc = subprocess.Popen(
            argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            pass_fds=(status_w,) if status_w is not None else (),
        )
    except BaseException:
        if log_file is not None:
            log_file.close()
        for fd in (status_r, status_w):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        if status_w is not None:
            os.close(status_w)
    tree = _Tree(proc.pid, token, started_wall)
    reader = _Reader(proc.stdout.fileno(), log_file, on_line, tail_lines)
    reader.start()
    waiter = _ChildWaiter(proc)
    reason: str | None = None
    peak_rss = 0.0
    last_activity = started
    signature = _activity_signature(activity) if activity else None
    last_scan = started
    leftover = 0
    extra: dict = {}
    rss_samples: list[tuple[float, float]] = []
    cpu_samples: deque[tuple[float, float]] = deque(maxlen=max(16, int(4 * (stall_s or 1) / poll_s)))
    try:
        # Wait first: a command that is over within one poll never pays for a process-table scan.
        waiter.wait(min(poll_s, 0.05))
        while not waiter.reaped():
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            scan = now - last_scan >= escapee_scan_s
            if scan:
                last_scan = now
            tree.refresh(scan_escapees=scan)
            rss = tree.rss_mb()
            peak_rss = max(peak_rss, rss)
            if len(rss_samples) < 2000:  # enough for a trend; bounded for long runs
                rss_samples.append((round(now - started, 3), round(rss, 1)))
            if memory_mb is not None and rss > memory_mb:
                reason = "memory"
                break
            if timeout_s is not None and now - started >= timeout_s:
                reason = "timeout"
                break
            if stall_s is not None:
                cpu_samples.append((now, tree.cpu_s()))
                if activity:
                    current = _activity_signature(activity)
                    if current != signature:
                        signature = current
                        last_activity = now
                last_activity = max(last_activity, reader.last_output)
                if now - last_activity >= stall_s:
                    reason = "stall"
                    # CPU burnt while silent tells a silent computation from a blocked wait.
                    base = next((cpu for t, cpu in reversed(cpu_samples) if t <= last_activity),
                                cpu_samples[0][1])
                    extra["stall_cpu_s"] = round(max(0.0, cpu_samples[-1][1] - base), 2)
                    extra["stall_window_s"] = round(now - max(last_activity,
                                                              cpu_samples[0][0]), 2)
                    break
            waiter.wait(poll_s)
    except KeyboardInterrupt:
        reason = "interrupted"
        raise
    finally:
        leftover = tree.kill_all(grace_s=grace_s if reason else 0.0)
        waiter.reap_blocking()
        waiter.close()
        reader.join(timeout=10)
        try:
            proc.stdout.close()
        except OSError:
            pass
        if log_file is not None:
            log_file.close()
        reported = _read_status(status_r)
    if reported:
        # The shim's answer is the command's own: how it exited, and what it left running.
        code = reported.get("code")
        if isinstance(code, int) and proc.returncode is not None and not reason:
            proc.returncode = code
        leftover = max(leftover, int(reported.get("leftover") or 0))
    elif status_r is not None and not reason and proc.returncode == 127:
        pass  # the shim could not start the command; its stderr says why
    if reader.callback_error is not None:
        raise reader.callback_error
    peak_rss = max(peak_rss, waiter.max_rss_mb)
    code = proc.returncode
    exit_code = code if code is not None and code >= 0 else None
    sig = -code if code is not None and code < 0 else None
    return Outcome(
        exit_code=None if reason else exit_code,
        signal=sig,
        reason=reason,
        duration_s=round(time.monotonic() - started, 3),
        peak_rss_mb=round(peak_rss, 1),
        output_tail=reader.snapshot(),
        pid=proc.pid,
        leftover_killed=0 if reason else leftover,
        log_path=Path(log_path) if log_path is not None else None,
        output_bytes=reader.total_bytes,
        extra=extra,
        rss_samples=rss_samples,
    )


def _read_status(fd: int | None) -> dict:
    if fd is None:
        return {}
    try:
        chunks = []
        while True:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        data = json.loads(b"".join(chunks) or b"{}")
    except (OSError, ValueError):
        data = {}
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else {}


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While active, SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread.

    A supervised command lives in its own session, so a terminal's or a scheduler's signal to the
    caller never reaches it; turning those signals into KeyboardInterrupt lets `supervise` kill
    the tree before the caller exits. SIGINT gets the same handler because a process started
    with SIGINT ignored (`nohup`, a shell's background job) keeps ignoring it otherwise: Python
    installs its Ctrl-C handler only when SIGINT was not ignored at start. A no-op outside the
    main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"received {signal_module.Signals(signum).name}")

    previous = {sig: signal_module.signal(sig, interrupt)
                for sig in (signal_module.SIGINT, signal_module.SIGTERM, signal_module.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal_module.signal(sig, handler)
