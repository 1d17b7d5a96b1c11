"""Does the review cover the question? Ledger papers ranked by TF-IDF similarity to idea.md, and
which of lit-review.md's `[@key]`s are on or off topic. Read-only, offline, no heavy imports
(`rstack status` calls it).

A paper is on-topic when it shares a two-word term with the idea (`sparse attention`, `learning
rate`) and its TF-IDF cosine similarity to the idea over words and word pairs is at least
`lit_coverage_min_score` (0.08 by default: on-topic abstracts score roughly 0.1-0.4 against a
one-paragraph idea). One shared common word is not enough: "Long Short-Term Memory" shares
`long`, `time` and `memory` with an idea about long documents and is still off topic. (A paper
recorded without an abstract is judged on its title's words: a title is too short for phrases.)
The review is *thin* when
it cites fewer than `lit_coverage_min_papers` on-topic papers (3 by default): padding a review
with classics that match nothing in the idea does not make it cover the question.
idea.md's own citations are checked too: `[@key]` must be a ledger key, and an author-year
reference written from memory ("Smith et al. (2020)") is flagged until it is a `[@key]`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..ledger import Ledger
from .merge import LedgerIndex
from .nearest import phrase_terms

REVIEW = "lit-review.md"
IDEA = "idea.md"
# Author-year references typed from memory: "Vaswani et al. (2017)", "Vaswani et al., 2017",
# "(Kingma and Ba, 2014)", "(Polyak 1964)".
_MEMORY_CITE = re.compile(
    r"\b[A-Z][\w'\-]+ et al\.?,?\s*\(?(?:19|20)\d{2}[a-z]?\)?"
    r"|\((?:see |e\.g\., )?[A-Z][\w'\-]+(?:(?: and | & )[A-Z][\w'\-]+)?,? (?:19|20)\d{2}[a-z]?\)")
_CITATION_MARKS = re.compile(r"\[[^\[\]]*@[^\[\]]*\]")


def cited_keys(text: str) -> set[str]:
    """The `[@key]`s of a markdown text (status's reading, one definition)."""
    from ..status import _cited_keys

    return _cited_keys(text)


def memory_citations(text: str) -> list[str]:
    """Author-year references written out instead of as `[@key]`."""
    return list(dict.fromkeys(m.group(0).strip() for m in _MEMORY_CITE.finditer(text)))


@dataclass
class Scored:
    key: str
    score: float
    title: str
    year: int | None

    def as_json(self) -> dict:
        return {"key": self.key, "score": round(self.score, 4), "title": self.title,
                "year": self.year}


@dataclass
class CoverageReport:
    idea_path: str
    review_path: str | None  # None: no lit-review.md yet, the whole ledger is judged
    min_score: float
    min_papers: int
    ranked: list[Scored] = field(default_factory=list)  # the ledger's best matches
    on_topic: list[Scored] = field(default_factory=list)  # cited (or ledger) papers >= min_score
    off_topic: list[Scored] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)  # cited, not in the ledger
    idea_unknown_keys: list[str] = field(default_factory=list)
    idea_memory_citations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def thin(self) -> bool:
        return len(self.on_topic) < self.min_papers

    @property
    def ok(self) -> bool:
        return not self.thin and not self.problems and not self.unknown_keys and not (
            self.idea_unknown_keys or self.idea_memory_citations)

    def as_json(self) -> dict:
        return {"ok": self.ok, "thin": self.thin, "idea": self.idea_path,
                "review": self.review_path, "min_score": self.min_score,
                "min_papers": self.min_papers,
                "on_topic": [s.as_json() for s in self.on_topic],
                "off_topic": [s.as_json() for s in self.off_topic],
                "unknown_keys": self.unknown_keys,
                "idea_unknown_keys": self.idea_unknown_keys,
                "idea_memory_citations": self.idea_memory_citations,
                "nearest": [s.as_json() for s in self.ranked], "problems": self.problems}

    def render(self) -> str:
        judged = self.review_path or "the lit-review ledger (no lit-review.md yet)"
        lines = [f"nearest ledger papers to {self.idea_path}:"]
        lines += [f"  {s.score:.3f}  {s.key:<28} {s.year or '----'}  {s.title[:60]}"
                  for s in self.ranked] or ["  (none shares a term with the idea)"]
        lines.append(f"on-topic (score >= {self.min_score:g}) in {judged}: {len(self.on_topic)}"
                     + (f" ({', '.join(s.key for s in self.on_topic[:8])})" if self.on_topic
                        else ""))
        for s in self.off_topic:
            lines.append(f"off-topic: [@{s.key}] scores {s.score:.3f} ({s.title[:60]})")
        lines += [f"not in the ledger: [@{k}]" for k in self.unknown_keys]
        lines += [f"{self.idea_path}: [@{k}] is not in the ledger" for k in self.idea_unknown_keys]
        lines += [f"{self.idea_path}: {c!r} is cited from memory: find it (rstack lit search / "
                  "resolve) and write its [@key]" for c in self.idea_memory_citations]
        lines += [f"problem: {p}" for p in self.problems]
        verdict = (f"THIN: {len(self.on_topic)} on-topic paper(s), at least {self.min_papers} "
                   "needed" if self.thin else "ok" if self.ok else "FAIL")
        lines.append(f"{verdict}: coverage of {self.idea_path} by {judged}")
        if self.thin:
            lines.append("fix: search broader and narrower queries (rstack lit search), resolve "
                         "known ids (rstack lit resolve), and cite what is on topic; never pad "
                         "the review with unrelated papers")
        return "\n".join(lines)


def score_papers(idea_text: str, papers) -> dict[str, float]:
    """key -> TF-IDF cosine of the paper's title + abstract to the idea over words and word pairs
    (smoothed idf, sublinear tf, as nearest.rank), 0 when it has an abstract but shares no word
    pair with the idea; best first. Each text is tokenized once: status calls this every time."""
    docs = [(p, Counter(phrase_terms(f"{p.title} {p.abstract or ''}"))) for p in papers if p.key]
    query = Counter(phrase_terms(idea_text))
    if not docs or not query:
        return {}
    df: Counter = Counter()
    for _, counts in docs:
        df.update(counts.keys())
    n_docs = len(docs)
    idf = {term: math.log((1 + n_docs) / (1 + df[term])) + 1.0 for term in query if term in df}
    qvec = {term: (1.0 + math.log(n)) * idf[term] for term, n in query.items() if term in idf}
    qnorm = math.sqrt(sum(w * w for w in qvec.values()))
    pairs = {term for term in qvec if "_" in term}
    scores = {}
    for paper, counts in docs:
        dot = sum(w * (1.0 + math.log(counts[t])) * idf[t] for t, w in qvec.items() if t in counts)
        if dot <= 0 or not qnorm:
            continue
        if paper.abstract and not any(term in counts for term in pairs):
            # A title alone is too short to hold the idea's phrases; with an abstract, none
            # shared means the overlap is a few common words: off topic.
            continue
        dnorm = math.sqrt(sum(((1.0 + math.log(n)) * (math.log((1 + n_docs) / (1 + df[t])) + 1.0))
                              ** 2 for t, n in counts.items()))
        scores[paper.key] = dot / (dnorm * qnorm)
    return dict(sorted(scores.items(), key=lambda item: (-item[1], item[0])))


def assess(idea_text: str, records: list[dict], review_text: str | None, *,
           idea_path: str = IDEA, review_path: str | None = REVIEW) -> CoverageReport:
    """The coverage verdict from texts and ledger records (no file access: status reuses it)."""
    report = CoverageReport(idea_path, review_path if review_text is not None else None,
                            float(config.get("lit_coverage_min_score")),
                            int(config.get("lit_coverage_min_papers")))
    index = LedgerIndex(records)
    scores = score_papers(_CITATION_MARKS.sub(" ", idea_text), index.papers)
    by_key = index.by_key
    report.ranked = [Scored(k, s, by_key[k].title, by_key[k].year)
                     for k, s in list(scores.items())[:10] if s > 0]
    if review_text is None:
        judged = list(by_key)
    else:
        judged = sorted(cited_keys(review_text))
        report.unknown_keys = [k for k in judged if k not in by_key]
    for key in judged:
        if key not in by_key:
            continue
        scored = Scored(key, scores.get(key, 0.0), by_key[key].title, by_key[key].year)
        (report.on_topic if scored.score >= report.min_score else report.off_topic).append(scored)
    report.on_topic.sort(key=lambda s: (-s.score, s.key))
    report.off_topic.sort(key=lambda s: (s.score, s.key))
    if review_text is None:
        report.off_topic = []  # without a review nothing is cited, so nothing is padding
    report.idea_unknown_keys = sorted(k for k in cited_keys(idea_text) if k not in by_key)
    report.idea_memory_citations = memory_citations(idea_text)
    return report


def coverage(root: Path, idea: Path | None = None) -> CoverageReport:
    """`rstack lit coverage`: idea.md (or IDEA) against the ledger and lit-review.md."""
    root = Path(root)
    idea_path = idea or root / IDEA
    records = Ledger(root, "lit-review").read(types=["paper", "retraction"]).records
    try:
        idea_text = idea_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        report = assess("", records, None, idea_path=str(idea_path))
        report.problems.append(f"no idea to compare with: {idea_path} cannot be read "
                               "(write idea.md, or pass the file: rstack lit coverage IDEA.md)")
        return report
    review = root / REVIEW
    review_text = review.read_text(encoding="utf-8", errors="replace") if review.is_file() else None
    return assess(idea_text, records, review_text, idea_path=idea_path.name,
                  review_path=REVIEW)
