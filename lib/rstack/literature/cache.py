"""The on-disk cache of literature API responses: `.rstack/cache/lit/<sha256>.json`, one per request.

The key is sha256 over the method, the URL without its query and the sorted query parameters;
request headers (the S2 API key among them) are never part of the key and never stored. Only
answers that parsed are stored, so a truncated body or an HTML error page is never replayed.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .. import atomic, paths
from ..ledger import utc_now

CACHE_VERSION = 1
SUBDIR = "lit"


def canonical_params(params: Mapping[str, Any] | None) -> list[list[str]]:
    """Query parameters as sorted [name, value] string pairs: the form the key hashes."""
    return sorted([str(k), str(v)] for k, v in (params or {}).items() if v is not None)


def cache_key(method: str, url: str, params: Mapping[str, Any] | None = None) -> str:
    """sha256 hex of `METHOD\\nURL\\n<canonical params as JSON>` (URL without a query string)."""
    text = "\n".join([method.upper(), url,
                      json.dumps(canonical_params(params), separators=(",", ":"),
                                 ensure_ascii=False)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lit_cache_dir(root: Path) -> Path:
    return paths.cache_dir(root) / SUBDIR


@dataclass(frozen=True)
class CachedResponse:
    key: str
    url: str
    status: int
    content_type: str
    body: str
    fetched_at: str
    age_s: float


class ResponseCache:
    """Read and write cached responses of one project; `ttl_s` decides freshness online."""

    def __init__(self, root: Path, ttl_s: float):
        self.dir = lit_cache_dir(root)
        self.ttl_s = ttl_s

    def path_for(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def lookup(self, method: str, url: str, params: Mapping[str, Any] | None, *,
               any_age: bool = False) -> CachedResponse | None:
        """The cached answer, or None when absent, unreadable or (unless any_age) stale."""
        key = cache_key(method, url, params)
        try:
            data = json.loads(self.path_for(key).read_text(encoding="utf-8"))
            fetched_at = str(data["fetched_at"])
            body = data["body"]
            if not isinstance(body, str):
                return None
            fetched = datetime.fromisoformat(fetched_at.replace("Z", "+00:00"))
            if fetched.tzinfo is None:
                fetched = fetched.replace(tzinfo=timezone.utc)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged entry is a miss: the next online call rewrites it
        age = max(0.0, time.time() - fetched.timestamp())
        if not any_age and age > self.ttl_s:
            return None
        return CachedResponse(key, url, int(data.get("status", 200)),
                              str(data.get("content_type", "")), body, fetched_at, age)

    def store(self, method: str, url: str, params: Mapping[str, Any] | None, *, status: int,
              content_type: str, body: str) -> Path:
        key = cache_key(method, url, params)
        record = {
            "version": CACHE_VERSION, "key": key, "method": method.upper(), "url": url,
            "params": dict(canonical_params(params)), "status": status,
            "content_type": content_type, "fetched_at": utc_now(), "body": body,
        }
        target = self.path_for(key)
        atomic.write_text(target, json.dumps(record, ensure_ascii=False))
        return target


@dataclass
class CacheStats:
    dir: str
    entries: int = 0
    bytes: int = 0
    oldest: str | None = None
    newest: str | None = None
    by_service: dict[str, int] | None = None
    unreadable: int = 0

    def as_json(self) -> dict:
        return {"dir": self.dir, "entries": self.entries, "bytes": self.bytes,
                "oldest": self.oldest, "newest": self.newest,
                "by_service": self.by_service or {}, "unreadable": self.unreadable}

    def render(self) -> str:
        services = ", ".join(f"{k} {v}" for k, v in sorted((self.by_service or {}).items()))
        lines = [f"{self.entries} cached response(s), {self.bytes / 1e6:.2f} MB in {self.dir}"]
        if self.entries:
            lines.append(f"by service: {services}; fetched {self.oldest} .. {self.newest}")
        if self.unreadable:
            lines.append(f"{self.unreadable} unreadable entr(ies) (a miss each; clear removes them)")
        return "\n".join(lines)


def _entries(root: Path) -> list[Path]:
    directory = lit_cache_dir(Path(root))
    # Response entries are named by their sha256 key; pacing.json and the lock are not entries.
    return sorted(p for p in directory.glob("*.json") if len(p.stem) == 64) \
        if directory.is_dir() else []


def cache_stats(root: Path) -> CacheStats:
    """How many responses the cache holds, how big, how old, per service (by configured URL)."""
    from .. import config
    from .papers import SOURCES

    bases = {name: str(config.get(f"{name}_api_url")).rstrip("/") for name in SOURCES}
    stats = CacheStats(str(lit_cache_dir(Path(root))), by_service={})
    stamps = []
    for path in _entries(root):
        stats.entries += 1
        try:
            stats.bytes += path.stat().st_size
            data = json.loads(path.read_text(encoding="utf-8"))
            url, stamp = str(data["url"]), str(data["fetched_at"])
        except (OSError, ValueError, KeyError, TypeError):
            stats.unreadable += 1
            continue
        stamps.append(stamp)
        service = next((n for n, b in bases.items() if b and url.startswith(b)), "other")
        stats.by_service[service] = stats.by_service.get(service, 0) + 1
    if stamps:
        stats.oldest, stats.newest = min(stamps), max(stamps)
    return stats


def clear_cache(root: Path) -> tuple[int, int]:
    """Delete every cached response (not the pacing state); returns (entries, bytes) removed."""
    removed = size = 0
    for path in _entries(root):
        try:
            size += path.stat().st_size
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed, size
