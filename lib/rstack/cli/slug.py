"""`rstack slug`: the project slug skills use for file and branch names."""

from __future__ import annotations

import click

from ..slug import project_slug
from .options import project_option


@click.command("slug")
@click.argument("text", required=False)
@click.option("--eval", "as_eval", is_flag=True, help="Print SLUG=<slug> for eval in a shell.")
@project_option
def slug_command(text: str | None, as_eval: bool, project) -> None:
    """Print a slug from TEXT, else the git remote's repo name, else the directory name."""
    slug = project_slug(text, project)
    click.echo(f"SLUG={slug}" if as_eval else slug)
