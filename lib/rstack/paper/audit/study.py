"""What the audit knows about the study: its arms (with the names a paper may use for them), its
declared metric directions, the comparisons analyze computed and the counts it ran.

Built from the plan and analysis/summary.json. It never guesses a metric's direction from its name:
a metric without a declared direction has `direction None` and is never called better or worse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

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


def _comparison(raw: dict, summary: dict, metrics: dict[str, Metric]) -> Comparison | None:
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
    return Comparison(arm, base, metric, direction if direction in ("minimize", "maximize")
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
        lower = words.lower()
        out = []
        for metric in self.metrics.values():
            if any(re.search(r"(?<![\w-])" + re.escape(p).replace(r"\ ", r"[\s_-]+") + r"(?![\w-])",
                             lower) for p in metric.phrases()):
                out.append(metric)
        return out

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


def _plan_arms(raw: dict) -> dict[str, Arm]:
    """Arms from the plan: `arms:` entries with `name`/`label`/`aliases` (the comparisons issue's
    shape), else the names under `execution.arms`."""
    out: dict[str, Arm] = {}
    execution = raw.get("execution") if isinstance(raw.get("execution"), dict) else {}
    listed = raw.get("arms") if isinstance(raw.get("arms"), list) else None
    if listed is None and isinstance(execution.get("arms"), list):
        listed = execution["arms"]
    for entry in listed or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            names = [entry["name"]]
            if isinstance(entry.get("label"), str) and entry["label"].strip():
                names.append(entry["label"].strip())
            names += [a.strip() for a in entry.get("aliases") or []
                      if isinstance(a, str) and a.strip()]
            out[entry["name"]] = Arm(entry["name"], tuple(dict.fromkeys(names)))
    if isinstance(execution.get("arms"), dict):
        for name in execution["arms"]:
            out.setdefault(str(name), Arm(str(name), (str(name),)))
    return out


def _plan_metrics(raw: dict, summary: dict) -> dict[str, Metric]:
    """Declared metrics: `evaluation.metrics` (a map with `direction`, `label`, `min_effect`), or
    the older `hypothesis.metrics` list where only the primary metric's `evaluation.direction`
    is declared. Summary comparisons may declare a direction too."""
    evaluation = raw.get("evaluation") if isinstance(raw.get("evaluation"), dict) else {}
    hypothesis = raw.get("hypothesis") if isinstance(raw.get("hypothesis"), dict) else {}
    out: dict[str, Metric] = {}
    declared = evaluation.get("metrics")
    if isinstance(declared, dict):
        for name, spec in declared.items():
            spec = spec if isinstance(spec, dict) else {}
            direction = spec.get("direction") if spec.get("direction") in (
                "minimize", "maximize") else None
            label = spec.get("label") if isinstance(spec.get("label"), str) else None
            out[str(name)] = Metric(str(name), direction, label, _number(spec.get("min_effect")))
    for name in hypothesis.get("metrics") or []:
        if isinstance(name, str):
            out.setdefault(name, Metric(name, None))
    primary = evaluation.get("primary_metric") or summary.get("primary_metric")
    direction = evaluation.get("direction") or summary.get("direction")
    if isinstance(primary, str):
        metric = out.setdefault(primary, Metric(primary, None))
        if metric.direction is None and direction in ("minimize", "maximize"):
            metric.direction = direction
    return out


def load_study(summary: dict | None, plan_raw: dict | None) -> Study:
    summary = summary or {}
    raw = plan_raw or {}
    arms = _plan_arms(raw)
    for name in summary.get("arms") or {}:
        arms.setdefault(str(name), Arm(str(name), (str(name),)))
    metrics = _plan_metrics(raw, summary)
    comparisons = []
    for item in summary.get("comparisons") or []:
        if isinstance(item, dict):
            comp = _comparison(item, summary, metrics)
            if comp is not None:
                comparisons.append(comp)
                if comp.metric not in metrics:
                    metrics[comp.metric] = Metric(comp.metric, comp.direction)
                elif metrics[comp.metric].direction is None and comp.direction is not None:
                    metrics[comp.metric].direction = comp.direction
    means: dict[tuple[str, str], float] = {}
    seed_counts: set[int] = set()
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
    execution = raw.get("execution") if isinstance(raw.get("execution"), dict) else {}
    if isinstance(execution.get("seeds"), list):
        seed_counts.add(len(execution["seeds"]))
    hypothesis = raw.get("hypothesis") if isinstance(raw.get("hypothesis"), dict) else {}
    evaluation = raw.get("evaluation") if isinstance(raw.get("evaluation"), dict) else {}
    baseline = summary.get("baseline_arm") or hypothesis.get("baseline_arm")
    publication = raw.get("publication") if isinstance(raw.get("publication"), dict) else {}
    claims = [c for c in publication.get("claims") or [] if isinstance(c, str) and c.strip()]
    return Study(arms=arms, baseline=baseline if isinstance(baseline, str) else None,
                 primary=summary.get("primary_metric") or evaluation.get("primary_metric"),
                 metrics=metrics, comparisons=comparisons, means=means, seed_counts=seed_counts,
                 arm_count=len(arms) or None, claims=claims, plan_raw=plan_raw)
