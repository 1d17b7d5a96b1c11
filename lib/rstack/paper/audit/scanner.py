"""Reading paper.tex: comments and verbatim blanked with offsets kept, command arguments,
the constructs that hold no reported number, the regions whose numbers are audited, and macro
definitions. Reads only the paper and the hand-written files it \\inputs; never judges a number."""

from __future__ import annotations

import re
from bisect import bisect_right
from pathlib import Path

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
# Honest prose that is not a reported number: a list or range after a reference word ("Sections 4
# and 5", "Figures 1--3", "Tables 1, 2 and 3"), and a year in a date context ("since 2016", "in
# 2019--2021") or next to a citation ("Adam (2014)~\citep{..}", "\citet{x} in 2017").
_REF_LIST = re.compile(
    r"(?:\b(?:Sections|Secs\.|Tables|Tabs\.|Figures|Figs\.|Equations|Eqs\.|Appendices|Chapters|"
    r"Lines|Algorithms|Steps|Theorems|Lemmas|Definitions|Propositions|Pages|pp\.)(?:~|\s)*\(?)"
    r"(?P<list>[1-9]\d*(?:\.\d+)*[a-z]?(?:\s*(?:,|and|or|to|--|–|-|\\textendash)\s*(?:and\s+)?"
    r"[1-9]\d*(?:\.\d+)*[a-z]?(?![\d.]))+)", re.I)
_YEAR = r"(?:19|20)\d\d[a-z]?"
_DATED_YEAR = re.compile(
    rf"\b(?:[Ss]ince|[Ii]n|[Ff]rom|[Uu]ntil|[Tt]ill|[Bb]y|[Dd]uring|[Bb]efore|[Aa]fter|as\s+of|"
    rf"[Cc]irca)(?:~|\s)+(?:(?:early|late|mid)[\s-]+)?(?P<list>{_YEAR}(?:\s*(?:--|–|-|to|and)\s*"
    rf"{_YEAR})?)\b")
_CITED_YEAR = re.compile(
    rf"(?P<list>{_YEAR})\)?[\s~,;]*\\cite|\\cite[A-Za-z]*\*?(?:\[[^\]]*\])*\{{[^}}]*\}}"
    rf"[\s~,;(]*(?:in\s+)?(?P<after>{_YEAR})\b")
_VERSION = re.compile(r"\b\d+\.\d+\.\d+(?:\.\d+)*\b")
_SCRIPT = re.compile(r"[_^](?:\{[^{}]*\}|\\?[A-Za-z0-9])")
_SCI = re.compile(
    r"(?P<mant>-?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\\,\\times)\s*10\s*\^\s*\{?\s*(?P<e1>[-+−]?\d+)\s*\}?"
    r"|(?<![\d.])10\s*\^\s*\{\s*(?P<e2>[-+−]?\d+)\s*\}|(?<![\d.])10\s*\^\s*(?P<e3>\d)"
    r"|(?P<emant>\d+(?:\.\d+)?)[eE](?P<e4>[-+]?\d+)(?![A-Za-z])")
_NUMBER = re.compile(r"(?P<sign>[-−]|\$-\$)?(?P<num>\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")


# -- LaTeX source handling ----------------------------------------------------------------------


class Source:
    """paper.tex with comments and verbatim blanked out, offsets kept, and a line lookup.

    Hand-written `\\input`/`\\include` files (sections/discussion.tex, not analyze's files under
    analysis/) are read into the text in place of the command, so every check sees them; each
    offset still maps back to its own file and line (`at`).
    """

    def __init__(self, raw: str, *, name: str = "paper.tex", root: Path | None = None):
        self.raw = raw
        self.name = name
        self.raws: dict[str, str] = {name: raw}  # file -> raw text, for allow comments
        self.included: list[str] = []  # hand-written files read into the text, in order
        self._line_starts_of: dict[str, list[int]] = {}
        # (start in self.text, file, offset in that file's text) of each spliced piece
        self._pieces: list[tuple[int, str, int]] = []
        self._parts: list[str] = []
        self._length = 0
        self._expand(raw, name, root, [name])
        self.text = "".join(self._parts)
        self._piece_starts = [p[0] for p in self._pieces]

    def _append(self, name: str, file_offset: int, piece: str) -> None:
        self._pieces.append((self._length, name, file_offset))
        self._parts.append(piece)
        self._length += len(piece)

    def _expand(self, raw: str, name: str, root: Path | None, stack: list[str]) -> None:
        text = _blank_verbatim(_strip_comments(raw))
        self._line_starts_of[name] = [0] + [m.end() for m in re.finditer("\n", text)]
        pos = 0
        for match in _INPUT.finditer(text):
            rel = None if root is None else _hand_written(root, match.group("target").strip(),
                                                           stack)
            if rel is None:
                continue
            self._append(name, pos, text[pos:match.start()])
            try:
                sub_raw = (root / rel).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                sub_raw = ""
            self.raws[rel] = sub_raw
            self.included.append(rel)
            self._expand(sub_raw, rel, root, stack + [rel])
            pos = match.end()
        self._append(name, pos, text[pos:])

    def at(self, offset: int) -> dict:
        """{"file": ..., "line": ...} of an offset in the text (for `AuditReport.add`)."""
        index = max(0, bisect_right(self._piece_starts, offset) - 1)
        start, name, file_offset = self._pieces[index]
        line = bisect_right(self._line_starts_of[name], file_offset + offset - start)
        return {"file": name, "line": line}

    def line_of(self, offset: int) -> int:
        return self.at(offset)["line"]

    def file_of(self, offset: int) -> str:
        return self.at(offset)["file"]


# \input{x} / \include{x}: a hand-written one is read into the audited text (see Source).
_INPUT = re.compile(r"\\(?:input|include)(?![A-Za-z])\s*\{(?P<target>[^{}]*)\}")
ANALYSIS_DIR = "analysis/"
_MAX_INPUT_DEPTH = 8


def _hand_written(root: Path, target: str, stack: list[str]) -> str | None:
    """The project-relative path of a hand-written input file, or None: analyze's own files,
    files that do not exist, paths outside the project and cycles stay as commands (the artifact
    check judges them)."""
    if not target or target.startswith(("/", "~")) or "\\" in target:
        return None
    for candidate in ([target] if target.endswith(".tex") else [target + ".tex", target]):
        path = (root / candidate)
        try:
            resolved = path.resolve()
            rel = resolved.relative_to(root.resolve()).as_posix()
        except (OSError, ValueError):
            continue
        if rel.startswith(ANALYSIS_DIR) or not resolved.is_file():
            continue
        if rel in stack or len(stack) > _MAX_INPUT_DEPTH:
            return None
        return rel
    return None


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
    for pattern, groups in ((_REF_LIST, ("list",)), (_REF_WORDS, ("num",)), (_CITE_YEAR, ("year",)),
                            (_ENUM, ("num",)), (_DATED_YEAR, ("list",)),
                            (_CITED_YEAR, ("list", "after"))):
        for match in list(pattern.finditer(text)):
            for group in groups:
                if match.group(group) is not None:
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
