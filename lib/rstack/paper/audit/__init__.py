"""`rstack paper audit`: the gate before a paper is called done. Every finding names file:line.

Five checks, one module each: citations (the literature verifier), numbers (every typed result
traces to a run, the plan, or an explicit allow comment), artifacts (figures/tables are analyze's
files and not stale), claims ("significantly" only where analyze found significance), and the last
build's log. `scanner` reads the LaTeX; `report` holds the findings and writes the verdict. The
audit never edits the paper, the analysis or the ledgers; it only records its verdict in
`.rstack/paper-audit.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import PaperError
from .artifacts import audit_artifacts
from .build import audit_build
from .citations import audit_citations
from .claims import audit_claims, fmt_p
from .numbers import (Candidate, Typed, analysis_constants, audit_numbers, parse_allows,
                      plan_candidates, significant_digits, summary_candidates, trace_number)
from .report import (AUDIT_RECORD, CHECKS, PLAN_REL, SUMMARY_REL, AuditReport, Finding, Traced,
                     _write_audit_record, audit_record_path)
from .scanner import Source, masked_text

__all__ = ["AUDIT_RECORD", "CHECKS", "PLAN_REL", "SUMMARY_REL", "AuditReport", "Candidate",
           "Finding", "Source", "Traced", "Typed", "analysis_constants", "audit_artifacts",
           "audit_build", "audit_citations", "audit_claims", "audit_numbers", "audit_paper",
           "audit_record_path", "fmt_p", "masked_text", "parse_allows", "plan_candidates",
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


def _load_plan(report: AuditReport, root: Path) -> dict | None:
    path = root / PLAN_REL
    if not path.is_file():
        return None
    from ...plan import PlanError, load_plan

    try:
        return load_plan(path).raw
    except PlanError as exc:
        report.add("numbers", f"the plan does not validate, so its values cannot vouch for "
                   f"numbers: {exc.message}", file=PLAN_REL, hint="run `rstack plan check`")
        return None


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
    plan_raw = _load_plan(report, root)
    audit_citations(report, root, tex_path)
    allows = [a for name, text in source.raws.items() for a in parse_allows(report, text, name)]
    audit_numbers(report, source, summary, plan_raw, allows)
    audit_artifacts(report, root, source, summary)
    audit_claims(report, source, summary)
    audit_build(report, root, tex_path)
    _write_audit_record(root, tex_path, report)
    return report
