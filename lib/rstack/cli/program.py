"""`rstack program init|check|baseline|trial|status|log|plot`: the noise-aware improvement loop.

Exit codes: 0 for any completed verdict (KEEP, DISCARD, INCONCLUSIVE, FAILED), 1 for a refusal
(a guard, an invalid program.md), 2 for usage.
"""

from __future__ import annotations

import json

import click

from .options import json_option, project_option
from .run import _seeds as _seed_list  # one parser of `--seeds 0,1,2`


def _echo_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, allow_nan=False))


@click.group("program")
def program_group() -> None:
    """The improvement loop: trials of HEAD against a champion, KEEP only beyond the noise."""


@program_group.command("init")
@click.option("--name", default="program", show_default=True, help="Program name.")
@click.option("--metric", default="val_loss", show_default=True, help="The objective metric.")
@click.option("--direction", type=click.Choice(["minimize", "maximize"]), default="minimize",
              show_default=True)
@click.option("--min-effect", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="KEEP only when the improvement's lower bound exceeds this.")
@click.option("--script", default="train.py", show_default=True)
@click.option("--editable", multiple=True, help="Editable file (repeatable; default: the script).")
@click.option("--seeds", callback=_seed_list, default="0,1,2", show_default=True)
@click.option("--confirm-seeds", callback=_seed_list, default="100,101,102", show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=300.0,
              show_default=True)
@click.option("--profile", type=click.Choice(["local", "ssh", "vastai", "modal"]),
              default="local", show_default=True)
@click.option("--max-trials", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--max-cost", "max_cost_usd", type=click.FloatRange(min=0), default=10.0,
              show_default=True)
@click.option("--max-hours", type=click.FloatRange(min=0, min_open=True), default=8.0,
              show_default=True)
@click.option("--baseline", default="HEAD", show_default=True, help="Git ref of the first champion.")
@click.option("--force", is_flag=True, help="Replace an existing program.md.")
@project_option
def init_command(name, metric, direction, min_effect, script, editable, seeds, confirm_seeds,
                 timeout_s, profile, max_trials, max_cost_usd, max_hours, baseline, force,
                 project) -> None:
    """Write a commented program.md at the project root (validated; never overwritten)."""
    from ..program.spec import init_program

    path = init_program(project, force=force, name=name, metric=metric, direction=direction,
                        min_effect=min_effect, script=script, editable=list(editable) or [script],
                        seeds=seeds, confirm=confirm_seeds, timeout_s=timeout_s, profile=profile,
                        max_trials=max_trials, max_cost_usd=max_cost_usd, max_hours=max_hours,
                        baseline=baseline)
    click.echo(f"wrote {path.name}; edit its prose, then: rstack program check")


@program_group.command("check")
@json_option
@project_option
def check_command(as_json, project) -> None:
    """Validate program.md. Exit 1 listing every problem with its line."""
    from ..program.spec import load_program

    program = load_program(project)
    if as_json:
        _echo_json({"ok": True, **program.as_json()})
        return
    for warning in program.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"ok: {program.path.name} ({program.name}: {program.metric} {program.direction}, "
               f"min_effect {program.min_effect:g}, {len(program.seeds)} trial + "
               f"{len(program.confirm_seeds)} confirm seeds)")


def _print_trial(result, as_json: bool) -> None:
    data = result.as_json()
    if as_json:
        _echo_json(data)
        return
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    from ..program.report import _num

    if data["verdict"] == "BASELINE":
        r = result.record
        click.echo(f"baseline = champion #0 ({r['commit'][:10]}): {r['metric']} {_num(r['mean'])} "
                   f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}] over seeds, n={r['n']}")
        click.echo(f"noise: seed sd {_num(r.get('noise_sd'), 3)}; smallest detectable effect "
                   f"~{_num(r.get('detectable'), 3)} (min_effect {r['min_effect']:g})")
        return
    click.echo(f"trial {data['trial']}: {data['verdict']}")
    for stage in data["stages"]:
        click.echo(f"  {stage['name']} seeds {stage['seeds']}: {data['metric']} "
                   f"{_num(stage['mean'])} vs champion {_num(stage['champion_mean'])}; diff "
                   f"{_num(stage['diff'])} [{_num(stage['ci_low'])}, {_num(stage['ci_high'])}], "
                   f"improvement {_num(stage['improvement'])} [{_num(stage['improvement_low'])}, "
                   f"{_num(stage['improvement_high'])}] vs min_effect {data['min_effect']:g}: "
                   f"{stage['verdict']}")
    if data["reason"]:
        click.echo(f"  runs failed: {data['reason']}")
    if data["verdict"] == "KEEP":
        click.echo(f"  champion #{data['champion_before']} -> #{data['champion_after']} "
                   f"(refs/rstack/champion = {data['commit'][:10]})")
    elif data["reset_done"]:
        click.echo(f"  back to the champion: {data['reset_command']}")
    elif data["reset_command"]:
        click.echo(f"  return to the champion: {data['reset_command']}")


jobs_option = click.option("--jobs", type=click.IntRange(min=1),
                           help="Runs at once (default local: cores; remote: all).")


@program_group.command("baseline")
@click.option("--ref", help="Git ref to run (default: program.md's baseline, else HEAD).")
@jobs_option
@json_option
@project_option
def baseline_command(ref, jobs, as_json, project) -> None:
    """Run the baseline on the trial seeds and make it champion #0; report the seed noise."""
    from ..procwatch import terminate_as_interrupt
    from ..program.trial import run_baseline

    with terminate_as_interrupt():
        result = run_baseline(project, ref=ref, jobs=jobs)
    _print_trial(result, as_json)


@program_group.command("trial")
@click.option("-m", "--message", "hypothesis", help="The one-line hypothesis this change tests.")
@click.option("--reset", is_flag=True,
              help="On DISCARD/INCONCLUSIVE/FAILED, return the tree to the champion.")
@jobs_option
@json_option
@project_option
def trial_command(hypothesis, reset, jobs, as_json, project) -> None:
    """Run HEAD (committed) against the champion on the trial seeds, then the confirm seeds.

    KEEP when the improvement's lower bound exceeds min_effect on both; DISCARD when its upper
    bound is below; else INCONCLUSIVE. Exit 0 with any verdict; 1 when a guard refuses (scope,
    duplicate, preflight, budget, uncommitted tree).
    """
    from ..procwatch import terminate_as_interrupt
    from ..program.trial import run_trial

    with terminate_as_interrupt():
        result = run_trial(project, hypothesis=hypothesis, reset=reset, jobs=jobs)
    _print_trial(result, as_json)


@program_group.command("status")
@json_option
@project_option
def status_command(as_json, project) -> None:
    """Champion with its interval, trials kept/discarded, budget left, noise estimate."""
    from ..program.report import status, status_lines

    data = status(project)
    if as_json:
        _echo_json(data)
    else:
        click.echo("\n".join(status_lines(data)))


@program_group.command("log")
@json_option
@project_option
def log_command(as_json, project) -> None:
    """One line per trial: id, verdict, diff [ci], cost, commit, hypothesis."""
    from ..program.report import log_lines, log_rows

    rows = log_rows(project)
    if as_json:
        _echo_json({"trials": rows})
    else:
        click.echo("\n".join(log_lines(rows)) if rows else "no trials yet")


@program_group.command("plot")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Directory (default: analysis/).")
@json_option
@project_option
def plot_command(out_dir, as_json, project) -> None:
    """The progress figure (PNG and PDF): each trial's mean with its interval, the champion line."""
    from ..program.report import plot

    paths = plot(project, out_dir)
    if as_json:
        _echo_json({"files": [str(p) for p in paths]})
    else:
        click.echo("\n".join(str(p) for p in paths))
