"""The one answer to "is the analysis current?", used by `rstack status`, the bundle and the paper
audit. Reads the experiments ledger and summary.json; never writes, and imports nothing heavy
(status runs in every skill's preamble).

The rule: `rstack analyze` records the ledger's sha256 and line count. The analysis is current while
that prefix is unchanged and no run finished ok after it. Records appended later (a note, a
preflight, a reproduce verdict, a failed run) change nothing analyze would use; a rewritten prefix
or a newer ok run does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .hashing import prefix_sha256
from .ledger import strict_loads

REWRITTEN = "the experiments ledger changed since `rstack analyze`"


@dataclass
class Freshness:
    current: bool
    reason: str | None = None  # why not current, one line
    newer: dict[str, list[str]] = field(default_factory=dict)  # arm -> ok run ids after analyze
    rewritten: bool = False  # the analysed prefix itself changed (every artifact is suspect)
    appended: int = 0  # records after the analysed prefix, of any type

    def stale_arms(self, arms: list[str]) -> dict[str, list[str]]:
        """The newer ok runs of these arms (what makes an artifact showing them stale)."""
        return {arm: ids for arm, ids in self.newer.items() if arm in arms}

    def as_json(self) -> dict:
        return {"current": self.current, "reason": self.reason, "newer": self.newer,
                "rewritten": self.rewritten, "appended": self.appended}


def analysis_freshness(root: Path, summary: dict) -> Freshness:
    """Judge `summary` (analysis/summary.json, already read) against the experiments ledger now."""
    recorded = summary.get("ledger") if isinstance(summary.get("ledger"), dict) else {}
    sha, lines = recorded.get("sha256"), recorded.get("lines")
    try:
        raw = paths.ledger_path(root, "experiments").read_bytes()
    except OSError:
        return Freshness(False, "the experiments ledger is missing", rewritten=True)
    if hashlib.sha256(raw).hexdigest() == sha:
        return Freshness(True)
    if not isinstance(lines, int) or isinstance(lines, bool) or prefix_sha256(raw, lines) != sha:
        return Freshness(False, REWRITTEN, rewritten=True)
    newer: dict[str, list[str]] = {}
    appended = 0
    for line in raw.split(b"\n")[lines:]:
        if not line.strip():
            continue
        appended += 1
        try:
            record = strict_loads(line)  # a damaged line, as the ledger reads it: skipped
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("type") == "run.finished" \
                and record.get("status") == "ok":
            newer.setdefault(str(record.get("arm")), []).append(str(record.get("run_id")))
    count = sum(len(ids) for ids in newer.values())
    if count:
        return Freshness(False, f"{count} run(s) finished after `rstack analyze`", newer,
                         appended=appended)
    return Freshness(True, appended=appended)


def read_summary(root: Path) -> dict | None:
    """analysis/summary.json as a dict, or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(root) / "analysis" / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
