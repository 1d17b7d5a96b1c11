"""The `rstack` command: a click group whose subcommands load on demand.

Commands stay thin (resolve inputs, call one library function, print). Any RStackError raised
below becomes exit 1 with its message; click's usage errors are exit 2. Command modules must not
import heavy libraries (numpy, scipy, matplotlib, modal, requests) at module level: the skills'
preamble runs `rstack` several times and must stay under a second.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__
from ..errors import RStackError

# name -> "module:attribute". Add a line here for each new command or group.
COMMANDS: dict[str, str] = {
    "paper": "rstack.cli.paper:paper_group",
    "venue": "rstack.cli.paper:venue_group",
    "plan": "rstack.cli.plan:plan_group",
    "run": "rstack.cli.run:run_command",
    "runs": "rstack.cli.run:runs_group",
    "config": "rstack.cli.config:config_group",
    "slug": "rstack.cli.slug:slug_command",
    "log": "rstack.cli.log:log_group",
    "lit": "rstack.cli.lit:lit_group",
    "dev": "rstack.cli.dev:dev_group",
    "compute-detect": "rstack.cli.compute:compute_detect_command",
    "telemetry": "rstack.cli.telemetry:telemetry_group",
    "analyze": "rstack.cli.analyze:analyze_command",
    "bundle": "rstack.cli.bundle:bundle_group",
    "reproduce": "rstack.cli.reproduce:reproduce_command",
    "status": "rstack.cli.status:status_command",
    "demo": "rstack.cli.demo:demo_command",
    "preflight": "rstack.cli.preflight:preflight_command",
    "review": "rstack.cli.review:review_command",
    "program": "rstack.cli.program:program_group",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RStackError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rstack")
def main() -> None:
    """RStack: ledgered experiments, verified citations and audited papers.

    Exit codes: 0 ok; 1 a handled failure (a FAIL verdict, a refused guard, bad input data);
    2 a usage error.
    """
