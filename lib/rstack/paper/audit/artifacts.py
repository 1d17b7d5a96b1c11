"""The artifact check: every \\includegraphics/\\input is a file analyze wrote, unchanged since,
and not stale against newer ledger runs."""

from __future__ import annotations

import re
from pathlib import Path

from ...freshness import analysis_freshness
from ...hashing import sha256_file_or_none as sha256_file
from .report import SUMMARY_REL, AuditReport
from .scanner import Source, _command_args

_GRAPHICS_EXTS = (".pdf", ".png", ".jpg", ".jpeg", ".eps")


# -- artifacts -------------------------------------------------------------------------------


def audit_artifacts(report: AuditReport, root: Path, source: Source, summary: dict | None) -> None:
    artifacts = {}
    if summary:
        for art in summary.get("artifacts") or []:
            if isinstance(art, dict) and isinstance(art.get("path"), str):
                artifacts[art["path"]] = art
    targets = []
    for match in re.finditer(r"\\(?P<cmd>includegraphics|input|include)\b", source.text):
        _, spans = _command_args(source.text, match.end(), 1)
        braces = [s for s in spans if source.text[s[0]] == "{"]
        if not braces:
            continue
        start, end = braces[0]
        targets.append((match.group("cmd"), source.text[start + 1:end - 1].strip(),
                        source.at(match.start())))
    fresh = None
    for cmd, target, where in targets:
        if cmd == "includegraphics":
            options = [target] if Path(target).suffix else [target + e for e in _GRAPHICS_EXTS]
        else:
            options = [target] if target.endswith(".tex") else [target + ".tex", target]
        found = next((o for o in options if (root / o).is_file()), None)
        if found is None:
            report.add("artifacts", f"\\{cmd}{{{target}}}: file not found", **where,
                       hint="run `rstack analyze` to write analysis/ figures and tables, or fix "
                            "the path")
            continue
        rel = Path(found).as_posix()
        if summary is None:
            report.add("artifacts", f"\\{cmd}{{{target}}}: cannot check where it came from: "
                       f"{SUMMARY_REL} is missing", **where, hint="run `rstack analyze`")
            continue
        art = artifacts.get(rel)
        if art is None:
            report.add("artifacts", f"\\{cmd}{{{target}}}: {rel} was not produced by rstack "
                       f"analyze (not in {SUMMARY_REL} artifacts)", **where,
                       hint="include only figures and tables `rstack analyze` wrote; put hand "
                            "text in paper.tex itself")
            continue
        if sha256_file(root / rel) != art.get("sha256"):
            report.add("artifacts", f"\\{cmd}{{{target}}}: {rel} changed since rstack analyze "
                       "wrote it (sha256 differs)", **where,
                       hint="re-run `rstack analyze`; never edit analysis/ by hand")
            continue
        arms = [a for a in art.get("arms") or [] if isinstance(a, str)] or \
            list((summary.get("arms") or {}).keys())
        if fresh is None:
            fresh = analysis_freshness(root, summary)
        newer = fresh.stale_arms(arms)
        if fresh.rewritten:
            report.add("artifacts", f"\\{cmd}{{{target}}}: stale: {fresh.reason}", **where,
                       hint="re-run `rstack analyze`, then `rstack paper build`")
        elif newer:
            detail = "; ".join(f"{arm}: {', '.join(ids)}" for arm, ids in sorted(newer.items()))
            report.add("artifacts", f"\\{cmd}{{{target}}}: stale: the ledger has newer finished "
                       f"runs of the arms it shows ({detail})", **where,
                       hint="re-run `rstack analyze`, then `rstack paper build`")

