"""The interpreter user code runs in: its path, version and a hash of its installed packages,
as `run.started` records them, so a result can be traced to its environment.

Asks the interpreter itself (under procwatch.supervise, with a short timeout); never imports the
user's packages into rstack's own process.
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache

PROBE = (
    "import hashlib, importlib.metadata as m, json, platform\n"
    "pkgs = sorted(f\"{(d.metadata['Name'] or '').lower()}=={d.version}\" "
    "for d in m.distributions())\n"
    "print('RSTACK_PYENV ' + json.dumps({'python_version': platform.python_version(), "
    "'packages_sha256': hashlib.sha256('\\n'.join(pkgs).encode()).hexdigest(), "
    "'packages': len(pkgs)}))\n"
)


@lru_cache(maxsize=8)
def describe(python: str) -> dict:
    """{"python", "python_version", "packages_sha256"} of an interpreter; version "unknown" and
    hash None when it cannot be asked (missing, broken, or slower than 30 s)."""
    from .procwatch import supervise

    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rstack-pyenv-") as tmp:
        try:
            outcome = supervise([python, "-I", "-c", PROBE], cwd=tmp, env=None, timeout_s=30,
                                on_line=lines.append)
        except OSError:
            outcome = None
    found = None
    if outcome is not None and outcome.exit_code == 0:
        for line in lines:
            if line.startswith("RSTACK_PYENV "):
                found = json.loads(line[len("RSTACK_PYENV "):])
    if not found:
        return {"python": python, "python_version": "unknown", "packages_sha256": None}
    return {"python": python, "python_version": found["python_version"],
            "packages_sha256": found["packages_sha256"]}
