"""Benchmark `rstack preflight` on the corpus (tests/data/preflight): verdicts, accuracy, speed.

    .venv/bin/python bench/preflight.py [--repeat-bare N] [CASE ...]

Prints, per case, the expected and actual verdict/category and the wall time; then the accuracy,
the total wall time, and for healthy cases the ratio of preflight wall time to one bare
`python SCRIPT --output-dir DIR --seed 0 --smoke-test` run. For the ratio both are the median of
N runs, interleaved so they see the same machine load, and the bare run gets the same BLAS/OpenMP
thread count preflight gives each of its two concurrent runs (cores // 2), so that thread
oversubscription on a busy machine does not flatter preflight.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "lib"))

from preflight_fixtures import load_cases, stage  # noqa: E402
from rstack.preflight import run_preflight  # noqa: E402


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def bare_run(script: Path) -> float:
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **{name: threads for name in THREAD_VARS}}
    with tempfile.TemporaryDirectory(prefix="rstack-bench-out-") as out:
        started = time.monotonic()
        subprocess.run([sys.executable, str(script), "--output-dir", out, "--seed", "0",
                        "--smoke-test"], cwd=script.parent, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=env, check=True, timeout=300)
        return time.monotonic() - started


def timed_preflight(script: Path, kwargs: dict) -> float:
    started = time.monotonic()
    run_preflight(script, **kwargs)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="preflight and bare runs per healthy case for the ratio (medians)")
    opts = parser.parse_args()
    cases = [c for c in load_cases() if not opts.cases or c.name in opts.cases]
    print(f"{'case':32} {'expected':28} {'got':28} {'time_s':>7}  ok")
    right = 0
    total_started = time.monotonic()
    ratios = []
    hangs = []
    with tempfile.TemporaryDirectory(prefix="rstack-bench-") as work:
        os.environ["HOME"] = str(Path(work) / "home")  # corpus scripts may write under ~
        (Path(work) / "home").mkdir()
        for case in cases:
            script = stage(case, Path(work))
            started = time.monotonic()
            result = run_preflight(script, **case.kwargs)
            elapsed = time.monotonic() - started
            expected = f"{case.verdict} {case.category or ''}".strip()
            got = f"{result.verdict} {result.category or ''}".strip()
            ok = expected == got
            right += ok
            print(f"{case.name:32} {expected:28} {got:28} {elapsed:7.2f}  {'✓' if ok else '✗'}",
                  flush=True)
            if case.category == "hang":
                hangs.append((case.name, elapsed, case.kwargs.get("stall_s", 10.0)))
            if case.verdict == "PASS" and ok:
                pre, bare, single = [elapsed], [], []
                for _ in range(opts.repeat):
                    bare.append(bare_run(script))
                    single.append(timed_preflight(script, {**case.kwargs, "determinism": False}))
                    if len(pre) < opts.repeat:
                        pre.append(timed_preflight(script, case.kwargs))
                ratios.append((case.name, statistics.median(pre), statistics.median(bare),
                               statistics.median(single)))
    total = time.monotonic() - total_started
    load = os.getloadavg()
    print(f"\naccuracy: {right}/{len(cases)} = {100.0 * right / max(1, len(cases)):.1f}%")
    print(f"total wall time (preflight of every case, plus the timing repeats): {total:.1f} s")
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, elapsed, stall in hangs:
        print(f"hang {name}: reported after {elapsed:.2f} s with --stall {stall:g} "
              f"(target <= stall + 1 s: {'met' if elapsed <= stall + 1 else 'MISSED'})")
    if ratios:
        print(f"\n{'healthy case':32} {'preflight_s':>11} {'bare_smoke_s':>12} {'ratio':>6} "
              f"{'no_determinism_s':>16} {'ratio':>6}")
        for name, pre, bare, single in ratios:
            print(f"{name:32} {pre:11.2f} {bare:12.2f} {pre / bare:6.2f} {single:16.2f} "
                  f"{single / bare:6.2f}")
        worst = max(pre / bare for _, pre, bare, _ in ratios)
        print(f"max ratio preflight/bare: {worst:.2f} (target <= 1.3)")
        long = [pre / bare for _, pre, bare, _ in ratios if bare >= 1.0]
        if long:
            print(f"max ratio for smoke runs >= 1 s: {max(long):.2f}")
    return 0 if right == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
