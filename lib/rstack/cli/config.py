"""`rstack config get|set|unset|list|path`: thin wrappers over rstack.config."""

from __future__ import annotations

import json

import click

from .. import config, paths
from .options import json_option


@click.group("config")
def config_group() -> None:
    """Read and change RStack's settings ($RSTACK_HOME/config.yaml).

    Precedence: RSTACK_<KEY> in the environment, then the file, then the default.
    """


@config_group.command("get")
@click.argument("key")
def get_command(key: str) -> None:
    """Print the effective value of KEY (its default when unset)."""
    resolved = config.resolve(key)
    click.echo(resolved.key.format(resolved.value))


# ignore_unknown_options: a negative VALUE such as -1 is a value to validate, not an option.
@config_group.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
def set_command(key: str, value: str) -> None:
    """Set KEY to VALUE in config.yaml (validated; comments are kept)."""
    parsed = config.set_value(key, value)
    click.echo(f"{key} = {config.known_key(key).format(parsed)}")


@config_group.command("unset")
@click.argument("key")
def unset_command(key: str) -> None:
    """Remove KEY from config.yaml so its default applies again."""
    removed = config.unset(key)
    default = config.known_key(key)
    click.echo(f"{key} unset (default: {default.format(default.default)})" if removed
               else f"{key} was not set (default: {default.format(default.default)})")


@config_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Every known key with its value and where the value came from."""
    cfg = config.ConfigFile.load()
    rows = config.resolve_all(cfg)
    unknown = cfg.unknown_keys()
    if as_json:
        click.echo(json.dumps({"path": str(cfg.path), "keys": [r.as_json() for r in rows],
                               "unknown_keys": unknown}, indent=2))
        return
    width = max(len(r.key.name) for r in rows)
    for r in rows:
        click.echo(f"{r.key.name:<{width}}  {r.key.format(r.value)}"
                   + ("" if r.source == "default" else f"  ({r.source})"))
    for name in unknown:
        click.echo(f"warning: {cfg.path}: unknown key {name!r} is ignored", err=True)


@config_group.command("path")
def path_command() -> None:
    """Print the path of config.yaml."""
    click.echo(str(paths.config_path()))
