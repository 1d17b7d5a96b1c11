"""`lit search` and `lit resolve`: ask the APIs, merge, give keys, record new papers once.

A search that fails on one source still records what the other returned, and says which source
failed and why; only when every source failed does it raise (and then nothing was recorded).
"""

from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..ledger import Ledger
from ..paths import state_dir
from . import arxiv, crossref, openalex, s2
from .errors import LiteratureError, NotFoundError, ServiceError
from .keys import assign_keys
from .merge import LedgerIndex, merge_papers
from .papers import SOURCES, Paper, arxiv_version, is_arxiv_id, normalize_arxiv_id, normalize_doi
from .query import plain_query
from .transport import DOWN_KINDS, Transport

SOURCE_CHOICES = SOURCES + ("all",)
LEDGER_TYPES = ["paper", "retraction"]  # what LedgerIndex needs to know a paper and its state
_YEARS = re.compile(r"^(\d{4})?-(\d{4})?$|^(\d{4})$")
_S2_SHA = re.compile(r"^[0-9a-f]{40}$")
_S2_PREFIXES = ("DOI", "ARXIV", "CORPUSID", "MAG", "ACL", "PMID", "PMCID", "URL")


def parse_years(text: str | None) -> tuple[int | None, int | None] | None:
    """`2019-2024`, `2019-`, `-2024`, `2019` -> (lo, hi); None for no filter; ValueError if bad."""
    if text is None or not text.strip():
        return None
    match = _YEARS.match(text.strip())
    if not match or text.strip() == "-":
        raise ValueError(f"{text!r} is not a year range (forms: 2019-2024, 2019-, -2024, 2019)")
    if match.group(3):
        year = int(match.group(3))
        return (year, year)
    lo = int(match.group(1)) if match.group(1) else None
    hi = int(match.group(2)) if match.group(2) else None
    if lo and hi and lo > hi:
        raise ValueError(f"{text!r}: the first year is after the second")
    return (lo, hi)


@dataclass
class SourceError:
    source: str
    kind: str
    message: str
    hint: str | None

    def as_json(self) -> dict:
        return {"source": self.source, "kind": self.kind, "message": self.message,
                "hint": self.hint}

    def render(self) -> str:
        """`skipped s2 (rate-limited): ...` for a source that is out for this command, else
        `openalex (not-found): ...`, for the human form."""
        head = "skipped " if self.kind in DOWN_KINDS else ""
        return (f"{head}{self.source} ({self.kind}): {self.message}"
                + (f"\n  fix: {self.hint}" if self.hint else ""))


@dataclass
class FoundPaper:
    paper: Paper
    new: bool

    def as_json(self) -> dict:
        return {**self.paper.as_json(), "new": self.new}


@dataclass
class LitOutcome:
    """What a search or resolve found, what it recorded and what went wrong on the way."""

    query: str
    source: str
    found: list[FoundPaper] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    recorded: int = 0
    network_calls: int = 0
    cache_hits: int = 0
    offline: bool = False
    ledger_path: str = ""

    def as_json(self) -> dict:
        return {
            "query": self.query, "source": self.source, "offline": self.offline,
            "counts": self.counts, "recorded": self.recorded, "ledger": self.ledger_path,
            "network_calls": self.network_calls, "cache_hits": self.cache_hits,
            "papers": [f.as_json() for f in self.found],
            "errors": [e.as_json() for e in self.errors], "skipped": self.skipped,
            "warnings": self.warnings,
        }


def _in_years(paper: Paper, years: tuple[int | None, int | None] | None) -> bool:
    if not years or paper.year is None:
        return True
    lo, hi = years
    return (lo is None or paper.year >= lo) and (hi is None or paper.year <= hi)


@contextmanager
def _recording_lock(root: Path):
    """One recorder at a time per project: deciding "new" and appending must not interleave, or
    two concurrent searches would record the same paper twice under two keys."""
    path = state_dir(Path(root)) / ".lit-record.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield  # the ledger append reports an unwritable project itself
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _record(root: Path, outcome: LitOutcome, papers: list[Paper], search_record: dict | None,
            query_label: str) -> None:
    """Key the papers, mark which are new, append the search record and the new paper records."""
    with _recording_lock(root):
        _record_locked(root, outcome, papers, search_record, query_label)


def _record_locked(root: Path, outcome: LitOutcome, papers: list[Paper],
                   search_record: dict | None, query_label: str) -> None:
    ledger = Ledger(root, "lit-review")
    read = ledger.read(types=LEDGER_TYPES)
    if read.damage:
        outcome.warnings.append(f"{ledger.path}: {len(read.damage)} damaged line(s) ignored "
                                "(rstack log check lit-review)")
    index = LedgerIndex(read.records)
    fresh: list[Paper] = []
    marks: list[dict] = []
    for paper in papers:
        known = index.find(paper)
        if known is not None:
            paper.key = known.key
            if paper.retracted and not known.retracted:
                # Records are never rewritten: a later retraction is a record of its own.
                marks.append({"type": "retraction", "key": known.key,
                              "source": ",".join(paper.sources), "notice": paper.retraction,
                              "query": query_label})
                known.retracted, known.retraction = True, paper.retraction
            outcome.found.append(FoundPaper(paper, False))
        else:
            fresh.append(paper)
            outcome.found.append(FoundPaper(paper, True))
    assign_keys(fresh, index.keys)
    records = []
    if search_record is not None:
        search_record["counts"]["new"] = len(fresh)
        search_record["keys"] = [f.paper.key for f in outcome.found]
        records.append(search_record)
    records.extend(paper.to_record(query_label) for paper in fresh)
    records.extend(marks)
    if records:
        ledger.append_many(records)
    outcome.recorded = len(fresh)
    outcome.ledger_path = str(ledger.path)


def enabled_sources() -> list[str]:
    """The sources `--source all` asks, in the fixed SOURCES order (config `lit_sources`)."""
    wanted = set(config.get("lit_sources"))
    return [name for name in SOURCES if name in wanted]


def _search_one(transport: Transport, name: str, query: str, *, limit: int, year: str | None,
                years, fielded: bool):
    if name == "s2":
        return s2.search(transport, query, limit=limit, year=year)
    if name == "arxiv":
        return arxiv.search(transport, query, limit=limit, years=years, fielded=fielded)
    if name == "openalex":
        return openalex.search(transport, plain_query(query), limit=limit, years=years)
    return crossref.search(transport, plain_query(query), limit=limit, years=years)


def search_literature(root: Path, query: str, *, source: str = "all", limit: int = 10,
                      year: str | None = None, offline: bool = False,
                      transport: Transport | None = None) -> LitOutcome:
    """Search one source or every enabled one, merge and dedupe, record new papers; a source
    that fails is skipped and named; raises only if every source failed."""
    if not query.strip():
        raise LiteratureError("the search query is empty", hint='rstack lit search "QUERY"')
    if source not in SOURCE_CHOICES:
        raise LiteratureError(f"unknown source {source!r}; use one of {', '.join(SOURCE_CHOICES)}")
    if not (query.strip() if source == "arxiv" else plain_query(query)):
        raise LiteratureError(f"the search query {query!r} has no words to search for",
                              hint='rstack lit search "WORDS OF THE TOPIC"')
    years = parse_years(year)
    transport = transport or Transport(root, offline=offline)
    outcome = LitOutcome(query=query, source=source, offline=offline)
    results: list[list[Paper]] = []
    counts: dict = {}
    wanted = enabled_sources() if source == "all" else [source]
    for name in wanted:
        try:
            got = _search_one(transport, name, query, limit=limit, year=year, years=years,
                              fielded=source == "arxiv")
        except ServiceError as exc:
            outcome.errors.append(SourceError(name, exc.kind, exc.message, exc.hint))
            counts[name] = None
            continue
        results.append(got.papers)
        counts[name] = len(got.papers)
        counts[f"{name}_total"] = got.total
        outcome.skipped.extend(f"{name}: skipped {why}" for why in got.skipped)
    outcome.network_calls = transport.network_calls
    outcome.cache_hits = transport.cache_hits
    outcome.warnings.extend(transport.warnings)
    if len(outcome.errors) == len(wanted):
        details = "; ".join(e.message for e in outcome.errors)
        hints = [e.hint for e in outcome.errors if e.hint]
        raise LiteratureError(f"search {query!r} failed on every source ({details}); "
                              "nothing was recorded", hint=hints[0] if hints else None)
    merged = [p for p in merge_papers(results) if _in_years(p, years)]
    counts["merged"] = len(merged)
    search_record = {
        "type": "search", "query": query, "source": source, "limit": limit, "year": year,
        "offline": offline, "counts": counts,
        "errors": [e.as_json() for e in outcome.errors],
    }
    outcome.counts = counts
    _record(root, outcome, merged, search_record, query)
    return outcome


def parse_identifier(text: str) -> tuple[str, str]:
    """('arxiv', id) or ('s2', S2-style id) for what `lit resolve` accepts; ValueError if neither."""
    raw = text.strip()
    prefix, _, rest = raw.partition(":")
    if prefix.upper() == "ARXIV" and rest:
        norm = normalize_arxiv_id(rest)
        if norm:
            return "arxiv", norm + (arxiv_version(rest) or "")
        raise ValueError(f"{raw!r}: {rest!r} is not an arXiv id (e.g. 1706.03762)")
    if is_arxiv_id(raw):
        # A version (2104.12255v1) is kept: resolving it asks arXiv for that version.
        return "arxiv", (normalize_arxiv_id(raw) or raw) + (arxiv_version(raw) or "")
    if prefix.upper() == "DOI" and rest:
        doi = normalize_doi(rest)
        if doi:
            return "s2", f"DOI:{doi}"
        raise ValueError(f"{raw!r}: {rest!r} is not a DOI (DOIs start with 10.)")
    if normalize_doi(raw):
        return "s2", f"DOI:{normalize_doi(raw)}"
    if _S2_SHA.match(raw.lower()):
        return "s2", raw.lower()
    if rest and prefix.upper() in _S2_PREFIXES:
        return "s2", f"{prefix.upper() if prefix.upper() != 'CORPUSID' else 'CorpusId'}:{rest}"
    raise ValueError(f"{raw!r} is not a paper id; use an S2 id (40 hex chars), DOI:10..., "
                     "ARXIV:1706.03762, CorpusId:N, or a bare arXiv id")


def lookup_attempts(transport: Transport, kind: str, ident: str) -> list[tuple[str, object]]:
    """(source, fetch) pairs that look one paper up by a parsed id: an arXiv id asks S2 and
    arXiv, a DOI asks S2, OpenAlex and Crossref, any other S2-style id asks S2."""
    if kind == "arxiv":
        norm = normalize_arxiv_id(ident) or ident
        attempts = [("s2", lambda: s2.get_paper(transport, f"ARXIV:{norm}")),
                    ("arxiv", lambda: arxiv.get_paper(transport, ident))]
        # A versioned id asks for that version: arXiv's answer for it comes first in the merge
        # (its title, date and links), S2 fills what it lacks.
        return attempts[::-1] if arxiv_version(ident) else attempts
    if ident.startswith("DOI:"):
        doi = ident[4:]
        return [("s2", lambda: s2.get_paper(transport, ident)),
                ("openalex", lambda: openalex.get_work(transport, doi)),
                ("crossref", lambda: crossref.get_work(transport, doi))]
    return [("s2", lambda: s2.get_paper(transport, ident))]


def fetch_by_id(transport: Transport, kind: str, ident: str
                ) -> tuple[list[Paper], list[SourceError]]:
    """Every source's answer for one id, merged (one paper, or none), and each source's error."""
    found: list[list[Paper]] = []
    errors: list[SourceError] = []
    for name, fetch in lookup_attempts(transport, kind, ident):
        try:
            found.append([fetch()])
        except ServiceError as exc:
            errors.append(SourceError(name, exc.kind, exc.message, exc.hint))
    return merge_papers(found), errors


def resolve_paper(root: Path, identifier: str, *, offline: bool = False,
                  transport: Transport | None = None) -> LitOutcome:
    """Fetch one paper by id from every source that knows that kind of id, record it if new."""
    kind, ident = parse_identifier(identifier)
    transport = transport or Transport(root, offline=offline)
    outcome = LitOutcome(query=identifier, source="all" if kind == "arxiv" or
                         ident.startswith("DOI:") else "s2", offline=offline)
    merged, outcome.errors = fetch_by_id(transport, kind, ident)
    outcome.network_calls = transport.network_calls
    outcome.cache_hits = transport.cache_hits
    outcome.warnings.extend(transport.warnings)
    if not merged:
        details = "; ".join(e.message for e in outcome.errors)
        hint = next((e.hint for e in outcome.errors if e.hint), None)
        if all(e.kind == "not-found" for e in outcome.errors):
            raise NotFoundError(f"{identifier}: not found ({details}); nothing was recorded",
                                service=outcome.source, hint=hint)
        raise LiteratureError(f"{identifier}: could not be fetched ({details}); "
                              "nothing was recorded", hint=hint)
    outcome.counts = {"found": len(merged)}
    _record(root, outcome, merged, None, f"resolve:{identifier}")
    return outcome


def seed_search_cache(root: Path, query: str, *, limit: int = 10, year: str | None = None,
                      s2_body: str | None = None, arxiv_body: str | None = None) -> list[Path]:
    """Store response bodies in the cache under the keys `rstack lit search QUERY --limit N
    [--year Y]` looks up, so that search answers `--offline` (how a demo ships a snapshot).

    Keys include the base URLs configured now (s2_api_url, arxiv_api_url); each body must parse
    as its API's answer (ServiceError otherwise), so a snapshot can never hold a broken page.
    """
    from .cache import ResponseCache
    from .transport import Body

    cache = ResponseCache(Path(root), 0.0)
    written = []
    what = f"search {query!r}"
    if s2_body is not None:
        url, params = s2.search_request(query, limit=limit, year=year)
        s2.parse_search(Body(200, "application/json", s2_body, url, True), what)
        written.append(cache.store("GET", url, params, status=200,
                                   content_type="application/json", body=s2_body))
    if arxiv_body is not None:
        url, params = arxiv.search_request(query, limit=limit, years=parse_years(year))
        arxiv.parse_feed(Body(200, "application/atom+xml", arxiv_body, url, True), what)
        written.append(cache.store("GET", url, params, status=200,
                                   content_type="application/atom+xml", body=arxiv_body))
    return written
