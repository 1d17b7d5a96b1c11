"""What each API is sent for a user's query: the one place that knows their query languages.

Semantic Scholar, OpenAlex and Crossref take plain words (S2's docs: hyphenated terms match
nothing, and there is no field syntax), so they get the words alone. arXiv takes `search_query`
syntax; the user's own fielded syntax (`ti:`, `au:`, `AND`) goes through only when they asked
arXiv alone, because then they wrote it for arXiv.
"""

from __future__ import annotations

import re

_FIELD_PREFIX = re.compile(r"\b(?:ti|au|abs|co|jr|cat|rn|id|all):")
_DATE_CLAUSE = re.compile(r"\bsubmittedDate:\[[^\]]*\]")
_BOOLEAN = {"AND", "OR", "ANDNOT", "NOT"}
_TERMS = re.compile(r'"[^"]+"|\S+')
_NOT_WORD = re.compile(r"[^\w.'+]+")


def has_field_syntax(query: str) -> bool:
    """Whether QUERY uses arXiv field prefixes or boolean operators."""
    return bool(_FIELD_PREFIX.search(query) or _DATE_CLAUSE.search(query)
                or any(term in _BOOLEAN for term in query.split()))


def words(query: str) -> list[str]:
    """The plain words of QUERY: no field prefixes, operators, quotes or brackets; a hyphen
    splits a word (`self-supervised` -> `self`, `supervised`)."""
    text = _FIELD_PREFIX.sub(" ", _DATE_CLAUSE.sub(" ", query))
    found = []
    for term in text.split():
        if term in _BOOLEAN:
            continue
        for part in _NOT_WORD.sub(" ", term.replace("-", " ")).split():
            part = part.strip(".'+")
            if part:
                found.append(part)
    return found


def plain_query(query: str) -> str:
    """What S2, OpenAlex and Crossref are sent: the words, space-separated."""
    return " ".join(words(query))


def arxiv_query(query: str, *, fielded: bool) -> str:
    """An arXiv `search_query`: the user's syntax when `fielded` and they used some, else every
    word ANDed over all fields (a quoted or hyphenated phrase stays a phrase)."""
    text = query.strip()
    if fielded and has_field_syntax(text):
        return text
    clauses = []
    for term in _TERMS.findall(_FIELD_PREFIX.sub(" ", _DATE_CLAUSE.sub(" ", text))):
        if term in _BOOLEAN:
            continue
        parts = words(term)
        if len(parts) > 1:
            clauses.append('all:"' + " ".join(parts) + '"')
        elif parts:
            clauses.append("all:" + parts[0])
    return " AND ".join(clauses)
