"""The repository as a Claude Code plugin and one-plugin marketplace: the manifests in their
documented shapes, the paths they name, and the SessionStart hook that keeps the plugin's venv
under ${CLAUDE_PLUGIN_DATA} (a silent no-op unless pyproject.toml or the plugin folder changed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from rstack import __version__, skills

PLUGIN = REPO_ROOT / ".claude-plugin" / "plugin.json"
MARKETPLACE = REPO_ROOT / ".claude-plugin" / "marketplace.json"
HOOKS = REPO_ROOT / "hooks" / "hooks.json"
HOOK = REPO_ROOT / "hooks" / "session-start"
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# plugin.json keys in the plugins reference (metadata and component paths).
PLUGIN_KEYS = {"name", "version", "description", "author", "homepage", "repository", "license",
               "keywords", "commands", "agents", "skills", "hooks", "mcpServers", "lspServers",
               "outputStyles", "userConfig"}
MARKETPLACE_KEYS = {"name", "owner", "metadata", "plugins"}
ENTRY_KEYS = PLUGIN_KEYS | {"source", "category", "tags", "strict"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_plugin_manifest_shape():
    plugin = load(PLUGIN)
    assert set(plugin) <= PLUGIN_KEYS
    assert KEBAB.match(plugin["name"])
    assert plugin["name"] != "rstack", "a public plugin is already called rstack"
    assert plugin["version"] == __version__
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert f'\nversion = "{plugin["version"]}"\n' in pyproject
    assert isinstance(plugin["author"], dict) and plugin["author"]["name"]
    assert all(isinstance(k, str) for k in plugin["keywords"])


def test_marketplace_lists_this_one_plugin():
    market = load(MARKETPLACE)
    assert set(market) <= MARKETPLACE_KEYS and KEBAB.match(market["name"])
    assert market["owner"]["name"]
    [entry] = market["plugins"]
    assert set(entry) <= ENTRY_KEYS
    assert entry["name"] == load(PLUGIN)["name"]
    assert entry["version"] == load(PLUGIN)["version"]
    source = (REPO_ROOT / entry["source"]).resolve()
    assert source == REPO_ROOT.resolve()
    assert (source / ".claude-plugin" / "plugin.json").is_file()


def test_paths_the_plugin_relies_on_exist():
    # skills/ in the default place: every skill the plugin exposes, nothing that is not one.
    names = {p.name for p in skills.skill_dirs(REPO_ROOT / "skills")}
    assert {"research", "lit-review", "novelty-check", "experiment", "analyze", "write-paper",
            "setup"} <= names
    assert "_shared" not in names and all((REPO_ROOT / "skills" / n / "SKILL.md").is_file() for n in names)
    # bin/ goes on the Bash tool's PATH: the launcher is there and executable.
    assert os.access(REPO_ROOT / "bin" / "rstack", os.X_OK)
    hooks = load(HOOKS)
    [group] = hooks["hooks"]["SessionStart"]
    [hook] = group["hooks"]
    assert hook["type"] == "command"
    script = hook["command"].replace('"', "").replace("${CLAUDE_PLUGIN_ROOT}", str(REPO_ROOT))
    assert Path(script) == HOOK and os.access(HOOK, os.X_OK)


def test_readme_names_the_plugin_skills_as_they_appear():
    name = load(PLUGIN)["name"]
    text = (REPO_ROOT / "README.md").read_text()
    assert f"/{name}:research" in text
    assert f"/plugin install {name}@{load(MARKETPLACE)['name']}" in text


# -- the SessionStart hook ----------------------------------------------------------------------

def _plugin_copy(tmp_path: Path, setup_body: str | None = None) -> Path:
    root = tmp_path / "plugin"
    shutil.copytree(REPO_ROOT, root, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache", "rstack-demo"))
    if setup_body is not None:
        (root / "setup").write_text("#!/usr/bin/env bash\n" + setup_body)
        (root / "setup").chmod(0o755)
    return root


def _hook(root: Path, data: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RSTACK_", "VIRTUAL_ENV"))}
    env.update(CLAUDE_PLUGIN_ROOT=str(root), CLAUDE_PLUGIN_DATA=str(data), **extra)
    return subprocess.run([str(root / "hooks" / "session-start")], env=env, capture_output=True,
                          text=True, timeout=900)


# A stand-in ./setup: records its call and makes a "venv" whose python is this interpreter.
STAND_IN_SETUP = f'''echo "setup $* RSTACK_VENV=$RSTACK_VENV" >> "$(dirname "$0")/setup-calls.log"
mkdir -p "$RSTACK_VENV/bin" && ln -sf "{sys.executable}" "$RSTACK_VENV/bin/python"
ln -sfn "$RSTACK_VENV" "$(dirname "$0")/.venv"
'''


def test_hook_sets_up_once_then_is_a_silent_no_op(tmp_path):
    root = _plugin_copy(tmp_path, STAND_IN_SETUP)
    data = tmp_path / "data"
    first = _hook(root, data)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (f"rstack: plugin environment ready ({data / 'venv'}); check LaTeX "
                            "with: rstack dev setup-latex\n")
    calls = root / "setup-calls.log"
    assert calls.read_text() == f"setup --no-link --no-latex RSTACK_VENV={data / 'venv'}\n"
    second = _hook(root, data)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert len(calls.read_text().splitlines()) == 1
    # pyproject.toml changed (a dependency added): refreshed once, then quiet again.
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text() + "\n# changed\n")
    assert _hook(root, data).stdout.startswith("rstack: plugin environment ready")
    assert _hook(root, data).stdout == ""
    assert len(calls.read_text().splitlines()) == 2


def test_hook_reports_a_failed_setup_and_retries_next_time(tmp_path):
    root = _plugin_copy(tmp_path, 'echo "setup: no python" >&2; exit 1\n')
    data = tmp_path / "data"
    result = _hook(root, data)
    assert result.returncode == 1
    assert result.stderr.startswith(f"rstack: setting up the plugin environment failed; see "
                                    f"{data / 'setup.log'}")
    assert "setup: no python" in result.stderr
    assert not (data / "venv.stamp").exists()


def test_hook_outside_claude_code_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PLUGIN_DATA"}
    result = subprocess.run([str(HOOK)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "CLAUDE_PLUGIN_DATA is not set" in result.stderr


def test_launcher_falls_back_to_the_plugin_data_venv(tmp_path):
    root = _plugin_copy(tmp_path)
    data = tmp_path / "data"
    (data / "venv" / "bin").mkdir(parents=True)
    (data / "venv" / "bin" / "python").symlink_to(sys.executable)
    env = {**os.environ, "CLAUDE_PLUGIN_DATA": str(data), "PYTHONPATH": str(REPO_ROOT / "lib")}
    result = subprocess.run([str(root / "bin" / "rstack"), "--version"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rstack, version ")


@pytest.mark.slow
def test_hook_with_the_real_setup_creates_the_venv_in_plugin_data(tmp_path):
    root = _plugin_copy(tmp_path)
    data = tmp_path / "data"
    first = _hook(root, data, HOME=str(tmp_path / "home"))
    assert first.returncode == 0, first.stderr + (data / "setup.log").read_text()
    assert os.readlink(root / ".venv") == str(data / "venv")
    version = subprocess.run([str(root / "bin" / "rstack"), "--version"], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path / "home")})
    assert version.returncode == 0 and version.stdout.startswith("rstack, version")
    assert (tmp_path / "home" / ".rstack" / ".install-complete").is_file()
    second = _hook(root, data, HOME=str(tmp_path / "home"))
    assert (second.returncode, second.stdout) == (0, "")
