"""BibTeX from ledger paper records, written with bibtexparser (v2).

@inproceedings for conference venues, @article for other venues, @misc with eprint fields for
arXiv-only papers. Only fields the record holds are written: a missing year is left out, never
invented. Titles keep their capitalization (double braces) and escape LaTeX's special characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .. import atomic
from ..ledger import Ledger
from .errors import LiteratureError
from .merge import LedgerIndex
from .papers import Paper

# Semantic Scholar names conferences in full ("Neural Information Processing Systems",
# "North American Chapter of the Association for Computational Linguistics") or by acronym.
_CONFERENCE = re.compile(
    r"conference|proceedings|workshop|symposium|meeting|congress|neural information processing|"
    r"association for computational linguistics|computer vision and pattern recognition|"
    r"learning representations|machine learning|artificial intelligence|"
    r"\b(?:neurips|nips|icml|iclr|aaai|ijcai|acl|emnlp|naacl|eacl|coling|cvpr|iccv|eccv|wacv|"
    r"kdd|sigir|www|colt|aistats|uai|interspeech|icassp|corl|rss|icra|iros|miccai|sigmod|vldb)\b",
    re.I)
_JOURNAL = re.compile(r"journal|transactions|surveys|letters|review|magazine|\bacta\b", re.I)
_PREPRINT_VENUES = {"arxiv", "arxiv.org", "corr", "arxiv preprint", "biorxiv", "medrxiv"}
_SPECIAL = re.compile(r"(?<!\\)([&%$#_])")


_MATH = re.compile(r"(?<!\\)(\$[^$]+\$)")


def latex_escape(text: str) -> str:
    """Escape & % $ # _ outside inline math; `$\\alpha$` in an arXiv title stays math."""
    parts = _MATH.split(text)
    return "".join(part if index % 2 else _SPECIAL.sub(r"\\\1", part)
                   for index, part in enumerate(parts))


def entry_type(paper: Paper) -> str:
    venue = (paper.venue or "").strip()
    if venue and venue.lower() not in _PREPRINT_VENUES:
        if _JOURNAL.search(venue):
            return "article"  # "Journal of Machine Learning Research" is no conference
        return "inproceedings" if _CONFERENCE.search(venue) else "article"
    return "misc"


def paper_to_entry(paper: Paper):
    from bibtexparser.model import Entry, Field

    kind = entry_type(paper)
    fields = [Field("title", "{" + latex_escape(paper.title) + "}")]
    if paper.authors:
        fields.append(Field("author", " and ".join(paper.authors)))
    if paper.year is not None:
        fields.append(Field("year", str(paper.year)))
    if kind == "inproceedings":
        fields.append(Field("booktitle", latex_escape(paper.venue or "")))
    elif kind == "article":
        fields.append(Field("journal", latex_escape(paper.venue or "")))
    arxiv_id = paper.ids.get("arxiv")
    if arxiv_id:
        fields.append(Field("eprint", arxiv_id))
        fields.append(Field("archivePrefix", "arXiv"))
        if paper.primary_category:
            fields.append(Field("primaryClass", paper.primary_category))
    if paper.ids.get("doi"):
        fields.append(Field("doi", paper.ids["doi"]))
    if paper.url:
        fields.append(Field("url", paper.url))
    return Entry(kind, paper.key or "", fields)


@dataclass
class BibResult:
    text: str
    keys: list[str]
    out: Path | None = None


def _papers_in_ledger(root: Path) -> LedgerIndex:
    return LedgerIndex(Ledger(root, "lit-review").read(types=["paper"]).records)


def build_bib(root: Path, *, keys: Iterable[str] | None = None) -> BibResult:
    """BibTeX for the given keys (in that order), or for every ledger paper (in ledger order).

    Raises LiteratureError naming every key the ledger does not hold: a bib entry for a paper
    no API returned is exactly what `lit verify` exists to refuse.
    """
    import bibtexparser

    index = _papers_in_ledger(root)
    if keys is None:
        papers = list(index.papers)
    else:
        wanted = list(dict.fromkeys(k for k in keys if k))
        missing = [k for k in wanted if k not in index.by_key]
        if missing:
            raise LiteratureError(
                f"not in the lit-review ledger: {', '.join(missing)}; no bib was written",
                hint="find them first: rstack lit search \"TITLE\" or rstack lit resolve ID, "
                     "then cite the key it prints")
        papers = [index.by_key[k] for k in wanted]
    library = bibtexparser.Library()
    for paper in papers:
        library.add(paper_to_entry(paper))
    text = bibtexparser.write_string(library) if papers else ""
    return BibResult(text, [p.key or "" for p in papers])


def write_bib(result: BibResult, out: Path) -> Path:
    """Atomically write the bib text to `out`."""
    out = atomic.write_text(out, result.text)
    result.out = out
    return out
