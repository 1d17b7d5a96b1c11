# Dies of SIGKILL (as from the OOM killer).
# expect: FAIL killed-by-signal
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
import os, signal
print("about to be killed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
