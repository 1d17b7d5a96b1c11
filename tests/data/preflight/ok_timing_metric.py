# Healthy: timing metrics differ between runs and are not compared.
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
import time
t0 = time.time()
total = sum(i * i for i in range(10000 + args.seed))
metrics = {"objective": float(total), "train_time_s": time.time() - t0, "samples_per_sec": 1e4 / max(time.time() - t0, 1e-9)}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
