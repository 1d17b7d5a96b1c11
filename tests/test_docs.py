"""Docs coverage: every command in the click tree has help text and is listed in the README;
the README's test command is the one .ci/run runs."""

from __future__ import annotations

import re

import click

from conftest import REPO_ROOT
from rstack.cli import main

README = REPO_ROOT / "README.md"


def command_tree() -> list[tuple[str, click.Command]]:
    """Every command and subcommand reachable from `rstack`, as ("rstack a b", command)."""
    ctx = click.Context(main)
    found = []

    def walk(group: click.Group, prefix: str) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            assert cmd is not None, f"{prefix} {name} is listed but does not load"
            path = f"{prefix} {name}"
            found.append((path, cmd))
            if isinstance(cmd, click.Group):
                walk(cmd, path)

    walk(main, "rstack")
    return found


def test_the_tree_is_discovered():
    paths = {path for path, _ in command_tree()}
    assert {"rstack config get", "rstack log append", "rstack compute-detect",
            "rstack telemetry sync", "rstack dev link-skills"} <= paths


def test_every_command_has_help_text():
    missing = [path for path, cmd in command_tree() if not (cmd.help or "").strip()]
    assert missing == [], f"commands without help text: {missing}"


def test_every_command_appears_in_the_readme():
    text = README.read_text(encoding="utf-8")
    missing = [path for path, cmd in command_tree()
               if not isinstance(cmd, click.Group) and f"`{path}`" not in text]
    assert missing == [], f"add these to README.md's Commands list: {missing}"


def test_readme_lists_every_bin_shim():
    text = README.read_text(encoding="utf-8")
    shims = sorted(p.name for p in (REPO_ROOT / "bin").iterdir() if p.is_file())
    assert [name for name in shims if f"`bin/{name}`" not in text] == []


def readme_test_command() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Tests\n", 1)[1]
    block = re.search(r"```(?:bash)?\n(.*?)\n```", section, re.S)
    assert block, "README's Tests section needs a fenced code block with the test command"
    [command] = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    return command


def test_ci_runs_the_readme_test_command():
    command = readme_test_command()
    assert command.startswith(".venv/bin/python -m pytest")
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines, f".ci/run must run the README's test command verbatim: {command}"


def test_quick_start_is_two_commands_that_exist():
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1]
    line = re.search(r"```(?:bash)?\n(.*?)\n```", section, re.S).group(1).strip()
    first, second = [part.strip() for part in line.split("&&")]
    assert first == "./setup"
    assert (REPO_ROOT / "setup").is_file()
    words = second.split()
    assert words[0] == "bin/rstack" and (REPO_ROOT / words[0]).is_file()
    assert f"rstack {words[1]}" in {path for path, _ in command_tree()}
