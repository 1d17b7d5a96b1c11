"""The claims check: "significantly" only where analyze found significance, in the direction it
found."""

from __future__ import annotations

import re
from typing import Any

from .report import AuditReport
from .scanner import Source

_SIGNIFICANT = re.compile(r"\bsignificant(?:ly)?\b", re.I)
_NEGATION = re.compile(r"\b(?:not|no|non|without|never|neither|nor|lack(?:s|ing)?|n't|cannot)\W+"
                       r"(?:\w+\W+){0,2}$", re.I)


# -- claims ----------------------------------------------------------------------------------


def _plain_words(text: str) -> str:
    text = text.replace("\\_", "_")
    return re.sub(r"\\[A-Za-z]+\*?|[{}$~]", " ", text)


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
    n, n_base, p = comp.get("n"), comp.get("n_baseline"), comp.get("p_value")
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


def audit_claims(report: AuditReport, source: Source, summary: dict | None) -> None:
    text = source.text
    body_start = text.find("\\begin{document}")
    body_start = 0 if body_start < 0 else body_start
    summary = summary or {}
    arms = list(summary.get("arms") or {})
    comparisons = [c for c in summary.get("comparisons") or [] if isinstance(c, dict)]
    baseline = summary.get("baseline_arm")
    alpha = summary.get("alpha") if isinstance(summary.get("alpha"), (int, float)) else 0.05
    min_seeds = summary.get("min_seeds") if isinstance(summary.get("min_seeds"), int) else 3
    for match in _SIGNIFICANT.finditer(text, body_start):
        where = source.at(match.start())
        left = max(text.rfind(". ", 0, match.start()), text.rfind("\n\n", 0, match.start()),
                   body_start)
        right_candidates = [i for i in (text.find(". ", match.end()), text.find("\n\n", match.end()))
                            if i >= 0]
        right = min(right_candidates) if right_candidates else len(text)
        before = _plain_words(text[left:match.start()])
        if _NEGATION.search(before):
            continue
        sentence = _plain_words(text[left:right]).lower()
        positions = {}
        for arm in arms:
            found = re.search(r"(?<![\w])" + re.escape(arm.lower()).replace("_", "[_ -]") +
                              r"(?![\w])", sentence)
            if found:
                positions[arm] = found.start()
        named = list(positions)
        if not named:
            if not any(c.get("significant") for c in comparisons):
                report.add("claims", f"'{match.group()}' but rstack analyze marked no comparison "
                           "significant", **where, severity="warning",
                           hint="say what the numbers show without 'significant', or run more "
                                "seeds and re-analyse")
            continue
        treated = [a for a in named if a != baseline] or named
        for arm in treated:
            comps = [c for c in comparisons if c.get("arm") == arm or
                     (arm == baseline and c.get("baseline") == arm)]
            mentioned = [c for c in comps if str(c.get("metric", "")).lower() in sentence]
            comps = mentioned or comps
            significant = [c for c in comps if c.get("significant") is True]
            if significant:
                _check_direction(report, match.group(), arm, sentence, positions, baseline,
                                 significant, where)
                continue
            if comps:
                detail = ", ".join(f"{c.get('metric')}: p={fmt_p(c.get('p_value'))}"
                                   for c in comps)
                why = f"rstack analyze marked its comparison not significant ({detail})"
                hint = _not_significant_hint(comps[0], alpha, min_seeds)
            else:
                why = "rstack analyze has no comparison for it"
                hint = ("drop the word, or add the arm to the plan, run it and re-run "
                        "`rstack analyze`")
            report.add("claims", f"'{match.group()}' next to arm '{arm}', but {why}", **where,
                       hint=hint)


def _check_direction(report: AuditReport, word: str, arm: str, sentence: str,
                     positions: dict[str, int], baseline: str | None, comps: list[dict],
                     where: dict) -> None:
    """'significantly better' next to a comparison analyze found significantly worse (or the
    reverse). Only checked when the arm comes before the baseline in the sentence, so "the
    baseline is significantly worse than X" is not misread."""
    if baseline in positions and positions[baseline] < positions[arm]:
        return
    stated = _stated_direction(sentence)
    if stated is None:
        return
    verdicts = {"better" if c.get("improved") is True else "worse" for c in comps}
    if verdicts != {"better" if stated == "worse" else "worse"}:
        return
    detail = ", ".join(f"{c.get('metric')}: {c.get('verdict') or 'significantly ' + v}"
                       for c, v in zip(comps, ["better" if c.get("improved") else "worse"
                                               for c in comps]))
    report.add("claims", f"'{word}' with '{stated}' next to arm '{arm}', but rstack analyze found "
               f"the difference goes the other way ({detail})", **where,
               hint="state the direction the analysis found (its verdict in analysis/summary.json)")

