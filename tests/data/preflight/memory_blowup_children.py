# Four workers of 150 MB each: only the tree's total crosses the cap.
# expect: FAIL memory
# preflight-args: --memory-mb 400 --stall 10
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
import subprocess, sys, time
MARK = os.environ.get("RSTACK_CORPUS_MARKER", "rstack-corpus-child")
code = "import time\nx = bytearray(150 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(600)"
procs = [subprocess.Popen([sys.executable, "-c", code, MARK]) for _ in range(4)]
print("workers started", flush=True)
time.sleep(600)
