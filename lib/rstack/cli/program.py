"""`rstack program init|check|baseline|trial|status|log|plot`: the noise-aware improvement loop.

Exit codes: 0 for any completed verdict (KEEP, DISCARD, INCONCLUSIVE, FAILED), 1 for a refusal
(a guard, an invalid program.md), 2 for usage.
"""

from __future__ import annotations

import json

import click

from .options import json_option, project_option
from ..runners import PROFILES
from .run import _seeds as _seed_list  # one parser of `--seeds 0,1,2`


def _echo_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, allow_nan=False))


def _echo(data: dict, as_json: bool, lines) -> None:
    """`data` as JSON, or the human form `lines(data)` (a list of lines) built only when asked."""
    if as_json:
        _echo_json(data)
    else:
        click.echo("\n".join(lines(data)))


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
@click.option("--profile", type=click.Choice(PROFILES),
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

    from ..program import remote

    with terminate_as_interrupt():
        result = run_trial(project, hypothesis=hypothesis, reset=reset, jobs=jobs)
    _print_trial(result, as_json)
    if remote.is_joined(project):
        remote.queue_submission(project, result.record)
        remote.flush_outbox(project, echo=lambda line: click.echo(line, err=True))


@program_group.command("status")
@json_option
@project_option
def status_command(as_json, project) -> None:
    """Champion with its interval, trials kept/discarded, budget left, noise estimate."""
    from ..program.report import status, status_lines

    _echo(status(project), as_json, status_lines)


@program_group.command("log")
@json_option
@project_option
def log_command(as_json, project) -> None:
    """One line per trial: id, verdict, diff [ci], cost, commit, hypothesis."""
    from ..program.report import log_lines, log_rows

    rows = log_rows(project)
    _echo({"trials": rows}, as_json, lambda _: log_lines(rows) if rows else ["no trials yet"])


@program_group.command("plot")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Directory (default: analysis/).")
@json_option
@project_option
def plot_command(out_dir, as_json, project) -> None:
    """The progress figure (PNG and PDF): each trial's mean with its interval, the champion line."""
    from ..program.report import plot

    files = [str(p) for p in plot(project, out_dir)]
    _echo({"files": files}, as_json, lambda data: data["files"])


# --------------------------------------------------------------------------------------------
# A shared program: the owner serves it, members join, pull, submit trials and verify claims.


@program_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0: any free one).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM).")
@click.option("--insecure", is_flag=True, help="Allow plain HTTP on a non-loopback address.")
@click.option("--open", "open_browser", is_flag=True, help="Open the device page in a browser.")
@click.option("--device-ttl", type=click.FloatRange(min=1), default=900, show_default=True,
              help="Seconds a user code stays valid.")
@click.option("--interval", type=click.IntRange(min=0), default=5, show_default=True,
              help="Seconds between a joining member's token polls.")
@click.option("--rate", type=click.IntRange(min=1), default=60, show_default=True,
              help="Submissions and verifications per member per minute.")
@click.option("--max-body", type=click.IntRange(min=1024), default=16 * 1024 * 1024,
              show_default=True, help="Largest submission in bytes.")
@project_option
def serve_command(host, port, tls_cert, tls_key, insecure, open_browser, device_ttl, interval,
                  rate, max_body, project) -> None:
    """Serve this project's program to members (first line printed: the URL)."""
    from ..program.server import serve
    from ..program.server.app import Settings

    def echo(url: str) -> None:
        click.echo(url)
        if open_browser:
            import webbrowser
            webbrowser.open(url + "/device")

    serve(project, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, insecure=insecure,
          settings=Settings(device_ttl_s=device_ttl, interval_s=interval, rate_per_min=rate,
                            max_body=max_body), echo=echo)


@program_group.command("members")
@json_option
@project_option
def members_command(as_json, project) -> None:
    """The owner's list of members and of pending join requests."""
    from ..program.remote import owner_connection

    data = owner_connection(project).call("GET", "/api/members")
    if as_json:
        _echo_json(data)
        return
    for m in data["members"]:
        state = "approved" if m["approved"] else "revoked"
        click.echo(f"{m['name']:<16} {state:<9} {m['submissions']} submission(s), "
                   f"{m['verified']} verified")
    for p in data["pending"]:
        click.echo(f"pending: {p['user_code']} ({p['name']}, expires in {p['expires_in']} s): "
                   f"rstack program approve {p['user_code']}")
    if not data["members"] and not data["pending"]:
        click.echo("no members yet; a member runs: rstack program join URL")


@program_group.command("approve")
@click.argument("user_code")
@click.option("--deny", is_flag=True, help="Refuse the request instead.")
@project_option
def approve_command(user_code, deny, project) -> None:
    """Approve (or --deny) a member's join request by its user code."""
    from ..program.remote import owner_connection

    out = owner_connection(project).call("POST", "/api/approve",
                                         body={"user_code": user_code, "deny": deny})
    click.echo(f"{'denied' if deny else 'approved'}: {out['member']}")


@program_group.command("revoke")
@click.argument("member")
@project_option
def revoke_command(member, project) -> None:
    """Revoke a member's token (effective on its next request)."""
    from ..program.remote import owner_connection

    owner_connection(project).call("POST", "/api/revoke", body={"member": member})
    click.echo(f"revoked: {member}")


@program_group.command("join")
@click.argument("url")
@click.option("--name", help="Your member name (default: user@host).")
def join_command(url, name) -> None:
    """Join a served program (RFC 8628 device flow); the owner approves the printed code."""
    import getpass
    import re
    import socket

    from ..program.remote import join

    name = name or re.sub(r"[^A-Za-z0-9_.-]", "-", f"{getpass.getuser()}-{socket.gethostname()}")[:32]
    out = join(url, name, echo=click.echo)
    click.echo(f"joined {out['program']} as {out['member']} (token in {out['credentials']}); "
               f"next: rstack program pull")


@program_group.command("pull")
@click.argument("directory", required=False)
@click.option("--program", "program_name", help="Which joined program (default: the only one).")
def pull_command(directory, program_name) -> None:
    """Make or update a git clone at the champion (default ./<program name>)."""
    from ..program.remote import pull

    pull(directory, program=program_name, echo=click.echo)


@program_group.command("submit")
@project_option
def submit_command(project) -> None:
    """Send the trials waiting in .rstack/program-outbox/ (after a lost connection)."""
    from ..program.remote import flush_outbox

    if not flush_outbox(project, echo=click.echo):
        click.echo("nothing to submit")


@program_group.command("verify")
@click.option("--once", is_flag=True, help="Process the pending claims, then exit.")
@click.option("--every", type=click.FloatRange(min=1), default=30, show_default=True,
              help="Seconds between looks for claims (without --once).")
@jobs_option
@project_option
def verify_command(once, every, jobs, project) -> None:
    """Re-run the confirm seeds of claims the server assigns to you; it decides by the rule."""
    import time

    from ..procwatch import terminate_as_interrupt
    from ..program.remote import verify_once

    with terminate_as_interrupt():
        while True:
            done = verify_once(project, echo=click.echo, jobs=jobs)
            if once:
                if not done:
                    click.echo("no pending claims")
                return
            time.sleep(every)


@program_group.command("credits")
@json_option
@project_option
def credits_command(as_json, project) -> None:
    """Each member's verified impact and share of the program's total improvement."""
    from ..program.report import credit_lines, credits

    _echo(credits(project), as_json, credit_lines)
