"""HTTP for the literature APIs: one requests Session, bounded retries, per-service pacing, cache.

Retries (urllib3 Retry) cover 429, 5xx, read errors and timeouts with exponential backoff
plus jitter, honour Retry-After up to a cap, and stop after `lit_max_retries`. A connection that
cannot be made (DNS failure, refused) is retried once, at once: without network, waiting does not
help, and the user should hear so in seconds, not a minute. Every call has a timeout. Pacing keeps `<service>_min_interval_s` between requests to one service, across processes
too (a tiny state file under a lock), because a skill runs `rstack lit ...` many times in a row.
Request headers are never logged, cached or put in a message: the S2 API key travels in one.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from .. import __version__, atomic, config
from .cache import ResponseCache, lit_cache_dir
from .errors import NotFoundError, OfflineMiss, ServiceError
from .papers import Paper

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A failed DNS lookup or a refused connection is retried this often (urllib3 does not back off
# before a first retry), not `lit_max_retries` times with backoff: that took a minute offline.
CONNECT_RETRIES = 1
USER_AGENT = f"rstack/{__version__} (research tooling; literature search)"


@dataclass(frozen=True)
class Service:
    name: str  # s2 | arxiv: also the config prefix and the pacing slot
    label: str  # how messages name it

    @property
    def min_interval_s(self) -> float:
        return float(config.get(f"{self.name}_min_interval_s"))


S2 = Service("s2", "Semantic Scholar")
ARXIV = Service("arxiv", "arXiv")
OPENALEX = Service("openalex", "OpenAlex")
CROSSREF = Service("crossref", "Crossref")
SERVICES = {service.name: service for service in (S2, ARXIV, OPENALEX, CROSSREF)}
# Failures that will not go away within one command: after one, the service is skipped for the
# rest of the command (a verify --resolve of 300 entries must not wait out 300 rate limits).
DOWN_KINDS = frozenset({"rate-limited", "unreachable", "timeout"})


@dataclass(frozen=True)
class Body:
    """A response body handed to a parser: from the network or from the cache."""

    status: int
    content_type: str
    text: str
    url: str
    from_cache: bool


def json_body(body: Body, what: str, service: Service):
    """The JSON document of a body, or a ServiceError saying what came back instead."""
    text = body.text
    if "html" in body.content_type.lower() or text.lstrip()[:1] == "<":
        raise ServiceError(
            f"{service.label} {what}: got an HTML page instead of JSON (HTTP {body.status}); "
            "the service or a proxy in between is failing",
            service=service.name, kind="bad-body", hint="try again later; nothing was cached")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ServiceError(
            f"{service.label} {what}: malformed JSON ({exc.msg} at char {exc.pos} of "
            f"{len(text)}; truncated?)",
            service=service.name, kind="bad-body", hint="try again later; nothing was cached"
        ) from None


@dataclass
class SourceResult:
    """One answer of a literature source (S2, arXiv, OpenAlex, Crossref): the papers it parsed,
    the total it reports, and what it skipped (unparseable items)."""

    papers: list[Paper]
    total: int | None = None
    skipped: list[str] = field(default_factory=list)


def collect_pages(limit: int, page_size: int, fetch: Callable[[int, int, Any], tuple[Any, Any]]):
    """Ask page after page until `limit` papers, a short page, or no next page.

    `fetch(offset, count, cursor)` returns (result, next): result has `papers`, `total` and
    `skipped`; `next` is the cursor of the next page (anything truthy for offset paging), or
    None when the source says there is none. Returns the first result, holding every page.
    """
    first = None
    offset, cursor = 0, None
    while True:
        count = min(page_size, limit - offset)
        result, cursor = fetch(offset, count, cursor)
        got = len(result.papers) + len(result.skipped)
        if first is None:
            first = result
        else:
            first.papers.extend(result.papers)
            first.skipped.extend(result.skipped)
        offset += got
        if got < count or not cursor or offset >= limit or (
                first.total is not None and offset >= first.total):
            break
    del first.papers[limit:]
    return first


def polite_params(params: dict) -> dict:
    """`params` plus the configured contact (`lit_mailto`) as `mailto`: OpenAlex's and Crossref's
    polite pools."""
    mailto = str(config.get("lit_mailto")).strip()
    if mailto:
        params["mailto"] = mailto
    return params


def _retry_class():
    from urllib3.exceptions import InvalidHeader
    from urllib3.util.retry import Retry

    class BoundedRetry(Retry):
        """Retry whose unparseable Retry-After falls back to backoff instead of raising."""

        def parse_retry_after(self, retry_after: str) -> float:
            try:
                return super().parse_retry_after(retry_after)
            except InvalidHeader:
                return 0.0

    return BoundedRetry


def build_session(*, max_retries: int, backoff_s: float, retry_after_max_s: float):
    """A requests Session whose adapters retry 429/5xx/timeouts, boundedly, with jitter; a
    connection that cannot be made is retried at most CONNECT_RETRIES times."""
    import requests
    from requests.adapters import HTTPAdapter

    retry = _retry_class()(
        total=max_retries, connect=min(max_retries, CONNECT_RETRIES), read=max_retries,
        status=max_retries, other=0,
        status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
        backoff_factor=backoff_s, backoff_jitter=backoff_s, backoff_max=max(backoff_s * 16, 1.0),
        respect_retry_after_header=True, retry_after_max=int(max(retry_after_max_s, 0)),
        raise_on_status=False, raise_on_redirect=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=2)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class Pacer:
    """At least `interval` seconds between the starts of two requests to one service."""

    def __init__(self, state_path: Path | None):
        self.state_path = state_path
        self._memory: dict[str, float] = {}

    def wait(self, slot: str, interval: float) -> float:
        """Sleep as needed, then mark now as the slot's last request; returns seconds slept."""
        if interval <= 0:
            return 0.0
        lock_fd = self._open_lock()
        try:
            state = self._read()
            last = max(state.get(slot, 0.0), self._memory.get(slot, 0.0))
            delay = min(interval, last + interval - time.time())
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            self._memory[slot] = now
            state[slot] = now
            self._write(state)
            return max(delay, 0.0)
        finally:
            if lock_fd is not None:
                os.close(lock_fd)

    def _open_lock(self) -> int | None:
        if self.state_path is None:
            return None
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state_path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd
        except OSError:
            return None  # a read-only project still paces within this process

    def _read(self) -> dict[str, float]:
        if self.state_path is None:
            return {}
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _write(self, state: dict[str, float]) -> None:
        if self.state_path is None:
            return
        try:
            atomic.write_text(self.state_path, json.dumps(state))
        except OSError:
            pass


def _error_chain(exc: BaseException):
    """The errors a requests/urllib3 error wraps (reason, args, cause, context), exc first;
    a NewConnectionError's own chain is not followed (it is what it says)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    seen = 0
    stack: list[Any] = [exc]
    while stack and seen < 20:
        item = stack.pop()
        seen += 1
        yield item
        if isinstance(item, NewConnectionError):
            continue
        if isinstance(item, MaxRetryError) and item.reason is not None:
            stack.append(item.reason)
        if isinstance(item, BaseException):
            stack.extend(arg for arg in item.args if isinstance(arg, BaseException))
            for linked in (item.__cause__, item.__context__):
                if linked is not None:
                    stack.append(linked)


def _timeout_in(exc: BaseException) -> bool:
    """Whether a requests/urllib3 error chain is, at bottom, a timeout."""
    import requests
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    # urllib3 files a refused connection under ConnectTimeoutError; it is not one
    return any(isinstance(item, (requests.Timeout, Urllib3Timeout))
               and not isinstance(item, NewConnectionError) for item in _error_chain(exc))


def _connect_failure(exc: BaseException) -> str | None:
    """Why no connection could be made ("DNS lookup failed", "connection refused", ...), or None
    when the error chain holds no failed connection."""
    import socket

    from urllib3.exceptions import NameResolutionError, NewConnectionError

    for item in _error_chain(exc):
        if isinstance(item, (NameResolutionError, socket.gaierror)):
            return "DNS lookup failed"
        if isinstance(item, NewConnectionError):
            text = str(item).lower()
            if "refused" in text:
                return "connection refused"
            if "name or service not known" in text or "resolution" in text:
                return "DNS lookup failed"
            return "no route to the host" if "unreachable" in text else "connection failed"
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
    return None


def _api_message(text: str) -> str:
    """The error text an API put in a JSON body ({"error": ...} or {"message": ...}), if any."""
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    if isinstance(data, dict):
        for name in ("error", "message"):
            if isinstance(data.get(name), str):
                return data[name][:300]
    return ""


class Transport:
    """Cached, paced, retrying GETs for one project. `network_calls` counts requests sent."""

    def __init__(self, root: Path, *, offline: bool = False, session=None):
        self.root = Path(root)
        self.offline = offline
        self.timeout_s = float(config.get("lit_timeout_s"))
        self.max_retries = int(config.get("lit_max_retries"))
        self.cache = ResponseCache(self.root, float(config.get("lit_cache_ttl_s")))
        self.pacer = Pacer(lit_cache_dir(self.root) / "pacing.json")
        self._session = session
        self.network_calls = 0
        self.cache_hits = 0
        self.warnings: list[str] = []
        self.down: dict[str, ServiceError] = {}  # service name -> the failure that took it out

    @property
    def session(self):
        if self._session is None:
            self._session = build_session(
                max_retries=self.max_retries, backoff_s=float(config.get("lit_backoff_s")),
                retry_after_max_s=float(config.get("lit_retry_after_max_s")))
        return self._session

    def get(self, service: Service, url: str, params: Mapping[str, Any], *,
            parse: Callable[[Body], T], what: str,
            headers: Mapping[str, str] | None = None,
            explain: Callable[[str], str] | None = None) -> T:
        """GET url?params and return parse(body); cache first, network unless offline.

        `parse` raises ServiceError for a body it cannot use; such a body is never cached.
        `what` names the request in messages ("search 'graph neural networks'"); `explain`
        pulls the service's own error text out of an error body (default: JSON error/message).
        """
        cached = self.cache.lookup("GET", url, params, any_age=self.offline)
        if cached is not None:
            try:
                value = parse(Body(cached.status, cached.content_type, cached.body, url, True))
            except ServiceError:
                value = None  # an unusable cached body is a miss; online, it is fetched again
            else:
                self.cache_hits += 1
                return value
        if self.offline:
            raise OfflineMiss(
                f"{service.label} {what}: no cached answer in {self.cache.dir} (--offline "
                "answers only from the cache)",
                service=service.name,
                hint="run the same command once without --offline (network needed), "
                     "or install a cache snapshot into .rstack/cache/lit/",
            )
        if service.name in self.down:
            first = self.down[service.name]
            raise ServiceError(f"{service.label} {what}: skipped ({first.kind} earlier in this "
                               "command)", service=service.name, kind=first.kind, hint=first.hint)
        try:
            response = self._send(service, url, params, what, headers, explain or _api_message)
        except ServiceError as exc:
            if exc.kind in DOWN_KINDS:
                self.down[service.name] = exc
            raise
        content_type = response.headers.get("Content-Type", "")
        body = Body(response.status_code, content_type, response.text, url, False)
        value = parse(body)
        try:
            self.cache.store("GET", url, params, status=response.status_code,
                             content_type=content_type, body=response.text)
        except OSError as exc:
            self.warnings.append(f"could not write the response cache ({exc.strerror or exc})")
        return value

    def _send(self, service: Service, url: str, params: Mapping[str, Any], what: str,
              headers: Mapping[str, str] | None, explain: Callable[[str], str]):
        import requests

        session = self.session  # built before pacing, so the mark is taken right before sending
        self.pacer.wait(service.name, service.min_interval_s)
        self.network_calls += 1
        tries = self.max_retries + 1
        try:
            response = session.get(url, params=dict(params), headers=dict(headers or {}),
                                        timeout=(min(self.timeout_s, 10.0), self.timeout_s),
                                        allow_redirects=True)
        except (requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            raise ServiceError(
                f"{service.label} {what}: the answer broke off mid-body ({type(exc).__name__}); "
                "nothing was cached", service=service.name, kind="bad-body",
                hint="try again later") from None
        except requests.RequestException as exc:
            if _timeout_in(exc):
                raise ServiceError(
                    f"{service.label} {what}: no answer within {self.timeout_s:g} s "
                    f"({tries} attempt(s))",
                    service=service.name, kind="timeout",
                    hint=f"try again later, or raise the limit: rstack config set lit_timeout_s "
                         f"{max(self.timeout_s * 2, 60):g}") from None
            failure = _connect_failure(exc)
            if failure:
                attempts = min(self.max_retries, CONNECT_RETRIES) + 1
                reason = f"{failure}, {attempts} attempt(s)"
            else:
                reason = f"{type(exc).__name__}, {tries} attempt(s)"
            raise ServiceError(
                f"{service.label} {what}: could not connect to {_host(url)} ({reason}): "
                "the network or the API is unreachable",
                service=service.name, kind="unreachable",
                hint=f"check the network, or the base URL: rstack config get {service.name}_api_url; "
                     "or re-run with --offline to answer from the response cache") from None
        if "charset=" not in response.headers.get("Content-Type", "").lower():
            response.encoding = "utf-8"  # both APIs send UTF-8; never let requests guess
        status = response.status_code
        if status == 429:
            raise ServiceError(
                f"{service.label} {what}: still rate limited (HTTP 429) after {tries} attempt(s)",
                service=service.name, kind="rate-limited",
                hint=("wait a minute and re-run; an S2_API_KEY in the environment raises the limit"
                      if service is S2 else "wait a minute and re-run") +
                     f"; or slow down: rstack config set {service.name}_min_interval_s "
                     f"{max(service.min_interval_s * 2, 3):g}")
        if status == 404:
            detail = explain(response.text)
            raise NotFoundError(
                f"{service.label} {what}: not found (HTTP 404)" + (f": {detail}" if detail else ""),
                service=service.name, hint="check the id (forms: S2 id, DOI:..., ARXIV:..., "
                                           "or an arXiv id such as 1706.03762)")
        if status >= 400:
            detail = explain(response.text)
            retried = f" after {tries} attempt(s)" if status in RETRY_STATUSES else ""
            raise ServiceError(
                f"{service.label} {what}: HTTP {status}{retried}" + (f": {detail}" if detail else ""),
                service=service.name, kind="http-error",
                hint="a 5xx is the service's fault: try again later" if status >= 500
                     else "the request was refused as sent; check the query and options")
        return response


def _host(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).netloc or url
