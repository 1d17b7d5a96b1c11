"""OpenAlex works API: `/works?search=` (cursor paging) and `/works/doi:...` or `/works/W...`.

No key is needed; `lit_mailto` joins the polite pool. A work's retraction flag (`is_retracted`),
type (`type`, `type_crossref`) and venue (`primary_location.source`) are kept; the abstract is
rebuilt from `abstract_inverted_index`. Works without a title are skipped and counted, never guessed.
"""

from __future__ import annotations

from urllib.parse import quote

from .. import config
from .papers import Paper, clean_text, make_ids, normalize_arxiv_id
from .transport import (OPENALEX, Body, SourceResult, Transport, collect_pages, json_body,
                        polite_params)
from .errors import ServiceError

PER_PAGE_MAX = 200
# A source's `type` (journal, conference, repository, ebook platform, ...) -> our venue type.
_SOURCE_TYPES = {"journal": "journal", "conference": "conference", "repository": "preprint",
                 "book series": "book", "ebook platform": "book"}
_WORK_TYPES = {"preprint": "preprint", "book": "book", "book-chapter": "book"}
_CROSSREF_TYPES = {"proceedings-article": "conference", "journal-article": "journal",
                   "posted-content": "preprint"}


def _base() -> str:
    return str(config.get("openalex_api_url")).rstrip("/")


def abstract_text(inverted) -> str | None:
    """The abstract from OpenAlex's `abstract_inverted_index` ({word: [positions]})."""
    if not isinstance(inverted, dict) or not inverted:
        return None
    slots: dict[int, str] = {}
    for word, positions in inverted.items():
        for position in positions if isinstance(positions, list) else []:
            if isinstance(position, int):
                slots[position] = word
    return clean_text(" ".join(slots[i] for i in sorted(slots)))


def _venue_type(work: dict, source: dict) -> str | None:
    by_source = _SOURCE_TYPES.get(str(source.get("type") or ""))
    by_work = _WORK_TYPES.get(str(work.get("type") or ""))
    by_crossref = _CROSSREF_TYPES.get(str(work.get("type_crossref") or ""))
    # A preprint or a proceedings paper says so in the work's own type; the source's type is
    # the fallback (a "journal" source for a conference series happens).
    return by_work or by_crossref or by_source


def _arxiv_id(work: dict) -> str | None:
    for location in work.get("locations") or []:
        if not isinstance(location, dict):
            continue
        landing = str(location.get("landing_page_url") or "")
        if "arxiv.org/abs/" in landing:
            return normalize_arxiv_id(landing)
    return None


def paper_from_work(work) -> tuple[Paper | None, str | None]:
    """A Paper from one OpenAlex work object, or (None, why it was skipped)."""
    if not isinstance(work, dict):
        return None, "an item that is not a JSON object"
    title = clean_text(work.get("title")) or clean_text(work.get("display_name"))
    work_id = work.get("id")
    if not isinstance(work_id, str) or not work_id:
        return None, f"a work without an id ({title or 'untitled'})"
    if not title:
        return None, f"work {work_id} without a title"
    authors = []
    for authorship in work.get("authorships") or []:
        author = authorship.get("author") if isinstance(authorship, dict) else None
        name = clean_text(author.get("display_name")) if isinstance(author, dict) else None
        name = name or (clean_text(authorship.get("raw_author_name"))
                        if isinstance(authorship, dict) else None)
        if name:
            authors.append(name)
    location = work.get("primary_location") if isinstance(work.get("primary_location"),
                                                          dict) else {}
    source = location.get("source") if isinstance(location.get("source"), dict) else {}
    best = work.get("best_oa_location") if isinstance(work.get("best_oa_location"), dict) else {}
    year = work.get("publication_year")
    count = work.get("cited_by_count")
    retracted = work.get("is_retracted")
    doi = work.get("doi") if isinstance(work.get("doi"), str) else None
    return Paper(
        title=title, authors=authors,
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
        venue=clean_text(source.get("display_name")),
        ids=make_ids(doi=doi, arxiv=_arxiv_id(work), openalex=work_id),
        abstract=abstract_text(work.get("abstract_inverted_index")),
        url=doi or work_id,
        pdf_url=clean_text(location.get("pdf_url")) or clean_text(best.get("pdf_url")),
        citation_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        sources=["openalex"], venue_type=_venue_type(work, source),
        retracted=retracted if isinstance(retracted, bool) else None,
        retraction="openalex is_retracted" if retracted is True else None,
    ), None


def parse_list(body: Body, what: str) -> tuple[SourceResult, str | None]:
    """A /works list body into papers and the next cursor (None on the last page)."""
    doc = json_body(body, what, OPENALEX)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ServiceError(f"OpenAlex {what}: unexpected JSON (no `results` list)",
                           service="openalex", kind="bad-body", hint="try again later")
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    total = meta.get("count") if isinstance(meta.get("count"), int) else None
    result = SourceResult([], total)
    for work in doc["results"]:
        paper, why = paper_from_work(work)
        if paper is None:
            result.skipped.append(why)
        else:
            result.papers.append(paper)
    cursor = meta.get("next_cursor")
    return result, cursor if isinstance(cursor, str) and cursor else None


def search_request(query: str, *, count: int, cursor: str | None = None,
                   years: tuple[int | None, int | None] | None = None) -> tuple[str, dict]:
    params: dict = {"search": query, "per_page": min(max(count, 1), PER_PAGE_MAX),
                    "cursor": cursor or "*"}
    if years and (years[0] or years[1]):
        lo, hi = years
        params["filter"] = (f"publication_year:{lo}-{hi}" if lo and hi else
                            f"publication_year:>{lo - 1}" if lo else f"publication_year:<{hi + 1}")
    return _base() + "/works", polite_params(params)


def search(transport: Transport, query: str, *, limit: int,
           years: tuple[int | None, int | None] | None = None) -> SourceResult:
    """Works matching QUERY (plain words), up to `limit`, cursor page after cursor page."""
    what = f"search {query!r}"

    def fetch(offset: int, count: int, cursor):
        url, params = search_request(query, count=count, cursor=cursor, years=years)
        return transport.get(OPENALEX, url, params, parse=lambda body: parse_list(body, what),
                             what=what)

    return collect_pages(limit, PER_PAGE_MAX, fetch)


def get_work(transport: Transport, ident: str) -> Paper:
    """One work by DOI (`10.1145/...`) or OpenAlex id (`W2741809807`); NotFoundError if unknown."""
    what = f"work {ident}"
    path = ident if ident[:1] in "Ww" and ident[1:].isdigit() else "doi:" + ident

    def parse(body: Body) -> Paper:
        paper, why = paper_from_work(json_body(body, what, OPENALEX))
        if paper is None:
            raise ServiceError(f"OpenAlex {what}: unusable answer ({why})", service="openalex",
                               kind="bad-body", hint="try again later")
        return paper

    url = _base() + "/works/" + quote(path, safe=":/.()")
    return transport.get(OPENALEX, url, polite_params({}), parse=parse, what=what)
