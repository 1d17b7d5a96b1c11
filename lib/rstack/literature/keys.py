"""Deterministic citation keys: first author's last name + year + first significant title word.

Lowercase ASCII only (`vaswani2017attention`). A key once recorded in the ledger never changes;
when a new paper's key is taken by another paper, it gets a suffix b, c, ... (the bare key is the
implicit `a`), and papers colliding within one batch are suffixed in a fixed order (by identity),
so the same ledger and the same API answers always give the same keys.
"""

from __future__ import annotations

import re
import string
from typing import Iterable

from anyascii import anyascii

from .papers import Paper

STOPWORDS = frozenset("""
a an the of on in for to and or with without via by from at as is are be can do does how
what when where which why who we our your its it this that these those towards toward into
about over under using use new not no
""".split())

_WORD = re.compile(r"[a-z0-9]+")
_NAME_PARTICLES = {"van", "von", "der", "den", "de", "del", "della", "di", "da", "le", "la", "du"}
_SUFFIXES = {"jr", "sr", "ii", "iii", "iv"}


def _ascii_words(text: str) -> list[str]:
    return _WORD.findall(anyascii(text or "").lower())


def last_name(author: str) -> str:
    """`Ashish Vaswani` -> `vaswani`; `Vaswani, Ashish` -> `vaswani`; `J. van Gogh` -> `vangogh`."""
    text = (author or "").strip()
    if "," in text:
        words = _ascii_words(text.split(",", 1)[0])
    else:
        words = _ascii_words(text)
        while len(words) > 1 and words[-1] in _SUFFIXES:
            words.pop()
        tail = [words[-1]] if words else []
        for word in reversed(words[:-1]):
            if word in _NAME_PARTICLES:
                tail.insert(0, word)
            else:
                break
        words = tail
    return "".join(words)


def first_significant_word(title: str) -> str:
    words = _ascii_words(title)
    for word in words:
        if word not in STOPWORDS and not word.isdigit():
            return word
    return words[0] if words else "untitled"


def base_key(paper: Paper) -> str:
    author = last_name(paper.authors[0]) if paper.authors else ""
    year = str(paper.year) if paper.year is not None else "nd"
    return f"{author or 'anon'}{year}{first_significant_word(paper.title)}"


def _suffixes() -> Iterable[str]:
    letters = string.ascii_lowercase
    for first in letters[1:]:
        yield first
    for first in letters:
        for second in letters:
            yield first + second


def assign_keys(papers: list[Paper], taken: Iterable[str]) -> None:
    """Give every paper without a key a free one (mutates papers). `taken`: keys in the ledger."""
    used = set(taken)
    pending = [p for p in papers if not p.key]
    for paper in sorted(pending, key=lambda p: (base_key(p), p.sort_identity())):
        base = base_key(paper)
        key = base
        if key in used:
            key = next(base + s for s in _suffixes() if base + s not in used)
        paper.key = key
        used.add(key)
