"""Crossref REST API: `/works?query.bibliographic=` and `/works/{doi}` (`message` envelopes).

`lit_mailto` joins the polite pool. A work that Crossref says was retracted or withdrawn
(`updated-by` entries of type retraction/withdrawal/removal, which carry Retraction Watch's data
too) is marked; a retraction *notice* (it has `update-to`) is a notice, not the paper. JATS markup
in abstracts is stripped. Items without a DOI or title are skipped and counted, never guessed.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from .. import config
from .errors import ServiceError
from .papers import Paper, clean_text, make_ids
from .transport import (CROSSREF, Body, SourceResult, Transport, collect_pages, json_body,
                        polite_params)

ROWS_MAX = 1000
RETRACTING_UPDATES = frozenset({"retraction", "withdrawal", "removal", "partial_retraction"})
_TYPES = {"journal-article": "journal", "proceedings-article": "conference",
          "posted-content": "preprint", "book-chapter": "book", "book": "book",
          "monograph": "book", "edited-book": "book", "report": "other", "dissertation": "other"}
_TAG = re.compile(r"<[^>]+>")


def _base() -> str:
    return str(config.get("crossref_api_url")).rstrip("/")


def _first(value) -> str | None:
    if isinstance(value, list):
        return next((clean_text(v) for v in value if clean_text(v)), None)
    return clean_text(value)


def _year(item: dict) -> int | None:
    for name in ("issued", "published", "published-print", "published-online", "created"):
        parts = item.get(name, {}).get("date-parts") if isinstance(item.get(name), dict) else None
        if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
            year = parts[0][0]
            if isinstance(year, int) and not isinstance(year, bool):
                return year
    return None


def _author(person) -> str | None:
    if not isinstance(person, dict):
        return None
    given, family = clean_text(person.get("given")), clean_text(person.get("family"))
    if family:
        return f"{given} {family}" if given else family
    return clean_text(person.get("name"))  # an organisation as author


def _retraction(item: dict) -> tuple[bool | None, str | None]:
    for update in item.get("updated-by") or []:
        if isinstance(update, dict) and str(update.get("type", "")).lower() in RETRACTING_UPDATES:
            notice = update.get("DOI") if isinstance(update.get("DOI"), str) else None
            source = update.get("source") if isinstance(update.get("source"), str) else "crossref"
            return True, f"{update['type']} notice {notice or '(no DOI)'} ({source})"
    title = _first(item.get("title")) or ""
    if title.upper().startswith(("RETRACTED:", "RETRACTED ARTICLE:", "WITHDRAWN:")):
        return True, "crossref title marks it retracted"
    return False, None


def paper_from_item(item) -> tuple[Paper | None, str | None]:
    """A Paper from one Crossref work, or (None, why it was skipped)."""
    if not isinstance(item, dict):
        return None, "an item that is not a JSON object"
    doi = item.get("DOI") if isinstance(item.get("DOI"), str) else None
    title = _first(item.get("title"))
    if not doi:
        return None, f"an item without a DOI ({title or 'untitled'})"
    if not title:
        return None, f"DOI {doi} without a title"
    if item.get("update-to"):
        return None, f"DOI {doi} is an update notice ({title}), not a paper"
    abstract = item.get("abstract")
    count = item.get("is-referenced-by-count")
    retracted, why = _retraction(item)
    kind = _TYPES.get(str(item.get("type") or ""))
    return Paper(
        title=title,
        authors=[a for a in (_author(p) for p in item.get("author") or []) if a],
        year=_year(item), venue=_first(item.get("container-title")),
        ids=make_ids(doi=doi),
        abstract=clean_text(_TAG.sub(" ", abstract)) if isinstance(abstract, str) else None,
        url=item.get("URL") if isinstance(item.get("URL"), str) else None,
        citation_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        sources=["crossref"], venue_type=kind, retracted=retracted, retraction=why,
    ), None


def _message(body: Body, what: str) -> dict:
    doc = json_body(body, what, CROSSREF)
    if not isinstance(doc, dict) or not isinstance(doc.get("message"), dict):
        raise ServiceError(f"Crossref {what}: unexpected JSON (no `message` object)",
                           service="crossref", kind="bad-body", hint="try again later")
    return doc["message"]


def parse_list(body: Body, what: str) -> tuple[SourceResult, bool]:
    message = _message(body, what)
    items = message.get("items")
    if not isinstance(items, list):
        raise ServiceError(f"Crossref {what}: unexpected JSON (no `message.items` list)",
                           service="crossref", kind="bad-body", hint="try again later")
    total = message.get("total-results")
    result = SourceResult([], total if isinstance(total, int) else None)
    for item in items:
        paper, why = paper_from_item(item)
        if paper is None:
            result.skipped.append(why)
        else:
            result.papers.append(paper)
    return result, True


def search_request(query: str, *, count: int, offset: int = 0,
                   years: tuple[int | None, int | None] | None = None) -> tuple[str, dict]:
    params: dict = {"query.bibliographic": query, "rows": min(max(count, 1), ROWS_MAX),
                    "offset": offset}
    if years and (years[0] or years[1]):
        bounds = []
        if years[0]:
            bounds.append(f"from-pub-date:{years[0]}")
        if years[1]:
            bounds.append(f"until-pub-date:{years[1]}")
        params["filter"] = ",".join(bounds)
    return _base() + "/works", polite_params(params)


def search(transport: Transport, query: str, *, limit: int,
           years: tuple[int | None, int | None] | None = None) -> SourceResult:
    """Works whose bibliographic data matches QUERY (Crossref ranks; it always finds something)."""
    what = f"search {query!r}"

    def fetch(offset: int, count: int, cursor):
        url, params = search_request(query, count=count, offset=offset, years=years)
        return transport.get(CROSSREF, url, params, parse=lambda body: parse_list(body, what),
                             what=what)

    return collect_pages(limit, ROWS_MAX, fetch)


def get_work(transport: Transport, doi: str) -> Paper:
    """One work by DOI; NotFoundError when Crossref does not know it (it answers 404)."""
    what = f"DOI {doi}"

    def parse(body: Body) -> Paper:
        paper, why = paper_from_item(_message(body, what))
        if paper is None:
            raise ServiceError(f"Crossref {what}: unusable answer ({why})", service="crossref",
                               kind="bad-body", hint="try again later")
        return paper

    url = _base() + "/works/" + quote(doi, safe="/.():;")
    return transport.get(CROSSREF, url, polite_params({}), parse=parse, what=what)
