"""The one place that resolves RStack's paths: RSTACK_HOME, the project root, `.rstack/`, the checkout.

Nothing else in the package reads HOME or RSTACK_HOME, or guesses a project root.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIRNAME = ".rstack"


def rstack_home() -> Path:
    """`$RSTACK_HOME`, else `~/.rstack` (user-level config, telemetry, caches shared by projects)."""
    env = os.environ.get("RSTACK_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".rstack"


def config_path() -> Path:
    return rstack_home() / "config.yaml"


def install_marker() -> Path:
    return rstack_home() / ".install-complete"


def analytics_dir() -> Path:
    return rstack_home() / "analytics"


def user_home() -> Path:
    """The user's home directory (telemetry replaces it with `~` in error text)."""
    return Path.home()


def modal_config_path() -> Path:
    """Modal's own auth store: `$MODAL_CONFIG_PATH`, else `~/.modal.toml`."""
    env = os.environ.get("MODAL_CONFIG_PATH")
    return Path(env).expanduser() if env else Path.home() / ".modal.toml"


def vastai_key_paths() -> tuple[Path, ...]:
    """Where the vastai CLI keeps its API key (older and newer CLI versions)."""
    return (Path.home() / ".vast_api_key", Path.home() / ".config" / "vastai" / "vast_api_key")


def claude_skills_dir() -> Path:
    """Where Claude Code looks for skills: `$CLAUDE_SKILLS_DIR`, else `~/.claude/skills`."""
    return host_skills_dir("claude")


# Agents that read SKILL.md folders, and where each looks in the user's home. `./setup --host`,
# `rstack dev link-skills --host` and the skills' preamble (its launcher search) derive from this.
HOST_SKILLS_DIRS: dict[str, tuple[str, str]] = {
    # host: (environment override, folder under HOME)
    "claude": ("CLAUDE_SKILLS_DIR", ".claude/skills"),
    "codex": ("CODEX_SKILLS_DIR", ".codex/skills"),
    "gemini": ("GEMINI_SKILLS_DIR", ".gemini/skills"),
    "agents": ("AGENTS_SKILLS_DIR", ".agents/skills"),
}


def host_skills_dir(host: str) -> Path:
    """The skills folder of `host` (a HOST_SKILLS_DIRS key): its override variable, else HOME's."""
    env_name, relative = HOST_SKILLS_DIRS[host]
    env = os.environ.get(env_name)
    if env:
        return Path(env).expanduser()
    return Path.home() / relative


def checkout_root() -> Path:
    """The RStack checkout this package runs from (setup installs it editable, so lib/ is here)."""
    return Path(__file__).resolve().parents[2]


def launcher() -> Path:
    """The `rstack` a user should type: the checkout's bin/rstack, else the installed script."""
    shim = checkout_root() / "bin" / "rstack"
    if shim.is_file():
        return shim
    import sys

    script = Path(sys.executable).parent / "rstack"
    return script if script.is_file() else Path("rstack")


# What a wheel carries as package data (setup.py copies these folders into rstack/_data/).
DATA_DIRS = ("templates", "skills", "examples")


def data_root() -> Path:
    """Where templates/, skills/ and examples/ are: the checkout (a clone, an editable install),
    else the package's own `_data/` (a wheel: `pipx install`, `uv tool install`)."""
    checkout = checkout_root()
    if (checkout / "templates").is_dir():
        return checkout
    return Path(__file__).resolve().parent / "_data"


def templates_dir() -> Path:
    return data_root() / "templates"


def skills_src_dir() -> Path:
    return data_root() / "skills"


def examples_dir() -> Path:
    return data_root() / "examples"


def _git_toplevel(start: Path) -> Path | None:
    # Walk up looking for .git (a directory, or a file for worktrees/submodules) instead of
    # spawning git: this runs in every command and in the skills' preamble.
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def project_root(explicit: str | os.PathLike | None = None) -> Path:
    """`--project DIR`, else `$RSTACK_PROJECT`, else the git top level, else the cwd."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("RSTACK_PROJECT")
    if env:
        return Path(env).expanduser().resolve()
    cwd = Path.cwd().resolve()
    return _git_toplevel(cwd) or cwd


def state_dir(root: Path) -> Path:
    """`<root>/.rstack`, where ledgers, caches and the quarantine live."""
    return Path(root) / STATE_DIRNAME


def ledger_path(root: Path, name: str) -> Path:
    return state_dir(root) / f"{name}.jsonl"


def quarantine_path(root: Path) -> Path:
    return state_dir(root) / "quarantine.jsonl"


def cache_dir(root: Path) -> Path:
    return state_dir(root) / "cache"
