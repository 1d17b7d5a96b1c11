"""`rstack status`: the project's pipeline state and the recommended next step."""

from __future__ import annotations

import json

import click

from .options import json_option, project_option


@click.command("status")
@project_option
@json_option
@click.option("--preamble", is_flag=True,
              help="Print the KEY: value lines the skills' preamble reads (PROJECT_ROOT, SLUG, "
                   "COMPUTE, VENUE, PROACTIVE, NEEDS_SETUP, STATE_*, NEXT).")
def status_command(project, as_json: bool, preamble: bool) -> None:
    """Which pipeline artifacts exist and are valid, and what to do next.

    Stages: setup, idea, lit_review, novelty, plan, preflight, runs, analysis, paper, audit, bundle;
    each ok | missing | invalid | partial | stale | failed | unknown. Always exits 0 when it can read
    the project (a missing artifact is a state, not an error).
    """
    from .. import config
    from ..slug import project_slug
    from ..status import compute_summary, preamble_lines, project_status, render

    status = project_status(project)
    if preamble:
        lines = preamble_lines(status, slug=project_slug(None, project), compute=compute_summary(),
                               venue=config.get("venue"), proactive=config.get("proactive"))
        click.echo("\n".join(lines))
    elif as_json:
        click.echo(json.dumps(status.as_json(), indent=2))
    else:
        click.echo(render(status))
