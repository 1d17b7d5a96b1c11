"""./setup and the bin/ shims as real subprocesses, in temporary homes.

./setup installs packages into a fresh venv (from the package index, as a user's first run does),
so it runs once per module on a copy of this checkout; the other tests reuse that copy. Those are
marked slow: the default run leaves them out, `.ci/run` runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

SHIMS = {
    "rstack-config": ["config"],
    "rstack-slug": ["slug"],
    "rstack-compute-detect": ["compute-detect"],
    "rstack-preflight": ["preflight"],
    "rstack-telemetry-log": ["telemetry", "log"],
    "rstack-telemetry-sync": ["telemetry", "sync"],
}
_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache",
                                 ".rstack", "rstack-demo", "results", "out")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RSTACK_", "CLAUDE_SKILLS_DIR", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(HOME=str(home), **extra)
    return env


def run(cmd, env, cwd=None, timeout=600, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of this checkout cloned as ~/.claude/skills/rstack and set up once."""
    base = tmp_path_factory.mktemp("setup")
    home = base / "home-a"
    checkout = home / ".claude" / "skills" / "rstack"
    shutil.copytree(REPO_ROOT, checkout, ignore=_IGNORE, symlinks=True)
    env = clean_env(home)
    first = run([checkout / "setup", "--no-tectonic"], env, cwd=base)
    assert first.returncode == 0, first.stdout + first.stderr
    return {"base": base, "home": home, "checkout": checkout, "env": env, "first": first}


def skill_names(checkout: Path) -> list[str]:
    return sorted(p.parent.name for p in (checkout / "skills").glob("*/SKILL.md")
                  if not p.parent.name.startswith(("_", ".")))


def test_help_prints_usage_before_any_check(tmp_path):
    # An empty PATH: no python at all, yet --help answers.
    bash = shutil.which("bash")
    result = run([bash, REPO_ROOT / "setup", "--help"], {"PATH": "/nonexistent"})
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ./setup [--dev] [--no-link] [--no-tectonic] [-h|--help]")
    bad = run([bash, REPO_ROOT / "setup", "--bogus"], {"PATH": "/nonexistent"})
    assert bad.returncode == 2
    assert bad.stderr.startswith("setup: unknown option '--bogus'\nUsage: ./setup")


def test_missing_python_says_how_to_get_one(tmp_path):
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    for tool in ("bash", "dirname", "cat"):
        (fakebin / tool).symlink_to(shutil.which(tool))
    old = fakebin / "python3"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.8.18' && exit 0\nexit 1\n")
    old.chmod(0o755)
    result = run([fakebin / "bash", REPO_ROOT / "setup"],
                 {"PATH": str(fakebin), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "setup: RStack needs Python >= 3.10 (found: Python 3.8.18).\n"
        "  Get one with your package manager, then re-run ./setup:\n")
    assert "RSTACK_PYTHON=/path/to/python3.12 ./setup" in result.stderr


@pytest.mark.slow
def test_first_run_creates_venv_links_skills_and_writes_config(installed):
    home, checkout, first = installed["home"], installed["checkout"], installed["first"]
    assert f"setup: creating {checkout}/.venv with " in first.stdout
    assert "setup: installing rstack (.) into" in first.stdout
    assert (checkout / ".venv" / "bin" / "python").exists()
    skills_dir = home / ".claude" / "skills"
    for name in skill_names(checkout):
        link = skills_dir / name
        assert link.is_symlink() and link.resolve() == (checkout / "skills" / name).resolve()
        assert f"linked    {name} -> {link}" in first.stdout
    assert "unchanged rstack" in first.stdout  # the checkout itself lives there already
    config = home / ".rstack" / "config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert config.read_text().startswith("# RStack configuration.")
    assert json.loads((home / ".rstack" / ".install-complete").read_text())["checkout"] == \
        str(checkout)
    assert first.stdout.rstrip().splitlines()[-1] == \
        f'setup: done. Next: {checkout}/bin/rstack demo   (then, in Claude Code: /research "your idea")'


@pytest.mark.slow
def test_second_run_is_a_no_op(installed):
    home, checkout, env = installed["home"], installed["checkout"], installed["env"]
    config = home / ".rstack" / "config.yaml"
    marker = home / ".rstack" / ".install-complete"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (config, marker)}
    links = sorted((p.name, os.readlink(p)) for p in (home / ".claude" / "skills").iterdir()
                   if p.is_symlink())
    again = run([checkout / "setup", "--no-tectonic"], env)
    assert again.returncode == 0, again.stderr
    assert "setup: using existing" in again.stdout
    assert "rstack already installed" in again.stdout
    assert "linked " not in again.stdout and "updated " not in again.stdout
    assert f"kept {config}" in again.stdout
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (config, marker)} == before
    assert sorted((p.name, os.readlink(p)) for p in (home / ".claude" / "skills").iterdir()
                  if p.is_symlink()) == links


@pytest.mark.slow
def test_setup_for_another_home_links_there_and_never_clobbers(installed):
    home = installed["base"] / "home-b"
    skills_dir = home / ".claude" / "skills"
    names = skill_names(installed["checkout"])
    (skills_dir / names[0]).mkdir(parents=True)  # the user's own folder of that name
    (skills_dir / names[0] / "notes.md").write_text("mine")
    result = run([installed["checkout"] / "setup", "--no-tectonic"], clean_env(home))
    assert result.returncode == 0, result.stderr
    assert (f"skipped   {names[0]}: {skills_dir / names[0]} is a directory that is not an RStack "
            "link; left as is") in result.stdout
    assert (skills_dir / names[0] / "notes.md").read_text() == "mine"
    for name in names[1:]:
        assert (skills_dir / name).resolve() == (installed["checkout"] / "skills" / name).resolve()
    assert (skills_dir / "rstack").resolve() == installed["checkout"].resolve()
    assert (home / ".rstack" / "config.yaml").exists()


@pytest.mark.slow
def test_no_link_skips_linking(installed):
    home = installed["base"] / "home-c"
    result = run([installed["checkout"] / "setup", "--no-link", "--no-tectonic"],
                 clean_env(home, CLAUDE_SKILLS_DIR=str(installed["base"] / "c-skills")))
    assert result.returncode == 0, result.stderr
    assert "setup: not linking skills (--no-link)" in result.stdout
    assert not (installed["base"] / "c-skills").exists()
    assert (home / ".rstack" / ".install-complete").exists()


@pytest.mark.slow
def test_installed_shim_works_through_a_symlink(installed, tmp_path):
    link = tmp_path / "rstack"
    link.symlink_to(installed["checkout"] / "bin" / "rstack")
    result = run([link, "config", "get", "venue"], installed["env"])
    assert (result.returncode, result.stdout) == (0, "arxiv\n")


# -- the shims of this checkout (./setup made its .venv) -------------------------------------


@pytest.fixture
def shim_env(isolated_home):
    return clean_env(isolated_home, RSTACK_HOME=str(isolated_home / ".rstack"))


@pytest.mark.parametrize("shim,words", sorted(SHIMS.items()))
def test_each_shim_runs_its_command(shim, words, shim_env):
    from rstack.cli import COMMANDS

    if words[0] not in COMMANDS:
        pytest.skip(f"`rstack {words[0]}` is not registered yet")
    direct = run([REPO_ROOT / "bin" / "rstack", *words, "--help"], shim_env)
    via_shim = run([REPO_ROOT / "bin" / shim, "--help"], shim_env)
    assert direct.returncode == 0, direct.stderr
    assert (via_shim.returncode, via_shim.stdout) == (0, direct.stdout)


def test_shims_through_absolute_and_relative_symlinks(tmp_path, shim_env):
    absolute = tmp_path / "somewhere" / "my-slug"
    absolute.parent.mkdir()
    absolute.symlink_to(REPO_ROOT / "bin" / "rstack-slug")
    relative = tmp_path / "rs"
    relative.symlink_to(os.path.relpath(REPO_ROOT / "bin" / "rstack", tmp_path))
    chained = tmp_path / "chained"
    chained.symlink_to(relative)
    assert run([absolute, "Héllo Wörld"], shim_env).stdout == "hello-world\n"
    for link in (relative, chained):
        result = run([link, "--version"], shim_env)
        assert (result.returncode, result.stdout) == (0, "rstack, version 0.1.0\n")
    eval_out = run([absolute, "--eval", "My Project"], shim_env).stdout
    assert eval_out == "SLUG=my-project\n"


def test_telemetry_shims(shim_env):
    log = run([REPO_ROOT / "bin" / "rstack-telemetry-log", "--skill", "s", "--outcome", "success"],
              shim_env)
    assert (log.returncode, log.stdout) == (0, "telemetry off: nothing recorded\n")
    sync = run([REPO_ROOT / "bin" / "rstack-telemetry-sync"], shim_env)
    assert (sync.returncode, sync.stdout, sync.stderr) == (0, "", "")


def test_compute_detect_shim_answers(shim_env):
    result = run([REPO_ROOT / "bin" / "rstack-compute-detect", "--json"], shim_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["recommended_profile"] == "local"


def test_missing_venv_says_run_setup(tmp_path, shim_env):
    checkout = tmp_path / "fresh-clone"
    shutil.copytree(REPO_ROOT / "bin", checkout / "bin", symlinks=True)
    link = tmp_path / "linked-config"
    link.symlink_to(checkout / "bin" / "rstack-config")
    for cmd in ([checkout / "bin" / "rstack", "--version"], [link, "get", "venue"]):
        result = run(cmd, shim_env)
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == (f"rstack: no virtual environment at {checkout}/.venv; run: "
                                 f"cd '{checkout}' && ./setup\n")


@pytest.mark.parametrize("script", ["setup", ".ci/run", *(f"bin/{n}" for n in ["rstack", *SHIMS])])
def test_scripts_are_executable_bash_that_parses(script):
    path = REPO_ROOT / script
    assert os.access(path, os.X_OK), f"chmod +x {script}"
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
