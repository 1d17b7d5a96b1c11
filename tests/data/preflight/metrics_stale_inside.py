# A placeholder metrics.json in the output dir; the real one goes to the working directory.
# expect: FAIL metrics-elsewhere
import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump({"loss": 0.0}, f)  # placeholder, written first
time.sleep(0.05)
with open("metrics.json", "w") as f:  # the real metrics, in the cwd
    json.dump({"loss": 0.42}, f)
