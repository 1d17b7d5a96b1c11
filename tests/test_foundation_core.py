"""Slugs, path resolution and the CLI group's error handling."""

from __future__ import annotations

import re
import subprocess

import click
import pytest

from rstack import paths
from rstack.cli import main
from rstack.errors import ConfigError, RStackError
from rstack.slug import MAX_LEN, project_slug, slugify


@pytest.mark.parametrize("text,slug", [
    ("Héllo Wörld", "hello-world"),
    ("Ünïcödé — Tëst!!", "unicode-test"),
    ("Привет мир", "privet-mir"),
    ("日本語の研究", "ribenyunoyanjiu"),
    ("Scaling Laws for Neural Language Models in the Low Data Regime Revisited",
     "scaling-laws-for-neural-language-models-in-the"),
    ("a" * 60, "a" * 48),
])
def test_slugify(text, slug):
    assert slugify(text) == slug
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug) and len(slug) <= MAX_LEN


def test_unsluggable_text_gets_a_stable_non_empty_slug():
    assert slugify("---") == slugify("---")
    assert re.fullmatch(r"project-[0-9a-f]{8}", slugify("---"))
    assert slugify("!!") != slugify("??")


def test_slug_command_from_text_git_remote_or_directory(cli, tmp_path):
    assert cli("slug", "My Great Idea").output == "my-great-idea\n"
    assert cli("slug", "--eval", "My Great Idea").output == "SLUG=my-great-idea\n"
    plain = tmp_path / "Some Dir"
    plain.mkdir()
    assert cli("slug", "--project", plain).output == "some-dir\n"
    repo = tmp_path / "checkout"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin",
                    "git@github.com:someone/Cool_Project.git"], check=True)
    assert project_slug(None, repo) == "cool-project"
    assert cli("slug", "--project", repo).output == "cool-project\n"


def test_project_root_precedence(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "sub" / "deeper").mkdir(parents=True)
    (repo / ".git").mkdir()
    monkeypatch.chdir(repo / "sub" / "deeper")
    monkeypatch.delenv("RSTACK_PROJECT", raising=False)
    assert paths.project_root() == repo.resolve()
    monkeypatch.setenv("RSTACK_PROJECT", str(tmp_path / "env"))
    assert paths.project_root() == (tmp_path / "env").resolve()
    assert paths.project_root(tmp_path / "flag") == (tmp_path / "flag").resolve()
    monkeypatch.delenv("RSTACK_PROJECT")
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert paths.project_root() == outside.resolve()
    assert paths.ledger_path(outside, "experiments") == outside / ".rstack" / "experiments.jsonl"


def test_home_paths_follow_the_environment(isolated_home, monkeypatch):
    assert paths.rstack_home() == isolated_home / ".rstack"
    assert paths.config_path() == isolated_home / ".rstack" / "config.yaml"
    assert paths.claude_skills_dir() == isolated_home / ".claude" / "skills"
    monkeypatch.delenv("RSTACK_HOME")
    monkeypatch.delenv("CLAUDE_SKILLS_DIR")
    assert paths.rstack_home() == isolated_home / ".rstack"
    assert paths.claude_skills_dir() == isolated_home / ".claude" / "skills"
    monkeypatch.setenv("RSTACK_HOME", "")  # empty means unset, as in ${RSTACK_HOME:-...}
    assert paths.rstack_home() == isolated_home / ".rstack"


def test_rstack_error_becomes_exit_1_with_its_hint(cli):
    @main.command("explode-for-test")
    def explode() -> None:
        """Raise a handled failure."""
        raise ConfigError("what went wrong, where", hint="rstack config list")

    try:
        result = cli("explode-for-test")
    finally:
        main.commands.pop("explode-for-test")
    assert result.exit_code == 1
    assert result.output == "Error: what went wrong, where\n  fix: rstack config list\n"
    assert str(RStackError("plain")) == "plain"


def test_version_and_unknown_command(cli):
    assert cli("--version").output == "rstack, version 0.1.0\n"
    result = cli("no-such-command")
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output
    assert isinstance(main, click.Group)
