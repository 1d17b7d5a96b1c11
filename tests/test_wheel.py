"""`pipx install` / `uv tool install` of the package: templates, skills and examples travel as
package data (setup.py copies them into rstack/_data/) and `rstack demo` runs from the wheel."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from rstack import paths

needs_latex = pytest.mark.skipif(not (shutil.which("latexmk") or shutil.which("pdflatex")),
                                 reason="no LaTeX engine (./setup installs one)")


def test_setup_py_copies_the_folders_paths_reads():
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    [value] = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
               and any(getattr(t, "id", None) == "DATA_DIRS" for t in node.targets)]
    assert ast.literal_eval(value) == paths.DATA_DIRS


def test_data_root_is_the_checkout_else_the_package_data(tmp_path, monkeypatch):
    assert paths.data_root() == REPO_ROOT
    monkeypatch.setattr(paths, "checkout_root", lambda: tmp_path / "site-packages-parent")
    package_data = Path(paths.__file__).resolve().parent / "_data"
    assert paths.data_root() == package_data
    assert paths.templates_dir() == package_data / "templates"
    assert paths.skills_src_dir() == package_data / "skills"
    assert paths.examples_dir() == package_data / "examples"


@pytest.mark.slow
@needs_latex
def test_the_built_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "-q",
                            "-w", str(wheels)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = wheels.glob("rstack-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("rstack/_data/templates/experiment-plan.md", "rstack/_data/skills/research/SKILL.md",
                   "rstack/_data/examples/demo/experiment-plan.md",
                   "rstack/_data/templates/latex/arxiv/rstack-arxiv.sty"):
        assert needed in names
    assert not [n for n in names if "__pycache__" in n or "/official/" in n]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RSTACK_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), RSTACK_HOME=str(home / ".rstack"))
    demo = subprocess.run([str(venv / "bin" / "rstack"), "demo", str(tmp_path / "demo")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert (tmp_path / "demo" / "paper.pdf").is_file()
    assert f"look around: cd {tmp_path / 'demo'} && {venv / 'bin' / 'rstack'} status" in demo.stdout
