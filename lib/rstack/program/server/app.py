"""The shared program's HTTP API (Starlette, served by uvicorn): RFC 8628 device authorization,
the owner's member management, and the members' knowledge-base endpoints.

Every body is read with a size cap before it is parsed; every knowledge-base endpoint needs a
bearer token; a rejected request changes nothing. No decision rule lives here: claims.py applies
the program's own (`decide`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ...paths import state_dir
from ..kb import KnowledgeBase
from ..spec import load_program
from . import claims
from .store import NAME, Store, show_user_code

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SERVER_DIR = "program-server"  # under .rstack/: state.db, owner.json (600)
SMALL_BODY = 64 * 1024
MAX_BUNDLE_BODY = 16 * 1024 * 1024


@dataclass
class Settings:
    device_ttl_s: float = 900.0
    interval_s: int = 5
    token_ttl_s: float = 30 * 86400.0
    lease_s: float = 1800.0
    rate_per_min: int = 60  # submissions + verifications per member per minute
    max_body: int = MAX_BUNDLE_BODY
    base_url: str = ""


def server_dir(root: Path) -> Path:
    return state_dir(root) / SERVER_DIR


class _RateLimit:
    def __init__(self, per_min: int):
        self.per_min = per_min
        self.hits: dict[str, deque] = defaultdict(deque)
        self.lock = threading.Lock()

    def allow(self, who: str) -> bool:
        now = time.monotonic()
        with self.lock:
            q = self.hits[who]
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_min:
                return False
            q.append(now)
            return True


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status,
                        headers={"Cache-Control": "no-store"})


def _oauth_error(code: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store"})


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise claims.Rejected(413, f"body over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise claims.Rejected(413, f"body over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request, limit: int = SMALL_BODY):
    raw = await _body(request, limit)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise claims.Rejected(400, f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # [[[[... 50,000 deep fits in a small body
        raise claims.Rejected(400, "the body is not valid JSON (nested too deeply)") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


async def _form(request: Request) -> dict:
    raw = await _body(request, SMALL_BODY)
    from urllib.parse import parse_qs

    try:
        parsed = parse_qs(raw.decode("utf-8"), strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise claims.Rejected(400, "the body is not a form") from None
    return {k: v[0] for k, v in parsed.items()}


def create_app(root: Path, settings: Settings | None = None) -> Starlette:
    """The app over the program of the project at `root` (its owner's checkout)."""
    root = Path(root)
    settings = settings or Settings()
    program = load_program(root)
    store = Store(server_dir(root) / "state.db")
    claims.recover(root, store, program)
    limiter = _RateLimit(settings.rate_per_min)

    def who(request: Request):
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise claims.Rejected(401, "a bearer token is required (rstack program join URL)")
        member = store.authenticate(auth[7:].strip())
        if member is None:
            raise claims.Rejected(401, "unknown, expired or revoked token; ask the owner, then "
                                       "rstack program join URL again")
        return member

    def owner(request: Request):
        member = who(request)
        if member.role != "owner":
            raise claims.Rejected(403, "this endpoint is the owner's")
        return member

    def limited(member) -> None:
        if member.role != "owner" and not limiter.allow(member.name):
            raise claims.Rejected(429, f"rate limit: {settings.rate_per_min} requests a minute "
                                       "for submissions and verifications; wait a minute")

    def handle(fn):
        async def endpoint(request: Request):
            try:
                return await fn(request)
            except claims.Rejected as exc:
                return _error(exc.status, exc.message)
        return endpoint

    # -- RFC 8628 --------------------------------------------------------------------------

    async def device_authorization(request: Request):
        try:
            form = await _form(request)
        except claims.Rejected as exc:
            return _oauth_error("invalid_request", exc.message, exc.status)
        if not form.get("client_id"):
            return _oauth_error("invalid_request", "client_id is required")
        name = form.get("member") or form.get("client_id")
        if not NAME.match(name) or name == "owner":
            return _oauth_error("invalid_request", "member must be 1-32 letters, digits, . _ - "
                                                   "(and not 'owner')")
        if store.name_in_use(name):
            return _oauth_error("invalid_request", f"member name {name!r} is taken; "
                                                   "join with another --name")
        device_code, user_code = store.new_device(name, ttl_s=settings.device_ttl_s,
                                                  interval=settings.interval_s)
        uri = f"{settings.base_url}/device"
        return JSONResponse({"device_code": device_code, "user_code": show_user_code(user_code),
                             "verification_uri": uri,
                             "verification_uri_complete": f"{uri}?user_code={user_code}",
                             "expires_in": int(settings.device_ttl_s),
                             "interval": settings.interval_s},
                            headers={"Cache-Control": "no-store"})

    async def token(request: Request):
        try:
            form = await _form(request)
        except claims.Rejected as exc:
            return _oauth_error("invalid_request", exc.message, exc.status)
        if form.get("grant_type") != DEVICE_GRANT:
            return _oauth_error("unsupported_grant_type", f"grant_type must be {DEVICE_GRANT}")
        if not form.get("device_code") or not form.get("client_id"):
            return _oauth_error("invalid_request", "device_code and client_id are required")
        state, data = store.poll_device(form["device_code"], token_ttl_s=settings.token_ttl_s)
        errors = {"pending": ("authorization_pending", "the owner has not approved this code yet"),
                  "slow_down": ("slow_down", "polling too fast; add 5 seconds to the interval"),
                  "denied": ("access_denied", "the owner denied this request"),
                  "expired": ("expired_token", "the device code expired; join again"),
                  "invalid": ("invalid_grant", "unknown or already used device code")}
        if state != "token":
            return _oauth_error(*errors[state])
        return JSONResponse({"access_token": data["access_token"], "token_type": "Bearer",
                             "expires_in": data["expires_in"], "member": data["name"],
                             "program": program.name}, headers={"Cache-Control": "no-store"})

    async def device_page(request: Request):
        return PlainTextResponse(f"Program {program.name}: ask its owner to run\n"
                                 "  rstack program approve USER_CODE\n"
                                 "with the code `rstack program join` showed you.\n")

    # -- owner -----------------------------------------------------------------------------

    @handle
    async def members(request: Request):
        owner(request)
        return JSONResponse(store.members())

    @handle
    async def approve(request: Request):
        owner(request)
        data = await _json(request)
        if not isinstance(data, dict) or not isinstance(data.get("user_code"), str):
            raise claims.Rejected(400, "user_code is required")
        try:
            row = store.decide_device(data["user_code"], approve=not data.get("deny"))
        except KeyError:
            raise claims.Rejected(404, f"no pending request with user code {data['user_code']!r}; "
                                       "rstack program members lists them") from None
        except TimeoutError:
            raise claims.Rejected(410, f"user code {data['user_code']!r} expired; the member joins again") from None
        return JSONResponse({"member": row["name"], "approved": not data.get("deny")})

    @handle
    async def revoke(request: Request):
        owner(request)
        data = await _json(request)
        name = data.get("member") if isinstance(data, dict) else None
        if not isinstance(name, str) or not store.revoke(name):
            raise claims.Rejected(404, f"no active member {name!r}; rstack program members lists them")
        return JSONResponse({"member": name, "revoked": True})

    # -- members ---------------------------------------------------------------------------

    @handle
    async def info(request: Request):
        who(request)
        kb = KnowledgeBase.read(root, program.name)
        return JSONResponse({"program": program.name, "program_md": program.path.read_text("utf-8"),
                             "champion": kb.champion})

    @handle
    async def champion_bundle(request: Request):
        who(request)
        kb = KnowledgeBase.read(root, program.name)
        data = await run_in_threadpool(_bundle, root, [f"{kb.champion['commit']}"])
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Champion": kb.champion["commit"]})

    @handle
    async def submit(request: Request):
        member = who(request)
        limited(member)
        data = await _json(request, settings.max_body)
        sub = claims.validate_submission(data, program)
        out = await run_in_threadpool(claims.submit, root, store, program, member.name, sub)
        return JSONResponse(out, status_code=201 if out["created"] else 200)

    @handle
    async def verify_next(request: Request):
        member = who(request)
        claim = store.assign(member.name, lease_s=settings.lease_s)
        if claim is None:
            return JSONResponse({"claim": None})
        kb = KnowledgeBase.read(root, program.name)
        return JSONResponse({"claim": claim["id"], "commit": claim["commit"], "tree": claim["tree"],
                             "member": claim["member"], "seeds": program.confirm_seeds,
                             "champion": {"commit": kb.champion["commit"], "tree": kb.champion["tree"]}})

    @handle
    async def claim_bundle(request: Request):
        member = who(request)
        claim = _claim(store, request)
        if claim is None or (member.role != "owner" and claim["assigned"] != member.name):
            raise claims.Rejected(404, "no such claim assigned to you")
        kb = KnowledgeBase.read(root, program.name)
        data = await run_in_threadpool(_bundle, root, [claim["commit"], kb.champion["commit"]])
        return Response(data, media_type="application/octet-stream")

    @handle
    async def verify_result(request: Request):
        member = who(request)
        limited(member)
        data = await _json(request)
        claim_id = int(request.path_params["claim"])
        if claim_id >= 2 ** 63:  # beyond SQLite's INTEGER: no such claim
            raise claims.Rejected(404, f"claim {claim_id} is not pending")
        out = await run_in_threadpool(claims.settle, root, store, program, claim_id, member.name,
                                      data)
        return JSONResponse(out)

    @handle
    async def claims_list(request: Request):
        who(request)
        return JSONResponse({"claims": [{k: c[k] for k in ("id", "member", "tree", "commit", "verdict",
                                                           "status", "verifier", "trial", "verification")}
                                        for c in store.claims()]})

    def _claim(store, request: Request):
        claim_id = int(request.path_params["claim"])
        return store.claim(claim_id) if claim_id < 2 ** 63 else None  # SQLite's INTEGER

    routes = [Route("/oauth/device_authorization", device_authorization, methods=["POST"]),
              Route("/oauth/token", token, methods=["POST"]),
              Route("/device", device_page),
              Route("/api/members", members),
              Route("/api/approve", approve, methods=["POST"]),
              Route("/api/revoke", revoke, methods=["POST"]),
              Route("/api/program", info),
              Route("/api/champion.bundle", champion_bundle),
              Route("/api/claims", submit, methods=["POST"]),
              Route("/api/claims", claims_list, methods=["GET"]),
              Route("/api/claims/{claim:int}/bundle", claim_bundle),
              Route("/api/verify/next", verify_next, methods=["POST"]),
              Route("/api/verify/{claim:int}", verify_result, methods=["POST"])]
    app = Starlette(routes=routes)
    app.state.store = store
    return app


def _bundle(root: Path, commits: list[str]) -> bytes:
    """A git bundle of the given commits (as refs/heads/c0, c1...) and their history."""
    refs = []
    for i, commit in enumerate(commits):
        ref = f"refs/rstack/export/{secrets.token_hex(6)}-{i}"
        subprocess.run(["git", "-C", str(root), "update-ref", ref, commit], check=True)
        refs.append(ref)
    try:
        proc = subprocess.run(["git", "-C", str(root), "bundle", "create", "-q", "-", *refs],
                              capture_output=True, check=True)
        return proc.stdout
    finally:
        for ref in refs:
            subprocess.run(["git", "-C", str(root), "update-ref", "-d", ref], capture_output=True)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def owner_token(root: Path) -> str:
    """The owner's token, created once and kept in .rstack/program-server/owner.json (600)."""
    from ...atomic import write_text

    path = server_dir(root) / "owner.json"
    if path.is_file():
        return json.loads(path.read_text())["token"]
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({"token": token}), mode=0o600)
    os.chmod(path, 0o600)
    return token
