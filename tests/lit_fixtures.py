"""A real HTTP server on 127.0.0.1 that plays scripted answers in the shapes of the S2, arXiv,
OpenAlex and Crossref APIs (bodies in tests/data/lit/), and records every request it receives."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

DATA = Path(__file__).parent / "data" / "lit"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    length: int | None = None  # a Content-Length that lies (a body cut off mid-transfer)


def json_reply(name: str, status: int = 200, **kw) -> Reply:
    return Reply(status, data(name), "application/json", **kw)


def text_reply(text: str, status: int = 200, **kw) -> Reply:
    """A plain-text answer (Crossref's 404 body is `Resource not found.`)."""
    return Reply(status, text.encode(), "text/plain", **kw)


def atom_reply(name: str, status: int = 200, **kw) -> Reply:
    return Reply(status, data(name), "application/atom+xml; charset=utf-8", **kw)


@dataclass
class Seen:
    t: float
    path: str
    query: dict
    headers: dict


class LitServer:
    """Routes: path -> replies played in order (the last one repeats); 404 JSON otherwise.
    A route may also require query parameters (`when`), or cover every path under a prefix
    (`prefix=True`); the most specific route that matches answers."""

    def __init__(self):
        self.routes: dict[str, list[Reply]] = {}
        self.query_routes: list[tuple[str, dict, list[Reply]]] = []
        self.prefix_routes: list[tuple[str, list[Reply]]] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.requests.append(Seen(time.monotonic(), path, query,
                                                {k.lower(): v for k, v in self.headers.items()}))
                    queue = server._queue(path, query)
                    reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Reply(
                        404, b'{"error": "no such route in the fixture server"}')
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(reply.length or len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def route(self, path: str, *replies: Reply, when: dict | None = None,
              prefix: bool = False) -> None:
        with self._lock:
            if when:
                self.query_routes.insert(0, (path, dict(when), list(replies)))
            elif prefix:
                self.prefix_routes.insert(0, (path, list(replies)))
            else:
                self.routes[path] = list(replies)

    def _queue(self, path: str, query: dict) -> list[Reply] | None:
        for where, wanted, queue in self.query_routes:
            if where == path and all(query.get(k) == v for k, v in wanted.items()):
                return queue
        if path in self.routes:
            return self.routes[path]
        for start, queue in self.prefix_routes:
            if path.startswith(start):
                return queue
        return None

    def hits(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


S2_SEARCH = "/s2/paper/search"
ARXIV_QUERY = "/arxiv/query"
OPENALEX_WORKS = "/openalex/works"
CROSSREF_WORKS = "/crossref/works"


@pytest.fixture
def lit_server(monkeypatch):
    """The fixture server, with config pointed at it and every wait made short. `--source all`
    asks S2 and arXiv here (the scripted answers of most tests); the tests of OpenAlex and
    Crossref set RSTACK_LIT_SOURCES themselves (`all_sources`)."""
    server = LitServer()
    monkeypatch.setenv("RSTACK_S2_API_URL", server.base + "/s2")
    monkeypatch.setenv("RSTACK_ARXIV_API_URL", server.base + ARXIV_QUERY)
    monkeypatch.setenv("RSTACK_OPENALEX_API_URL", server.base + "/openalex")
    monkeypatch.setenv("RSTACK_CROSSREF_API_URL", server.base + "/crossref")
    monkeypatch.setenv("RSTACK_LIT_SOURCES", "s2,arxiv")
    for service in ("S2", "ARXIV", "OPENALEX", "CROSSREF"):
        monkeypatch.setenv(f"RSTACK_{service}_MIN_INTERVAL_S", "0")
    monkeypatch.setenv("RSTACK_LIT_TIMEOUT_S", "2")
    monkeypatch.setenv("RSTACK_LIT_MAX_RETRIES", "2")
    monkeypatch.setenv("RSTACK_LIT_BACKOFF_S", "0.01")
    yield server
    server.close()


@pytest.fixture
def standard_routes(lit_server):
    """The happy path: S2 search + arXiv search (new feed format) + S2/arXiv lookups of 1706.03762."""
    lit_server.route(S2_SEARCH, json_reply("s2_search_transformers.json"))
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_search_new_format.xml"))
    lit_server.route("/s2/paper/ARXIV:1706.03762", json_reply("s2_paper_vaswani.json"))
    return lit_server


@pytest.fixture
def all_sources(lit_server, monkeypatch):
    """Every source enabled, S2 and arXiv as in standard_routes, OpenAlex and Crossref answering
    in their shapes (bodies in tests/data/lit/openalex_*.json, crossref_*.json)."""
    monkeypatch.setenv("RSTACK_LIT_SOURCES", "s2,arxiv,openalex,crossref")
    lit_server.route(S2_SEARCH, json_reply("s2_search_transformers.json"))
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_search_new_format.xml"))
    lit_server.route(OPENALEX_WORKS, json_reply("openalex_search_transformers.json"))
    lit_server.route(CROSSREF_WORKS, json_reply("crossref_search_unrelated.json"))
    lit_server.route("/crossref/works/", text_reply("Resource not found.", 404), prefix=True)
    return lit_server
