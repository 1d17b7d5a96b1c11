"""`rstack lit coverage`, status's `thin` lit_review and idea.md's citations, and
`rstack lit cache stats|clear`: a review padded with off-topic classics is thin, whatever its
keys; a review of on-topic work is not."""

from __future__ import annotations

import json

from lit_fixtures import lit_server, standard_routes  # noqa: F401
from rstack.ledger import Ledger
from rstack.literature.coverage import memory_citations
from rstack.status import project_status

IDEA = ("# Idea: sparse attention for long documents\n\nTransformers spend quadratic time in "
        "self-attention, so long documents are truncated. Does a sparse attention pattern with "
        "linear complexity keep accuracy on long-document classification while cutting memory?\n")


def _paper(key, title, abstract):
    return {"type": "paper", "key": key, "title": title, "abstract": abstract, "authors": ["A B"],
            "year": 2020, "ids": {"s2": key.ljust(40, "0")[:40]}, "sources": ["s2"]}


# Real titles; abstracts abridged from the papers' own first sentences.
CLASSICS = [
    _paper("lecun2015deep", "Deep learning", "Deep learning allows computational models that are "
           "composed of multiple processing layers to learn representations of data."),
    _paper("hochreiter1997long", "Long Short-Term Memory", "Learning to store information over "
           "extended time intervals by recurrent backpropagation takes a very long time."),
    _paper("kingma2014adam", "Adam: A Method for Stochastic Optimization", "We introduce Adam, an "
           "algorithm for first-order gradient-based optimization of stochastic objective "
           "functions."),
]
ON_TOPIC = [
    _paper("beltagy2020longformer", "Longformer: The Long-Document Transformer", "Transformer-based "
           "models are unable to process long sequences due to their self-attention operation, "
           "which scales quadratically with the sequence length."),
    _paper("wang2020linformer", "Linformer: Self-Attention with Linear Complexity", "We "
           "demonstrate that the self-attention mechanism can be approximated by a low-rank "
           "matrix, reducing the complexity from quadratic to linear."),
    _paper("zaheer2020big", "Big Bird: Transformers for Longer Sequences", "We propose BigBird, a "
           "sparse attention mechanism that reduces the quadratic dependency on sequence length "
           "to linear."),
]


def _project(project, papers, review_keys):
    Ledger(project, "lit-review").append_many(papers)
    (project / "idea.md").write_text(IDEA, encoding="utf-8")
    (project / "lit-review.md").write_text(
        "# Related work\n" + "".join(f"Prior work [@{k}].\n" for k in review_keys),
        encoding="utf-8")


def test_review_padded_with_classics_is_thin(cli, project):
    _project(project, CLASSICS + ON_TOPIC[:1], [p["key"] for p in CLASSICS] + ["beltagy2020longformer"])
    result = cli("lit", "coverage")
    assert result.exit_code == 1
    out = result.stdout
    assert "on-topic (score >= 0.08) in lit-review.md: 1 (beltagy2020longformer)" in out
    for key in ("lecun2015deep", "hochreiter1997long", "kingma2014adam"):
        assert f"off-topic: [@{key}] scores 0.000" in out
    assert "THIN: 1 on-topic paper(s), at least 3 needed: coverage of idea.md by lit-review.md" in out
    assert "never pad the review" in out
    stage = project_status(project).stages["lit_review"]
    assert stage.state == "thin" and stage.data["on_topic"] == 1
    assert stage.data["off_topic"] == ["hochreiter1997long", "kingma2014adam", "lecun2015deep"]
    from rstack import paths
    paths.install_marker().parent.mkdir(parents=True, exist_ok=True)
    paths.install_marker().touch()
    status = project_status(project)
    assert status.next.stage == "lit_review" and status.next.command == "rstack lit coverage"
    assert "report the gap rather than pad the review" in status.next.why
    assert "lit_review  thin" in cli("status").stdout


def test_review_of_on_topic_work_is_ok(cli, project):
    _project(project, CLASSICS + ON_TOPIC, [p["key"] for p in ON_TOPIC] + ["kingma2014adam"])
    result = cli("lit", "coverage", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["thin"] is False
    assert [s["key"] for s in data["on_topic"]] == ["beltagy2020longformer", "wang2020linformer",
                                                    "zaheer2020big"]
    assert [s["key"] for s in data["off_topic"]] == ["kingma2014adam"]
    assert data["nearest"][0]["score"] >= data["min_score"]
    assert project_status(project).stages["lit_review"].state == "ok"


def test_before_the_review_the_ledger_is_judged(cli, project):
    Ledger(project, "lit-review").append_many(CLASSICS)
    (project / "idea.md").write_text(IDEA, encoding="utf-8")
    result = cli("lit", "coverage")
    assert result.exit_code == 1
    assert "in the lit-review ledger (no lit-review.md yet): 0" in result.stdout
    assert "off-topic" not in result.stdout  # nothing is cited yet, so nothing is padding


def test_threshold_is_a_config_key(cli, project, monkeypatch):
    _project(project, CLASSICS + ON_TOPIC[:1], ["beltagy2020longformer"])
    monkeypatch.setenv("RSTACK_LIT_COVERAGE_MIN_PAPERS", "1")
    assert cli("lit", "coverage").exit_code == 0
    monkeypatch.setenv("RSTACK_LIT_COVERAGE_MIN_SCORE", "0.99")
    assert cli("lit", "coverage").exit_code == 1


def test_idea_citations_are_checked_like_the_review(cli, project):
    _project(project, CLASSICS + ON_TOPIC, [p["key"] for p in ON_TOPIC])
    (project / "idea.md").write_text(IDEA + "\nBuilds on [@zaheer2020big] and [@madeup2021x]; "
                                     "see also Child et al. (2019) and (Kitaev and Kaiser, 2020).\n")
    result = cli("lit", "coverage")
    assert result.exit_code == 1
    assert "idea.md: [@madeup2021x] is not in the ledger" in result.stdout
    assert "idea.md: 'Child et al. (2019)' is cited from memory" in result.stdout
    assert "idea.md: '(Kitaev and Kaiser, 2020)' is cited from memory" in result.stdout
    stage = project_status(project).stages["idea"]
    assert stage.state == "invalid"
    assert stage.detail == ("idea.md: [@madeup2021x] not in the lit ledger; 'Child et al. (2019)' "
                            "cited from memory; '(Kitaev and Kaiser, 2020)' cited from memory")


def test_memory_citation_patterns():
    assert memory_citations("as Vaswani et al., 2017 showed; (Polyak 1964); (see Bottou, 2010)") \
        == ["Vaswani et al., 2017", "(Polyak 1964)", "(see Bottou, 2010)"]
    assert memory_citations("GPT-4 (2023) and [@vaswani2017attention] in 2017 (p. 3)") == []


def test_missing_idea_is_a_problem(cli, project):
    result = cli("lit", "coverage", "nope.md")
    assert result.exit_code == 1
    assert "no idea to compare with:" in result.stdout and "nope.md cannot be read" in result.stdout


def test_cache_stats_and_clear(cli, project, standard_routes):
    assert cli("lit", "search", "efficient transformers").exit_code == 0
    result = cli("lit", "cache", "stats", "--json")
    data = json.loads(result.stdout)
    assert data["entries"] == 2 and data["by_service"] == {"arxiv": 1, "s2": 1}
    assert data["bytes"] > 0 and data["oldest"] <= data["newest"]
    assert "2 cached response(s)" in cli("lit", "cache", "stats").stdout
    result = cli("lit", "cache", "clear")
    assert result.exit_code == 0 and "removed 2 cached response(s)" in result.stdout
    assert json.loads(cli("lit", "cache", "stats", "--json").stdout)["entries"] == 0
    # The ledger is untouched, and the next search asks the API again.
    assert len(Ledger(project, "lit-review").records("paper")) == 6
    assert cli("lit", "search", "efficient transformers").exit_code == 0
    assert len(standard_routes.hits()) == 4


def test_cannot_assess_verdict_holds_the_pipeline(cli, project):
    from rstack import paths
    paths.install_marker().parent.mkdir(parents=True, exist_ok=True)
    paths.install_marker().touch()
    _project(project, CLASSICS + ON_TOPIC, [p["key"] for p in ON_TOPIC])
    (project / "novelty-assessment.md").write_text(
        "# Novelty\n\n**Verdict:** cannot assess — literature too thin\n", encoding="utf-8")
    status = project_status(project)
    assert status.stages["novelty"].state == "thin"
    assert status.next.stage == "novelty" and status.next.skill == "/lit-review"
    assert status.next.command == "rstack lit coverage"
    (project / "novelty-assessment.md").write_text(
        "# Novelty\n\n**Verdict:** incremental — assessed by the user, literature thin\n")
    assert project_status(project).stages["novelty"].state == "ok"
