# Hang with a child and a setsid'd grandchild; none may survive.
# expect: FAIL hang
# preflight-args: --stall 2 --budget 30
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
code = "import os, time\nos.setsid()\nif os.fork(): os._exit(0)\ntime.sleep(600)"
subprocess.Popen([sys.executable, "-c", code, MARK]).wait()  # a daemonised grandchild
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", MARK])
print("waiting on workers", flush=True)
time.sleep(600)
