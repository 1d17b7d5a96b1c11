"""Semantic Scholar Graph API: `/paper/search` and `/paper/{id}` with an explicit `fields` list.

Bodies are parsed defensively: an HTML page or truncated JSON is a ServiceError (never cached);
an item without paperId or title is skipped and counted, never guessed at. The API key comes from
the environment (S2_API_KEY) and goes only into the `x-api-key` request header.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from .. import config
from .errors import ServiceError
from .papers import Paper, clean_text, make_ids
from .query import plain_query
from .transport import S2, Body, SourceResult, Transport, collect_pages, json_body

FIELDS = ("paperId,externalIds,title,abstract,year,venue,authors,citationCount,openAccessPdf,url,"
          "publicationTypes,journal,publicationVenue")
# S2's venue names that mean "only on a preprint server" (its `journal.name` for those is "ArXiv").
PREPRINT_VENUES = frozenset({"arxiv", "arxiv.org", "corr", "biorxiv", "medrxiv", "ssrn",
                             "chemrxiv", "research square", "preprints"})
MAX_LIMIT = 100
API_KEY_ENV = "S2_API_KEY"


def _headers() -> dict[str, str]:
    key = os.environ.get(API_KEY_ENV, "").strip()
    return {"x-api-key": key} if key else {}


def _base() -> str:
    return str(config.get("s2_api_url")).rstrip("/")


def parse_json(body: Body, what: str):
    """The JSON document of a body, or a ServiceError saying what came back instead."""
    return json_body(body, what, S2)


def venue_and_type(item: dict) -> tuple[str | None, str | None]:
    """The venue name and its type from `publicationVenue` (typed), `journal`, `venue` and
    `publicationTypes`: a PNAS paper is a journal article whatever its name says."""
    pub = item.get("publicationVenue") if isinstance(item.get("publicationVenue"), dict) else {}
    journal = item.get("journal") if isinstance(item.get("journal"), dict) else {}
    types = [t for t in item.get("publicationTypes") or [] if isinstance(t, str)]
    venue = clean_text(pub.get("name")) or clean_text(item.get("venue"))
    journal_name = clean_text(journal.get("name"))
    if (venue or "").lower() in PREPRINT_VENUES:
        return venue, "preprint"
    if pub.get("type") in ("journal", "conference"):
        return venue, pub["type"]
    if "Conference" in types:
        return venue, "conference"
    if journal_name and journal_name.lower() not in PREPRINT_VENUES:
        return venue or journal_name, "journal"
    if "JournalArticle" in types or "Review" in types:
        return venue, "journal" if venue else None
    if "Book" in types or "BookSection" in types:
        return venue, "book"
    return venue, None


def paper_from_item(item) -> tuple[Paper | None, str | None]:
    """A Paper from one S2 paper object, or (None, why it was skipped)."""
    if not isinstance(item, dict):
        return None, "an item that is not a JSON object"
    paper_id = item.get("paperId")
    title = clean_text(item.get("title"))
    if not isinstance(paper_id, str) or not paper_id:
        return None, f"an item without paperId ({title or 'untitled'})"
    if not title:
        return None, f"paper {paper_id} without a title"
    external = item.get("externalIds") if isinstance(item.get("externalIds"), dict) else {}
    authors = [clean_text(a.get("name")) for a in item.get("authors") or []
               if isinstance(a, dict)]
    year = item.get("year")
    pdf = item.get("openAccessPdf") if isinstance(item.get("openAccessPdf"), dict) else {}
    count = item.get("citationCount")
    venue, venue_type = venue_and_type(item)
    return Paper(
        title=title,
        authors=[a for a in authors if a],
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
        venue=venue, venue_type=venue_type,
        ids=make_ids(s2=paper_id, doi=external.get("DOI"), arxiv=external.get("ArXiv")),
        abstract=clean_text(item.get("abstract")),
        url=item.get("url") if isinstance(item.get("url"), str) and item.get("url") else None,
        pdf_url=clean_text(pdf.get("url")),
        citation_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        sources=["s2"],
    ), None


def search_request(query: str, *, limit: int, year: str | None = None,
                   offset: int = 0) -> tuple[str, dict]:
    """The URL and query parameters of a search page (what the cache key is computed from);
    the query is reduced to plain words (S2 has no query syntax; hyphenated terms match nothing)."""
    params = {"query": plain_query(query), "limit": min(max(limit, 1), MAX_LIMIT),
              "offset": offset, "fields": FIELDS}
    if year:
        params["year"] = year
    return _base() + "/paper/search", params


def parse_page(body: Body, what: str) -> tuple[SourceResult, bool]:
    """A search page and whether S2 says another follows (its `next` offset)."""
    doc = parse_json(body, what)
    return parse_search(body, what), isinstance(doc, dict) and isinstance(doc.get("next"), int)


def parse_search(body: Body, what: str) -> SourceResult:
    """A /paper/search body into papers (items without paperId or title are skipped)."""
    doc = parse_json(body, what)
    if not isinstance(doc, dict) or not isinstance(doc.get("data", []), list) or (
            "data" not in doc and "total" not in doc):
        raise ServiceError(f"Semantic Scholar {what}: unexpected JSON (no `data` list)",
                           service="s2", kind="bad-body", hint="try again later")
    result = SourceResult([], doc.get("total") if isinstance(doc.get("total"), int) else None)
    for item in doc.get("data", []):
        paper, why = paper_from_item(item)
        if paper is None:
            result.skipped.append(why)
        else:
            result.papers.append(paper)
    return result


def search(transport: Transport, query: str, *, limit: int,
           year: str | None = None) -> SourceResult:
    """Up to `limit` papers, page after page of at most MAX_LIMIT."""
    what = f"search {query!r}"

    def fetch(offset: int, count: int, cursor):
        url, params = search_request(query, limit=count, year=year, offset=offset)
        return transport.get(S2, url, params, parse=lambda body: parse_page(body, what),
                             what=what, headers=_headers())

    return collect_pages(limit, MAX_LIMIT, fetch)


def get_paper(transport: Transport, paper_id: str) -> Paper:
    """One paper by S2 id, `DOI:...`, `ARXIV:...`, `CorpusId:...` (raises NotFoundError)."""
    what = f"paper {paper_id}"

    def parse(body: Body) -> Paper:
        doc = parse_json(body, what)
        paper, why = paper_from_item(doc)
        if paper is None:
            raise ServiceError(f"Semantic Scholar {what}: unusable answer ({why})",
                               service="s2", kind="bad-body", hint="try again later")
        return paper

    url = _base() + "/paper/" + quote(paper_id, safe=":/.")
    return transport.get(S2, url, {"fields": FIELDS}, parse=parse, what=what, headers=_headers())
