# metrics.jsonl lines without a step.
# expect: FAIL history-steps
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
loss = 1.0
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(10):
        loss *= 0.9
        h.write(json.dumps({"loss": loss}) + "\n")
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump({"loss": loss}, f)
