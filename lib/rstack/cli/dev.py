"""`rstack dev ...`: commands for people working on RStack itself (skills generation, linking)."""

from __future__ import annotations

import click


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
