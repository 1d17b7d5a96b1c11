"""`rstack review`: the methodology checks behind the write-paper skill's meta-review."""

from __future__ import annotations

import json

import click

from .options import json_option, project_option


@click.command("review")
@json_option
@project_option
def review_command(as_json, project) -> None:
    """Run the methodology checks and write review-findings.json.

    Each finding has a stable id, a severity and its evidence: fewer than 3 seeds, no baseline,
    arms differing in more than the studied factor, runs that failed or were left out and go
    unmentioned, failed sanity checks, unadjusted p-values, an effect below min_effect called an
    improvement, claims without a comparison, an abstract headline off the primary metric, no
    limitations section. Exit 1 while an error finding is not addressed in review.md (a line
    naming its id with `fixed` or `limitation`).
    """
    from ..review import FINDINGS_FILE, REVIEW_FILE, review_project

    report = review_project(project)
    if as_json:
        click.echo(json.dumps(report.as_json()))
    else:
        for finding in report.findings:
            mark = "addressed" if finding.id in report.addressed else finding.severity
            click.echo(f"[{mark}] {finding.id}: {finding.message}")
        errors = sum(f.severity == "error" for f in report.findings)
        click.echo(f"review {'PASS' if report.ok else 'FAIL'}: {len(report.findings)} finding(s), "
                   f"{errors} error(s), {len(report.unaddressed_errors)} not addressed in "
                   f"{REVIEW_FILE}; wrote {FINDINGS_FILE}")
        if not report.ok:
            click.echo(f"  fix: in {REVIEW_FILE}, one line per id saying how it was dealt with, "
                       f"e.g. `- {report.unaddressed_errors[0]}: fixed (what changed)` or "
                       f"`- {report.unaddressed_errors[0]}: limitation (where the paper says it)`")
    if not report.ok:
        raise click.exceptions.Exit(1)
