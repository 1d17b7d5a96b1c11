"""Rank ledger papers by TF-IDF cosine similarity of title + abstract to a text (novelty input).

A small sparse TF-IDF (smoothed idf, sublinear tf, cosine), no model and no scikit-learn: the
ranking is deterministic (ties broken by key) and instant on thousands of abstracts. Read-only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from anyascii import anyascii

from ..ledger import Ledger
from .keys import STOPWORDS
from .merge import LedgerIndex
from .papers import Paper

_TOKEN = re.compile(r"[a-z][a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(anyascii(text or "").lower()) if t not in STOPWORDS]


@dataclass(frozen=True)
class Neighbour:
    paper: Paper
    score: float

    def as_json(self) -> dict:
        p = self.paper
        return {"key": p.key, "score": round(self.score, 6), "title": p.title, "year": p.year,
                "venue": p.venue, "authors": p.authors[:3], "ids": p.ids}


def _weights(counts: Counter, idf: dict[str, float]) -> dict[str, float]:
    return {term: (1.0 + math.log(n)) * idf[term] for term, n in counts.items() if term in idf}


def phrase_terms(text: str) -> list[str]:
    """Words with a plural `s` dropped, plus each pair of adjacent words (`sparse_attention`):
    a two-word term shared with the idea says more about a topic than one common word."""
    words = [t[:-1] if len(t) > 3 and t.endswith("s") and not t.endswith("ss") else t
             for t in tokenize(text)]
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:])]


def rank(text: str, papers: list[Paper], k: int = 10) -> list[Neighbour]:
    """The k papers most similar to text (score > 0 only), best first.

    Sparse on purpose: memory grows with the tokens, not with papers x vocabulary.
    """
    docs = [Counter(tokenize(f"{p.title} {p.abstract or ''}")) for p in papers]
    query = Counter(tokenize(text))
    if not docs or not query:
        return []
    df: Counter = Counter()
    for counts in docs:
        df.update(counts.keys())
    n_docs = len(docs)
    idf = {term: math.log((1 + n_docs) / (1 + count)) + 1.0 for term, count in df.items()}
    qvec = _weights(query, idf)
    qnorm = math.sqrt(sum(w * w for w in qvec.values()))
    if qnorm == 0:
        return []
    scored = []
    for paper, counts in zip(papers, docs):
        if not any(term in counts for term in qvec):
            continue
        dvec = _weights(counts, idf)
        dnorm = math.sqrt(sum(w * w for w in dvec.values()))
        dot = sum(weight * dvec[term] for term, weight in qvec.items() if term in dvec)
        if dnorm and dot > 0:
            scored.append(Neighbour(paper, dot / (dnorm * qnorm)))
    scored.sort(key=lambda n: (-n.score, n.paper.key or ""))
    return scored[:k]


def nearest_papers(root: Path, text: str, k: int = 10) -> list[Neighbour]:
    index = LedgerIndex(Ledger(root, "lit-review").read(types=["paper"]).records)
    return rank(text, index.papers, k)
