"""The remote side of an ssh run: started detached in the run's directory, standard library only.

It writes `.rstack-run/pid` (itself), refreshes `.rstack-run/heartbeat` every second, runs the
command in its own process group with a timeout, then writes `.rstack-run/manifest.json`
(path, bytes, sha256 of every output file) and last, atomically, `.rstack-run/exit.json`.
A monitor that finds exit.json knows the manifest is complete. It never starts the command twice:
`.rstack-run/lock` is created by the launcher before this starts.
"""

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

STATE = ".rstack-run"


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(output_dir):
    items = []
    for base, _dirs, files in os.walk(output_dir):
        for name in sorted(files):
            path = os.path.join(base, name)
            items.append({"path": os.path.relpath(path, "."), "bytes": os.path.getsize(path),
                          "sha256": _sha256(path)})
    return sorted(items, key=lambda item: item["path"])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--timeout", type=float, default=0.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command and os.path.basename(command[0]).startswith("python"):
        command = [os.path.expanduser(args.python)] + command[1:]
    os.makedirs(STATE, exist_ok=True)
    os.makedirs(args.output_dir, exist_ok=True)
    _write_atomic(os.path.join(STATE, "pid"), str(os.getpid()))
    env = dict(os.environ, RSTACK_OUTPUT_DIR=os.path.abspath(args.output_dir), PYTHONUNBUFFERED="1")
    started = time.time()
    log = open(os.path.join(args.output_dir, "stdout.log"), "wb")
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
    # The script's process group, so the local monitor can still end it if this agent wedges.
    _write_atomic(os.path.join(STATE, "child"), str(child.pid))
    reason = None

    def stop(signum, _frame):
        nonlocal reason
        reason = "interrupted"
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = None
    while status is None:
        _write_atomic(os.path.join(STATE, "heartbeat"), f"{time.time():.3f}")
        try:
            status = child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            if args.timeout and time.time() - started > args.timeout:
                reason = "timeout"
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except OSError:
                    pass
    try:  # leave nothing of the run's process group behind
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:
        pass
    log.close()
    exit_code = status if status >= 0 else None
    sig = -status if status < 0 else None
    _write_atomic(os.path.join(STATE, "manifest.json"), json.dumps(manifest(args.output_dir)))
    _write_atomic(os.path.join(STATE, "exit.json"), json.dumps({
        "exit_code": exit_code, "signal": sig, "reason": reason,
        "duration_s": round(time.time() - started, 3)}))
    # The script's status as the agent's own, so a scheduler's accounting (sacct) shows FAILED.
    return exit_code if exit_code is not None else 128 + (sig or 0)


if __name__ == "__main__":
    sys.exit(main())
