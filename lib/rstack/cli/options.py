"""Options shared by many commands, defined once so their names and help never drift."""

from __future__ import annotations

import math
from pathlib import Path

import click

from .. import paths


def _resolve_project(ctx: click.Context, param: click.Parameter, value: str | None) -> Path:
    if value:
        # An explicit --project must exist: a typo would otherwise create a fresh .rstack/ tree
        # (and `status` would report an empty project with exit 0).
        given = Path(value).expanduser()
        if not given.exists():
            raise click.BadParameter(f"{value} does not exist (create it first: mkdir -p {value})")
        if not given.is_dir():
            raise click.BadParameter(f"{value} is not a directory")
    return paths.project_root(value)


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and ±inf (a usage error, exit 2): `nan` passes
    every comparison with a bound, so a bare FloatRange lets it through."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


project_option = click.option(
    "--project", "project", metavar="DIR", callback=_resolve_project,
    help="Project root (default: $RSTACK_PROJECT, else the git top level, else the cwd).",
)

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object (stable shape, documented in docs/).")
