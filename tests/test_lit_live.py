"""The literature commands against the real Semantic Scholar, arXiv, OpenAlex and Crossref services.

Skipped unless RSTACK_LIVE_LIT=1 (CI and the dev machine have no network). Run by hand:
    RSTACK_LIVE_LIT=1 .venv/bin/python -m pytest tests/test_lit_live.py -q
S2_API_KEY in the environment is used when set (the test never prints it).
"""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("RSTACK_LIVE_LIT") != "1",
                                reason="live API check: set RSTACK_LIVE_LIT=1 (needs network)")


@pytest.fixture
def live_key(monkeypatch):
    # conftest removes S2_API_KEY for isolation; the live check may use the developer's key.
    key = os.environ.get("RSTACK_LIVE_S2_API_KEY")
    if key:
        monkeypatch.setenv("S2_API_KEY", key)


def test_search_resolve_bib_verify_live(cli, project, live_key):
    result = cli("lit", "search", "Attention Is All You Need", "--limit", "5", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["network_calls"] == 3, out["errors"]  # s2, arxiv, openalex (lit_sources)
    keys = [p["key"] for p in out["papers"]]
    assert "vaswani2017attention" in keys, keys
    vaswani = next(p for p in out["papers"] if p["key"] == "vaswani2017attention")
    assert vaswani["ids"]["arxiv"] == "1706.03762"
    again = json.loads(cli("lit", "search", "Attention Is All You Need", "--limit", "5",
                           "--json").stdout)
    assert again["network_calls"] == 0 and again["recorded"] == 0
    resolved = cli("lit", "resolve", "ARXIV:1810.04805", "--json")
    assert resolved.exit_code == 0, resolved.output
    bert_key = json.loads(resolved.stdout)["papers"][0]["key"]
    (project / "paper.tex").write_text(
        f"\\cite{{vaswani2017attention,{bert_key}}}\n\\bibliography{{paper}}\n")
    assert cli("lit", "bib", "--cited", "paper.tex", "--out", "paper.bib").exit_code == 0
    verified = cli("lit", "verify")
    assert verified.exit_code == 0, verified.output
    missing = cli("lit", "resolve", "ARXIV:2999.99999")
    assert missing.exit_code == 1 and "not found" in missing.output


def test_doi_lookup_and_retraction_screening_live(cli, project, live_key):
    """OpenAlex and Crossref by DOI, and a paper both mark retracted (The Lancet, 1998)."""
    (project / "paper.bib").write_text(
        "@article{lecun2015deep, title={Deep learning}, author={LeCun, Yann}, year={2015},"
        " doi={10.1038/nature14539}}\n"
        "@article{wakefield1998ileal, title={Ileal-lymphoid-nodular hyperplasia, non-specific "
        "colitis, and pervasive developmental disorder in children}, author={Wakefield, A. J.},"
        " year={1998}, doi={10.1016/S0140-6736(97)11096-0}}\n")
    result = cli("lit", "import", "paper.bib", "--json")
    out = json.loads(result.stdout)
    entries = {e["key"]: e for e in out["entries"]}
    assert entries["lecun2015deep"]["status"] == "verified", entries
    assert entries["wakefield1998ileal"]["retracted"], entries
