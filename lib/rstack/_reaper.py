"""The containment shim every supervised command runs under (started as `python -I -S _reaper.py`,
so it imports nothing from rstack and starts in milliseconds). Linux only.

It makes itself a child subreaper (PR_SET_CHILD_SUBREAPER): a descendant that double-forks,
calls setsid or wipes its environment is re-parented to this shim, never to init, so it stays in
the supervised tree. It asks to die with its supervisor (PR_SET_PDEATHSIG), and the command it
starts dies with it (PDEATHSIG SIGKILL), so a SIGKILLed `rstack run` leaves no training process
behind. When the command exits, the shim kills whatever the command left behind, reaps it, writes
`{"code": <exit code or -signal>, "leftover": <n killed>}` to the status fd, and exits the way
the command did. Never edit this to import rstack: it must run with `-I -S`.
"""

import ctypes
import json
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)


def _children(pid):
    """Direct children of pid: from /proc/PID/task/*/children when the kernel has it (a few
    microseconds, so the shim exits right after the command), else a scan of /proc."""
    try:
        found = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.extend(int(p) for p in handle.read().split())
        return found
    except (OSError, ValueError):
        pass
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        try:
            if int(fields[1]) == pid:
                out.append(int(name))
        except (IndexError, ValueError):
            continue
    return out


def _descendants():
    me, seen, stack = os.getpid(), [], [os.getpid()]
    while stack:
        for child in _children(stack.pop()):
            if child not in seen and child != me:
                seen.append(child)
                stack.append(child)
    return seen


def _kill_tree():
    """Freeze, then kill, everything below the shim; returns how many were alive."""
    killed = set()
    for _ in range(20):
        alive = [p for p in _descendants() if p not in killed]
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            killed.add(pid)
        _reap(0.05)
    _reap(0)
    return len(killed)


def _reap(timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)


def main():
    status_fd, supervisor = int(sys.argv[1]), int(sys.argv[2])
    cmd = sys.argv[4:]  # argv[3] is "--"

    def on_term(signum, frame):
        _kill_tree()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # the supervisor died before the line above
        sys.exit(128 + signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    child = os.fork()
    if child == 0:
        try:
            os.close(status_fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != os.getpid() and os.getppid() == 1:
                os._exit(137)
            os.execvp(cmd[0], cmd)
        except BaseException as exc:  # exec failed: say so the way a shell would
            os.write(2, f"rstack: cannot run {cmd[0]!r}: {exc}\n".encode())
            os._exit(127)
    while True:
        try:
            pid, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    leftover = _kill_tree()
    try:
        os.write(status_fd, json.dumps({"code": code, "leftover": leftover}).encode() + b"\n")
        os.close(status_fd)
    except OSError:
        pass
    if code < 0:  # end the way the command did, so the supervisor sees the same signal
        try:
            signal.signal(-code, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP have no handler to reset
        os.kill(os.getpid(), -code)
        time.sleep(1)
        os._exit(128 - code)
    os._exit(code)


if __name__ == "__main__":
    main()
