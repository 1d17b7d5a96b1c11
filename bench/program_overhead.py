"""Per-trial overhead of `rstack program trial` beside the training runs it starts, on a 2 s trial
(goal: under 1 s per trial, preflight apart).

    .venv/bin/python bench/program_overhead.py [--seconds 2] [--repeat 3]

A scratch git project holds a contract-following script that keeps a core busy for --seconds and
a program with 3 trial seeds. Each repeat commits a new candidate (a changed constant: noise only,
so no confirm stage runs), preflights it (timed apart: the issue's budget is "1 s plus the
preflight"), then times `rstack program trial --jobs 1` as a real subprocess against the same three
runs done bare (`python train.py --seed S`, one after another). Overhead = trial wall time minus the
bare runs' wall time: CLI start-up, git (tree hash, scope, refs), guards, ledger reads and writes,
run supervision, the paired comparison and the records. Medians of --repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RSTACK = Path(sys.executable).parent / "rstack"

TRAIN = '''
import argparse, json, os, random, time
VARIANT = 0
p = argparse.ArgumentParser()
p.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
p.add_argument("--seed", type=int, default=0)
p.add_argument("--smoke-test", action="store_true")
a = p.parse_args()
seconds = 0.2 if a.smoke_test else float(os.environ.get("BENCH_SECONDS", "2"))
os.makedirs(a.output_dir, exist_ok=True)
start, step, loss = time.time(), 0, 1.0
with open(os.path.join(a.output_dir, "metrics.jsonl"), "w") as h:
    while time.time() - start < seconds:
        x = sum(i * i for i in range(20000))
        step += 1
        loss *= 0.999
        h.write(json.dumps({"step": step, "busy_loss": loss}) + "\\n")
rng = random.Random(a.seed * 1000 + VARIANT)  # the metric depends on the seed only
with open(os.path.join(a.output_dir, "metrics.json"), "w") as h:
    json.dump({"val_loss": 1.0 + 0.01 * rng.gauss(0, 1)}, h)
'''


def sh(cwd: Path, *args: str, env=None) -> float:
    started = time.monotonic()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, env=env)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rstack-program-bench-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "RSTACK_PROJECT": str(root), "RSTACK_HOME": str(root / "home"),
               "BENCH_SECONDS": str(opts.seconds)}
        (root / "train.py").write_text(TRAIN)
        (root / ".gitignore").write_text(".rstack/\nresults/\nanalysis/\nbare/\n")
        sh(root, "git", "init", "-q")
        sh(root, "git", "config", "user.email", "bench@example.org")
        sh(root, "git", "config", "user.name", "bench")
        sh(root, str(RSTACK), "program", "init", "--name", "bench", "--min-effect", "0.001",
           "--timeout", "60", env=env)
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "baseline")
        sh(root, str(RSTACK), "preflight", "train.py", env=env)
        sh(root, str(RSTACK), "program", "baseline", "--jobs", "1", env=env)
        trials, bares, preflights = [], [], []
        for k in range(1, opts.repeat + 1):
            text = (root / "train.py").read_text()
            (root / "train.py").write_text(text.replace(f"VARIANT = {k - 1}", f"VARIANT = {k}"))
            sh(root, "git", "commit", "-qam", f"variant {k}")
            preflights.append(sh(root, str(RSTACK), "preflight", "train.py", env=env))
            bare = 0.0
            for seed in (0, 1, 2):
                bare += sh(root, sys.executable, "train.py", "--output-dir", f"bare/{k}-{seed}",
                           "--seed", str(seed), env=env)
            bares.append(bare)
            trials.append(sh(root, str(RSTACK), "program", "trial", "--jobs", "1", "-m",
                             f"variant {k}", env=env))
        log = subprocess.run([str(RSTACK), "program", "log", "--json"], cwd=root, env=env,
                             check=True, capture_output=True, text=True).stdout
        inside = [t["overhead_s"] for t in json.loads(log)["trials"] if t["trial"] > 0]
    trial, bare, pre = (statistics.median(x) for x in (trials, bares, preflights))
    print(f"trial of 3 runs x {opts.seconds:g} s, --jobs 1, median of {opts.repeat}:")
    print(f"  bare runs (python train.py x 3):   {bare:6.2f} s")
    print(f"  rstack program trial:              {trial:6.2f} s")
    print(f"  overhead per trial:                {trial - bare:6.2f} s  (goal < 1 s)")
    print(f"  ratio trial / bare runs:           {trial / bare:6.3f}x")
    print(f"  preflight (apart, per candidate):  {pre:6.2f} s")
    print(f"  of the overhead, inside the trial (guards, git, run machinery, decision, records): "
          f"{statistics.median(inside):.2f} s; the rest is the CLI's start and exit")


if __name__ == "__main__":
    main()
