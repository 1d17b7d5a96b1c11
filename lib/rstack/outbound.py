"""What may leave the project: the one file filter for every copy that goes elsewhere (code shipped
to SSH hosts and rented Vast.ai machines, bundles).

A file leaves only when `.gitignore` does not ignore it and it is not on the built-in deny list of
credential files (`.env`, `.netrc`, `id_rsa`, `.aws/`, `*.pem`, ...). Never copies anything itself.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Iterable

# Files that hold credentials by convention, matched against each path component's name.
DENY_FILES = (
    ".env", ".env.*", ".envrc", ".netrc", "_netrc", ".pgpass", ".git-credentials", ".npmrc",
    ".pypirc", ".modal.toml", ".vast_api_key", ".htpasswd", ".boto", ".s3cfg", ".dockercfg",
    "id_rsa", "id_rsa.*", "id_dsa", "id_dsa.*", "id_ecdsa", "id_ecdsa.*", "id_ed25519",
    "id_ed25519.*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk",
    "credentials", "credentials.json", "credentials.toml", "service-account*.json",
    "secrets.json", "secrets.yaml", "secrets.yml", "secrets.toml", "kubeconfig",
)
# Templates that only name the variables: safe, and commonly committed.
ALLOWED_TEMPLATES = (".env.example", ".env.sample", ".env.template", ".env.dist")
# Directories that hold credentials: nothing under them leaves.
DENY_DIRS = (".ssh", ".aws", ".gnupg", ".docker", ".kube", ".azure", ".gcloud", ".vastai")


def is_denied(rel: str | PurePosixPath) -> bool:
    """True when a project-relative path is (or is inside) a credential file or directory."""
    parts = PurePosixPath(rel).parts
    if any(part in DENY_DIRS for part in parts[:-1]):
        return True
    name = parts[-1] if parts else ""
    if name in ALLOWED_TEMPLATES:
        return False
    return name in DENY_DIRS or any(fnmatch.fnmatchcase(name, pattern) for pattern in DENY_FILES)


# -- .gitignore --------------------------------------------------------------------------------


def _git_listing(root: Path) -> set[str] | None:
    """Tracked and not-ignored untracked files (relative to root) when root is in a git work tree;
    None when it is not (or git is missing)."""
    try:
        proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              cwd=root, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return {item for item in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if item}


class _Ignore:
    """The subset of .gitignore rules a project uses (name and path globs, `dir/`, `/anchored`,
    `**`, `!negation`), for projects that are not in git."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, re.Pattern, bool, bool]] = []  # (base, regex, negate, dir_only)

    def add_file(self, path: Path, base: str) -> None:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            line = line.rstrip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line[1:] if negate else line
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line
            line = line.lstrip("/")
            regex = fnmatch.translate(line).replace(".*", "[^/]*")
            regex = regex.replace("[^/]*[^/]*/", "(?:.*/)?").replace("[^/]*[^/]*", ".*")
            if not anchored:
                regex = r"(?:.*/)?" + regex
            self.rules.append((base, re.compile(regex), negate, dir_only))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        verdict = False
        for base, regex, negate, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if base and not rel.startswith(base + "/"):
                continue
            if regex.fullmatch(rel[len(base) + 1:] if base else rel):
                verdict = not negate
        return verdict


# -- the walk ----------------------------------------------------------------------------------


def project_files(root: Path, *, skip_dirs: Iterable[str] = (), skip: Iterable[Path] = (),
                  max_size: int | None = None, notes: list[str] | None = None) -> list[Path]:
    """Every file under root that may leave the project, sorted (absolute paths).

    Skips `skip_dirs` (names or globs) and `skip` (absolute paths), files `.gitignore` ignores, the deny
    list, links that point outside root and files over `max_size` bytes; `notes` gets one line per
    credential file or oversized file left behind, so the caller can say so.
    """
    root = Path(root).resolve()
    skip_dirs = set(skip_dirs)
    skip = {Path(p).resolve() for p in skip}
    listed = _git_listing(root)
    ignore = _Ignore() if listed is None else None
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_here = here.relative_to(root).as_posix()
        rel_here = "" if rel_here == "." else rel_here
        if ignore is not None and (here / ".gitignore").is_file():
            ignore.add_file(here / ".gitignore", rel_here)
        kept = []
        for name in sorted(dirnames):
            rel = f"{rel_here}/{name}" if rel_here else name
            path = here / name
            if (any(fnmatch.fnmatchcase(name, pattern) for pattern in skip_dirs)
                    or path.resolve() in skip or path.is_symlink()):
                continue
            if is_denied(rel):
                _note(notes, f"{rel}/: a credential directory; never copied out of the project")
                continue
            if ignore is not None and ignore.ignored(rel, True):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = f"{rel_here}/{name}" if rel_here else name
            path = here / name
            if listed is not None and rel not in listed:
                continue
            if ignore is not None and ignore.ignored(rel, False):
                continue
            if is_denied(rel):
                _note(notes, f"{rel}: a credential file; never copied out of the project")
                continue
            if path.is_symlink() and not _inside(path.resolve(), root):
                _note(notes, f"{rel}: a link out of the project; not copied")
                continue
            if not path.is_file():
                continue
            if max_size is not None and path.stat().st_size > max_size:
                _note(notes, f"{rel}: over {max_size // (1024 * 1024)} MB; not copied")
                continue
            out.append(path)
    return out


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)


__all__ = ["ALLOWED_TEMPLATES", "DENY_DIRS", "DENY_FILES", "is_denied", "project_files"]
