"""BibTeX from ledger paper records, written with bibtexparser (v2).

The entry type comes from the venue type the source gave (S2 publicationVenue/publicationTypes/
journal, OpenAlex source and work types, Crossref types): @article with `journal`,
@inproceedings with `booktitle`, @misc (with eprint fields for arXiv) for preprints; only a record
without a venue type falls back to reading the venue's name. Only fields the record holds are
written: a missing year is left out, never invented. HTML entities are decoded before LaTeX
escaping; titles keep their capitalization (double braces); every author is a name bibtex can
read (`Last, First`, or braced as a unit), so `bibtex` never stops on "Too many commas in name".
"""

from __future__ import annotations

import html
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


_SUFFIX = re.compile(r"^(?:jr|sr|ii|iii|iv)\.?$", re.I)
_AND_WORD = re.compile(r"(?:^|\s)and(?:\s|$)", re.I)


def _text(value: str) -> str:
    """Decoded (`&amp;` -> `&`), single-spaced, braces kept only when they balance."""
    text = " ".join(html.unescape(value).split())
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    return text if depth == 0 else text.replace("{", "").replace("}", "")


def bib_name(name: str) -> str:
    """One author as bibtex reads it. `First Last` stays; a trailing Jr./III becomes
    `Last, Jr., First`; a name bibtex would misread (more than one comma, a word "and") is
    braced as a unit, so it prints as written instead of stopping bibtex."""
    text = latex_escape(_text(name).replace("{", "").replace("}", ""))
    words = text.split()
    commas = text.count(",")
    if _AND_WORD.search(text) or commas > 1:
        return "{" + text + "}"
    if commas == 0 and len(words) > 2 and _SUFFIX.match(words[-1]):
        return f"{words[-2]}, {words[-1]}, {' '.join(words[:-2])}"
    return text


def entry_type(paper: Paper) -> str:
    if paper.venue_type is not None:
        if paper.venue and paper.venue_type == "journal":
            return "article"
        if paper.venue and paper.venue_type == "conference":
            return "inproceedings"
        return "misc"
    venue = (paper.venue or "").strip()
    if venue and venue.lower() not in _PREPRINT_VENUES:
        if _JOURNAL.search(venue):
            return "article"  # "Journal of Machine Learning Research" is no conference
        return "inproceedings" if _CONFERENCE.search(venue) else "article"
    return "misc"


def paper_to_entry(paper: Paper):
    from bibtexparser.model import Entry, Field

    kind = entry_type(paper)
    venue = latex_escape(_text(paper.venue or ""))
    fields = [Field("title", "{" + latex_escape(_text(paper.title)) + "}")]
    if paper.authors:
        fields.append(Field("author", " and ".join(bib_name(a) for a in paper.authors)))
    if paper.year is not None:
        fields.append(Field("year", str(paper.year)))
    if kind == "inproceedings":
        fields.append(Field("booktitle", venue))
    elif kind == "article":
        fields.append(Field("journal", venue))
    elif venue and not paper.ids.get("arxiv") and venue.lower() not in _PREPRINT_VENUES:
        fields.append(Field("howpublished", venue))
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
