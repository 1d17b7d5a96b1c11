"""A candidate's identity and scope in git: the tree hash of its editable files, the files it
changed, the clean-tree rule, and the champion ref (`refs/rstack/champion`).

Every git call goes through `rstack.gitstate.git`. Nothing here moves the user's branch except
`reset_to_champion`, which only `rstack program trial --reset` calls.
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path

from ..gitstate import git
from ..paths import STATE_DIRNAME
from .spec import PROGRAM_FILENAME, ProgramError

CHAMPION_REF = "refs/rstack/champion"
TRIAL_REF = "refs/rstack/trials/{trial}"  # keeps a discarded commit reachable after a reset


def _run(root: Path, *args: str, what: str) -> str:
    proc = git(root, *args)
    if proc is None:
        raise ProgramError(f"git {' '.join(args[:3])} failed in {root} ({what})",
                           hint="the project must be a git repository with at least one commit: "
                                "git init && git add -A && git commit -m start")
    return proc.stdout


def resolve(root: Path, ref: str) -> str:
    """The commit a ref names (ProgramError naming the ref when it names none)."""
    proc = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if proc is None or not proc.stdout.strip():
        raise ProgramError(f"git ref {ref!r} names no commit in {root}",
                           hint="give a branch, tag or commit (git log --oneline shows them)")
    return proc.stdout.strip()


def is_editable(path: str, editable: list[str]) -> bool:
    """A path is editable when it equals, lies under, or matches (glob) a scope.editable entry."""
    for pattern in editable:
        pattern = pattern.rstrip("/")
        if path == pattern or path.startswith(pattern + "/") or fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def tracked_files(root: Path, commit: str) -> list[tuple[str, str, str]]:
    """(mode, blob id, path relative to the project) of every file in the commit."""
    out = _run(root, "ls-tree", "-r", "--full-tree", commit, what="list the commit's files")
    shown = git(root, "rev-parse", "--show-prefix")
    prefix = shown.stdout.strip() if shown else ""
    items = []
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        mode, _kind, blob = meta.split()
        if prefix and not path.startswith(prefix):
            continue
        items.append((mode, blob, path[len(prefix):]))
    return items


def tree_hash(root: Path, commit: str, editable: list[str]) -> str:
    """sha256 over (mode, blob, path) of the commit's editable files: a candidate's identity.

    Two commits with the same editable code have the same tree hash whatever their history or
    message, so "already tried" is decided on code, not on commit ids.
    """
    digest = hashlib.sha256()
    for mode, blob, path in sorted(tracked_files(root, commit), key=lambda item: item[2]):
        if is_editable(path, editable):
            digest.update(f"{mode} {blob} {path}\n".encode())
    return digest.hexdigest()


def changed_files(root: Path, base: str, head: str) -> list[str]:
    """Project-relative paths that differ between two commits (added, removed or modified)."""
    out = _run(root, "diff", "--relative", "--name-only", "--no-renames", base, head, "--", ".",
               what="compare the candidate with the champion")
    return [line for line in out.splitlines() if line.strip()]


def diffstat(root: Path, base: str, head: str) -> str:
    proc = git(root, "diff", "--relative", "--shortstat", base, head, "--", ".")
    return proc.stdout.strip() if proc else ""


def check_clean(root: Path, editable: list[str]) -> None:
    """The candidate is HEAD, so the tree must be committed: no staged or unstaged change to a
    tracked file, and no untracked editable file (it would be run but not be in the commit)."""
    out = _run(root, "status", "--porcelain", "--untracked-files=all", "--", ".",
               what="check the tree is committed")
    dirty = []
    for line in out.splitlines():
        code, path = line[:2], line[3:]
        if code == "??" and (path.startswith(STATE_DIRNAME + "/") or not is_editable(path, editable)):
            continue  # rstack's own state (champion checkouts) is never part of a candidate
        dirty.append(path)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" (+{len(dirty) - 5} more)" if len(dirty) > 5 else "")
        raise ProgramError(f"the tree has uncommitted changes ({shown}); a trial runs HEAD, so "
                           "it must be committed",
                           hint='git add -A && git commit -m "HYPOTHESIS", then rstack program trial')


def check_scope(changed: list[str], editable: list[str]) -> None:
    """Refuse a candidate that changed a file outside scope.editable (program.md is the human's)."""
    outside = [path for path in changed if path != PROGRAM_FILENAME and not is_editable(path, editable)]
    if outside:
        raise ProgramError(
            f"scope: the candidate changed {len(outside)} file(s) outside scope.editable "
            f"({', '.join(outside[:5])}); a trial may change only {', '.join(editable)}",
            hint=f"restore them: git checkout {CHAMPION_REF} -- {' '.join(outside[:5])} and "
                 "commit; or, if the human agrees, add them to scope.editable in program.md")


def champion_commit(root: Path) -> str | None:
    proc = git(root, "rev-parse", "--verify", "--quiet", CHAMPION_REF)
    return proc.stdout.strip() if proc and proc.stdout.strip() else None


def set_ref(root: Path, ref: str, commit: str) -> None:
    _run(root, "update-ref", ref, commit, what=f"move {ref}")


def reset_command(root: Path, head: str, editable: list[str]) -> str:
    """The one git command that returns the working tree to the champion's code.

    When only editable files differ, moving the branch back is exact; when the human also
    committed other files since (program.md), only the editable files are restored.
    """
    champion = champion_commit(root)
    if champion is None:
        return ""
    others = [p for p in changed_files(root, champion, head) if not is_editable(p, editable)]
    if not others:
        return f"git reset --hard {CHAMPION_REF}"
    return (f"git restore --source={CHAMPION_REF} --staged --worktree -- {' '.join(editable)} "
            f"&& git commit -m 'back to the champion'")


def reset_to_champion(root: Path, head: str, editable: list[str]) -> str:
    """`--reset`: run reset_command (the trial's commit stays reachable as refs/rstack/trials/N)."""
    import subprocess

    command = reset_command(root, head, editable)
    if command:
        proc = subprocess.run(command, shell=True, cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ProgramError(f"{command} failed: {proc.stderr.strip()}",
                               hint="return to the champion by hand with that command")
    return command
