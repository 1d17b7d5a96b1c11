"""OpenAlex and Crossref beside S2 and arXiv, against the fixture server in the APIs' shapes: their
parsers, a search that completes while S2 is rate-limited, `verify --resolve` and `lit import` of a
bib of real, wrong-metadata and invented entries, retraction screening, query hygiene, paging."""

from __future__ import annotations

import json

import pytest

from lit_fixtures import (ARXIV_QUERY, CROSSREF_WORKS, OPENALEX_WORKS, S2_SEARCH, Reply,  # noqa: F401
                          all_sources, atom_reply, data, json_reply, lit_server, text_reply)
from rstack.ledger import Ledger
from rstack.literature import crossref, openalex, query
from rstack.literature.transport import Body


def papers_in(project) -> list[dict]:
    return Ledger(project, "lit-review").records("paper")


def _body(name: str) -> Body:
    return Body(200, "application/json", data(name).decode("utf-8"), "http://x", False)


# -- parsers -------------------------------------------------------------------------------------

def test_openalex_work_parses_every_field_we_keep():
    paper, why = openalex.paper_from_work(json.loads(data("openalex_work_lecun.json")))
    assert why is None
    assert paper.title == "Deep learning" and paper.year == 2015
    assert paper.authors == ["Yann LeCun", "Yoshua Bengio", "Geoffrey E. Hinton"]
    assert paper.venue == "Nature" and paper.venue_type == "journal"
    assert paper.ids == {"s2": None, "doi": "10.1038/nature14539", "arxiv": None,
                         "openalex": "W1"}
    assert paper.abstract.startswith("Deep learning allows computational models")
    assert paper.retracted is False and paper.sources == ["openalex"]


def test_openalex_search_preprints_retractions_and_skips():
    result, cursor = openalex.parse_list(_body("openalex_search_transformers.json"), "search")
    assert cursor is None and result.total == 48213
    tay, linformer, bigbird = result.papers
    assert tay.venue == "ACM Computing Surveys" and tay.venue_type == "journal"
    # An arXiv-hosted work: preprint, its arXiv id from the landing page and the arXiv DOI.
    assert linformer.venue_type == "preprint" and linformer.ids["arxiv"] == "2006.04768"
    assert bigbird.authors[5] == "Santiago Ontañón"
    assert result.skipped == ["work https://openalex.org/W8 without a title"]
    wakefield, _ = openalex.paper_from_work(json.loads(data("openalex_work_wakefield.json")))
    assert wakefield.retracted is True and wakefield.retraction == "openalex is_retracted"


def test_crossref_items_retractions_and_notices():
    item = json.loads(data("crossref_work_wakefield.json"))["message"]
    paper, _ = crossref.paper_from_item(item)
    assert paper.retracted is True
    assert paper.retraction == ("retraction notice 10.1016/s0140-6736(10)60175-4 "
                                "(retraction-watch)")
    assert paper.year == 1998 and paper.authors[0] == "A.J. Wakefield"
    assert paper.venue == "The Lancet" and paper.venue_type == "journal"
    result, _ = crossref.parse_list(_body("crossref_search_lstm.json"), "search")
    lstm, sak = result.papers
    assert lstm.authors == ["Sepp Hochreiter", "Jürgen Schmidhuber"] and lstm.year == 1997
    assert lstm.abstract.startswith("Learning to store information") and "<" not in lstm.abstract
    assert sak.venue_type == "conference" and lstm.retracted is False
    # The retraction notice is an update of another work, never a paper of its own.
    assert result.skipped == ["DOI 10.1016/s0140-6736(10)60175-4 is an update notice "
                              "(Retraction—Ileal-lymphoid-nodular hyperplasia, non-specific "
                              "colitis, and pervasive developmental disorder in children), "
                              "not a paper"]


def test_html_entities_are_decoded_at_the_parser():
    paper, _ = crossref.paper_from_item({"DOI": "10.1016/j.chaos.2020.1", "title": [
        "Chaos, Solitons &amp; Fractals &lt;review&gt;"]})
    assert paper.title == "Chaos, Solitons & Fractals <review>"


# -- sources in a search -------------------------------------------------------------------------

def test_search_all_merges_four_sources(cli, project, all_sources):
    result = cli("lit", "search", "efficient transformers", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    by_title = {p["title"]: p for p in out["papers"]}
    # OpenAlex's survey record merges into S2's by DOI; its preprint Linformer by the arXiv id.
    assert by_title["Efficient Transformers: A Survey"]["sources"] == ["s2", "arxiv", "openalex"]
    assert by_title["Efficient Transformers: A Survey"]["ids"]["openalex"] == "W5"
    assert by_title["Linformer: Self-Attention with Linear Complexity"]["sources"] == [
        "s2", "arxiv", "openalex"]
    assert by_title["Big Bird: Transformers for Longer Sequences"]["sources"] == ["openalex"]
    assert out["counts"]["openalex"] == 3 and out["counts"]["crossref"] == 1
    assert out["errors"] == []
    [hit] = all_sources.hits(OPENALEX_WORKS)
    assert hit.query == {"search": "efficient transformers", "per_page": "10", "cursor": "*"}
    [hit] = all_sources.hits(CROSSREF_WORKS)
    assert hit.query == {"query.bibliographic": "efficient transformers", "rows": "10",
                         "offset": "0"}


def test_mailto_goes_to_openalex_and_crossref_only(cli, project, all_sources, monkeypatch):
    monkeypatch.setenv("RSTACK_LIT_MAILTO", "me@example.org")
    assert cli("lit", "search", "efficient transformers").exit_code == 0
    assert all_sources.hits(OPENALEX_WORKS)[0].query["mailto"] == "me@example.org"
    assert all_sources.hits(CROSSREF_WORKS)[0].query["mailto"] == "me@example.org"
    assert "mailto" not in all_sources.hits(S2_SEARCH)[0].query


def test_search_completes_while_s2_is_rate_limited(cli, project, all_sources, monkeypatch):
    monkeypatch.setenv("RSTACK_LIT_SOURCES", "s2,arxiv,openalex")
    all_sources.route(S2_SEARCH, json_reply("s2_rate_limited.json", 429))
    result = cli("lit", "search", "efficient transformers")
    assert result.exit_code == 0, result.output
    assert ("skipped s2 (rate-limited): Semantic Scholar search 'efficient transformers': still "
            "rate limited (HTTP 429) after 3 attempt(s)") in result.stderr
    assert "recorded 5 new paper(s)" in result.stdout
    assert {tuple(p["sources"]) for p in papers_in(project)} == {
        ("arxiv",), ("arxiv", "openalex"), ("openalex",)}
    assert len(all_sources.hits(S2_SEARCH)) == 3  # bounded: 1 + lit_max_retries
    [search] = Ledger(project, "lit-review").records("search")
    assert [e["source"] for e in search["errors"]] == ["s2"]


def test_unknown_source_in_config_is_refused(cli, project, lit_server, monkeypatch):
    monkeypatch.setenv("RSTACK_LIT_SOURCES", "s2,scholar")
    result = cli("lit", "search", "x")
    assert result.exit_code == 1
    assert "lit_sources: scholar is not a list of sources" in result.output


# -- query hygiene -------------------------------------------------------------------------------

def test_s2_gets_plain_words_and_arxiv_a_valid_query(cli, project, all_sources):
    assert cli("lit", "search", "ti:self-supervised AND au:lecun").exit_code == 0
    assert all_sources.hits(S2_SEARCH)[0].query["query"] == "self supervised lecun"
    assert all_sources.hits(OPENALEX_WORKS)[0].query["search"] == "self supervised lecun"
    # With every source, arXiv gets the words, not the field syntax written for it alone.
    assert all_sources.hits(ARXIV_QUERY)[0].query["search_query"] == (
        'all:"self supervised" AND all:lecun')
    assert cli("lit", "search", "ti:self-supervised AND au:lecun", "--source",
               "arxiv").exit_code == 0
    assert all_sources.hits(ARXIV_QUERY)[1].query["search_query"] == (
        "ti:self-supervised AND au:lecun")


def test_query_words():
    assert query.plain_query("graph-based (GNN) \"message passing\"") == (
        "graph based GNN message passing")
    assert query.arxiv_query("graph-based GNNs", fielded=False) == 'all:"graph based" AND all:GNNs'
    assert query.has_field_syntax("au:smith") and not query.has_field_syntax("Smith and Jones")


def test_a_query_without_words_is_refused(cli, project, lit_server):
    result = cli("lit", "search", "( ) - !")
    assert result.exit_code == 1
    assert "the search query '( ) - !' has no words to search for" in result.output


def test_versioned_arxiv_id_resolves_that_version(cli, project, lit_server):
    lit_server.route("/s2/paper/ARXIV:1706.03762", json_reply("s2_paper_vaswani.json"))
    lit_server.route(ARXIV_QUERY, atom_reply("arxiv_id_vaswani.xml"))
    result = cli("lit", "resolve", "1706.03762v2", "--json")
    assert result.exit_code == 0, result.output
    [hit] = lit_server.hits(ARXIV_QUERY)
    assert hit.query["id_list"] == "1706.03762v2"
    [paper] = papers_in(project)
    assert paper["ids"]["arxiv"] == "1706.03762"  # the identity has no version
    assert paper["url"] == "https://arxiv.org/abs/1706.03762v2"  # the link has it
    assert paper["sources"] == ["s2", "arxiv"]


# -- paging --------------------------------------------------------------------------------------

def _s2_page(start: int, count: int, total: int) -> Reply:
    items = [{"paperId": f"{i:040x}", "title": f"Paged result number {i}", "year": 2020,
              "authors": [{"authorId": str(i), "name": f"Author {i}"}], "externalIds": {}}
             for i in range(start, min(start + count, total))]
    doc = {"total": total, "offset": start, "data": items}
    if start + count < total:
        doc["next"] = start + count
    return Reply(200, json.dumps(doc).encode(), "application/json")


def _openalex_page(start: int, count: int, cursor: str | None) -> Reply:
    works = [{"id": f"https://openalex.org/W{900 + i}", "title": f"OpenAlex paged work {i}",
              "publication_year": 2021, "authorships": [], "type": "article"}
             for i in range(start, start + count)]
    doc = {"meta": {"count": 250, "per_page": count, "next_cursor": cursor}, "results": works,
           "group_by": []}
    return Reply(200, json.dumps(doc).encode(), "application/json")


def test_limit_above_one_page_is_paged(cli, project, lit_server):
    lit_server.route(S2_SEARCH, _s2_page(100, 50, 150), when={"offset": "100"})
    lit_server.route(S2_SEARCH, _s2_page(0, 100, 150), when={"offset": "0"})
    result = cli("lit", "search", "paged", "--source", "s2", "--limit", "150", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["s2"] == 150
    assert [(h.query["offset"], h.query["limit"]) for h in lit_server.hits(S2_SEARCH)] == [
        ("0", "100"), ("100", "50")]


def test_openalex_follows_the_cursor(cli, project, lit_server):
    lit_server.route(OPENALEX_WORKS, _openalex_page(200, 50, None), when={"cursor": "IlsxNjA5"})
    lit_server.route(OPENALEX_WORKS, _openalex_page(0, 200, "IlsxNjA5"), when={"cursor": "*"})
    result = cli("lit", "search", "paged", "--source", "openalex", "--limit", "250", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["openalex"] == 250
    assert [h.query["cursor"] for h in lit_server.hits(OPENALEX_WORKS)] == ["*", "IlsxNjA5"]


# -- verify --resolve and lit import -------------------------------------------------------------

MIXED_BIB = r"""
@inproceedings{vaswani2017attention,
  title = {Attention Is All You Need},
  author = {Vaswani, Ashish and Shazeer, Noam},
  booktitle = {NeurIPS},
  year = {2017},
  eprint = {1706.03762},
  archivePrefix = {arXiv}
}
@article{lecun2016deep,
  title = {Deep Learning},
  author = {LeCun, Yann and Bengio, Yoshua and Hinton, Geoffrey},
  journal = {Nature},
  year = {2016},
  doi = {10.1038/nature14539}
}
@article{hochreiter1995lstm,
  title = {Long Short-Term Memory},
  author = {Hochreiter, Sepp and Schmidhuber, J{\"u}rgen},
  journal = {Neural Computation},
  year = {1995}
}
@article{wakefield1998ileal,
  title = {Ileal-lymphoid-nodular hyperplasia, non-specific colitis, and pervasive developmental
           disorder in children},
  author = {Wakefield, A. J. and Murch, S. H.},
  journal = {The Lancet},
  year = {1998},
  doi = {10.1016/S0140-6736(97)11096-0}
}
@article{nobody2023quantum,
  title = {Quantum Gradient Folding for Sparse Transformers},
  author = {Nobody, Ann},
  journal = {Journal of Imaginary Results},
  year = {2023}
}
"""

MIXED_TEX = ("\\documentclass{article}\\begin{document}\n"
             "\\cite{vaswani2017attention,lecun2016deep}\n\\cite{hochreiter1995lstm}\n"
             "\\cite{wakefield1998ileal,nobody2023quantum}\n"
             "\\bibliography{paper}\\end{document}\n")


@pytest.fixture
def mixed(project, lit_server):
    """The mixed bib, every source answering as the real ones would, S2 rate-limited for good."""
    (project / "paper.bib").write_text(MIXED_BIB, encoding="utf-8")
    (project / "paper.tex").write_text(MIXED_TEX, encoding="utf-8")
    s = lit_server
    s.route("/s2/", json_reply("s2_rate_limited.json", 429), prefix=True)
    s.route(ARXIV_QUERY, atom_reply("arxiv_id_vaswani.xml"), when={"id_list": "1706.03762"})
    s.route("/openalex/works/doi:10.1038/nature14539", json_reply("openalex_work_lecun.json"))
    s.route("/crossref/works/10.1038/nature14539", json_reply("crossref_work_lecun.json"))
    s.route("/openalex/works/doi:10.1016/s0140-6736(97)11096-0",
            json_reply("openalex_work_wakefield.json"))
    s.route("/crossref/works/10.1016/s0140-6736(97)11096-0",
            json_reply("crossref_work_wakefield.json"))
    s.route(OPENALEX_WORKS, json_reply("openalex_search_lstm.json"),
            when={"search": "Long Short Term Memory"})
    s.route(CROSSREF_WORKS, json_reply("crossref_search_lstm.json"),
            when={"query.bibliographic": "Long Short Term Memory hochreiter 1995"})
    s.route(OPENALEX_WORKS, json_reply("openalex_search_empty.json"))
    s.route(CROSSREF_WORKS, json_reply("crossref_search_unrelated.json"))
    return project


def test_verify_resolve_sorts_a_mixed_bib(cli, mixed, lit_server):
    result = cli("lit", "verify", "--resolve")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "verified     vaswani2017attention  [arXiv 1706.03762, recorded]" in out
    assert "corrected    lecun2016deep  [DOI 10.1038/nature14539, recorded]\n" \
           "    - year: 2016  (bib)\n    + year: 2015  (ledger)" in out
    assert "corrected    hochreiter1995lstm  [title + first author, recorded]\n" \
           "    - year: 1995  (bib)\n    + year: 1997  (ledger)" in out
    assert ("verified     wakefield1998ileal  [DOI 10.1016/s0140-6736(97)11096-0, recorded]\n"
            "    RETRACTED: openalex is_retracted") in out
    assert "unverifiable nobody2023quantum\n" in out
    assert ("    tried title 'Quantum Gradient Folding for Sparse Transformers' + first author "
            "nobody: s2 rate-limited; openalex 0 result(s), 0 with this title and first author; "
            "crossref 1 result(s), 0 with this title and first author") in out
    assert "2 verified, 2 corrected, 1 unverifiable, 1 retracted; recorded 4 new paper(s)" in out
    # verify then adds what the resolve report did not show: the retracted citation.
    assert ("retracted: paper.bib:23: 'wakefield1998ileal' cites a retracted paper (openalex "
            "is_retracted)") in out
    assert "FAIL: 4 problem(s): 5 cited key(s), 5 bib entr(ies), 4 matched the ledger" in out
    assert "fix: rewrite corrected entries from the ledger: rstack lit bib --cited paper.tex" in out
    records = {r["key"]: r for r in papers_in(mixed)}
    assert sorted(records) == ["hochreiter1995lstm", "lecun2016deep", "vaswani2017attention",
                               "wakefield1998ileal"]
    # What was recorded is what the APIs said, never the bib's text: the year is the API's.
    assert records["lecun2016deep"]["year"] == 2015
    assert records["lecun2016deep"]["sources"] == ["openalex", "crossref"]
    assert records["hochreiter1995lstm"]["venue"] == "Neural Computation"
    assert records["wakefield1998ileal"]["retracted"] is True
    # S2 was asked once (with its retries) and then skipped for the rest of the command.
    assert len([h for h in lit_server.hits() if h.path.startswith("/s2/")]) == 3


def test_verify_resolve_json_and_a_second_run_needs_no_network(cli, mixed, lit_server):
    first = cli("lit", "verify", "--resolve", "--json")
    data_ = json.loads(first.stdout)
    [resolve] = data_["resolve"]
    assert resolve["counts"] == {"verified": 2, "corrected": 2, "unverifiable": 1,
                                 "retracted": 1}
    statuses = {e["key"]: e["status"] for e in resolve["entries"]}
    assert statuses["nobody2023quantum"] == "unverifiable"
    asked = len(lit_server.hits())
    cli("lit", "verify", "--resolve")
    # Settled entries are in the ledger now; only the invented one is looked up again, from the
    # cache, except S2, whose 429 is never cached (asked once more, with its retries).
    again = lit_server.hits()[asked:]
    assert len(again) == 3 and all(h.path == "/s2/paper/search" for h in again)


def test_import_records_and_exits_1_on_an_unverifiable_entry(cli, mixed):
    result = cli("lit", "import", "paper.bib")
    assert result.exit_code == 1
    assert "recorded 4 new paper(s)" in result.stdout
    (mixed / "clean.bib").write_text(MIXED_BIB.split("@article{nobody")[0], encoding="utf-8")
    result = cli("lit", "import", "clean.bib", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["recorded"] == 0 and out["counts"]["corrected"] == 2


def test_entry_in_ledger_under_another_key_is_a_key_correction(cli, mixed):
    assert cli("lit", "import", "paper.bib").exit_code == 1
    (mixed / "other.bib").write_text(
        "@article{lecun2015deep, title={Deep learning}, author={LeCun, Yann}, year={2015},"
        " doi={10.1038/nature14539}}\n", encoding="utf-8")
    result = cli("lit", "import", "other.bib", "--json")
    [entry] = json.loads(result.stdout)["entries"]
    assert entry["status"] == "corrected" and entry["ledger_key"] == "lecun2016deep"
    assert entry["diff"] == [{"field": "key", "bib": "lecun2015deep", "ledger": "lecun2016deep"}]


def test_ambiguous_title_is_unverifiable(cli, project, lit_server):
    (project / "a.bib").write_text("@article{x, title={Long Short-Term Memory}, "
                                   "author={Hochreiter, Sepp}}\n", encoding="utf-8")
    lit_server.route("/s2/", json_reply("s2_rate_limited.json", 429), prefix=True)
    two = json.loads(data("openalex_search_lstm.json"))
    twin = json.loads(json.dumps(two["results"][0]))
    twin.update(id="https://openalex.org/W99", doi="https://doi.org/10.1000/other",
                publication_year=2005)
    two["results"].append(twin)
    lit_server.route(OPENALEX_WORKS, Reply(200, json.dumps(two).encode()))
    lit_server.route(CROSSREF_WORKS, json_reply("crossref_search_unrelated.json"))
    result = cli("lit", "import", "a.bib", "--json")
    [entry] = json.loads(result.stdout)["entries"]
    assert entry["status"] == "unverifiable"
    assert ("ambiguous: 'Long Short-Term Memory' (1997, openalex); 'Long Short-Term Memory' "
            "(2005, openalex)") in entry["tried"][0]
    assert papers_in(project) == []


def test_offline_resolve_uses_only_the_cache(cli, mixed, lit_server):
    result = cli("lit", "import", "paper.bib", "--offline", "--json")
    assert result.exit_code == 1
    assert lit_server.hits() == []
    assert json.loads(result.stdout)["counts"]["unverifiable"] == 5


def test_retraction_found_later_is_recorded_and_flagged(cli, project, lit_server, monkeypatch):
    monkeypatch.setenv("RSTACK_LIT_SOURCES", "s2,openalex")
    # First S2 alone records the paper (S2 says nothing about retractions) ...
    s2_item = {"paperId": "a" * 40, "title": "Ileal-lymphoid-nodular hyperplasia, non-specific "
               "colitis, and pervasive developmental disorder in children", "year": 1998,
               "externalIds": {"DOI": "10.1016/S0140-6736(97)11096-0"},
               "authors": [{"authorId": "1", "name": "A. Wakefield"}], "venue": "The Lancet"}
    lit_server.route(S2_SEARCH, Reply(200, json.dumps({"total": 1, "data": [s2_item]}).encode()))
    assert cli("lit", "search", "ileal hyperplasia", "--source", "s2").exit_code == 0
    [record] = papers_in(project)
    assert record["retracted"] is None
    # ... then OpenAlex says it is retracted: a retraction record, and verify flags the citation.
    wakefield = json.loads(data("openalex_work_wakefield.json"))
    lit_server.route(OPENALEX_WORKS, Reply(200, json.dumps(
        {"meta": {"count": 1, "next_cursor": None}, "results": [wakefield]}).encode()))
    result = cli("lit", "search", "ileal hyperplasia")
    assert result.exit_code == 0
    assert (f"retracted: {record['key']} (openalex is_retracted); cite it only to discuss the "
            "retraction") in result.stderr
    [mark] = Ledger(project, "lit-review").records("retraction")
    assert mark["key"] == record["key"] and mark["notice"] == "openalex is_retracted"
    bib = cli("lit", "bib", "--keys", record["key"]).stdout
    (project / "paper.bib").write_text(bib, encoding="utf-8")
    (project / "paper.tex").write_text(f"\\cite{{{record['key']}}}\\bibliography{{paper}}\n")
    result = cli("lit", "verify", "--json")
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["kind"] == "retracted" and problem["key"] == record["key"]
    from rstack.literature.verify import retracted_citations
    assert [p.key for p in retracted_citations(project, [record["key"], "nope"])] == [
        record["key"]]


def test_source_vocabulary_is_defined_once():
    from rstack import config
    from rstack.cli.lit import search_command
    from rstack.literature.papers import SOURCES
    from rstack.literature.search import SOURCE_CHOICES
    from rstack.literature.transport import SERVICES
    from rstack.records import RECORD_TYPES

    [source] = [p for p in search_command.params if p.name == "source"]
    assert tuple(source.type.choices) == SOURCE_CHOICES == SOURCES + ("all",)
    assert tuple(SERVICES) == SOURCES
    assert config.KEYS["lit_sources"].parse(",".join(SOURCES)) == list(SOURCES)
    for name in SOURCES:
        assert f"{name}_api_url" in config.KEYS and f"{name}_min_interval_s" in config.KEYS
    search_type = RECORD_TYPES["search"]
    assert search_type.required["source"] == "enum:" + ",".join(SOURCE_CHOICES)


def test_resolve_screens_ledger_papers_no_source_screened(cli, project, lit_server):
    """A paper recorded from S2 alone (which says nothing about retractions) is screened by DOI."""
    Ledger(project, "lit-review").append(
        {"type": "paper", "key": "wakefield1998ileal", "title": "Ileal-lymphoid-nodular "
         "hyperplasia, non-specific colitis, and pervasive developmental disorder in children",
         "authors": ["A. Wakefield"], "year": 1998, "venue": "The Lancet",
         "ids": {"s2": "a" * 40, "doi": "10.1016/s0140-6736(97)11096-0"}, "sources": ["s2"]})
    assert cli("lit", "bib", "--out", "paper.bib").exit_code == 0
    (project / "paper.tex").write_text("\\cite{wakefield1998ileal}\\bibliography{paper}\n")
    lit_server.route("/openalex/works/doi:10.1016/s0140-6736(97)11096-0",
                     Reply(404, b"{\"error\": \"NotFoundError\"}"))
    lit_server.route("/crossref/works/10.1016/s0140-6736(97)11096-0",
                     json_reply("crossref_work_wakefield.json"))
    result = cli("lit", "verify", "--resolve")
    assert result.exit_code == 1
    assert ("verified     wakefield1998ileal  [ledger]\n    RETRACTED: retraction notice "
            "10.1016/s0140-6736(10)60175-4 (retraction-watch)") in result.stdout
    assert "retracted: paper.bib:1: 'wakefield1998ileal' cites a retracted paper" in result.stdout
    [mark] = Ledger(project, "lit-review").records("retraction")
    assert mark["source"] == "crossref" and mark["key"] == "wakefield1998ileal"
    # Screened once: the mark is in the ledger, so the next run asks nothing.
    asked = len(lit_server.hits())
    assert cli("lit", "verify", "--resolve").exit_code == 1
    assert len(lit_server.hits()) == asked


def test_a_doi_that_names_another_paper_is_not_used(cli, project, lit_server):
    (project / "a.bib").write_text(
        "@article{smith2020widgets, title={Widgets in the Wild}, author={Smith, Jane},"
        " year={2020}, doi={10.1038/nature14539}}\n", encoding="utf-8")
    lit_server.route("/s2/", json_reply("s2_rate_limited.json", 429), prefix=True)
    lit_server.route("/openalex/works/doi:10.1038/nature14539", json_reply("openalex_work_lecun.json"))
    lit_server.route(OPENALEX_WORKS, json_reply("openalex_search_empty.json"))
    lit_server.route(CROSSREF_WORKS, json_reply("crossref_search_unrelated.json"))
    result = cli("lit", "import", "a.bib", "--json")
    assert result.exit_code == 1
    [entry] = json.loads(result.stdout)["entries"]
    assert entry["status"] == "unverifiable"
    assert ("DOI 10.1038/nature14539 names another paper: 'Deep learning' (2015, Yann LeCun); "
            "not used") in entry["tried"]
    assert papers_in(project) == []
