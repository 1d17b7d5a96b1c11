"""What the audit knows about the study: its arms (with the names a paper may use for them), its
declared metric directions, the comparisons analyze computed and the counts it ran.

Built from the plan and analysis/summary.json. It never guesses a metric's direction from its name:
a metric without a declared direction has `direction None` and is never called better or worse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...plan import DIRECTIONS

if TYPE_CHECKING:
    from ...plan import Plan

# Verdicts (analysis/compare.py's vocabulary) that claim a difference beyond seed noise.
_BETTER_VERDICTS = ("better", "better by at least min_effect")
_WORSE_VERDICTS = ("worse",)
# Short forms in metric names, so val_loss is found as "validation loss" in prose.
_ABBREVIATIONS = {"val": "validation", "acc": "accuracy", "err": "error", "ppl": "perplexity",
                  "ece": "calibration error", "lr": "learning rate", "tr": "training",
                  "train": "training", "eval": "evaluation"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Arm:
    name: str
    names: tuple[str, ...]  # how the paper may name it: the name, the plan's label and aliases


@dataclass
class Metric:
    name: str
    direction: str | None  # minimize | maximize | None (not declared: never better or worse)
    label: str | None = None
    min_effect: float | None = None

    def patterns(self) -> list[re.Pattern]:
        """How prose may name the metric: its name, spelled out, or its label; words may be
        joined by spaces or underscores (val\\_loss reads as val__loss in plain words)."""
        return [re.compile(r"(?<![\w-])" + r"[\s_]+".join(map(re.escape, re.split(r"[\s_]+", p)))
                           + r"(?![\w-])", re.I) for p in self.phrases()]

    def phrases(self) -> list[str]:
        words = [w for w in re.split(r"[_\-. ]+", self.name.lower()) if w]
        spelled = " ".join(_ABBREVIATIONS.get(w, w) for w in words)
        out = {self.name.lower(), " ".join(words), spelled}
        if self.label:
            out.add(self.label.lower())
        return sorted(out, key=len, reverse=True)


@dataclass
class Comparison:
    """One row of summary.json `comparisons`, in either shape analyze has written."""
    arm: str
    baseline: str
    metric: str
    direction: str | None
    diff: float | None  # mean(arm) - mean(baseline)
    p: float | None  # adjusted when analyze adjusted it
    verdict: str | None
    outcome: str | None  # better | worse (beyond seed noise, in the declared direction) | None
    raw: dict = field(default_factory=dict)

    @property
    def significant(self) -> bool:
        return self.outcome is not None

    def describe(self) -> str:
        diff = f"{self.diff:+.4g}" if self.diff is not None else "none"
        verdict = self.verdict or (f"significantly {self.outcome}" if self.outcome
                                   else "not significant")
        return f"{self.arm} vs {self.baseline} {self.metric}: diff {diff}, {verdict}"


def _comparison(raw: dict, metrics: dict[str, Metric]) -> Comparison | None:
    arm, base, metric = raw.get("arm"), raw.get("baseline"), raw.get("metric")
    if not all(isinstance(x, str) for x in (arm, base, metric)):
        return None
    direction = raw.get("direction") if "direction" in raw else (
        metrics[metric].direction if metric in metrics else None)
    diff = _number(raw.get("diff", raw.get("delta")))
    p = _number(raw.get("p_adjusted")) if raw.get("p_adjusted") is not None else _number(
        raw.get("p", raw.get("p_value")))
    verdict = raw.get("verdict") if isinstance(raw.get("verdict"), str) else None
    outcome = None
    if verdict is not None and "verdict" in raw and "improved" not in raw:
        outcome = ("better" if verdict in _BETTER_VERDICTS else
                   "worse" if verdict in _WORSE_VERDICTS else None)
    elif raw.get("significant") is True and direction is not None:
        outcome = "better" if raw.get("improved") is True else "worse"
    return Comparison(arm, base, metric, direction if direction in DIRECTIONS
                      else None, diff, p, verdict, outcome, raw)


@dataclass
class Study:
    arms: dict[str, Arm]
    baseline: str | None
    primary: str | None
    metrics: dict[str, Metric]
    comparisons: list[Comparison]
    means: dict[tuple[str, str], float]  # (arm, metric) -> mean over seeds
    seed_counts: set[int]  # seeds per arm (plan and summary)
    arm_count: int | None
    claims: list[str]
    plan_raw: dict | None
    plan: Plan | None = None
    run_counts: dict[str, int] = field(default_factory=dict)  # ledger runs: "all", per status

    # -- naming ---------------------------------------------------------------------------------

    def arms_in(self, words: str) -> list[tuple[int, int, str]]:
        """(start, end, arm) of every arm mention in plain words, longest name first, so "SGD
        with momentum" (an alias of `momentum`) is not also read as `sgd`."""
        found: list[tuple[int, int, str]] = []
        names = sorted(((n, arm.name) for arm in self.arms.values() for n in arm.names),
                       key=lambda x: len(x[0]), reverse=True)
        taken = [False] * (len(words) + 1)
        for name, arm in names:
            pattern = r"(?<![\w-])" + re.escape(name.lower()).replace(r"\_", "[_ -]").replace(
                "_", "[_ -]").replace(r"\-", "[_ -]") + r"(?![\w-])"
            for match in re.finditer(pattern, words.lower()):
                if any(taken[match.start():match.end()]):
                    continue
                for i in range(match.start(), match.end()):
                    taken[i] = True
                found.append((match.start(), match.end(), arm))
        return sorted(found)

    def metrics_in(self, words: str) -> list[Metric]:
        return [m for m in self.metrics.values() if any(p.search(words) for p in m.patterns())]

    def comparison(self, a: str, b: str, metric: str) -> tuple[Comparison | None, bool]:
        """The comparison between arms a and b on metric, and whether it is stored as b vs a."""
        for c in self.comparisons:
            if c.metric != metric:
                continue
            if (c.arm, c.baseline) == (a, b):
                return c, False
            if (c.arm, c.baseline) == (b, a):
                return c, True
        return None, False

    def comparisons_of(self, arm: str) -> list[Comparison]:
        return [c for c in self.comparisons if arm in (c.arm, c.baseline)]


def load_study(summary: dict | None, plan: Plan | None,
               finished: list[dict] | None = None) -> Study:
    """The study as the plan declares it (arms with label and aliases, metrics with their declared
    direction), as analyze computed it (summary.json arms and comparisons), and as the ledger's
    `run.finished` records count it ("one run diverged")."""
    summary = summary or {}
    latest = {str(r.get("run_id")): str(r.get("status")) for r in finished or []}
    run_counts: dict[str, int] = {"all": len(latest)} if latest else {}
    for status in latest.values():
        run_counts[status] = run_counts.get(status, 0) + 1
    arms: dict[str, Arm] = {}
    metrics: dict[str, Metric] = {}
    seed_counts: set[int] = set()
    claims: list[str] = []
    if plan is not None:
        for name, spec in plan.arm_specs.items():
            names = [name] + ([spec.label] if spec.label else []) + list(spec.aliases)
            arms[name] = Arm(name, tuple(dict.fromkeys(n.strip() for n in names if n.strip())))
        for name in plan.arms:
            arms.setdefault(name, Arm(name, (name,)))
            seed_counts.add(len(plan.arm_seeds(name)))
        for name, spec in plan.metrics.items():
            metrics[name] = Metric(name, spec.direction, spec.label,
                                   None if spec.min_effect_relative else spec.min_effect)
        claims = [c for c in plan.publication.claims if isinstance(c, str) and c.strip()]
    for name in summary.get("arms") or {}:
        arms.setdefault(str(name), Arm(str(name), (str(name),)))
    comparisons = []
    for item in summary.get("comparisons") or []:
        if isinstance(item, dict):
            comp = _comparison(item, metrics)
            if comp is not None:
                comparisons.append(comp)
                metrics.setdefault(comp.metric, Metric(comp.metric, comp.direction))
    primary = summary.get("primary_metric") or (plan.primary_metric if plan else None)
    if isinstance(primary, str) and primary not in metrics:
        direction = summary.get("direction")  # the declared direction analyze recorded
        metrics[primary] = Metric(primary, direction if direction in DIRECTIONS
                                  else None)
    means: dict[tuple[str, str], float] = {}
    for arm, info in (summary.get("arms") or {}).items():
        if not isinstance(info, dict):
            continue
        if info.get("run_ids"):
            seed_counts.add(len(info["run_ids"]))
        for metric, stats in (info.get("metrics") or {}).items():
            if isinstance(stats, dict) and _number(stats.get("mean")) is not None:
                means[(str(arm), str(metric))] = float(stats["mean"])
            if isinstance(stats, dict) and isinstance(stats.get("n"), int):
                seed_counts.add(stats["n"])
    baseline = summary.get("baseline_arm") or (plan.baseline_arm if plan else None)
    return Study(arms=arms, baseline=baseline if isinstance(baseline, str) else None,
                 primary=primary if isinstance(primary, str) else None, metrics=metrics,
                 comparisons=comparisons, means=means, seed_counts=seed_counts,
                 arm_count=len(arms) or None, claims=claims,
                 plan_raw=plan.raw if plan is not None else None, plan=plan,
                 run_counts=run_counts)
