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

    Per arm and metric: n, mean, sample std, 95% Student-t interval. Against the baseline arm,
    per metric: the difference in means with its 95% interval (paired t by seed, else Welch),
    a bootstrap interval, Holm-adjusted p and a verdict in the plan's declared direction (better,
    worse, no detectable difference, min_effect verdicts; "direction not declared" when the plan
    gives none). Fewer than 3 seeds is flagged and never a difference. Exit 1: no ok runs, the
    baseline arm has none, or the plan is missing/invalid.
    """
    from ..analysis import run_analysis

    result = run_analysis(project, plan_path, out_dir)
    if as_json:
        click.echo(json.dumps({"out_dir": str(result.out_dir), "summary": result.summary},
                              indent=2, ensure_ascii=False))
        return
    from ..analysis.report import short_report

    click.echo(short_report(result.summary, result.out_dir))
