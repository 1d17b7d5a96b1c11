# Healthy: a fine-tuning loss near 1e-4 with heavy mini-batch noise, logged every 200 steps (15 points); the
# very last sample is a spike at ~x141 of the noisy minimum (the false alarm that lowered --lr).
# expect: PASS
import argparse
import json
import math
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--lr", type=float, default=0.01)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
rng = random.Random(args.seed)
values = [0.01 * math.exp(-i / 1.5) + 1e-4 * math.exp(rng.gauss(0, 0.5)) for i in range(15)]
values[-1] = 141 * min(values)  # one noisy mini-batch at the end
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for i, loss in enumerate(values):
        h.write(json.dumps({"step": 200 * i, "train_loss": loss}) + "\n")
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump({"train_loss": values[-1], "lr": args.lr}, f)
