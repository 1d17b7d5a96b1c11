"""Reported quantities: their macro names, their printed text, and `analysis/numbers.tex`.

Every number the paper prints comes through a `\\newcommand` written here, preceded by the run ids
it was computed from. Nothing here computes statistics; it only names and formats them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import AnalysisError

_DIGITS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_TOKEN = re.compile(r"[A-Za-z]+|[0-9]")


def camel(text: str) -> str:
    """`val_loss2` -> `ValLossTwo`: letters only, words capitalised, digits spelled out."""
    out = []
    for token in _TOKEN.findall(text):
        if token.isdigit():
            out.append(_DIGITS[int(token)])
        else:
            out.append(token[0].upper() + token[1:])
    return "".join(out)


def macro_name(*parts: str) -> str:
    name = "rs" + "".join(camel(part) for part in parts)
    if name == "rs":
        raise AnalysisError(f"cannot build a LaTeX macro name from {parts!r}: no letters or digits",
                            hint="rename the arm or metric to contain letters")
    return name


def metric_decimals(means: list[float]) -> int:
    """Decimals that give the smallest non-zero mean three significant digits (1 to 6).

    One precision per metric, so every arm's mean, std, interval and delta line up in a column.
    """
    smallest = min((abs(m) for m in means if m != 0 and math.isfinite(m)), default=0.0)
    if smallest == 0:
        return 3
    return max(1, min(6, 2 - math.floor(math.log10(smallest))))


def fmt_fixed(value: float, decimals: int, *, signed: bool = False) -> str:
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    # "-0.000" and "+0.000" read as a sign that the data do not have.
    if float(text) == 0:
        text = f"{0:.{decimals}f}"
    return text


def fmt_p(p: float) -> str:
    if p < 0.001:
        return r"\ensuremath{<}0.001"
    return f"{p:.3f}"


@dataclass(frozen=True)
class Quantity:
    macro: str
    value: float | int
    text: str
    run_ids: tuple[str, ...]
    arm: str
    metric: str
    stat: str  # mean | std | ci_half | n | delta | rel_delta_pct | p_value
    baseline: str | None = None

    def as_json(self) -> dict:
        out = {"macro": self.macro, "value": self.value, "text": self.text,
               "run_ids": list(self.run_ids), "arm": self.arm, "metric": self.metric,
               "stat": self.stat}
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out


def check_unique(quantities: list[Quantity]) -> None:
    """Two different quantities must never share a macro (e.g. arms `lr-1` and `lr1`)."""
    seen: dict[str, Quantity] = {}
    for q in quantities:
        other = seen.get(q.macro)
        if other is not None:
            raise AnalysisError(
                f"two quantities map to the macro \\{q.macro}: {other.arm}/{other.metric}/"
                f"{other.stat} and {q.arm}/{q.metric}/{q.stat}",
                hint="rename one of the arms or metrics so that their letters and digits differ",
            )
        seen[q.macro] = q


def render_numbers_tex(quantities: list[Quantity], header: list[str],
                       omitted: list[str]) -> str:
    lines = [f"% {line}" for line in header]
    lines.append("")
    for q in quantities:
        lines.append(f"% runs: {', '.join(q.run_ids)}")
        lines.append(f"\\newcommand{{\\{q.macro}}}{{{q.text}}}")
    if omitted:
        lines.append("")
        lines.append("% Not defined (no value exists to print):")
        lines += [f"% {item}" for item in omitted]
    return "\n".join(lines) + "\n"
