# Healthy, numpy least squares.
# expect: PASS
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
import numpy as np
rng = np.random.default_rng(args.seed)
x = rng.normal(size=(256, 8)); true = rng.normal(size=8); y = x @ true
w = np.zeros(8)
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(30):
        g = x.T @ (x @ w - y) / len(y)
        w -= 0.1 * g
        h.write(json.dumps({"step": step, "train_loss": float(np.mean((x @ w - y) ** 2))}) + "\n")
metrics = {"train_loss": float(np.mean((x @ w - y) ** 2)), "weight_norm": float(np.linalg.norm(w))}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
