"""`rstack run` (plan or ad hoc) and `rstack runs list|show`: ledgered runs on every profile."""

from __future__ import annotations

import json

import click

from .options import FiniteFloatRange, json_option, project_option

from ..runners import PROFILES
from ..runners.base import STATUSES as RUN_STATUSES

# A run with no run.finished yet lists as `running` (the read model's status, not a ledgered one).
STATUSES = (*RUN_STATUSES, "running")


def _seeds(ctx, param, value):
    if value is None:
        return None
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 0,1,2")
    if not seeds or any(not 0 <= s < 2 ** 32 for s in seeds):
        raise click.BadParameter("give at least one seed from 0 to 4294967295, e.g. 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"seeds repeat ({value}): each seed runs once, e.g. 0,1,2")
    return seeds


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--plan", "plan_path", metavar="PLAN", help="Plan file (default: experiment-plan.md).")
@click.option("--arm", "arms", multiple=True, help="Only this arm (repeatable).")
@click.option("--seeds", callback=_seeds, help="Comma-separated seeds (overrides the plan's).")
@click.option("--profile", type=click.Choice(PROFILES), help="Where to run (default: the plan's).")
@click.option("--jobs", type=click.IntRange(min=1),
              help="Runs at once (default local: cores, or one per GPU; remote: all).")
@click.option("--dry-run", is_flag=True, help="Print the runs (and the Modal app spec); start nothing.")
@click.option("--resume", is_flag=True,
              help="Re-attach to remote runs in flight; skip arm x seed already ok.")
@click.option("--name", help="Ad hoc run name (with -- python SCRIPT ARGS).")
@click.option("--timeout", "timeout_s", type=FiniteFloatRange(min=0, min_open=True),
              help="Per-run timeout in seconds (ad hoc; overrides the plan's).")
@click.option("--gpu", help="GPU for ad hoc modal/vastai runs.")
@click.option("--memory-mb", type=FiniteFloatRange(min=1),
              help="Kill a local run whose process tree passes this RSS (default: its share of 90%).")
@click.option("--keep-instance", is_flag=True, help="vastai: keep the instance after the runs.")
@json_option
@project_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run_command(plan_path, arms, seeds, profile, jobs, dry_run, resume, name, timeout_s, gpu,
                memory_mb, keep_instance, as_json, project, command) -> None:
    """Run the plan's arms x seeds (or, with --name, `-- python SCRIPT ARGS`), ledgering each run.

    Exit 0 when every run ends ok; 1 when a run fails, a guard refuses, or Ctrl-C stopped it.
    """
    from ..procwatch import terminate_as_interrupt
    from ..runs import RunRequest, RunError, prepare, start

    if command and plan_path:
        raise click.UsageError("give either --plan or an ad hoc command after --, not both")
    request = RunRequest(root=project, plan_path=plan_path and project / plan_path,
                         arms=list(arms), seeds=seeds, profile=profile, jobs=jobs, dry_run=dry_run,
                         resume=resume, name=name, command=list(command), timeout_s=timeout_s,
                         gpu=gpu, memory_mb=memory_mb, keep_instance=keep_instance)
    if dry_run:
        prepared = prepare(request)
        _print_dry_run(prepared.dry_run_json(), as_json)
        return
    # The runs live in their own sessions: SIGTERM/SIGHUP to rstack would leave them running with
    # no run.finished record, so they stop the runs the way Ctrl-C does.
    with terminate_as_interrupt():
        report = start(request)
    if as_json:
        click.echo(json.dumps({"interrupted": report.interrupted, "refusals": report.refusals,
                               "retries": report.retries, "summary": report.summary_line(),
                               "runs": [{"run_id": r.spec.run_id, "arm": r.spec.arm,
                                         "seed": r.spec.seed, "status": r.status,
                                         "category": r.category, "metrics": r.metrics}
                                        for r in report.results]}))
    else:
        click.echo(report.summary_line())
    if report.interrupted:
        raise RunError("interrupted: runs in flight were recorded killed",
                       hint="rstack run --resume runs what is left")
    if not report.ok:
        raise RunError("some runs did not end ok", hint="rstack runs list (every status: failed, timeout, oom, "
                       "diverged, killed, lost); rstack runs show RUN_ID shows the diagnosis and hint")


def _print_dry_run(data: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for run in data["runs"]:
        click.echo(f"{run['run_id']}  {' '.join(run['command'])}")
    for item in data["skipped"]:
        click.echo(f"skip (already ok): {item}")
    click.echo(f"{len(data['runs'])} run(s) on {data['profile']}; estimate "
               f"${data['total_estimate_usd']:.2f}; dry run: nothing started")
    if data.get("runner"):
        spec = dict(data["runner"])
        script = spec.pop("script", None)  # a batch script is shown as the file it will be
        click.echo("runner spec:")
        click.echo(json.dumps(spec, indent=2))
        if script:
            click.echo("batch script:")
            click.echo(script.rstrip("\n"))


@click.group("runs")
def runs_group() -> None:
    """List and inspect ledgered runs (.rstack/experiments.jsonl)."""


@runs_group.command("list")
@click.option("--arm", help="Only runs of this arm.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--plan", "plan_path", metavar="PLAN",
              help="Plan whose primary metric is shown first (default: experiment-plan.md).")
@json_option
@project_option
def list_command(arm, status, plan_path, as_json, project) -> None:
    """One line per run: id, arm, seed, status, duration, metrics.

    The plan's primary metric comes first, then the others while they fit ("+N more" says how
    many are hidden; --json has them all).
    """
    from ..runs import list_lines

    views, lines, primary = list_lines(project, arm=arm, status=status, plan_path=plan_path)
    if as_json:
        click.echo(json.dumps({"runs": views, "primary_metric": primary}))
        return
    for line in lines:
        click.echo(line)
    if not views:
        click.echo("no runs")


@runs_group.command("show")
@click.argument("run_id")
@json_option
@project_option
def show_command(run_id, as_json, project) -> None:
    """Every ledger record about RUN_ID (a unique prefix is enough)."""
    from ..runs import show_run

    data = show_run(project, run_id)
    if as_json:
        click.echo(json.dumps(data))
        return
    run = data["run"]
    click.echo(f"{run['run_id']}: {run['status']} ({run['arm']} seed {run['seed']}, {run['profile']} "
               f"on {run['host']}, attempt {run['attempt']})")
    for record in data["records"]:
        extra = {k: v for k, v in record.items() if k not in ("v", "ts", "type", "run_id")}
        click.echo(f"  {record['ts']} {record['type']}: {json.dumps(extra)[:400]}")
