"""Whole-file writes that a crash or a concurrent reader never sees half done.

Write a temp file beside the target, optionally fsync it, set its mode, rename it over the
target. Never use this for a ledger: ledgers are appended to, not replaced (see ledger.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(path: Path | str, text: str, *, mode: int = 0o644, fsync: bool = False) -> Path:
    """Atomically replace `path` with `text` (UTF-8, \\n line ends); creates parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
