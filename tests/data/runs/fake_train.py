"""A contract-following test script whose behaviour is chosen by --mode (no numpy: runs anywhere)."""
import argparse
import json
import os
import signal
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
p.add_argument("--seed", type=int, default=0)
p.add_argument("--smoke-test", action="store_true")
p.add_argument("--mode", default="ok")  # ok crash sleep hog diverge oom-cuda nan badmetrics
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--grad-accum", type=int, default=1)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--starts-file", default="")
args = p.parse_args()

os.makedirs(args.output_dir, exist_ok=True)
if args.starts_file:
    with open(args.starts_file, "a") as handle:
        handle.write(f"{os.getpid()}\n")
print(f"start mode={args.mode} seed={args.seed} lr={args.lr} bs={args.batch_size}", flush=True)
loss = 1.0 + args.seed * 0.01
history = open(os.path.join(args.output_dir, "metrics.jsonl"), "w")
steps = 10
for step in range(steps):
    if args.mode == "diverge":
        loss = loss * (10.0 if args.lr >= 0.05 else 0.5)
    else:
        loss = loss * (1 - args.lr)
    history.write(json.dumps({"step": step, "train_loss": loss, "val_loss": loss * 1.1}) + "\n")
    history.flush()
    if args.sleep:
        time.sleep(args.sleep / steps)
history.close()
if args.mode == "crash":
    raise ValueError("boom at the end")
if args.mode == "sleep":
    time.sleep(3600)
if args.mode == "hog":
    blocks = []
    while True:
        blocks.append(bytearray(50 * 1024 * 1024))
        time.sleep(0.05)
if args.mode == "oom-cuda":
    if args.batch_size > 8:
        print("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
        sys.exit(1)
if args.mode == "selfkill":
    os.kill(os.getpid(), signal.SIGKILL)
if args.mode == "nometrics":
    sys.exit(0)
with open(os.path.join(args.output_dir, "metrics.json"), "w") as handle:
    json.dump({"val_loss": loss * 1.1, "train_loss": loss, "lr": args.lr,
               "batch_size": args.batch_size,
               "cuda_device": int(os.environ.get("CUDA_VISIBLE_DEVICES") or -1),
               "saw_venv_dir": int(os.path.isdir("venv"))}, handle)
print("done", flush=True)
