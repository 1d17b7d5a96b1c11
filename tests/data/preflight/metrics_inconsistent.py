# A training loop in try/except: it fails halfway, and metrics.json gets placeholder values.
# expect: FAIL metrics-inconsistent
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
val_loss, val_acc = 0.0, 0.0  # defaults
try:
    with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
        for step in range(10):
            loss = 2.0 * 0.8 ** step
            h.write(json.dumps({"step": step, "val_loss": loss, "val_acc": 0.5 + step / 40}) + "\n")
        val_loss = float("not a number")  # the evaluation breaks
except ValueError:
    pass  # swallowed: no traceback, exit 0
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump({"val_loss": val_loss, "val_acc": val_acc}, f)
