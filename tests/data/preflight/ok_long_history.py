# Healthy: a long but valid metrics.jsonl (5000 lines).
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
import math
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(5000):
        h.write(json.dumps({"step": step, "loss": 2.0 * math.exp(-step / 1500) + 0.1,
                            "lr": 0.001}) + "\n")
metrics = {"loss": 2.0 * math.exp(-4999 / 1500) + 0.1}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
