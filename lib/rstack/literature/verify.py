"""Check a paper's citations against the lit-review ledger: the rule that a paper cites only what
an API returned and the ledger recorded.

Every `\\cite*{...}` key needs a bib entry; every bib entry needs a ledger paper record that came
from an API (its `sources` name s2 or arxiv); the entry's title, year and first author must agree
with that record. A metadata mismatch is reported as a diff, apart from "not in ledger": most
references flagged as invented in the wild are real papers with wrong metadata.
The paper audit calls `verify_citations`; it must never raise for bad input, only report it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger import Ledger
from .keys import last_name
from .merge import LedgerIndex
from .papers import Paper, make_ids, normalize_title

PROBLEM_KINDS = ("missing-file", "bib-parse-error", "duplicate-bib-key", "missing-bib-entry",
                 "not-in-ledger", "not-from-api", "metadata-mismatch", "retracted")

_COMMENT = re.compile(r"(?<!\\)%.*")
_CITE = re.compile(r"\\[a-zA-Z]*cite[a-zA-Z]*\*?\s*(?:\[[^\]]*\]\s*)*\{([^{}]*)\}")
_INPUT = re.compile(r"\\(?:input|include|subfile)\s*\{([^{}]+)\}")
_BIBLIOGRAPHY = re.compile(r"\\bibliography\s*\{([^{}]+)\}")
_ADDBIB = re.compile(r"\\addbibresource\s*(?:\[[^\]]*\])?\s*\{([^{}]+)\}")
_LATEX_LETTERS = {"o": "o", "O": "O", "ae": "ae", "AE": "AE", "oe": "oe", "OE": "OE", "aa": "a",
                  "AA": "A", "ss": "ss", "l": "l", "L": "L", "i": "i", "j": "j"}
_LATEX_CMD = re.compile(r"\\([a-zA-Z]+)\s*|\\([^a-zA-Z\s])")
_AND = re.compile(r"\s+and\s+", re.I)


def diff_lines(diff: list[dict]) -> list[str]:
    """A bib entry's disagreements with the ledger, one -/+ pair of lines per field."""
    lines = []
    for change in diff:
        lines.append(f"    - {change['field']}: {change['bib']!r}  (bib)")
        lines.append(f"    + {change['field']}: {change['ledger']!r}  (ledger)")
    return lines


@dataclass
class Problem:
    kind: str
    message: str
    key: str | None = None
    file: str | None = None
    line: int | None = None
    diff: list[dict] = field(default_factory=list)
    hint: str | None = None

    def as_json(self) -> dict:
        return {"kind": self.kind, "key": self.key, "file": self.file, "line": self.line,
                "message": self.message, "diff": self.diff, "hint": self.hint}

    def render(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else (
            f"{self.file}: " if self.file else "")
        lines = [f"{self.kind}: {where}{self.message}", *diff_lines(self.diff)]
        if self.hint:
            lines.append(f"  fix: {self.hint}")
        return "\n".join(lines)


@dataclass
class VerifyReport:
    tex_path: str
    bib_path: str | None
    ledger_path: str
    cited: dict[str, list[str]] = field(default_factory=dict)  # key -> ["file:line", ...]
    bib_keys: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    checked: int = 0
    bib_paths: list[str] = field(default_factory=list)  # every bib \bibliography names, in order
    cites_all: bool = False  # \nocite{*}: every entry of every bib is cited

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for p in self.problems if p.kind == kind) for kind in PROBLEM_KINDS
                if any(p.kind == kind for p in self.problems)}

    def as_json(self) -> dict:
        return {"ok": self.ok, "tex": self.tex_path, "bib": self.bib_path,
                "ledger": self.ledger_path, "cited_keys": sorted(self.cited),
                "bib_entries": len(self.bib_keys), "entries_matched": self.checked,
                "counts": self.counts(), "problems": [p.as_json() for p in self.problems],
                "bibs": self.bib_paths, "cites_all": self.cites_all}


def retracted_problem(key: str, paper: Paper, file: str | None = None,
                      line: int | None = None) -> Problem:
    """The problem of citing a paper a source says is retracted (verify and the audit report it)."""
    return Problem("retracted", f"{key!r} cites a retracted paper ({paper.retraction or 'retracted'})",
                   key=key, file=file, line=line,
                   hint="cite it only to discuss the retraction; otherwise remove the citation")


def retracted_citations(root, keys) -> list[Problem]:
    """A `retracted` problem for each of KEYS whose ledger paper a source says is retracted: the
    one library call for anything that cites ledger keys (the paper audit, lit-review.md)."""
    index = LedgerIndex(Ledger(Path(root), "lit-review").read(types=["paper", "retraction"]).records)
    return [retracted_problem(key, index.by_key[key]) for key in keys
            if key in index.by_key and index.by_key[key].retracted]


def _strip_comments(text: str) -> list[str]:
    return [_COMMENT.sub("", line) for line in text.splitlines()]


def collect_citations(tex_path: Path, *, _seen: set[Path] | None = None,
                      star: list[str] | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """Cited keys (with file:line of each use) in a .tex file and the files it \\input's;
    also the bibliography names the files declare. Comments are ignored. `star` (a list) gets the
    file:line of each `\\nocite{*}`, which cites every entry."""
    seen = _seen if _seen is not None else set()
    cited: dict[str, list[str]] = {}
    bibs: list[str] = []
    tex_path = tex_path.resolve()
    if tex_path in seen or len(seen) > 200:
        return cited, bibs
    seen.add(tex_path)
    try:
        text = tex_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return cited, bibs
    # Whole text, not line by line: a \cite{a,\n b} argument may span lines.
    body = "\n".join(_strip_comments(text))
    events = []
    for match in _CITE.finditer(body):
        events.append((match.start(), "cite", match))
    for match in _INPUT.finditer(body):
        events.append((match.start(), "input", match))
    for match in _BIBLIOGRAPHY.finditer(body):
        bibs.extend(name.strip() for name in match.group(1).split(",") if name.strip())
    for match in _ADDBIB.finditer(body):
        bibs.append(match.group(1).strip())
    for start, kind, match in sorted(events, key=lambda event: event[0]):
        number = body.count("\n", 0, start) + 1
        if kind == "cite":
            for key in match.group(1).split(","):
                key = key.strip()
                if key == "*" and star is not None:
                    star.append(f"{tex_path.name}:{number}")
                elif key and key != "*":
                    cited.setdefault(key, []).append(f"{tex_path.name}:{number}")
            continue
        child = tex_path.parent / match.group(1).strip()
        if not child.suffix:
            child = child.with_suffix(".tex")
        sub_cited, sub_bibs = collect_citations(child, _seen=seen, star=star)
        for key, uses in sub_cited.items():
            cited.setdefault(key, []).extend(uses)
        bibs.extend(sub_bibs)
    return cited, bibs


def latex_to_text(value: str) -> str:
    """Strip braces and LaTeX commands from a bib value: `{\\"O}zt{\\"u}rk` -> `Ozturk`."""
    def command(match: re.Match) -> str:
        name, symbol = match.group(1), match.group(2)
        if name is None:
            # \& \% ... are the characters themselves; an accent (\" \') drops, its letter stays
            return symbol if symbol in "&%$#_{}" else ""
        return _LATEX_LETTERS.get(name, "")

    text = _LATEX_CMD.sub(command, value)
    return " ".join(text.replace("{", "").replace("}", "").replace("~", " ").split())


def _first_author(value: str | None) -> str | None:
    """The first name of an author list; an `and` inside braces ({A and B Team}) is no separator."""
    if not value or not value.strip():
        return None
    depth, cut = 0, len(value)
    for index, ch in enumerate(value):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0 and _AND.match(value, index) and ch.isspace():
            cut = index
            break
    return latex_to_text(value[:cut]).strip() or None


def _year(value: str | None) -> int | None:
    if value is None:
        return None
    match = re.search(r"\d{4}", latex_to_text(value))
    return int(match.group(0)) if match else None


def _compare(entry_fields: dict, paper: Paper) -> list[dict]:
    diff = []
    bib_title = latex_to_text(entry_fields.get("title") or "")
    # API titles carry LaTeX too (arXiv: "$\\alpha$-divergences"): compare both sides as text.
    if normalize_title(bib_title) != normalize_title(latex_to_text(paper.title)):
        diff.append({"field": "title", "bib": bib_title or None, "ledger": paper.title})
    bib_year = _year(entry_fields.get("year"))
    if bib_year != paper.year:
        diff.append({"field": "year", "bib": bib_year, "ledger": paper.year})
    bib_author = _first_author(entry_fields.get("author"))
    ledger_author = paper.authors[0] if paper.authors else None
    if last_name(bib_author or "") != last_name(ledger_author or ""):
        diff.append({"field": "first author", "bib": bib_author, "ledger": ledger_author})
    return diff


def _same_paper_in_ledger(fields: dict, index: LedgerIndex) -> Paper | None:
    probe = Paper(title=latex_to_text(fields.get("title") or ""), year=_year(fields.get("year")),
                  ids=make_ids(doi=fields.get("doi"), arxiv=fields.get("eprint")))
    found = index.find(probe)
    if found is not None:
        return found
    norm = normalize_title(probe.title)
    if norm:
        for paper in index.papers:
            if paper.from_api and normalize_title(latex_to_text(paper.title)) == norm:
                return paper
    return None


def _parse_bib(text: str):
    """bibtexparser's Library, quietly (its own log lines would repeat our problems), or None."""
    import logging

    import bibtexparser

    logger = logging.getLogger("bibtexparser")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return bibtexparser.parse_string(text)
    except Exception:  # noqa: BLE001 - a parser bug must become a reported problem, not a crash
        return None
    finally:
        logger.setLevel(level)


def _load_bib(report: "VerifyReport", bib: Path, tex: Path) -> list:
    """The entries of one bib file; what is wrong with it goes into report.problems."""
    regen = f"regenerate it: rstack lit bib --cited {tex.name} --out {bib.name}"
    if not bib.is_file():
        report.problems.append(Problem("missing-file", f"no such bib file: {bib}", file=str(bib),
                                       hint="write it from the ledger: rstack lit bib --cited "
                                            f"{tex.name} --out {bib.name}"))
        return []
    bib_text = bib.read_text(encoding="utf-8", errors="replace")
    if "\0" in bib_text:
        line = bib_text[:bib_text.index("\0")].count("\n") + 1
        report.problems.append(Problem("bib-parse-error", "the file holds NUL bytes (binary "
                                       "content, not BibTeX); none of its entries was read",
                                       file=bib.name, line=line, hint=regen))
        return []
    library = _parse_bib(bib_text)
    if library is None:
        report.problems.append(Problem("bib-parse-error", "bibtexparser could not read the file",
                                       file=bib.name, hint=regen))
        return []
    for block in library.failed_blocks:
        line = (block.start_line or 0) + 1
        if type(block).__name__ == "DuplicateBlockKeyBlock":
            report.problems.append(Problem("duplicate-bib-key", f"bib key {block.key!r} is defined "
                                           "more than once", key=block.key, file=bib.name,
                                           line=line, hint="keep one entry per key"))
        else:
            error = getattr(block, "error", None)
            lines = str(getattr(error, "abort_reason", None) or error or "").strip().splitlines()
            error = lines[0] if lines else (type(error).__name__ if error else "syntax error")
            report.problems.append(Problem("bib-parse-error", f"unparseable bib block ({error})",
                                           file=bib.name, line=line, hint=regen))
    return list(library.entries)


def _resolve(root: Path, path: str | Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    return path if path.is_absolute() else Path(root) / path


def verify_citations(root, tex_path, bib_path=None) -> VerifyReport:
    """Check TEX's citations against BIB and the project's lit-review ledger; never raises for
    bad input (a missing file is a problem in the report). `bib_path` None: the tex's
    \\bibliography (or \\addbibresource), else paper.bib next to the tex."""
    root = Path(root)
    tex = _resolve(root, tex_path)
    ledger = Ledger(root, "lit-review")
    report = VerifyReport(str(tex), None, str(ledger.path))
    if tex is None or not tex.is_file():
        from ..safeio import why_not_a_file

        what = "no such LaTeX file" if tex is None or not tex.exists() else \
            f"the LaTeX file {why_not_a_file(tex)}"
        report.problems.append(Problem("missing-file", f"{what}: {tex}",
                                       file=str(tex), hint="pass the paper: rstack lit verify "
                                                           "paper.tex"))
        return report
    star: list[str] = []
    report.cited, declared = collect_citations(tex, star=star)
    report.cites_all = bool(star)
    if bib_path is not None:
        bibs = [_resolve(root, bib_path)]
    elif declared:
        # Every file \bibliography{a,b} names: bibtex reads them all, so all are verified.
        bibs = [tex.parent / (name if name.endswith(".bib") else name + ".bib")
                for name in dict.fromkeys(declared)]
    else:
        bibs = [tex.parent / "paper.bib"]
    report.bib_path = str(bibs[0])
    report.bib_paths = [str(bib) for bib in bibs]
    entries: dict = {}  # key -> (entry, bib path); bibtex takes the first definition
    for bib in bibs:
        for entry in _load_bib(report, bib, tex):
            entries.setdefault(entry.key, (entry, bib))
    report.bib_keys = list(entries)
    for use in star:  # \nocite{*}: each entry is cited, so each must pass the checks below
        for key in entries:
            report.cited.setdefault(key, []).append(use)
    names = ", ".join(bib.name for bib in bibs)
    for key, uses in sorted(report.cited.items()):
        if key not in entries:
            report.problems.append(Problem(
                "missing-bib-entry", f"\\cite key {key!r} (used at {', '.join(uses[:3])}) has no "
                f"entry in {names}", key=key, file=uses[0].split(":")[0],
                line=int(uses[0].split(":")[1]),
                hint=f"rstack lit bib --cited {tex.name} --out {bibs[0].name}  (after finding the "
                     "paper with rstack lit search / resolve)"))
    index = LedgerIndex(ledger.read(types=["paper", "retraction"]).records)
    for key, (entry, bib) in entries.items():
        fields = {name.lower(): str(f.value) for name, f in entry.fields_dict.items()}
        line = (entry.start_line or 0) + 1
        paper = index.by_key.get(key)
        if paper is None:
            same = _same_paper_in_ledger(fields, index)
            report.problems.append(Problem(
                "not-in-ledger",
                f"bib entry {key!r} matches no paper record in the lit-review ledger"
                + (f" (the ledger holds this title as {same.key!r})" if same else ""),
                key=key, file=bib.name, line=line,
                hint=(f"cite it as {same.key} instead" if same else
                      "find the paper with rstack lit search \"TITLE\" or rstack lit resolve ID; "
                      "if no API returns it, do not cite it")))
            continue
        if not paper.from_api:
            same = _same_paper_in_ledger(fields, index)
            report.problems.append(Problem(
                "not-from-api", f"the ledger record for {key!r} did not come from an API "
                "(no s2/arxiv source and no id)", key=key, file=bib.name, line=line,
                hint=(f"cite the API record of this paper instead: {same.key}" if same else
                      "record it from an API (rstack lit resolve ID or rstack lit search) and "
                      "cite the key that prints")))
            continue
        report.checked += 1
        if paper.retracted:
            report.problems.append(retracted_problem(key, paper, bib.name, line))
        diff = _compare(fields, paper)
        if diff:
            report.problems.append(Problem(
                "metadata-mismatch",
                f"bib entry {key!r} disagrees with its ledger record on "
                + ", ".join(d["field"] for d in diff),
                key=key, file=bib.name, line=line, diff=diff,
                hint=f"regenerate the entry from the ledger: rstack lit bib --cited {tex.name} "
                     f"--out {bib.name}"))
    return report
