"""`rstack plan check|compile`: validate experiment-plan.md and show the runs it compiles to."""

from __future__ import annotations

import json

import click

from .options import json_option, project_option

plan_argument = click.argument("plan_path", metavar="[PLAN]", required=False)


def _load(project, plan_path):
    from ..plan import check_plan_files, default_plan_path, load_plan, PlanError

    plan = load_plan(plan_path or default_plan_path(project))
    problems = check_plan_files(plan, project)
    if problems:
        raise PlanError("\n".join(problems), hint="fix the file(s) named above, then: rstack plan "
                        "check")
    return plan


@click.group("plan")
def plan_group() -> None:
    """Validate the experiment plan and compile it into runs (arm x seed)."""


@plan_group.command("check")
@plan_argument
@json_option
@project_option
def check_command(plan_path, as_json, project) -> None:
    """Validate PLAN (default: experiment-plan.md in the project). Exit 1 listing every problem."""
    plan = _load(project, plan_path)
    if as_json:
        click.echo(json.dumps({"ok": True, "path": str(plan.path), "sha256": plan.sha256,
                               "arms": list(plan.arms), "seeds": plan.seeds,
                               "metrics": {n: m.as_json() for n, m in plan.metrics.items()},
                               "pairing": plan.evaluation.pairing,
                               "warnings": list(plan.warnings)}))
        return
    for warning in plan.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"ok: {plan.path.name} ({len(plan.arms)} arm(s) x {len(plan.seeds)} seed(s), "
               f"profile {plan.profile}, sha256 {plan.sha256[:12]})")


@plan_group.command("compile")
@plan_argument
@json_option
@project_option
def compile_command(plan_path, as_json, project) -> None:
    """Print the run matrix: arm x seed -> command, output dir, profile, timeout, cost estimate.

    Exits 1 when spent + the total estimate would exceed the cost cap.
    """
    from ..guards import check_cost_cap
    from ..plan import compile_plan

    matrix = compile_plan(_load(project, plan_path), root=project)
    if as_json:
        click.echo(json.dumps(matrix.as_json(), indent=2))
    else:
        for run in matrix.runs:
            click.echo(f"{run.arm:<14} seed {run.seed:<4} {run.profile:<6} timeout {run.timeout_s:g}s "
                       f"${run.cost_estimate_usd:.2f}  -> {run.output_dir}")
            click.echo(f"    {' '.join(run.command)}")
        click.echo(f"{len(matrix.runs)} run(s); estimate ${matrix.total_usd:.2f}, spent "
                   f"${matrix.spent_usd:.2f}, cap ${matrix.cap_usd:.2f}")
    check_cost_cap(matrix.spent_usd, matrix.total_usd, matrix.cap_usd)
