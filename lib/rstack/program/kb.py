"""The knowledge base `.rstack/program.jsonl`: append `program.trial`/`program.champion` records
and read them back as one model (trials, current champion, spend, what was already tried).

The only writer is `Ledger.append`; the only reader of these records is `KnowledgeBase`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..ledger import Ledger

LEDGER = "program"


def ledger(root: Path) -> Ledger:
    return Ledger(root, LEDGER)


@dataclass
class KnowledgeBase:
    """Every trial and champion record of one program, in ledger order."""

    program: str
    trials: list[dict] = field(default_factory=list)
    champions: list[dict] = field(default_factory=list)
    damage: int = 0

    @classmethod
    def read(cls, root: Path, program: str) -> "KnowledgeBase":
        result = ledger(root).read(types=["program.trial", "program.champion"])
        kb = cls(program, damage=len(result.damage))
        for record in result.records:
            if record.get("program") != program:
                continue
            (kb.trials if record["type"] == "program.trial" else kb.champions).append(record)
        return kb

    @property
    def champion(self) -> dict | None:
        return self.champions[-1] if self.champions else None

    @property
    def baseline(self) -> dict | None:
        return next((t for t in self.trials if t["verdict"] == "BASELINE"), None)

    @property
    def candidates(self) -> list[dict]:
        return [t for t in self.trials if t["verdict"] != "BASELINE"]

    def next_trial_id(self) -> int:
        return max((t["trial"] for t in self.trials), default=0) + 1

    def trial(self, trial_id: int) -> dict | None:
        return next((t for t in self.trials if t["trial"] == trial_id), None)

    def tried(self, tree: str) -> dict | None:
        """The earlier trial of the same editable code (the newest), or None."""
        return next((t for t in reversed(self.trials) if t["tree"] == tree), None)

    def spent_usd(self) -> float:
        return round(sum(float(t.get("cost_usd") or 0.0) for t in self.trials), 6)

    def counts(self) -> dict[str, int]:
        out = {"trials": len(self.candidates), "kept": 0, "discarded": 0, "inconclusive": 0,
               "failed": 0}
        names = {"KEEP": "kept", "DISCARD": "discarded", "INCONCLUSIVE": "inconclusive",
                 "FAILED": "failed"}
        for t in self.candidates:
            out[names[t["verdict"]]] += 1
        return out

    def hours_used(self, now: datetime) -> float:
        """Wall-clock hours since the baseline was recorded (the program's start)."""
        base = self.baseline
        if base is None:
            return 0.0
        started = datetime.fromisoformat(base["ts"].replace("Z", "+00:00"))
        return max(0.0, (now - started).total_seconds() / 3600.0)
