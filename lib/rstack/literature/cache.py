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
