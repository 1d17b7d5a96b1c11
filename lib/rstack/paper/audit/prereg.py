"""Pre-registered claims: each `publication.claims` entry of the plan is either supported by its
comparison, or the paper says it was not (a sentence that restates the claim with a refutation
phrase: "refuted", "not supported", "did not hold", "contrary to", ...). An unmarked refuted claim
is an error; a claim the audit cannot map to a comparison is a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .prose import Prose
from .report import PLAN_REL, AuditReport
from .scanner import Source
from .study import Comparison, Study

REFUTATION = re.compile(
    r"\b(?:refuted|refutes?|not\s+supported|unsupported|did\s+not\s+hold|does\s+not\s+hold|"
    r"not\s+confirmed|no\s+evidence|contrary\s+to|rejected|falsified|not\s+borne\s+out|"
    r"failed\s+to\s+(?:confirm|support))\b", re.I)
_STATED = re.compile(
    r"\b(?:(?P<better>better|improves?|outperforms?|beats?|helps?)|(?P<worse>worse|hurts?|"
    r"degrades?|underperforms?)|(?P<lower>lowers?|lower|reduces?|decreases?|cuts?)|"
    r"(?P<higher>raises?|higher|increases?))\b", re.I)
_STOP = {"the", "a", "an", "of", "on", "in", "at", "to", "and", "or", "than", "with", "for", "by",
         "its", "is", "are", "be", "that", "this", "relative", "over", "from"}


@dataclass
class ClaimCheck:
    index: int  # 1-based, as listed in the plan
    text: str
    comparison: Comparison | None
    status: str  # supported | refuted | unchecked
    why: str

    def as_json(self) -> dict:
        return {"index": self.index, "claim": self.text, "status": self.status, "why": self.why,
                "comparison": self.comparison.describe() if self.comparison else None}


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9_]+", text.lower().replace("\\_", "_"))
            if w not in _STOP and len(w) > 2}


def judge_claims(study: Study) -> list[ClaimCheck]:
    """Each plan claim against its comparison (used by the audit and by `rstack review`)."""
    out = []
    treated = [a for a in study.arms if a != study.baseline]
    for index, claim in enumerate(study.claims, start=1):
        named = [arm for _, _, arm in study.arms_in(claim)]
        arm = next((a for a in named if a != study.baseline), None)
        if arm is None and len(treated) == 1:
            arm = treated[0]
        metrics = study.metrics_in(claim)
        metric = metrics[0] if metrics else study.metrics.get(study.primary or "")
        stated = _STATED.search(claim)
        if arm is None or metric is None or stated is None or study.baseline is None:
            out.append(ClaimCheck(index, claim, None, "unchecked",
                                  "names no arm, metric or direction the audit can map to a "
                                  "comparison"))
            continue
        comp, flipped = study.comparison(arm, study.baseline, metric.name)
        if comp is None:
            out.append(ClaimCheck(index, claim, None, "unchecked",
                                  f"rstack analyze has no comparison of {arm} vs "
                                  f"{study.baseline} on {metric.name}"))
            continue
        kind = next(k for k in ("better", "worse", "lower", "higher") if stated.group(k))
        if kind in ("lower", "higher"):
            if metric.direction is None:
                out.append(ClaimCheck(index, claim, comp, "unchecked",
                                      f"{metric.name} has no declared direction"))
                continue
            kind = "better" if (kind == "lower") == (metric.direction == "minimize") else "worse"
        outcome = comp.outcome
        if outcome is not None and flipped:
            outcome = "worse" if outcome == "better" else "better"
        if outcome == kind:
            out.append(ClaimCheck(index, claim, comp, "supported", comp.describe()))
        else:
            out.append(ClaimCheck(index, claim, comp, "refuted", comp.describe()))
    return out


def audit_prereg(report: AuditReport, source: Source, prose: Prose, study: Study) -> None:
    for check in judge_claims(study):
        words = _content_words(check.text)
        best: tuple[int, tuple[int, int]] | None = None
        marked = False
        for start, end in prose.sentences:
            sentence = prose.words[start:end].replace("__", "_")
            shared = len(words & _content_words(sentence))
            if shared < max(2, (len(words) + 1) // 2):
                continue
            if REFUTATION.search(sentence):
                marked = True
            if best is None or shared > best[0]:
                best = (shared, (start, end))
        if check.status == "unchecked":
            report.add("claims", f"pre-registered claim {check.index} ('{check.text}') cannot be "
                       f"checked: it {check.why}", file=PLAN_REL, severity="warning",
                       hint="name the arm and the metric in publication.claims, as the plan's "
                            "arms and evaluation.metrics spell them")
            continue
        if check.status == "supported" or marked:
            continue
        where = source.at(best[1][0]) if best else {"file": PLAN_REL, "line": None}
        stands = "is restated in the paper" if best else "is not mentioned in the paper"
        report.add("claims", f"pre-registered claim {check.index} ('{check.text}') is not "
                   f"supported by the analysis ({check.why}) and {stands} without being marked "
                   "refuted", **where,
                   hint="say in the paper that the claim was not supported (e.g. 'the "
                        "pre-registered claim that ... was not supported'), or drop the "
                        "statement; never restate a refuted claim as a finding")
