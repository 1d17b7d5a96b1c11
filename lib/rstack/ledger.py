"""Append-only JSONL ledgers in `<project>/.rstack/<name>.jsonl`: the project's memory of record.

Each append is one validated record written as one line with a single write under an exclusive
lock. Reading never crashes on damage: bad lines are reported with their line numbers and skipped.
Nothing here rewrites a ledger in place; `repair` moves bad lines to the quarantine first and then
swaps in a copy holding every good line byte for byte.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import jsonlines

from . import paths, secrets
from .errors import LedgerError, RecordError
from .records import (LEDGERS, MAX_INT, RECORD_TYPES, SCHEMA_VERSION, WRITTEN_BY,
                      find_non_finite, validate)


# Records that hold what a literature API returned, verbatim: citation checks compare them with
# the .bib byte for byte, and no script output reaches them. Every other record is redacted.
_VERBATIM_TYPES = frozenset({"paper", "search"})


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a Z, the `ts` of every record."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf without ever reaching parse_constant
        raise ValueError(f"{text} overflows to infinity, which is not valid in a ledger")
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    if len(text) > 18 and not -MAX_INT <= value < MAX_INT:
        raise ValueError(f"integer of {len(text.lstrip('-'))} digits is beyond 64 bits")
    return value


_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float,
                                   parse_int=_bounded_int)


def strict_loads(text: str | bytes) -> Any:
    """json.loads that refuses NaN, ±Infinity, integers beyond 64 bits and nesting too deep to
    walk, as the ledgers do (each a ValueError, so a reader reports the line and goes on)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return _STRICT_DECODER.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def dumps_record(record: dict) -> str:
    """The canonical one-line form: v, type, ts first; compact; UTF-8; no NaN."""
    ordered = {"v": record.get("v"), "type": record.get("type"), "ts": record.get("ts")}
    ordered.update((k, v) for k, v in record.items() if k not in ordered)
    return json.dumps(ordered, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def complete_record(record: Any) -> dict:
    """Fill in `v` and `ts` when absent (never overriding what the caller set)."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}",
                          hint='wrap it: {"type": "note", "text": "..."}')
    full = dict(record)
    full.setdefault("v", SCHEMA_VERSION)
    full.setdefault("ts", utc_now())
    return full


@dataclass(frozen=True)
class LineProblem:
    line: int
    kind: str  # torn | invalid-json | invalid-record | unknown-version
    message: str
    text: str

    @property
    def is_damage(self) -> bool:
        """Unknown versions are read and reported; everything else is damage."""
        return self.kind != "unknown-version"

    def as_json(self) -> dict:
        return {"line": self.line, "kind": self.kind, "message": self.message, "text": self.text}


@dataclass
class ReadResult:
    path: Path
    entries: list[tuple[int, dict]] = field(default_factory=list)  # (line number, record)
    problems: list[LineProblem] = field(default_factory=list)
    line_count: int = 0
    sha256: str = hashlib.sha256(b"").hexdigest()

    @property
    def records(self) -> list[dict]:
        return [record for _, record in self.entries]

    @property
    def damage(self) -> list[LineProblem]:
        return [p for p in self.problems if p.is_damage]


@dataclass(frozen=True)
class RepairResult:
    path: Path
    quarantined: list[LineProblem]
    quarantine_path: Path
    kept: int


def _os_error(path: Path, exc: OSError, doing: str) -> LedgerError:
    if exc.errno == errno.ELOOP:
        return LedgerError(f"cannot {doing} {path}: {path} is a symbolic link; a ledger must be "
                           "a regular file inside .rstack/ (nothing is written through a link)",
                           hint=f"replace the link with the file it points to: cp --remove-"
                                f"destination \"$(readlink -f {path})\" {path}")
    if exc.errno == errno.EISDIR:
        return LedgerError(f"cannot {doing} {path}: {path} is a directory, not a file",
                           hint=f"move {path} aside")
    if exc.errno == errno.EROFS:
        return LedgerError(f"cannot {doing} {path}: read-only file system",
                           hint="remount it read-write, or run inside a project on a writable "
                                "disk (--project DIR)")
    if exc.errno in (errno.EACCES, errno.EPERM) and path.exists() and not os.access(path, os.W_OK) \
            and "write" in doing:
        return LedgerError(f"cannot {doing} {path}: the file is read-only",
                           hint=f"chmod u+w {path}  (if it was made read-only on purpose, leave "
                                "it and record elsewhere)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        # Name the directory that exists and refused, not a `.rstack` that was never created.
        refusing = next((p for p in (path.parent, *path.parent.parents) if p.exists()), path.parent)
        why = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return LedgerError(f"cannot {doing} {path}: {why}",
                           hint=f"make {refusing} writable (chmod u+w {refusing}) "
                                "or run inside a project you own (--project DIR)")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        # mkdir/open met a plain file where a directory must be (e.g. `.rstack` is a file).
        blocker = next((p for p in (path.parent, *path.parent.parents)
                        if p.exists() and not p.is_dir()), path.parent)
        return LedgerError(f"cannot {doing} {path}: {blocker} is a file, not a directory",
                           hint=f"move {blocker} aside, or pass --project DIR for another project")
    if exc.errno in _NO_SPACE:
        why = "the disk is full" if exc.errno != errno.EFBIG else "the file size limit was reached"
        return LedgerError(f"cannot {doing} {path}: {why}; nothing was written",
                           hint="free disk space, then repeat the command")
    return LedgerError(f"cannot {doing} {path}: {exc.strerror or exc}")


@contextmanager
def exclusive_lock(lock_path: Path, guarded: Path, doing: str) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `lock_path` (a sidecar file, so the guarded file itself can
    be swapped by `repair` while writers wait)."""
    try:
        guarded.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _os_error(guarded, exc, doing) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock_fd)  # closing releases the flock


_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _not_regular(path: Path, fd: int, doing: str) -> LedgerError | None:
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return None
    from .safeio import file_kind

    return LedgerError(f"cannot {doing} {path}: {path} is {file_kind(mode)}, not a regular file",
                       hint=f"move {path} aside; a ledger is a regular file inside .rstack/")


def append_lines(path: Path, lines: list[str], *, fsync: bool, doing: str = "write ledger") -> None:
    """Append whole lines with one write (the caller holds the lock); never rewrites what is there.

    A write that fails part-way (a full disk) is truncated back, so "nothing was written" is true.
    """
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                     0o644)
    except OSError as exc:
        raise _os_error(path, exc, doing) from None
    size = None
    try:
        problem = _not_regular(path, fd, doing)
        if problem:
            raise problem
        size = os.fstat(fd).st_size
        # A torn last line (a writer killed mid-write) must stay its own line, or the next
        # record would be glued onto it and be lost with it.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        error = _os_error(path, exc, doing)
        if size is not None and os.fstat(fd).st_size != size:
            try:
                os.ftruncate(fd, size)  # we hold the lock: the bytes past `size` are ours
            except OSError as trunc:
                error = LedgerError(f"cannot {doing} {path}: {exc.strerror}; a partial line was "
                                    f"left after byte {size} ({trunc.strerror} truncating it)",
                                    hint=f"free disk space, then `rstack log repair` quarantines it")
        raise error from None
    finally:
        os.close(fd)


class Ledger:
    """One named ledger of one project. Cheap to construct; every method re-reads the file."""

    def __init__(self, root: Path | str, name: str, *, fsync: bool | None = None):
        if name not in LEDGERS:
            raise LedgerError(f"unknown ledger {name!r}. Known ledgers: {', '.join(LEDGERS)}")
        self.root = Path(root)
        self.name = name
        self.path = paths.ledger_path(self.root, name)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._fsync = fsync

    @property
    def fsync(self) -> bool:
        if self._fsync is None:
            from . import config  # local: config reads YAML, which a read-only caller never needs

            self._fsync = bool(config.get("ledger_fsync"))
        return self._fsync

    # -- writing ---------------------------------------------------------------------------

    def prepare(self, record: Any) -> dict:
        """Complete, redact and validate a record without writing it (raises RecordError)."""
        full = complete_record(record)
        if full.get("type") not in _VERBATIM_TYPES:
            full = secrets.redact_value(full)
        validate(self.name, full)
        try:
            dumps_record(full).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RecordError(f"a string holds {exc.object[exc.start:exc.end]!a}, a lone surrogate "
                              "that is not valid Unicode and cannot be written as UTF-8",
                              hint="fix the text's encoding (e.g. a Windows-1252 file read as "
                                   "UTF-8 with surrogateescape)") from None
        return full

    def _locked(self):
        return exclusive_lock(self.lock_path, self.path, "write ledger")

    def append(self, record: Any) -> dict:
        """Validate and append one record; returns it as written (with v and ts)."""
        full = self.prepare(record)
        self._write_lines([dumps_record(full)])
        return full

    def append_many(self, records: Iterable[Any], *, by_hand: bool = False,
                    together: bool = False) -> list[dict]:
        """Validate every record first (all or nothing), then append each under its own lock.

        by_hand (`rstack log append`): refuse the types only an rstack command writes (WRITTEN_BY).
        together: write them all in one write under one lock (records that only mean something
        as a pair, such as a KEEP trial and the champion it makes).
        """
        prepared = []
        for index, record in enumerate(records, start=1):
            try:
                full = self.prepare(record)
            except RecordError as exc:
                raise RecordError(f"record {index}: {exc.message}; nothing was appended",
                                  hint=exc.hint) from None
            writer = WRITTEN_BY.get(full["type"]) if by_hand else None
            if writer:
                raise RecordError(
                    f"record {index}: {full['type']} records are written only by `{writer}`, "
                    "which the gates trust; nothing was appended",
                    hint=f"run `{writer}` to produce it, or record free text: "
                         '{"type": "note", "text": "..."}')
            prepared.append(full)
        if together:
            self._write_lines([dumps_record(full) for full in prepared])
            return prepared
        for full in prepared:
            self._write_lines([dumps_record(full)])
        return prepared

    def _write_lines(self, lines: list[str]) -> None:
        with self._locked():
            append_lines(self.path, lines, fsync=self.fsync)

    # -- reading ---------------------------------------------------------------------------

    def read(self, *, types: Iterable[str] | None = None) -> ReadResult:
        """Every valid record (optionally only some types) plus a report of every bad line."""
        wanted = set(types) if types else None
        result = ReadResult(self.path)
        try:
            handle = self._open_for_reading()
            if handle is None:
                return result
            with handle:
                raw = handle.read()
        except OSError as exc:
            raise _os_error(self.path, exc, "read ledger") from None
        result.sha256 = hashlib.sha256(raw).hexdigest()
        lines = raw.split(b"\n")
        torn_tail = lines[-1] != b""
        if not torn_tail:
            lines.pop()
        result.line_count = len(lines)
        reader = jsonlines.Reader(lines, loads=strict_loads)
        last = len(lines)
        for lineno, text in enumerate(lines, start=1):
            try:
                record = reader.read(skip_empty=False)
            except jsonlines.InvalidLineError as exc:
                if not text.strip():  # a blank line (a hand edit) holds no record, loses nothing
                    continue
                kind = "torn" if (torn_tail and lineno == last) else "invalid-json"
                cause = exc.__cause__ or exc
                result.problems.append(LineProblem(lineno, kind, _describe(kind, cause),
                                                   _preview(text)))
                continue
            except EOFError:
                break
            self._classify(result, lineno, text, record, wanted)
        return result

    def _classify(self, result: ReadResult, lineno: int, text: bytes, record: Any,
                  wanted: set[str] | None) -> None:
        if not isinstance(record, dict):
            result.problems.append(LineProblem(lineno, "invalid-record",
                                               "not a JSON object", _preview(text)))
            return
        version = record.get("v")
        if version != SCHEMA_VERSION or type(version) is not int:
            # Another schema version of a type this version knows is read only when it also has
            # this version's shape: the readers (runs list, status, --resume) index the fields
            # this version guarantees. A type only a newer rstack knows no reader here asks for.
            try:
                if type(version) is not int:
                    raise RecordError(f"field v: expected an integer version, got {_short(version)}")
                if record.get("type") in RECORD_TYPES:
                    validate(self.name, {**record, "v": SCHEMA_VERSION}, strict=False)
            except RecordError as exc:
                result.problems.append(LineProblem(
                    lineno, "invalid-record", f"schema version {_short(version)} and not readable "
                    f"as version {SCHEMA_VERSION}: {exc.message}", _preview(text)))
                return
            result.problems.append(LineProblem(
                lineno, "unknown-version",
                f"schema version {_short(version)} is not {SCHEMA_VERSION}; read as is",
                _preview(text)))
            if wanted is None or record.get("type") in wanted:
                result.entries.append((lineno, record))
            return
        if wanted is not None and record.get("type") not in wanted:
            return
        try:
            # strict_loads already refused NaN/Infinity, so skip that walk on the read path.
            validate(self.name, record, strict=False)
        except RecordError as exc:
            result.problems.append(LineProblem(lineno, "invalid-record", exc.message, _preview(text)))
            return
        result.entries.append((lineno, record))

    def stream(self, *, start: int = 0, first_line: int = 1, types: Iterable[str] | None = None,
               containing: bytes | None = None
               ) -> Iterator[tuple[int, int, dict | LineProblem]]:
        """(line number, byte offset, record or problem) from byte `start` on, one line at a time,
        judged as `read` judges it; memory is bounded by one line. Stops before a last line that
        has no newline yet (torn, or being written): the caller resumes there next time. `types`
        and `containing` (bytes the line must hold) skip other lines unparsed."""
        wanted = set(types) if types else None
        # A line that names none of the wanted types is skipped unparsed (spacing tolerated).
        needles = re.compile(rb'"type"\s*:\s*"(?:' + b"|".join(
            re.escape(t.encode()) for t in sorted(wanted)) + rb')"') if wanted else None
        handle = self._open_for_reading()
        if handle is None:
            return
        with handle:
            handle.seek(start)
            offset, lineno = start, first_line - 1
            for text in handle:
                if not text.endswith(b"\n"):
                    return
                lineno += 1
                here, offset = offset, offset + len(text)
                text = text[:-1]
                if not text.strip() or (needles is not None and not needles.search(text)) \
                        or (containing is not None and containing not in text):
                    continue
                one = ReadResult(self.path)
                try:
                    record = strict_loads(text)
                except (ValueError, RecursionError) as exc:
                    yield lineno, here, LineProblem(lineno, "invalid-json",
                                                    _describe("invalid-json", exc), _preview(text))
                    continue
                self._classify(one, lineno, text, record, wanted)
                for problem in one.problems:
                    yield lineno, here, problem
                for _, entry in one.entries:
                    yield lineno, here, entry

    def records(self, *types: str) -> list[dict]:
        return self.read(types=types or None).records

    def check(self) -> ReadResult:
        return self.read()

    # -- repair ----------------------------------------------------------------------------

    def repair(self) -> RepairResult:
        """Move damaged lines to `.rstack/quarantine.jsonl`, then keep every good line as is.

        Streamed (memory bounded by one line, whatever the ledger's size); the temp file of a
        repair that was killed is removed by the next repair, which holds the same lock."""
        quarantine = paths.quarantine_path(self.root)
        with self._locked():
            self._remove_repair_leftovers()
            damage = [item for _, _, item in self.stream()
                      if isinstance(item, LineProblem) and item.is_damage]
            torn = self._torn_tail()
            if torn is not None:
                damage.append(torn)
            if not damage:
                return RepairResult(self.path, [], quarantine, self._count_good())
            bad_lines = {p.line: p for p in damage}
            stamp = utc_now()
            tmp = None
            kept = 0
            try:
                # 1. The quarantine gets the bad lines first (durably), so a crash loses nothing.
                fd = os.open(quarantine, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    for lineno, line in self._lines():
                        problem = bad_lines.get(lineno)
                        if problem is None:
                            continue
                        os.write(fd, (json.dumps({
                            "v": SCHEMA_VERSION, "type": "quarantined", "ts": stamp,
                            "ledger": self.name, "line": problem.line, "kind": problem.kind,
                            "reason": problem.message,
                            "text": line.decode("utf-8", errors="replace"),
                        }, ensure_ascii=False) + "\n").encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # 2. A new file with the good lines, byte for byte, swapped in atomically.
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}{_REPAIR_TMP}",
                                           dir=self.path.parent)
                with os.fdopen(fd, "wb") as handle:
                    for lineno, line in self._lines():
                        if lineno in bad_lines or not line.strip():
                            continue
                        handle.write(line + b"\n")
                        kept += 1
                    handle.flush()
                    os.fsync(handle.fileno())
                # Keep the ledger's own mode (a 0444 ledger stays read-only).
                os.chmod(tmp, stat.S_IMODE(os.lstat(self.path).st_mode))
                os.replace(tmp, self.path)
                tmp = None
            except OSError as exc:
                raise _os_error(self.path, exc, "repair ledger") from None
            finally:
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)
            return RepairResult(self.path, damage, quarantine, kept)

    def _open_for_reading(self):
        """The ledger opened for reading as `read` opens it (no symlink, a regular file), or None
        when it does not exist."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(self.path, exc, "read ledger") from None
        problem = _not_regular(self.path, fd, "read ledger")
        if problem:
            os.close(fd)
            raise problem
        return os.fdopen(fd, "rb")

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line without its newline), the last line even when it has none."""
        handle = self._open_for_reading()
        if handle is None:
            return
        with handle:
            for lineno, line in enumerate(handle, start=1):
                yield lineno, line[:-1] if line.endswith(b"\n") else line

    def _torn_tail(self) -> LineProblem | None:
        """The last line when it has no newline (a writer killed mid-write), as damage."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size == 0:
                    return None
                handle.seek(size - 1)
                if handle.read(1) == b"\n":
                    return None
        except FileNotFoundError:
            return None
        last = None
        for last in self._lines():
            pass
        lineno, text = last
        if not text.strip():
            return None
        return LineProblem(lineno, "torn", _describe("torn", ValueError()), _preview(text))

    def _count_good(self) -> int:
        return sum(1 for _, _, item in self.stream() if not isinstance(item, LineProblem))

    def _remove_repair_leftovers(self) -> None:
        for leftover in self.path.parent.glob(f".{self.path.name}{_REPAIR_TMP}*"):
            try:
                leftover.unlink()
            except OSError:
                pass


# The temp file a repair writes beside the ledger (never the `.lock` sidecar's name).
_REPAIR_TMP = ".repair-"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(kind: str, cause: BaseException) -> str:
    if kind == "torn":
        return "torn final line (a write was interrupted); `rstack log repair` quarantines it"
    return f"not valid JSON ({cause})"


def _preview(text: bytes, limit: int = 200) -> str:
    decoded = text.decode("utf-8", errors="replace")
    return decoded if len(decoded) <= limit else decoded[:limit] + "…"


def ledger_for(name: str, project: str | os.PathLike | None = None) -> Ledger:
    """The named ledger of the project that `--project`/RSTACK_PROJECT/git/cwd resolve to."""
    return Ledger(paths.project_root(project), name)


__all__ = [
    "Ledger", "LineProblem", "ReadResult", "RepairResult", "RECORD_TYPES", "dumps_record",
    "find_non_finite", "ledger_for", "strict_loads", "utc_now",
]
