# Healthy: about a second of CPU-bound numpy training in the smoke run (the realistic speed case).
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
x = rng.normal(size=(2000, 64)); y = np.tanh(x @ rng.normal(size=(64, 1)))
w1 = rng.normal(size=(64, 128)) * 0.1; w2 = rng.normal(size=(128, 1)) * 0.1
steps = 150 if args.smoke_test else 100000
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(steps):
        hid = np.tanh(x @ w1); pred = hid @ w2; err = pred - y
        loss = float(np.mean(err ** 2))
        g2 = hid.T @ err / len(x); g1 = x.T @ ((err @ w2.T) * (1 - hid ** 2)) / len(x)
        w1 -= 0.05 * g1; w2 -= 0.05 * g2
        if step % 10 == 0:
            h.write(json.dumps({"step": step, "train_loss": loss}) + "\n")
            print(f"step {step} loss {loss:.4f}", flush=True)
metrics = {"train_loss": loss}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
