"""The skill pack: front matter, limits, generated blocks, links, commands, and the preamble."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import click
import pytest

from rstack import skills
from rstack.cli import main

REPO = Path(__file__).resolve().parents[1]
SKILLS = REPO / "skills"
EXPECTED = {"research", "lit-review", "novelty-check", "experiment", "analyze", "write-paper", "setup",
            "improve"}
LAUNCHER = "~/.claude/skills/rstack/bin/rstack"
COMMAND_STARTS = {"&&", "||", ";", "|", "then", "else", "do", "(", "!"}


def all_skills():
    return skills.load_skills(SKILLS)


def test_the_eight_skills_exist_and_shared_is_not_a_skill():
    names = {p.name for p in skills.skill_dirs(SKILLS)}
    assert names == EXPECTED
    assert (SKILLS / "_shared" / "preamble.md").is_file()
    assert (SKILLS / "_shared" / "completion.md").is_file()
    assert not (SKILLS / "_shared" / "SKILL.md").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_front_matter_keys_name_and_limits(name):
    skill = skills.load_skill(SKILLS / name)
    assert set(skill.front_matter) <= skills.FRONT_MATTER_KEYS
    assert skill.front_matter["name"] == name
    assert 0 < len(skill.description) <= 1024
    assert '"' in skill.description, "the description should quote the phrases that trigger it"
    assert isinstance(skill.front_matter["allowed-tools"], list)
    assert "AskUserQuestion" in skill.front_matter["allowed-tools"]
    assert skill.body.count("\n") < 500
    assert skills.validate_skill(skill) == []


def test_descriptions_share_a_budget():
    assert sum(len(s.description) for s in all_skills()) < 2000


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_body_shape_phases_checkpoints_status(name):
    body = skills.load_skill(SKILLS / name).body
    phases = re.findall(r"^## Phase (\d+)", body, re.M)
    assert len(phases) >= 2, "numbered phases"
    assert [int(p) for p in phases] == sorted(int(p) for p in phases)
    assert "AskUserQuestion" in body and re.search(r"Options:\s+A\) .*B\) ", body, re.S)
    # Every checkpoint asks with lettered options, within its own paragraph.
    checkpoints = [para for para in re.split(r"\n\s*\n", body) if para.startswith("**Checkpoint")]
    assert checkpoints, "human checkpoints"
    for para in checkpoints:
        assert "AskUserQuestion" in para and re.search(r"Options:\s+A\) .*\bB\) ", para, re.S), para
    for status in ("DONE", "DONE_WITH_CONCERNS", "BLOCKED", "NEEDS_CONTEXT"):
        assert status in body
    # Rules are explained, not shouted.
    assert not re.search(r"\b(MUST|NEVER|ALWAYS)\b", body)


def test_every_linked_file_exists():
    checked = 0
    for skill_dir in skills.skill_dirs(SKILLS):
        for md in skill_dir.rglob("*.md"):
            for target in skills.relative_links(md.read_text()):
                assert (md.parent / target).exists(), f"{md}: link to missing {target}"
                checked += 1
    assert checked >= 5


def test_the_reference_example_plan_passes_plan_check(tmp_path):
    from rstack.plan import load_plan

    text = (SKILLS / "experiment" / "reference" / "plan-contracts.md").read_text()
    [example] = re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)
    (tmp_path / ".rstack").mkdir()
    (tmp_path / "train.py").write_text("print('stand-in')\n")
    (tmp_path / "experiment-plan.md").write_text(example)
    plan = load_plan(tmp_path / "experiment-plan.md")
    assert list(plan.arms) == ["baseline", "smoothing"] and plan.primary_metric == "ece"


def test_generated_blocks_are_fresh_and_pack_is_valid(cli):
    assert skills.validate_pack(SKILLS) == []
    result = cli("dev", "gen-skills", "--check")
    assert result.exit_code == 0, result.output
    assert f"{len(EXPECTED)} skills" in result.output


def _copy_pack(tmp_path: Path) -> Path:
    dest = tmp_path / "skills"
    shutil.copytree(SKILLS, dest)
    return dest


def test_check_fails_on_a_stale_copy_and_gen_fixes_it(tmp_path):
    pack = _copy_pack(tmp_path)
    path = pack / "analyze" / "SKILL.md"
    path.write_text(path.read_text().replace("How to read it", "How to read it (hand edit)"))
    problems = skills.validate_pack(pack)
    assert problems == [f"{path}: generated block(s) preamble are stale; run rstack dev gen-skills"]
    changes = skills.generate(pack)
    assert [(c.skill, c.blocks) for c in changes] == [("analyze", ["preamble"])]
    assert skills.validate_pack(pack) == []
    assert skills.generate(pack) == []  # idempotent


def test_source_change_propagates_to_every_skill(tmp_path):
    pack = _copy_pack(tmp_path)
    src = pack / "_shared" / "completion.md"
    src.write_text(src.read_text() + "\nOne more line.\n")
    assert len(skills.generate(pack, check=True)) == len(EXPECTED)
    skills.generate(pack)
    for skill in skills.load_skills(pack):
        assert "One more line." in skill.body


def test_preamble_fills_in_the_skill_name(tmp_path):
    pack = _copy_pack(tmp_path)
    src = pack / "_shared" / "preamble.md"
    src.write_text(src.read_text() + "\nskill={{SKILL_NAME}}\n")
    skills.generate(pack)
    assert "skill=write-paper" in (pack / "write-paper" / "SKILL.md").read_text()


def test_validation_messages_for_bad_skills(tmp_path):
    pack = _copy_pack(tmp_path)
    path = pack / "setup" / "SKILL.md"
    text = path.read_text().replace("name: setup", "name: set-up\nversion: 1", 1)
    text = re.sub(r"^description: .*$", "description: " + "x" * 1100, text, count=1, flags=re.M)
    path.write_text(text)
    problems = skills.validate_skill(skills.load_skill(pack / "setup"))
    assert f"{path}: front matter keys version are not Agent Skills keys; move them under metadata:" in problems
    assert f"{path}: name 'set-up' must equal the folder name 'setup'" in problems
    assert f"{path}: description is 1100 characters (limit 1024)" in problems
    assert any("descriptions total" in p for p in skills.validate_pack(pack))


def test_missing_markers_and_bad_yaml_are_reported(tmp_path):
    pack = _copy_pack(tmp_path)
    path = pack / "analyze" / "SKILL.md"
    path.write_text(re.sub(r"<!-- rstack:begin completion.*?<!-- rstack:end completion -->", "",
                           path.read_text(), flags=re.S))
    with pytest.raises(skills.SkillError, match="no generated completion block"):
        skills.generate(pack)
    path.write_text("---\nname: analyze\ndescription: a: b: c\n---\nbody\n")
    assert any("front matter is not valid YAML" in p for p in skills.validate_pack(pack))
    path.write_text("no front matter\n")
    assert any("must start with a `---` line" in p for p in skills.validate_pack(pack))


def test_gen_skills_check_exit_code(tmp_path, monkeypatch, cli):
    pack = _copy_pack(tmp_path)
    monkeypatch.setattr("rstack.paths.skills_src_dir", lambda: pack)
    path = pack / "lit-review" / "SKILL.md"
    path.write_text(path.read_text().replace("Completion status", "Completion  status"))
    result = cli("dev", "gen-skills", "--check")
    assert result.exit_code == 1
    assert "generated block(s) completion are stale" in result.output
    result = cli("dev", "gen-skills")
    assert result.exit_code == 0 and f"1 skill(s) updated, {len(EXPECTED) - 1} already fresh" in result.output
    assert cli("dev", "gen-skills", "--check").exit_code == 0


# -- the preamble, executed as Claude Code would -----------------------------------------------

def _preamble_block() -> str:
    blocks = skills.bash_blocks((SKILLS / "_shared" / "preamble.md").read_text())
    assert len(blocks) == 1
    return blocks[0]


def _linked_home(tmp_path: Path) -> dict:
    """A HOME where the checkout is linked as ~/.claude/skills/rstack, as ./setup leaves it."""
    home = Path(os.environ["HOME"])
    skills_dir = home / ".claude" / "skills"
    skills_dir.mkdir(parents=True, exist_ok=True)
    (skills_dir / "rstack").symlink_to(REPO)
    return dict(os.environ)


def test_preamble_runs_in_a_temp_project_and_prints_the_keys(tmp_path):
    env = _linked_home(tmp_path)
    project = tmp_path / "myproj"
    project.mkdir()
    (project / "idea.md").write_text("# Idea\nDoes warmup help?\n")
    env.pop("RSTACK_PROJECT", None)
    started = time.monotonic()
    out = subprocess.run(["bash", "-c", _preamble_block()], cwd=project, env=env,
                         capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    keys = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert keys["PROJECT_ROOT"] == str(project)
    assert keys["SLUG"] == "myproj"
    assert keys["VENUE"] == "arxiv"
    assert keys["COMPUTE"].startswith("local")
    assert keys["NEEDS_SETUP"].startswith("yes")
    assert keys["STATE_IDEA"].startswith("ok")
    assert keys["STATE_PLAN"].startswith("missing")
    assert keys["NEXT"].startswith("/setup")
    assert "RSTACK_MISSING" not in out.stdout
    assert elapsed < 3.0  # target < 1 s; generous for a loaded CI box


def test_preamble_after_setup_and_with_config(tmp_path):
    env = _linked_home(tmp_path)
    rstack_home = Path(env["RSTACK_HOME"])
    rstack_home.mkdir(parents=True, exist_ok=True)
    (rstack_home / ".install-complete").write_text("ok\n")
    env["RSTACK_VENUE"] = "neurips"
    project = tmp_path / "p2"
    project.mkdir()
    env.pop("RSTACK_PROJECT", None)
    out = subprocess.run(["bash", "-c", _preamble_block()], cwd=project, env=env,
                         capture_output=True, text=True, timeout=30)
    assert "NEEDS_SETUP" not in out.stdout
    assert "VENUE: neurips" in out.stdout
    assert "NEXT: /research" in out.stdout


def test_preamble_without_install_says_what_to_do(tmp_path):
    env = dict(os.environ)
    project = tmp_path / "p3"
    project.mkdir()
    out = subprocess.run(["bash", "-c", _preamble_block()], cwd=project, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("RSTACK_MISSING: ~/.claude/skills/rstack/bin/rstack not found")


def test_preamble_reports_a_failing_status_as_an_error(tmp_path):
    env = _linked_home(tmp_path)
    config = Path(env["RSTACK_HOME"]) / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("venue: [unclosed\n")
    project = tmp_path / "p4"
    project.mkdir()
    env.pop("RSTACK_PROJECT", None)
    out = subprocess.run(["bash", "-c", _preamble_block()], cwd=project, env=env,
                         capture_output=True, text=True, timeout=30)
    assert "malformed YAML" in out.stdout
    assert "RSTACK_ERROR: rstack status failed (exit 1)" in out.stdout
    assert "RSTACK_MISSING" not in out.stdout


# -- every rstack command a skill runs exists -------------------------------------------------

def _invocations():
    """(file, argv after `rstack`) for every launcher call in every bash block of the pack."""
    found = []
    for md in sorted(SKILLS.rglob("*.md")):
        for block in skills.bash_blocks(md.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s\d*>&\d+", " ", line)  # 2>&1 is not an argument
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                words = list(lexer)
                for i, word in enumerate(words):
                    at_command = i == 0 or words[i - 1] in COMMAND_STARTS
                    if word.endswith("/bin/rstack") and at_command:
                        assert word == LAUNCHER, f"{md}: call the launcher as {LAUNCHER}"
                        argv = []
                        for arg in words[i + 1:]:
                            if arg in ("&&", "||", ";", "|", "&", ">", "2>&1", ">>"):
                                break
                            argv.append(arg)
                        found.append((md, argv))
    return found


def _resolve(argv: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = main
    ctx = click.Context(main)
    rest = list(argv)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"`rstack {' '.join(argv)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


def _check_options(command: click.Command, args: list[str], argv: list[str]) -> None:
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    known |= {"-h", "--help"}
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-") and not re.match(r"^-\d", arg):
            assert arg.split("=", 1)[0] in known, f"`rstack {' '.join(argv)}`: unknown option {arg}"


def test_every_rstack_command_and_option_in_a_skill_exists():
    seen = set()
    for md, argv in _invocations():
        command, rest = _resolve(argv)
        assert not isinstance(command, click.Group), f"{md}: `rstack {' '.join(argv)}` names a group"
        _check_options(command, rest, argv)
        seen.add(command.name)
    # The pipeline's main commands are all exercised by some skill.
    assert {"status", "search", "nearest", "check", "compile", "preflight", "run", "list",
            "analyze", "new", "build", "audit", "bib", "create", "log"} <= seen


def test_the_checker_catches_unknown_commands_and_options():
    with pytest.raises(AssertionError, match="no command 'nosuch'"):
        _resolve(["nosuch"])
    command, rest = _resolve(["paper", "audit", "--bogus"])
    with pytest.raises(AssertionError, match="unknown option --bogus"):
        _check_options(command, rest, ["paper", "audit", "--bogus"])
    command, rest = _resolve(["preflight", "train.py", "--", "--method", "x"])
    _check_options(command, rest, ["preflight"])  # args after -- belong to the script


def test_skill_invocation_parser_sees_every_call():
    calls = _invocations()
    assert len(calls) >= 30
    assert all(argv for _, argv in calls)


# -- the launcher path skills call ------------------------------------------------------------

def test_setup_links_the_checkout_as_rstack_and_skips_shared(tmp_path):
    from rstack import install

    target = tmp_path / "claude-skills"
    outcomes = {o.name: o for o in install.link_skills(target)}
    assert set(outcomes) == EXPECTED | {"rstack"}
    assert "_shared" not in outcomes
    assert (target / "rstack").resolve() == REPO.resolve()
    assert (target / "rstack" / "bin" / "rstack").is_file()
    assert (target / "experiment" / "SKILL.md").is_file()
    again = {o.name: o.action for o in install.link_skills(target)}
    assert again["rstack"] == "unchanged"


def test_checkout_link_respects_foreign_folders_and_a_clone_in_place(tmp_path):
    from rstack import install

    target = tmp_path / "claude-skills"
    (target / "rstack").mkdir(parents=True)
    outcome = install.link_checkout(target, REPO)
    assert outcome.action == "skipped" and "is not this checkout" in outcome.reason
    assert not (target / "rstack").is_symlink()
    # Cloned into the skills folder itself: the folder is the checkout, nothing to link.
    clone = tmp_path / "home-skills" / "rstack"
    (clone / "lib" / "rstack").mkdir(parents=True)
    assert install.link_checkout(clone.parent, clone).action == "unchanged"
    assert not clone.is_symlink()
