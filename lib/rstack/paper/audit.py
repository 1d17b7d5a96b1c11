"""`rstack paper audit`: the gate before a paper is called done. Every finding names file:line.

Five checks: citations (the literature verifier), numbers (every typed result traces to a run, the
plan, or an explicit allow comment), artifacts (figures/tables are analyze's files and not stale),
claims ("significantly" only where analyze found significance), and the last build's log. The audit
never edits the paper, the analysis or the ledgers; it only records its verdict in
`.rstack/paper-audit.json`.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .. import atomic
from ..errors import PaperError
from ..hashing import sha256_file_or_none as sha256_file
from .build import read_build_record

CHECKS = ("citations", "numbers", "artifacts", "claims", "build")
SUMMARY_REL = "analysis/summary.json"
PLAN_REL = "experiment-plan.md"
AUDIT_RECORD = "paper-audit.json"

# Section titles whose text reports results; their numbers must trace.
# Sections whose numbers are claims about this paper's runs. The introduction is among them: it is
# where a headline result ("cuts the loss by 18%") is typed first. Related work and method are not:
# they quote other papers' numbers and the plan's design values.
_RESULT_TITLE = re.compile(
    r"introduc|experiment|result|evaluat|ablation|discussion|conclu|limitation", re.I)
_TITLE = re.compile(r"\\title\s*(?:\[[^\]]*\])?\s*\{")
_HEADING = re.compile(r"\\(?P<level>section|subsection)\*?\s*(?:\[[^\]]*\])?\s*\{")
_ENV = re.compile(r"\\begin\{(?P<env>abstract|table\*?|figure\*?)\}")

# Commands whose arguments never hold a reported number: (name, brace args to mask; -1 = all).
_MASKED_COMMANDS: dict[str, int] = {
    **{name: -1 for name in (
        "ref", "eqref", "autoref", "cref", "Cref", "pageref", "nameref", "label", "cite", "citet",
        "citep", "citealt", "citealp", "citeauthor", "citeyear", "citeyearpar", "Citet", "Citep",
        "nocite", "includegraphics", "input", "include", "url", "bibliography",
        "bibliographystyle", "usepackage", "documentclass", "vspace", "hspace", "setlength",
        "addtolength", "setcounter", "addtocounter", "rule", "fontsize", "color", "definecolor",
        "newcommand", "renewcommand", "providecommand", "hypersetup", "captionsetup",
        "addlinespace", "specialrule", "cline", "cmidrule", "end", "linespread", "arraystretch",
        "rowcolor", "cellcolor", "newcolumntype", "resizebox", "rotatebox")},
    # Only the leading arguments are layout; the last one is content and stays checked.
    "multicolumn": 2, "multirow": 2, "textcolor": 1, "colorbox": 1, "href": 1, "scalebox": 1,
    "makebox": 0, "framebox": 0, "parbox": 1, "raisebox": 1, "begin": 1,
}
# \begin{ENV} arguments after the name that are layout (column specs, widths).
_ENV_LAYOUT_ARGS = {"tabular": 1, "tabular*": 2, "tabularx": 2, "array": 1, "minipage": 1,
                    "wrapfigure": 2, "subfigure": 1, "tabulary": 2}
_UNITS = r"(?:pt|em|ex|cm|mm|in|bp|pc|sp|mu|dd|cc)(?![A-Za-z])"
_LENGTH_MACROS = (r"\\(?:linewidth|textwidth|columnwidth|textheight|hsize|vsize|baselineskip|"
                  r"paperwidth|paperheight|tabcolsep|parindent|parskip|fill|columnsep)")
_NUM = r"\d+(?:\.\d+)?"
_LENGTH = re.compile(rf"-?(?:{_NUM}|\.\d+)\s*(?:{_UNITS}|{_LENGTH_MACROS})")
_REF_WORDS = re.compile(
    r"(?:\b(?:Sections?|Sec\.|Tables?|Tab\.|Figures?|Fig\.|Figs\.|Equations?|Eqs?\.|Eqn\.|"
    r"Appendix|App\.|Chapters?|Lines?|Algorithms?|Alg\.|Steps?|Theorems?|Lemmas?|Definitions?|"
    r"Corollary|Propositions?|Footnote|Page|pp?\.)(?:~|\s)*\(?)(?P<num>\d+(?:\.\d+)*[a-z]?)",
    re.I)
_CITE_YEAR = re.compile(r"(?:et\s+al\.?,?|[A-Z][A-Za-z'\-]+,?)(?:~|\s)*\(?(?P<year>(?:19|20)\d\d)[a-z]?\b")
_ENUM = re.compile(r"\((?P<num>\d)\)")
_VERSION = re.compile(r"\b\d+\.\d+\.\d+(?:\.\d+)*\b")
_SCRIPT = re.compile(r"[_^](?:\{[^{}]*\}|\\?[A-Za-z0-9])")
_SCI = re.compile(
    r"(?P<mant>-?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\\,\\times)\s*10\s*\^\s*\{?\s*(?P<e1>[-+−]?\d+)\s*\}?"
    r"|(?<![\d.])10\s*\^\s*\{\s*(?P<e2>[-+−]?\d+)\s*\}|(?<![\d.])10\s*\^\s*(?P<e3>\d)"
    r"|(?P<emant>\d+(?:\.\d+)?)[eE](?P<e4>[-+]?\d+)(?![A-Za-z])")
_NUMBER = re.compile(r"(?P<sign>[-−]|\$-\$)?(?P<num>\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
_ALLOW = re.compile(r"%\s*rstack:\s*allow\s+(?P<num>\S+)(?P<reason>.*)$")  # at the comment's start
_SIGNIFICANT = re.compile(r"\bsignificant(?:ly)?\b", re.I)
_NEGATION = re.compile(r"\b(?:not|no|non|without|never|neither|nor|lack(?:s|ing)?|n't|cannot)\W+"
                       r"(?:\w+\W+){0,2}$", re.I)
_GRAPHICS_EXTS = (".pdf", ".png", ".jpg", ".jpeg", ".eps")


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
    match: str = "exact"  # exact (declared value) | printed (a macro's text) | rounded

    def as_json(self) -> dict:
        return {"line": self.line, "text": self.text, "source": self.source,
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


# -- LaTeX source handling ----------------------------------------------------------------------


class Source:
    """paper.tex with comments and verbatim blanked out, offsets kept, and a line lookup."""

    def __init__(self, raw: str):
        self.raw = raw
        self.text = _blank_verbatim(_strip_comments(raw))
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]

    def line_of(self, offset: int) -> int:
        return bisect_right(self._line_starts, offset)


def _strip_comments(raw: str) -> str:
    out = []
    for line in raw.split("\n"):
        cut = None
        backslashes = 0
        for index, char in enumerate(line):
            if char == "\\":
                backslashes += 1
                continue
            if char == "%" and backslashes % 2 == 0:
                cut = index
                break
            backslashes = 0
        out.append(line if cut is None else line[:cut] + " " * (len(line) - cut))
    return "\n".join(out)


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _blank_verbatim(text: str) -> str:
    for match in list(re.finditer(r"\\begin\{(verbatim|lstlisting|minted)\*?\}.*?\\end\{\1\*?\}",
                                  text, re.S)):
        text = _blank(text, match.start(), match.end())
    for match in list(re.finditer(r"\\verb\*?(?P<d>[^A-Za-z\s]).*?(?P=d)", text)):
        text = _blank(text, match.start(), match.end())
    return text


def _group_end(text: str, start: int, open_char: str, close_char: str) -> int:
    """Index just past the group opening at text[start] (balanced, honouring escapes)."""
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == open_char:
            depth += 1
        elif char == close_char:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return len(text)


def _skip_space(text: str, index: int) -> int:
    """Skip the spaces between a command's arguments; a blank line ends the command."""
    newlines = 0
    while index < len(text) and text[index] in " \t\n":
        newlines += text[index] == "\n"
        if newlines > 1:
            break
        index += 1
    return index


def _command_args(text: str, pos: int, braces: int) -> tuple[int, list[tuple[int, int]]]:
    """Spans of a command's optional [..]/(..) args and its first `braces` {..} args (-1: all)."""
    spans = []
    index = pos
    taken = 0
    while True:
        probe = _skip_space(text, index)
        if probe >= len(text):
            break
        char = text[probe]
        if char == "[":
            end = _group_end(text, probe, "[", "]")
        elif char == "(" and taken == 0 and text[pos - 8:pos].endswith("cmidrule"):
            end = _group_end(text, probe, "(", ")")
        elif char == "{" and (braces < 0 or taken < braces):
            end = _group_end(text, probe, "{", "}")
            taken += 1
        elif char == "*" and probe == pos:
            end = probe + 1
        else:
            break
        spans.append((probe, end))
        index = end
    return index, spans


def masked_text(text: str) -> str:
    """`text` with every construct that holds no reported number blanked (offsets kept)."""
    for match in list(re.finditer(r"\\(?P<name>[A-Za-z]+)", text)):
        name = match.group("name")
        if name not in _MASKED_COMMANDS:
            continue
        braces = _MASKED_COMMANDS[name]
        end, spans = _command_args(text, match.end(), braces)
        if name == "begin" and spans:
            env = text[spans[-1][0] + 1:spans[-1][1] - 1].strip()
            extra = _ENV_LAYOUT_ARGS.get(env, 0)
            if extra:
                end, more = _command_args(text, end, extra)
                spans += more
        for start, stop in spans:
            text = _blank(text, start, stop)
    for pattern in (_LENGTH, _VERSION):
        for match in list(pattern.finditer(text)):
            text = _blank(text, match.start(), match.end())
    for pattern, group in ((_REF_WORDS, "num"), (_CITE_YEAR, "year"), (_ENUM, "num")):
        for match in list(pattern.finditer(text)):
            text = _blank(text, match.start(group), match.end(group))
    text = re.sub(r"\\\\\s*\[[^\]]*\]", lambda m: " " * len(m.group()), text)  # \\[2pt]
    return text


def _regions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, what) spans whose numbers are audited: the title, the abstract, the
    introduction and result sections, floats."""
    regions = []
    doc_end = text.find("\\end{document}")
    doc_end = len(text) if doc_end < 0 else doc_end
    for match in _TITLE.finditer(text):
        regions.append((match.start(), _group_end(text, match.end() - 1, "{", "}"), "title"))
    for match in _ENV.finditer(text):
        env = match.group("env")
        close = text.find(f"\\end{{{env}}}", match.end())
        regions.append((match.start(), close if close >= 0 else doc_end, env.rstrip("*")))
    headings = []
    for match in _HEADING.finditer(text):
        brace = match.end() - 1
        title_end = _group_end(text, brace, "{", "}")
        headings.append((match.start(), match.group("level"), text[brace + 1:title_end - 1]))
    stops = [m.start() for m in re.finditer(r"\\(?:bibliography|appendix|end\{document\})\b", text)]
    for index, (start, level, title) in enumerate(headings):
        if not _RESULT_TITLE.search(title):
            continue
        end = doc_end
        for later_start, later_level, _ in headings[index + 1:]:
            if level == "subsection" and later_level in ("section", "subsection") or \
                    level == "section" and later_level == "section":
                end = later_start
                break
        end = min([end] + [s for s in stops if s > start])
        regions.append((start, end, f"section '{' '.join(title.split())}'"))
    return regions


_DEFINITION = re.compile(r"\\(?:(?:re)?newcommand|providecommand|DeclareRobustCommand)\b\*?"
                         r"|\\[gex]?def(?![A-Za-z])")
_CSNAME = re.compile(r"\s*(\\(?:[A-Za-z@]+|.))")
# Layout parameters a paper redefines (\renewcommand{\arraystretch}{1.2}): their values are design.
_LAYOUT_DEFINITIONS = re.compile(r"\\(?:arraystretch|baselinestretch|\w*fraction|\w*penalty|"
                                 r"\w*skip|\w*sep|\w*width|\w*height|\w*size)$")


def _definitions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, what) of every macro body the paper defines, wherever it stands: a result
    typed into `\\newcommand{\\ours}{0.97}` in the preamble prints in the results like any
    typed number, so the body is audited as a region of its own."""
    regions = []
    for match in _DEFINITION.finditer(text):
        if match.group().lstrip("\\").endswith("def"):
            name = _CSNAME.match(text, match.end())
            if name is None:
                continue
            brace = text.find("{", name.end())
            if brace < 0 or "\n\n" in text[name.end():brace]:
                continue
            end = _group_end(text, brace, "{", "}")
            if not (_LAYOUT_DEFINITIONS.match(name.group(1)) or "@" in name.group(1)
                    or "\\@" in text[brace:end]):
                regions.append((brace, end, f"definition of {name.group(1)}"))
            continue
        name = _CSNAME.match(text, match.end())
        if name is not None:  # \newcommand\foo{body}
            _, spans = _command_args(text, name.end(), 1)
            label = name.group(1)
        else:  # \newcommand{\foo}[n][default]{body}
            _, spans = _command_args(text, match.end(), 2)
            braces = [s for s in spans if text[s[0]] == "{"]
            label = " ".join(text[braces[0][0] + 1:braces[0][1] - 1].split()) if braces else "?"
        braces = [s for s in spans if text[s[0]] == "{"]
        if braces and (name is not None or len(braces) == 2):
            if _LAYOUT_DEFINITIONS.match(label) or "@" in label or \
                    "\\@" in text[braces[-1][0]:braces[-1][1]]:
                continue  # layout, or LaTeX internals (\renewcommand{\section}{\@startsection..})
            regions.append((braces[-1][0], braces[-1][1], f"definition of {label}"))
    return regions


# -- numbers ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    value: float
    source: str  # summary | plan | allow | analysis-setting
    detail: str
    run_ids: list[str] = field(default_factory=list)
    text: str | None = None  # the exact printed text (summary quantities)


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def significant_digits(typed: str) -> int:
    """Digits from the first non-zero one to the last one written: 0.09 -> 1, 0.090 -> 2, 200 -> 3.

    A typed integer is read as precise to its units, so its trailing zeros count.
    """
    return len(typed.replace(".", "").lstrip("0"))


def _parse_number(text: str) -> float | None:
    cleaned = text.replace("{,}", "").replace(",", "").replace("−", "-").strip().rstrip("%")
    cleaned = cleaned.replace("\\%", "")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers_in(value: Any, path: str = "") -> Iterable[tuple[str, float]]:
    """(key path, number) for every numeric scalar in a YAML/JSON value, strings included."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            yield path, float(value)
    elif isinstance(value, str):
        for match in re.finditer(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", value):
            parsed = _parse_number(match.group())
            if parsed is not None:
                yield path, parsed
                yield path, abs(parsed)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers_in(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _numbers_in(item, f"{path}[{index}]")


def summary_candidates(summary: dict) -> list[Candidate]:
    """Every value analyze computed: the printed quantities first, then the raw statistics."""
    out: list[Candidate] = []
    for q in summary.get("quantities") or []:
        if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
            out.append(Candidate(float(q["value"]), "summary", f"\\{q.get('macro')}",
                                 list(q.get("run_ids") or []), text=q.get("text")))
    arms = summary.get("arms") or {}
    for arm, info in arms.items():
        if not isinstance(info, dict):
            continue
        run_ids = list(info.get("run_ids") or [])
        for metric, stats in (info.get("metrics") or {}).items():
            if not isinstance(stats, dict):
                continue
            ids = list(stats.get("run_ids") or run_ids)
            for stat, value in stats.items():
                if stat == "values" and isinstance(value, list):
                    for v in value:
                        if isinstance(v, (int, float)) and not isinstance(v, bool):
                            out.append(Candidate(float(v), "summary",
                                                 f"{arm} {metric} value of one run", ids))
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.append(Candidate(float(value), "summary", f"{arm} {metric} {stat}", ids))
            low, high = stats.get("ci_low"), stats.get("ci_high")
            if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                out.append(Candidate((high - low) / 2, "summary", f"{arm} {metric} CI half-width",
                                     ids))
    for comp in summary.get("comparisons") or []:
        if not isinstance(comp, dict):
            continue
        ids = list((arms.get(comp.get("arm")) or {}).get("run_ids") or []) + \
            list((arms.get(comp.get("baseline")) or {}).get("run_ids") or [])
        for stat in ("delta", "rel_delta", "p_value", "n", "n_baseline", "ci_low", "ci_high"):
            value = comp.get(stat)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append(Candidate(float(value), "summary",
                                     f"{comp.get('arm')} vs {comp.get('baseline')} "
                                     f"{comp.get('metric')} {stat}", ids))
    return out


def analysis_constants(summary: dict) -> list[Candidate]:
    """The analysis's own settings, which a paper states as design: the confidence level (0.95
    and 95), alpha, the minimum seed count and each arm's number of seeds."""
    out: list[Candidate] = []
    confidence = summary.get("confidence")
    if isinstance(confidence, (int, float)) and not isinstance(confidence, bool):
        out.append(Candidate(float(confidence), "analysis-setting", "summary.json confidence"))
        out.append(Candidate(float(confidence) * 100, "analysis-setting",
                             "summary.json confidence, in percent"))
    for key in ("alpha", "min_seeds"):
        value = summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(Candidate(float(value), "analysis-setting", f"summary.json {key}"))
    for arm, info in (summary.get("arms") or {}).items():
        if isinstance(info, dict) and info.get("run_ids"):
            out.append(Candidate(float(len(info["run_ids"])), "analysis-setting",
                                 f"summary.json arms.{arm}: number of seeds (runs)",
                                 list(info["run_ids"])))
    return out


def plan_candidates(raw: dict) -> list[Candidate]:
    out = [Candidate(v, "plan", f"{PLAN_REL} {path}") for path, v in _numbers_in(raw)]
    execution = raw.get("execution") if isinstance(raw.get("execution"), dict) else {}
    if isinstance(execution.get("seeds"), list):
        out.append(Candidate(float(len(execution["seeds"])), "plan",
                             f"{PLAN_REL} execution.seeds: number of seeds"))
    if isinstance(execution.get("arms"), dict):
        out.append(Candidate(float(len(execution["arms"])), "plan",
                             f"{PLAN_REL} execution.arms: number of arms"))
    return out


@dataclass
class Typed:
    """A number as the paper wrote it."""
    text: str  # the digits as typed, without grouping commas
    value: float
    percent: bool  # `\%` follows it
    scientific: bool  # 1e-3, 10^{-3}, 2 \times 10^{4}


def _exact(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _rounds_to(value: float, typed: Typed) -> bool:
    if typed.scientific:
        return _exact(value, typed.value)
    decimals = _decimals(typed.text)
    return f"{abs(value):.{decimals}f}" == f"{abs(typed.value):.{decimals}f}"


def trace_number(typed: Typed, declared: list[Candidate],
                 computed: list[Candidate]) -> tuple[Candidate, str, str] | None:
    """(candidate, match, detail) for a typed number, or None. The order is the point:

    1. declared values (the plan, allow comments, the analysis's own settings), by exact value,
       so a design number is never credited to a result it happens to round to;
    2. a quantity whose text in numbers.tex is exactly what was typed;
    3. any computed value that rounds to the typed number at its printed precision, only when
       that precision carries at least 2 significant digits (0.09 matches too much to mean a
       thing).
    A percentage (`\\%` right after the number) may also be a value times 100.
    """
    scales = [(1.0, "")] + ([(100.0, ", x100 as a percentage")] if typed.percent else [])
    for candidate in declared:
        for factor, note in scales:
            if _exact(candidate.value * factor, typed.value) or \
                    _exact(abs(candidate.value) * factor, typed.value):
                return candidate, "exact", candidate.detail + note
    if not typed.scientific:
        for candidate in computed:
            if candidate.text is not None and candidate.text.lstrip("+-") == typed.text:
                return candidate, "printed", f"{candidate.detail} (printed {candidate.text})"
    if typed.scientific or significant_digits(typed.text) >= 2:
        for candidate in computed:
            for factor, note in scales:
                if _rounds_to(candidate.value * factor, typed):
                    return candidate, "rounded", (
                        f"{candidate.detail} = {candidate.value:.6g}{note}, rounded to "
                        f"{_decimals(typed.text)} decimal(s)")
    return None


def _near_miss(typed: Typed, computed: list[Candidate]) -> Candidate | None:
    """A computed value a too-short typed number rounds to (for the hint only)."""
    for candidate in computed:
        if _rounds_to(candidate.value, typed):
            return candidate
    return None


# Words that may follow a number as a unit of change: "a 7.3-fold gain", "4x", "1.5-times".
_MULTIPLIER_SUFFIX = re.compile(r"-?(?:fold|times|x|X)", re.I)


def _letter_attached(text: str, start: int, end: int) -> bool:
    """A digit run that is part of a name: CIFAR-10, ResNet50, GPT-2, Llama-2-7B, 3D, 1st, x86.

    The word around the number (letters, digits, `-`, `_`, `.` on the left) decides: a letter
    anywhere else in it makes a name, except a multiplier or magnitude suffix (4x, 7.3-fold,
    10k, 7B) after a number with no letter before it. A range such as 0.3-0.5 has no letter, so
    both of its numbers are checked.
    """
    left = start
    while left > 0 and (text[left - 1].isalnum() or text[left - 1] in "-_."):
        left -= 1
    right = end
    while right < len(text) and (text[right].isalnum() or text[right] in "-_"):
        right += 1
    before, after = text[left:start], text[end:right]
    if not any(c.isalpha() for c in before) and (
            after in ("k", "K", "M", "B") or _MULTIPLIER_SUFFIX.fullmatch(after)):
        return False
    return any(c.isalpha() for c in before + after)


def audit_numbers(report: AuditReport, source: Source, summary: dict | None,
                  plan_raw: dict | None, allows: list[Candidate]) -> None:
    declared = (plan_candidates(plan_raw) if plan_raw else []) + allows + \
        (analysis_constants(summary) if summary else [])
    computed = summary_candidates(summary) if summary else []
    text = source.text
    masked = masked_text(text)
    seen: set[int] = set()
    # Floats and the abstract first, so a number is reported as in the figure, not its section.
    definitions = _definitions(text)
    regions = sorted(_regions(text), key=lambda r: (r[2].startswith("section"), r[0]))
    for start, end, what in definitions + regions:
        if what.startswith("definition of "):
            # masked_text blanks definitions whole; mask the body alone, and its #1 parameters.
            chunk = re.sub(r"#+\d", lambda m: " " * len(m.group()), masked_text(text[start:end]))
        else:
            chunk = masked[start:end]
        report.macros_used += len(re.findall(r"\\rs[A-Z][A-Za-z]*", text[start:end]))
        consumed: list[tuple[int, int]] = []
        hits: list[tuple[int, int, str, float, bool]] = []
        for match in _SCI.finditer(chunk):
            if match.group("mant") is not None:
                value = float(match.group("mant")) * 10 ** int(match.group("e1").replace("−", "-"))
            elif match.group("emant") is not None:
                value = float(match.group("emant")) * 10 ** int(match.group("e4"))
            else:
                exp = match.group("e2") or match.group("e3")
                value = 10 ** float(exp.replace("−", "-"))
            hits.append((start + match.start(), start + match.end(), match.group(), value, True))
            consumed.append((match.start(), match.end()))
        for span in consumed:
            chunk = _blank(chunk, *span)
        chunk = _SCRIPT.sub(lambda m: " " * len(m.group()), chunk)
        for match in _NUMBER.finditer(chunk):
            abs_start, abs_end = start + match.start("num"), start + match.end("num")
            if _letter_attached(text, abs_start, abs_end):
                continue
            if abs_end < len(text) and text[abs_end] == "." and abs_end + 1 < len(text) \
                    and text[abs_end + 1].isdigit():
                continue  # part of a longer dotted token already judged
            value = _parse_number(match.group("num"))
            if value is None:
                continue
            hits.append((abs_start, abs_end, match.group("num"), value, False))
        for abs_start, abs_end, typed_text, value, scientific in hits:
            if abs_start in seen:
                continue
            seen.add(abs_start)
            percent = bool(re.match(r"\s*\\%", text[abs_end:abs_end + 4]))
            line = source.line_of(abs_start)
            plain = typed_text.replace("{,}", "").replace(",", "")
            typed = Typed(plain, abs(value), percent, scientific)
            found = trace_number(typed, declared, computed)
            if found is not None:
                candidate, how, detail = found
                report.traced.append(Traced(line, typed_text, candidate.source, detail,
                                            candidate.run_ids, how))
                continue
            hint = ("quote it with its \\rs... macro from analysis/numbers.tex, declare it in "
                    f"experiment-plan.md, or add `% rstack: allow {plain} <reason>`")
            near = None if scientific else _near_miss(typed, computed)
            if near is not None:
                hint = (f"{plain} has fewer than 2 significant digits, too few to trace by "
                        f"rounding (it would pass for {near.detail} = {near.value:.4g}); " + hint)
            report.add("numbers",
                       f"typed number {typed_text}{'%' if percent else ''} in the {what} matches "
                       "no analysed run, plan value or allow comment", line=line, hint=hint)


def parse_allows(report: AuditReport, raw: str) -> list[Candidate]:
    """`% rstack: allow NUMBER REASON` lines (the directive must open the line's comment)."""
    allows = []
    stripped = _strip_comments(raw).split("\n")
    for number, line in enumerate(raw.split("\n"), start=1):
        code = stripped[number - 1].rstrip()
        match = _ALLOW.match(line[len(code):].lstrip()) if len(code) < len(line) else None
        if not match:
            continue
        value = _parse_number(match.group("num"))
        reason = match.group("reason").strip()
        if value is None:
            report.add("numbers", f"`rstack: allow` needs a number, got {match.group('num')!r}",
                       line=number, hint="write `% rstack: allow 1000 images in the test split`")
            continue
        if not reason:
            report.add("numbers", f"`rstack: allow {match.group('num')}` gives no reason",
                       line=number, hint="say why the number is not a result, after the number")
            continue
        allows.append(Candidate(value, "allow", reason))
    return allows


# -- artifacts -------------------------------------------------------------------------------


def _parse_ts(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _newer_runs(root: Path, summary: dict, arms: list[str]) -> dict[str, list[str]]:
    """arm -> run ids finished ok in the ledger after the run analyze last used for that arm."""
    from ..ledger import Ledger

    ledger = Ledger(root, "experiments")
    if not ledger.path.exists():
        return {}
    info = summary.get("arms") or {}
    cutoffs = {arm: _parse_ts((info.get(arm) or {}).get("latest_finished_ts")) for arm in arms}
    used = {rid for arm in arms for rid in (info.get(arm) or {}).get("run_ids") or []}
    newer: dict[str, list[str]] = {}
    for record in ledger.read(types=["run.finished"]).records:
        arm = record.get("arm")
        if arm not in cutoffs or record.get("status") != "ok" or record.get("run_id") in used:
            continue
        ts, cutoff = _parse_ts(record.get("ts")), cutoffs[arm]
        if cutoff is None or (ts is not None and ts > cutoff):
            newer.setdefault(arm, []).append(str(record.get("run_id")))
    return newer


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
                        source.line_of(match.start())))
    stale_cache: dict[tuple, dict] = {}
    for cmd, target, line in targets:
        if cmd == "includegraphics":
            options = [target] if Path(target).suffix else [target + e for e in _GRAPHICS_EXTS]
        else:
            options = [target] if target.endswith(".tex") else [target + ".tex", target]
        found = next((o for o in options if (root / o).is_file()), None)
        if found is None:
            report.add("artifacts", f"\\{cmd}{{{target}}}: file not found", line=line,
                       hint="run `rstack analyze` to write analysis/ figures and tables, or fix "
                            "the path")
            continue
        rel = Path(found).as_posix()
        if summary is None:
            report.add("artifacts", f"\\{cmd}{{{target}}}: cannot check where it came from: "
                       f"{SUMMARY_REL} is missing", line=line, hint="run `rstack analyze`")
            continue
        art = artifacts.get(rel)
        if art is None:
            report.add("artifacts", f"\\{cmd}{{{target}}}: {rel} was not produced by rstack "
                       f"analyze (not in {SUMMARY_REL} artifacts)", line=line,
                       hint="include only figures and tables `rstack analyze` wrote; put hand "
                            "text in paper.tex itself")
            continue
        if sha256_file(root / rel) != art.get("sha256"):
            report.add("artifacts", f"\\{cmd}{{{target}}}: {rel} changed since rstack analyze "
                       "wrote it (sha256 differs)", line=line,
                       hint="re-run `rstack analyze`; never edit analysis/ by hand")
            continue
        arms = [a for a in art.get("arms") or [] if isinstance(a, str)] or \
            list((summary.get("arms") or {}).keys())
        key = tuple(sorted(arms))
        if key not in stale_cache:
            stale_cache[key] = _newer_runs(root, summary, arms)
        newer = stale_cache[key]
        if newer:
            detail = "; ".join(f"{arm}: {', '.join(ids)}" for arm, ids in sorted(newer.items()))
            report.add("artifacts", f"\\{cmd}{{{target}}}: stale: the ledger has newer finished "
                       f"runs of the arms it shows ({detail})", line=line,
                       hint="re-run `rstack analyze`, then `rstack paper build`")


# -- claims ----------------------------------------------------------------------------------


def _plain_words(text: str) -> str:
    text = text.replace("\\_", "_")
    return re.sub(r"\\[A-Za-z]+\*?|[{}$~]", " ", text)


def fmt_p(p: Any) -> str:
    """A p-value for a message: 3 significant digits, or 1.0e-04 below 0.001."""
    if not isinstance(p, (int, float)) or isinstance(p, bool):
        return "none"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3g}"


# Evaluative words whose direction does not depend on the metric ("better" is better whether
# the metric is minimised or maximised). Verbs such as "raise" or "lower" are left out: their
# meaning flips with the metric and the sentence's subject, which a scanner cannot read reliably.
_BETTER_WORDS = re.compile(r"\b(?:better|improve[sd]?|improving|improvements?|outperform(?:s|ed|"
                           r"ing)?)\b", re.I)
_WORSE_WORDS = re.compile(r"\b(?:worse|degrade[sd]?|degrading|degradation|hurts?|harm(?:s|ed)?|"
                          r"underperform(?:s|ed|ing)?)\b", re.I)


def _stated_direction(sentence: str) -> str | None:
    """`better` or `worse` when the sentence says exactly one of them (not negated), else None."""
    found = set()
    for pattern, label in ((_BETTER_WORDS, "better"), (_WORSE_WORDS, "worse")):
        for match in pattern.finditer(sentence):
            if not _NEGATION.search(sentence[:match.start()]):
                found.add(label)
    return found.pop() if len(found) == 1 else None


def _not_significant_hint(comp: dict, alpha: float, min_seeds: int) -> str:
    """Why analyze did not call a comparison significant, as the fix for the author."""
    n, n_base, p = comp.get("n"), comp.get("n_baseline"), comp.get("p_value")
    few = [x for x in (n, n_base) if isinstance(x, int) and x < min_seeds]
    if few:
        return (f"the comparison has fewer than {min_seeds} seeds in an arm (n={n}, baseline "
                f"n={n_base}); drop the word, or run at least {min_seeds} seeds per arm and "
                "re-run `rstack analyze`")
    if not isinstance(p, (int, float)):
        return ("analyze could compute no p-value (no variance across seeds); drop the word, or "
                "run more seeds and re-run `rstack analyze`")
    if p < alpha and comp.get("ci_overlap") is True:
        return (f"p={fmt_p(p)} is below {alpha:g}, but the two confidence intervals overlap, "
                "which analyze does not call significant; drop the word and report the p-value "
                "and the intervals, or run more seeds and re-run `rstack analyze`")
    return ("drop the word, or run more seeds, re-run `rstack analyze` and cite the "
            "comparison")


def audit_claims(report: AuditReport, source: Source, summary: dict | None) -> None:
    text = source.text
    body_start = text.find("\\begin{document}")
    body_start = 0 if body_start < 0 else body_start
    summary = summary or {}
    arms = list(summary.get("arms") or {})
    comparisons = [c for c in summary.get("comparisons") or [] if isinstance(c, dict)]
    baseline = summary.get("baseline_arm")
    alpha = summary.get("alpha") if isinstance(summary.get("alpha"), (int, float)) else 0.05
    min_seeds = summary.get("min_seeds") if isinstance(summary.get("min_seeds"), int) else 3
    for match in _SIGNIFICANT.finditer(text, body_start):
        line = source.line_of(match.start())
        left = max(text.rfind(". ", 0, match.start()), text.rfind("\n\n", 0, match.start()),
                   body_start)
        right_candidates = [i for i in (text.find(". ", match.end()), text.find("\n\n", match.end()))
                            if i >= 0]
        right = min(right_candidates) if right_candidates else len(text)
        before = _plain_words(text[left:match.start()])
        if _NEGATION.search(before):
            continue
        sentence = _plain_words(text[left:right]).lower()
        positions = {}
        for arm in arms:
            found = re.search(r"(?<![\w])" + re.escape(arm.lower()).replace("_", "[_ -]") +
                              r"(?![\w])", sentence)
            if found:
                positions[arm] = found.start()
        named = list(positions)
        if not named:
            if not any(c.get("significant") for c in comparisons):
                report.add("claims", f"'{match.group()}' but rstack analyze marked no comparison "
                           "significant", line=line, severity="warning",
                           hint="say what the numbers show without 'significant', or run more "
                                "seeds and re-analyse")
            continue
        treated = [a for a in named if a != baseline] or named
        for arm in treated:
            comps = [c for c in comparisons if c.get("arm") == arm or
                     (arm == baseline and c.get("baseline") == arm)]
            mentioned = [c for c in comps if str(c.get("metric", "")).lower() in sentence]
            comps = mentioned or comps
            significant = [c for c in comps if c.get("significant") is True]
            if significant:
                _check_direction(report, match.group(), arm, sentence, positions, baseline,
                                 significant, line)
                continue
            if comps:
                detail = ", ".join(f"{c.get('metric')}: p={fmt_p(c.get('p_value'))}"
                                   for c in comps)
                why = f"rstack analyze marked its comparison not significant ({detail})"
                hint = _not_significant_hint(comps[0], alpha, min_seeds)
            else:
                why = "rstack analyze has no comparison for it"
                hint = ("drop the word, or add the arm to the plan, run it and re-run "
                        "`rstack analyze`")
            report.add("claims", f"'{match.group()}' next to arm '{arm}', but {why}", line=line,
                       hint=hint)


def _check_direction(report: AuditReport, word: str, arm: str, sentence: str,
                     positions: dict[str, int], baseline: str | None, comps: list[dict],
                     line: int) -> None:
    """'significantly better' next to a comparison analyze found significantly worse (or the
    reverse). Only checked when the arm comes before the baseline in the sentence, so "the
    baseline is significantly worse than X" is not misread."""
    if baseline in positions and positions[baseline] < positions[arm]:
        return
    stated = _stated_direction(sentence)
    if stated is None:
        return
    verdicts = {"better" if c.get("improved") is True else "worse" for c in comps}
    if verdicts != {"better" if stated == "worse" else "worse"}:
        return
    detail = ", ".join(f"{c.get('metric')}: {c.get('verdict') or 'significantly ' + v}"
                       for c, v in zip(comps, ["better" if c.get("improved") else "worse"
                                               for c in comps]))
    report.add("claims", f"'{word}' with '{stated}' next to arm '{arm}', but rstack analyze found "
               f"the difference goes the other way ({detail})", line=line,
               hint="state the direction the analysis found (its verdict in analysis/summary.json)")


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


def audit_file_access(report: AuditReport, source: Source) -> None:
    """\\openin, \\read, and \\input (etc.) of paths outside the project (issue 18 item 13)."""
    from .file_access import find_file_access

    for offset, message in find_file_access(source.text):
        report.add("build", message, line=source.line_of(offset),
                   hint="keep every file the paper uses inside the project and name it relatively")


# -- citations -------------------------------------------------------------------------------


def audit_citations(report: AuditReport, root: Path, tex_path: Path) -> None:
    try:
        from ..literature.verify import verify_citations
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


# -- entry point -----------------------------------------------------------------------------


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
    from ..plan import PlanError, load_plan

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
    source = Source(raw)
    summary = _load_summary(report, root)
    plan_raw = _load_plan(report, root)
    audit_citations(report, root, tex_path)
    audit_numbers(report, source, summary, plan_raw, parse_allows(report, raw))
    audit_artifacts(report, root, source, summary)
    audit_claims(report, source, summary)
    audit_build(report, root, tex_path)
    audit_file_access(report, source)
    _write_audit_record(root, tex_path, report)
    return report


def audit_record_path(root: Path) -> Path:
    from .. import paths

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
