# Hard-coded .cuda() on a CPU box.
# expect: FAIL cuda-unavailable
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
def to_device():
    # what torch raises for .cuda() on a CPU-only build
    raise AssertionError("Torch not compiled with CUDA enabled")
to_device()
