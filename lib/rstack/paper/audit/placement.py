"""Float placement: a table or figure stands in the section that first references it, so the
reader meets it where the text discusses it. A warning, reported under `artifacts`."""

from __future__ import annotations

import re
from pathlib import Path

from .report import AuditReport
from .scanner import Source

_SECTION = re.compile(r"\\section\*?\s*(?:\[[^\]]*\])?\s*\{(?P<title>[^{}]*)\}")
_FLOAT = re.compile(r"\\begin\{(?P<env>table|figure)\*?\}(?P<body>.*?)\\end\{(?P=env)\*?\}", re.S)
_ANALYSIS_INPUT = re.compile(r"\\input\s*\{(?P<target>analysis/[^{}]*)\}")
_LABEL = re.compile(r"\\label\s*\{(?P<label>[^{}]*)\}")
_REF = re.compile(r"\\(?:ref|autoref|cref|Cref|nameref|vref)\s*\{(?P<labels>[^{}]*)\}")


def _section_at(sections: list[tuple[int, str]], offset: int) -> str | None:
    title = None
    for start, name in sections:
        if start > offset:
            break
        title = name
    return title


def audit_placement(report: AuditReport, root: Path, source: Source) -> None:
    text = source.text
    sections = [(m.start(), " ".join(m.group("title").split())) for m in _SECTION.finditer(text)]
    floats: list[tuple[int, str, str]] = []  # (offset, kind, label)
    for match in _FLOAT.finditer(text):
        for label in _LABEL.finditer(match.group("body")):
            floats.append((match.start(), match.group("env"), label.group("label").strip()))
    for match in _ANALYSIS_INPUT.finditer(text):  # analyze's tables carry their own \label
        target = match.group("target")
        path = root / (target if target.endswith(".tex") else target + ".tex")
        try:
            body = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        kind = "table" if "\\begin{table" in body else "figure"
        for label in _LABEL.finditer(body):
            floats.append((match.start(), kind, label.group("label").strip()))
    first_ref: dict[str, int] = {}
    for match in _REF.finditer(text):
        for label in match.group("labels").split(","):
            first_ref.setdefault(label.strip(), match.start())
    for offset, kind, label in floats:
        ref = first_ref.get(label)
        if ref is None:
            continue
        placed, cited = _section_at(sections, offset), _section_at(sections, ref)
        if placed is None or cited is None or placed == cited:
            continue
        cited_at = source.at(ref)
        report.add("artifacts", f"{kind} '{label}' stands in section '{placed}' but is first "
                   f"referenced in section '{cited}' ({cited_at['file']}:{cited_at['line']})",
                   **source.at(offset), severity="warning",
                   hint=f"move the {kind} into section '{cited}', next to the paragraph that "
                        "first refers to it")
