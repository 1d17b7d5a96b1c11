"""The claims check: "significantly" only where analyze found significance, in the direction it
found."""

from __future__ import annotations

import re
from typing import Any

from .prose import Prose
from .report import AuditReport
from .scanner import Source
from .study import Comparison, Study

_SIGNIFICANT = re.compile(r"\bsignificant(?:ly)?\b", re.I)
_NEGATION = re.compile(r"\b(?:not|no|non|without|never|neither|nor|lack(?:s|ing)?|n't|cannot)\W+"
                       r"(?:\w+\W+){0,2}$", re.I)


# -- claims ----------------------------------------------------------------------------------


def fmt_p(p: Any) -> str:
    """A p-value for a message: 3 significant digits, or 1.0e-04 below 0.001."""
    if not isinstance(p, (int, float)) or isinstance(p, bool):
        return "none"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3g}"


# Evaluative words whose direction does not depend on the metric ("better" is better whether
# the metric is minimised or maximised). Verbs such as "raise" or "lower" are left out: their
# meaning flips with the metric and the sentence's subject, which a scanner cannot read reliably.
_BETTER_WORDS = re.compile(r"\b(?:better|improve[sd]?|improving|improvements?|outperform(?:s|ed|"
                           r"ing)?)\b", re.I)
_WORSE_WORDS = re.compile(r"\b(?:worse|degrade[sd]?|degrading|degradation|hurts?|harm(?:s|ed)?|"
                          r"underperform(?:s|ed|ing)?)\b", re.I)


# Change verbs, judged only with a named metric and one arm ("X significantly lowers the loss"):
# the arm's comparison with the baseline says which way its metric moved.
_LOWER_WORDS = re.compile(r"\b(?:lower(?:s|ed|ing)?|reduc(?:e|es|ed|ing)|decreas(?:e|es|ed|ing))\b",
                          re.I)
_HIGHER_WORDS = re.compile(r"\b(?:higher|rais(?:e|es|ed|ing)|increas(?:e|es|ed|ing))\b", re.I)


def _stated_change(sentence: str) -> str | None:
    """`lower` or `higher` when the sentence says exactly one of them (not negated), else None."""
    found = set()
    for pattern, label in ((_LOWER_WORDS, "lower"), (_HIGHER_WORDS, "higher")):
        for match in pattern.finditer(sentence):
            if not _NEGATION.search(sentence[:match.start()]):
                found.add(label)
    return found.pop() if len(found) == 1 else None


def _found_change(comp: Comparison, from_baseline: bool) -> str | None:
    """Which way the named arm's metric moved: from the verdict in the declared direction, else
    the sign of the difference (arm minus baseline; reversed when the baseline is the arm)."""
    if comp.outcome is not None and comp.direction is not None:
        up = (comp.outcome == "better") == (comp.direction == "maximize")
    elif comp.diff:
        up = comp.diff > 0
    else:
        return None
    return ("lower" if up else "higher") if from_baseline else ("higher" if up else "lower")


def _stated_direction(sentence: str) -> str | None:
    """`better` or `worse` when the sentence says exactly one of them (not negated), else None."""
    found = set()
    for pattern, label in ((_BETTER_WORDS, "better"), (_WORSE_WORDS, "worse")):
        for match in pattern.finditer(sentence):
            if not _NEGATION.search(sentence[:match.start()]):
                found.add(label)
    return found.pop() if len(found) == 1 else None


def _not_significant_hint(comp: dict, alpha: float, min_seeds: int) -> str:
    """Why analyze did not call a comparison significant, as the fix for the author."""
    n, n_base, p = comp.get("n"), comp.get("n_baseline"), _p_of(comp)
    if comp.get("verdict") == "direction not declared":
        # more seeds cannot help here: only a declared direction makes a difference significant
        metric = comp.get("metric") or "METRIC"
        return (f"{metric} has no declared direction, so analyze never calls a difference in it "
                "significant (its p-value is not Holm-adjusted); drop the word, or declare "
                f"evaluation.metrics.{metric}.direction (minimize or maximize) in "
                "experiment-plan.md and re-run `rstack analyze`")
    few = [x for x in (n, n_base) if isinstance(x, int) and x < min_seeds]
    if few:
        return (f"the comparison has fewer than {min_seeds} seeds in an arm (n={n}, baseline "
                f"n={n_base}); drop the word, or run at least {min_seeds} seeds per arm and "
                "re-run `rstack analyze`")
    if not isinstance(p, (int, float)):
        return ("analyze could compute no p-value (no variance across seeds); drop the word, or "
                "run more seeds and re-run `rstack analyze`")
    if p < alpha and comp.get("ci_overlap") is True:
        return (f"p={fmt_p(p)} is below {alpha:g}, but the two confidence intervals overlap, "
                "which analyze does not call significant; drop the word and report the p-value "
                "and the intervals, or run more seeds and re-run `rstack analyze`")
    return ("drop the word, or run more seeds, re-run `rstack analyze` and cite the "
            "comparison")


def _p_of(comp: dict) -> Any:
    """The p-value a comparison row reports (adjusted when analyze adjusted it)."""
    for key in ("p_adjusted", "p", "p_value"):
        if comp.get(key) is not None:
            return comp[key]
    return None


def audit_claims(report: AuditReport, source: Source, summary: dict | None, study: Study,
                 prose: Prose) -> None:
    """'significantly' only next to a comparison analyze found significant, in its direction.
    Sentences naming two arms are direction-checked by `directions` whatever their wording."""
    text = source.text
    summary = summary or {}
    baseline = study.baseline
    alpha = summary.get("alpha") if isinstance(summary.get("alpha"), (int, float)) else 0.05
    min_seeds = summary.get("min_seeds") if isinstance(summary.get("min_seeds"), int) else 3
    for match in _SIGNIFICANT.finditer(text, prose.body_start):
        where = source.at(match.start())
        bounds = prose.sentence_at(match.start())
        if bounds is None:
            continue
        left, right = bounds
        if _NEGATION.search(prose.words[left:match.start()]):
            continue
        sentence = prose.words[left:right].lower().replace("__", "_")
        positions: dict[str, int] = {}
        for start, _, arm in prose.arms(left, right):
            positions.setdefault(arm, start)
        named = list(positions)
        if not named:
            if not any(c.significant for c in study.comparisons):
                report.add("claims", f"'{match.group()}' but rstack analyze marked no comparison "
                           "significant", **where, severity="warning",
                           hint="say what the numbers show without 'significant', or run more "
                                "seeds and re-analyse")
            continue
        treated = [a for a in named if a != baseline] or named
        for arm in treated:
            comps = [c for c in study.comparisons if c.arm == arm or
                     (arm == baseline and c.baseline == arm)]
            mentioned = [c for c in comps if c.metric in study.metrics and
                         any(m.name == c.metric for m in study.metrics_in(sentence))]
            comps = mentioned or comps
            significant = [c for c in comps if c.significant]
            if significant:
                if len(named) < 2:
                    _check_direction(report, match.group(), arm, sentence, significant, where,
                                     metric_named=bool(mentioned),
                                     from_baseline=arm == baseline)
                continue
            if comps:
                detail = ", ".join(f"{c.metric}: p={fmt_p(_p_of(c.raw))}" for c in comps)
                why = f"rstack analyze marked its comparison not significant ({detail})"
                hint = _not_significant_hint(comps[0].raw, alpha, min_seeds)
            else:
                why = "rstack analyze has no comparison for it"
                hint = ("drop the word, or add the arm to the plan, run it and re-run "
                        "`rstack analyze`")
            report.add("claims", f"'{match.group()}' next to arm '{arm}', but {why}", **where,
                       hint=hint)


def _check_direction(report: AuditReport, word: str, arm: str, sentence: str,
                     comps: list[Comparison], where: dict, *, metric_named: bool = False,
                     from_baseline: bool = False) -> None:
    """'significantly better' next to one arm whose comparison analyze found significantly
    worse (or the reverse); 'significantly lower METRIC' where the metric went up."""
    stated = _stated_direction(sentence)
    if stated is None:
        change = _stated_change(sentence) if metric_named else None
        found = {_found_change(c, from_baseline) for c in comps}
        if change is None or found != {"higher" if change == "lower" else "lower"}:
            return
        detail = ", ".join(f"{c.metric}: {c.verdict or 'significantly ' + str(c.outcome)}"
                           for c in comps)
        report.add("claims", f"'{word}' with '{change}' next to arm '{arm}', but rstack analyze "
                   f"found it {found.pop()} ({detail})", **where,
                   hint="state the direction the analysis found (its verdict in "
                        "analysis/summary.json)")
        return
    if {c.outcome for c in comps} != {"better" if stated == "worse" else "worse"}:
        return
    detail = ", ".join(f"{c.metric}: {c.verdict or 'significantly ' + str(c.outcome)}"
                       for c in comps)
    report.add("claims", f"'{word}' with '{stated}' next to arm '{arm}', but rstack analyze found "
               f"the difference goes the other way ({detail})", **where,
               hint="state the direction the analysis found (its verdict in analysis/summary.json)")
