"""`rstack compute-detect`: what this machine offers and which run profile to use."""

from __future__ import annotations

import json

import click

from .options import json_option, project_option


@click.command("compute-detect")
@json_option
@project_option
def compute_detect_command(as_json: bool, project) -> None:
    """Probe CPU, RAM, disk, GPUs, frameworks, Modal/Vast.ai auth, SSH hosts and LaTeX engines.

    Every probe has a timeout and they run at once: the answer comes in under 2 s.
    """
    from .. import compute

    report = compute.detect(project)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in compute.format_report(report):
        click.echo(line)
