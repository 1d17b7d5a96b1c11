"""Package data for wheels: copy templates/, skills/ and examples/ into rstack/_data/.

Everything else is in pyproject.toml. A clone and an editable install read these folders from the
checkout; an installed wheel (`pipx install`, `uv tool install`) reads them from rstack/_data/
(`rstack.paths.data_root`). Git-ignored files (official venue styles, caches) are left out.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA_DIRS = ("templates", "skills", "examples")  # rstack.paths.DATA_DIRS
SKIP = ("__pycache__", "*.pyc", ".rstack", "official", "out", "results", ".DS_Store")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        dest_root = Path(self.build_lib) / "rstack" / "_data"
        for name in DATA_DIRS:
            src = HERE / name
            if src.is_dir():
                dest = dest_root / name
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(src, dest, ignore=lambda _d, names: [
                    n for n in names if any(fnmatch.fnmatch(n, p) for p in SKIP)])


setup(cmdclass={"build_py": BuildWithData})
