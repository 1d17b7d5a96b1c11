"""Domain errors. Every message says what is wrong, where, and the command that fixes it.

The CLI turns any RStackError into exit 1 (a handled failure); usage errors stay click's (exit 2).
Never raise these for programming errors: a bug should surface as a traceback, not a polite message.
"""

from __future__ import annotations


class RStackError(Exception):
    """A handled failure. `hint` is the concrete next step, shown after the message."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class SchemaError(RStackError):
    """A file fails its schema (a plan, program.md): `problems` lists every problem at once."""

    def __init__(self, message: str, *, hint: str | None = None, problems: list[str] | None = None):
        super().__init__(message, hint=hint)
        self.problems = problems or [message]


class ConfigError(RStackError):
    """config.yaml is malformed, a key is unknown, or a value is out of range."""


class ProjectError(RStackError):
    """The project root or its .rstack/ directory cannot be used."""


class LedgerError(RStackError):
    """A ledger cannot be read or written (permissions, damage, unknown ledger)."""


class RecordError(LedgerError):
    """A record fails its type's schema; nothing was written."""


class TelemetryError(RStackError):
    """Telemetry could not be recorded or synced."""


class AnalysisError(RStackError):
    """`rstack analyze` cannot summarise the ledger (no ok runs, unknown baseline arm, bad plan)."""


class BundleError(RStackError):
    """A reproducibility bundle cannot be created, or it does not match its checksums."""


class ReproduceError(RStackError):
    """A ledgered run cannot be re-run, or its re-run did not reproduce its metrics."""


class PaperError(RStackError):
    """`rstack paper`/`rstack venue` cannot write, build or audit the paper (or fetch a style)."""


class RunError(RStackError):
    """A run could not be set up or launched (nothing about its result: that is its status)."""


class ReviewError(RStackError):
    """`rstack review` cannot run (no valid plan)."""
