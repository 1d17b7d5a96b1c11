# Loss falls, then blows up far above its minimum.
# expect: FAIL divergence
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as h:
    for step in range(60):
        loss = 2.0 * 0.85 ** step if step < 40 else 2.0 * 0.85 ** 40 * 1.5 ** (step - 40)
        h.write(json.dumps({"step": step, "loss": loss}) + "\n")
metrics = {"loss": loss}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
