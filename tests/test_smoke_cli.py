"""The CLI loads every registered command and answers --help."""

from rstack.cli import COMMANDS, main


def test_every_registered_command_loads_and_has_help(cli):
    for name in COMMANDS:
        cmd = main.get_command(None, name)
        assert cmd is not None, name
        assert (cmd.help or "").strip(), f"{name} has no help text"
        result = cli(name, "--help")
        assert result.exit_code == 0, result.output
