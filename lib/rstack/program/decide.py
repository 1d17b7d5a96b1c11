"""KEEP / DISCARD / INCONCLUSIVE for a candidate against the champion, decided by code from the
interval of the paired difference (`rstack.analysis.compare`), never by one run against another.

No statistics here: `compare` computes the interval; this module only applies the program's
rule to it, so the local loop and a shared program's verifier decide the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

KEEP, DISCARD, INCONCLUSIVE, FAILED, BASELINE = "KEEP", "DISCARD", "INCONCLUSIVE", "FAILED", "BASELINE"
VERDICTS = (BASELINE, KEEP, DISCARD, INCONCLUSIVE, FAILED)


@dataclass(frozen=True)
class Stage:
    """One paired comparison of the candidate with the champion on one set of seeds."""

    name: str  # "trial" | "confirm"
    seeds: list[int]
    verdict: str
    mean: float  # the candidate's mean
    champion_mean: float
    diff: float | None  # candidate - champion, in the metric's units
    ci_low: float | None
    ci_high: float | None
    improvement: float | None  # oriented: positive = better in the declared direction
    improvement_low: float | None
    improvement_high: float | None
    p: float | None
    n: int
    values: dict[int, float]  # seed -> the candidate's value (what #13's verifier re-checks)
    champion_values: dict[int, float]

    def as_json(self) -> dict:
        return {"name": self.name, "seeds": self.seeds, "verdict": self.verdict,
                "values": {str(k): v for k, v in self.values.items()},
                "champion_values": {str(k): v for k, v in self.champion_values.items()},
                "mean": self.mean, "champion_mean": self.champion_mean, "diff": self.diff,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "improvement": self.improvement,
                "improvement_low": self.improvement_low,
                "improvement_high": self.improvement_high, "p": self.p, "n": self.n}


def rule(improvement_low: float | None, improvement_high: float | None, min_effect: float) -> str:
    """KEEP iff the improvement's lower bound > min_effect; DISCARD iff its upper bound is below
    min_effect (an improvement that large is excluded); else INCONCLUSIVE."""
    if improvement_low is None or improvement_high is None:
        return INCONCLUSIVE
    if improvement_low > min_effect:
        return KEEP
    if improvement_high < min_effect:
        return DISCARD
    return INCONCLUSIVE


def compare_stage(name: str, candidate: dict[int, float], champion: dict[int, float], *,
                  direction: str, min_effect: float, alpha: float) -> Stage:
    """Pair candidate and champion values by seed (both must hold every seed) and decide."""
    from ..analysis.compare import compare

    seeds = sorted(candidate)
    if sorted(champion) != seeds:
        raise ValueError(f"unpaired seeds: candidate {seeds}, champion {sorted(champion)}")
    treatment = [float(candidate[s]) for s in seeds]
    baseline = [float(champion[s]) for s in seeds]
    c = compare(treatment, baseline, direction=direction, min_effect=min_effect, paired=True,
                alpha=alpha)
    low, high = c.improvement_low, c.improvement_high
    ci_low, ci_high = c.ci_low, c.ci_high
    if low is None and c.improvement is not None and len(set(
            t - b for t, b in zip(treatment, baseline))) == 1:
        # Every seed moved by exactly the same amount (code that consumes no seed noise, or a
        # change that did not touch it): the interval is that one point.
        low = high = c.improvement
        ci_low = ci_high = c.diff
    return Stage(name=name, seeds=seeds, verdict=rule(low, high, min_effect),
                 mean=sum(treatment) / len(treatment), champion_mean=sum(baseline) / len(baseline),
                 diff=c.diff, ci_low=ci_low, ci_high=ci_high, improvement=c.improvement,
                 improvement_low=low, improvement_high=high, p=c.p,
                 n=len(seeds), values=dict(zip(seeds, treatment)),
                 champion_values=dict(zip(seeds, baseline)))


def combine(stages: list[Stage]) -> str:
    """The trial's verdict: KEEP only when every stage (trial seeds, then confirm seeds) is KEEP;
    DISCARD when any stage excluded the improvement; else INCONCLUSIVE."""
    if stages and all(s.verdict == KEEP for s in stages):
        return KEEP
    if any(s.verdict == DISCARD for s in stages):
        return DISCARD
    return INCONCLUSIVE


def mean_interval(values: list[float], alpha: float) -> tuple[float | None, float | None]:
    """The t interval of one mean (the champion's level, for status and the plot)."""
    from ..analysis.stats import summarize

    summary = summarize(values, confidence=1 - alpha)
    return summary.ci_low, summary.ci_high


def detectable_effect(values: list[float], alpha: float) -> float | None:
    """The smallest paired improvement these seeds can tell from noise. Two independent runs per
    seed give a per-seed difference with sd sqrt(2) x the seed sd, so its interval's half-width
    is sqrt(2) x the half-width of one mean's interval over the same seeds. Reruns that share
    seed noise do better; this is the safe side."""
    from ..analysis.stats import summarize

    half = summarize(values, confidence=1 - alpha).ci_half
    return None if half is None else 2 ** 0.5 * half
