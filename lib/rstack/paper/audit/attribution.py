"""Whose number is it? Two checks on the numbers the number check traced, read in their clause:

- attribution: a value of one arm (typed or through its \\rs... macro) in a clause that names only
  other arms is misattributed ("X for A against Y for B" with X and Y swapped);
- context: a plan value is a setup fact; stated as a result (a result metric right next to it, or a
  cell of a results-table row that names an arm) it is flagged, wherever it stands.
"""

from __future__ import annotations

import re

from .numbers import Hit, quantity_arms
from .prose import Prose
from .report import PLAN_REL, AuditReport
from .scanner import Source
from .study import Study

_MACRO = re.compile(r"\\(?P<name>rs[A-Z][A-Za-z]*)")
# "lowers the loss from X to Y": a change names the arm it moved to; the value it moved from is
# the compared arm's.
_FROM_TO = re.compile(r"\bfrom\b.*\bto\b", re.S)
# Setup sections of the plan: a value from these, next to a metric, is a setup fact typed as a
# result. Values under evaluation/hypothesis (a threshold, a min_effect) belong beside metrics.
_SETUP_KEYS = re.compile(rf"^{re.escape(PLAN_REL)} (?:execution|data|arms)\b")
_RESULT_WORDS = re.compile(r"\b(?:accuracy|loss|error|score|perplexity|f1|auc|ece|bleu|rouge|"
                           r"reward|return|drops?|rises?|reach(?:es|ed)?|achieves?|improves?)\b",
                           re.I)
_WINDOW_BEFORE, _WINDOW_AFTER = 6, 3


def _named(prose: Prose, study: Study, start: int, end: int) -> set[str]:
    return {arm for _, _, arm in prose.arms(start, end)}


def _allowed(prose: Prose, study: Study, clause) -> set[str]:
    named = _named(prose, study, clause.start, clause.end)
    if named and _FROM_TO.search(prose.words[clause.start:clause.end]):
        for arm in list(named):
            for comp in study.comparisons_of(arm):
                named |= {comp.arm, comp.baseline}
    return named


def _owner(arms: tuple[str, ...]) -> str:
    return f"arm '{arms[0]}'" if len(arms) == 1 else \
        f"the comparison {arms[0]} vs {arms[1]}"


def _fits(arms: tuple[str, ...], allowed: set[str]) -> bool:
    return bool(set(arms) & allowed)


def audit_attribution(report: AuditReport, source: Source, prose: Prose, study: Study,
                      summary: dict | None, hits: list[Hit]) -> None:
    quantities = {str(q.get("macro")): q for q in (summary or {}).get("quantities") or []
                  if isinstance(q, dict) and q.get("macro")}
    items: list[tuple[int, str, list[tuple[str, ...]], str]] = []
    for match in _MACRO.finditer(source.text, prose.body_start):
        q = quantities.get(match.group("name"))
        if q is None or not quantity_arms(q):
            continue
        items.append((match.start(), f"\\{match.group('name')} ({q.get('text')})",
                      [quantity_arms(q)], f"\\{match.group('name')}"))
    for hit in hits:
        if hit.traced is None or hit.traced.source != "summary" or hit.declared:
            continue
        owners = [c.arms for c in hit.computed if c.arms]
        if owners and len(owners) == len(hit.computed):
            items.append((hit.start, hit.text, owners, hit.traced.detail))
    for offset, label, owners, detail in items:
        clause = prose.clause_at(offset)
        if clause is None:
            continue
        allowed = _allowed(prose, study, clause)
        if not allowed or any(_fits(arms, allowed) for arms in owners):
            continue
        named = ", ".join(f"'{a}'" for a in sorted(_named(prose, study, clause.start, clause.end)))
        whose = " or ".join(sorted({_owner(arms) for arms in owners}))
        report.add("numbers", f"{label} is a value of {whose}, but its clause names arm {named} "
                   f"({detail})", **source.at(offset),
                   hint="quote each arm's own macro in the clause that names it (arm names, "
                        "labels and aliases come from the plan's arms)")


def audit_context(report: AuditReport, source: Source, prose: Prose, study: Study,
                  hits: list[Hit]) -> None:
    """A plan value stated as a result."""
    patterns = [(p, m) for m in study.metrics.values() for p in m.patterns()]
    for hit in hits:
        if hit.traced is None or hit.traced.source != "plan" or hit.computed:
            continue
        if any(c.source != "plan" or not _SETUP_KEYS.match(c.detail) for c in hit.declared):
            continue
        clause = prose.clause_at(hit.start)
        if clause is None:
            continue
        before = prose.words[clause.start:hit.start].split()[-_WINDOW_BEFORE:]
        after = prose.words[hit.end:clause.end].split()[:_WINDOW_AFTER]
        near = " ".join(before + after)
        metric = next((m.group() for p, _ in patterns if (m := p.search(near))), None)
        word = metric or (m.group() if (m := _RESULT_WORDS.search(near)) else None)
        in_row = hit.region == "table" and _named(prose, study, clause.start, clause.end)
        if word is None and not in_row:
            continue
        keys = "; ".join(dict.fromkeys(c.detail for c in hit.declared))
        why = f"next to '{word}'" if word else "in a results-table row"
        report.add("numbers", f"plan value {hit.text} ({keys}) is stated as a result ({why}): a "
                   "plan value describes the setup, not an outcome", **source.at(hit.start),
                   hint="quote the measured value through its \\rs... macro; if the number is "
                        "the setup, say so in the method or setup")


