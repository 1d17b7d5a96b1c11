"""Rank ledger papers by TF-IDF cosine similarity of title + abstract to a text (novelty input).

A small TF-IDF on numpy: smoothed idf, sublinear tf, L2-normalized rows. The ranking is
deterministic (ties broken by key). It only reads the ledger.
"""

from __future__ import annotations

import math
import re
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


def rank(text: str, papers: list[Paper], k: int = 10) -> list[Neighbour]:
    """The k papers most similar to text (score > 0 only), best first."""
    import numpy as np

    docs = [tokenize(f"{p.title} {p.abstract or ''}") for p in papers]
    query = tokenize(text)
    vocab: dict[str, int] = {}
    for tokens in docs:
        for token in tokens:
            vocab.setdefault(token, len(vocab))
    if not vocab or not query or not papers:
        return []
    counts = np.zeros((len(docs), len(vocab)))
    for row, tokens in enumerate(docs):
        for token in tokens:
            counts[row, vocab[token]] += 1
    df = (counts > 0).sum(axis=0)
    idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
    tf = np.where(counts > 0, 1.0 + np.log(np.maximum(counts, 1.0)), 0.0)
    matrix = tf * idf
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    matrix = matrix / norms[:, None]
    qvec = np.zeros(len(vocab))
    for token in query:
        if token in vocab:
            qvec[vocab[token]] += 1
    qvec = np.where(qvec > 0, 1.0 + np.log(np.maximum(qvec, 1.0)), 0.0) * idf
    qnorm = float(np.linalg.norm(qvec))
    if qnorm == 0:
        return []
    scores = matrix @ (qvec / qnorm)
    order = sorted(range(len(papers)), key=lambda i: (-float(scores[i]), papers[i].key or ""))
    return [Neighbour(papers[i], float(scores[i])) for i in order[:k]
            if float(scores[i]) > 0 and math.isfinite(float(scores[i]))]


def nearest_papers(root: Path, text: str, k: int = 10) -> list[Neighbour]:
    index = LedgerIndex(Ledger(root, "lit-review").read(types=["paper"]).records)
    return rank(text, index.papers, k)
