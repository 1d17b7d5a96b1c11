"""Time limits that protect the skills' preamble and the probes: how long each takes when a tool
hangs. These were wall-clock assertions in tests (flaky on a busy machine); here they are figures.

Goals: compute-detect with a hanging nvidia-smi < 2 s; a hanging `pdflatex --version` probe with
a 0.3 s timeout < 1.5 s; `_run_probes` with a 0.3 s deadline < 1 s; the compute-detect shim
< 5 s; preflight finding a syntax error (before running anything) < 1 s.
Run: .venv/bin/python bench/timeouts.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def stand_in(bindir: Path, name: str, script: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def timed(label: str, goal_s: float, fn) -> bool:
    start = time.monotonic()
    fn()
    elapsed = time.monotonic() - start
    ok = elapsed < goal_s
    print(f"{label:<52} {elapsed:6.2f} s  (goal < {goal_s:g} s) {'ok' if ok else 'SLOW'}")
    return ok


def main() -> int:
    from rstack import compute
    from rstack.preflight import run_preflight

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bindir = tmp / "bin"
        bindir.mkdir()
        stand_in(bindir, "nvidia-smi", "exec sleep 30\n")
        stand_in(bindir, "pdflatex", "exec sleep 30\n")
        env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
               "HOME": str(tmp), "RSTACK_HOME": str(tmp / ".rstack")}
        results.append(timed("compute-detect --json, nvidia-smi hangs", 2.0, lambda: subprocess.run(
            [sys.executable, "-m", "rstack", "compute-detect", "--json"], env=env, cwd=tmp,
            capture_output=True, check=True)))
        os.environ["PATH"] = env["PATH"]
        results.append(timed("probe_latex_engines(timeout_s=0.3), pdflatex hangs", 1.5,
                             lambda: compute.probe_latex_engines(timeout_s=0.3)))
        results.append(timed("_run_probes with a 0.3 s deadline, one probe hangs", 1.0,
                             lambda: compute._run_probes({"hang": lambda: time.sleep(5)}, 0.3)))
        results.append(timed("bin/rstack-compute-detect --json (interpreter start)", 5.0,
                             lambda: subprocess.run([REPO / "bin" / "rstack-compute-detect", "--json"],
                                                    env=env, cwd=tmp, capture_output=True)))
        script = tmp / "broken.py"
        script.write_text("import sys\n\n\n\ndef train(:\n    pass\n")
        results.append(timed("preflight of a syntax error (nothing runs)", 1.0,
                             lambda: run_preflight(script)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
