# Writes metrics.json to a hard-coded /tmp path.
# expect: FAIL metrics-missing
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
os.makedirs("/tmp/rstack-corpus-results", exist_ok=True)
with open("/tmp/rstack-corpus-results/metrics.json", "w") as f:  # a hard-coded path
    json.dump({"loss": 0.1}, f)
