"""The one read model of ledgered runs: run.started joined with run.finished, what is in flight,
done keys (with the script version), superseded runs, spend and run-id lookup.

Status, `runs list/show`, `--resume`, reproduce, analysis and the cost guard all read runs through
`load(root)`. The ledger is streamed once; the compact index is cached in `.rstack/cache/` and
keyed by the ledger's size and the hashes of its head and of the bytes before that size, so an
append is read incrementally and any rewrite (repair) rebuilds it. Never writes a ledger.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import paths
from .ledger import Ledger, LineProblem

CACHE_VERSION = 4  # 4: run ids and arms must be printable (records "label")
CACHE_FILE = "runview.json"
ROWS_CACHE_FILE = "runview-rows.json"
_PROBE = 65536  # bytes hashed at the head and before the cached size
# Record types the index keeps (run rows; preflights and remote/instance records are few).
_TYPES = ("run.started", "run.finished", "run.remote", "preflight", "vastai.instance")
_KEPT_PROBLEMS = 20


@dataclass
class RunRow:
    """One run: the fields every reader needs, and where its full records are in the ledger."""

    run_id: str
    arm: str | None
    seed: int | None
    args: list
    script: str | None
    script_sha256: str | None
    plan_sha256: str | None
    profile: str | None
    started_line: int
    started_offset: int
    started_ts: str | None
    output_dir: str | None
    retry_of: str | None = None
    status: str | None = None  # None while in flight
    category: str | None = None
    cost_usd: float = 0.0
    finished_line: int | None = None
    finished_offset: int | None = None
    finished_ts: str | None = None

    FIELDS = ("run_id", "arm", "seed", "args", "script", "script_sha256", "plan_sha256", "profile",
              "started_line", "started_offset", "started_ts", "output_dir", "retry_of", "status",
              "category", "cost_usd", "finished_line", "finished_offset", "finished_ts")

    def to_list(self) -> list:
        return [getattr(self, name) for name in self.FIELDS]

    @classmethod
    def from_list(cls, values: list) -> "RunRow":
        return cls(**dict(zip(cls.FIELDS, values)))

    @property
    def finished(self) -> bool:
        return self.status is not None

    @property
    def version(self) -> tuple:
        """What a run's result depends on besides its args: the script it ran. (A plan edit that
        changes an arm's design changes its args; other plan edits leave its runs valid.)"""
        return (self.script_sha256,)

    @property
    def done_key(self) -> tuple:
        """(arm, seed, args, script sha256): what --resume skips when it is ok."""
        return (self.arm, self.seed, tuple(self.args), *self.version)


def _row(lineno: int, offset: int, item: dict) -> RunRow:
    seed = item.get("seed")
    return RunRow(
        run_id=item["run_id"], arm=item.get("arm"),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        args=[str(a) for a in item.get("args") or []], script=item.get("script"),
        script_sha256=item.get("script_sha256"), plan_sha256=item.get("plan_sha256"),
        profile=item.get("profile"), started_line=lineno, started_offset=offset,
        started_ts=item.get("ts"), output_dir=item.get("output_dir"),
        retry_of=item.get("retry_of"))


def _close(row: RunRow, lineno: int, offset: int, item: dict, cost: float) -> None:
    row.status = str(item.get("status"))
    row.category = item.get("category")
    row.cost_usd = cost
    row.finished_line, row.finished_offset, row.finished_ts = lineno, offset, item.get("ts")


def _cost(item: dict) -> float:
    cost = item.get("cost_usd")
    return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0


def _group_key(arm, version) -> str:
    return json.dumps([arm, *version])


@dataclass
class RunIndex:
    """A summary small enough to cache and load in milliseconds at 100k runs (counts per arm and
    version, done keys, spend, the runs in flight), plus every run's row on demand (`runs()`,
    one streamed pass, for the readers that list or pick runs)."""

    root: Path
    ledger_path: Path
    inflight: dict[str, RunRow] = field(default_factory=dict)
    # "[arm, script sha]" -> {"ok": n, "failed": n, "ok_seeds": [...], "failed_seeds": [...]}
    groups: dict[str, dict] = field(default_factory=dict)
    done: set[tuple] = field(default_factory=set)
    run_cost: float = 0.0
    run_count: int = 0
    preflights: list[dict] = field(default_factory=list)
    remote: dict[str, dict] = field(default_factory=dict)  # run id -> its run.remote record
    instances: dict[str, dict] = field(default_factory=dict)  # vastai instance id -> billing
    line_count: int = 0
    size: int = 0  # bytes indexed (up to the last complete line)
    problems: list[dict] = field(default_factory=list)  # the first few, as LineProblem.as_json
    damage_count: int = 0
    latest_ts: str | None = None
    last_finished_line: int = 0
    torn_tail: bool = False  # bytes after the last complete line (a torn or half-written record)
    _rows: dict[str, RunRow] | None = None

    # -- building ------------------------------------------------------------------------------

    def _add(self, lineno: int, offset: int, item) -> None:
        if isinstance(item, LineProblem):
            if item.is_damage:
                self.damage_count += 1
            if len(self.problems) < _KEPT_PROBLEMS:
                self.problems.append(item.as_json())
            return
        ts = item.get("ts")
        if isinstance(ts, str) and (self.latest_ts is None or ts > self.latest_ts):
            self.latest_ts = ts
        rtype = item.get("type")
        run_id = item.get("run_id")
        if rtype == "run.started" and isinstance(run_id, str):
            self.inflight[run_id] = _row(lineno, offset, item)
            self.run_count += 1
            if self._rows is not None:  # a cold build fills the rows in the same pass
                self._rows[run_id] = self.inflight[run_id]
        elif rtype == "run.finished" and isinstance(run_id, str):
            cost = _cost(item)
            self.run_cost += cost
            self.last_finished_line = lineno
            row = self.inflight.pop(run_id, None)
            if row is None:  # no run.started, or a second close: spend only
                return
            _close(row, lineno, offset, item, cost)
            group = self.groups.setdefault(_group_key(row.arm, row.version),
                                           {"ok": 0, "failed": 0, "ok_seeds": [],
                                            "failed_seeds": []})
            kind = "ok" if row.status == "ok" else "failed"
            group[kind] += 1
            if row.seed not in group[f"{kind}_seeds"]:
                group[f"{kind}_seeds"].append(row.seed)
            if row.status == "ok":
                self.done.add(row.done_key)
        elif rtype == "run.remote" and isinstance(run_id, str):
            self.remote[run_id] = item
        elif rtype == "preflight":
            self.preflights.append(item)
        elif rtype == "vastai.instance":
            inst = self.instances.setdefault(str(item.get("instance_id")), {})
            for name in ("billed_usd", "runs_usd"):
                value = item.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    inst[name] = float(value)
            inst["state"] = item.get("state")

    def _extend(self) -> bool:
        """Read what was appended since the last call; True when anything was."""
        before = self.size
        last = None
        for lineno, offset, item in Ledger(self.root, "experiments").stream(
                start=self.size, first_line=self.line_count + 1):
            self._add(lineno, offset, item)
            last = (lineno, offset)
        if last is not None:
            self.line_count = last[0]
            self.size = last[1] + _line_length(self.ledger_path, last[1])
        # Blank lines are not yielded: count them up to the last complete line.
        complete = _complete_size(self.ledger_path, self.size)
        if complete > self.size:
            self.line_count += _count_newlines(self.ledger_path, self.size, complete)
            self.size = complete
        return self.size != before

    # -- the questions readers ask -------------------------------------------------------------

    @property
    def rows(self) -> dict[str, RunRow]:
        """Every run by id, in started order: from the rows cache (its own file, so status never
        loads it) brought up to date by streaming what was appended, then kept."""
        if self._rows is None:
            rows, start, first = _cached_rows(self.root, self.ledger_path, self.size)
            for lineno, offset, item in Ledger(self.root, "experiments").stream(
                    start=start, first_line=first, types=("run.started", "run.finished")):
                if isinstance(item, LineProblem) or not isinstance(item.get("run_id"), str):
                    continue
                if lineno > self.line_count:
                    break
                run_id = item["run_id"]
                if item.get("type") == "run.started":
                    rows[run_id] = _row(lineno, offset, item)
                elif run_id in rows and not rows[run_id].finished:
                    _close(rows[run_id], lineno, offset, item, _cost(item))
            self._rows = rows
            if start < self.size:
                _save_rows(self.root, self.ledger_path, self.size, self.line_count, rows)
        return self._rows

    def runs(self) -> list[RunRow]:
        return list(self.rows.values())

    def in_flight(self) -> list[RunRow]:
        return list(self.inflight.values())

    def spent_usd(self) -> float:
        """Money spent: every finished run's cost, plus what rented instances billed beyond the
        runs on them (boot, bootstrap, sync, teardown)."""
        total = self.run_cost
        total += sum(max(0.0, inst.get("billed_usd", 0.0) - inst.get("runs_usd", 0.0))
                     for inst in self.instances.values())
        return round(total, 6)

    def done_keys(self) -> set[tuple]:
        return set(self.done)

    def _current(self, current: dict[str, tuple] | None, versions: dict[str, tuple]):
        """Is (arm, version) a current version? None on either side cannot tell versions
        apart: a plan's script that is not there now."""
        merged = dict(versions)
        merged.update(current or {})

        def is_current(arm, version) -> bool:
            want = merged.get(arm, version)
            return all(w is None or got is None or w == got for w, got in zip(want, version))
        return is_current

    def current_versions(self, current: dict[str, tuple] | None = None) -> dict[str, tuple]:
        """The version each arm counts runs of: `current[arm]` where given (the plan's script's
        hash now), else the version of the arm's most recently started run."""
        versions: dict[str, tuple] = {}
        for row in self.rows.values():
            if row.arm is not None:
                versions[row.arm] = row.version
        versions.update(current or {})
        return versions

    def split_current(self, current: dict[str, tuple] | None = None
                      ) -> tuple[list[RunRow], list[RunRow]]:
        """(runs of each arm's current version, superseded runs of an older script)."""
        is_current = self._current(current, self.current_versions(current))
        now, old = [], []
        for row in self.rows.values():
            (now if is_current(row.arm, row.version) else old).append(row)
        return now, old

    def arm_counts(self, current: dict[str, tuple]) -> tuple[dict[str, dict], int]:
        """For status, from the summary alone: ({arm: {ok, failed, running, ok_seeds,
        failed_seeds}} over current versions, how many finished runs are superseded). Arms
        missing from `current` count their latest version (the one last finished or running)."""
        latest: dict[str, tuple] = {}
        for key in self.groups:  # insertion order: the version that finished last wins
            arm, *version = json.loads(key)
            latest[arm] = tuple(version)
        for row in self.inflight.values():
            latest[row.arm] = row.version
        is_current = self._current(current, latest)
        arms: dict[str, dict] = {}
        superseded = 0
        for key, group in self.groups.items():
            arm, *version = json.loads(key)
            if not is_current(arm, tuple(version)):
                superseded += group["ok"] + group["failed"]
                continue
            entry = arms.setdefault(arm or "?", {"ok": 0, "failed": 0, "running": 0,
                                                  "ok_seeds": set(), "failed_seeds": set()})
            entry["ok"] += group["ok"]
            entry["failed"] += group["failed"]
            entry["ok_seeds"].update(group["ok_seeds"])
            entry["failed_seeds"].update(group["failed_seeds"])
        for row in self.inflight.values():
            if is_current(row.arm, row.version):
                arms.setdefault(row.arm or "?", {"ok": 0, "failed": 0, "running": 0,
                                                 "ok_seeds": set(), "failed_seeds": set()})[
                    "running"] += 1
            else:
                superseded += 1
        return arms, superseded

    def find(self, run_id: str) -> list[RunRow]:
        """The run with this id, else every run whose id starts with it."""
        if run_id in self.rows:
            return [self.rows[run_id]]
        ids = sorted(self.rows)
        start = bisect.bisect_left(ids, run_id)
        out = []
        for candidate in ids[start:]:
            if not candidate.startswith(run_id):
                break
            out.append(self.rows[candidate])
        return out

    def iter_records(self, rows: list[RunRow]) -> Iterator[tuple[RunRow, dict, dict | None]]:
        """(row, run.started, run.finished or None) for rows, read with one open file."""
        from .ledger import strict_loads

        if not rows:  # a project with no ledger yet has no rows, and no file to open
            return
        with open(self.ledger_path, "rb") as handle:
            for row in rows:
                handle.seek(row.started_offset)
                started = strict_loads(handle.readline())
                done = None
                if row.finished_offset is not None:
                    handle.seek(row.finished_offset)
                    done = strict_loads(handle.readline())
                yield row, started, done

    # -- the cache -----------------------------------------------------------------------------

    _CACHED = ("groups", "run_cost", "run_count", "preflights", "remote", "instances",
               "line_count", "size", "problems", "damage_count", "latest_ts",
               "last_finished_line")

    def to_json(self) -> dict:
        data = {name: getattr(self, name) for name in self._CACHED}
        data.update(version=CACHE_VERSION, key=_key(self.ledger_path, self.size),
                    inflight=[row.to_list() for row in self.inflight.values()],
                    done=[list(key) for key in self.done])
        return data

    @classmethod
    def from_json(cls, root: Path, ledger_path: Path, data: dict) -> "RunIndex":
        index = cls(root=root, ledger_path=ledger_path)
        for name in cls._CACHED:
            setattr(index, name, data[name])
        index.inflight = {values[0]: RunRow.from_list(values) for values in data["inflight"]}
        index.done = {(arm, seed, tuple(args), *version)
                      for arm, seed, args, *version in data["done"]}
        return index


def _line_length(path: Path, offset: int) -> int:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return len(handle.readline())


def _complete_size(path: Path, size: int) -> int:
    """The byte count up to the last newline at or after `size` (reads backwards from the end)."""
    try:
        with open(path, "rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            pos = end
            while pos > size:
                step = max(size, pos - _PROBE)
                handle.seek(step)
                block = handle.read(pos - step)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    return step + cut + 1
                pos = step
    except FileNotFoundError:
        return 0
    return size


def _count_newlines(path: Path, start: int, end: int) -> int:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(end - start).count(b"\n")


def _key(path: Path, size: int) -> list[str]:
    """sha256 of the first _PROBE bytes and of the _PROBE bytes before `size`: an append keeps
    both, a rewrite (repair, a hand edit) changes one of them or the size."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(min(size, _PROBE))
            handle.seek(max(0, size - _PROBE))
            tail = handle.read(min(size, _PROBE))
    except FileNotFoundError:
        return ["", ""]
    return [hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()]


def cache_path(root: Path) -> Path:
    return paths.cache_dir(root) / CACHE_FILE


def rows_cache_path(root: Path) -> Path:
    return paths.cache_dir(root) / ROWS_CACHE_FILE


def _cached_rows(root: Path, ledger_path: Path, size_now: int) -> tuple[dict, int, int]:
    """(rows, byte offset and line number to stream on from) from the rows cache, or from 0."""
    try:
        data = json.loads(rows_cache_path(root).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data["size"] > size_now \
                or _key(ledger_path, data["size"]) != data["key"]:
            raise ValueError("stale")
        rows = {values[0]: RunRow.from_list(values) for values in data["rows"]}
        return rows, data["size"], data["line_count"] + 1
    except (OSError, ValueError, KeyError, TypeError):
        return {}, 0, 1


def _save_rows(root: Path, ledger_path: Path, size: int, line_count: int, rows: dict) -> None:
    from .atomic import write_text

    data = {"version": CACHE_VERSION, "size": size, "line_count": line_count,
            "key": _key(ledger_path, size), "rows": [row.to_list() for row in rows.values()]}
    try:
        write_text(rows_cache_path(root), json.dumps(data, separators=(",", ":")))
    except OSError:
        pass


def _cached(root: Path, ledger_path: Path, size_now: int) -> RunIndex | None:
    try:
        data = json.loads(cache_path(root).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data["size"] > size_now:
            return None
        if _key(ledger_path, data["size"]) != data["key"]:
            return None
        return RunIndex.from_json(root, ledger_path, data)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, damaged or from another version: rebuild


def load(root: Path | str, *, cache: bool = True) -> RunIndex:
    """The run index of a project's experiments ledger, up to date with what is on disk."""
    root = Path(root)
    ledger_path = paths.ledger_path(root, "experiments")
    try:
        size_now = ledger_path.stat().st_size
    except FileNotFoundError:
        return RunIndex(root=root, ledger_path=ledger_path)
    index = _cached(root, ledger_path, size_now) if cache else None
    fresh = index is None
    if index is None:  # a cold build: the rows come with it in the same pass
        index = RunIndex(root=root, ledger_path=ledger_path, _rows={})
    changed = index._extend()
    if fresh and cache and index.size:
        _save_rows(root, ledger_path, index.size, index.line_count, index._rows)
    try:
        index.torn_tail = ledger_path.stat().st_size > index.size
    except FileNotFoundError:
        pass
    if cache and (changed or fresh) and index.size:
        _save(root, index)
    return index


def _save(root: Path, index: RunIndex) -> None:
    from .atomic import write_text

    try:
        write_text(cache_path(root), json.dumps(index.to_json(), separators=(",", ":")))
    except OSError:
        pass  # a read-only project still reads; it just streams again next time


def current_versions_for(root: Path, plan) -> dict[str, tuple]:
    """{arm: (sha256 of the plan's script now,)} for a loaded plan's arms."""
    from .hashing import sha256_file_or_none

    if plan is None:
        return {}
    script = sha256_file_or_none(Path(root) / plan.script)
    return {arm: (script,) for arm in plan.execution.arms}


def default_plan_versions(root: Path) -> dict[str, tuple]:
    """current_versions_for the project's experiment-plan.md, or {} when it does not load."""
    from .errors import RStackError
    from .plan import default_plan_path, load_plan

    try:
        plan = load_plan(default_plan_path(Path(root)))
    except (RStackError, OSError):
        return {}
    return current_versions_for(root, plan)


__all__ = ["RunIndex", "RunRow", "load", "cache_path", "current_versions_for",
           "default_plan_versions"]
