"""arXiv Atom API (`search_query`, `id_list`, `start`, `max_results`), parsed namespace-aware.

Works for both feed layouts arXiv has served: namespaces declared inline on each element (older)
and on the root (newer), either opensearch namespace. The API's own error answer is a feed with
one entry titled `Error` whose id points at `arxiv.org/api/errors#...`: that becomes a message,
never a paper. Entries without an id (arXiv's answer for an unknown id in older feeds) are skipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .. import config
from .errors import NotFoundError, ServiceError
from .papers import Paper, arxiv_version, clean_text, make_ids, normalize_arxiv_id
from .query import arxiv_query
from .transport import ARXIV, Body, SourceResult, Transport, collect_pages

ATOM = "http://www.w3.org/2005/Atom"
ARXIV_NS = "http://arxiv.org/schemas/atom"
MAX_RESULTS = 200


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _child(elem: ET.Element, ns: str, name: str) -> ET.Element | None:
    return elem.find(f"{{{ns}}}{name}")


def _text(elem: ET.Element, ns: str, name: str) -> str | None:
    found = _child(elem, ns, name)
    return clean_text(found.text) if found is not None else None


def build_search_query(query: str, years: tuple[int | None, int | None] | None = None, *,
                       fielded: bool = True) -> str:
    """Free text becomes `all:w1 AND all:w2`; the user's field syntax is kept when `fielded`
    (they asked arXiv alone), else reduced to its words (query.arxiv_query)."""
    text = arxiv_query(query, fielded=fielded)
    if years and (years[0] or years[1]):
        lo = f"{years[0] or 1991}01010000"
        hi = f"{years[1] or 9999}12312359"
        text = f"({text}) AND submittedDate:[{lo} TO {hi}]"
    return text


def _is_error_entry(entry: ET.Element) -> bool:
    entry_id = _text(entry, ATOM, "id") or ""
    return "arxiv.org/api/errors" in entry_id or (_text(entry, ATOM, "title") == "Error"
                                                   and "arxiv.org/abs/" not in entry_id)


def error_summary(text: str) -> str:
    """The message of an arXiv error feed (`incorrect id format for abc`), else ''."""
    try:
        root = ET.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    except ET.ParseError:
        return ""
    for entry in root.iter(f"{{{ATOM}}}entry"):
        if _is_error_entry(entry):
            return _text(entry, ATOM, "summary") or "error"
    return ""


def parse_feed(body: Body, what: str) -> SourceResult:
    """An Atom feed into papers; raises ServiceError for an error feed or a body that is no feed."""
    text = body.text
    head = text.lstrip()[:200].lower()
    if head.startswith("<!doctype html") or head.startswith("<html"):
        raise ServiceError(f"arXiv {what}: got an HTML page instead of an Atom feed "
                           f"(HTTP {body.status})", service="arxiv", kind="bad-body",
                           hint="try again later; nothing was cached")
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise ServiceError(f"arXiv {what}: malformed Atom feed ({exc}; truncated?)",
                           service="arxiv", kind="bad-body",
                           hint="try again later; nothing was cached") from None
    if root.tag != f"{{{ATOM}}}feed":
        raise ServiceError(f"arXiv {what}: expected an Atom <feed>, got <{_local(root.tag)}>",
                           service="arxiv", kind="bad-body", hint="check arxiv_api_url")
    total = None
    for child in root:
        if _local(child.tag) == "totalResults" and _ns(child.tag).startswith("http://a9.com/"):
            try:
                total = int((child.text or "").strip())
            except ValueError:
                total = None
    result = SourceResult([], total)
    for entry in root.findall(f"{{{ATOM}}}entry"):
        if _is_error_entry(entry):
            message = _text(entry, ATOM, "summary") or "unspecified error"
            raise ServiceError(f"arXiv {what}: the API answered with an error: {message}",
                               service="arxiv", kind="api-error",
                               hint="check the query or id (arXiv ids look like 1706.03762 or "
                                    "hep-th/9901001)")
        paper, why = paper_from_entry(entry)
        if paper is None:
            result.skipped.append(why)
        else:
            result.papers.append(paper)
    return result


def paper_from_entry(entry: ET.Element) -> tuple[Paper | None, str | None]:
    raw_id = _text(entry, ATOM, "id")
    if not raw_id:
        return None, "an entry without an id (arXiv sends those for ids it does not know)"
    arxiv_id = normalize_arxiv_id(raw_id)
    if arxiv_id is None:
        return None, f"an entry whose id is not an arXiv abstract URL ({raw_id})"
    title = _text(entry, ATOM, "title")
    if not title:
        return None, f"arXiv {arxiv_id} without a title"
    authors = []
    for author in entry.findall(f"{{{ATOM}}}author"):
        name = _text(author, ATOM, "name")
        if name:
            authors.append(name)
    year = None
    for stamp_name in ("published", "updated"):
        stamp = _text(entry, ATOM, stamp_name) or ""
        if re.match(r"^\d{4}-", stamp):
            year = int(stamp[:4])
            break
    pdf_url = None
    for link in entry.findall(f"{{{ATOM}}}link"):
        if link.get("title") == "pdf" or link.get("type") == "application/pdf":
            # Older feeds link http://, newer https://: the same file either way.
            pdf_url = re.sub(r"^http://", "https://", link.get("href") or "") or None
    primary = _child(entry, ARXIV_NS, "primary_category")
    return Paper(
        title=title, authors=authors, year=year, venue=None,
        ids=make_ids(doi=_text(entry, ARXIV_NS, "doi"), arxiv=arxiv_id),
        abstract=_text(entry, ATOM, "summary"),
        url=f"https://arxiv.org/abs/{arxiv_id}", pdf_url=pdf_url, sources=["arxiv"],
        primary_category=(primary.get("term") or None) if primary is not None else None,
    ), None


def _base() -> str:
    return str(config.get("arxiv_api_url"))


def search_request(query: str, *, limit: int,
                   years: tuple[int | None, int | None] | None = None, start: int = 0,
                   fielded: bool = True) -> tuple[str, dict]:
    """The URL and query parameters of a search page (what the cache key is computed from)."""
    return _base(), {"search_query": build_search_query(query, years, fielded=fielded),
                     "start": start, "max_results": min(max(limit, 1), MAX_RESULTS)}


def search(transport: Transport, query: str, *, limit: int,
           years: tuple[int | None, int | None] | None = None,
           fielded: bool = True) -> SourceResult:
    """Up to `limit` papers, page after page of at most MAX_RESULTS."""
    what = f"search {query!r}"

    def fetch(offset: int, count: int, cursor):
        url, params = search_request(query, limit=count, years=years, start=offset,
                                     fielded=fielded)
        result = transport.get(ARXIV, url, params, parse=lambda body: parse_feed(body, what),
                               what=what, explain=error_summary)
        return result, True

    return collect_pages(limit, MAX_RESULTS, fetch)


def get_paper(transport: Transport, arxiv_id: str) -> Paper:
    """One paper by arXiv id; a versioned id (`2104.12255v1`) asks for that version, whose link
    the paper then carries. NotFoundError when arXiv does not know it."""
    norm = normalize_arxiv_id(arxiv_id) or arxiv_id
    version = arxiv_version(arxiv_id)
    what = f"id {norm}{version or ''}"
    result = transport.get(ARXIV, _base(), {"id_list": norm + (version or ""), "start": 0,
                                            "max_results": 1},
                           parse=lambda body: parse_feed(body, what), what=what,
                           explain=error_summary)
    for paper in result.papers:
        if paper.ids.get("arxiv") == norm:
            if version:
                paper.url = f"https://arxiv.org/abs/{norm}{version}"
                paper.pdf_url = f"https://arxiv.org/pdf/{norm}{version}"
            return paper
    raise NotFoundError(f"arXiv {what}: not found (the feed has no entry for it)",
                        service="arxiv", hint="check the id, e.g. 1706.03762 or hep-th/9901001")
