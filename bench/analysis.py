"""Analysis speed: a ledger of arms x seeds runs with long metrics.jsonl histories, then
`rstack analyze`, `bundle create` and `bundle verify` timed, and analyze checked deterministic.

Run: .venv/bin/python bench/analysis.py [--arms 4 --seeds 5 --steps 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
from pathlib import Path

from rstack.analysis import run_analysis
from rstack.bundle import create_bundle, verify_bundle
from rstack.ledger import Ledger

PLAN = """---
hypothesis:
  question: q
  claim: c
  expected_direction: lower
  falsifiers: [f]
  baseline_arm: arm0
  metrics: [val_loss, accuracy]
data: {{sources: [s], schema: s, transforms: [], provenance: p, size: "1"}}
execution:
  profile: local
  script: train.py
  arms:
{arms}
  seeds: {seeds}
  timeout_s: 60
evaluation:
  primary_metric: val_loss
  direction: minimize
  accept: {{kind: relative, threshold: 0.05}}
publication: {{venue: arxiv, claims: [c]}}
---
"""


def build(root: Path, arms: int, seeds: int, steps: int) -> None:
    rng = random.Random(0)
    arm_lines = "\n".join(f"    arm{i}: [--lr, \"{0.01 * (i + 1)}\"]" for i in range(arms))
    (root / "experiment-plan.md").write_text(PLAN.format(arms=arm_lines,
                                                        seeds=list(range(seeds))))
    (root / "train.py").write_text("print('bench')\n")
    ledger = Ledger(root, "experiments", fsync=False)
    for a in range(arms):
        for s in range(seeds):
            run_id = f"arm{a}-s{s}"
            out = root / "results" / run_id
            out.mkdir(parents=True)
            rate = 0.002 * (a + 1)
            with open(out / "metrics.jsonl", "w") as handle:
                for step in range(1, steps + 1):
                    loss = 2.0 * (1 - rate) ** step + 0.1 + rng.random() * 0.02
                    handle.write(json.dumps({"step": step, "val_loss": loss,
                                             "train_loss": loss * 0.9}) + "\n")
            metrics = {"val_loss": loss, "train_loss": loss * 0.9,
                       "accuracy": 0.8 + 0.01 * a + rng.random() * 0.01}
            (out / "metrics.json").write_text(json.dumps(metrics))
            ledger.append({"type": "run.started", "run_id": run_id, "arm": f"arm{a}", "seed": s,
                           "args": [], "command": ["python", "train.py"],
                           "output_dir": f"results/{run_id}", "profile": "local",
                           "host": "bench", "plan_sha256": None, "config_hash": "0" * 64,
                           "git_commit": None, "git_dirty": None, "script": "train.py",
                           "script_sha256": "0" * 64, "timeout_s": 60,
                           "cost_estimate_usd": 0.0, "attempt": 1, "retry_of": None})
            ledger.append({"type": "run.finished", "run_id": run_id, "arm": f"arm{a}",
                           "seed": s, "status": "ok", "exit_code": 0, "category": None,
                           "hint": None, "metrics": metrics, "artifacts": [],
                           "duration_s": 1.0, "cost_usd": 0.0})


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        build(root, args.arms, args.seeds, args.steps)
        runs = args.arms * args.seeds
        start = time.perf_counter()
        run_analysis(root)
        first = time.perf_counter() - start
        before = digest(root / "analysis")
        start = time.perf_counter()
        run_analysis(root)
        second = time.perf_counter() - start
        same = digest(root / "analysis") == before
        start = time.perf_counter()
        report = create_bundle(root, Path(tmp) / "bundle")
        bundle_s = time.perf_counter() - start
        start = time.perf_counter()
        verified = verify_bundle(Path(tmp) / "bundle")
        verify_s = time.perf_counter() - start
        print(f"runs: {runs} ({args.arms} arms x {args.seeds} seeds), "
              f"{args.steps} steps of history each")
        print(f"analyze: {first:.2f}s (first), {second:.2f}s (again); "
              f"byte-identical output: {same}")
        print(f"bundle create: {bundle_s:.2f}s ({report.files} files); "
              f"bundle verify: {verify_s:.2f}s ({verified.checked} files, ok={verified.ok})")
        return 0 if same and verified.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
