"""`rstack reproduce RUN_ID`: re-run a ledgered run with its command and seed; compare metrics."""

from __future__ import annotations

import json
import sys

import click

from .options import FiniteFloatRange, json_option, project_option


@click.command("reproduce")
@click.argument("run_id")
@click.option("--rtol", type=FiniteFloatRange(min=0), default=None,
              help="Relative tolerance per metric (default: config reproduce_rtol, 1e-6).")
@click.option("--keep", is_flag=True, help="Keep the re-run's output directory even on PASS.")
@click.option("--yes", is_flag=True,
              help="Run a recorded command that is not the form rstack run writes (read it first).")
@json_option
@project_option
def reproduce_command(run_id: str, rtol: float | None, keep: bool, yes: bool, as_json: bool,
                      project) -> None:
    """Re-run RUN_ID locally (same command and seed, a fresh temporary output directory) and
    compare its metrics with the ledgered ones. Exit 1 on any metric outside the tolerance,
    listing metric, expected and got. The verdict is ledgered as a `reproduce` record.
    """
    from ..reproduce import reproduce_run

    report = reproduce_run(project, run_id, rtol=rtol, keep=keep, yes=yes)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for note in report.notes:
            click.echo(f"note: {note}")
        if report.ok:
            click.echo(f"PASS: {run_id} reproduced {len(report.expected)} metric(s) within "
                       f"rtol {report.rtol:g} ({report.duration_s:.1f}s)")
        else:
            click.echo(f"FAIL: {run_id}: {report.reason}")
            for mismatch in report.mismatches:
                click.echo(f"  {mismatch.describe()}")
            for line in report.output_tail if report.exit_code != 0 else []:
                click.echo(f"  | {line}")
            click.echo(f"re-run outputs kept in {report.output_dir}")
    if not report.ok:
        sys.exit(1)
