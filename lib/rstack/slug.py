"""Deterministic project slugs: lowercase ASCII `[a-z0-9-]`, at most 48 chars, never empty."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from anyascii import anyascii

MAX_LEN = 48
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """Transliterate to ASCII, lowercase, hyphenate; cut at a word boundary when too long."""
    ascii_text = anyascii(text).lower()
    slug = _NON_SLUG.sub("-", ascii_text).strip("-")
    if len(slug) > MAX_LEN:
        cut = slug[:MAX_LEN]
        # Prefer ending on a whole word when one ends in the last third.
        if "-" in cut[MAX_LEN * 2 // 3:]:
            cut = cut[: cut.rfind("-")]
        slug = cut.strip("-")
    if not slug:
        # Deterministic, so the same (unsluggable) input always names the same project.
        slug = "project-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return slug


def _remote_repo_name(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    url = out.stdout.strip()
    if out.returncode != 0 or not url:
        return None
    name = re.split(r"[/:]", url.rstrip("/"))[-1]
    return name[:-4] if name.endswith(".git") else name or None


def project_slug(text: str | None, root: Path) -> str:
    """From TEXT, else the git remote's repository name, else the directory name."""
    if text and text.strip():
        return slugify(text)
    return slugify(_remote_repo_name(root) or root.name or "project")
