"""Seed-aware statistics: per-arm summaries (mean, sample std, Student-t 95% CI).

Comparisons between arms (difference intervals, tests, verdicts) live in compare.py.

Pure functions over lists of floats; nothing here reads files. It must never report an interval
or a p-value it cannot compute: those come back as None with a flag that says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_SEEDS = 3  # fewer seeds than this are flagged in every output

def sample_flags(n: int) -> list[str]:
    """The warnings every output repeats for a small sample."""
    if n <= 1:
        return [f"n={n}: no interval"]
    if n < MIN_SEEDS:
        return [f"n={n}: fewer than {MIN_SEEDS} seeds, interval is unreliable"]
    return []


@dataclass(frozen=True)
class Summary:
    """One arm's values of one metric."""

    n: int
    mean: float
    std: float | None  # sample standard deviation (ddof=1); None when n < 2
    ci_low: float | None
    ci_high: float | None
    values: tuple[float, ...]
    flags: tuple[str, ...] = field(default=())

    @property
    def ci_half(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2


def summarize(values: list[float] | tuple[float, ...], confidence: float = CONFIDENCE) -> Summary:
    """n, mean, sample std and the Student-t interval of the mean."""
    from scipy import stats as sps

    vals = tuple(float(v) for v in values)
    n = len(vals)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"non-finite value among {vals}")
    mean = math.fsum(vals) / n
    if n < 2:
        return Summary(n, mean, None, None, None, vals, tuple(sample_flags(n)))
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    std = math.sqrt(var)
    t_crit = float(sps.t.ppf(0.5 + confidence / 2, n - 1))
    half = t_crit * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, vals, tuple(sample_flags(n)))
