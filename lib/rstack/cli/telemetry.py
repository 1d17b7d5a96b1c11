"""`rstack telemetry log|sync|status`: opt-in usage events (see rstack.telemetry)."""

from __future__ import annotations

import json

import click

from .options import FiniteFloatRange, json_option


@click.group("telemetry")
def telemetry_group() -> None:
    """Opt-in usage telemetry (tier: rstack config set telemetry off|anonymous|community)."""


@telemetry_group.command("log")
@click.option("--skill", required=True, help="The skill that ran, e.g. research.")
@click.option("--outcome", required=True, type=click.Choice(("success", "error", "abort")),
              help="How it ended.")
@click.option("--duration", "duration_s", type=FiniteFloatRange(min=0), default=None,
              help="Seconds it took.")
@click.option("--error-class", default=None, help="Error category, e.g. the exception name.")
@click.option("--error-text", default=None, help="Error message (sanitized before it is stored).")
def log_command(skill: str, outcome: str, duration_s: float | None, error_class: str | None,
                error_text: str | None) -> None:
    """Record one skill outcome (does nothing when telemetry is off)."""
    from .. import telemetry

    event = telemetry.log_event(skill, outcome, duration_s, error_class=error_class,
                                error_text=error_text)
    click.echo("telemetry off: nothing recorded" if event is None
               else f"recorded {outcome} of {skill} in {telemetry.events_path()}")


@telemetry_group.command("sync")
@click.option("--timeout", "timeout_s", type=FiniteFloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds to wait for each request.")
def sync_command(timeout_s: float) -> None:
    """POST unsynced events to telemetry_url; silent when none is configured."""
    from .. import telemetry

    result = telemetry.sync(timeout_s=timeout_s)
    if result.url and not result.skipped:
        click.echo(f"sent {result.sent} event(s) to {result.url}")


@telemetry_group.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Show the tier, where events go, and how many await sync."""
    from .. import telemetry

    info = telemetry.status()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"tier      {info['tier']}")
    click.echo(f"url       {info['url'] or '(none: sync sends nothing)'}")
    click.echo(f"events    {info['logged']} logged, {info['unsynced']} unsynced ({info['events_path']})")
    click.echo(f"last sync {info['last_sync'] or 'never'}")
