# Matrix shapes do not line up.
# expect: FAIL shape-mismatch
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
import numpy as np
x = np.ones((4, 3))
w = np.ones((5, 2))
y = x @ w  # a real numpy shape error
