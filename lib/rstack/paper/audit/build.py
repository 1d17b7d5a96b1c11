"""The build check: the last `rstack paper build` record matches the sources, the analysis and
the PDF, with no undefined citation or reference and within the venue's page limit."""

from __future__ import annotations

from pathlib import Path

from ...hashing import sha256_file_or_none as sha256_file
from ..build import read_build_record
from .report import SUMMARY_REL, AuditReport


# -- build -----------------------------------------------------------------------------------


def audit_build(report: AuditReport, root: Path, tex_path: Path) -> None:
    record = read_build_record(root)
    if record is None:
        report.add("build", "the paper has not been built", hint="run `rstack paper build`",
                   file=".rstack/paper-build.json")
        return
    where = ".rstack/paper-build.json"
    if record.get("tex_sha256") != sha256_file(tex_path):
        report.add("build", f"{tex_path.name} changed since the last build", file=where,
                   hint="run `rstack paper build` again")
    if record.get("bib_sha256") != sha256_file(tex_path.with_suffix(".bib")):
        report.add("build", f"{tex_path.with_suffix('.bib').name} changed since the last build",
                   file=where, hint="run `rstack paper build` again")
    if record.get("analysis_sha256") != sha256_file(root / SUMMARY_REL):
        report.add("build", f"{SUMMARY_REL} changed since the last build (rstack analyze ran "
                   "after it): the PDF may show old numbers and figures", file=where,
                   hint="run `rstack paper build` again")
    pdf = tex_path.with_suffix(".pdf")
    if record.get("ok") and record.get("pdf_sha256") != sha256_file(pdf):
        report.add("build", f"{pdf.name} is not the PDF the last build wrote", file=where,
                   hint="run `rstack paper build` again")
    if not record.get("ok"):
        first = "; ".join(
            ":".join(str(part) for part in (e.get("file"), e.get("line")) if part is not None)
            + f": {e.get('message')}" for e in (record.get("errors") or [])[:3]
            if isinstance(e, dict))
        report.add("build", "the last build failed" + (f" ({first})" if first else ""),
                   file=where, hint="fix the errors `rstack paper build` prints")
    for key in record.get("undefined_citations") or []:
        report.add("build", f"undefined citation '{key}' in the last build", file=where,
                   hint="add the paper through `rstack lit` so paper.bib has it, or drop the cite")
    for key in record.get("undefined_references") or []:
        report.add("build", f"undefined reference '{key}' in the last build", file=where,
                   hint="add the \\label or fix the \\ref")
    limit = record.get("page_limit")
    counted = record.get("main_pages") if record.get("main_pages") is not None else record.get("pages")
    if limit is not None and counted is not None and counted > limit:
        report.add("build", f"{counted} pages of main text, over the {record.get('venue')} "
                   f"limit of {limit}", file=where, hint="cut text or move material to an appendix")
    if record.get("ok") and counted is None:
        report.add("build", "the page count is unknown (no pdfinfo and no count in the log)",
                   file=where, severity="warning", hint="install poppler-utils")

