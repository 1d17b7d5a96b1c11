# Allocates without bound.
# expect: FAIL memory
# preflight-args: --memory-mb 400 --stall 5
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
import numpy as np
blocks = []
while True:
    blocks.append(np.ones(5_000_000))  # 40 MB each, touched
    time.sleep(0.02)
