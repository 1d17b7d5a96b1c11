"""`rstack lit search|resolve|bib|verify|import|nearest|coverage|cache`: literature from Semantic
Scholar, arXiv, OpenAlex and Crossref.

Thin commands over rstack.literature; requests and numpy load only inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..literature.papers import SOURCES
from .options import json_option, project_option

offline_option = click.option(
    "--offline", is_flag=True,
    help="Answer only from the response cache (.rstack/cache/lit/); never touch the network.")


def _short(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_outcome(outcome, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(outcome.as_json(), indent=2, ensure_ascii=False))
        return
    if outcome.found:
        click.echo(f"{'':1} {'KEY':<28} {'YEAR':<4}  {'TITLE':<56} {'VENUE':<18} {'CITES':>6}  SOURCES")
    for item in outcome.found:
        p = item.paper
        cites = "" if p.citation_count is None else str(p.citation_count)
        click.echo(f"{'+' if item.new else ' '} {_short(p.key, 28):<28} {p.year or '----':<4}  "
                   f"{_short(p.title, 56):<56} {_short(p.venue, 18):<18} {cites:>6}  "
                   f"{','.join(p.sources)}")
    known = len(outcome.found) - outcome.recorded
    click.echo(f"recorded {outcome.recorded} new paper(s) in {outcome.ledger_path} "
               f"({known} already there; + marks new)")
    for line in outcome.skipped + outcome.warnings:
        click.echo(f"warning: {line}", err=True)
    for item in outcome.found:
        if item.paper.retracted:
            click.echo(f"retracted: {item.paper.key} ({item.paper.retraction}); cite it only to "
                       "discuss the retraction", err=True)
    for error in outcome.errors:
        click.echo(error.render(), err=True)


@click.group("lit")
def lit_group() -> None:
    """Search Semantic Scholar, arXiv, OpenAlex and Crossref, keep papers in the lit-review ledger,
    write and verify BibTeX, check that the review covers the idea. A paper may cite only what an
    API returned and the ledger recorded."""


@lit_group.command("search")
@click.argument("query")
@click.option("--source", type=click.Choice(SOURCES + ("all",)), default="all",
              show_default=True,
              help="Which API to ask; all = every source in config lit_sources.")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Results asked of each source (more than one page is paged).")
@click.option("--year", metavar="RANGE", help="Publication years: 2019-2024, 2019-, -2024, 2019.")
@offline_option
@json_option
@project_option
def search_command(query, source, limit, year, offline, as_json, project) -> None:
    """Search for QUERY, merge and dedupe the results, record new papers (exit 1 if every source
    failed; a source that fails is skipped and named, and the others' papers are still recorded).
    S2, OpenAlex and Crossref get the plain words; arXiv field syntax (ti:, au:, AND) is used
    only with --source arxiv."""
    from ..literature.search import parse_years, search_literature

    try:
        parse_years(year)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--year") from None
    outcome = search_literature(project, query, source=source, limit=limit, year=year,
                                offline=offline)
    _print_outcome(outcome, as_json)


@lit_group.command("resolve")
@click.argument("identifier", metavar="ID")
@offline_option
@json_option
@project_option
def resolve_command(identifier, offline, as_json, project) -> None:
    """Fetch one paper by ID (S2 id, DOI:..., ARXIV:..., CorpusId:N or a bare arXiv id) and
    record it unless the ledger already has it."""
    from ..literature.search import parse_identifier, resolve_paper

    try:
        parse_identifier(identifier)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None
    _print_outcome(resolve_paper(project, identifier, offline=offline), as_json)


@lit_group.command("bib")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: standard output).")
@click.option("--keys", metavar="K1,K2", help="Only these ledger keys, in this order.")
@click.option("--cited", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="PAPER.TEX", help="Only the keys PAPER.TEX cites (\\input files included).")
@project_option
def bib_command(out, keys, cited, project) -> None:
    """BibTeX for ledger papers (all of them, --keys, or those --cited by a .tex); exit 1 and
    write nothing when a key is not in the ledger."""
    from ..literature.bib import build_bib, write_bib
    from ..literature.verify import collect_citations

    if keys and cited:
        raise click.UsageError("give at most one of --keys and --cited")
    wanted = None
    if keys is not None:
        wanted = [k.strip() for k in keys.split(",") if k.strip()]
    elif cited is not None:
        wanted = sorted(collect_citations(cited)[0])
    result = build_bib(project, keys=wanted)
    if out is None:
        click.echo(result.text, nl=False)
        return
    write_bib(result, out)
    click.echo(f"wrote {len(result.keys)} entr{'y' if len(result.keys) == 1 else 'ies'} to {out}")


@lit_group.command("verify")
@click.argument("tex", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bib", "bib", type=click.Path(dir_okay=False, path_type=Path),
              help="The .bib file (default: the tex's \\bibliography, else paper.bib).")
@click.option("--resolve", is_flag=True,
              help="First look up bib entries the ledger lacks (DOI, arXiv id, then title + first "
                   "author) and record the unique confident matches; report each entry as "
                   "verified, corrected (with the diff) or unverifiable.")
@offline_option
@json_option
@project_option
def verify_command(tex, bib, resolve, offline, as_json, project) -> None:
    """Check that every \\cite key of TEX (default paper.tex) has a bib entry, and every bib entry
    matches an API-sourced ledger paper on title, year and first author, and cites no retracted
    paper; exit 1 on any problem."""
    from ..literature.bibresolve import render_verify, resolve_for_tex
    from ..literature.verify import verify_citations

    # Paths given on the command line are the shell's (cwd-relative); the default is the project's.
    tex_path = tex.resolve() if tex else project / "paper.tex"
    bib_path = bib.resolve() if bib else None
    resolved = resolve_for_tex(project, tex_path, bib_path, offline=offline) if resolve else []
    report = verify_citations(project, tex_path, bib_path)
    if as_json:
        data = report.as_json()
        if resolve:
            data["resolve"] = [r.as_json() for r in resolved]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(render_verify(report, resolved))
    if not report.ok:
        sys.exit(1)


@lit_group.command("import")
@click.argument("bib", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@offline_option
@json_option
@project_option
def import_command(bib, offline, as_json, project) -> None:
    """Record the papers of BIB in the lit-review ledger: each entry is looked up by DOI, arXiv
    id, then title + first author, and reported as verified, corrected (the bib disagrees with
    the API: the diff) or unverifiable (what was tried); exit 1 if any entry is unverifiable."""
    from ..literature.bibresolve import resolve_bib

    report = resolve_bib(project, bib.resolve(), offline=offline)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(report.render())
    if not report.ok:
        sys.exit(1)


@lit_group.command("nearest")
@click.argument("text")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many papers.")
@json_option
@project_option
def nearest_command(text, k, as_json, project) -> None:
    """Ledger papers ranked by TF-IDF cosine similarity of title + abstract to TEXT."""
    from ..literature.nearest import nearest_papers

    found = nearest_papers(project, text, k)
    if as_json:
        click.echo(json.dumps({"text": text, "k": k, "papers": [n.as_json() for n in found]},
                              indent=2, ensure_ascii=False))
        return
    for n in found:
        click.echo(f"{n.score:.3f}  {_short(n.paper.key, 28):<28} {n.paper.year or '----'}  "
                   f"{_short(n.paper.title, 70)}")
    if not found:
        click.echo("no ledger paper shares a term with the text (rstack lit search first)")


@lit_group.command("coverage")
@click.argument("idea", required=False, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@project_option
def coverage_command(idea, as_json, project) -> None:
    """Rank ledger papers by TF-IDF similarity to IDEA (default idea.md) and judge the review: the
    [@key]s of lit-review.md (or, before it exists, the whole ledger) scoring at least
    lit_coverage_min_score are on-topic; fewer than lit_coverage_min_papers is THIN (exit 1), as
    is a [@key] not in the ledger or an author-year citation typed from memory in IDEA. Off-topic
    keys are listed."""
    from ..literature.coverage import coverage

    report = coverage(project, idea.resolve() if idea else None)
    click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False) if as_json
               else report.render())
    if not report.ok:
        sys.exit(1)


@lit_group.group("cache")
def cache_group() -> None:
    """The response cache of the literature APIs (.rstack/cache/lit/)."""


@cache_group.command("stats")
@json_option
@project_option
def cache_stats_command(as_json, project) -> None:
    """How many responses are cached, their size and age, per source."""
    from ..literature.cache import cache_stats

    stats = cache_stats(project)
    click.echo(json.dumps(stats.as_json(), indent=2) if as_json else stats.render())


@cache_group.command("clear")
@project_option
def cache_clear_command(project) -> None:
    """Delete every cached response (the next search asks the APIs again; --offline then finds
    nothing). The ledger is untouched."""
    from ..literature.cache import clear_cache

    removed, size = clear_cache(project)
    click.echo(f"removed {removed} cached response(s), {size / 1e6:.2f} MB")
