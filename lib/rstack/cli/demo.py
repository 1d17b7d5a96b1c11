"""`rstack demo [DIR]`: the bundled example project run end to end, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import paths
from .options import json_option


@click.command("demo")
@click.argument("directory", metavar="DIR", required=False, default="rstack-demo",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel runs (default: CPU cores).")
@json_option
def demo_command(directory: Path, jobs: int | None, as_json: bool) -> None:
    """Copy the example project into DIR (default ./rstack-demo) and run it offline.

    Phases: project (copy, git init, offline literature) -> plan check -> preflight -> runs
    (local, parallel) -> analyze -> paper build -> paper audit -> bundle create. Prints one
    progress line per phase and the path of DIR/paper.pdf. Exit 1 names the phase that failed;
    DIR must not exist or be empty. Without a working LaTeX engine every other phase still runs,
    paper.tex is written, and the command exits 3 with the commands that install an engine.
    """
    from ..demo import EXIT_NO_LATEX, run_demo

    echo = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    result = run_demo(directory, jobs=jobs, echo=echo)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        if result.partial:
            sys.exit(EXIT_NO_LATEX)
        return
    launcher = paths.launcher()
    if result.partial:
        click.echo(f"partial demo in {result.seconds:.1f}s: {result.root}/paper.tex written; the paper "
                   f"build and the audit's build check were skipped: no working LaTeX engine")
        click.echo(f"fix: {result.fix}")
        click.echo(f"then: cd {result.root} && {launcher} paper build && {launcher} paper audit")
    else:
        click.echo(f"done in {result.seconds:.1f}s: {result.pdf}")
        click.echo(f"look around: cd {result.root} && {launcher} status")
    if result.partial:
        sys.exit(EXIT_NO_LATEX)
