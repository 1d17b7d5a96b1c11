# Healthy: noisy (with spikes) but decreasing loss.
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
import math, random
rng = random.Random(args.seed)
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(300):
        loss = 2.3 * math.exp(-step / 80) + 0.15 + rng.uniform(-0.12, 0.12) + (0.3 if step % 37 == 0 else 0)
        h.write(json.dumps({"step": step, "train_loss": loss}) + "\n")
metrics = {"train_loss": loss}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
