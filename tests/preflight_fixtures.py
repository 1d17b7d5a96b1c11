"""The preflight corpus (tests/data/preflight/*.py): each script states its expected verdict.

Header lines: `# expect: PASS` or `# expect: FAIL <category>`, optionally
`# preflight-args: --stall 2 --budget 4 --memory-mb 400 --no-determinism`.
Shared by tests/test_preflight_corpus.py and bench/preflight.py.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "data" / "preflight"


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    verdict: str
    category: str | None
    kwargs: dict = field(default_factory=dict)
    doc: str = ""


def _parse_args(text: str) -> dict:
    kwargs: dict = {}
    tokens = shlex.split(text)
    names = {"--stall": ("stall_s", float), "--budget": ("budget_s", float),
             "--memory-mb": ("memory_mb", float), "--seed": ("seed", int),
             "--full-steps": ("full_steps", int)}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--no-determinism":
            kwargs["determinism"] = False
            i += 1
        elif token in names:
            key, kind = names[token]
            kwargs[key] = kind(tokens[i + 1])
            i += 2
        else:
            raise ValueError(f"unknown preflight-args token {token!r}")
    return kwargs


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS_DIR.glob("*.py")):
        head = path.read_text().splitlines()[:4]
        expect = next(line for line in head if line.startswith("# expect:"))
        parts = expect.split(":", 1)[1].split()
        args = next((line.split(":", 1)[1] for line in head if line.startswith("# preflight-args:")), "")
        doc = re.sub(r"^#\s*", "", head[0]) if head and not head[0].startswith("# expect") else ""
        cases.append(Case(path.stem, path, parts[0], parts[1] if len(parts) > 1 else None,
                          _parse_args(args), doc))
    return cases


def stage(case: Case, workdir: Path) -> Path:
    """Copy the case's script into its own directory (it runs with that directory as cwd)."""
    target = Path(workdir) / case.name
    target.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(case.path, target / case.path.name))


# Scripts that start processes name this marker in their children's argv (RSTACK_CORPUS_MARKER).
SPAWNING = {"ok_child_process", "hang_with_children", "memory_blowup_children"}
