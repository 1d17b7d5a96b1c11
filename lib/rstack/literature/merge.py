"""Merge papers from several sources into one list without duplicates, and match them to the ledger.

Two papers are one when they share any identity (DOI, arXiv id without version, S2 id, normalized
title + year). Merging keeps the first non-empty value per field in source order (Semantic
Scholar before arXiv: it knows venues and citation counts), and the union of ids and sources.
"""

from __future__ import annotations

from typing import Iterable

from .papers import Paper, normalize_title

SOURCE_ORDER = {"s2": 0, "arxiv": 1, "openalex": 2, "crossref": 3}


def _absorb(into: Paper, other: Paper) -> None:
    if not into.authors and other.authors:
        into.authors = list(other.authors)
    # The venue's type travels with the venue it describes, never onto another source's venue.
    if into.venue_type is None and other.venue_type is not None and (
            into.venue is None or normalize_title(into.venue) == normalize_title(other.venue)):
        into.venue_type = other.venue_type
    for name in ("year", "venue", "abstract", "url", "pdf_url", "primary_category"):
        if getattr(into, name) is None and getattr(other, name) is not None:
            setattr(into, name, getattr(other, name))
    if other.retracted and not into.retracted:
        into.retracted, into.retraction = True, other.retraction
    elif into.retracted is None and other.retracted is not None:
        into.retracted, into.retraction = other.retracted, other.retraction
    if other.citation_count is not None:
        into.citation_count = max(into.citation_count or 0, other.citation_count)
    for id_name, value in other.ids.items():
        if value and not into.ids.get(id_name):
            into.ids[id_name] = value
    for source in other.sources:
        if source not in into.sources:
            into.sources.append(source)
    into.sources.sort(key=lambda s: SOURCE_ORDER.get(s, 99))


def merge_papers(groups: Iterable[Iterable[Paper]]) -> list[Paper]:
    """Dedupe papers from several result lists (give S2's first); order of first appearance."""
    merged: list[Paper | None] = []
    owner: dict[str, int] = {}  # identity -> index in merged
    for papers in groups:
        for paper in papers:
            hits = sorted({owner[i] for i in paper.identities() if i in owner})
            if not hits:
                index = len(merged)
                merged.append(Paper(**{**paper.__dict__, "ids": dict(paper.ids),
                                       "authors": list(paper.authors),
                                       "sources": list(paper.sources)}))
            else:
                index = hits[0]
                _absorb(merged[index], paper)
                # The new paper may bridge two entries that were separate until now.
                for extra in hits[1:]:
                    if merged[extra] is not None:
                        _absorb(merged[index], merged[extra])
                        for ident, where in list(owner.items()):
                            if where == extra:
                                owner[ident] = index
                        merged[extra] = None
            for ident in merged[index].identities():
                owner[ident] = index
    return [paper for paper in merged if paper is not None]


class LedgerIndex:
    """Paper records already in the lit-review ledger, findable by any identity or by key."""

    def __init__(self, records: Iterable[dict]):
        self.by_identity: dict[str, Paper] = {}
        self.by_key: dict[str, Paper] = {}
        self.papers: list[Paper] = []
        marks = []
        for record in records:
            if record.get("type") == "retraction":
                marks.append(record)  # a later record saying a recorded paper is retracted
                continue
            paper = Paper.from_record(record)
            if not paper.key or paper.key in self.by_key:
                continue  # the first record of a key is the one that counts
            self.add(paper)
        for mark in marks:
            paper = self.by_key.get(mark.get("key"))
            if paper is not None:
                paper.retracted = True
                paper.retraction = mark.get("notice") or f"{mark.get('source')} says retracted"

    def add(self, paper: Paper) -> None:
        self.papers.append(paper)
        if paper.key:
            self.by_key[paper.key] = paper
        if paper.from_api:
            # Only API records identify papers: a hand-typed record must not stop the real
            # one from being recorded (its key stays taken, so keys never clash).
            for ident in paper.identities():
                self.by_identity.setdefault(ident, paper)

    def find(self, paper: Paper) -> Paper | None:
        for ident in paper.identities():
            if ident in self.by_identity:
                return self.by_identity[ident]
        return None

    @property
    def keys(self) -> set[str]:
        return set(self.by_key)
