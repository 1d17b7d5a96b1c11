"""Docs coverage: every command has help text and a section in the generated docs/cli.md, the
generated docs are fresh, the README stays a short front door whose links resolve, and its test
commands are the ones .ci/run runs."""

from __future__ import annotations

import re
import shutil

import click
from click.testing import CliRunner

from conftest import REPO_ROOT
from rstack import docsgen, status
from rstack.cli import main

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"


def command_tree() -> list[tuple[str, click.Command]]:
    return [(path, cmd) for path, cmd, _ctx in docsgen.command_tree()]


def test_the_tree_is_discovered():
    paths = {path for path, _ in command_tree()}
    assert {"rstack config get", "rstack log append", "rstack compute-detect",
            "rstack telemetry sync", "rstack dev link-skills", "rstack dev gen-docs"} <= paths


def test_every_command_has_help_text():
    missing = [path for path, cmd in command_tree() if not (cmd.help or "").strip()]
    assert missing == [], f"commands without help text: {missing}"


def test_every_command_has_a_section_in_the_cli_reference():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [path for path, _ in command_tree() if f"\n## {path}\n" not in text]
    assert missing == [], f"run `rstack dev gen-docs`; missing from docs/cli.md: {missing}"


def test_generated_docs_are_fresh():
    result = CliRunner().invoke(main, ["dev", "gen-docs", "--check"])
    assert result.exit_code == 0, result.output
    assert "docs ok" in result.output


def _copy_docs(tmp_path):
    (tmp_path / "docs").mkdir()
    shutil.copy(DOCS / "cli.md", tmp_path / "docs" / "cli.md")
    shutil.copy(README, tmp_path / "README.md")
    return tmp_path


def test_check_fails_on_a_stale_reference_and_generate_fixes_it(tmp_path):
    root = _copy_docs(tmp_path)
    cli_md = root / "docs" / "cli.md"
    cli_md.write_text(cli_md.read_text().replace("## rstack status\n", "## rstack statue\n"))
    readme = root / "README.md"
    readme.write_text(readme.read_text().replace("| audit |", "| audits |"))
    stale = docsgen.generate(root, check=True)
    assert [(c.path.name, c.what) for c in stale] == [("cli.md", "CLI reference"),
                                                       ("README.md", "pipeline table")]
    assert "## rstack statue\n" in cli_md.read_text()          # --check changes nothing
    docsgen.generate(root)
    assert docsgen.generate(root, check=True) == []
    assert cli_md.read_text() == (DOCS / "cli.md").read_text()
    assert readme.read_text() == README.read_text()


def test_check_exit_code_and_message_when_stale(tmp_path, monkeypatch):
    root = _copy_docs(tmp_path)
    (root / "docs" / "cli.md").unlink()
    monkeypatch.setattr(docsgen.paths, "checkout_root", lambda: root)
    result = CliRunner().invoke(main, ["dev", "gen-docs", "--check"])
    assert result.exit_code == 1
    assert "generated docs are stale; fix: run rstack dev gen-docs" in result.output
    assert not (root / "docs" / "cli.md").exists()


def test_readme_without_the_pipeline_markers_is_an_error(tmp_path):
    try:
        docsgen.regenerate_readme("# RStack\n")
    except ValueError as exc:
        assert "rstack:begin pipeline" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_the_pipeline_table_has_one_row_per_stage_in_order():
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\w+) \| `(/[\w-]+)` \|", text, re.M)
    assert [stage for stage, _ in rows] == list(status.STAGES)
    skills = {p.name for p in (REPO_ROOT / "skills").iterdir() if (p / "SKILL.md").is_file()}
    assert {skill.lstrip("/") for _, skill in rows} <= skills


def test_the_readme_is_a_short_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move reference text to docs/"


def test_every_relative_link_in_readme_and_docs_resolves():
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO_ROOT)} -> {target}")
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme():
    text = README.read_text(encoding="utf-8")
    assert [p.name for p in sorted(DOCS.glob("*.md")) if f"(docs/{p.name})" not in text] == []


def test_install_docs_list_every_bin_shim():
    text = (DOCS / "install.md").read_text(encoding="utf-8")
    shims = sorted(p.name for p in (REPO_ROOT / "bin").iterdir() if p.is_file())
    assert [name for name in shims if f"`bin/{name}`" not in text] == []


def readme_test_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash)?\n(.*?)\n```", section, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_full_test_command():
    fast, full = readme_test_commands()
    assert fast == ".venv/bin/python -m pytest -q"
    assert full == fast + ' -m "slow or not slow"'
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert full in ci_lines, f".ci/run must run the README's full test command verbatim: {full}"


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
