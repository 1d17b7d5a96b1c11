"""The member's side of a shared program: join (RFC 8628 device flow), pull the champion into a
clone, submit a finished trial, verify other members' claims, and the owner's calls (members,
approve, revoke). Talks to `rstack program serve` over HTTP; never decides a verdict itself.

Tokens live in `$RSTACK_HOME/programs/<name>.json` (600); a clone knows its program from
`.rstack/program-remote.json`; a submission waits in `.rstack/program-outbox/` until the server
has acknowledged it, so a lost connection or a killed server loses nothing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import Callable

import requests

from ..atomic import write_text
from ..gitstate import git
from ..paths import rstack_home, state_dir
from . import gittree
from .spec import ProgramError

CLIENT_ID = "rstack"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MARKER = "program-remote.json"
OUTBOX = "program-outbox"
TIMEOUT = (10, 120)

Echo = Callable[[str], None]


def credentials_path(program: str) -> Path:
    return rstack_home() / "programs" / f"{program}.json"


def _write_private(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2), mode=0o600)
    os.chmod(path, 0o600)


class ServerRefused(ProgramError):
    """The server answered 4xx/5xx; `status` is its HTTP status."""

    def __init__(self, message: str, *, status: int, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


class Connection:
    """A base URL and a bearer token; every call raises ProgramError with the server's message."""

    def __init__(self, url: str, token: str, program: str = "", member: str = ""):
        self.url, self.token, self.program, self.member = url.rstrip("/"), token, program, member

    def call(self, method: str, path: str, *, body=None, raw: bool = False):
        try:
            resp = requests.request(method, self.url + path, json=body, timeout=TIMEOUT,
                                    headers={"Authorization": f"Bearer {self.token}"})
        except requests.RequestException as exc:
            raise ProgramError(f"cannot reach the program server at {self.url} ({exc.__class__.__name__})",
                               hint="is `rstack program serve` running, and the tunnel up?") from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error")
            except ValueError:
                message = resp.text[:200]
            raise ServerRefused(f"server refused {method} {path} ({resp.status_code}): {message}",
                                status=resp.status_code, hint="rstack program join URL again if the token was revoked"
                               if resp.status_code == 401 else None)
        return resp.content if raw else resp.json()


def owner_connection(root: Path) -> Connection:
    """The owner's connection to the server running on this project."""
    from .server.app import server_dir

    sdir = server_dir(root)
    try:
        url = (sdir / "url").read_text().strip()
        token = json.loads((sdir / "owner.json").read_text())["token"]
    except (OSError, ValueError, KeyError):
        raise ProgramError("this project serves no program (no .rstack/program-server/)",
                           hint="rstack program serve, in the owner's project") from None
    return Connection(url, token, member="owner")


def member_connection(program: str | None = None, root: Path | None = None) -> Connection:
    """The member's connection: the program of the clone at `root`, the named one, or the only
    one joined."""
    if program is None and root is not None:
        marker = state_dir(root) / MARKER
        if marker.is_file():
            program = json.loads(marker.read_text())["program"]
    if program is None:
        joined = sorted(p.stem for p in (rstack_home() / "programs").glob("*.json"))
        if len(joined) != 1:
            raise ProgramError(f"joined {len(joined)} programs ({', '.join(joined) or 'none'}); "
                               "say which", hint="rstack program join URL, or --program NAME")
        program = joined[0]
    path = credentials_path(program)
    if not path.is_file():
        raise ProgramError(f"not a member of program {program!r}", hint="rstack program join URL")
    data = json.loads(path.read_text())
    return Connection(data["url"], data["token"], program=data["program"], member=data["member"])


def connection_for(root: Path) -> Connection:
    """The owner's when this project serves the program, else the member's clone's."""
    from .server.app import server_dir

    if (server_dir(root) / "owner.json").is_file():
        return owner_connection(root)
    return member_connection(root=root)


def join(url: str, name: str, *, echo: Echo, sleep=time.sleep) -> dict:
    """RFC 8628: ask for a device code, show the user code, poll the token endpoint at the
    server's interval (5 s more after each slow_down), store the token (600)."""
    url = url.rstrip("/")
    try:
        resp = requests.post(f"{url}/oauth/device_authorization",
                             data={"client_id": CLIENT_ID, "member": name}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ProgramError(f"cannot reach {url} ({exc.__class__.__name__})",
                           hint="check the URL `rstack program serve` printed, and the tunnel") from None
    body = resp.json()
    if resp.status_code != 200:
        raise ProgramError(f"{url} refused to start the device flow: {body.get('error_description')}")
    echo(f"user code: {body['user_code']}")
    echo(f"ask the owner to approve it: rstack program approve {body['user_code']} "
         f"(see {body['verification_uri']})")
    interval = int(body.get("interval", 5))
    deadline = time.monotonic() + int(body["expires_in"])
    while True:
        sleep(interval)
        resp = requests.post(f"{url}/oauth/token", timeout=TIMEOUT,
                             data={"grant_type": DEVICE_GRANT, "device_code": body["device_code"],
                                   "client_id": CLIENT_ID})
        out = resp.json()
        if resp.status_code == 200:
            break
        error = out.get("error")
        if error == "authorization_pending":
            if time.monotonic() > deadline:
                raise ProgramError("the user code expired before the owner approved it",
                                   hint=f"rstack program join {url}")
            continue
        if error == "slow_down":
            interval += 5
            continue
        if error == "access_denied":
            raise ProgramError("the owner denied the request to join")
        if error == "expired_token":
            raise ProgramError("the user code expired before the owner approved it",
                               hint=f"rstack program join {url}")
        raise ProgramError(f"token endpoint: {error}: {out.get('error_description')}")
    data = {"url": url, "program": out["program"], "member": out["member"],
            "token": out["access_token"], "expires_at": time.time() + out["expires_in"]}
    _write_private(credentials_path(out["program"]), data)
    return {"program": out["program"], "member": out["member"],
            "credentials": str(credentials_path(out["program"]))}


def _git(root: Path, *args: str) -> str:
    proc = git(root, *args)
    if proc is None:
        raise ProgramError(f"git {' '.join(args[:3])} failed in {root}")
    return proc.stdout.strip()


def _fetch_bundle(root: Path, data: bytes) -> None:
    path = state_dir(root) / f"incoming-{secrets.token_hex(4)}.bundle"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    try:
        _git(root, "fetch", "-q", "--no-tags", str(path), "+refs/*:refs/rstack/fetched/*")
    finally:
        path.unlink(missing_ok=True)


def _seed_champion(root: Path, champion: dict) -> None:
    """Make the server's champion the clone's: its ref and a program.champion record, so the
    ordinary `rstack program trial` runs against it."""
    from .kb import KnowledgeBase, ledger
    from .spec import load_program

    program = load_program(root)
    kb = KnowledgeBase.read(root, program.name)
    if kb.champion is None or kb.champion["commit"] != champion["commit"]:
        record = {k: v for k, v in champion.items() if k not in ("v", "ts")}
        record["champion"] = (kb.champion["champion"] + 1) if kb.champion else champion["champion"]
        ledger(root).append(record)
    gittree.set_ref(root, gittree.CHAMPION_REF, champion["commit"])


def pull(directory: str | None, *, program: str | None = None, echo: Echo) -> dict:
    """Make or update a clone at the champion (default ./<program name>)."""
    conn = member_connection(program)
    info = conn.call("GET", "/api/program")
    data = conn.call("GET", "/api/champion.bundle", raw=True)
    root = Path(directory or info["program"]).resolve()
    champion = info["champion"]
    created = not (root / ".git").exists()
    if created:
        root.mkdir(parents=True, exist_ok=True)
        _git(root, "init", "-q")
    _fetch_bundle(root, data)
    marker = state_dir(root) / MARKER
    old = json.loads(marker.read_text())["champion"] if marker.is_file() else None
    head = git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    moved = "kept HEAD"
    if created or head is None:
        _git(root, "checkout", "-q", "-B", "main", champion["commit"])
        moved = "checked out the champion"
    elif old and head.stdout.strip() == old and not _git(root, "status", "--porcelain",
                                                              "--untracked-files=no"):
        _git(root, "reset", "-q", "--hard", champion["commit"])
        moved = "moved HEAD to the new champion"
    write_text(marker, json.dumps({"program": info["program"], "url": conn.url,
                                   "champion": champion["commit"]}, indent=2))
    _seed_champion(root, champion)
    echo(f"{root}: champion #{champion['champion']} {champion['commit'][:10]} "
         f"(trial {champion['trial']}{', by ' + champion['member'] if champion.get('member') else ''}); {moved}")
    return {"directory": str(root), "champion": champion, "created": created}


def _artifacts(root: Path, run_ids: list[str]) -> dict[str, str]:
    """path -> sha256 of every file the runs wrote, as their run.finished records list them."""
    from .. import runview

    wanted = set(run_ids)
    index = runview.load(root)
    return {item["path"]: item["sha256"]
            for row, _started, finished in index.iter_records(index.runs())
            if row.run_id in wanted and finished
            for item in finished.get("artifacts") or [] if "sha256" in item}


def queue_submission(root: Path, record: dict) -> Path:
    """Write the trial's submission to the outbox (before anything is sent)."""
    marker = json.loads((state_dir(root) / MARKER).read_text())
    base = marker["champion"]
    ref = "refs/rstack/submit"
    _git(root, "update-ref", ref, record["commit"])
    try:
        proc = git(root, "bundle", "create", "-q", "-", ref, f"^{base}", binary=True)
        if proc is None:
            raise ProgramError("git bundle of the candidate failed (is it built on the champion?)",
                               hint="rstack program pull, then commit the change on top of it")
        bundle = proc.stdout
    finally:
        git(root, "update-ref", "-d", ref)
    keys = ("verdict", "tree", "commit", "hypothesis", "metric", "runs", "cost_usd", "stages")
    payload = {"submission": secrets.token_urlsafe(12), "record": {k: record.get(k) for k in keys},
               "artifacts": _artifacts(root, record.get("runs", [])),
               "bundle": base64.b64encode(bundle).decode("ascii")}
    path = state_dir(root) / OUTBOX / f"{payload['submission']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, allow_nan=False))
    return path


def flush_outbox(root: Path, *, echo: Echo) -> list[dict]:
    """Send every queued submission; each leaves the outbox once the server acknowledged it
    (a resend of one it already has returns the same claim)."""
    conn = member_connection(root=root)
    out = []
    for path in sorted((state_dir(root) / OUTBOX).glob("*.json")):
        try:
            answer = conn.call("POST", "/api/claims", body=json.loads(path.read_text()))
        except ServerRefused as exc:
            if exc.status in (400, 409, 413):  # the server will never take it: keep it aside
                rejected = path.parent / "rejected"
                rejected.mkdir(exist_ok=True)
                path.rename(rejected / path.name)
            raise
        path.unlink()
        echo(f"submitted to {conn.url}: claim {answer['claim']} ({answer['status']})")
        out.append(answer)
    return out


def is_joined(root: Path) -> bool:
    return (state_dir(root) / MARKER).is_file()


def verify_once(root: Path, *, echo: Echo, runner_factory=None, jobs: int | None = None) -> list[dict]:
    """Take the pending claims the server assigns to this verifier, one by one: run the
    candidate and the champion on the confirm seeds here, and report the values; the server
    decides with the program's rule."""
    from .spec import load_program
    from .trial import _script_in, code_values, run_seeds

    conn = connection_for(root)
    program = load_program(root)
    done = []
    while True:
        job = conn.call("POST", "/api/verify/next", body={})
        if job.get("claim") is None:
            return done
        claim = job["claim"]
        if git(root, "cat-file", "-e", f"{job['commit']}^{{commit}}") is None or \
                git(root, "cat-file", "-e", f"{job['champion']['commit']}^{{commit}}") is None:
            _fetch_bundle(root, conn.call("GET", f"/api/claims/{claim}/bundle", raw=True))
        echo(f"verifying claim {claim} by {job['member']} ({job['commit'][:10]}) on seeds {job['seeds']}")
        values = {}
        runs: list[str] = []
        for role, commit, tree in (("candidate", job["commit"], job["tree"]),
                                   ("champion", job["champion"]["commit"], job["champion"]["tree"])):
            have, ids = code_values(root, program, tree)
            missing = [s for s in job["seeds"] if s not in have]
            if missing:
                script = _script_in(root, program, commit, tree)
                batch = run_seeds(root, program, seeds=missing, script=script,
                                  tags={"program": program.name, "trial": claim, "tree": tree,
                                        "role": f"verify-{role}"},
                                  runner_factory=runner_factory, jobs=jobs, echo=echo)
                if batch.failures:
                    raise ProgramError(f"the {role}'s re-run failed: " + "; ".join(batch.failures),
                                       hint="rstack runs list shows the runs")
                have, ids = code_values(root, program, tree)
            values[role] = {str(s): have[s] for s in job["seeds"]}
            runs.extend(ids[s] for s in job["seeds"])
        answer = conn.call("POST", f"/api/verify/{claim}",
                           body={**values, "champion_tree": job["champion"]["tree"], "runs": runs})
        from .report import _num

        echo(f"claim {claim}: {answer['status']} (re-run improvement {_num(answer['improvement'])} "
             f"[{_num(answer['improvement_low'])}, {_num(answer['improvement_high'])}])")
        done.append(answer)
