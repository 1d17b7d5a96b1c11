"""Shared fixtures. Every test runs with HOME and RSTACK_HOME inside its own tmp_path, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No test may read or write the developer's real ~/.rstack, ~/.claude or config."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RSTACK_HOME", str(home / ".rstack"))
    monkeypatch.setenv("CLAUDE_SKILLS_DIR", str(home / ".claude" / "skills"))
    for name in list(os.environ):
        # An RSTACK_<KEY> override or a project pointer in the developer's shell must not leak in.
        if name.startswith("RSTACK_") and name not in ("RSTACK_HOME",):
            monkeypatch.delenv(name, raising=False)
    for secret in ("S2_API_KEY", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_CONFIG_PATH",
                   "VAST_API_KEY"):
        monkeypatch.delenv(secret, raising=False)
    return home


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project directory, set as the cwd and as RSTACK_PROJECT."""
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("RSTACK_PROJECT", str(root))
    return root


@pytest.fixture
def cli():
    """Invoke `rstack ...` in-process; returns click's Result (exit_code, output, stderr)."""
    from rstack.cli import main

    runner = CliRunner()

    def invoke(*args, input=None, env=None):
        return runner.invoke(main, [str(a) for a in args], input=input, env=env,
                             catch_exceptions=False)

    return invoke
