"""A real git project with the toy numpy train.py (tests/data/program/train.py) and a program.md,
for the program-loop tests: candidates are commits that change the script's constants."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

TRAIN = Path(__file__).parent / "data" / "program" / "train.py"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def preflight(root: Path, script: str = "train.py") -> None:
    """A real preflight of the script as it is now, recorded like `rstack preflight` does."""
    from rstack.preflight import record_preflight, run_preflight

    result = run_preflight(root / script)
    assert result.passed, result.message
    record_preflight(root, result)


def make_project(root: Path, *, min_effect: float = 0.005, max_trials: int = 50,
                 max_cost_usd: float = 10.0, seeds=(0, 1, 2), confirm=(100, 101, 102)) -> Path:
    from rstack.program.spec import init_program

    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.org")
    git(root, "config", "user.name", "test")
    shutil.copy(TRAIN, root / "train.py")
    (root / ".gitignore").write_text(".rstack/\nresults/\nanalysis/\n")
    (root / "README.md").write_text("toy\n")
    init_program(root, name="toy", metric="val_loss", direction="minimize", min_effect=min_effect,
                 script="train.py", editable=["train.py"], seeds=list(seeds),
                 confirm=list(confirm), timeout_s=60, profile="local", max_trials=max_trials,
                 max_cost_usd=max_cost_usd, max_hours=8, baseline="HEAD")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline")
    preflight(root)
    return root


def set_constants(root: Path, **values) -> None:
    """Rewrite `NAME = value` lines of train.py (SEED_OFFSET, LR, STEPS, NOISE, BONUS)."""
    path = root / "train.py"
    text = path.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", text, flags=re.M)
        assert count == 1, name
    path.write_text(text)


def commit_candidate(root: Path, message: str, *, check: bool = True, **values) -> str:
    """Start from the champion's code, change constants, commit, preflight: one candidate."""
    git(root, "checkout", "-q", "refs/rstack/champion", "--", "train.py")
    set_constants(root, **values)
    git(root, "commit", "-qam", message, "--allow-empty")
    if check:
        preflight(root)
    return git(root, "rev-parse", "HEAD")
