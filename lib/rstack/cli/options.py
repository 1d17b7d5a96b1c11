"""Options shared by many commands, defined once so their names and help never drift."""

from __future__ import annotations

from pathlib import Path

import click

from .. import paths


def _resolve_project(ctx: click.Context, param: click.Parameter, value: str | None) -> Path:
    return paths.project_root(value)


project_option = click.option(
    "--project", "project", metavar="DIR", callback=_resolve_project,
    help="Project root (default: $RSTACK_PROJECT, else the git top level, else the cwd).",
)

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object (stable shape, documented in docs/).")
