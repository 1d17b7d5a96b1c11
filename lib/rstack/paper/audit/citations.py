"""The citation check: the literature verifier's problems as audit findings."""

from __future__ import annotations

from pathlib import Path

from .report import AuditReport


# -- citations -------------------------------------------------------------------------------


def audit_citations(report: AuditReport, root: Path, tex_path: Path) -> None:
    try:
        from ...literature.verify import verify_citations
    except ImportError as exc:
        report.add("citations", f"the citation verifier is not available ({exc})",
                   hint="update RStack; `rstack lit verify` checks citations")
        return
    # No bib path: the verifier checks the bib the paper's \\bibliography names (the one the
    # PDF's references come from), and paper.bib only when it names none.
    result = verify_citations(root, tex_path, None)
    for problem in result.problems:
        diff = "; ".join(f"{d.get('field')}: {d.get('bib')!r} in the bib, {d.get('ledger')!r} in "
                         "the ledger" for d in getattr(problem, "diff", None) or [])
        message = f"{getattr(problem, 'kind', 'problem')}: {getattr(problem, 'message', problem)}"
        report.add("citations", message + (f" ({diff})" if diff else ""),
                   line=getattr(problem, "line", None),
                   file=getattr(problem, "file", None),
                   severity=getattr(problem, "severity", "error") or "error",
                   hint=getattr(problem, "hint", None))

