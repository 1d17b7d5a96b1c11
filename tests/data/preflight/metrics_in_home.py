# Writes metrics.json to a hard-coded place in the home directory.
# expect: FAIL metrics-missing
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
target = os.path.expanduser("~/experiments")
os.makedirs(target, exist_ok=True)
with open(os.path.join(target, "metrics.json"), "w") as f:
    json.dump({"loss": 0.1}, f)
