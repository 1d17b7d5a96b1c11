# Healthy, standard library only.
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
import random
rng = random.Random(args.seed)
w, history = 5.0, []
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(20 if args.smoke_test else 2000):
        w -= 0.1 * (2 * w) + rng.gauss(0, 0.01)
        h.write(json.dumps({"step": step, "loss": w * w}) + "\n")
metrics = {"loss": w * w, "w": w}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
