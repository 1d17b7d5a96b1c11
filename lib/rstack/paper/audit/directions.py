"""The direction check: every comparative sentence that names two arms ("A outperforms B", "B is
worse than A", "A reaches a lower loss than B") says what the analysis found, whichever arm is the
subject.

"better"/"worse" words are judged in the metric's DECLARED direction (never guessed from its name:
a metric without one is reported as not checkable); "lower"/"higher" words are judged on the sign
of the difference of means, which needs no direction.
"""

from __future__ import annotations

import re

from .prose import NEGATION, Prose
from .report import AuditReport
from .scanner import Source
from .study import Metric, Study

# "improves on B", and "improves the validation loss over B" with the metric in between
_BETTER = (r"better|outperform(?:s|ed|ing)?|improve(?:s|d)?(?:\s+[\w-]+){0,3}?\s+(?:on|over|upon)|"
           r"beats?|beat|"
           r"superior\s+to|surpass(?:es|ed)?|exceeds?")
_WORSE = r"worse|underperform(?:s|ed|ing)?|inferior\s+to|trails?|lags?\s+behind"
_LOWER = r"lower(?:s|ed)?|reduces?|reduced|decreases?|decreased"
_HIGHER = r"higher|raises?|raised|increases?|increased"
_WORDS = re.compile(rf"\b(?:(?P<better>{_BETTER})|(?P<worse>{_WORSE})|(?P<lower>{_LOWER})|"
                    rf"(?P<higher>{_HIGHER}))\b(?P<passive>\s+by\b)?", re.I)
# The arm right after one of these is what the subject is compared with.
_OBJECT_CUE = re.compile(r"\b(?:than|over|against|versus|vs\.?|compared\s+(?:with|to)|relative\s+to|"
                         r"outperforms?|underperforms?|beats?)\s+(?:the\s+|a\s+|an\s+)?$", re.I)
_FLIP = {"better": "worse", "worse": "better", "lower": "higher", "higher": "lower"}


def _nearest_metric(prose: Prose, study: Study, start: int, end: int, at: int) -> Metric | None:
    """The metric the comparative word at `at` speaks of: the first one named after it in the
    sentence, else the one named last before it, else None."""
    found: list[tuple[int, Metric]] = []
    for metric in study.metrics.values():
        for pattern in metric.patterns():
            for match in pattern.finditer(prose.words, start, end):
                found.append((match.start(), metric))
    after = sorted(p for p in found if p[0] >= at)
    before = sorted(p for p in found if p[0] < at)
    if after:
        return after[0][1]
    return before[-1][1] if before else None


def _subject_and_object(prose: Prose, mentions: list[tuple[int, int, str]]) -> tuple[str, str]:
    arms = []
    for start, _, arm in mentions:
        if arm not in [a for _, a in arms]:
            arms.append((start, arm))
    for start, arm in arms:
        if _OBJECT_CUE.search(prose.words[max(0, start - 40):start]):
            other = next(a for _, a in arms if a != arm)
            return other, arm
    return arms[0][1], arms[1][1]


def audit_directions(report: AuditReport, source: Source, prose: Prose, study: Study) -> None:
    for start, end in prose.sentences:
        mentions = prose.arms(start, end)
        if len({arm for _, _, arm in mentions}) < 2:
            continue
        words = prose.words[start:end]
        for match in _WORDS.finditer(words):
            kind = next(k for k in ("better", "worse", "lower", "higher") if match.group(k))
            at = start + match.start()
            if NEGATION.search(words[:match.start()]):
                continue
            if not any(a_start < at for a_start, _, _ in mentions):
                continue  # no subject before the verb ("Contrary to the claim that X lowers...")
            subject, other = _subject_and_object(prose, mentions)
            if match.group("passive"):  # "A is outperformed by B"
                kind = _FLIP[kind]
            metric = _nearest_metric(prose, study, start, end, at)
            if kind in ("lower", "higher") and metric is None:
                continue  # "a lower learning rate than B": not a result
            metric = metric or (study.metrics.get(study.primary) if study.primary else None)
            if metric is None:
                continue
            _judge(report, source, study, at, match.group().strip(), kind, subject, other, metric)


def _judge(report: AuditReport, source: Source, study: Study, at: int, word: str, kind: str,
           subject: str, other: str, metric: Metric) -> None:
    comp, flipped = study.comparison(subject, other, metric.name)
    if comp is not None and comp.diff is not None:
        diff = -comp.diff if flipped else comp.diff  # subject minus other
        found = comp.describe()
    elif (subject, metric.name) in study.means and (other, metric.name) in study.means:
        diff = study.means[(subject, metric.name)] - study.means[(other, metric.name)]
        found = f"mean {metric.name} {subject} - {other} = {diff:+.4g}"
    else:
        return
    where = source.at(at)
    claim = f"'{word}' says {subject} is {kind} than {other} on {metric.name}"
    if kind in ("better", "worse"):
        if metric.direction is None:
            report.add("claims", f"{claim}, which cannot be checked: {metric.name} has no declared "
                       "direction", **where, severity="warning",
                       hint=f"declare evaluation.metrics.{metric.name}.direction (minimize or "
                            "maximize) in experiment-plan.md and re-run `rstack analyze`")
            return
        sign = 1.0 if metric.direction == "maximize" else -1.0
        actual = "better" if sign * diff > 0 else "worse" if sign * diff < 0 else "equal"
        if comp is not None and not flipped and comp.outcome in ("better", "worse"):
            actual = comp.outcome
        elif comp is not None and flipped and comp.outcome in ("better", "worse"):
            actual = _FLIP[comp.outcome]
    else:
        actual = "lower" if diff < 0 else "higher" if diff > 0 else "equal"
    if actual == kind:
        return
    direction = f" ({metric.direction})" if kind in ("better", "worse") else ""
    report.add("claims", f"{claim}, but rstack analyze found it {actual}{direction}: {found}",
               **where, hint="state the direction the analysis found (analysis/summary.json "
                             "comparisons), with the arm it belongs to")
