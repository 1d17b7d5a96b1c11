"""The shared program's server state: one SQLite file (WAL) under `.rstack/`: device codes,
members with the SHA-256 of their tokens, and claims. Never stores a token or a device code in
clear; every change is one transaction, so a killed server leaves no half-written row.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# RFC 8628 section 6.1: no vowels (no words), no look-alikes (0/O, 1/I/L, 5/S, 2/Z).
USER_CODE_ALPHABET = "BCDFGHJKMNPQRTVWX"
USER_CODE_LEN = 8
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
OWNER = "owner"

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_hash TEXT PRIMARY KEY, user_code TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL, interval INTEGER NOT NULL,
    last_poll REAL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, token_hash TEXT UNIQUE NOT NULL,
    created REAL NOT NULL, expires REAL, revoked REAL);
CREATE TABLE IF NOT EXISTS claims (
    id INTEGER PRIMARY KEY AUTOINCREMENT, member TEXT NOT NULL, submission TEXT NOT NULL,
    tree TEXT NOT NULL, commit_id TEXT NOT NULL, verdict TEXT NOT NULL, payload TEXT NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL, assigned TEXT, assigned_at REAL,
    verifier TEXT, verification TEXT, trial INTEGER, kb_written INTEGER NOT NULL DEFAULT 0,
    UNIQUE (member, submission));
"""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalize_user_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").upper()


def show_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True)
class Member:
    name: str
    role: str  # "owner" | "member"


class Store:
    """All server state. Methods are atomic (one transaction each, under one lock)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def tx(self):
        """`with store.tx() as db:` one IMMEDIATE transaction under the store's lock."""
        store = self

        class _Tx:
            def __enter__(self):
                store._lock.acquire()
                store._db.execute("BEGIN IMMEDIATE")
                return store._db

            def __exit__(self, kind, exc, tb):
                try:
                    store._db.execute("COMMIT" if kind is None else "ROLLBACK")
                finally:
                    store._lock.release()
                return False

        return _Tx()

    # -- owner -------------------------------------------------------------------------------

    def ensure_owner(self, token: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM members WHERE role = 'owner'")
            db.execute("INSERT INTO members (name, role, token_hash, created) VALUES (?,?,?,?)",
                       (OWNER, "owner", token_hash(token), time.time()))

    # -- device authorization (RFC 8628) ----------------------------------------------------

    def new_device(self, name: str, *, ttl_s: float, interval: int) -> tuple[str, str]:
        """(device_code, user_code) for a member asking to join as `name`."""
        device_code = secrets.token_urlsafe(32)
        now = time.time()
        with self.tx() as db:
            for _ in range(20):
                user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LEN))
                if db.execute("SELECT 1 FROM devices WHERE user_code = ?", (user_code,)).fetchone() is None:
                    break
            db.execute("INSERT INTO devices VALUES (?,?,?,?,?,?,?,?)",
                       (token_hash(device_code), user_code, name, now, now + ttl_s, interval, None,
                        "pending"))
        return device_code, user_code

    def decide_device(self, user_code: str, *, approve: bool) -> dict:
        """The owner approves or denies a pending user code; returns the device row."""
        code = normalize_user_code(user_code)
        with self.tx() as db:
            row = db.execute("SELECT * FROM devices WHERE user_code = ?", (code,)).fetchone()
            if row is None or row["state"] != "pending":
                raise KeyError(code)
            if row["expires"] < time.time():
                raise TimeoutError(code)
            db.execute("UPDATE devices SET state = ? WHERE user_code = ?",
                       ("approved" if approve else "denied", code))
            return dict(row)

    def poll_device(self, device_code: str, *, token_ttl_s: float) -> tuple[str, dict]:
        """One token-endpoint poll: ("pending"|"slow_down"|"denied"|"expired"|"invalid", {})
        or ("token", {"access_token", "expires_in", "name"}). A device code yields at most one
        token: a replayed code is invalid."""
        now = time.time()
        with self.tx() as db:
            row = db.execute("SELECT * FROM devices WHERE device_hash = ?",
                             (token_hash(device_code),)).fetchone()
            if row is None or row["state"] == "issued":
                return "invalid", {}
            if row["expires"] < now:
                return "expired", {}
            if row["state"] == "denied":
                return "denied", {}
            last = row["last_poll"]
            db.execute("UPDATE devices SET last_poll = ? WHERE device_hash = ?", (now, row["device_hash"]))
            if last is not None and now - last < row["interval"]:
                # RFC 8628 3.5: the client must add 5 s to its interval; so does the server.
                db.execute("UPDATE devices SET interval = interval + 5 WHERE device_hash = ?",
                           (row["device_hash"],))
                return "slow_down", {}
            if row["state"] == "pending":
                return "pending", {}
            token = secrets.token_urlsafe(32)
            name = row["name"]
            taken = db.execute("SELECT revoked FROM members WHERE name = ?", (name,)).fetchone()
            if taken is not None and taken["revoked"] is None:
                return "denied", {}  # the name was approved for someone else meanwhile
            db.execute("DELETE FROM members WHERE name = ?", (name,))
            db.execute("INSERT INTO members (name, role, token_hash, created, expires) "
                       "VALUES (?,?,?,?,?)", (name, "member", token_hash(token), now, now + token_ttl_s))
            db.execute("UPDATE devices SET state = 'issued' WHERE device_hash = ?", (row["device_hash"],))
            return "token", {"access_token": token, "expires_in": int(token_ttl_s), "name": name}

    # -- members -----------------------------------------------------------------------------

    def authenticate(self, token: str) -> Member | None:
        """The member a bearer token belongs to; None when unknown, expired or revoked (read on
        every request, so a revocation takes effect on the next one)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM members WHERE token_hash = ?",
                                   (token_hash(token),)).fetchone()
        if row is None or row["revoked"] is not None:
            return None
        if row["expires"] is not None and row["expires"] < time.time():
            return None
        return Member(row["name"], row["role"])

    def name_in_use(self, name: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT revoked FROM members WHERE name = ?", (name,)).fetchone()
        return name == OWNER or (row is not None and row["revoked"] is None)

    def revoke(self, name: str) -> bool:
        with self.tx() as db:
            cur = db.execute("UPDATE members SET revoked = ? WHERE name = ? AND role = 'member' "
                             "AND revoked IS NULL", (time.time(), name))
            db.execute("UPDATE claims SET assigned = NULL, assigned_at = NULL WHERE assigned = ?",
                       (name,))
            return cur.rowcount == 1

    def members(self) -> dict:
        """`rstack program members --json`."""
        now = time.time()
        with self._lock:
            rows = self._db.execute("SELECT * FROM members WHERE role = 'member' ORDER BY created").fetchall()
            devices = self._db.execute("SELECT * FROM devices WHERE state = 'pending' AND expires > ? "
                                       "ORDER BY created", (now,)).fetchall()
            counts = {r["member"]: (r["n"], r["v"]) for r in self._db.execute(
                "SELECT member, COUNT(*) AS n, SUM(status = 'verified') AS v FROM claims GROUP BY member")}
        return {"members": [{"name": r["name"], "approved": r["revoked"] is None,
                             "revoked": r["revoked"] is not None, "since": r["created"],
                             "expires": r["expires"], "submissions": counts.get(r["name"], (0, 0))[0],
                             "verified": counts.get(r["name"], (0, 0))[1] or 0} for r in rows],
                "pending": [{"user_code": show_user_code(d["user_code"]), "name": d["name"],
                             "expires_in": int(d["expires"] - now)} for d in devices]}

    # -- claims ------------------------------------------------------------------------------

    def add_claim(self, member: str, submission: str, *, tree: str, commit: str, verdict: str,
                  payload: dict, status: str) -> tuple[int, bool]:
        """(claim id, created). A resubmission (same member and submission id) returns the
        first one's id: a client retrying after a lost answer never makes a second claim."""
        with self.tx() as db:
            row = db.execute("SELECT id FROM claims WHERE member = ? AND submission = ?",
                             (member, submission)).fetchone()
            if row is not None:
                return row["id"], False
            cur = db.execute("INSERT INTO claims (member, submission, tree, commit_id, verdict, payload, "
                             "status, created) VALUES (?,?,?,?,?,?,?,?)",
                             (member, submission, tree, commit, verdict,
                              json.dumps(payload, allow_nan=False), status, time.time()))
            return cur.lastrowid, True

    def claim(self, claim_id: int) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM claims WHERE id = ?", (claim_id,)).fetchone()
        return _claim(row) if row else None

    def claims(self, status: str | None = None) -> list[dict]:
        with self._lock:
            if status:
                rows = self._db.execute("SELECT * FROM claims WHERE status = ? ORDER BY id", (status,))
            else:
                rows = self._db.execute("SELECT * FROM claims ORDER BY id")
            return [_claim(r) for r in rows.fetchall()]

    def assign(self, verifier: str, *, lease_s: float) -> dict | None:
        """The oldest pending claim this verifier did not submit and nobody holds (or whose
        lease ran out); it is now leased to the verifier."""
        now = time.time()
        with self.tx() as db:
            row = db.execute("SELECT * FROM claims WHERE status = 'pending' AND member != ? AND "
                             "(assigned IS NULL OR assigned = ? OR assigned_at < ?) ORDER BY id LIMIT 1",
                             (verifier, verifier, now - lease_s)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE claims SET assigned = ?, assigned_at = ? WHERE id = ?",
                       (verifier, now, row["id"]))
            return _claim(row)

    def settle(self, claim_id: int, *, status: str, verifier: str | None, verification: dict,
               trial: int | None) -> None:
        with self.tx() as db:
            db.execute("UPDATE claims SET status = ?, verifier = ?, verification = ?, trial = ?, "
                       "assigned = NULL WHERE id = ?",
                       (status, verifier, json.dumps(verification, allow_nan=False), trial, claim_id))

    def mark_written(self, claim_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE claims SET kb_written = 1 WHERE id = ?", (claim_id,))

    def unwritten(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM claims WHERE kb_written = 0 AND status != 'pending' "
                                    "ORDER BY id").fetchall()
        return [_claim(r) for r in rows]


def _claim(row: sqlite3.Row) -> dict:
    out = dict(row)
    out["commit"] = out.pop("commit_id")
    out["payload"] = json.loads(out["payload"])
    out["verification"] = json.loads(out["verification"]) if out["verification"] else None
    return out
