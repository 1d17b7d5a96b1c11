"""A PATH without TeX, and stand-in apt-get/sudo/brew that only record what they were asked.

This machine may have TeX Live installed; tests of "no engine" build a PATH that mirrors the real
one minus every TeX program, so nothing is uninstalled and nothing real is ever installed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_PATH = os.environ["PATH"]  # before any test narrows it


def _is_tex(name: str) -> bool:
    lowered = name.lower()
    return "tex" in lowered or "tectonic" in lowered or lowered.startswith(("kpse", "mktex", "dvi"))


def path_without_tex(base: Path, path: str | None = None, *, drop: tuple[str, ...] = ()) -> str:
    """One directory of links to every program on PATH except TeX's and `drop` (first match wins)."""
    mirror = base / "no-tex-bin"
    mirror.mkdir(parents=True, exist_ok=True)
    for directory in (path if path is not None else REAL_PATH).split(os.pathsep):
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            link = mirror / entry.name
            if _is_tex(entry.name) or entry.name in drop or link.exists() or link.is_symlink():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return str(mirror)


def stand_in(bindir: Path, name: str, log: Path, body: str = "") -> Path:
    """An executable that appends `name args...` to `log`, runs `body`, and exits 0."""
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}\nexit 0\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def real_tex_links(bindir: Path) -> str:
    """Shell lines that 'install' TeX by linking this machine's real programs into bindir."""
    import shutil

    lines = []
    for name in ("pdflatex", "pdftex", "latexmk", "bibtex", "kpsewhich"):
        found = shutil.which(name, path=REAL_PATH)
        if found:
            lines.append(f'ln -sf "{found}" "{bindir}/{name}"')
    return "\n".join(lines)
