"""Seed-aware statistics: per-arm summaries (mean, sample std, Student-t 95% CI) and Welch tests.

Pure functions over lists of floats; nothing here reads files. It must never report an interval
or a p-value it cannot compute: those come back as None with a flag that says why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_SEEDS = 3  # fewer seeds than this are flagged in every output

# Metric names containing one of these words are minimised; every other metric is maximised.
# The primary metric's direction always comes from the plan (evaluation.direction).
MINIMIZE_WORDS = ("loss", "error", "err", "perplexity", "ppl", "nll", "mse", "mae", "rmse",
                  "wer", "cer", "regret", "time", "latency", "distance", "fid")


def metric_direction(metric: str, *, primary_metric: str | None = None,
                     primary_direction: str | None = None) -> str:
    """`minimize` or `maximize` for a metric (the plan decides the primary one)."""
    if primary_metric is not None and metric == primary_metric and primary_direction:
        return primary_direction
    words = [w for w in _split_words(metric.lower()) if w]
    if any(word in MINIMIZE_WORDS for word in words) or any(
            marker in metric.lower() for marker in ("loss", "error", "perplexity")):
        return "minimize"
    return "maximize"


def _split_words(name: str) -> list[str]:
    out, cur = [], ""
    for ch in name:
        if ch.isalnum():
            cur += ch
        else:
            out.append(cur)
            cur = ""
    out.append(cur)
    return out


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


@dataclass(frozen=True)
class Comparison:
    """A treatment arm against the baseline on one metric."""

    delta: float  # mean(arm) - mean(baseline)
    rel_delta: float | None  # delta / |mean(baseline)|; None when the baseline mean is 0
    p_value: float | None  # Welch two-sided; None when it cannot be computed
    improved: bool  # the delta points the metric's good way
    overlap: bool | None  # the two CIs overlap; None when either has no interval
    significant: bool  # p < ALPHA, intervals disjoint, n >= MIN_SEEDS per arm; either direction
    verdict: str  # significantly better|worse, not significant (why), not testable
    flags: tuple[str, ...]


def welch_p(a: tuple[float, ...], b: tuple[float, ...]) -> float | None:
    """Two-sided Welch t-test p-value, or None when undefined (n < 2, or no variance at all)."""
    from scipy import stats as sps

    if len(a) < 2 or len(b) < 2:
        return None
    if _variance_zero(a) and _variance_zero(b):
        # Both arms are constant: the t statistic is 0/0 (equal means) or x/0 (different means).
        # Neither is a test result; say so rather than print p = 0 or nan.
        return None
    with warnings.catch_warnings():
        # One constant arm makes scipy warn about cancellation in its moment calculation; the
        # Welch statistic is still defined by the other arm's variance.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.ttest_ind(a, b, equal_var=False)
    p = float(result.pvalue)
    return p if math.isfinite(p) else None


def _variance_zero(vals: tuple[float, ...]) -> bool:
    return max(vals) == min(vals)


def compare(arm: Summary, baseline: Summary, direction: str, *, arm_name: str = "arm",
            baseline_name: str = "baseline") -> Comparison:
    delta = arm.mean - baseline.mean
    rel = delta / abs(baseline.mean) if baseline.mean != 0 else None
    improved = delta < 0 if direction == "minimize" else delta > 0
    p = welch_p(arm.values, baseline.values)
    if arm.ci_low is None or baseline.ci_low is None:
        overlap = None
    else:
        overlap = not (arm.ci_high < baseline.ci_low or baseline.ci_high < arm.ci_low)
    enough_seeds = arm.n >= MIN_SEEDS and baseline.n >= MIN_SEEDS
    # Significance says whether the difference is beyond seed noise, in either direction;
    # `improved` says which way it points. Keeping the two apart lets "significantly worse" be
    # both true and reported as significant, so the analysis and the paper audit agree.
    significant = bool(p is not None and p < ALPHA and overlap is False and enough_seeds)
    flags = []
    for name, summary in ((arm_name, arm), (baseline_name, baseline)):
        flags += [f"n<{MIN_SEEDS}: {name} {flag}" for flag in summary.flags]
    if p is None and arm.n >= 2 and baseline.n >= 2:
        flags.append("no p-value: both arms have zero variance")
    if p is None:
        verdict = "not testable"
    elif significant:
        verdict = "significantly better" if improved else "significantly worse"
    elif p < ALPHA and overlap:
        verdict = "not significant (intervals overlap)"
    elif p < ALPHA and not enough_seeds:
        verdict = f"not significant (fewer than {MIN_SEEDS} seeds)"
    else:
        verdict = "not significant"
    return Comparison(delta, rel, p, improved, overlap, significant, verdict, tuple(flags))
