"""`rstack paper audit`: the gate before a paper is called done. Every finding names file:line.

Five checks (CHECKS), one module or more each: citations (the literature verifier); numbers
(`numbers`: every typed result traces to a run, the plan, or an allow comment; `counts`: counts in
words or digits; `attribution`: a value sits in a clause naming its arm, a plan value is not stated
as a result); artifacts (`artifacts`: analyze's files, unchanged, not stale; `placement`: floats
where first referenced); claims (`claims`: "significantly"; `directions`: every comparative
sentence; `prereg`: the plan's claims); build (the last build's record). `scanner` reads the LaTeX,
`prose` cuts sentences and clauses, `study` is the plan + summary view (arm names, declared
directions, comparisons); `report` holds the findings and writes the verdict. The
audit never edits the paper, the analysis or the ledgers; it only records its verdict in
`.rstack/paper-audit.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import PaperError
from ..file_access import audit_file_access
from .artifacts import audit_artifacts
from .attribution import audit_attribution, audit_context
from .build import audit_build
from .citations import audit_citations
from .claims import audit_claims, fmt_p
from .counts import audit_counts
from .directions import audit_directions
from .numbers import (Candidate, Typed, analysis_constants, audit_numbers, parse_allows,
                      plan_candidates, significant_digits, summary_candidates, trace_number)
from .placement import audit_placement
from .prereg import audit_prereg, judge_claims
from .prose import Prose
from .report import (AUDIT_RECORD, CHECKS, PLAN_REL, SUMMARY_REL, AuditReport, Finding, Traced,
                     _write_audit_record, audit_record_path)
from .scanner import Source, masked_text
from .study import Study, load_study

if TYPE_CHECKING:
    from ...plan import Plan

__all__ = ["AUDIT_RECORD", "CHECKS", "PLAN_REL", "SUMMARY_REL", "AuditReport", "Candidate",
           "Finding", "Source", "Traced", "Typed", "analysis_constants", "audit_artifacts",
           "audit_build", "audit_citations", "audit_claims", "audit_numbers", "audit_paper",
           "audit_record_path", "fmt_p", "judge_claims", "load_study", "Study", "masked_text", "parse_allows", "plan_candidates",
           "significant_digits", "summary_candidates", "trace_number"]


def _load_summary(report: AuditReport, root: Path) -> dict | None:
    path = root / SUMMARY_REL
    if not path.is_file():
        report.add("numbers", f"{SUMMARY_REL} not found: no typed number can be traced to a run",
                   file=SUMMARY_REL, hint="run `rstack analyze`")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.add("numbers", f"cannot read {SUMMARY_REL} ({exc})", file=SUMMARY_REL,
                   hint="re-run `rstack analyze`")
        return None
    return data if isinstance(data, dict) else None


def _load_plan(report: AuditReport, root: Path) -> Plan | None:
    path = root / PLAN_REL
    if not path.is_file():
        return None
    from ...plan import PlanError, load_plan

    try:
        return load_plan(path)
    except PlanError as exc:
        report.add("numbers", f"the plan does not validate, so its values cannot vouch for "
                   f"numbers: {exc.message}", file=PLAN_REL, hint="run `rstack plan check`")
        return None


def _finished_runs(root: Path) -> list[dict]:
    from ...ledger import Ledger

    return Ledger(root, "experiments").read(types=["run.finished"]).records


def audit_paper(root: Path, *, tex_name: str = "paper.tex") -> AuditReport:
    root = Path(root)
    tex_path = root / tex_name
    try:
        raw = tex_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PaperError(f"{tex_path}: no such file",
                         hint="write one with `rstack paper new --venue NAME`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PaperError(f"{tex_path}: cannot read ({exc})") from None
    report = AuditReport(tex=tex_name)
    source = Source(raw, name=tex_name, root=root)
    summary = _load_summary(report, root)
    plan = _load_plan(report, root)
    plan_raw = plan.raw if plan is not None else None
    audit_citations(report, root, tex_path)
    allows = [a for name, text in source.raws.items() for a in parse_allows(report, text, name)]
    study = load_study(summary, plan, _finished_runs(root))
    prose = Prose(source.text, study.arms_in)
    counted = audit_counts(report, source, study, summary, allows)
    hits = audit_numbers(report, source, summary, plan_raw, allows, skip=counted)
    audit_attribution(report, source, prose, study, summary, hits)
    audit_context(report, source, prose, study, hits)
    audit_artifacts(report, root, source, summary)
    audit_placement(report, root, source)
    audit_claims(report, source, summary, study, prose)
    audit_directions(report, source, prose, study)
    audit_prereg(report, source, prose, study)
    audit_build(report, root, tex_path)
    audit_file_access(report, source)
    _write_audit_record(root, tex_path, report)
    return report
