"""Opt-in usage telemetry: skill outcomes in $RSTACK_HOME/analytics/skill-usage.jsonl, synced on request.

Tiers: off (default: nothing is written), anonymous (events without any id), community (events carry
a random installation id). Error text is sanitized before it touches the disk; nothing is ever sent
unless `telemetry_url` is set, and a failed sync loses nothing.
"""

from __future__ import annotations

import json
import math
import platform
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, atomic, config, paths, secrets
from .errors import LedgerError, TelemetryError
from .ledger import append_lines, exclusive_lock, strict_loads, utc_now

EVENTS_FILE = "skill-usage.jsonl"
OUTCOMES = ("success", "error", "abort")
MAX_ERROR_TEXT = 500
BATCH_SIZE = 100

# A skill is named like its folder (skills/<name>); an error class like an exception
# (`RunError`, `rstack.errors.LedgerError`). Anything else is refused, not stored: these fields are
# sent verbatim, so free text (a path, a token pasted by mistake) must not get in through them.
_SKILL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ERROR_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
_OTHER_HOMES = re.compile(r"(?:/home|/Users)/[^/\s]+")
REDACTED = secrets.REDACTED


def sanitize(text: str | None) -> str | None:
    """Error text safe to store: home paths become `~`, credential-like strings `[REDACTED]`."""
    if text is None:
        return None
    home = str(paths.user_home()).rstrip("/")
    if home and home != "/":
        text = re.sub(re.escape(home) + r"(?=/|\b|$)", "~", text)
    text = _OTHER_HOMES.sub("~", text)
    text = secrets.redact(text, opaque=True)
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "…"
    return text


def events_path() -> Path:
    return paths.analytics_dir() / EVENTS_FILE


def _state_path() -> Path:
    return paths.analytics_dir() / ".sync-state.json"


def _lock_path() -> Path:
    return paths.analytics_dir() / f".{EVENTS_FILE}.lock"


def installation_id(create: bool) -> str | None:
    """The random id of this installation (community tier only); created on first need."""
    id_path = paths.analytics_dir() / "installation-id"
    if id_path.is_file():
        value = id_path.read_text(encoding="utf-8").strip()
        if value:
            return value
    if not create:
        return None
    value = str(uuid.uuid4())
    id_path.parent.mkdir(parents=True, exist_ok=True)
    id_path.write_text(value + "\n", encoding="utf-8")
    return value


def log_event(skill: str, outcome: str, duration_s: float | None = None, *,
              error_class: str | None = None, error_text: str | None = None) -> dict | None:
    """Append one event when the tier is not off; returns it (None when telemetry is off)."""
    if outcome not in OUTCOMES:
        raise TelemetryError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
    if not isinstance(skill, str) or not _SKILL_NAME.fullmatch(skill):
        raise TelemetryError("--skill must be a skill's folder name (lowercase letters, digits, "
                             "- and _; at most 64), e.g. research; nothing was recorded",
                             hint="rstack telemetry log --skill research --outcome success")
    if error_class is not None and not _ERROR_CLASS.fullmatch(error_class):
        raise TelemetryError("--error-class must be an exception name such as RunError or "
                             "rstack.errors.LedgerError; nothing was recorded",
                             hint="put free text in --error-text (it is redacted)")
    if duration_s is not None and not (isinstance(duration_s, (int, float))
                                       and math.isfinite(duration_s) and duration_s >= 0):
        raise TelemetryError(f"duration must be a finite number of seconds >= 0, got {duration_s!r}")
    tier = config.get("telemetry")
    if tier == "off":
        return None
    event: dict[str, Any] = {
        "v": 1, "event_id": str(uuid.uuid4()), "ts": utc_now(), "skill": skill, "outcome": outcome,
        "duration_s": round(duration_s, 3) if duration_s is not None else None,
        "rstack_version": __version__, "os": platform.system().lower(),
        "error_class": sanitize(error_class), "error_text": sanitize(error_text), "tier": tier,
    }
    if tier == "community":
        event["installation_id"] = installation_id(create=True)
    line = json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        with exclusive_lock(_lock_path(), events_path(), "write telemetry log"):
            append_lines(events_path(), [line], fsync=False, doing="write telemetry log")
    except LedgerError as exc:
        raise TelemetryError(exc.message, hint=exc.hint) from None
    return event


# -- sync -------------------------------------------------------------------------------------


def _load_state() -> dict:
    try:
        state = json.loads(_state_path().read_text(encoding="utf-8"))
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(state: dict) -> None:
    path = _state_path()
    atomic.write_text(path, json.dumps(state, sort_keys=True) + "\n")


def _pending(offset: int) -> tuple[list[tuple[int, dict]], int]:
    """Complete events after byte `offset`: [(end offset of its line, event)], and the file size."""
    try:
        raw = events_path().read_bytes()
    except FileNotFoundError:
        return [], 0
    if offset > len(raw):  # the file was truncated or replaced by hand: start again
        offset = 0
    out, position = [], offset
    while True:
        newline = raw.find(b"\n", position)
        if newline < 0:  # an unfinished last line waits for the next sync
            break
        line = raw[position:newline]
        position = newline + 1
        try:
            event = strict_loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict):
            out.append((position, event))
        else:  # a damaged line is skipped (and never re-sent), not a reason to stop forever
            out.append((position, None))
    return out, len(raw)


@dataclass(frozen=True)
class SyncResult:
    sent: int
    url: str | None
    skipped: str | None = None  # why nothing was attempted


def _session(retries: int, backoff_s: float):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                  backoff_factor=backoff_s, status_forcelist=(408, 429, 500, 502, 503, 504),
                  allowed_methods=frozenset({"POST"}), raise_on_status=False,
                  respect_retry_after_header=True)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def sync(*, timeout_s: float = 10.0, retries: int = 3, backoff_s: float = 0.5) -> SyncResult:
    """POST unsynced events to `telemetry_url` in batches; remember what the server accepted.

    The sync position advances only past a batch the server answered 2xx to, so a failure leaves
    every unsent event in place for the next sync. Events carry an `event_id` the server can use to
    drop a duplicate when an answer was lost after the server had stored the batch.
    """
    url = config.get("telemetry_url")
    tier = config.get("telemetry")
    if not url:
        return SyncResult(0, None, skipped="no telemetry_url configured")
    if tier == "off":
        return SyncResult(0, url, skipped="telemetry is off")
    import requests

    # Its own lock, not the log's: `log` (called at the end of every skill) must never wait on the
    # network. Reading without the log's lock is safe: each event is appended with one write, and
    # an unfinished last line is left for the next sync.
    sync_lock = paths.analytics_dir() / ".sync.lock"
    with exclusive_lock(sync_lock, _state_path(), "sync telemetry log"):
        state = _load_state()
        pending, _ = _pending(int(state.get("offset", 0)))
        sent = 0
        session = _session(retries, backoff_s)
        try:
            for start in range(0, len(pending), BATCH_SIZE):
                batch = pending[start:start + BATCH_SIZE]
                events = [_for_tier(e, tier) for _, e in batch if e is not None]
                if events:
                    try:
                        response = session.post(url, json={"events": events}, timeout=timeout_s)
                    except requests.RequestException as exc:
                        raise _sync_error(url, f"{type(exc).__name__}: {exc}", len(pending) - start)
                    if not 200 <= response.status_code < 300:
                        raise _sync_error(url, f"HTTP {response.status_code}", len(pending) - start)
                sent += len(events)
                state.update(offset=batch[-1][0], last_sync=utc_now(),
                             sent_total=int(state.get("sent_total", 0)) + len(events))
                _save_state(state)
        finally:
            session.close()
    return SyncResult(sent, url)


def _for_tier(event: dict, tier: str) -> dict:
    # Switching from community to anonymous means no id leaves the machine any more.
    if tier != "community":
        return {k: v for k, v in event.items() if k != "installation_id"}
    return event


def _sync_error(url: str, reason: str, left: int) -> TelemetryError:
    return TelemetryError(
        f"telemetry sync to {url} failed ({reason}); {left} event(s) kept for the next sync",
        hint="check telemetry_url (rstack config get telemetry_url) and retry: rstack telemetry sync")


def status() -> dict:
    """The documented `telemetry status --json` object."""
    state = _load_state()
    pending, _ = _pending(int(state.get("offset", 0)))
    try:
        with events_path().open("rb") as handle:
            logged = sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        logged = 0
    return {
        "tier": config.get("telemetry"), "url": config.get("telemetry_url") or None,
        "events_path": str(events_path()), "logged": logged,
        "unsynced": sum(1 for _, e in pending if e is not None),
        "last_sync": state.get("last_sync"), "sent_total": int(state.get("sent_total", 0)),
        "installation_id": installation_id(create=False)
        if config.get("telemetry") == "community" else None,
    }
