"""Runs at scale: a ledger of 100,000 runs (run.started + run.finished, ~80 MB), then
`rstack status --preamble` (cold: no index cache; warm: cached; after one append), `runs list`,
`analyze`, `log repair` of the ledger with one damaged line, and status with a 3 MB config, each
in a fresh process with its wall time and peak RSS. Goal: status --preamble < 1 s warm at 100k runs,
memory bounded.

Run: .venv/bin/python bench/runs_scale.py [--runs 100000] [--repair-copies 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rstack.ledger import dumps_record

RSTACK = Path(sys.executable).parent / "rstack"
PLAN = """---
hypothesis:
  question: q
  claim: c
  expected_direction: lower
  falsifiers: [f]
  baseline_arm: arm0
  metrics: [val_loss]
data: {{sources: [s], schema: s, transforms: [], provenance: p, size: "1"}}
execution:
  profile: local
  script: train.py
  arms:
{arms}
  seeds: [0, 1, 2, 3, 4]
  timeout_s: 60
evaluation:
  primary_metric: val_loss
  direction: minimize
  accept: {{kind: relative, threshold: 0.05}}
  baselines: [arm0]
  sanity_checks: []
publication: {{venue: arxiv, claims: [c]}}
---
"""
ARMS = 4
SEEDS = 5


def build(root: Path, runs: int) -> Path:
    import hashlib

    arm_lines = "\n".join(f'    arm{i}: [--lr, "{0.01 * (i + 1)}"]' for i in range(ARMS))
    (root / "experiment-plan.md").write_text(PLAN.format(arms=arm_lines))
    (root / "train.py").write_text("print('bench')\n")
    plan_sha = hashlib.sha256((root / "experiment-plan.md").read_bytes()).hexdigest()
    script_sha = hashlib.sha256((root / "train.py").read_bytes()).hexdigest()
    ledger = root / ".rstack" / "experiments.jsonl"
    ledger.parent.mkdir(parents=True)
    with open(ledger, "w", encoding="utf-8") as handle:
        for n in range(runs):
            arm, seed = f"arm{n % ARMS}", (n // ARMS) % SEEDS
            run_id = f"20260101-000000-{arm}-s{seed}-{n:08x}"
            out = f"results/{run_id}"
            ts = f"2026-01-01T00:{(n // 60000) % 60:02d}:{(n // 1000) % 60:02d}.{n % 1000:03d}Z"
            handle.write(dumps_record({
                "v": 1, "type": "run.started", "ts": ts, "run_id": run_id, "arm": arm,
                "seed": seed, "args": ["--lr", f"{0.01 * (n % ARMS + 1)}"],
                "command": ["python", "train.py", "--lr", f"{0.01 * (n % ARMS + 1)}",
                            "--output-dir", out, "--seed", str(seed)],
                "output_dir": out, "profile": "local", "host": "bench", "plan_sha256": plan_sha,
                "config_hash": "0" * 64, "git_commit": None, "git_dirty": None,
                "script": "train.py", "script_sha256": script_sha, "timeout_s": 60,
                "cost_estimate_usd": 0.0, "attempt": 1, "retry_of": None}) + "\n")
            status = "ok" if n % 7 else "failed"
            handle.write(dumps_record({
                "v": 1, "type": "run.finished", "ts": ts, "run_id": run_id, "arm": arm,
                "seed": seed, "status": status, "exit_code": 0 if status == "ok" else 1,
                "category": None if status == "ok" else "crash", "hint": None,
                "metrics": {"val_loss": 1.0 / (1 + n % 97), "train_loss": 0.5 + seed / 10}
                if status == "ok" else None,
                "artifacts": [{"path": f"{out}/metrics.json", "bytes": 64, "sha256": "1" * 64}],
                "duration_s": 1.5, "cost_usd": 0.0}) + "\n")
    return ledger


def timed(label: str, argv: list[str], cwd: Path, env: dict) -> None:
    """Run argv in a fresh process; print wall time and the child's peak RSS."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
             "dt = time.perf_counter() - t; "
             "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode, "
             "p.stderr.decode()[-200:].replace(chr(10), ' '))")
    out = subprocess.run([sys.executable, "-c", probe, *argv], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True).stdout.split(maxsplit=3)
    wall, rss, code = float(out[0]), float(out[1]), int(out[2])
    note = f"  ({out[3].strip()[:120]})" if len(out) > 3 and code else ""
    print(f"{label:<44} {wall:7.2f} s  peak {rss:7.0f} MB  exit {code}{note}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repair-copies", type=int, default=1,
                        help="repair a ledger of this many copies of the run ledger")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        home = Path(tmp) / "home"
        home.mkdir()
        env = dict(os.environ, RSTACK_PROJECT=str(root), RSTACK_HOME=str(home), HOME=str(home))
        started = time.perf_counter()
        ledger = build(root, args.runs)
        size_mb = ledger.stat().st_size / 1e6
        print(f"ledger: {args.runs:,} runs, {size_mb:.1f} MB (built in "
              f"{time.perf_counter() - started:.1f} s)")
        rstack = str(RSTACK)
        timed("status --preamble (cold: no index cache)", [rstack, "status", "--preamble"], root, env)
        timed("status --preamble (warm)", [rstack, "status", "--preamble"], root, env)
        with open(ledger, "a") as handle:
            handle.write(json.dumps({"v": 1, "type": "note", "ts": "2026-01-02T00:00:00.000Z",
                                     "text": "bench"}) + "\n")
        timed("status --preamble (after an append)", [rstack, "status", "--preamble"], root, env)
        timed("runs list", [rstack, "runs", "list"], root, env)
        timed("runs show (id prefix)", [rstack, "runs", "show", "20260101-000000-arm1-s1-0000000"],
              root, env)
        timed("analyze", [rstack, "analyze"], root, env)
        body = ledger.read_bytes()
        with open(ledger, "wb") as handle:
            for _ in range(args.repair_copies):
                handle.write(body)
            handle.write(b"not json\n")
        print(f"repair ledger: {ledger.stat().st_size / 1e6:.1f} MB, one damaged line")
        timed("log repair experiments", [rstack, "log", "repair", "experiments"], root, env)
        config = home / "config.yaml"
        config.write_text("venue: arxiv\n" + "".join(f"# pad {i:07d} {'x' * 40}\n"
                                                     for i in range(60_000)))
        print(f"config: {config.stat().st_size / 1e6:.1f} MB")
        timed("status --preamble (3 MB config)", [rstack, "status", "--preamble"], root, env)


if __name__ == "__main__":
    main()
