"""`rstack dev ...`: commands for people working on RStack itself (skills generation, linking)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import json_option


@click.group("dev")
def dev_group() -> None:
    """Maintenance commands for the RStack checkout (skills, links)."""


@dev_group.command("gen-skills")
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 when a generated block is stale or a skill is invalid.")
def gen_skills_command(check: bool) -> None:
    """Copy skills/_shared/*.md into every SKILL.md between its rstack:begin/end markers.

    With --check, also validate every skill's front matter, name, description budget and length.
    """
    from .. import skills

    if check:
        problems = skills.validate_pack()
        for problem in problems:
            click.echo(problem, err=True)
        if problems:
            raise click.ClickException(f"{len(problems)} problem(s) in skills/; fix them, then "
                                       "run rstack dev gen-skills")
        click.echo(f"skills ok: {len(skills.skill_dirs())} skills, generated blocks fresh")
        return
    changes = skills.generate()
    for change in changes:
        click.echo(f"updated {change.path} ({', '.join(change.blocks)})")
    click.echo(f"{len(changes)} skill(s) updated, {len(skills.skill_dirs()) - len(changes)} already fresh")


@dev_group.command("gen-docs")
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 when docs/cli.md or README's pipeline table is stale.")
def gen_docs_command(check: bool) -> None:
    """Regenerate docs/cli.md (every command's --help) and README's pipeline table."""
    from .. import docsgen

    changes = docsgen.generate(check=check)
    for change in changes:
        click.echo(f"{'stale' if check else 'updated'} {change.path} ({change.what})",
                   err=check)
    if check and changes:
        raise click.ClickException("generated docs are stale; fix: run rstack dev gen-docs")
    click.echo("docs ok: generated docs fresh" if not changes else f"{len(changes)} file(s) updated")


@dev_group.command("link-skills")
@click.option("--skills-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to link (default: $CLAUDE_SKILLS_DIR, else ~/.claude/skills).")
@json_option
def link_skills_command(skills_dir: Path | None, as_json: bool) -> None:
    """Symlink every skills/<name>/ into Claude Code's skills directory.

    Never replaces a directory or file that is not an RStack link: it says so and goes on.
    """
    from .. import install

    outcomes = install.link_skills(skills_dir)
    if as_json:
        click.echo(json.dumps({"skills": [o.as_json() for o in outcomes]}, indent=2))
        return
    if not outcomes:
        click.echo("no skills to link")
    for o in outcomes:
        click.echo(f"{o.action:<9} {o.name}" + (f": {o.reason}" if o.reason else f" -> {o.dest}"))


@dev_group.command("init-home")
@json_option
def init_home_command(as_json: bool) -> None:
    """Create $RSTACK_HOME with a commented config.yaml and the install marker."""
    from .. import install

    outcome = install.init_home()
    if as_json:
        click.echo(json.dumps(outcome.as_json(), indent=2))
        return
    click.echo(("wrote " if outcome.config_written else "kept ") + str(outcome.config_path))
    if outcome.marker_written:
        click.echo(f"wrote {outcome.marker_path}")
