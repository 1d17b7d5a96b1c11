# Computes forever without printing or writing: a hang by definition, diagnosed as busy, not blocked.
# expect: FAIL hang
# preflight-args: --stall 2 --budget 30
import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
total = 0
while True:
    total += 1
