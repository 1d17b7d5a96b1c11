"""A minimal training script that follows RStack's artifact contract (numpy only).

    python train_template.py --output-dir DIR [--smoke-test] [--seed N] [--lr X] [--batch-size N]
                             [--grad-accum N] [--steps N]

Writes DIR/metrics.json (flat object of finite numbers) and DIR/metrics.jsonl (one object per
logged step). The same --seed gives the same metrics. --smoke-test runs a few steps of everything
(data, forward, backward, eval, save) and finishes in about a second on a CPU.
Replace the synthetic data and the logistic-regression model with your own; keep the contract.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"),
                        help="where metrics.json / metrics.jsonl go (default: $RSTACK_OUTPUT_DIR, else ./out)")
    parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true",
                        help="a few steps of everything; finishes in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--grad-accum", type=int, default=1,
                        help="micro-batches per optimizer step (effective batch = batch-size x grad-accum)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--features", type=int, default=32)
    return parser.parse_args(argv)


def make_data(rng: np.random.Generator, n: int, d: int):
    """Synthetic, linearly separable-ish binary classification data (replace with real data)."""
    w_true = rng.normal(size=d)
    x = rng.normal(size=(n, d))
    logits = x @ w_true + 0.5 * rng.normal(size=n)
    y = (logits > 0).astype(np.float64)
    return x, y


def loss_and_grad(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray):
    z = x @ w + b
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
    eps = 1e-12
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    err = (p - y) / len(y)
    return loss, x.T @ err, float(err.sum())


def evaluate(w, b, x, y):
    loss, _, _ = loss_and_grad(w, b, x, y)
    acc = float(np.mean(((x @ w + b) > 0) == (y > 0.5)))
    return loss, acc


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.batch_size < 1 or args.grad_accum < 1:
        print("--batch-size and --grad-accum must be >= 1", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    n_train, n_val = (512, 256) if args.smoke_test else (20000, 5000)
    steps = min(args.steps, 20) if args.smoke_test else args.steps
    x, y = make_data(rng, n_train + n_val, args.features)
    x_train, y_train, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    os.makedirs(args.output_dir, exist_ok=True)
    w = np.zeros(args.features)
    b = 0.0
    log_every = 1 if args.smoke_test else 50
    history_path = os.path.join(args.output_dir, "metrics.jsonl")
    with open(history_path, "w") as history:
        for step in range(steps):
            grad_w = np.zeros_like(w)
            grad_b = 0.0
            train_loss = 0.0
            for _ in range(args.grad_accum):
                idx = rng.integers(0, n_train, size=args.batch_size)
                loss, gw, gb = loss_and_grad(w, b, x_train[idx], y_train[idx])
                grad_w += gw / args.grad_accum
                grad_b += gb / args.grad_accum
                train_loss += loss / args.grad_accum
            w -= args.lr * grad_w
            b -= args.lr * grad_b
            if not math.isfinite(train_loss):
                print(f"step {step}: loss is {train_loss}; stopping", file=sys.stderr)
                return 1
            if step % log_every == 0 or step == steps - 1:
                val_loss, val_acc = evaluate(w, b, x_val, y_val)
                record = {"step": step, "train_loss": train_loss, "val_loss": val_loss,
                          "val_accuracy": val_acc}
                history.write(json.dumps(record) + "\n")
                print(f"step {step}/{steps} train_loss {train_loss:.4f} val_loss {val_loss:.4f}",
                      flush=True)

    val_loss, val_acc = evaluate(w, b, x_val, y_val)
    np.save(os.path.join(args.output_dir, "weights.npy"), np.append(w, b))  # the "save" step
    # Measured values only: a constant (the step count, say) would become a meaningless column
    # in every table and figure that analyze draws.
    metrics = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_acc}
    with open(os.path.join(args.output_dir, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=2)
    print(f"done: val_loss {val_loss:.4f} val_accuracy {val_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
