"""Install-time steps that ./setup runs: link skills into Claude Code, prepare $RSTACK_HOME.

Idempotent, and never deletes or overwrites anything that is not an RStack link: a user's own
directory or file in the skills folder is reported and left exactly as it is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import __version__, config, paths, skills
from .errors import RStackError

@dataclass(frozen=True)
class LinkOutcome:
    name: str
    dest: Path
    source: Path | None
    action: str  # linked | updated | unchanged | skipped | removed
    reason: str = ""

    def as_json(self) -> dict:
        return {"name": self.name, "dest": str(self.dest),
                "source": str(self.source) if self.source else None,
                "action": self.action, "reason": self.reason}


def _looks_like_rstack_target(target: Path) -> bool:
    """A link we may replace: it points at `<checkout>/skills/<name>` of some RStack checkout.

    A dangling link qualifies when its target has that shape (the checkout moved or was deleted);
    a live one only when the checkout really is RStack (it has lib/rstack).
    """
    if target.parent.name != "skills":
        return False
    checkout = target.parent.parent
    if not target.exists():
        return True
    return (checkout / "lib" / "rstack").is_dir()


def _link_target(link: Path) -> Path:
    raw = Path(os.readlink(link))
    return raw if raw.is_absolute() else link.parent / raw


def link_skills(skills_dir: Path | None = None, src_dir: Path | None = None,
                host: str = "claude") -> list[LinkOutcome]:
    """Symlink every skill into `skills_dir` (default: the skills folder of `host`).

    Existing links to this checkout are left alone, links to another RStack checkout are updated,
    and anything else of the same name is skipped with a reason. Links that point into this
    checkout's skills/ at a skill that no longer exists are removed.
    """
    skills_dir = Path(skills_dir) if skills_dir else paths.host_skills_dir(host)
    src_dir = (Path(src_dir) if src_dir else paths.skills_src_dir()).resolve()
    try:
        skills_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RStackError(f"cannot create the skills directory {skills_dir}: {exc.strerror or exc}",
                          hint=f"set {paths.HOST_SKILLS_DIRS[host][0]} to a writable directory, "
                               "or run ./setup --no-link") from None
    outcomes = [_link_one(source, skills_dir / source.name) for source in skills.skill_dirs(src_dir)]
    outcomes.extend(_prune_stale(skills_dir, src_dir))
    outcomes.append(link_checkout(skills_dir, src_dir.parent))
    return outcomes


CHECKOUT_LINK = "rstack"


def link_checkout(skills_dir: Path, checkout: Path) -> LinkOutcome:
    """Link the checkout itself as `<skills_dir>/rstack`: the one stable path skills call
    (`~/.claude/skills/rstack/bin/rstack`) wherever the repo was cloned. It holds no SKILL.md, so
    Claude Code does not load it as a skill. A checkout cloned into that very folder needs no link.
    """
    dest = skills_dir / CHECKOUT_LINK
    return _ensure_link(
        dest, checkout.resolve(), "an RStack checkout",
        replaceable=lambda target: not target.exists() or (target / "lib" / "rstack").is_dir(),
        occupied=lambda: f"{dest} exists and is not this checkout; skills call "
                         f"{dest}/bin/rstack, so move it aside and re-run ./setup")


def _link_one(source: Path, dest: Path) -> LinkOutcome:
    kind = "directory" if dest.is_dir() else "file"
    return _ensure_link(
        dest, source, "an RStack skill", replaceable=_looks_like_rstack_target,
        occupied=lambda: f"{dest} is a {kind} that is not an RStack link; left as is "
                         "(move it aside and re-run ./setup to link the RStack skill)")


def _ensure_link(dest: Path, source: Path, what: str, *, replaceable: Callable[[Path], bool],
                 occupied: Callable[[], str]) -> LinkOutcome:
    """Make `dest` a symlink to `source`, replacing only a link that `replaceable` accepts."""
    name = dest.name
    if dest.is_symlink():
        target = _link_target(dest)
        if target.exists() and target.resolve() == source.resolve():
            return LinkOutcome(name, dest, source, "unchanged")
        if not replaceable(target):
            return LinkOutcome(name, dest, source, "skipped",
                               f"{dest} is a link to {target}, not {what}; left as is")
        dest.unlink()
        dest.symlink_to(source, target_is_directory=True)
        return LinkOutcome(name, dest, source, "updated", f"was a link to {target}")
    if dest.exists():
        if dest.resolve() == source.resolve():  # e.g. the checkout cloned into that very folder
            return LinkOutcome(name, dest, source, "unchanged")
        return LinkOutcome(name, dest, source, "skipped", occupied())
    dest.symlink_to(source, target_is_directory=True)
    return LinkOutcome(name, dest, source, "linked")


def _prune_stale(skills_dir: Path, src_dir: Path) -> list[LinkOutcome]:
    removed = []
    for entry in sorted(skills_dir.iterdir()):
        if not entry.is_symlink():
            continue
        target = _link_target(entry)
        if target.parent == src_dir and not target.exists():
            entry.unlink()
            removed.append(LinkOutcome(entry.name, entry, None, "removed",
                                       f"{target} no longer exists"))
    return removed


@dataclass(frozen=True)
class HomeOutcome:
    home: Path
    config_path: Path
    config_written: bool
    marker_path: Path
    marker_written: bool

    def as_json(self) -> dict:
        return {"home": str(self.home), "config": str(self.config_path),
                "config_written": self.config_written, "marker": str(self.marker_path),
                "marker_written": self.marker_written}


def init_home() -> HomeOutcome:
    """Create $RSTACK_HOME with a commented config.yaml and the `.install-complete` marker.

    An existing config.yaml is validated, never rewritten; the marker is rewritten only when the
    version or checkout it records changed.
    """
    home = paths.rstack_home()
    home.mkdir(parents=True, exist_ok=True)
    config_written = config.init_file()
    marker = paths.install_marker()
    content = json.dumps({"version": __version__, "checkout": str(paths.checkout_root())},
                         sort_keys=True) + "\n"
    current = marker.read_text(encoding="utf-8") if marker.is_file() else None
    if current != content:
        marker.write_text(content, encoding="utf-8")
    return HomeOutcome(home, paths.config_path(), config_written, marker, current != content)
