"""`rstack paper new`: write paper.tex (venue skeleton), the venue's .sty and paper.bib.

Never overwrites a paper.tex without force, and never touches an existing paper.bib: both are
the researcher's text once written.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PaperError
from ..tex import tex_escape
from .venues import load_venue, skeleton_path

PAPER_TEX = "paper.tex"
PAPER_BIB = "paper.bib"
SUMMARY = "analysis/summary.json"
DEFAULT_FIGURES = ("analysis/fig_bar.pdf", "analysis/fig_curves.pdf")
DEFAULT_TABLE = "analysis/table_main.tex"


@dataclass
class NewResult:
    venue: str
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"venue": self.venue, "written": self.written, "kept": self.kept,
                "notes": self.notes}


def _read_summary(root: Path) -> dict | None:
    path = root / SUMMARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PaperError(f"{SUMMARY}: cannot read ({exc})",
                         hint="re-run `rstack analyze` to rewrite it") from None
    return data if isinstance(data, dict) else None


# A figure drawn wider than this (inches) spans both columns of a two-column venue.
COLUMN_FIGURE_MAX_IN = 3.5


def _figure_block(path: str, label: str, size_in: list | None = None, columns: int = 1) -> str:
    stem = Path(path).stem
    # analyze draws figures at print size (8 pt text stays 8 pt): keep that size, shrinking
    # only when the column is narrower (width and height both bound, aspect kept).
    options = r"width=\linewidth"
    env = "figure"
    if isinstance(size_in, list) and len(size_in) == 2 and all(
            isinstance(v, (int, float)) and v > 0 for v in size_in):
        options = rf"width=\linewidth,height={size_in[1]:g}in,keepaspectratio"
        if columns == 2 and size_in[0] > COLUMN_FIGURE_MAX_IN:
            env = "figure*"
    return "\n".join([
        rf"\begin{{{env}}}[t]",
        r"  \centering",
        rf"  \includegraphics[{options}]{{{path}}}",
        rf"  \caption{{Describe what \texttt{{{tex_escape(stem)}}} shows and what to read from it.}}",
        rf"  \label{{{label}}}",
        rf"\end{{{env}}}",
    ])


def _results_section(summary: dict | None, columns: int = 1) -> str:
    """The Results section body: the analysis table, figures, and the primary metric's macros."""
    figures = list(DEFAULT_FIGURES)
    tables = [DEFAULT_TABLE]
    sizes: dict = {}
    sentences = []
    if summary:
        artifacts = [a for a in summary.get("artifacts") or [] if isinstance(a, dict)]
        found_figs = [a for a in artifacts
                      if a.get("kind") == "figure" and str(a.get("path", "")).endswith(".pdf")]
        sizes = {a["path"]: a.get("size_in") for a in found_figs}
        found_figs = [a["path"] for a in found_figs]
        found_tabs = [a["path"] for a in artifacts if a.get("kind") == "table"]
        figures = found_figs or figures
        tables = found_tabs or tables
        primary = summary.get("primary_metric")
        for q in summary.get("quantities") or []:
            if (isinstance(q, dict) and q.get("metric") == primary and q.get("stat") == "mean"
                    and q.get("macro") and q.get("arm")):
                sentences.append(rf"\texttt{{{tex_escape(str(q['arm']))}}} reaches "
                                 rf"\{q['macro']}{{}}")
    lines = []
    if sentences:
        lines.append(rf"On \texttt{{{tex_escape(str(summary.get('primary_metric')))}}} "
                     f"(mean over seeds), " + "; ".join(sentences) + ".")
    else:
        lines.append(r"Run \texttt{rstack analyze}, then quote each result through its macro "
                     r"from \texttt{analysis/numbers.tex}.")
    lines.append(r"Table~\ref{tab:main} gives every arm and metric.")
    for path in tables:
        lines += ["", rf"\input{{{path}}}"]
    for path in figures:
        lines += ["", _figure_block(path, "fig:" + Path(path).stem.replace("_", "-"),
                                    sizes.get(path), columns)]
    return "\n".join(lines)


def default_venue(root: Path) -> str:
    """The plan's `publication.venue` when the plan loads, else the `venue` config key."""
    from .. import config
    from ..plan import PlanError, default_plan_path, load_plan

    path = default_plan_path(Path(root))
    if path.is_file():
        try:
            return load_plan(path).venue
        except PlanError:
            pass  # `rstack plan check` reports it; the paper can still start from config
    return config.get("venue")


def new_paper(root: Path, venue_name: str | None = None, *, title: str | None = None,
              force: bool = False) -> NewResult:
    """Write paper.tex for `venue_name` (None: the plan's venue, else the configured one)."""
    root = Path(root)
    venue = load_venue(venue_name or default_venue(root))
    tex_path = root / PAPER_TEX
    if tex_path.exists() and not force:
        raise PaperError(f"{tex_path}: already exists; nothing was written",
                         hint="edit it, or pass --force to replace it (paper.bib is kept)")
    result = NewResult(venue=venue.name)
    summary = _read_summary(root)
    if summary is None:
        result.notes.append(f"{SUMMARY} not found: run `rstack analyze` before `rstack paper build`")
    from ..literature.bib import build_bib

    bib = build_bib(root)  # every paper the lit-review ledger holds, in ledger order
    keys = [k for k in bib.keys if k]
    # A skeleton, not a citation list: a \\citep of every ledger paper invites padding. The keys
    # are listed in a comment so the writer knows what the ledger holds.
    cites = ("\n% Literature ledger keys (cite only where a paper supports a sentence): "
             + ", ".join(keys)) if keys else ""
    skeleton = skeleton_path().read_text(encoding="utf-8")
    replacements = {
        "<<VENUE>>": venue.name,
        "<<DOCUMENTCLASS>>": venue.documentclass,
        "<<STYLE>>": venue.style,
        "<<TITLE>>": tex_escape(title) if title else "Title of the Paper",
        "<<BIBSTYLE>>": venue.bibliography_style,
        "<<CITES>>": cites,
        "<<RESULTS>>": _results_section(summary, venue.columns),
    }
    text = skeleton
    for marker, value in replacements.items():
        text = text.replace(marker, value)
    leftover = re.findall(r"<<[A-Z_]+>>", text)
    if leftover:
        raise PaperError(f"{skeleton_path()}: unknown placeholder(s) {', '.join(leftover)}")

    tex_path.write_text(text, encoding="utf-8")
    result.written.append(PAPER_TEX)
    shutil.copyfile(venue.style_path, root / venue.style_path.name)
    result.written.append(venue.style_path.name)
    bib_path = root / PAPER_BIB
    if bib_path.exists():
        result.kept.append(PAPER_BIB)
    else:
        header = ("% Written by `rstack paper new` from the lit-review ledger's paper records.\n"
                  "% Cite only papers an API returned; `rstack paper audit` checks every key.\n\n")
        bib_path.write_text(header + bib.text, encoding="utf-8")
        result.written.append(PAPER_BIB)
    return result
