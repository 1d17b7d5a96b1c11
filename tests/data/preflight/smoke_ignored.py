# Keeps printing, never finishes.
# expect: FAIL smoke-ignored
# preflight-args: --stall 2 --budget 4
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
step = 0
while True:  # ignores --smoke-test: trains "forever" while printing
    step += 1
    print(f"epoch {step // 10} step {step}", flush=True)
    time.sleep(0.2)
