"""The project's git state (commit, dirty flag, prefix in its repository), asked one way.

Run records and bundles both stamp the code they came from; computing the dirty flag two ways
would let a run say "clean" where the bundle of the same tree says "dirty".
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(root: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=not binary, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc if proc.returncode == 0 else None


def project_git_state(root: Path) -> dict | None:
    """commit, dirty flag and prefix of root inside its repository; None when not in git, and
    {"commit": None} in a repository with no commit yet."""
    top = git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    head = git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    if head is None:
        return {"commit": None}
    prefix = git(root, "rev-parse", "--show-prefix")
    status = git(root, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"commit": head.stdout.strip(), "prefix": prefix.stdout.strip() if prefix else "",
            "dirty": bool(status and status.stdout.strip())}
