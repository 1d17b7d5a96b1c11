"""The registry of ledger record types: which ledger each may go in and the fields it must carry.

This is data, not code paths: a concern adds its record types to RECORD_TYPES below, and every
append (library or `rstack log append`) is validated against it. Never loosen a type to make a
caller's bad record fit: fix the caller.

Field specs are short strings: `str`, `int`, `number` (int or float, finite), `bool`, `object`,
`array`, `any`, `sha256` (64 hex chars), `enum:A,B,C`; a trailing `?` also allows null.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

from .errors import RecordError
from .runners import PROFILES
from .runners.base import STATUSES

SCHEMA_VERSION = 1
LEDGERS = ("experiments", "lit-review", "program")
ANY_LEDGER = "*"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass(frozen=True)
class RecordType:
    name: str
    ledgers: tuple[str, ...]  # ("*",) = any ledger
    required: dict[str, str] = field(default_factory=dict)
    optional: dict[str, str] = field(default_factory=dict)
    doc: str = ""

    def allowed_in(self, ledger: str) -> bool:
        return ANY_LEDGER in self.ledgers or ledger in self.ledgers


def _types(*specs: RecordType) -> dict[str, RecordType]:
    return {spec.name: spec for spec in specs}


RECORD_TYPES: dict[str, RecordType] = _types(
    RecordType("note", (ANY_LEDGER,), {"text": "str"}, doc="A free-text note from a human or a skill."),
    RecordType(
        "preflight", ("experiments",),
        {"script": "str", "script_sha256": "sha256", "verdict": "enum:PASS,FAIL",
         "category": "str?", "duration_s": "number"},
        {"message": "str", "hint": "str", "checks": "array", "metrics": "object?",
         "peak_rss_mb": "number", "seed": "int", "args": "array"},
        doc="One `rstack preflight` verdict for one version of a script (and the extra args "
            "it ran with).",
    ),
    RecordType(
        "reproduce", ("experiments",),
        {"run_id": "str", "verdict": "enum:PASS,FAIL", "rtol": "number", "command": "array",
         "duration_s": "number"},
        {"mismatches": "array", "exit_code": "int?", "reason": "str?", "notes": "array"},
        doc="`rstack reproduce`: a ledgered run re-run with its command and seed, metrics compared.",
    ),
    # The runs concern (rstack run): one started + one finished per run; retries are new runs.
    RecordType(
        "run.started", ("experiments",),
        {"run_id": "label", "arm": "label", "seed": "int", "args": "array", "command": "array",
         "output_dir": "str", "profile": "enum:" + ",".join(PROFILES), "host": "str",
         "plan_sha256": "sha256?", "config_hash": "sha256", "git_commit": "str?",
         "git_dirty": "bool?", "script": "str", "script_sha256": "sha256", "timeout_s": "number?",
         "cost_estimate_usd": "number", "attempt": "int", "retry_of": "str?"},
        {"gpu": "str?", "name": "str", "arm_version": "int", "grad_accum": "int",
         "python": "str", "python_version": "str", "packages_sha256": "sha256?", "tags": "object",
         "containment": "str?"},
        doc="A run was launched: exactly what ran, where, from which code and plan."),
    RecordType(
        "run.finished", ("experiments",),
        {"run_id": "label", "arm": "label", "seed": "int",
         "status": "enum:" + ",".join(STATUSES),
         "exit_code": "int?", "category": "str?", "hint": "str?", "metrics": "object?",
         "artifacts": "array", "duration_s": "number", "cost_usd": "number"},
        {"message": "str?", "peak_rss_mb": "number?", "remote_dir": "str?", "checks": "array"},
        doc="A run ended; its status, diagnosis and what it produced (artifacts with sha256)."),
    RecordType(
        "arm.adjusted", ("experiments",),
        {"arm": "str", "version": "int", "args_before": "array", "args": "array",
         "change": "str", "run_id": "str"},
        {"category": "str?", "run_ids": "array"},
        doc="An arm with `retry: adjust` changed its args after run_id failed: every seed is "
            "re-run as `version` (run_ids), so the arm never mixes designs."),
    RecordType(
        "run.retry", ("experiments",),
        {"run_id": "str", "retry_run_id": "str", "attempt": "int", "category": "str",
         "policy": "enum:oom-ladder,lower-lr,same", "change": "str"},
        {"gpu": "str?", "message": "str?"},
        doc="A failed run is retried as retry_run_id with the minimal fix `change`."),
    RecordType(
        "run.remote", ("experiments",),
        {"run_id": "str", "host": "str", "remote_dir": "str"},
        {"pid": "int?", "instance_id": "str?", "sync": "enum:rsync,tar", "job_id": "str?",
         "array_index": "int?", "job_output": "str?"},
        doc="Where a remote run lives, so a monitor (or --resume) can re-attach to it."),
    RecordType(
        "vastai.instance", ("experiments",),
        {"instance_id": "str", "state": "enum:created,running,destroyed,kept,failed"},
        {"offer_id": "str?", "gpu": "str?", "dph_total": "number?", "ssh": "str?",
         "message": "str?", "lifetime_s": "number?", "billed_usd": "number?",
         "runs_usd": "number?"},
        doc="A Vast.ai instance rstack rented (recorded before it is polled) and what became of it."),
    RecordType(
        "slurm.job", ("experiments",),
        {"job_id": "str", "host": "str", "run_ids": "array", "array": "str",
         "script_sha256": "sha256", "gpu_hours_requested": "number"},
        {"job_dir": "str?"},
        doc="A SLURM job array rstack submitted (recorded before it is polled; index i = run_ids[i])."),
    RecordType(
        "slurm.task", ("experiments",),
        {"job_id": "str", "array_index": "int", "run_id": "str", "state": "str",
         "elapsed_s": "number", "gpus": "int", "gpu_hours": "number"},
        {"exit_code": "str?", "reason": "str?"},
        doc="How one array task ended by the scheduler's account (GPU-hours spent: max_gpu_hours)."),
    # The improvement loop (rstack program): its knowledge base, .rstack/program.jsonl.
    RecordType(
        "program.trial", ("program",),
        {"program": "str", "trial": "int", "commit": "str", "tree": "str",
         "verdict": "enum:BASELINE,KEEP,DISCARD,INCONCLUSIVE,FAILED", "metric": "str",
         "direction": "enum:minimize,maximize", "runs": "array", "cost_usd": "number"},
        {"hypothesis": "str?", "diffstat": "str?", "files": "array", "champion_before": "int?",
         "champion_after": "int?", "min_effect": "number", "alpha": "number", "mean": "number?",
         "diff": "number?", "ci_low": "number?", "ci_high": "number?", "n": "int",
         "stages": "array", "champion_runs": "array", "impact": "number?", "reason": "str?",
         "duration_s": "number", "overhead_s": "number", "program_sha256": "sha256",
         "member": "str?", "args": "array", "noise_sd": "number?", "detectable": "number?",
         "claim": "int?", "claim_status": "str?", "verified_by": "str?", "artifacts": "object"},
        doc="One finished trial of a candidate (a commit, identified by the tree hash of its "
            "editable files): its runs, the paired comparison with the champion, the verdict."),
    RecordType(
        "program.champion", ("program",),
        {"program": "str", "champion": "int", "trial": "int", "commit": "str", "tree": "str",
         "metric": "str", "runs": "array"},
        {"mean": "number?", "ci_low": "number?", "ci_high": "number?", "impact": "number?",
         "impact_low": "number?", "impact_high": "number?", "member": "str?", "reason": "str?"},
        doc="The champion moved to a trial's candidate (champion 0 is the baseline); "
            "impact is its verified improvement over the champion it replaced."),
    # Minimal forms; the literature concern extends them.
    RecordType("search", ("lit-review",),
               {"query": "str", "source": "enum:s2,arxiv,openalex,crossref,all"},
               {"counts": "object", "limit": "int", "year": "str?", "offline": "bool",
                "keys": "array", "errors": "array"},
               doc="One literature search and its result counts."),
    RecordType("paper", ("lit-review",), {"key": "str", "title": "str"},
               {"authors": "array", "year": "int?", "venue": "str?", "ids": "object",
                "abstract": "str?", "url": "str?", "pdf_url": "str?", "citation_count": "int?",
                "sources": "array", "primary_category": "str?", "query": "str?",
                "venue_type": "str?", "retracted": "bool?", "retraction": "str?"},
               doc="A paper an API returned; the only thing a paper may cite."),
    RecordType("retraction", ("lit-review",), {"key": "str", "source": "str"},
               {"notice": "str?", "query": "str?"},
               doc="A source said a paper already in the ledger is retracted."),
)


# Record types that only an rstack command writes, and which one. The gates trust them (a
# preflight PASS opens the run gate, a run.finished feeds analyze, a paper passes lit verify), so
# `rstack log append` refuses them: a hand-written one would pass a gate nothing checked.
WRITTEN_BY: dict[str, str] = {
    "preflight": "rstack preflight", "reproduce": "rstack reproduce",
    "run.started": "rstack run", "run.finished": "rstack run", "run.retry": "rstack run",
    "run.remote": "rstack run", "vastai.instance": "rstack run", "slurm.job": "rstack run",
    "slurm.task": "rstack run",
    "search": "rstack lit search", "paper": "rstack lit search",
    "retraction": "rstack lit search",
    "program.trial": "rstack program trial", "program.champion": "rstack program trial",
}


# Integers a ledger may hold: what a 64-bit reader (and float()) can take. A 400-digit integer is
# valid JSON, but every reader that averages or compares it would crash on it.
MAX_INT = 2 ** 63


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value < MAX_INT


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -MAX_INT <= value < MAX_INT
    return isinstance(value, float) and math.isfinite(value)


def find_huge_int(value: Any, path: str = "") -> str | None:
    """The dotted path of the first integer beyond 64 bits inside value, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None if -MAX_INT <= value < MAX_INT else (path or "(record)")
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_huge_int(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_huge_int(item, f"{path}[{index}]")
            if found:
                return found
    return None


_BASE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "any": lambda value: True,
    "str": lambda value: isinstance(value, str),
    # A name readers print in tables (a run id, an arm): an escape sequence or a newline in it
    # would forge their output.
    "label": lambda value: isinstance(value, str) and value.isprintable(),
    "int": _is_int,
    "number": _is_number,
    "bool": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "sha256": lambda value: isinstance(value, str) and bool(_SHA256.match(value)),
}


@lru_cache(maxsize=None)
def _predicate(spec: str) -> Callable[[Any], bool]:
    """Compile a field spec once; every read of a 100k-record ledger validates each field."""
    nullable = spec.endswith("?")
    base = spec[:-1] if nullable else spec
    if base.startswith("enum:"):
        choices = frozenset(base[5:].split(","))
        check: Callable[[Any], bool] = lambda value: isinstance(value, str) and value in choices
    elif base in _BASE_CHECKS:
        check = _BASE_CHECKS[base]
    else:
        raise AssertionError(f"unknown field spec {spec!r}")
    if nullable:
        return lambda value: value is None or check(value)
    return lambda value: value is not None and check(value)


def _check_spec(spec: str, value: Any) -> bool:
    return _predicate(spec)(value)


def _describe_spec(spec: str) -> str:
    nullable = spec.endswith("?")
    base = spec[:-1] if nullable else spec
    text = f"one of {base[5:].replace(',', ', ')}" if base.startswith("enum:") else {
        "str": "a string", "label": "printable text (no control characters)",
        "int": "an integer", "number": "a finite number", "bool": "true or false",
        "object": "a JSON object", "array": "a JSON array", "any": "any value",
        "sha256": "a sha256 hex digest (64 lowercase hex chars)",
    }[base]
    return text + (" or null" if nullable else "")


def find_non_finite(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN/±Infinity inside value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(record)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_non_finite(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_non_finite(item, f"{path}[{index}]")
            if found:
                return found
    return None


def validate(ledger: str, record: Any, *, strict: bool = True) -> None:
    """Raise RecordError naming the offending field; return None when the record is valid."""
    if ledger not in LEDGERS:
        raise RecordError(f"unknown ledger {ledger!r}. Known ledgers: {', '.join(LEDGERS)}")
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}",
                          hint='wrap it: {"type": "note", "text": "..."}')
    bad = find_non_finite(record) if strict else None
    if bad:
        raise RecordError(f"field {bad}: NaN and Infinity are not valid JSON and are never ledgered",
                          hint="record the value as null, or fix the computation that produced it")
    huge = find_huge_int(record) if strict else None  # reads refuse them while parsing
    if huge:
        raise RecordError(f"field {huge}: an integer beyond 64 bits is never ledgered (no reader "
                          "can compute with it)", hint="record it as a string, or fix its source")
    if not _is_int(record.get("v")) or record.get("v") != SCHEMA_VERSION:
        raise RecordError(f"field v: expected {SCHEMA_VERSION}, got {record.get('v')!r}",
                          hint="omit v and it is filled in")
    rtype = record.get("type")
    if not isinstance(rtype, str) or rtype not in RECORD_TYPES:
        raise RecordError(
            f"field type: unknown record type {rtype!r}. Known types: {', '.join(sorted(RECORD_TYPES))}",
            hint='use {"type": "note", "text": "..."} for free text',
        )
    spec = RECORD_TYPES[rtype]
    if not spec.allowed_in(ledger):
        raise RecordError(f"record type {rtype!r} does not belong in the {ledger} ledger "
                          f"(it goes in: {', '.join(spec.ledgers)})")
    ts = record.get("ts")
    if not isinstance(ts, str) or not _TS.match(ts):
        raise RecordError(f"field ts: expected an ISO-8601 UTC time ending in Z, got {ts!r}",
                          hint="omit ts and it is filled in")
    if strict:  # append time; reads trust the pattern (and strict_loads refused NaN already)
        try:
            # The pattern fixed the layout; check the calendar. (fromisoformat would refuse a
            # 1- or 2-digit fraction on Python 3.10.)
            datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise RecordError(f"field ts: {ts!r} is not a real date and time") from None
    for name, field_spec in spec.required.items():
        if name not in record:
            raise RecordError(f"{rtype} record: missing required field {name!r} "
                              f"({_describe_spec(field_spec)})")
        if not _check_spec(field_spec, record[name]):
            raise RecordError(f"{rtype} record: field {name!r} must be {_describe_spec(field_spec)}, "
                              f"got {record[name]!r}")
    for name, field_spec in spec.optional.items():
        if name in record and not _check_spec(field_spec, record[name]):
            raise RecordError(f"{rtype} record: field {name!r} must be {_describe_spec(field_spec)}, "
                              f"got {record[name]!r}")
