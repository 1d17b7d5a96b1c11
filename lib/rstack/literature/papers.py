"""One normalized paper, whichever API it came from, and the identities that make two the same.

Identities: DOI (lowercased), arXiv id without version (arXiv's own 10.48550 DOIs map to it),
Semantic Scholar paperId, and normalized title + year. Never fill a missing field with a guess:
a missing year stays None, and verify and bib then treat it as missing.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from anyascii import anyascii

SOURCES = ("s2", "arxiv", "openalex", "crossref")
ID_NAMES = ("s2", "doi", "arxiv", "openalex")
# What kind of venue a paper appeared in, as the sources' type fields say (never from the name
# alone when a source said it): decides @article / @inproceedings / @misc in the bib.
VENUE_TYPES = ("journal", "conference", "preprint", "book", "other")

_ARXIV_PREFIXES = re.compile(r"^(?:arxiv:|https?://(?:export\.)?arxiv\.org/(?:abs|pdf)/)", re.I)
_ARXIV_VERSION = re.compile(r"v\d+$")
_ARXIV_NEW = re.compile(r"^\d{4}\.\d{4,5}$")
_ARXIV_OLD = re.compile(r"^[a-z-]+(?:\.[a-z]{2})?/\d{7}$", re.I)
_DOI_PREFIXES = re.compile(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", re.I)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.I)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_OPENALEX_ID = re.compile(r"^(?:https?://openalex\.org/)?(W\d+)$", re.I)


def normalize_arxiv_id(raw: str | None) -> str | None:
    """`arXiv:1706.03762v5`, `http://arxiv.org/abs/hep-th/9901001v1` -> `1706.03762`, `hep-th/9901001`."""
    if not raw:
        return None
    text = _ARXIV_PREFIXES.sub("", str(raw).strip())
    text = _ARXIV_VERSION.sub("", text.rstrip("/"))
    if text.endswith(".pdf"):
        text = text[:-4]
    return text if (_ARXIV_NEW.match(text) or _ARXIV_OLD.match(text)) else None


def is_arxiv_id(raw: str) -> bool:
    return normalize_arxiv_id(raw) is not None


def arxiv_version(raw: str | None) -> str | None:
    """`2104.12255v1` -> `v1`; None when the id names no version."""
    if not raw or normalize_arxiv_id(raw) is None:
        return None
    match = _ARXIV_VERSION.search(_ARXIV_PREFIXES.sub("", str(raw).strip()).rstrip("/"))
    return match.group(0) if match else None


def normalize_openalex_id(raw: str | None) -> str | None:
    """`https://openalex.org/W2741809807` or `W2741809807` -> `W2741809807`."""
    match = _OPENALEX_ID.match(str(raw or "").strip())
    return match.group(1).upper() if match else None


def normalize_doi(raw: str | None) -> str | None:
    if not raw:
        return None
    text = _DOI_PREFIXES.sub("", str(raw).strip()).strip().lower()
    return text if text.startswith("10.") and "/" in text else None


def normalize_title(title: str | None) -> str:
    """ASCII, lowercase, letters and digits only, single spaces: what title comparisons use."""
    if not title:
        return ""
    text = str(title)
    text = anyascii(html.unescape(text) if "&" in text else text).lower()
    return " ".join(_NON_ALNUM.sub(" ", text).split())


def clean_text(text: Any) -> str | None:
    """Collapse whitespace (arXiv wraps titles and abstracts) and decode HTML entities (S2 and
    Crossref send `&amp;`); empty or non-string -> None."""
    if not isinstance(text, str):
        return None
    cleaned = " ".join((html.unescape(text) if "&" in text else text).split())
    return cleaned or None


@dataclass
class Paper:
    title: str
    authors: list[str] = field(default_factory=list)
    year: int | None = None
    venue: str | None = None
    ids: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(ID_NAMES))
    abstract: str | None = None
    url: str | None = None
    pdf_url: str | None = None
    citation_count: int | None = None
    sources: list[str] = field(default_factory=list)
    primary_category: str | None = None
    key: str | None = None
    venue_type: str | None = None  # one of VENUE_TYPES, from the source's type fields
    retracted: bool | None = None  # None: the source does not say (S2, arXiv)
    retraction: str | None = None  # what says so (`openalex is_retracted`, a notice DOI)

    @property
    def from_api(self) -> bool:
        """Whether this came from an API answer: a known source and at least one id."""
        return any(s in SOURCES for s in self.sources) and any(self.ids.values())

    def identities(self) -> list[str]:
        """Every identity string of this paper; two papers sharing one are the same paper."""
        found = []
        if self.ids.get("doi"):
            found.append("doi:" + self.ids["doi"])
        if self.ids.get("arxiv"):
            found.append("arxiv:" + self.ids["arxiv"])
        if self.ids.get("s2"):
            found.append("s2:" + self.ids["s2"])
        if self.ids.get("openalex"):
            found.append("openalex:" + self.ids["openalex"])
        norm = normalize_title(self.title)
        if norm and self.year is not None:
            found.append(f"title:{norm}|{self.year}")
        return found

    def sort_identity(self) -> str:
        """A stable order for papers whose keys collide (independent of API ranking)."""
        return "|".join(sorted(self.identities())) or normalize_title(self.title)

    def to_record(self, query: str | None) -> dict:
        """The `paper` ledger record (type, key, title, authors, year, venue, ids, ...)."""
        return {
            "type": "paper", "key": self.key, "title": self.title, "authors": list(self.authors),
            "year": self.year, "venue": self.venue, "ids": dict(self.ids),
            "abstract": self.abstract, "url": self.url, "pdf_url": self.pdf_url,
            "citation_count": self.citation_count, "sources": list(self.sources),
            "primary_category": self.primary_category, "query": query,
            "venue_type": self.venue_type, "retracted": self.retracted,
            "retraction": self.retraction,
        }

    def as_json(self) -> dict:
        data = self.to_record(None)
        data.pop("type")
        data.pop("query")
        return data

    @classmethod
    def from_record(cls, record: dict) -> "Paper":
        ids = record.get("ids") if isinstance(record.get("ids"), dict) else {}
        year = record.get("year")
        return cls(
            title=str(record.get("title") or ""),
            authors=[str(a) for a in record.get("authors") or [] if isinstance(a, str)],
            year=year if isinstance(year, int) and not isinstance(year, bool) else None,
            venue=record.get("venue") if isinstance(record.get("venue"), str) else None,
            ids={"s2": ids.get("s2"), "doi": normalize_doi(ids.get("doi")),
                 "arxiv": normalize_arxiv_id(ids.get("arxiv")),
                 "openalex": normalize_openalex_id(ids.get("openalex"))},
            abstract=record.get("abstract") if isinstance(record.get("abstract"), str) else None,
            url=record.get("url") if isinstance(record.get("url"), str) else None,
            pdf_url=record.get("pdf_url") if isinstance(record.get("pdf_url"), str) else None,
            citation_count=record.get("citation_count")
            if isinstance(record.get("citation_count"), int) else None,
            sources=[s for s in record.get("sources") or [] if isinstance(s, str)],
            primary_category=record.get("primary_category")
            if isinstance(record.get("primary_category"), str) else None,
            key=record.get("key") if isinstance(record.get("key"), str) else None,
            venue_type=record.get("venue_type") if record.get("venue_type") in VENUE_TYPES
            else None,
            retracted=record.get("retracted") if isinstance(record.get("retracted"), bool)
            else None,
            retraction=record.get("retraction") if isinstance(record.get("retraction"), str)
            else None,
        )


def make_ids(*, s2: Any = None, doi: Any = None, arxiv: Any = None,
             openalex: Any = None) -> dict[str, str | None]:
    """Normalized ids; an arXiv DOI (10.48550/arXiv.X) also yields the arXiv id X."""
    doi_norm = normalize_doi(doi) if isinstance(doi, str) else None
    arxiv_norm = normalize_arxiv_id(arxiv) if isinstance(arxiv, str) else None
    if doi_norm and not arxiv_norm:
        match = _ARXIV_DOI.match(doi_norm)
        if match:
            arxiv_norm = normalize_arxiv_id(match.group(1))
    s2_id = s2.strip() if isinstance(s2, str) and s2.strip() else None
    return {"s2": s2_id, "doi": doi_norm, "arxiv": arxiv_norm,
            "openalex": normalize_openalex_id(openalex) if isinstance(openalex, str) else None}
