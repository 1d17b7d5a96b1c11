"""The audit's findings and verdict: `Finding`, `Traced`, `AuditReport`, and the record
`.rstack/paper-audit.json`. Never judges the paper; only holds and writes what the checks found."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ... import atomic
from ...errors import PaperError
from ...hashing import sha256_file_or_none as sha256_file

CHECKS = ("citations", "numbers", "artifacts", "claims", "build")
SUMMARY_REL = "analysis/summary.json"
PLAN_REL = "experiment-plan.md"
AUDIT_RECORD = "paper-audit.json"


@dataclass
class Finding:
    check: str
    severity: str  # error | warning
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else (
            f"{self.file}: " if self.file else "")
        text = f"{where}{self.check}: {self.severity}: {self.message}"
        return text + (f"\n  fix: {self.hint}" if self.hint else "")

    def as_json(self) -> dict:
        return {"check": self.check, "severity": self.severity, "file": self.file,
                "line": self.line, "message": self.message, "hint": self.hint}


@dataclass
class Traced:
    """A typed number the audit accepted, and why."""
    line: int
    text: str
    source: str  # summary | plan | allow | analysis-setting
    detail: str  # what it was traced to: a macro, a statistic, a plan key, a setting
    run_ids: list[str] = field(default_factory=list)
    match: str = "exact"  # exact (declared value) | printed (a macro's text) | rounded | count
    file: str | None = None  # paper.tex, or the hand-written \\input file it stands in

    def as_json(self) -> dict:
        return {"file": self.file, "line": self.line, "text": self.text, "source": self.source,
                "detail": self.detail, "match": self.match, "run_ids": self.run_ids}


@dataclass
class AuditReport:
    tex: str
    findings: list[Finding] = field(default_factory=list)
    traced: list[Traced] = field(default_factory=list)
    macros_used: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, check: str, message: str, *, line: int | None = None, severity: str = "error",
            hint: str | None = None, file: str | None = None) -> None:
        self.findings.append(Finding(check, severity, message, file or self.tex, line, hint))

    def check_status(self) -> dict[str, str]:
        status = {name: "pass" for name in CHECKS}
        for finding in self.findings:
            if finding.severity == "error":
                status[finding.check] = "fail"
            elif status[finding.check] == "pass":
                status[finding.check] = "warn"
        return status

    def as_json(self) -> dict:
        return {"ok": self.ok, "tex": self.tex, "checks": self.check_status(),
                "errors": len(self.errors),
                "warnings": len(self.findings) - len(self.errors),
                "findings": [f.as_json() for f in self.findings],
                "numbers": {"macros_used": self.macros_used,
                            "traced": [t.as_json() for t in self.traced]}}



def audit_record_path(root: Path) -> Path:
    from ... import paths

    return paths.state_dir(root) / AUDIT_RECORD


def _write_audit_record(root: Path, tex_path: Path, report: AuditReport) -> None:
    """`.rstack/paper-audit.json`: the last verdict, tied to the sources and PDF it judged
    (`rstack status` treats it as current only while those hashes still match)."""
    record = report.as_json()
    record.update({
        "version": 1,
        "audited_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tex_sha256": sha256_file(tex_path),
        "bib_sha256": sha256_file(tex_path.with_suffix(".bib")),
        "pdf_sha256": sha256_file(tex_path.with_suffix(".pdf")),
    })
    path = audit_record_path(root)
    try:
        atomic.write_text(path, json.dumps(record, indent=2) + "\n")
    except OSError as exc:
        raise PaperError(f"cannot record the audit in {path} ({exc.strerror})",
                         hint="check that .rstack/ is writable") from None
