"""`lit import paper.bib` and `lit verify --resolve`: settle a researcher's own .bib against the APIs.

Each entry not in the ledger is looked up by DOI, then arXiv id, then title + first author (+ year
to break a tie) across the sources; an entry already in the ledger whose retraction status no
source gave is screened by DOI with OpenAlex and Crossref. A unique confident match is recorded as a ledger paper (under
the entry's own key when that key is free) and compared field by field; no match, or more than
one, leaves the entry unverifiable with what was tried. A record is never invented: what is
recorded is what an API returned, never the bib's text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger import Ledger
from . import crossref, openalex, s2
from .errors import ServiceError
from .keys import assign_keys, last_name
from .merge import LedgerIndex, merge_papers
from .papers import Paper, normalize_arxiv_id, normalize_doi, normalize_title
from .query import plain_query
from .search import LEDGER_TYPES, _recording_lock, fetch_by_id
from .transport import Transport
from .verify import _compare, _first_author, _parse_bib, _year, diff_lines, latex_to_text

STATUSES = ("verified", "corrected", "unverifiable")
# Titles this similar (difflib ratio of the normalized forms) are one title: a dropped article or
# a typo, not another paper. The first author's last name must agree as well.
TITLE_MATCH_RATIO = 0.93
TITLE_SEARCH_LIMIT = 5
_ARXIV_IN_TEXT = re.compile(r"(?:arxiv[:/\s]*|abs/)(\d{4}\.\d{4,5}(?:v\d+)?|[a-z-]+(?:\.[A-Z]{2})?/\d{7})",
                            re.I)
_DOI_IN_URL = re.compile(r"doi\.org/(10\.\S+)", re.I)
_KEY_OK = re.compile(r"^[A-Za-z0-9_:.+/-]+$")


@dataclass
class EntryOutcome:
    """What became of one bib entry."""

    key: str
    status: str  # verified | corrected | unverifiable
    line: int | None = None
    ledger_key: str | None = None
    how: str | None = None  # "DOI 10...", "arXiv 1706.03762", "title", "ledger"
    diff: list[dict] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    recorded: bool = False
    retracted: str | None = None

    def as_json(self) -> dict:
        return {"key": self.key, "status": self.status, "line": self.line,
                "ledger_key": self.ledger_key, "matched_by": self.how, "diff": self.diff,
                "tried": self.tried, "recorded": self.recorded, "retracted": self.retracted}

    def render(self) -> str:
        head = f"{self.status:<12} {self.key}"
        if self.ledger_key and self.ledger_key != self.key:
            head += f" (ledger key {self.ledger_key})"
        if self.how:
            head += f"  [{self.how}{', recorded' if self.recorded else ''}]"
        lines = [head, *diff_lines(self.diff)]
        if self.status == "unverifiable":
            lines.extend(f"    tried {attempt}" for attempt in self.tried)
            lines.append("  fix: find the paper (rstack lit search \"TITLE\" or rstack lit resolve "
                         "DOI/arXiv id) and cite the key it prints; if no source knows it, remove "
                         "the citation")
        if self.retracted:
            lines.append(f"    RETRACTED: {self.retracted}")
        return "\n".join(lines)


@dataclass
class BibResolveReport:
    bib_path: str
    ledger_path: str
    entries: list[EntryOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the bib itself: missing, unparseable
    recorded: int = 0
    network_calls: int = 0
    cache_hits: int = 0

    def counts(self) -> dict[str, int]:
        counts = {status: sum(1 for e in self.entries if e.status == status)
                  for status in STATUSES}
        counts["retracted"] = sum(1 for e in self.entries if e.retracted)
        return counts

    @property
    def ok(self) -> bool:
        """Every entry is settled (verified or corrected from an API) and the bib was readable."""
        return not self.problems and all(e.status != "unverifiable" for e in self.entries)

    def sorted_entries(self) -> list[EntryOutcome]:
        return sorted(self.entries, key=lambda e: (STATUSES.index(e.status), e.key))

    def as_json(self) -> dict:
        return {"ok": self.ok, "bib": self.bib_path, "ledger": self.ledger_path,
                "counts": self.counts(), "recorded": self.recorded,
                "network_calls": self.network_calls, "cache_hits": self.cache_hits,
                "problems": self.problems,
                "entries": [e.as_json() for e in self.sorted_entries()]}

    def render(self) -> str:
        lines = [e.render() for e in self.sorted_entries()]
        lines.extend(f"problem: {p}" for p in self.problems)
        c = self.counts()
        lines.append(f"{c['verified']} verified, {c['corrected']} corrected, {c['unverifiable']} "
                     f"unverifiable, {c['retracted']} retracted; recorded {self.recorded} new "
                     f"paper(s) in {self.ledger_path} ({self.bib_path})")
        return "\n".join(lines)


def entry_ids(fields: dict) -> tuple[str | None, str | None]:
    """The DOI and arXiv id (version kept) an entry names in doi/eprint/url/journal/note."""
    doi = normalize_doi(fields.get("doi"))
    if not doi:
        match = _DOI_IN_URL.search(fields.get("url") or "")
        doi = normalize_doi(match.group(1)) if match else None
    arxiv_id = None
    eprint = (fields.get("eprint") or "").strip()
    if eprint and normalize_arxiv_id(eprint):
        arxiv_id = eprint.split(":")[-1] if eprint.lower().startswith("arxiv:") else eprint
    for name in ("url", "journal", "note", "howpublished"):
        if arxiv_id:
            break
        match = _ARXIV_IN_TEXT.search(fields.get(name) or "")
        if match and normalize_arxiv_id(match.group(1)):
            arxiv_id = match.group(1)
    return doi, arxiv_id


def _same_title(a: str, b: str) -> bool:
    na, nb = normalize_title(latex_to_text(a)), normalize_title(latex_to_text(b))
    return bool(na and nb) and (na == nb or
                                difflib.SequenceMatcher(None, na, nb).ratio() >= TITLE_MATCH_RATIO)


def _tried_line(what: str, papers: list[Paper], errors) -> str:
    parts = [f"{source} found it" for paper in papers for source in paper.sources]
    parts += [f"{e.source} {e.kind}" for e in errors]
    return f"{what}: " + ("; ".join(parts) or "no source asked")


def _by_title(transport: Transport, fields: dict) -> tuple[Paper | None, list[str]]:
    """The one paper every source's title search agrees is this entry, or None and why."""
    title = latex_to_text(fields.get("title") or "")
    author = last_name(_first_author(fields.get("author")) or "")
    year = _year(fields.get("year"))
    words = plain_query(title)
    if not words:
        return None, ["title: the entry has no title to search for"]
    found: list[list[Paper]] = []
    notes = []
    searches = (("s2", lambda: s2.search(transport, words, limit=TITLE_SEARCH_LIMIT)),
                ("openalex", lambda: openalex.search(transport, words, limit=TITLE_SEARCH_LIMIT)),
                ("crossref", lambda: crossref.search(
                    transport, " ".join(filter(None, [words, author, str(year or "")])),
                    limit=TITLE_SEARCH_LIMIT)))
    for name, run in searches:
        try:
            got = run().papers
        except ServiceError as exc:
            notes.append(f"{name} {exc.kind}")
            continue
        same = [p for p in got if _same_title(p.title, title) and (
            last_name(p.authors[0]) == author if author and p.authors else year == p.year)]
        notes.append(f"{name} {len(got)} result(s), {len(same)} with this title"
                     + (" and first author" if author else " and year"))
        found.append(same)
    candidates = merge_papers(found)
    if len(candidates) > 1 and year is not None:
        same_year = [p for p in candidates if p.year == year]
        candidates = same_year if len(same_year) == 1 else candidates
    what = f"title {title[:60]!r}" + (f" + first author {author}" if author else "")
    if len(candidates) == 1:
        return candidates[0], [f"{what}: " + "; ".join(notes)]
    if len(candidates) > 1:
        notes.append("ambiguous: " + "; ".join(
            f"{p.title[:50]!r} ({p.year}, {', '.join(p.sources)})" for p in candidates[:4]))
    return None, [f"{what}: " + "; ".join(notes)]


def _names_this_entry(paper: Paper, fields: dict) -> bool:
    """Whether a paper found by the entry's id is plausibly the entry: its title or its first
    author agrees. A mistyped DOI names some other paper; recording that under the entry's key
    would make a wrong citation look verified."""
    title = latex_to_text(fields.get("title") or "")
    author = last_name(_first_author(fields.get("author")) or "")
    if not title and not author:
        return True
    return bool((title and _same_title(paper.title, title)) or
                (author and paper.authors and last_name(paper.authors[0]) == author))


def lookup_entry(transport: Transport, fields: dict) -> tuple[Paper | None, str | None, list[str]]:
    """(paper, how it was matched, what was tried) for one bib entry: DOI, arXiv id, title."""
    tried: list[str] = []
    doi, arxiv_id = entry_ids(fields)
    for kind, ident, label in (("s2", f"DOI:{doi}" if doi else None, f"DOI {doi}"),
                               ("arxiv", arxiv_id, f"arXiv {arxiv_id}")):
        if not ident:
            continue
        papers, errors = fetch_by_id(transport, kind, ident)
        tried.append(_tried_line(label, papers, errors))
        if papers and _names_this_entry(papers[0], fields):
            return papers[0], label, tried
        if papers:
            other = papers[0]
            tried.append(f"{label} names another paper: {other.title[:60]!r} ({other.year}, "
                         f"{other.authors[0] if other.authors else 'no authors'}); not used")
    paper, notes = _by_title(transport, fields)
    tried.extend(notes)
    return paper, ("title + first author" if paper else None), tried


def _fields(entry) -> dict:
    return {name.lower(): str(f.value) for name, f in entry.fields_dict.items()}


def resolve_bib(root: Path, bib_path: Path, *, keys: set[str] | None = None,
                offline: bool = False, transport: Transport | None = None) -> BibResolveReport:
    """Sort every entry of BIB (or only `keys`) into verified / corrected / unverifiable,
    recording the papers the APIs settle. Never raises for a bad bib: it is a report problem."""
    root = Path(root)
    ledger = Ledger(root, "lit-review")
    report = BibResolveReport(str(bib_path), str(ledger.path))
    try:
        text = Path(bib_path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        report.problems.append(f"cannot read {bib_path} ({exc.strerror or exc})")
        return report
    library = _parse_bib(text)
    if library is None:
        report.problems.append(f"bibtexparser could not read {bib_path}")
        return report
    transport = transport or Transport(root, offline=offline)
    index = LedgerIndex(ledger.read(types=LEDGER_TYPES).records)
    pending: list[tuple[EntryOutcome, dict, Paper]] = []
    screens: list[tuple[EntryOutcome, Paper]] = []
    for entry in library.entries:
        if keys is not None and entry.key not in keys:
            continue
        fields = _fields(entry)
        outcome = EntryOutcome(entry.key, "unverifiable", line=(entry.start_line or 0) + 1)
        report.entries.append(outcome)
        known = index.by_key.get(entry.key)
        if known is not None and known.from_api:
            _settle(outcome, fields, known, "ledger")
            screened = _screen(transport, known)
            if screened is not None:
                screens.append((outcome, screened))
            continue
        paper, how, outcome.tried = lookup_entry(transport, fields)
        if paper is not None:
            outcome.how = how
            pending.append((outcome, fields, paper))
    if pending or screens:
        with _recording_lock(root):
            report.recorded = _record(ledger, pending, screens, Path(bib_path).name)
    report.network_calls = transport.network_calls
    report.cache_hits = transport.cache_hits
    return report


def _settle(outcome: EntryOutcome, fields: dict, paper: Paper, how: str | None) -> None:
    outcome.ledger_key = paper.key
    outcome.how = outcome.how or how
    outcome.diff = _compare(fields, paper)
    if paper.key != outcome.key:
        outcome.diff.insert(0, {"field": "key", "bib": outcome.key, "ledger": paper.key})
    outcome.status = "corrected" if outcome.diff else "verified"
    outcome.retracted = paper.retraction or ("retracted" if paper.retracted else None)


def _screen(transport: Transport, paper: Paper) -> Paper | None:
    """A ledger paper whose retraction status no source gave (S2 and arXiv do not say), asked of
    OpenAlex and Crossref by its DOI: their record when one says it is retracted, else None."""
    doi = paper.ids.get("doi")
    if paper.retracted is not None or not doi:
        return None
    for fetch in (openalex.get_work, crossref.get_work):
        try:
            found = fetch(transport, doi)
        except ServiceError:
            continue
        if found.retracted:
            return found
    return None


def _mark(paper: Paper, known: Paper, bib_name: str) -> dict:
    """The `retraction` record for a ledger paper a source now says is retracted."""
    known.retracted, known.retraction = True, paper.retraction
    return {"type": "retraction", "key": known.key, "source": ",".join(paper.sources),
            "notice": paper.retraction, "query": f"import:{bib_name}"}


def _record(ledger: Ledger, pending, screens, bib_name: str) -> int:
    """Record the matched papers not yet in the ledger (under the entry's key when it is free),
    mark screened ones retracted, then settle each entry against its ledger paper. Called under
    the recording lock."""
    index = LedgerIndex(ledger.read(types=LEDGER_TYPES).records)  # re-read under the lock
    records: list[dict] = []
    for outcome, paper in screens:
        known = index.by_key.get(outcome.key)
        if known is not None and not known.retracted:
            records.append(_mark(paper, known, bib_name))
        outcome.retracted = paper.retraction
    for outcome, fields, paper in pending:
        known = index.find(paper)
        if known is None:
            if outcome.key not in index.keys and _KEY_OK.match(outcome.key):
                paper.key = outcome.key  # the researcher's key, free in the ledger: keep it
            else:
                assign_keys([paper], index.keys)
            index.add(paper)
            records.append(paper.to_record(f"import:{bib_name}"))
            outcome.recorded = True
            known = paper
        elif paper.retracted and not known.retracted:
            records.append(_mark(paper, known, bib_name))
        _settle(outcome, fields, known, None)
    if records:
        ledger.append_many(records)
    return sum(1 for r in records if r["type"] == "paper")


def bibs_of(tex: Path, bib: Path | None) -> list[Path]:
    """The .bib files a paper uses: the given one, else every one its \\bibliography or
    \\addbibresource names (next to the tex), else paper.bib."""
    from .verify import collect_citations

    if bib is not None:
        return [bib]
    _, declared = collect_citations(tex) if tex.is_file() else ({}, [])
    names = list(dict.fromkeys(n if n.endswith(".bib") else n + ".bib" for n in declared))
    return [tex.parent / name for name in names] or [tex.parent / "paper.bib"]


def resolve_for_tex(root: Path, tex: Path, bib: Path | None, *,
                    offline: bool = False) -> list[BibResolveReport]:
    """`verify --resolve`: resolve_bib on each bib the paper uses (a missing one is left to verify)."""
    transport = Transport(Path(root), offline=offline)
    return [resolve_bib(root, path, offline=offline, transport=transport)
            for path in bibs_of(tex, bib) if path.is_file()]


def render_verify(report, resolved: list[BibResolveReport]) -> str:
    """`verify --resolve`'s human form: each bib's sorted entries, then the verify problems the
    resolve report did not already show (an entry's diff is printed once), then the verdict."""
    lines = [item.render() for item in resolved]
    settled = {e.key for r in resolved for e in r.entries}
    lines += [p.render() for p in report.problems
              if not (p.key in settled and p.kind in ("metadata-mismatch", "not-in-ledger"))]
    verdict = "ok" if report.ok else f"FAIL: {len(report.problems)} problem(s)"
    lines.append(f"{verdict}: {len(report.cited)} cited key(s), {len(report.bib_keys)} bib "
                 f"entr(ies), {report.checked} matched the ledger ({report.tex_path})")
    if not report.ok and any(r.counts()["corrected"] for r in resolved):
        lines.append("fix: rewrite corrected entries from the ledger: rstack lit bib --cited "
                     f"{Path(report.tex_path).name} --out {Path(report.bib_path or 'paper.bib').name}")
    return "\n".join(lines)
