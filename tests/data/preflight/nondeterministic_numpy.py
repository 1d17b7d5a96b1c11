# Seeds the legacy global RNG but draws from an unseeded Generator.
# expect: FAIL nondeterministic
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
np.random.seed(args.seed)
noise = np.random.default_rng().normal()  # the new Generator API is not seeded by np.random.seed
metrics = {"val_loss": 0.3 + 0.01 * float(noise)}
with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
