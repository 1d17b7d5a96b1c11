"""The skill pack's source of truth: discover `skills/<name>/SKILL.md`, generate the shared blocks
into each one, and validate front matter and limits.

Shared blocks are written once in `skills/_shared/<block>.md` and copied between markers into every
SKILL.md; nothing here edits text outside the markers, and a copy is never edited by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .errors import RStackError

SHARED_DIRNAME = "_shared"
# Generated blocks, in the order they are expected to appear in a skill.
BLOCKS = ("preamble", "completion")
# Keys the Agent Skills format defines; anything else belongs under `metadata:`.
FRONT_MATTER_KEYS = frozenset({"name", "description", "allowed-tools", "license", "metadata"})
REQUIRED_KEYS = ("name", "description")
DESCRIPTION_MAX = 1024
# All descriptions sit in every conversation's context, so the pack shares one budget.
DESCRIPTIONS_TOTAL_MAX = 2000
BODY_MAX_LINES = 500
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

_BEGIN = "<!-- rstack:begin {block} — generated from skills/_shared/{block}.md by `rstack dev gen-skills`; edit the source, not this copy -->"
_END = "<!-- rstack:end {block} -->"
_BLOCK_RE = re.compile(
    r"<!-- rstack:begin (?P<block>[a-z-]+)\b[^\n]*-->\n(?P<body>.*?)<!-- rstack:end (?P=block) -->",
    re.S,
)


class SkillError(RStackError):
    """A skill file is malformed or a shared block is missing."""


@dataclass
class Skill:
    name: str  # the folder name
    path: Path  # .../SKILL.md
    front_matter: dict
    front_matter_text: str
    body: str  # everything after the closing `---`

    @property
    def description(self) -> str:
        return str(self.front_matter.get("description") or "")


@dataclass
class Change:
    skill: str
    path: Path
    blocks: list[str] = field(default_factory=list)


def skills_dir(root: Path | None = None) -> Path:
    return Path(root) if root else paths.skills_src_dir()


def skill_dirs(root: Path | None = None) -> list[Path]:
    """Folders that are skills: they hold a SKILL.md and their name does not start with `_` or `.`.

    `./setup` links exactly these; `_shared/` (the blocks' sources) is never a skill.
    """
    base = skills_dir(root)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir()
                  if p.is_dir() and not p.name.startswith(("_", ".")) and (p / "SKILL.md").is_file())


def split_front_matter(text: str, where: str) -> tuple[str, str]:
    if not text.startswith("---\n"):
        raise SkillError(f"{where}: must start with a `---` line opening the YAML front matter",
                         hint="put name/description/allowed-tools between two `---` lines at the top")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise SkillError(f"{where}: the front matter has no closing `---` line")
    return text[4:end + 1], text[end + 5:]


def load_skill(folder: Path) -> Skill:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = folder / "SKILL.md"
    text = path.read_text(encoding="utf-8")
    fm_text, body = split_front_matter(text, str(path))
    try:
        data = YAML(typ="safe").load(fm_text)
    except YAMLError as exc:
        raise SkillError(f"{path}: front matter is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SkillError(f"{path}: front matter must be a mapping of keys")
    return Skill(folder.name, path, data, fm_text, body)


def load_skills(root: Path | None = None) -> list[Skill]:
    return [load_skill(folder) for folder in skill_dirs(root)]


def shared_block(block: str, root: Path | None = None) -> str:
    source = skills_dir(root) / SHARED_DIRNAME / f"{block}.md"
    if not source.is_file():
        raise SkillError(f"shared block source {source} is missing",
                         hint=f"restore it from git: git checkout HEAD -- {source}")
    text = source.read_text(encoding="utf-8")
    return text if text.endswith("\n") else text + "\n"


def launcher_candidates() -> str:
    """Where a clone's launcher is when `rstack` is not on PATH: `<host skills folder>/rstack/
    bin/rstack` for every host ./setup can link (`~` left for the shell to expand)."""
    from .install import CHECKOUT_LINK

    return " ".join(f"~/{relative}/{CHECKOUT_LINK}/bin/rstack"
                    for _env, relative in paths.HOST_SKILLS_DIRS.values())


def render_block(block: str, skill_name: str, root: Path | None = None) -> str:
    """The exact text between a skill's markers: the source with `{{SKILL_NAME}}` filled in."""
    body = (shared_block(block, root).replace("{{SKILL_NAME}}", skill_name)
            .replace("{{LAUNCHER_CANDIDATES}}", launcher_candidates()))
    return f"{_BEGIN.format(block=block)}\n{body}{_END.format(block=block)}"


def regenerate_text(text: str, skill_name: str, where: str, root: Path | None = None) -> tuple[str, list[str]]:
    """Replace every marked block in `text`; return the new text and the blocks that changed."""
    found = {m.group("block") for m in _BLOCK_RE.finditer(text)}
    missing = [b for b in BLOCKS if b not in found]
    if missing:
        raise SkillError(
            f"{where}: no generated {', '.join(missing)} block",
            hint="add the two marker lines where the block goes: "
                 + " ... ".join([_BEGIN.format(block=missing[0]), _END.format(block=missing[0])])
                 + ", then run rstack dev gen-skills",
        )
    unknown = sorted(found - set(BLOCKS))
    if unknown:
        raise SkillError(f"{where}: unknown generated block(s) {', '.join(unknown)}; known: "
                         f"{', '.join(BLOCKS)}")
    changed: list[str] = []

    def substitute(match: re.Match) -> str:
        block = match.group("block")
        new = render_block(block, skill_name, root)
        if new != match.group(0):
            changed.append(block)
        return new

    return _BLOCK_RE.sub(substitute, text), changed


def generate(root: Path | None = None, *, check: bool = False) -> list[Change]:
    """Write (or, with check=True, only detect) stale generated blocks. Returns what differs."""
    changes: list[Change] = []
    for folder in skill_dirs(root):
        path = folder / "SKILL.md"
        text = path.read_text(encoding="utf-8")
        new, changed = regenerate_text(text, folder.name, str(path), root)
        if changed:
            changes.append(Change(folder.name, path, changed))
            if not check:
                path.write_text(new, encoding="utf-8")
    return changes


def validate_skill(skill: Skill) -> list[str]:
    """Problems with one skill's front matter and size, each naming the file and the fix."""
    where = str(skill.path)
    problems: list[str] = []
    fm = skill.front_matter
    extra = sorted(set(fm) - FRONT_MATTER_KEYS)
    if extra:
        problems.append(f"{where}: front matter keys {', '.join(extra)} are not Agent Skills keys; "
                        "move them under metadata:")
    for key in REQUIRED_KEYS:
        if not fm.get(key):
            problems.append(f"{where}: front matter needs `{key}`")
    if fm.get("name") and fm["name"] != skill.name:
        problems.append(f"{where}: name {fm['name']!r} must equal the folder name {skill.name!r}")
    if not NAME_PATTERN.match(skill.name) or len(skill.name) > 64:
        problems.append(f"{where}: folder name {skill.name!r} must be lowercase letters, digits and "
                        "hyphens (at most 64)")
    if not isinstance(fm.get("description", ""), str):
        problems.append(f"{where}: description must be a string")
    elif len(skill.description) > DESCRIPTION_MAX:
        problems.append(f"{where}: description is {len(skill.description)} characters "
                        f"(limit {DESCRIPTION_MAX})")
    if "<" in skill.description or ">" in skill.description:
        problems.append(f"{where}: description must not contain angle brackets")
    tools = fm.get("allowed-tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
        problems.append(f"{where}: allowed-tools must be a list of tool names")
    if "metadata" in fm and not isinstance(fm["metadata"], dict):
        problems.append(f"{where}: metadata must be a mapping")
    lines = skill.body.count("\n")
    if lines >= BODY_MAX_LINES:
        problems.append(f"{where}: body is {lines} lines (limit {BODY_MAX_LINES}); move depth into "
                        "reference/*.md files the skill links to")
    return problems


def validate_pack(root: Path | None = None) -> list[str]:
    """Every problem across the pack: per-skill checks, the shared description budget, staleness."""
    problems: list[str] = []
    skills = []
    for folder in skill_dirs(root):
        try:
            skills.append(load_skill(folder))
        except SkillError as exc:
            problems.append(exc.message)
    if not skills and not problems:
        return [f"{skills_dir(root)}: no skills found (folders holding a SKILL.md)"]
    for skill in skills:
        problems.extend(validate_skill(skill))
    total = sum(len(s.description) for s in skills)
    if total >= DESCRIPTIONS_TOTAL_MAX:
        problems.append(f"the {len(skills)} descriptions total {total} characters (limit "
                        f"{DESCRIPTIONS_TOTAL_MAX - 1}): shorten the longest")
    try:
        for change in generate(root, check=True):
            problems.append(f"{change.path}: generated block(s) {', '.join(change.blocks)} are stale; "
                            "run rstack dev gen-skills")
    except SkillError as exc:
        problems.append(str(exc))
    return problems


def bash_blocks(markdown: str) -> list[str]:
    """The contents of every ```bash fenced block, in order."""
    return [m.group(1) for m in re.finditer(r"^```bash\n(.*?)^```", markdown, re.S | re.M)]


def relative_links(markdown: str) -> list[str]:
    """Targets of Markdown links that point at files (not URLs or anchors)."""
    targets = []
    for match in re.finditer(r"\]\(([^)\s]+)\)", markdown):
        target = match.group(1).split("#", 1)[0]
        if target and not re.match(r"^[a-z]+:", target):
            targets.append(target)
    return targets
