"""`rstack review`: the methodology checks a program can make before a paper goes out, written to
`review-findings.json` (each finding with a stable id, a severity and its evidence), and the rule
that a severity-error finding counts as addressed only when `review.md` says how (fixed, or stated
as a limitation). Reads the plan, analysis/summary.json, the experiments ledger and the paper;
never edits them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import atomic
from .errors import ReviewError

FINDINGS_FILE = "review-findings.json"
REVIEW_FILE = "review.md"
# How review.md says a finding was dealt with: a line naming the id and one of these words.
ADDRESSED_WORDS = re.compile(r"\b(?:fixed|limitation|not\s+applicable|rebutted)\b", re.I)
# Paper words that own up to runs that did not end ok or were left out.
_RUN_DISCLOSURE = re.compile(r"\b(?:fail(?:ed|ure|ures)?|crash(?:ed|es)?|diverg(?:ed|ence)|"
                             r"excluded|discarded|superseded|timed\s+out|time-?outs?|"
                             r"out\s+of\s+memory|check-failed|sanity\s+checks?\s+failed)\b", re.I)
_IMPROVEMENT = re.compile(r"\b(?:improv(?:es|ed|ement|ing)|outperform(?:s|ed|ing)?|better|gains?|"
                          r"beats?|superior)\b", re.I)
# Moving a metric in its declared better direction is an improvement too ("lowers the loss").
_TOWARDS = {"minimize": re.compile(r"\b(?:lower(?:s|ed)?|reduc(?:es|ed|tion)|decreas(?:es|ed)|"
                                   r"cuts?)\b", re.I),
            "maximize": re.compile(r"\b(?:higher|rais(?:es|ed)|increas(?:es|ed)|boosts?)\b",
                                   re.I)}
_LIMITATIONS = re.compile(r"\\(?:sub)*section\*?\s*(?:\[[^\]]*\])?\s*\{[^{}]*limitation|"
                          r"\\paragraph\*?\s*\{[^{}]*limitation", re.I)


@dataclass
class ReviewFinding:
    id: str  # stable across runs: review.md refers to it
    severity: str  # error | warning
    message: str
    evidence: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"id": self.id, "severity": self.severity, "message": self.message,
                "evidence": self.evidence}


@dataclass
class ReviewReport:
    findings: list[ReviewFinding]
    addressed: dict[str, str]  # id -> the review.md line that addresses it
    review_md: bool  # review.md exists

    @property
    def unaddressed_errors(self) -> list[str]:
        return [f.id for f in self.findings if f.severity == "error" and f.id not in self.addressed]

    @property
    def ok(self) -> bool:
        return not self.unaddressed_errors

    def as_json(self) -> dict:
        errors = [f for f in self.findings if f.severity == "error"]
        return {"version": 1, "ok": self.ok, "errors": len(errors),
                "warnings": len(self.findings) - len(errors),
                "unaddressed": self.unaddressed_errors,
                "findings": [dict(f.as_json(), addressed=f.id in self.addressed)
                             for f in self.findings]}


# -- review.md -------------------------------------------------------------------------------


def addressed_ids(text: str, ids: list[str]) -> dict[str, str]:
    """id -> line, for every id that a line of review.md names together with how it was dealt
    with ("- few-seeds:sgd: limitation, stated in Section 5")."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not ADDRESSED_WORDS.search(line):
            continue
        for finding_id in ids:
            # the id whole: `few-seeds:sgd` is not addressed by a line about `few-seeds:sgd2`
            if re.search(r"(?<![\w:.-])" + re.escape(finding_id) + r"(?!\w|[:.-]\w)", line):
                out.setdefault(finding_id, line.strip())
    return out


def read_findings(root: Path) -> dict | None:
    """review-findings.json as written by the last `rstack review`, or None."""
    try:
        data = json.loads((Path(root) / FINDINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def unaddressed_errors(root: Path) -> list[str] | None:
    """The error ids of the last review that review.md does not address (None: no review yet).
    Light on purpose: `rstack status` calls it."""
    data = read_findings(root)
    if data is None:
        return None
    ids = [f.get("id") for f in data.get("findings") or []
           if isinstance(f, dict) and f.get("severity") == "error" and isinstance(f.get("id"), str)]
    try:
        text = (Path(root) / REVIEW_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    done = addressed_ids(text, ids)
    return [i for i in ids if i not in done]


# -- the checks ------------------------------------------------------------------------------


def _flag_values(args: list[str]) -> dict[str, str]:
    """--flag value pairs (a bare --flag is 'true')."""
    out: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = str(args[index])
        if arg.startswith("--"):
            key, _, value = arg.partition("=")
            if not value and index + 1 < len(args) and not str(args[index + 1]).startswith("--"):
                value = str(args[index + 1])
                index += 1
            out[key] = value or "true"
        index += 1
    return out


class _Review:
    """The named checks over one project's plan, summary, ledger and paper."""

    def __init__(self, root: Path, plan, summary: dict | None, paper: str | None,
                 runs: list[dict]):
        from .paper.audit import load_study
        from .paper.audit.prose import Prose
        from .paper.audit.scanner import Source

        self.root = root
        self.plan = plan
        self.summary = summary or {}
        self.study = load_study(summary, plan, runs)
        self.source = Source(paper, root=root) if paper is not None else None
        self.prose = Prose(self.source.text, self.study.arms_in) if self.source else None
        self.runs = runs
        self.findings: list[ReviewFinding] = []

    def add(self, finding_id: str, severity: str, message: str, **evidence) -> None:
        self.findings.append(ReviewFinding(finding_id, severity, message, evidence))

    def run(self) -> list[ReviewFinding]:
        for check in (self.seeds, self.baseline, self.confounds, self.unreported_runs,
                      self.failed_checks, self.multiple_comparisons, self.below_min_effect,
                      self.claims, self.headline, self.limitations):
            check()
        return self.findings

    def seeds(self) -> None:
        from .plan import MIN_SEEDS  # the plan's own rule (plan check warns below it)

        arms = self.summary.get("arms") or {}
        for arm in self.plan.arms:
            info = arms.get(arm) if isinstance(arms.get(arm), dict) else None
            n = len(info.get("run_ids") or []) if info else len(self.plan.arm_seeds(arm))
            if n < MIN_SEEDS:
                self.add(f"few-seeds:{arm}", "error",
                         f"arm '{arm}' has {n} seed(s); fewer than {MIN_SEEDS} give no usable "
                         "interval and no significance", arm=arm, seeds=n,
                         source="analysis/summary.json" if info else "experiment-plan.md")

    def baseline(self) -> None:
        baseline = self.plan.baseline_arm
        if baseline not in self.plan.arms:
            self.add("no-baseline", "error", f"the plan's baseline arm '{baseline}' is not among "
                     f"its arms ({', '.join(self.plan.arms)})", baseline=baseline)
        elif len(self.plan.arms) < 2:
            self.add("no-baseline", "error", "the plan has one arm: nothing is compared with a "
                     "baseline", arms=list(self.plan.arms))

    def confounds(self) -> None:
        baseline = self.plan.baseline_arm
        if baseline not in self.plan.arms:
            return
        base = _flag_values(self.plan.arm_args(baseline))
        for arm in self.plan.arms:
            if arm == baseline:
                continue
            mine = _flag_values(self.plan.arm_args(arm))
            differ = sorted(k for k in set(base) | set(mine) if base.get(k) != mine.get(k))
            if len(differ) > 1:
                self.add(f"confounded-arm:{arm}", "warning",
                         f"arm '{arm}' differs from the baseline in {len(differ)} settings "
                         f"({', '.join(differ)}), not only the studied factor: a difference "
                         "cannot be credited to one of them (a tuned arm against an untuned "
                         "baseline?)", arm=arm, baseline=baseline,
                         differs={k: [base.get(k), mine.get(k)] for k in differ})

    def _paper_says(self, pattern: re.Pattern) -> bool:
        return bool(self.prose and pattern.search(self.prose.words))

    def unreported_runs(self) -> None:
        used = {rid for info in (self.summary.get("arms") or {}).values() if isinstance(info, dict)
                for rid in info.get("run_ids") or []}
        latest: dict[str, dict] = {}
        for record in self.runs:
            latest[str(record.get("run_id"))] = record
        not_ok = {rid: r.get("status") for rid, r in latest.items() if r.get("status") != "ok"}
        excluded = sorted(rid for rid, r in latest.items()
                          if r.get("status") == "ok" and used and rid not in used)
        if not not_ok and not excluded:
            return
        text = self.prose.words if self.prose else ""
        named = [rid for rid in list(not_ok) + excluded if rid in text]
        if self._paper_says(_RUN_DISCLOSURE) or named:
            return
        self.add("unreported-runs", "error",
                 f"{len(not_ok)} run(s) did not end ok and {len(excluded)} ok run(s) are not in "
                 "the analysis, and the paper mentions neither", not_ok=not_ok,
                 excluded=excluded)

    def failed_checks(self) -> None:
        failed = {str(r.get("run_id")): r.get("checks") or r.get("failed_checks") or r.get("hint")
                  for r in self.runs if r.get("status") == "check-failed"}
        if failed:
            self.add("failed-checks", "error", f"{len(failed)} run(s) failed the plan's sanity "
                     "checks (evaluation.checks)", runs=failed)

    def multiple_comparisons(self) -> None:
        comps = [c for c in self.study.comparisons if c.raw.get("p", c.raw.get("p_value"))
                 is not None]
        if len(comps) > 1 and not any(c.raw.get("p_adjusted") is not None for c in comps):
            self.add("unadjusted-p", "warning", f"{len(comps)} comparisons report p-values and "
                     "none is adjusted for multiple comparisons (Holm)",
                     comparisons=[c.describe() for c in comps])

    def below_min_effect(self) -> None:
        from .paper.audit.prose import NEGATION

        if self.prose is None:
            return
        for comp in self.study.comparisons:
            metric = self.study.metrics.get(comp.metric)
            threshold = comp.raw.get("min_effect")
            if threshold is None and metric is not None:
                threshold = metric.min_effect
            if not isinstance(threshold, (int, float)) or comp.diff is None:
                continue
            small = comp.verdict in ("smaller than min_effect", "inconclusive") or \
                abs(comp.diff) < threshold
            if not small:
                continue
            for start, end in self.prose.sentences:
                arms = {a for _, _, a in self.prose.arms(start, end)}
                words = self.prose.words[start:end]
                names_metric = metric is not None and any(p.search(words)
                                                          for p in metric.patterns())
                towards = _TOWARDS.get(metric.direction or "") if metric else None
                said = _IMPROVEMENT.search(words) or (towards.search(words) if towards else None)
                if comp.arm in arms and names_metric and said and \
                        not NEGATION.search(words[:said.start()]):
                    where = self.source.at(start)
                    self.add(f"below-min-effect:{comp.arm}:{comp.metric}", "error",
                             f"the paper describes {comp.arm} as an improvement on "
                             f"{comp.metric}, but the difference is below the declared "
                             f"min_effect {threshold:g} ({comp.describe()})",
                             comparison=comp.describe(), min_effect=threshold, **where)
                    break

    def claims(self) -> None:
        from .paper.audit import judge_claims

        for check in judge_claims(self.study):
            if check.status == "unchecked":
                self.add(f"claim-without-comparison:{check.index}", "error",
                         f"pre-registered claim {check.index} ('{check.text}') has no comparison "
                         f"behind it: it {check.why}", claim=check.text)
            elif check.status == "refuted":
                self.add(f"refuted-claim:{check.index}", "warning",
                         f"pre-registered claim {check.index} ('{check.text}') is not supported "
                         f"({check.why}); the paper must say so", claim=check.text)

    def headline(self) -> None:
        if self.source is None:
            return
        match = re.search(r"\\begin\{abstract\}(.*?)\\end\{abstract\}", self.source.text, re.S)
        if match is None:
            return
        abstract = match.group(1)
        quantities = {str(q.get("macro")): q.get("metric")
                      for q in self.summary.get("quantities") or [] if isinstance(q, dict)}
        named = {quantities[m] for m in re.findall(r"\\(rs[A-Z][A-Za-z]*)", abstract)
                 if quantities.get(m)}
        from .paper.audit.prose import plain

        named |= {m.name for m in self.study.metrics_in(plain(abstract))}
        primary = self.study.primary
        if primary and named and primary not in named:
            self.add("headline-metric", "error", f"the abstract's headline quotes "
                     f"{', '.join(sorted(named))}, not the primary metric {primary}",
                     primary=primary, abstract_metrics=sorted(named),
                     **self.source.at(match.start()))
        elif primary and not named:
            self.add("headline-metric", "warning", f"the abstract names no metric; its headline "
                     f"should be the primary metric {primary}", primary=primary,
                     **self.source.at(match.start()))

    def limitations(self) -> None:
        if self.source is None:
            return
        if not _LIMITATIONS.search(self.source.text):
            self.add("no-limitations", "error", "the paper has no limitations section (a "
                     "\\section or \\paragraph whose title says Limitations)")


def review_project(root: Path, *, tex_name: str = "paper.tex", write: bool = True) -> ReviewReport:
    """Run the checks and (by default) write review-findings.json at the project root."""
    from .freshness import read_summary
    from .ledger import Ledger
    from .plan import PlanError, default_plan_path, load_plan

    root = Path(root)
    try:
        plan = load_plan(default_plan_path(root))
    except PlanError as exc:
        raise ReviewError(f"the review needs a valid plan: {exc.message}",
                          hint="run `rstack plan check`") from None
    try:
        paper = (root / tex_name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        paper = None
    runs = Ledger(root, "experiments").read(types=["run.finished"]).records
    findings = _Review(root, plan, read_summary(root), paper, runs).run()
    try:
        review_text = (root / REVIEW_FILE).read_text(encoding="utf-8")
        has_review = True
    except (OSError, UnicodeDecodeError):
        review_text, has_review = "", False
    report = ReviewReport(findings, addressed_ids(review_text, [f.id for f in findings]),
                          has_review)
    if write:
        payload = {"version": 1, "errors": report.as_json()["errors"],
                   "warnings": report.as_json()["warnings"],
                   "findings": [f.as_json() for f in findings]}
        atomic.write_text(root / FINDINGS_FILE, json.dumps(payload, indent=2) + "\n")
    return report
