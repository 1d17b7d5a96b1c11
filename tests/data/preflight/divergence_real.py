# A real divergence: the loss falls, then climbs steadily (lr too high) and stays up; the
# smoothed loss is x10 its minimum for the whole tail, not for one sample.
# expect: FAIL divergence
import argparse
import json
import math
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--lr", type=float, default=1.0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
rng = random.Random(args.seed)
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(80):
        # with a small enough lr the loss just decays; with a large one it blows up after step 30
        blowup = max(0.0, step - 30) * math.log(1.0 + 10 * args.lr) / 4 if args.lr > 0.2 else 0.0
        loss = (2.0 * 0.9 ** min(step, 30) + 0.05) * math.exp(blowup) * math.exp(rng.gauss(0, 0.1))
        h.write(json.dumps({"step": step, "train_loss": loss}) + "\n")
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump({"train_loss": loss, "lr": args.lr}, f)
