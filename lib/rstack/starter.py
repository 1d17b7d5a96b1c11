"""Starter files a new project copies from RStack's templates (the plan and a training script).

Found through `rstack.paths`, so they come from the checkout or from the installed package alike;
an existing file is never overwritten.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from . import paths

# project file -> template file (under templates/)
STARTER_FILES = {"experiment-plan.md": "experiment-plan.md", "train.py": "train_template.py"}


@dataclass(frozen=True)
class StarterFile:
    path: Path
    template: Path
    written: bool

    def as_json(self) -> dict:
        return {"path": str(self.path), "template": str(self.template), "written": self.written}


def write_starter_files(root: Path) -> list[StarterFile]:
    """Copy each starter template into `root` unless a file of that name is already there."""
    out = []
    for name, template_name in STARTER_FILES.items():
        dest, template = Path(root) / name, paths.templates_dir() / template_name
        written = not dest.exists()
        if written:
            shutil.copyfile(template, dest)
        out.append(StarterFile(dest, template, written))
    return out
