"""`rstack analyze`: summarise the ledger's finished ok runs into analysis/."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import json_option, project_option


@click.command("analyze")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The experiment plan (default: experiment-plan.md in the project).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default: analysis/ in the project).")
@json_option
@project_option
def analyze_command(plan_path: Path | None, out_dir: Path | None, as_json: bool, project) -> None:
    """Statistics, figures, table, numbers.tex and summary.json from the ledger's ok runs.

    Per arm and metric: n, mean, sample std, 95% Student-t interval; against the baseline arm:
    delta, relative delta, Welch p. Significant = p < 0.05, non-overlapping intervals and at
    least 3 seeds per arm, in either direction; the verdict says better or worse. Fewer than 3
    seeds is flagged everywhere. Exit 1: no ok runs, the baseline
    arm has none, or the plan is missing/invalid.
    """
    from ..analysis import run_analysis

    result = run_analysis(project, plan_path, out_dir)
    if as_json:
        click.echo(json.dumps({"out_dir": str(result.out_dir), "summary": result.summary},
                              indent=2, ensure_ascii=False))
        return
    from ..analysis.report import short_report

    click.echo(short_report(result.summary, result.out_dir))
