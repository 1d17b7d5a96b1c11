"""One comparison of a treatment arm against the baseline on one metric: the difference in means
with its 95% interval, a bootstrap interval beside it, p, Holm adjustment and a verdict.

Shared by `rstack analyze` and the program loop's KEEP/DISCARD decision. Pure functions over
lists of floats; nothing here reads files. It never guesses a metric's direction (a metric without
one gets the verdict "direction not declared") and never calls n < 3 a detectable difference.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Sequence

from ..plan import DIRECTIONS  # the plan schema owns the metric directions
from .stats import MIN_SEEDS

BOOTSTRAP_RESAMPLES = 9999

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"
BETTER_BY_MIN_EFFECT = "better by at least min_effect"
SMALLER_THAN_MIN_EFFECT = "smaller than min_effect"
INCONCLUSIVE = "inconclusive"
NO_DIRECTION = "direction not declared"
TOO_FEW_SEEDS = f"too few seeds (n<{MIN_SEEDS})"
NOT_TESTABLE = "not testable"

# The closed vocabulary of verdicts; summary.json, the CLI and the audit read these strings.
VERDICTS = (BETTER, WORSE, NO_DIFFERENCE, BETTER_BY_MIN_EFFECT, SMALLER_THAN_MIN_EFFECT,
            INCONCLUSIVE, NO_DIRECTION, TOO_FEW_SEEDS, NOT_TESTABLE)
# Verdicts that claim a difference beyond seed noise (the word "significantly" needs one).
DETECTED = (BETTER, WORSE, BETTER_BY_MIN_EFFECT)


@dataclass(frozen=True)
class Comparison:
    """Treatment minus baseline on one metric; `improvement*` is the same difference oriented so
    that positive means better in the declared direction (None without a direction)."""

    diff: float
    ci_low: float | None
    ci_high: float | None
    boot_low: float | None
    boot_high: float | None
    rel_diff: float | None  # diff / |mean(baseline)|; None when the baseline mean is 0
    p: float | None
    p_adjusted: float | None  # filled by holm(); equals p until then
    paired: bool
    n_treatment: int
    n_baseline: int
    direction: str | None
    min_effect: float | None  # absolute threshold used (a relative one is converted)
    min_effect_relative: float | None  # the declared fraction when min_effect was "x%"
    improvement: float | None
    improvement_low: float | None
    improvement_high: float | None
    verdict: str
    flags: tuple[str, ...] = ()
    alpha: float = 0.05
    arm: str | None = None
    baseline: str | None = None
    metric: str | None = None
    mean_treatment: float | None = None
    mean_baseline: float | None = None

    @property
    def n(self) -> int:
        return min(self.n_treatment, self.n_baseline)

    @property
    def significant(self) -> bool:
        """A difference beyond seed noise, in either direction (after Holm when applied)."""
        return self.verdict in DETECTED

    def as_json(self) -> dict:
        out = asdict(self)
        out["flags"] = list(self.flags)
        out["n"] = self.n
        out["significant"] = self.significant
        return out


def compare(treatment: Sequence[float], baseline: Sequence[float], *, direction: str | None,
            min_effect: float | None = None, paired: bool, alpha: float = 0.05,
            rng_seed: int = 0, min_effect_relative: bool = False, arm: str | None = None,
            baseline_arm: str | None = None, metric: str | None = None) -> Comparison:
    """Compare two samples. `paired` needs equal lengths, aligned by seed (same data, same init);
    `min_effect_relative` reads `min_effect` as a fraction of |mean(baseline)|."""
    t = _finite(treatment, "treatment")
    b = _finite(baseline, "baseline")
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS} or None, not {direction!r}")
    if paired and len(t) != len(b):
        raise ValueError(f"paired comparison needs one value per seed on both sides, got "
                         f"{len(t)} treatment and {len(b)} baseline values")
    if min_effect is not None and (not math.isfinite(min_effect) or min_effect < 0):
        raise ValueError(f"min_effect must be a finite number >= 0, not {min_effect!r}")
    mean_t, mean_b = math.fsum(t) / len(t), math.fsum(b) / len(b)
    diff = mean_t - mean_b
    rel = diff / abs(mean_b) if mean_b != 0 else None
    flags: list[str] = []
    threshold, relative = min_effect, None
    if min_effect is not None and min_effect_relative:
        relative = min_effect
        threshold = min_effect * abs(mean_b)
    if paired:
        ci, p = _paired_t(t, b, 1 - alpha)
    else:
        ci, p = _welch(t, b, 1 - alpha)
    boot = _bootstrap(t, b, paired, 1 - alpha, rng_seed)
    if min(len(t), len(b)) < MIN_SEEDS:
        flags.append(f"n<{MIN_SEEDS}: {min(len(t), len(b))} seed(s); no difference is claimed")
    if ci is None and min(len(t), len(b)) >= 2:
        flags.append("zero variance: every value is the same, there is no interval to test")
    if direction is None:
        flags.append("direction not declared: add evaluation.metrics."
                     f"{metric or '<metric>'}.direction to the plan")
    sign = {"maximize": 1.0, "minimize": -1.0}.get(direction or "", None)
    imp = imp_lo = imp_hi = None
    if sign is not None:
        imp = sign * diff
        if ci is not None:
            imp_lo, imp_hi = sorted((sign * ci[0], sign * ci[1]))
    comparison = Comparison(
        diff=diff, ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
        boot_low=boot[0] if boot else None, boot_high=boot[1] if boot else None,
        rel_diff=rel, p=p, p_adjusted=p, paired=paired, n_treatment=len(t), n_baseline=len(b),
        direction=direction, min_effect=threshold, min_effect_relative=relative,
        improvement=imp, improvement_low=imp_lo, improvement_high=imp_hi, verdict=NOT_TESTABLE,
        flags=tuple(flags), alpha=alpha, arm=arm, baseline=baseline_arm, metric=metric,
        mean_treatment=mean_t, mean_baseline=mean_b)
    return replace(comparison, verdict=_verdict(comparison, p))


def _verdict(c: Comparison, p: float | None) -> str:
    """The verdict from the interval in the declared direction; `p` (adjusted after Holm) must
    also be below alpha for any claimed difference."""
    if c.direction is None:
        return NO_DIRECTION
    if c.n < MIN_SEEDS:
        return TOO_FEW_SEEDS
    if c.improvement_low is None or c.improvement_high is None or p is None:
        return NOT_TESTABLE
    lo, hi = c.improvement_low, c.improvement_high
    detectable = p < c.alpha
    if c.min_effect is None:
        if lo > 0 and detectable:
            return BETTER
        if hi < 0 and detectable:
            return WORSE
        return NO_DIFFERENCE
    m = c.min_effect
    if lo > m and detectable:
        return BETTER_BY_MIN_EFFECT
    if -m < lo and hi < m:
        return SMALLER_THAN_MIN_EFFECT
    if hi < 0 and detectable:
        return WORSE
    return INCONCLUSIVE


def holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm step-down adjustment over every comparison that has a p-value, in the given order;
    the verdicts are re-decided on the adjusted p (a family of tests claims less than one)."""
    indexed = sorted((c.p, i) for i, c in enumerate(comparisons) if c.p is not None)
    m = len(indexed)
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    out = []
    for i, c in enumerate(comparisons):
        if i not in adjusted:
            out.append(replace(c, p_adjusted=None))
            continue
        updated = replace(c, p_adjusted=adjusted[i])
        verdict = _verdict(updated, adjusted[i])
        flags = c.flags
        if verdict != c.verdict:
            flags = flags + (f"Holm-adjusted p={adjusted[i]:.3g} over {m} comparisons: "
                             f"'{c.verdict}' before adjustment",)
        out.append(replace(updated, verdict=verdict, flags=flags))
    return out


def _finite(values: Sequence[float], side: str) -> tuple[float, ...]:
    vals = tuple(float(v) for v in values)
    if not vals:
        raise ValueError(f"{side} has no values")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"non-finite value among the {side} values {vals}")
    return vals


def _var(vals: tuple[float, ...]) -> float:
    mean = math.fsum(vals) / len(vals)
    return math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)


def _paired_t(t, b, confidence) -> tuple[tuple[float, float] | None, float | None]:
    """Student-t interval of the mean per-seed difference, and the paired t-test's p."""
    from scipy import stats as sps

    d = tuple(x - y for x, y in zip(t, b))
    n = len(d)
    if n < 2:
        return None, None
    var = _var(d)
    if var == 0:
        return None, None
    mean = math.fsum(d) / n
    se = math.sqrt(var / n)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = 2 * float(sps.t.sf(abs(mean / se), n - 1))
    return (mean - half, mean + half), p


def _welch(t, b, confidence) -> tuple[tuple[float, float] | None, float | None]:
    """Welch-Satterthwaite interval of the difference in means, and Welch's two-sided p."""
    from scipy import stats as sps

    if len(t) < 2 or len(b) < 2:
        return None, None
    vt, vb = _var(t) / len(t), _var(b) / len(b)
    if vt + vb == 0:
        return None, None
    se = math.sqrt(vt + vb)
    df = (vt + vb) ** 2 / (vt ** 2 / (len(t) - 1) + vb ** 2 / (len(b) - 1))
    diff = math.fsum(t) / len(t) - math.fsum(b) / len(b)
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    p = 2 * float(sps.t.sf(abs(diff / se), df))
    return (diff - half, diff + half), p


def _bootstrap(t, b, paired, confidence, seed) -> tuple[float, float] | None:
    """Percentile bootstrap of the difference in means (per-seed differences when paired).

    Percentile rather than BCa: at 3-5 seeds BCa's jackknife acceleration is unstable and often
    undefined. A fixed generator keeps analyze's output byte-identical.
    """
    import numpy as np
    from scipy import stats as sps

    if min(len(t), len(b)) < 2:
        return None
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (constant) samples warn; the bounds are fine
        if paired:
            data = (np.asarray(t) - np.asarray(b),)
            res = sps.bootstrap(data, np.mean, confidence_level=confidence,
                                n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=rng)
        else:
            def stat(x, y, axis=-1):
                return np.mean(x, axis=axis) - np.mean(y, axis=axis)
            res = sps.bootstrap((np.asarray(t), np.asarray(b)), stat, confidence_level=confidence,
                                n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=rng)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high
