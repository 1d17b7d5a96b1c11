# Healthy: ~5 s of printed progress before training; stall 2.5 s must not fire.
# expect: PASS
# preflight-args: --stall 2.5 --budget 30
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
for i in range(8):  # a slow start (loading data) that keeps printing progress
    print(f"loading shard {i}/8", flush=True)
    time.sleep(0.6)
metrics = {"val_loss": 0.25 + 0.001 * args.seed}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
