"""Guards: pure functions that refuse (raise GuardError) when a run would break a rule.

Commands call these before they act; nothing here starts processes or touches the network.
The only input read from disk is the ledger (`spent_usd`, `preflight_passed`), passed in by callers.
"""

from __future__ import annotations

from pathlib import Path

from .errors import RStackError


class GuardError(RStackError):
    """A guard refused: the action would break a rule. Nothing was started or spent."""


def spent_usd(root: Path) -> float:
    """Money already spent in this project: the sum of every ledgered run.finished cost_usd."""
    from .ledger import Ledger

    total = 0.0
    for record in Ledger(root, "experiments").read(types=["run.finished"]).records:
        cost = record.get("cost_usd")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            total += float(cost)
    return round(total, 6)


def check_cost_cap(spent: float, estimate: float, cap: float) -> None:
    """Refuse when spent + estimate would exceed the cap; the message carries all three numbers."""
    if spent + estimate > cap + 1e-9:
        raise GuardError(
            f"cost cap: spent ${spent:.2f} + estimate ${estimate:.2f} = ${spent + estimate:.2f} "
            f"exceeds the cap ${cap:.2f}; nothing was started",
            hint="run fewer arms/seeds or a shorter timeout, or raise the cap after asking the human: "
                 "execution.max_cost_usd in the plan, or rstack config set max_cost_usd N")
