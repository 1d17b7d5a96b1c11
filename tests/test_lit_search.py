"""`rstack lit search|resolve` against a real HTTP server on 127.0.0.1 in the APIs' shapes:
merge and dedupe, keys, the ledger, the cache, pacing, retries, timeouts and bad bodies."""

from __future__ import annotations

import json
import socket
import time

import pytest

from lit_fixtures import (ARXIV_QUERY, S2_SEARCH, Reply, atom_reply, data, json_reply,  # noqa: F401
                          lit_server, standard_routes)
from rstack.ledger import Ledger
from rstack.literature import arxiv, s2
from rstack.literature.keys import assign_keys, base_key
from rstack.literature.papers import Paper
from rstack.literature.transport import Body


def papers_in(project) -> list[dict]:
    return Ledger(project, "lit-review").records("paper")


def searches_in(project) -> list[dict]:
    return Ledger(project, "lit-review").records("search")


def search_json(cli, *args):
    result = cli("lit", "search", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- the happy path ----------------------------------------------------------------------------

def test_search_merges_dedupes_and_records(cli, project, standard_routes):
    out = search_json(cli, "efficient transformers")
    keys = [p["key"] for p in out["papers"]]
    assert keys == ["vaswani2017attention", "devlin2019bert", "wang2020linformer",
                    "tay2020efficient", "anonndsparsity", "beltagy2020longformer"]
    by_key = {p["key"]: p for p in out["papers"]}
    # arXiv id (1706.03762v7 vs S2's ArXiv 1706.03762), DOI (10.1145/3530811), title + year.
    assert by_key["vaswani2017attention"]["sources"] == ["s2", "arxiv"]
    assert by_key["tay2020efficient"]["sources"] == ["s2", "arxiv"]
    assert by_key["tay2020efficient"]["ids"] == {"s2": "7e5709d81558d3ef4265de29ea75931afeb1f2dd",
                                                 "doi": "10.1145/3530811", "arxiv": "2009.06732",
                                                 "openalex": None}
    assert by_key["wang2020linformer"]["ids"]["arxiv"] == "2006.04768"
    assert by_key["wang2020linformer"]["sources"] == ["s2", "arxiv"]
    # S2's null abstract is filled from arXiv; S2's venue and citation count are kept.
    assert by_key["tay2020efficient"]["abstract"].startswith("Transformer model architectures")
    assert by_key["vaswani2017attention"]["venue"] == "Neural Information Processing Systems"
    assert by_key["vaswani2017attention"]["citation_count"] == 151234
    # Missing authors/year/abstract stay missing; the title-less S2 item is skipped, not guessed.
    assert by_key["anonndsparsity"]["year"] is None and by_key["anonndsparsity"]["authors"] == []
    assert by_key["anonndsparsity"]["abstract"] is None
    assert any("without a title" in s for s in out["skipped"])
    assert out["counts"] == {"s2": 5, "s2_total": 6512, "arxiv": 4, "arxiv_total": 4123,
                             "merged": 6, "new": 6}
    assert out["recorded"] == 6
    records = papers_in(project)
    assert [r["key"] for r in records] == keys
    assert records[0]["query"] == "efficient transformers"
    assert records[0]["ids"] == {"s2": "204e3073870fae3d05bcbc2f6a8e263d9b72e776", "doi": None,
                                 "arxiv": "1706.03762", "openalex": None}
    [search] = searches_in(project)
    assert search["query"] == "efficient transformers" and search["source"] == "all"
    assert search["counts"]["new"] == 6 and search["keys"] == keys and search["errors"] == []


def test_requests_carry_explicit_fields_and_arxiv_query(cli, project, standard_routes):
    search_json(cli, "efficient transformers", "--limit", "7", "--year", "2017-2020")
    [s2_hit] = standard_routes.hits(S2_SEARCH)
    assert s2_hit.query == {"query": "efficient transformers", "limit": "7", "offset": "0",
                            "fields": s2.FIELDS, "year": "2017-2020"}
    assert s2.FIELDS == ("paperId,externalIds,title,abstract,year,venue,authors,citationCount,"
                         "openAccessPdf,url,publicationTypes,journal,publicationVenue")
    [ax_hit] = standard_routes.hits(ARXIV_QUERY)
    assert ax_hit.query == {
        "search_query": "(all:efficient AND all:transformers) AND "
                        "submittedDate:[201701010000 TO 202012312359]",
        "start": "0", "max_results": "7"}
    assert ax_hit.headers["user-agent"].startswith("rstack/")


def test_year_filter_drops_merged_papers_outside_the_range(cli, project, standard_routes):
    out = search_json(cli, "efficient transformers", "--year", "2020-2020")
    assert "vaswani2017attention" not in [p["key"] for p in out["papers"]]
    assert "anonndsparsity" in [p["key"] for p in out["papers"]]  # unknown year is kept


def test_found_again_adds_no_duplicate_and_keeps_keys(cli, project, standard_routes):
    first = search_json(cli, "efficient transformers")
    # Second search misses the cache on purpose (another limit), so the API answers again.
    second = search_json(cli, "efficient transformers", "--limit", "5")
    assert [p["key"] for p in second["papers"]] == [p["key"] for p in first["papers"]]
    assert second["recorded"] == 0 and all(not p["new"] for p in second["papers"])
    assert len(papers_in(project)) == 6
    assert [s["counts"]["new"] for s in searches_in(project)] == [6, 0]


def test_keys_are_the_same_in_a_fresh_project(cli, tmp_path, standard_routes, monkeypatch):
    runs = []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        monkeypatch.setenv("RSTACK_PROJECT", str(root))
        runs.append([p["key"] for p in search_json(cli, "efficient transformers")["papers"]])
    assert runs[0] == runs[1]


def test_source_s2_only_and_arxiv_only(cli, project, standard_routes):
    out = search_json(cli, "efficient transformers", "--source", "arxiv")
    assert [p["sources"] for p in out["papers"]] == [["arxiv"]] * 4
    assert standard_routes.hits(S2_SEARCH) == []
    out = search_json(cli, "efficient transformers", "--source", "s2")
    # Papers arXiv already recorded are recognized through the S2 record's ids.
    assert out["recorded"] == 2  # BERT and the sparsity paper are new
    assert len(papers_in(project)) == 6


def test_human_output_is_a_table(cli, project, standard_routes):
    result = cli("lit", "search", "efficient transformers")
    assert result.exit_code == 0, result.output
    assert "vaswani2017attention" in result.stdout and "s2,arxiv" in result.stdout
    assert "recorded 6 new paper(s)" in result.stdout
    assert "warning: s2: skipped paper aa11bb22cc33dd44ee55ff6677889900aabbccdd without a title" \
        in result.stderr


# -- keys ---------------------------------------------------------------------------------------

def test_base_key_rules():
    assert base_key(Paper("The Transformer: a Model", ["Zoë van der Berg"], 2021)) \
        == "vanderberg2021transformer"
    assert base_key(Paper("On the 3 Limits", ["Smith, John"], None)) == "smithndlimits"
    assert base_key(Paper("Über Alles", [], 1999)) == "anon1999uber"


def test_collisions_get_suffixes_in_a_stable_order():
    def batch(order):
        papers = [Paper("Deep Nets", ["A. Smith"], 2020, ids={"s2": sid, "doi": None,
                                                               "arxiv": None})
                  for sid in order]
        assign_keys(papers, taken={"smith2020deep"})
        return {p.ids["s2"]: p.key for p in papers}

    forward = batch(["aaa", "bbb", "ccc"])
    assert forward == batch(["ccc", "aaa", "bbb"])  # API ranking does not change keys
    assert sorted(forward.values()) == ["smith2020deepb", "smith2020deepc", "smith2020deepd"]


def test_colliding_papers_across_searches_keep_their_first_key(cli, project, lit_server):
    item = json.loads(data("s2_search_transformers.json"))["data"][1]  # BERT
    other = dict(item, paperId="f" * 40, externalIds={"CorpusId": 1},
                 title="BERT Rediscovered")
    lit_server.route(S2_SEARCH, Reply(200, json.dumps({"total": 1, "offset": 0,
                                                       "data": [item]}).encode()))
    assert search_json(cli, "bert", "--source", "s2")["papers"][0]["key"] == "devlin2019bert"
    lit_server.route(S2_SEARCH, Reply(200, json.dumps({"total": 2, "offset": 0,
                                                       "data": [other, item]}).encode()))
    out = search_json(cli, "bert again", "--source", "s2")
    assert [p["key"] for p in out["papers"]] == ["devlin2019bertb", "devlin2019bert"]


# -- the cache ----------------------------------------------------------------------------------

def test_identical_search_makes_zero_network_calls(cli, project, standard_routes):
    first = search_json(cli, "efficient transformers")
    assert first["network_calls"] == 2 and first["cache_hits"] == 0
    assert len(standard_routes.hits()) == 2
    second = search_json(cli, "efficient transformers")
    assert second["network_calls"] == 0 and second["cache_hits"] == 2
    assert len(standard_routes.hits()) == 2
    files = sorted((project / ".rstack" / "cache" / "lit").glob("*.json"))
    assert len([f for f in files if f.name != "pacing.json"]) == 2


def test_cache_ttl_expires(cli, project, standard_routes, monkeypatch):
    search_json(cli, "efficient transformers")
    monkeypatch.setenv("RSTACK_LIT_CACHE_TTL_S", "0")
    time.sleep(0.01)
    search_json(cli, "efficient transformers")
    assert len(standard_routes.hits()) == 4


def test_offline_answers_from_cache_only(cli, project, standard_routes):
    search_json(cli, "efficient transformers")
    calls = len(standard_routes.hits())
    out = search_json(cli, "efficient transformers", "--offline")
    assert out["offline"] and out["cache_hits"] == 2 and len(standard_routes.hits()) == calls
    result = cli("lit", "search", "never asked before", "--offline")
    assert result.exit_code == 1
    assert "failed on every source" in result.output and "no cached answer" in result.output
    assert "--offline answers only from the cache" in result.output
    assert "nothing was recorded" in result.output
    assert len(standard_routes.hits()) == calls


def test_offline_stale_cache_is_still_used(cli, project, standard_routes, monkeypatch):
    search_json(cli, "efficient transformers")
    monkeypatch.setenv("RSTACK_LIT_CACHE_TTL_S", "0")
    out = search_json(cli, "efficient transformers", "--offline")
    assert out["cache_hits"] == 2 and len(standard_routes.hits()) == 2


# -- pacing ----------------------------------------------------------------------------------

def test_pacing_keeps_min_interval_per_service(cli, project, standard_routes, monkeypatch):
    monkeypatch.setenv("RSTACK_ARXIV_MIN_INTERVAL_S", "0.5")
    for n in range(3):  # three separate commands: pacing holds across processes' state file
        search_json(cli, "efficient transformers", "--source", "arxiv", "--limit", str(n + 1))
    times = [hit.t for hit in standard_routes.hits(ARXIV_QUERY)]
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Measured where the requests arrive, so allow for send-latency noise on a loaded machine.
    assert all(gap >= 0.45 for gap in gaps), gaps


# -- the API key --------------------------------------------------------------------------------

def test_s2_api_key_is_sent_and_never_written(cli, project, standard_routes, monkeypatch,
                                              tmp_path):
    secret = "s2-key-0123456789-SECRET"
    monkeypatch.setenv("S2_API_KEY", secret)
    result = cli("lit", "search", "efficient transformers", "--json")
    assert result.exit_code == 0
    assert standard_routes.hits(S2_SEARCH)[0].headers["x-api-key"] == secret
    assert "x-api-key" not in standard_routes.hits(ARXIV_QUERY)[0].headers
    assert secret not in result.output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    # The cache key does not depend on the key: without it, the same search is a cache hit.
    monkeypatch.delenv("S2_API_KEY")
    assert search_json(cli, "efficient transformers")["cache_hits"] == 2


# -- bad servers ---------------------------------------------------------------------------------

def test_429_with_retry_after_is_honoured(cli, project, lit_server):
    lit_server.route(S2_SEARCH,
                     json_reply("s2_rate_limited.json", 429, headers={"Retry-After": "1"}),
                     json_reply("s2_search_transformers.json"))
    start = time.monotonic()
    out = search_json(cli, "efficient transformers", "--source", "s2")
    assert time.monotonic() - start >= 0.95
    assert len(lit_server.hits(S2_SEARCH)) == 2 and out["recorded"] == 5
    gap = lit_server.hits(S2_SEARCH)[1].t - lit_server.hits(S2_SEARCH)[0].t
    assert gap >= 0.95


def test_429_without_retry_after_backs_off_then_succeeds(cli, project, lit_server):
    lit_server.route(S2_SEARCH, json_reply("s2_rate_limited.json", 429),
                     json_reply("s2_rate_limited.json", 429),
                     json_reply("s2_search_transformers.json"))
    out = search_json(cli, "efficient transformers", "--source", "s2")
    assert len(lit_server.hits(S2_SEARCH)) == 3 and out["recorded"] == 5


def test_500_then_success(cli, project, lit_server):
    lit_server.route(S2_SEARCH, Reply(500, b'{"message": "Internal Server Error"}'),
                     json_reply("s2_search_transformers.json"))
    out = search_json(cli, "efficient transformers", "--source", "s2")
    assert len(lit_server.hits(S2_SEARCH)) == 2 and out["recorded"] == 5


def test_sustained_429_is_bounded_and_says_what_was_recorded(cli, project, lit_server):
    lit_server.route(S2_SEARCH, json_reply("s2_rate_limited.json", 429))
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_search_new_format.xml"))
    result = cli("lit", "search", "efficient transformers")
    assert result.exit_code == 0
    assert len(lit_server.hits(S2_SEARCH)) == 3  # 1 + lit_max_retries (2)
    assert ("skipped s2 (rate-limited): Semantic Scholar search 'efficient transformers': "
            "still rate limited "
            "(HTTP 429) after 3 attempt(s)") in result.stderr
    assert "S2_API_KEY" in result.stderr
    assert "recorded 4 new paper(s)" in result.stdout
    [search] = searches_in(project)
    assert search["errors"][0]["kind"] == "rate-limited" and search["counts"]["s2"] is None
    # Only S2 asked, and it keeps refusing: exit 1, nothing recorded, no traceback.
    result = cli("lit", "search", "something else", "--source", "s2")
    assert result.exit_code == 1
    assert "still rate limited (HTTP 429) after 3 attempt(s)" in result.output
    assert "nothing was recorded" in result.output and "Traceback" not in result.output


def test_huge_retry_after_is_capped(cli, project, lit_server, monkeypatch):
    monkeypatch.setenv("RSTACK_LIT_RETRY_AFTER_MAX_S", "0")
    monkeypatch.setenv("RSTACK_LIT_MAX_RETRIES", "1")
    lit_server.route(S2_SEARCH, json_reply("s2_rate_limited.json", 429,
                                           headers={"Retry-After": "3600"}))
    start = time.monotonic()
    result = cli("lit", "search", "x", "--source", "s2")
    assert result.exit_code == 1 and time.monotonic() - start < 5
    assert "still rate limited" in result.output


def test_slow_response_times_out(cli, project, lit_server, monkeypatch):
    monkeypatch.setenv("RSTACK_LIT_TIMEOUT_S", "0.3")
    monkeypatch.setenv("RSTACK_LIT_MAX_RETRIES", "1")
    lit_server.route(S2_SEARCH, json_reply("s2_search_transformers.json", delay_s=1.0))
    start = time.monotonic()
    result = cli("lit", "search", "efficient transformers", "--source", "s2")
    assert result.exit_code == 1
    assert time.monotonic() - start < 3
    assert "no answer within 0.3 s (2 attempt(s))" in result.output
    assert "rstack config set lit_timeout_s" in result.output
    assert len(lit_server.hits(S2_SEARCH)) == 2


def test_unreachable_server(cli, project, monkeypatch):
    monkeypatch.setenv("RSTACK_S2_API_URL", "http://127.0.0.1:9/s2")  # discard port: refused
    monkeypatch.setenv("RSTACK_LIT_MAX_RETRIES", "0")
    monkeypatch.setenv("RSTACK_S2_MIN_INTERVAL_S", "0")
    result = cli("lit", "search", "x", "--source", "s2")
    assert result.exit_code == 1
    assert "could not connect to 127.0.0.1:9" in result.output
    assert "rstack config get s2_api_url" in result.output


def test_refused_connection_fails_fast_with_default_retries(cli, project, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on once closed: refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RSTACK_S2_API_URL", f"http://127.0.0.1:{port}/s2")
    monkeypatch.setenv("RSTACK_ARXIV_API_URL", f"http://127.0.0.1:{port}/arxiv")
    monkeypatch.setenv("RSTACK_LIT_MAX_RETRIES", "4")  # the defaults, which took ~60 s offline
    monkeypatch.setenv("RSTACK_LIT_BACKOFF_S", "2")
    monkeypatch.setenv("RSTACK_S2_MIN_INTERVAL_S", "0")
    monkeypatch.setenv("RSTACK_ARXIV_MIN_INTERVAL_S", "0")
    start = time.monotonic()
    result = cli("lit", "search", "x")
    assert time.monotonic() - start < 10  # two attempts per source, no backoff: well under 1 s
    assert result.exit_code == 1
    for label, path in (("Semantic Scholar", "s2"), ("arXiv", "arxiv")):
        assert (f"{label} search 'x': could not connect to 127.0.0.1:{port} (connection refused, "
                "2 attempt(s)): the network or the API is unreachable") in result.output, path
    assert "nothing was recorded" in result.output
    assert "re-run with --offline to answer from the response cache" in result.output


def test_only_connection_failures_lose_their_retries():
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    from rstack.literature.transport import _connect_failure, build_session

    retry = build_session(max_retries=4, backoff_s=2, retry_after_max_s=60).get_adapter(
        "https://api.example.org").max_retries
    assert (retry.total, retry.connect, retry.read, retry.status) == (4, 1, 4, 4)
    assert build_session(max_retries=0, backoff_s=2, retry_after_max_s=60).get_adapter(
        "https://x").max_retries.connect == 0
    dns = NameResolutionError("api.example.org", None, socket.gaierror(-2, "Name unknown"))
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] "
                                       "Connection refused")
    assert _connect_failure(dns) == "DNS lookup failed"
    assert _connect_failure(refused) == "connection refused"
    assert _connect_failure(TimeoutError("read timed out")) is None


@pytest.mark.parametrize("reply, expected", [
    (Reply(200, data("html_error_page.html"), "text/html"),
     "got an HTML page instead of JSON (HTTP 200)"),
    (Reply(200, data("s2_search_truncated.json")), "malformed JSON"),
    (Reply(200, b'{"unexpected": true}'), "unexpected JSON (no `data` list)"),
    (Reply(400, b'{"error": "Unrecognized or unsupported fields: [bogus]"}'),
     "HTTP 400: Unrecognized or unsupported fields: [bogus]"),
])
def test_bad_s2_bodies_give_a_message_and_are_not_cached(cli, project, lit_server, reply,
                                                         expected):
    lit_server.route(S2_SEARCH, reply)
    result = cli("lit", "search", "efficient transformers", "--source", "s2")
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output
    cache = project / ".rstack" / "cache" / "lit"
    assert not [f for f in cache.glob("*.json") if f.name != "pacing.json"]
    # The next try goes to the network again and succeeds.
    lit_server.route(S2_SEARCH, json_reply("s2_search_transformers.json"))
    assert search_json(cli, "efficient transformers", "--source", "s2")["recorded"] == 5


def test_arxiv_error_feed_is_a_message_not_a_paper(cli, project, lit_server):
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_error.xml", 400))
    result = cli("lit", "search", "ti:(", "--source", "arxiv")
    assert result.exit_code == 1
    assert "arXiv search 'ti:(': HTTP 400: incorrect id format for abc" in result.output
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_error.xml", 200))
    result = cli("lit", "search", "ti:(", "--source", "arxiv")
    assert result.exit_code == 1
    assert "the API answered with an error: incorrect id format for abc" in result.output
    assert papers_in(project) == []


def test_empty_results(cli, project, lit_server):
    lit_server.route(S2_SEARCH, json_reply("s2_search_empty.json"))
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_empty.xml"))
    out = search_json(cli, "nothing matches this")
    assert out["papers"] == [] and out["recorded"] == 0
    assert searches_in(project)[0]["counts"]["merged"] == 0


def test_bad_year_is_a_usage_error(cli, project):
    result = cli("lit", "search", "x", "--year", "2019-20")
    assert result.exit_code == 2 and "is not a year range" in result.output


# -- the arXiv feed formats ------------------------------------------------------------------------

def _feed(name):
    return arxiv.parse_feed(Body(200, "application/atom+xml", data(name).decode(), "u", False), "t")


def test_old_and_new_feed_formats_give_the_same_paper():
    new = _feed("arxiv_search_new_format.xml")
    old = _feed("arxiv_search_old_format.xml")
    assert new.total == old.total == 4123
    a, b = new.papers[0], old.papers[0]
    assert a.as_json() == b.as_json()
    assert a.ids == {"s2": None, "doi": None, "arxiv": "1706.03762", "openalex": None}
    assert a.year == 2017 and a.primary_category == "cs.CL"
    assert a.pdf_url.endswith("/pdf/1706.03762v7")
    assert a.title == "Attention Is All You Need"
    assert a.abstract.startswith("The dominant sequence") and "\n" not in a.abstract
    # The old feed's id-less entry is skipped; the old-style id and arxiv:doi are read.
    assert len(old.papers) == 2 and old.skipped == [
        "an entry without an id (arXiv sends those for ids it does not know)"]
    assert old.papers[1].ids == {"s2": None, "doi": "10.1016/s0550-3213(99)00001-1",
                                 "arxiv": "hep-th/9901001", "openalex": None}
    assert old.papers[1].authors == ["Jan van der Berg"]
    new_linformer = new.papers[1]
    assert new_linformer.title == "Linformer: Self-Attention with Linear Complexity"


def test_truncated_and_html_feeds():
    text = data("arxiv_search_new_format.xml").decode()[:900]
    with pytest.raises(Exception) as info:
        arxiv.parse_feed(Body(200, "application/atom+xml", text, "u", False), "search 'x'")
    assert "malformed Atom feed" in str(info.value)
    with pytest.raises(Exception) as info:
        arxiv.parse_feed(Body(503, "text/html", data("html_error_page.html").decode(), "u",
                              False), "search 'x'")
    assert "HTML page instead of an Atom feed" in str(info.value)


# -- resolve ---------------------------------------------------------------------------------------

def test_resolve_arxiv_id_asks_both_and_records_once(cli, project, lit_server):
    lit_server.route("/s2/paper/ARXIV:1706.03762", json_reply("s2_paper_vaswani.json"))
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_id_vaswani.xml"))
    result = cli("lit", "resolve", "arXiv:1706.03762v5", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [p["key"] for p in out["papers"]] == ["vaswani2017attention"]
    assert out["papers"][0]["sources"] == ["s2", "arxiv"] and out["recorded"] == 1
    # The version goes to arXiv (that version is resolved); S2 and the identity have none.
    assert lit_server.hits(ARXIV_QUERY)[0].query["id_list"] == "1706.03762v5"
    assert lit_server.hits("/s2/paper/ARXIV:1706.03762")[0].query == {"fields": s2.FIELDS}
    assert out["papers"][0]["ids"]["arxiv"] == "1706.03762"
    records = papers_in(project)
    assert len(records) == 1 and records[0]["query"] == "resolve:arXiv:1706.03762v5"
    again = cli("lit", "resolve", "1706.03762")
    assert again.exit_code == 0 and "recorded 0 new paper(s)" in again.stdout
    assert len(papers_in(project)) == 1


def test_resolve_unknown_id_is_404_with_message(cli, project, lit_server):
    lit_server.route("/s2/paper/ARXIV:2999.00001", json_reply("s2_paper_not_found.json", 404))
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_empty.xml"))
    result = cli("lit", "resolve", "2999.00001")
    assert result.exit_code == 1
    assert "not found (HTTP 404): Paper with id ARXIV:2999.00001 not found" in result.output
    assert "arXiv id 2999.00001: not found" in result.output
    assert "nothing was recorded" in result.output
    assert len(lit_server.hits("/s2/paper/ARXIV:2999.00001")) == 1  # a 404 is not retried


def test_resolve_doi_asks_the_doi_sources_not_arxiv(cli, project, lit_server):
    lit_server.route("/s2/paper/DOI:10.18653/v1/n19-1423",
                     Reply(200, json.dumps(json.loads(data("s2_search_transformers.json"))
                                           ["data"][1]).encode()))
    result = cli("lit", "resolve", "DOI:10.18653/v1/N19-1423")
    assert result.exit_code == 0, result.output
    assert "devlin2019bert" in result.stdout and lit_server.hits(ARXIV_QUERY) == []
    # OpenAlex and Crossref were asked too; their 404s are notes, not failures.
    assert [h.path for h in lit_server.hits()][1:] == [
        "/openalex/works/doi:10.18653/v1/n19-1423", "/crossref/works/10.18653/v1/n19-1423"]
    assert "openalex (not-found): OpenAlex work 10.18653/v1/n19-1423: not found" in result.stderr


def test_resolve_rejects_what_is_no_id(cli, project):
    result = cli("lit", "resolve", "attention is all you need")
    assert result.exit_code == 2 and "is not a paper id" in result.output


# -- cache layout and offline snapshots -------------------------------------------------------------

def test_cache_file_layout_is_the_documented_one(cli, project, standard_routes):
    from rstack.literature.cache import cache_key

    search_json(cli, "efficient transformers", "--source", "s2", "--limit", "3")
    url = standard_routes.base + "/s2/paper/search"
    params = {"query": "efficient transformers", "limit": 3, "offset": 0, "fields": s2.FIELDS}
    key = cache_key("GET", url, params)
    path = project / ".rstack" / "cache" / "lit" / f"{key}.json"
    entry = json.loads(path.read_text())
    assert set(entry) == {"version", "key", "method", "url", "params", "status", "content_type",
                          "fetched_at", "body"}
    assert entry["key"] == key and entry["method"] == "GET" and entry["url"] == url
    assert entry["params"] == {k: str(v) for k, v in params.items()}
    assert entry["status"] == 200 and entry["body"] == data("s2_search_transformers.json").decode()
    # Order of parameters never matters; a different value is a different key.
    assert cache_key("GET", url, dict(reversed(list(params.items())))) == key
    assert cache_key("GET", url, {**params, "limit": 4}) != key


def test_seeded_snapshot_answers_offline_with_default_urls(cli, project):
    from rstack.literature.search import seed_search_cache

    written = seed_search_cache(project, "efficient transformers", limit=10,
                                s2_body=data("s2_search_transformers.json").decode(),
                                arxiv_body=data("arxiv_search_old_format.xml").decode())
    assert len(written) == 2
    out = search_json(cli, "efficient transformers", "--offline")
    assert out["network_calls"] == 0 and out["cache_hits"] == 2 and out["recorded"] == 6
    with pytest.raises(Exception) as info:
        seed_search_cache(project, "x", s2_body=data("s2_search_truncated.json").decode())
    assert "malformed JSON" in str(info.value)


def test_damaged_cache_entry_is_a_miss(cli, project, standard_routes):
    search_json(cli, "efficient transformers", "--source", "s2")
    for path in (project / ".rstack" / "cache" / "lit").glob("*.json"):
        if path.name != "pacing.json":
            path.write_text("{not json")
    out = search_json(cli, "efficient transformers", "--source", "s2")
    assert out["network_calls"] == 1 and out["cache_hits"] == 0


@pytest.mark.parametrize("retry_after", ["soon", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_odd_retry_after_values_fall_back_to_backoff(cli, project, lit_server, retry_after):
    lit_server.route(S2_SEARCH,
                     json_reply("s2_rate_limited.json", 429, headers={"Retry-After": retry_after}),
                     json_reply("s2_search_transformers.json"))
    start = time.monotonic()
    out = search_json(cli, "efficient transformers", "--source", "s2")
    assert out["recorded"] == 5 and time.monotonic() - start < 3
    assert len(lit_server.hits(S2_SEARCH)) == 2


def test_503_retry_after_then_success(cli, project, lit_server):
    lit_server.route(ARXIV_QUERY, Reply(503, data("html_error_page.html"), "text/html",
                                        headers={"Retry-After": "0"}),
                     atom_reply("arxiv_search_new_format.xml"))
    out = search_json(cli, "efficient transformers", "--source", "arxiv")
    assert out["recorded"] == 4 and len(lit_server.hits(ARXIV_QUERY)) == 2


def test_body_cut_off_mid_transfer(cli, project, lit_server, monkeypatch):
    monkeypatch.setenv("RSTACK_LIT_MAX_RETRIES", "0")
    body = data("s2_search_transformers.json")
    lit_server.route(S2_SEARCH, Reply(200, body[:500], length=len(body)))
    result = cli("lit", "search", "efficient transformers", "--source", "s2")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the answer broke off mid-body" in result.output


def test_concurrent_searches_record_each_paper_once(project, standard_routes):
    import threading

    from rstack.literature.search import search_literature

    errors = []

    def run(limit):
        try:
            search_literature(project, "efficient transformers", limit=limit)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (5, 6, 7, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = [r["key"] for r in papers_in(project)]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 6
    assert sum(s["counts"]["new"] for s in searches_in(project)) == 6
