#!/usr/bin/env python3
"""A scripted stand-in for the `vastai` CLI: the only simulated edge of the vastai tests.

State lives in $VASTAI_STANDIN_STATE (JSON): offers to return, instances created, every call made.
`ssh-url` answers with $VASTAI_STANDIN_SSH_URL, a real sshd the test runs on 127.0.0.1.
"""
import json
import os
import re
import sys

path = os.environ["VASTAI_STANDIN_STATE"]
with open(path) as handle:
    state = json.load(handle)
argv = sys.argv[1:]
state.setdefault("calls", []).append(argv)
raw = "--raw" in argv
args = [a for a in argv if a != "--raw"]


def save():
    with open(path, "w") as handle:
        json.dump(state, handle)


def out(value):
    print(json.dumps(value) if raw else value)


if args[:2] == ["search", "offers"]:
    query = args[2]
    gpu = re.search(r"gpu_name=(\S+)", query).group(1)
    ceiling = float(re.search(r"dph_total<=(\S+)", query).group(1))
    out([o for o in state["offers"] if o["gpu_name"] == gpu and o["dph_total"] <= ceiling])
elif args[:2] == ["create", "instance"]:
    new_id = 1000 + len(state.setdefault("instances", {}))
    disk = args[args.index("--disk") + 1]
    state["instances"][str(new_id)] = {"offer": args[2], "disk": disk, "polls": 0,
                                       "status": "loading", "destroyed": False}
    out({"success": True, "new_contract": new_id})
elif args[:2] == ["show", "instance"]:
    inst = state["instances"][args[2]]
    inst["polls"] += 1
    if inst["polls"] >= state.get("polls_until_running", 2):
        inst["status"] = state.get("final_status", "running")
    offer = next(o for o in state["offers"] if str(o["id"]) == inst["offer"])
    out({"id": int(args[2]), "actual_status": inst["status"], "dph_total": offer["dph_total"]})
elif args[0] == "ssh-url":
    print(os.environ["VASTAI_STANDIN_SSH_URL"])
elif args[:2] == ["destroy", "instance"]:
    state["instances"][args[2]]["destroyed"] = True
    print(f"destroying instance {args[2]}.")
else:
    print(f"stand-in: unsupported {argv}", file=sys.stderr)
    save()
    sys.exit(2)
save()
