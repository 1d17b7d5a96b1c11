# Healthy: spawns a child process and waits for it.
# expect: PASS
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
import subprocess, sys
MARK = os.environ.get("RSTACK_CORPUS_MARKER", "rstack-corpus-child")
out = subprocess.run([sys.executable, "-c", "import sys; print(sum(range(1000)))", MARK],
                     capture_output=True, text=True, check=True).stdout
metrics = {"total": int(out.strip())}
print("child said", out.strip())
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
