"""Semantic Scholar Graph API: `/paper/search` and `/paper/{id}` with an explicit `fields` list.

Bodies are parsed defensively: an HTML page or truncated JSON is a ServiceError (never cached);
an item without paperId or title is skipped and counted, never guessed at. The API key comes from
the environment (S2_API_KEY) and goes only into the `x-api-key` request header.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import quote

from .. import config
from .errors import ServiceError
from .papers import Paper, clean_text, make_ids
from .transport import S2, Body, Transport

FIELDS = ("paperId,externalIds,title,abstract,year,venue,authors,citationCount,openAccessPdf,url")
MAX_LIMIT = 100
API_KEY_ENV = "S2_API_KEY"


@dataclass
class S2Result:
    papers: list[Paper]
    total: int | None = None
    skipped: list[str] = field(default_factory=list)


def _headers() -> dict[str, str]:
    key = os.environ.get(API_KEY_ENV, "").strip()
    return {"x-api-key": key} if key else {}


def _base() -> str:
    return str(config.get("s2_api_url")).rstrip("/")


def parse_json(body: Body, what: str):
    """The JSON document of a body, or a ServiceError saying what came back instead."""
    text = body.text
    stripped = text.lstrip()
    if "html" in body.content_type.lower() or stripped[:1] == "<":
        raise ServiceError(
            f"Semantic Scholar {what}: got an HTML page instead of JSON (HTTP {body.status}); "
            "the service or a proxy in between is failing",
            service="s2", kind="bad-body", hint="try again later; nothing was cached")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ServiceError(
            f"Semantic Scholar {what}: malformed JSON ({exc.msg} at char {exc.pos} of "
            f"{len(text)}; truncated?)",
            service="s2", kind="bad-body", hint="try again later; nothing was cached") from None


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
    return Paper(
        title=title,
        authors=[a for a in authors if a],
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
        venue=clean_text(item.get("venue")),
        ids=make_ids(s2=paper_id, doi=external.get("DOI"), arxiv=external.get("ArXiv")),
        abstract=clean_text(item.get("abstract")),
        url=item.get("url") if isinstance(item.get("url"), str) and item.get("url") else None,
        pdf_url=clean_text(pdf.get("url")),
        citation_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        sources=["s2"],
    ), None


def search_request(query: str, *, limit: int, year: str | None = None) -> tuple[str, dict]:
    """The URL and query parameters of a search (what the cache key is computed from)."""
    params = {"query": query, "limit": min(max(limit, 1), MAX_LIMIT), "offset": 0,
              "fields": FIELDS}
    if year:
        params["year"] = year
    return _base() + "/paper/search", params


def parse_search(body: Body, what: str) -> S2Result:
    """A /paper/search body into papers (items without paperId or title are skipped)."""
    doc = parse_json(body, what)
    if not isinstance(doc, dict) or not isinstance(doc.get("data", []), list) or (
            "data" not in doc and "total" not in doc):
        raise ServiceError(f"Semantic Scholar {what}: unexpected JSON (no `data` list)",
                           service="s2", kind="bad-body", hint="try again later")
    result = S2Result([], doc.get("total") if isinstance(doc.get("total"), int) else None)
    for item in doc.get("data", []):
        paper, why = paper_from_item(item)
        if paper is None:
            result.skipped.append(why)
        else:
            result.papers.append(paper)
    return result


def search(transport: Transport, query: str, *, limit: int, year: str | None = None) -> S2Result:
    what = f"search {query!r}"
    url, params = search_request(query, limit=limit, year=year)
    return transport.get(S2, url, params, parse=lambda body: parse_search(body, what), what=what,
                         headers=_headers())


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
