"""Claim throughput of `rstack program serve`: submissions per second with 8 concurrent members,
every one checked (schema, bundle imported and scope-checked in the owner's repository) and
recorded (state.db, and the owner's knowledge base for non-KEEP trials).

    .venv/bin/python bench/program_claims.py [--members 8] [--per-member 10]

A scratch owner project (the toy program of the tests, with its baseline) is served on
127.0.0.1; each member joins through the device flow, then its thread posts --per-member distinct
candidates (each a commit changing train.py, as a git bundle; half KEEP claims, half DISCARDs)
as fast as the server answers. The figure is total accepted submissions / wall time; the script
fails when any submission is missing from the server's claims afterwards.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from program_server_fixtures import Server, owner_project  # noqa: E402

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def git(root: Path, *args: str, binary: bool = False):
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=not binary).stdout


def join(server: Server, name: str) -> str:
    d = server.api("POST", "/oauth/device_authorization", data={"client_id": "bench", "member": name}).json()
    server.api("POST", "/api/approve", server.owner_token, json={"user_code": d["user_code"]})
    time.sleep(1.05)
    return server.api("POST", "/oauth/token", data={"grant_type": GRANT, "device_code": d["device_code"],
                                                    "client_id": "bench"}).json()["access_token"]


def payloads(root: Path, name: str, count: int, champion: str) -> list[dict]:
    """`count` candidate commits on the champion, each as the member's client would submit it."""
    from rstack.program import gittree

    out = []
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    git(work, "clone", "-q", str(root), ".")
    git(work, "checkout", "-q", champion)
    for i in range(count):
        text = (work / "train.py").read_text() + f"\n# {name} candidate {i}\n"
        (work / "train.py").write_text(text)
        git(work, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qam", f"{name} {i}")
        commit = git(work, "rev-parse", "HEAD").strip()
        git(work, "update-ref", "refs/rstack/submit", commit)
        bundle = git(work, "bundle", "create", "-q", "-", "refs/rstack/submit", f"^{champion}", binary=True)
        keep = i % 2 == 0
        stages = [{"name": "trial", "values": {"0": 0.1, "1": 0.1, "2": 0.1},
                   "champion_values": {"0": 0.2, "1": 0.2, "2": 0.2}}]
        if keep:
            stages.append({"name": "confirm", "values": {"100": 0.1, "101": 0.1, "102": 0.1},
                           "champion_values": {"100": 0.2, "101": 0.2, "102": 0.2}})
        out.append({"submission": hashlib.sha256(f"{name}{i}".encode()).hexdigest()[:24],
                    "record": {"verdict": "KEEP" if keep else "DISCARD", "metric": "val_loss",
                               "tree": gittree.tree_hash(work, commit, ["train.py"]),
                               "commit": commit, "hypothesis": f"{name} {i}", "runs": [],
                               "cost_usd": 0.0, "stages": stages},
                    "artifacts": {}, "bundle": base64.b64encode(bundle).decode()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--per-member", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rstack-claims-"))
    root, home = owner_project(tmp)
    server = Server(root, home, "--interval", "1", "--rate", "100000")
    try:
        champion = git(root, "rev-parse", "refs/rstack/champion").strip()
        members = [f"m{i}" for i in range(args.members)]
        tokens = {m: join(server, m) for m in members}
        work = {m: payloads(root, m, args.per_member, champion) for m in members}
        failures: list[str] = []

        def member(name: str) -> None:
            for body in work[name]:
                resp = server.api("POST", "/api/claims", tokens[name], json=body)
                if resp.status_code not in (200, 201):
                    failures.append(f"{name}: {resp.status_code} {resp.text[:200]}")

        threads = [threading.Thread(target=member, args=(m,)) for m in members]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        claims = server.api("GET", "/api/claims", server.owner_token).json()["claims"]
        total = args.members * args.per_member
        if failures or len(claims) != total:
            sys.exit(f"FAIL: {len(claims)} of {total} recorded; {failures[:3]}")
        print(f"{total} submissions from {args.members} concurrent members in {wall:.2f} s: "
              f"{total / wall:.1f} claims/s (all {len(claims)} recorded: "
              f"{sum(c['status'] == 'pending' for c in claims)} pending claims, "
              f"{sum(c['status'] == 'recorded' for c in claims)} recorded trials)")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
