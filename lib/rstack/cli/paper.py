"""`rstack paper new|build|audit` and `rstack venue list|fetch`: the paper from the shell."""

from __future__ import annotations

import json

import click

from ..paper.venues import VENUES
from ..tex import LATEX_ENGINES
from .options import json_option, project_option

VENUE_CHOICE = click.Choice(VENUES)


@click.group("paper")
def paper_group() -> None:
    """Write, compile and audit the venue-formatted paper (paper.tex + paper.bib)."""


@paper_group.command("new")
@click.option("--venue", type=VENUE_CHOICE, default=None,
              help="Venue template (default: the plan's publication.venue, else the `venue` "
                   "config key).")
@click.option("--title", default=None, help="Paper title.")
@click.option("--force", is_flag=True, help="Replace an existing paper.tex (paper.bib is kept).")
@json_option
@project_option
def new_command(venue, title, force, as_json, project) -> None:
    """Write paper.tex from templates/latex/VENUE, the venue's .sty and paper.bib."""
    from ..paper.new import new_paper

    result = new_paper(project, venue, title=title, force=force)
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    click.echo(f"wrote {', '.join(result.written)} ({result.venue})"
               + (f"; kept {', '.join(result.kept)}" if result.kept else ""))
    for note in result.notes:
        click.echo(f"note: {note}")


@paper_group.command("build")
@click.option("--engine", type=click.Choice(("auto", *LATEX_ENGINES)),
              default=None, help="Override the `latex_engine` config key for this build.")
@json_option
@project_option
def build_command(engine, as_json, project) -> None:
    """Compile paper.tex to paper.pdf; print diagnostics and the page count vs the venue limit.

    Exit 1 when the compile fails (no PDF, or LaTeX errors). Undefined citations/references and
    an over-long paper are reported here and refused by `rstack paper audit`.
    """
    from ..paper.build import build_paper

    result = build_paper(project, engine=engine)
    if as_json:
        click.echo(json.dumps(result.as_json()))
    else:
        for diag in result.log.errors + result.log.warnings:
            click.echo(str(diag))
        if result.log.overfull_boxes:
            click.echo(f"{result.log.overfull_boxes} overfull box(es) (text sticking into the "
                       "margin); see .rstack/latex/paper.log")
        click.echo(_build_summary(result))
    if not result.ok:
        raise click.exceptions.Exit(1)


def _build_summary(result) -> str:
    verdict = "ok" if result.ok else "FAILED"
    if result.pdf is None:
        return f"build {verdict} with {result.engine}: no PDF written"
    counted = result.main_pages if result.main_pages is not None else result.pages
    limit = "no limit" if result.page_limit is None else f"limit {result.page_limit}"
    return (f"build {verdict} with {result.engine}: {result.pdf}, {result.pages} page(s), "
            f"{counted} of main text ({result.venue} {limit})"
            + ("" if result.within_limit is not False else " -- OVER THE LIMIT"))


@paper_group.command("audit")
@json_option
@project_option
def audit_command(as_json, project) -> None:
    """Check citations, numbers, figures/tables, significance claims and the last build.

    Exit 1 on any error finding; this is the gate before a paper is called done.
    """
    from ..paper.audit import audit_paper

    report = audit_paper(project)
    if as_json:
        click.echo(json.dumps(report.as_json()))
    else:
        for finding in report.findings:
            click.echo(str(finding))
        checks = ", ".join(f"{name} {state}" for name, state in report.check_status().items())
        traced = sum(1 for t in report.traced if t.source == "summary")
        click.echo(f"audit {'PASS' if report.ok else 'FAIL'}: {checks}; {report.macros_used} "
                   f"macro use(s), {traced} typed number(s) traced to runs")
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.group("venue")
def venue_group() -> None:
    """Venue templates: list them, or fetch a venue's official style files."""


@venue_group.command("list")
@json_option
def venue_list_command(as_json) -> None:
    """List the venue templates with their page limits."""
    from ..paper.venues import VENUES, load_venue

    venues = [load_venue(name) for name in VENUES]
    if as_json:
        click.echo(json.dumps([{"name": v.name, "title": v.title, "page_limit": v.page_limit,
                                "official_urls": list(v.official_urls),
                                "official_fetched": v.official_dir.is_dir()} for v in venues]))
        return
    for v in venues:
        limit = "no limit" if v.page_limit is None else f"{v.page_limit} pages"
        click.echo(f"{v.name:8} {limit:9} {v.page_limit_note}")


@venue_group.command("fetch")
@click.argument("name", type=VENUE_CHOICE)
@click.option("--url", default=None, help="Download from this URL instead (e.g. another year).")
@json_option
def venue_fetch_command(name, url, as_json) -> None:
    """Download NAME's official style files into templates/latex/NAME/official/ (git-ignored)."""
    from ..paper.venues import fetch_official

    result = fetch_official(name, url=url)
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    click.echo(f"fetched {len(result.files)} file(s) from {', '.join(result.urls)} into "
               f"{result.directory}")
    click.echo("RStack's own template stays the default; to submit, copy the official files next "
               "to paper.tex and follow their example .tex for the preamble and author block.")
