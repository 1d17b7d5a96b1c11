"""sha256 of files and ledger prefixes: the one implementation every provenance check uses.

(The remote side of the ssh profile, runners/ssh_agent.py, keeps its own copy on purpose: it runs
on hosts where the rstack package is not installed.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Streaming sha256 of a file (raises OSError when it cannot be read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file_or_none(path: Path | str) -> str | None:
    """sha256 of a file, or None when it does not exist or cannot be read."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def prefix_sha256(raw: bytes, lines: int) -> str | None:
    """sha256 of the first `lines` newline-terminated lines of raw, or None when it has fewer.

    A ledger only grows, so "the ledger as analyzed" is a prefix of the ledger now: comparing this
    with a recorded (sha256, lines) pair tells an appended ledger from a rewritten one.
    """
    parts = raw.split(b"\n")
    if lines < 0 or len(parts) - 1 < lines:
        return None
    return hashlib.sha256(b"".join(p + b"\n" for p in parts[:lines])).hexdigest()
