"""Overhead of `rstack run` over a bare `python train.py` for a ~5 s training run (goal: <= 1.1x).

    .venv/bin/python bench/run_overhead.py [--seconds 5] [--repeat 3]

Both sides run the same contract-following script for the same seed, as real subprocesses, in a
scratch project: the bare side is `python train.py --output-dir DIR --seed 0`; the rstack side is
`rstack run --name bench --seeds 0 -- python train.py` (CLI start-up, provenance, guards, ledger
writes, supervision, metrics validation, artifact hashing included). Runs are interleaved so both
see the same machine load; the figures are medians of --repeat runs, with Python's byte-code
cache warm (as on a user's machine).
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
RSTACK = Path(sys.executable).parent / "rstack"

TRAIN = '''
import argparse, json, os, time
p = argparse.ArgumentParser()
p.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
p.add_argument("--seed", type=int, default=0)
p.add_argument("--smoke-test", action="store_true")
p.add_argument("--seconds", type=float, default=5.0)
a = p.parse_args()
os.makedirs(a.output_dir, exist_ok=True)
loss, start, step = 1.0 + a.seed, time.time(), 0
with open(os.path.join(a.output_dir, "metrics.jsonl"), "w") as h:
    while time.time() - start < a.seconds:
        x = sum(i * i for i in range(20000))  # keep a core busy, like training
        loss *= 0.999
        h.write(json.dumps({"step": step, "train_loss": loss}) + "\\n")
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss:.4f}", flush=True)
json.dump({"train_loss": loss, "steps": step}, open(os.path.join(a.output_dir, "metrics.json"), "w"))
'''


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rstack-bench-") as tmp:
        project = Path(tmp) / "proj"
        project.mkdir()
        (project / "train.py").write_text(TRAIN)
        env = dict(os.environ, RSTACK_PROJECT=str(project), RSTACK_HOME=str(Path(tmp) / "home"),
                   PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        # Measure what a user sees: byte-code cached after the first start (a shell that sets
        # PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every command).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        bare_cmd = [sys.executable, "train.py", "--output-dir", "out", "--seed", "0",
                    "--seconds", str(args.seconds)]
        rstack_cmd = [str(RSTACK), "run", "--name", "bench", "--seeds", "0", "--",
                      "python", "train.py", "--seconds", str(args.seconds)]
        timed(rstack_cmd[:1] + ["run", "--help"], project, env)  # warm the byte-code cache
        bare, wrapped = [], []
        for _ in range(args.repeat):
            bare.append(timed(bare_cmd, project, env))
            wrapped.append(timed(rstack_cmd, project, env))
        b, w = statistics.median(bare), statistics.median(wrapped)
        print(f"bare python train.py   median {b:.3f}s  runs {', '.join(f'{x:.3f}' for x in bare)}")
        print(f"rstack run             median {w:.3f}s  runs {', '.join(f'{x:.3f}' for x in wrapped)}")
        print(f"overhead {w - b:+.3f}s  ratio {w / b:.3f}x  (goal <= 1.10x)")


if __name__ == "__main__":
    main()
