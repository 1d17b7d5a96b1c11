"""RStack demo experiment: plain SGD versus heavy-ball momentum on an ill-conditioned task.

    python train.py --output-dir DIR [--smoke-test] [--seed N] [--momentum M] [--lr X] [--steps N]

A one-hidden-layer tanh network learns a synthetic binary classification problem whose input
features span two orders of magnitude in scale (an ill-conditioned loss surface, where momentum
is expected to help). Follows RStack's artifact contract: DIR/metrics.json (flat, finite numbers)
and DIR/metrics.jsonl (one object per logged step); the same --seed gives the same metrics.
"""

from __future__ import annotations

import argparse
import json
import os

# The matrices here are tiny: one BLAS thread per run is fastest, and several runs in parallel
# on a small machine would otherwise oversubscribe the cores (threads spinning against each other).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings, which numpy reads at import)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
    parser.add_argument("--smoke-test", "--smoke_test", dest="smoke_test", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--momentum", type=float, default=0.0, help="heavy-ball coefficient (0 = SGD)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--data-seed", type=int, default=1234,
                        help="seed of the synthetic task (fixed: --seed varies only the training)")
    return parser.parse_args(argv)


def make_data(rng: np.random.Generator, n: int, d: int = 16):
    """Inputs with per-feature scales from 0.1 to 10; labels from a fixed random teacher + 10% noise."""
    scales = np.logspace(-1, 1, d)
    x = rng.normal(size=(n, d)) * scales
    teacher = rng.normal(size=d) / scales
    y = ((x @ teacher) > 0).astype(np.float64)
    flip = rng.random(n) < 0.1
    y[flip] = 1.0 - y[flip]
    return x, y


def forward(params, x):
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    return h, 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def loss_and_grads(params, x, y):
    w1, b1, w2, b2 = params
    h, p = forward(params, x)
    eps = 1e-12
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    dz = (p - y) / len(y)
    dh = np.outer(dz, w2) * (1 - h ** 2)
    return loss, [x.T @ dh, dh.sum(0), h.T @ dz, dz.sum()]


def evaluate(params, x, y):
    loss, _ = loss_and_grads(params, x, y)
    _, p = forward(params, x)
    return loss, float(np.mean((p > 0.5) == (y > 0.5)))


def main(argv=None) -> int:
    args = parse_args(argv)
    n_train, n_val = (256, 128) if args.smoke_test else (4000, 2000)
    steps = min(args.steps, 10) if args.smoke_test else args.steps
    x, y = make_data(np.random.default_rng(args.data_seed), n_train + n_val)
    rng = np.random.default_rng(args.seed)  # initialisation and minibatch order
    x_tr, y_tr, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    d = x.shape[1]
    params = [rng.normal(size=(d, args.hidden)) / np.sqrt(d), np.zeros(args.hidden),
              rng.normal(size=args.hidden) / np.sqrt(args.hidden), 0.0]
    velocity = [np.zeros_like(p) if isinstance(p, np.ndarray) else 0.0 for p in params]

    os.makedirs(args.output_dir, exist_ok=True)
    log_every = 1 if args.smoke_test else 20
    with open(os.path.join(args.output_dir, "metrics.jsonl"), "w") as history:
        for step in range(1, steps + 1):
            batch = rng.integers(0, n_train, size=args.batch_size)
            train_loss, grads = loss_and_grads(params, x_tr[batch], y_tr[batch])
            for i, grad in enumerate(grads):
                velocity[i] = args.momentum * velocity[i] + grad
                params[i] = params[i] - args.lr * velocity[i]
            if step % log_every == 0 or step == steps:
                val_loss, _ = evaluate(params, x_val, y_val)
                history.write(json.dumps({"step": step, "train_loss": train_loss,
                                          "val_loss": val_loss}) + "\n")
                print(f"step {step}/{steps} train_loss {train_loss:.4f} val_loss {val_loss:.4f}",
                      flush=True)

    val_loss, val_accuracy = evaluate(params, x_val, y_val)
    train_loss, _ = evaluate(params, x_tr, y_tr)
    metrics = {"val_loss": val_loss, "val_accuracy": val_accuracy, "train_loss": train_loss}
    with open(os.path.join(args.output_dir, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=2)
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
