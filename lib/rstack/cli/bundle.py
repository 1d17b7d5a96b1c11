"""`rstack bundle create|verify`: the reproducibility bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..bundle import create_bundle, verify_bundle
from .options import json_option, project_option


@click.group("bundle")
def bundle_group() -> None:
    """Pack and check a reproducibility bundle (code, plan, ledgers, results, analysis, paper)."""


@bundle_group.command("create")
@click.option("--out", "out", type=click.Path(path_type=Path),
              help="Where to write the bundle (default: bundle/ in the project; must be new).")
@json_option
@project_option
def create_command(out: Path | None, as_json: bool, project) -> None:
    """Copy everything the paper's numbers rest on into one directory with checksums.

    Needs analysis/summary.json (rstack analyze): the bundle holds the results of the runs it used.
    """
    report = create_bundle(project, out)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    stamp = report.stamp
    dirty = " (dirty: code.patch)" if stamp["dirty"] else ""
    click.echo(f"bundle: {report.out} ({report.files} files, {len(stamp['run_ids'])} runs, "
               f"commit {stamp['commit'] or 'none'}{dirty})")
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(f"check it: rstack bundle verify {report.out}")


@bundle_group.command("verify")
@click.argument("bundle_dir", metavar="DIR", type=click.Path(path_type=Path))
@json_option
def verify_command(bundle_dir: Path, as_json: bool) -> None:
    """Re-hash every file of the bundle in DIR; exit 1 naming each changed/missing/extra file."""
    report = verify_bundle(bundle_dir)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for problem in report.problems:
            click.echo(f"{problem['kind']}: {problem['message']}")
        verdict = "OK" if report.ok else f"FAIL ({len(report.problems)} problem(s))"
        click.echo(f"{bundle_dir}: {report.checked} file(s) checked: {verdict}")
    if not report.ok:
        sys.exit(1)
