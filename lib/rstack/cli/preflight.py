"""`rstack preflight SCRIPT`: the CPU gate every training script passes before a paid run."""

from __future__ import annotations

import json

import click

from .options import FiniteFloatRange, json_option, project_option


@click.command("preflight", context_settings={"show_default": True})
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("extra_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- EXTRA_ARGS...]")
@json_option
@click.option("--budget", "budget_s", type=FiniteFloatRange(min=0.5), default=30.0, metavar="SECONDS",
              help="Wall-clock limit of the smoke run; still running then = smoke flag ignored.")
@click.option("--stall", "stall_s", type=FiniteFloatRange(min=0.5), default=10.0, metavar="SECONDS",
              help="No output and no file activity this long = hang.")
@click.option("--memory-mb", type=click.IntRange(min=1), default=None, metavar="N",
              help="RSS cap of the whole process tree [default: min(4096, half of RAM)].")
@click.option("--seed", type=int, default=0, help="Seed passed as --seed N to both runs.")
@click.option("--no-determinism", is_flag=True, help="Skip the second (same-seed) run.")
@click.option("--arms", "all_arms", is_flag=True,
              help="Also smoke-run every arm of the plan (its args); FAIL when two arms with "
                   "different args give identical metrics (a flag that is not wired).")
@click.option("--python", "python", metavar="PATH", default=None,
              help="Interpreter that runs the script [default: the one running rstack].")
@project_option
def preflight_command(script, extra_args, as_json, budget_s, stall_s, memory_mb, seed,
                      no_determinism, python, all_arms, project) -> None:
    """Run SCRIPT's --smoke-test on CPU, contained, and check what it wrote.

    Checks: compile, imports, the smoke run (crash, hang, smoke flag ignored, memory), metrics.json,
    metrics.jsonl (NaN/Inf), divergence, and determinism (a second run with the same seed).
    Arguments after `--` are passed to the script. It rehearses the real run: in the project root,
    with the plan's execution.python, as `python SCRIPT ARGS... --output-dir D --seed N`; with a
    plan, the smoke metrics must include every metric the plan compares. Inside a project the
    verdict is appended to .rstack/experiments.jsonl. Exit codes: 0 PASS, 1 FAIL, 2 usage or internal error.
    """
    from ..preflight import (check_arms_wired, format_human, is_project, plan_arm_args,
                             record_preflight, rehearsal, run_preflight)
    from ..procwatch import terminate_as_interrupt

    limits = dict(budget_s=budget_s, stall_s=stall_s, memory_mb=memory_mb, seed=seed,
                  **rehearsal(project, script, python))
    try:
        with terminate_as_interrupt():  # killed preflight still kills the script's processes
            result = run_preflight(script, determinism=not no_determinism,
                                   extra_args=extra_args, **limits)
            if all_arms and result.passed:
                result = check_arms_wired(script, plan_arm_args(project), **limits)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # preflight could not judge the script: not a verdict
        error = click.ClickException(f"preflight could not run: {exc}")
        error.exit_code = 2
        raise error from exc
    click.echo(json.dumps(result.as_json(), indent=2) if as_json else format_human(result))
    if is_project(project):
        record_preflight(project, result)
    click.get_current_context().exit(0 if result.passed else 1)
