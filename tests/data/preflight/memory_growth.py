# Every step keeps 1 MB alive; the smoke run is fine, 20,000 real steps would need ~20 GB.
# expect: FAIL memory-growth
# preflight-args: --full-steps 20000
import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--steps", type=int, default=20000)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
kept = []
steps = 60 if args.smoke_test else args.steps
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(steps):
        kept.append(bytearray(1024 * 1024))  # never released
        kept[-1][::4096] = b"x" * len(kept[-1][::4096])  # touch the pages so they count
        loss = 1.0 / (step + 1)
        h.write(json.dumps({"step": step, "loss": loss}) + "\n")
        h.flush()
        time.sleep(0.03)
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump({"loss": loss}, f)
