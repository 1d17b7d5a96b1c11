"""Escaping plain text (arm and metric names, titles) for LaTeX: the one table of special chars;
and the one list of LaTeX engines rstack can drive (config, `paper build --engine`, compute-detect).

(BibTeX fields keep inline math and are escaped by literature/bib.py's own rule.)
"""

from __future__ import annotations

# In `auto`'s order of preference (rstack.paper.build tries them in this order).
LATEX_ENGINES = ("tectonic", "latexmk", "pdflatex")

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    """Text that LaTeX prints as is: every special character escaped."""
    return "".join(_SPECIAL.get(ch, ch) for ch in text)
