"""`rstack log append|tail|check|repair`: the ledgers from the shell."""

from __future__ import annotations

import json
import sys

import click

from ..errors import RecordError
from ..ledger import Ledger, strict_loads
from ..records import LEDGERS
from .options import json_option, project_option

ledger_argument = click.argument("ledger_name", metavar="LEDGER", type=click.Choice(LEDGERS))


def _parse_json(text: str, where: str) -> dict:
    try:
        return strict_loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"{where}: not valid JSON ({exc}); nothing was appended",
                          hint='pass one JSON object, e.g. \'{"type": "note", "text": "..."}\'')


@click.group("log")
def log_group() -> None:
    """Append to and inspect the project's append-only ledgers (.rstack/LEDGER.jsonl)."""


@log_group.command("append")
@ledger_argument
@click.argument("record", required=False)
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read one JSON record per line from standard input.")
@project_option
def append_command(ledger_name: str, record: str | None, from_stdin: bool, project) -> None:
    """Append RECORD (a JSON object) to LEDGER; v and ts are filled in when absent.

    Records only an rstack command writes (preflight, run.*, paper, ...) are refused: the gates
    trust them. Free text goes in a note: {"type": "note", "text": "..."}.

    With --stdin every input line is validated first; then each is appended under its own lock.
    """
    if (record is None) == (not from_stdin):
        raise click.UsageError("give exactly one of RECORD or --stdin")
    ledger = Ledger(project, ledger_name)
    if from_stdin:
        # Bytes, split at \n only: U+2028 or NEL inside a JSON string is text, not a line break.
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise RecordError(f"stdin line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
                              "nothing was appended", hint="send UTF-8 text") from None
        records = [_parse_json(line, f"stdin line {n}")
                   for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    else:
        records = [_parse_json(record, "RECORD")]
    written = ledger.append_many(records, by_hand=True)
    click.echo(f"appended {len(written)} record(s) to {ledger.path}")


@log_group.command("tail")
@ledger_argument
@click.option("-n", "count", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many records.")
@click.option("--type", "types", multiple=True, help="Only records of this type (repeatable).")
@json_option
@project_option
def tail_command(ledger_name: str, count: int, types: tuple[str, ...], as_json: bool,
                 project) -> None:
    """Show the last records of LEDGER."""
    result = Ledger(project, ledger_name).read(types=types or None)
    records = result.records[-count:]
    if as_json:
        click.echo(json.dumps({"ledger": ledger_name, "path": str(result.path), "records": records,
                               "problems": [p.as_json() for p in result.problems]}, indent=2))
        return
    for rec in records:
        rest = {k: v for k, v in rec.items() if k not in ("v", "type", "ts")}
        click.echo(f"{rec.get('ts')}  {str(rec.get('type')):<13} {json.dumps(rest, ensure_ascii=False)}")
    for problem in result.problems:
        click.echo(f"warning: {result.path}:{problem.line}: {problem.message}", err=True)


@log_group.command("check")
@ledger_argument
@json_option
@project_option
def check_command(ledger_name: str, as_json: bool, project) -> None:
    """Report damaged lines of LEDGER; exit 1 when there are any."""
    result = Ledger(project, ledger_name).check()
    if as_json:
        click.echo(json.dumps({"ledger": ledger_name, "path": str(result.path),
                               "lines": result.line_count, "records": len(result.entries),
                               "ok": not result.damage,
                               "problems": [p.as_json() for p in result.problems]}, indent=2))
    else:
        for problem in result.problems:
            level = "error" if problem.is_damage else "warning"
            click.echo(f"{level}: {result.path}:{problem.line}: {problem.message}")
        click.echo(f"{result.path}: {len(result.entries)} good record(s), "
                   f"{len(result.damage)} damaged line(s)")
    if result.damage:
        if not as_json:
            click.echo(f"fix: rstack log repair {ledger_name}  (moves them to the quarantine)",
                       err=True)
        sys.exit(1)


@log_group.command("repair")
@ledger_argument
@project_option
def repair_command(ledger_name: str, project) -> None:
    """Move damaged lines of LEDGER to .rstack/quarantine.jsonl; good lines stay as they are."""
    result = Ledger(project, ledger_name).repair()
    if not result.quarantined:
        click.echo(f"{result.path}: nothing to repair ({result.kept} good record(s))")
        return
    lines = ", ".join(str(p.line) for p in result.quarantined)
    click.echo(f"moved line(s) {lines} to {result.quarantine_path}; "
               f"{result.kept} good record(s) kept in {result.path}")
