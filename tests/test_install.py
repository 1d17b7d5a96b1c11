"""`rstack dev link-skills` / `init-home`: idempotent links that never clobber the user's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rstack import install, paths


def make_checkout(root: Path, *skills: str) -> Path:
    """A minimal RStack-shaped checkout: lib/rstack/ and skills/<name>/SKILL.md."""
    (root / "lib" / "rstack").mkdir(parents=True)
    for name in skills:
        (root / "skills" / name).mkdir(parents=True)
        (root / "skills" / name / "SKILL.md").write_text(f"---\nname: {name}\n---\n")
    (root / "skills" / "_shared").mkdir(parents=True, exist_ok=True)  # not a skill
    return root / "skills"


def actions(outcomes) -> dict[str, str]:
    """Per-skill actions; the checkout's own `rstack` link is covered in test_skills.py."""
    return {o.name: o.action for o in outcomes if o.name != install.CHECKOUT_LINK}


def test_links_every_skill_and_is_idempotent(tmp_path):
    src = make_checkout(tmp_path / "co", "research", "paper")
    dest = tmp_path / "claude-skills"
    assert actions(install.link_skills(dest, src)) == {"paper": "linked", "research": "linked"}
    assert (dest / "research").resolve() == (src / "research").resolve()
    assert not (dest / "_shared").exists()
    assert actions(install.link_skills(dest, src)) == {"paper": "unchanged", "research": "unchanged"}


def test_zero_skills(tmp_path):
    assert actions(install.link_skills(tmp_path / "dest", tmp_path / "no-skills-here")) == {}


def test_never_clobbers_user_directory_file_or_foreign_link(tmp_path):
    src = make_checkout(tmp_path / "co", "research", "paper", "lit")
    dest = tmp_path / "dest"
    (dest / "research").mkdir(parents=True)
    (dest / "research" / "mine.md").write_text("keep me")
    (dest / "paper").write_text("a file")
    elsewhere = tmp_path / "elsewhere" / "lit"
    elsewhere.mkdir(parents=True)
    (dest / "lit").symlink_to(elsewhere)
    outcomes = {o.name: o for o in install.link_skills(dest, src)}
    assert actions(outcomes.values()) == {
        "research": "skipped", "paper": "skipped", "lit": "skipped"}
    assert outcomes["research"].reason == (
        f"{dest / 'research'} is a directory that is not an RStack link; left as is "
        "(move it aside and re-run ./setup to link the RStack skill)")
    assert outcomes["paper"].reason.startswith(f"{dest / 'paper'} is a file that is not")
    assert outcomes["lit"].reason == f"{dest / 'lit'} is a link to {elsewhere}, not an RStack " \
                                     "skill; left as is"
    assert (dest / "research" / "mine.md").read_text() == "keep me"
    assert (dest / "paper").read_text() == "a file"
    assert Path(dest / "lit").resolve() == elsewhere.resolve()


def test_updates_links_to_another_checkout_and_prunes_stale_ones(tmp_path):
    old = make_checkout(tmp_path / "old", "research")
    new = make_checkout(tmp_path / "new", "research", "gone")
    dest = tmp_path / "dest"
    install.link_skills(dest, old)
    outcomes = {o.name: o for o in install.link_skills(dest, new)}
    assert outcomes["research"].action == "updated"
    assert (dest / "research").resolve() == (new / "research").resolve()
    # A skill removed from the checkout: its dangling link goes, nothing else does.
    (new / "gone" / "SKILL.md").unlink()
    (new / "gone").rmdir()
    assert actions(install.link_skills(dest, new)) == {"research": "unchanged", "gone": "removed"}
    assert not (dest / "gone").is_symlink()


def test_dangling_link_from_a_deleted_checkout_is_replaced(tmp_path):
    src = make_checkout(tmp_path / "co", "research")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "research").symlink_to(tmp_path / "deleted" / "skills" / "research")
    assert actions(install.link_skills(dest, src)) == {"research": "updated"}


def test_checkout_inside_the_skills_dir(tmp_path):
    # The repo cloned as ~/.claude/skills/rstack: links sit beside it, pointing into it.
    dest = tmp_path / "claude-skills"
    src = make_checkout(dest / "rstack", "research")
    outcomes = install.link_skills(dest, src)
    assert {o.name: o.action for o in outcomes} == {"research": "linked", "rstack": "unchanged"}
    assert (dest / "research").resolve() == (src / "research").resolve()
    assert (dest / "rstack" / "lib").is_dir() and not (dest / "rstack").is_symlink()  # the checkout itself is untouched
    assert actions(install.link_skills(dest, src)) == {"research": "unchanged"}


def test_link_skills_command_uses_claude_skills_dir(cli, isolated_home):
    result = cli("dev", "link-skills", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {"skills"}
    assert {row["name"] for row in data["skills"]} >= {"rstack"}
    for row in data["skills"]:
        assert Path(row["dest"]).parent == paths.claude_skills_dir()
        assert row["action"] == "linked"
    assert all(row["action"] == "unchanged"
               for row in json.loads(cli("dev", "link-skills", "--json").stdout)["skills"])


def test_link_skills_into_an_unusable_dir(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("dev", "link-skills", "--skills-dir", blocker / "skills")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot create the skills directory "
                                    f"{blocker / 'skills'}: ")
    assert "fix: set CLAUDE_SKILLS_DIR to a writable directory, or run ./setup --no-link" \
        in result.output


def test_init_home_writes_config_and_marker_once(cli, isolated_home):
    result = cli("dev", "init-home")
    assert result.exit_code == 0
    assert result.output == (f"wrote {paths.config_path()}\nwrote {paths.install_marker()}\n")
    marker = json.loads(paths.install_marker().read_text())
    assert marker == {"version": "0.1.0", "checkout": str(paths.checkout_root())}
    config_text = paths.config_path().read_text()
    again = cli("dev", "init-home")
    assert again.output == f"kept {paths.config_path()}\n"
    assert paths.config_path().read_text() == config_text


def test_init_home_refuses_a_broken_config(cli, isolated_home):
    paths.config_path().parent.mkdir(parents=True)
    paths.config_path().write_text("a: b: c\n")
    result = cli("dev", "init-home")
    assert result.exit_code == 1
    assert "malformed YAML (mapping values are not allowed here)" in result.output
    assert paths.config_path().read_text() == "a: b: c\n"


@pytest.mark.parametrize("name", ["research", "paper"])
def test_skill_dirs_exclude_shared(tmp_path, name):
    from rstack import skills

    src = make_checkout(tmp_path / "co", name)
    assert [p.name for p in skills.skill_dirs(src)] == [name]


# -- other agents' skills folders (`--host`) ----------------------------------------------------

@pytest.mark.parametrize("host,relative", [("codex", ".codex/skills"), ("gemini", ".gemini/skills"),
                                           ("agents", ".agents/skills")])
def test_link_skills_for_another_host(cli, isolated_home, host, relative):
    result = cli("dev", "link-skills", "--host", host, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["skills"]
    assert {Path(row["dest"]).parent for row in rows} == {isolated_home / relative}
    assert (isolated_home / relative / "rstack" / "bin" / "rstack").is_file()
    assert (isolated_home / relative / "research" / "SKILL.md").is_file()
    assert not (isolated_home / ".claude" / "skills").exists()


def test_host_folder_override_and_unknown_host(cli, isolated_home, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEX_SKILLS_DIR", str(tmp_path / "codex-here"))
    assert paths.host_skills_dir("codex") == tmp_path / "codex-here"
    bad = cli("dev", "link-skills", "--host", "vim")
    assert bad.exit_code == 2
    assert "Invalid value for '--host': 'vim' is not one of 'agents', 'claude', 'codex', 'gemini'." \
        in bad.output


def test_setup_accepts_exactly_the_known_hosts():
    text = (Path(__file__).resolve().parents[1] / "setup").read_text()
    [case] = [line for line in text.splitlines() if line.strip().endswith(") ;;")
              and "claude|" in line]
    assert case.strip().split(")")[0].split("|") == list(paths.HOST_SKILLS_DIRS)


def test_agents_md_points_to_claude_md_without_copying_it():
    root = Path(__file__).resolve().parents[1]
    agents = (root / "AGENTS.md").read_text()
    assert "[CLAUDE.md](CLAUDE.md)" in agents
    rules = (root / "CLAUDE.md").read_text().split("## Rules", 1)[1].split("\n## ", 1)[0]
    copied = [line for line in rules.splitlines() if len(line) > 40 and line in agents]
    assert copied == []


# -- starter files (`rstack plan init`) ----------------------------------------------------------

def test_plan_init_writes_the_templates_once(cli, project):
    first = cli("plan", "init")
    assert first.exit_code == 0
    assert first.output == f"wrote {project / 'experiment-plan.md'}\nwrote {project / 'train.py'}\n"
    assert (project / "train.py").read_text() == (paths.templates_dir() / "train_template.py").read_text()
    (project / "train.py").write_text("# mine\n")
    again = json.loads(cli("plan", "init", "--json").output)
    assert [f["written"] for f in again["files"]] == [False, False]
    assert (project / "train.py").read_text() == "# mine\n"
