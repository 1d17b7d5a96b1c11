"""Toy training script for the program-loop tests: numpy linear regression by gradient descent,
with controlled seed noise. The constants below are what a trial edits.

    python train.py --output-dir DIR --seed N [--smoke-test]

val_loss = the trained model's validation MSE (deterministic given STEPS and LR) plus
NOISE * N(0, 1) drawn from the seed (+ SEED_OFFSET): the noise a trial must see through.
"""

import argparse
import json
import os

import numpy as np

SEED_OFFSET = 0
LR = 0.05
STEPS = 20
NOISE = 0.01
BONUS = 0.0  # a change with a known real effect subtracts this from val_loss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--model", default="linear")
    args = parser.parse_args()
    data = np.random.default_rng(1234)  # the data set is fixed; seeds vary only the noise
    x = data.normal(size=(256, 8))
    w_true = data.normal(size=8)
    y = x @ w_true + 0.1 * data.normal(size=256)
    x_val = data.normal(size=(128, 8))
    y_val = x_val @ w_true + 0.1 * data.normal(size=128)
    rng = np.random.default_rng(args.seed + SEED_OFFSET)
    w = np.zeros(8)
    steps = 3 if args.smoke_test else STEPS
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as history:
        for step in range(1, steps + 1):
            grad = 2 * x.T @ (x @ w - y) / len(y)
            w -= LR * grad
            train_loss = float(np.mean((x @ w - y) ** 2))
            history.write(json.dumps({"step": step, "train_loss": train_loss}) + "\n")
    val_loss = float(np.mean((x_val @ w - y_val) ** 2)) - BONUS + NOISE * float(rng.normal())
    with open(os.path.join(args.output_dir, "metrics.json"), "w") as out:
        json.dump({"val_loss": val_loss, "train_loss": train_loss}, out)


if __name__ == "__main__":
    main()
