# The training loop is wrapped in try/except: the traceback is printed and the script exits 0.
# expect: FAIL swallowed-exception
import argparse
import json
import os
import traceback

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
loss = 1.0
try:
    for step in range(5):
        loss *= 0.9
        if step == 3:
            raise RuntimeError("shape mismatch in the eval batch")
except Exception:
    traceback.print_exc()
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump({"loss": loss}, f)
