"""`rstack compute-detect`: what this machine offers and which run profile to use."""

from __future__ import annotations

import json

import click

from .options import json_option, project_option


@click.command("compute-detect")
@click.option("--venues", is_flag=True,
              help="First compile the test document and every venue template with the LaTeX "
                   "engine (seconds, not instant); the report then says which templates compile.")
@json_option
@project_option
def compute_detect_command(venues: bool, as_json: bool, project) -> None:
    """Probe CPU, RAM, disk, GPUs, frameworks, Modal/Vast.ai auth, SSH hosts and LaTeX engines.

    Every probe has a timeout and they run at once: the answer comes in under 2 s (with --venues,
    after the compiles). latex.settled is what setup or --venues last found by compiling.
    """
    from .. import compute

    if venues:
        from .. import texsetup

        texsetup.check_and_remember_venues()
    report = compute.detect(project)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in compute.format_report(report):
        click.echo(line)
