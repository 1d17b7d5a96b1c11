"""`rstack lit bib|verify|nearest` and `verify_citations`: BibTeX from the ledger, every verify
outcome, and TF-IDF ranking. The ledger is filled by real searches against the fixture server."""

from __future__ import annotations

import json
import shutil
import subprocess

import bibtexparser
import pytest

from lit_fixtures import lit_server, standard_routes  # noqa: F401
from rstack.ledger import Ledger
from rstack.literature.bib import entry_type
from rstack.literature.nearest import rank
from rstack.literature.papers import Paper
from rstack.literature.verify import collect_citations, verify_citations

KEYS = ["vaswani2017attention", "devlin2019bert", "wang2020linformer", "tay2020efficient",
        "anonndsparsity", "beltagy2020longformer"]


@pytest.fixture
def filled(cli, project, standard_routes):
    """A project whose lit-review ledger holds the six papers of the standard search."""
    result = cli("lit", "search", "efficient transformers")
    assert result.exit_code == 0, result.output
    return project


def write_tex(root, body, name="paper.tex"):
    path = root / name
    path.write_text("\\documentclass{article}\n\\begin{document}\n" + body +
                    "\n\\bibliography{paper}\n\\end{document}\n", encoding="utf-8")
    return path


# -- bib -----------------------------------------------------------------------------------------

def test_bib_round_trips_through_bibtexparser(cli, filled):
    result = cli("lit", "bib", "--out", "refs/all.bib")
    assert result.exit_code == 0, result.output
    assert "wrote 6 entries to refs/all.bib" in result.stdout
    library = bibtexparser.parse_file(str(filled / "refs" / "all.bib"))
    assert library.failed_blocks == []
    assert [e.key for e in library.entries] == KEYS
    entries = {e.key: e for e in library.entries}
    types = {k: e.entry_type for k, e in entries.items()}
    assert types == {"vaswani2017attention": "inproceedings", "devlin2019bert": "inproceedings",
                     "wang2020linformer": "misc", "tay2020efficient": "article",
                     "anonndsparsity": "misc", "beltagy2020longformer": "misc"}
    vaswani = {k: f.value for k, f in entries["vaswani2017attention"].fields_dict.items()}
    assert vaswani["title"] == "{Attention is All you Need}"
    assert vaswani["author"] == "Ashish Vaswani and Noam Shazeer and Niki Parmar"
    assert vaswani["year"] == "2017"
    assert vaswani["booktitle"] == "Neural Information Processing Systems"
    assert vaswani["eprint"] == "1706.03762" and vaswani["archivePrefix"] == "arXiv"
    assert vaswani["primaryClass"] == "cs.CL"
    longformer = {k: f.value for k, f in entries["beltagy2020longformer"].fields_dict.items()}
    assert longformer["eprint"] == "2004.05150" and "journal" not in longformer
    tay = {k: f.value for k, f in entries["tay2020efficient"].fields_dict.items()}
    assert tay["journal"] == "ACM Computing Surveys" and tay["doi"] == "10.1145/3530811"
    sparsity = {k: f.value for k, f in entries["anonndsparsity"].fields_dict.items()}
    assert "year" not in sparsity and "author" not in sparsity  # missing stays missing
    # What bib writes, verify accepts: the round trip is clean.
    write_tex(filled, "\\cite{" + ",".join(KEYS) + "}")
    (filled / "paper.bib").write_text((filled / "refs" / "all.bib").read_text())
    assert verify_citations(filled, "paper.tex", "paper.bib").ok


def test_bib_to_stdout_for_given_keys_in_order(cli, filled):
    result = cli("lit", "bib", "--keys", "devlin2019bert,vaswani2017attention")
    assert result.exit_code == 0
    library = bibtexparser.parse_string(result.stdout)
    assert [e.key for e in library.entries] == ["devlin2019bert", "vaswani2017attention"]


def test_bib_refuses_keys_not_in_the_ledger(cli, filled):
    result = cli("lit", "bib", "--keys", "devlin2019bert,smith2020made", "--out", "x.bib")
    assert result.exit_code == 1
    assert "not in the lit-review ledger: smith2020made; no bib was written" in result.output
    assert not (filled / "x.bib").exists()
    assert cli("lit", "bib", "--keys", "a", "--cited", "x.tex").exit_code == 2


def test_bib_cited_takes_keys_from_the_tex(cli, filled):
    write_tex(filled, "As shown~\\citep[p.~3]{vaswani2017attention} and \\citet*{devlin2019bert}.")
    result = cli("lit", "bib", "--cited", "paper.tex", "--out", "paper.bib")
    assert result.exit_code == 0, result.output
    keys = [e.key for e in bibtexparser.parse_file(str(filled / "paper.bib")).entries]
    assert keys == ["devlin2019bert", "vaswani2017attention"]


def test_entry_type_rules():
    assert entry_type(Paper("t", venue="Journal of Machine Learning Research")) == "article"
    assert entry_type(Paper("t", venue="International Conference on Learning Representations")) \
        == "inproceedings"
    assert entry_type(Paper("t", venue="ArXiv")) == "misc"
    assert entry_type(Paper("t")) == "misc"


# -- verify --------------------------------------------------------------------------------------

def clean_paper(cli, root):
    write_tex(root, "Transformers~\\cite{vaswani2017attention} and BERT~\\citep{devlin2019bert}.\n"
                    "% \\cite{commented2020out} is not a citation\n\\input{sections/related}")
    (root / "sections").mkdir()
    (root / "sections" / "related.tex").write_text("Long documents~\\citet{beltagy2020longformer}.\n")
    assert cli("lit", "bib", "--cited", "paper.tex", "--out", "paper.bib").exit_code == 0


def test_verify_clean(cli, filled):
    clean_paper(cli, filled)
    result = cli("lit", "verify")
    assert result.exit_code == 0, result.output
    assert "ok: 3 cited key(s), 3 bib entr(ies), 3 matched the ledger" in result.stdout
    report = verify_citations(filled, filled / "paper.tex", filled / "paper.bib")
    assert report.ok and report.problems == []
    data = report.as_json()
    assert data["ok"] is True and data["cited_keys"] == ["beltagy2020longformer",
                                                        "devlin2019bert", "vaswani2017attention"]
    assert json.loads(json.dumps(data)) == data


def test_collect_citations_follows_input_and_skips_comments(filled):
    write_tex(filled, "\\cite{a,b}\\nocite{*}\n%\\cite{c}\n50\\% \\parencite[see][12]{d}\n"
                      "\\input{more}\n\\citep{f,\n  g}")
    (filled / "more.tex").write_text("\\textcite{e}\n")
    cited, bibs = collect_citations(filled / "paper.tex")
    assert sorted(cited) == ["a", "b", "d", "e", "f", "g"]
    assert cited["f"] == cited["g"] == ["paper.tex:7"]
    assert cited["d"] == ["paper.tex:5"] and cited["e"] == ["more.tex:1"]
    assert bibs == ["paper"]


def test_verify_missing_bib_entry(cli, filled):
    clean_paper(cli, filled)
    text = (filled / "paper.tex").read_text().replace("\\cite{vaswani2017attention}",
                                                      "\\cite{vaswani2017attention,ghost2020key}")
    (filled / "paper.tex").write_text(text)
    result = cli("lit", "verify", "paper.tex", "--bib", "paper.bib")
    assert result.exit_code == 1
    assert ("missing-bib-entry: paper.tex:3: \\cite key 'ghost2020key' (used at paper.tex:3) "
            "has no entry in paper.bib") in result.stdout
    assert "FAIL: 1 problem(s)" in result.stdout


def test_verify_not_in_ledger_separately_from_mismatch(cli, filled):
    clean_paper(cli, filled)
    bib = filled / "paper.bib"
    bib.write_text(bib.read_text() + """
@article{smith2021made,
  title = {A Paper No API Ever Returned},
  author = {John Smith},
  year = {2021},
}
@inproceedings{attention2017,
  title = {Attention Is All You Need},
  author = {Vaswani, Ashish},
  year = {2017},
}
""")
    text = (filled / "paper.tex").read_text() + "\\cite{smith2021made,attention2017}\n"
    (filled / "paper.tex").write_text(text)
    report = verify_citations(filled, "paper.tex", None)
    assert not report.ok
    kinds = {(p.kind, p.key) for p in report.problems}
    assert kinds == {("not-in-ledger", "smith2021made"), ("not-in-ledger", "attention2017")}
    renamed = next(p for p in report.problems if p.key == "attention2017")
    assert "the ledger holds this title as 'vaswani2017attention'" in renamed.message
    assert renamed.hint == "cite it as vaswani2017attention instead"
    result = cli("lit", "verify", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["counts"] == {"not-in-ledger": 2}


def test_verify_metadata_mismatch_is_a_diff(cli, filled):
    clean_paper(cli, filled)
    bib = filled / "paper.bib"
    text = bib.read_text()
    text = text.replace("year = {2017}", "year = {2018}")
    text = text.replace("author = {Ashish Vaswani and", "author = {Shazeer, Noam and")
    text = text.replace("{{BERT: Pre-training", "{{BERT: Post-training")
    bib.write_text(text)
    result = cli("lit", "verify", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["counts"] == {"metadata-mismatch": 2}
    by_key = {p["key"]: p for p in data["problems"]}
    assert by_key["vaswani2017attention"]["diff"] == [
        {"field": "year", "bib": 2018, "ledger": 2017},
        {"field": "first author", "bib": "Shazeer, Noam", "ledger": "Ashish Vaswani"}]
    assert by_key["devlin2019bert"]["diff"][0]["field"] == "title"
    assert by_key["devlin2019bert"]["diff"][0]["bib"].startswith("BERT: Post-training")
    human = cli("lit", "verify")
    assert "metadata-mismatch: paper.bib:" in human.stdout
    assert "    - year: 2018  (bib)\n    + year: 2017  (ledger)" in human.stdout


def test_verify_tolerates_case_braces_and_latex_accents(cli, filled):
    clean_paper(cli, filled)
    bib = filled / "paper.bib"
    bib.write_text(bib.read_text().replace("{{Attention is All you Need}}",
                                           "{{A}ttention {IS} all you need}"))
    assert cli("lit", "verify").exit_code == 0


def test_verify_not_from_api(cli, filled):
    clean_paper(cli, filled)
    record = {"type": "paper", "key": "hand2020typed", "title": "Typed In By Hand"}
    Ledger(filled, "lit-review").append(record)
    bib = filled / "paper.bib"
    bib.write_text(bib.read_text() + "@misc{hand2020typed, title={Typed In By Hand}, year={2020}}\n")
    report = verify_citations(filled, "paper.tex", "paper.bib")
    assert [(p.kind, p.key) for p in report.problems] == [("not-from-api", "hand2020typed")]


def test_verify_bib_damage(cli, filled):
    clean_paper(cli, filled)
    bib = filled / "paper.bib"
    bib.write_text(bib.read_text() + "@misc{broken, title={no end\n"
                   "@misc{devlin2019bert, title={again}}\n")
    report = verify_citations(filled, "paper.tex", "paper.bib")
    kinds = sorted({p.kind for p in report.problems})
    assert "bib-parse-error" in kinds and not report.ok


def test_verify_missing_files_are_problems_not_exceptions(cli, project):
    report = verify_citations(project, "nope.tex", None)
    assert not report.ok and report.problems[0].kind == "missing-file"
    assert report.as_json()["problems"][0]["message"].startswith("no such LaTeX file")
    result = cli("lit", "verify")
    assert result.exit_code == 1 and "no such LaTeX file" in result.stdout
    write_tex(project, "\\cite{x}")
    report = verify_citations(project, "paper.tex", None)
    assert {p.kind for p in report.problems} == {"missing-file", "missing-bib-entry"}


# -- nearest -------------------------------------------------------------------------------------

def test_rank_on_a_small_corpus():
    corpus = [
        Paper("Graph neural networks for molecules", abstract="message passing on molecular graphs",
              key="a"),
        Paper("Sparse attention for long documents", abstract="attention scales to long sequences",
              key="b"),
        Paper("Low-rank attention approximation", abstract="linear complexity self attention",
              key="c"),
        Paper("Protein folding with deep learning", abstract=None, key="d"),
    ]
    ranked = rank("linear time attention for long sequences", corpus, k=10)
    assert [n.paper.key for n in ranked] == ["b", "c"]
    assert ranked[0].score > ranked[1].score > 0
    assert rank("molecular graphs", corpus, k=1)[0].paper.key == "a"
    assert rank("zzz qqq", corpus) == []


def test_nearest_command(cli, filled):
    result = cli("lit", "nearest", "long document transformer attention", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [p["key"] for p in data["papers"]][0] == "beltagy2020longformer"
    assert len(data["papers"]) == 2
    human = cli("lit", "nearest", "bidirectional language representation")
    assert human.stdout.splitlines()[0].split()[1] == "devlin2019bert"
    empty = cli("lit", "nearest", "zzzz")
    assert "no ledger paper shares a term" in empty.stdout


def test_verify_paths_are_relative_to_the_shell(cli, filled, monkeypatch):
    clean_paper(cli, filled)
    monkeypatch.chdir(filled / "sections")
    result = cli("lit", "verify", "../paper.tex", "--bib", "../paper.bib")
    assert result.exit_code == 0, result.output
    assert cli("lit", "verify").exit_code == 0  # default: the project's paper.tex


def test_rank_scores_are_tfidf_cosines():
    import math

    import numpy as np

    corpus = [Paper("alpha beta beta", key="x"), Paper("beta gamma", key="y"),
              Paper("delta", key="z")]
    # columns: alpha, beta, gamma, delta
    counts = np.array([[1, 2, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=float)
    df = (counts > 0).sum(axis=0)
    idf = np.log((1 + 3) / (1 + df)) + 1
    docs = np.where(counts > 0, 1 + np.log(np.maximum(counts, 1)), 0) * idf
    query = np.array([0, 1, 1, 0]) * idf  # "beta gamma"
    expected = docs @ query / (np.linalg.norm(docs, axis=1) * np.linalg.norm(query))
    ranked = rank("beta gamma", corpus)
    assert [n.paper.key for n in ranked] == ["y", "x"]
    assert math.isclose(ranked[0].score, expected[1]) and math.isclose(ranked[1].score, expected[0])


MATH_PAPER = {"type": "paper", "key": "muller2021alpha",
              "title": "On $\\alpha$-Divergences & 50% of Q_A Tests", "authors": ["Zoë Müller"],
              "year": 2021, "venue": "Journal of Machine Learning Research",
              "ids": {"s2": "c" * 40, "doi": None, "arxiv": None}, "abstract": None,
              "url": None, "citation_count": 3, "sources": ["s2"], "query": "alpha"}


def test_math_and_special_characters_survive_bib_and_verify(cli, filled):
    Ledger(filled, "lit-review").append(MATH_PAPER)
    write_tex(filled, "\\cite{muller2021alpha}")
    assert cli("lit", "bib", "--cited", "paper.tex", "--out", "paper.bib").exit_code == 0
    text = (filled / "paper.bib").read_text()
    assert "{On $\\alpha$-Divergences \\& 50\\% of Q\\_A Tests}" in text
    result = cli("lit", "verify")
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(not (shutil.which("pdflatex") and shutil.which("bibtex")),
                    reason="needs pdflatex and bibtex (TeX Live)")
def test_generated_bib_compiles_with_bibtex(cli, filled):
    Ledger(filled, "lit-review").append(MATH_PAPER)
    keys = KEYS + ["muller2021alpha"]
    (filled / "paper.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\n\\nocite{" + ",".join(keys) + "}\n"
        "\\bibliographystyle{plain}\n\\bibliography{paper}\n\\end{document}\n")
    assert cli("lit", "bib", "--out", "paper.bib").exit_code == 0
    for step in (["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                 ["bibtex", "paper"],
                 ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"]):
        done = subprocess.run(step, cwd=filled, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:]
    bbl = (filled / "paper.bbl").read_text()
    assert bbl.count("\\bibitem") == len(keys)
    assert "Attention is All you Need" in bbl and "$\\alpha$-Divergences" in bbl
    blg = (filled / "paper.blg").read_text()
    assert "error message" not in blg


def test_hand_typed_record_does_not_block_the_api_record(cli, project, standard_routes):
    Ledger(project, "lit-review").append_many([
        {"type": "paper", "key": "vaswani2017attention", "title": "Attention Is All You Need",
         "year": 2017, "authors": ["Ashish Vaswani"]},
        {"type": "paper", "key": "hand2020linformer", "title": "Linformer: Self-Attention with "
         "Linear Complexity", "year": 2020}])
    out = json.loads(cli("lit", "search", "efficient transformers", "--json").stdout)
    keys = [p["key"] for p in out["papers"]]
    # The hand records' keys stay taken; the API records are recorded beside them.
    assert "vaswani2017attentionb" in keys and "wang2020linformer" in keys
    assert out["recorded"] == 6
    write_tex(project, "\\cite{hand2020linformer}")
    (project / "paper.bib").write_text(
        "@misc{hand2020linformer, title={Linformer: Self-Attention with Linear Complexity},"
        " year={2020}}\n")
    [problem] = verify_citations(project, "paper.tex", None).problems
    assert problem.kind == "not-from-api"
    assert problem.hint == "cite the API record of this paper instead: wang2020linformer"


# -- issue 18 items 20, 24: every bib the paper names, \nocite{*}, NUL bytes --------------------

_FORGED = "@misc{forged2024paper, title={A Paper No API Returned}, author={Nobody}, year={2024}}\n"


def test_every_bib_in_the_bibliography_list_is_verified(cli, filled):
    clean_paper(cli, filled)
    tex = filled / "paper.tex"
    tex.write_text(tex.read_text().replace("\\bibliography{paper}", "\\bibliography{paper, extra}")
                   .replace("Transformers~", "Forged~\\cite{forged2024paper} Transformers~"))
    (filled / "extra.bib").write_text(_FORGED)
    report = verify_citations(filled, "paper.tex", None)
    assert [(p.kind, p.key, p.file) for p in report.problems] == [
        ("not-in-ledger", "forged2024paper", "extra.bib")]
    assert report.as_json()["bibs"] == [str(filled / "paper.bib"), str(filled / "extra.bib")]
    result = cli("lit", "verify")
    assert result.exit_code == 1 and "not-in-ledger: extra.bib:1:" in result.stdout


def test_a_missing_second_bib_is_a_problem(cli, filled):
    clean_paper(cli, filled)
    tex = filled / "paper.tex"
    tex.write_text(tex.read_text().replace("\\bibliography{paper}", "\\bibliography{paper,gone}"))
    report = verify_citations(filled, "paper.tex", None)
    assert [(p.kind, p.file) for p in report.problems] == [("missing-file", str(filled / "gone.bib"))]


def test_nocite_star_cites_every_entry_of_every_bib(cli, filled):
    clean_paper(cli, filled)
    tex = filled / "paper.tex"
    tex.write_text(tex.read_text().replace("\\bibliography{paper}",
                                           "\\nocite{*}\\bibliography{paper,extra}"))
    (filled / "extra.bib").write_text(_FORGED)
    report = verify_citations(filled, "paper.tex", None)
    assert report.as_json()["cites_all"] is True
    assert "forged2024paper" in report.cited
    assert [(p.kind, p.key) for p in report.problems] == [("not-in-ledger", "forged2024paper")]


def test_a_bib_with_nul_bytes_is_refused(cli, filled):
    clean_paper(cli, filled)
    bib = filled / "paper.bib"
    bib.write_bytes(bib.read_bytes() + b"\n@misc{x\x00y, title={t}}\n")
    report = verify_citations(filled, "paper.tex", None)
    assert any(p.kind == "bib-parse-error" and "NUL" in p.message for p in report.problems)
# Real names and venues that broke or bent the bib: an S2 author with three commas (PNAS,
# 10.1073/pnas.1414271111), a corporate author with commas and "and", accents, a Jr. suffix, an
# HTML entity in an S2 venue (Chaos, Solitons &amp; Fractals), a typed conference and journal.
AWKWARD = [
    {"type": "paper", "key": "makris2014developing", "title": "Developing functional "
     "musculoskeletal tissues through hypoxia and lysyl oxidase-induced collagen cross-linking",
     "authors": ["Eleftherios Makris", "D. Responte", "N. Paschos", "Jerry C. Hu",
                 "Kyriacos, Κυριάκος, Athanasiou, Αθανασίου"], "year": 2014,
     "venue": "Proceedings of the National Academy of Sciences of the United States of America",
     "venue_type": "journal", "ids": {"s2": "db3720c812a462ef955d5654b65ca9189d4b8372",
                                      "doi": "10.1073/pnas.1414271111"}, "sources": ["s2"]},
    {"type": "paper", "key": "national2019reproducibility",
     "title": "Reproducibility and Replicability in Science",
     "authors": ["National Academies of Sciences, Engineering, and Medicine"], "year": 2019,
     "venue": None, "venue_type": "book", "ids": {"doi": "10.17226/25303"},
     "sources": ["crossref"]},
    {"type": "paper", "key": "steele1990common", "title": "Common Lisp: The Language",
     "authors": ["Guy L. Steele Jr."], "year": 1990, "venue": None,
     "ids": {"s2": "d" * 40}, "sources": ["s2"]},
    {"type": "paper", "key": "zaheer2020big", "title": "Big Bird: Transformers for Longer Sequences",
     "authors": ["Manzil Zaheer", "Santiago Ontañón", "Jürgen Schmidhuber"], "year": 2020,
     "venue": "Neural Information Processing Systems", "venue_type": "conference",
     "ids": {"arxiv": "2007.14062"}, "sources": ["openalex"]},
    {"type": "paper", "key": "anon2021chaos", "title": "Turing patterns &amp; 100% of them",
     "authors": ["A. Author"], "year": 2021, "venue": "Chaos, Solitons &amp; Fractals",
     "ids": {"s2": "e" * 40}, "sources": ["s2"]},
]


@pytest.mark.skipif(not (shutil.which("pdflatex") and shutil.which("bibtex")),
                    reason="needs pdflatex and bibtex (TeX Live)")
def test_awkward_names_and_venues_pass_bibtex(cli, project):
    Ledger(project, "lit-review").append_many(AWKWARD)
    assert cli("lit", "bib", "--out", "paper.bib").exit_code == 0
    text = (project / "paper.bib").read_text()
    assert "{Kyriacos, Κυριάκος, Athanasiou, Αθανασίου}" in text
    assert "{National Academies of Sciences, Engineering, and Medicine}" in text
    assert "Steele, Jr., Guy L." in text
    assert "Chaos, Solitons \\& Fractals" in text and "&amp;" not in text
    assert "{Turing patterns \\& 100\\% of them}" in text
    (project / "paper.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\n\\nocite{*}\n"
        "\\bibliographystyle{plain}\n\\bibliography{paper}\n\\end{document}\n")
    for step in (["pdflatex", "-interaction=nonstopmode", "paper.tex"], ["bibtex", "paper"]):
        done = subprocess.run(step, cwd=project, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    blg = (project / "paper.blg").read_text()
    assert "Warning--" not in blg and "error message" not in blg, blg
    bbl = (project / "paper.bbl").read_text()
    assert bbl.count("\\bibitem") == len(AWKWARD)
    # What bib wrote, verify reads back: every first author matches its ledger record.
    (project / "paper.tex").write_text("\\cite{" + ",".join(r["key"] for r in AWKWARD) +
                                       "}\\bibliography{paper}\n")
    result = cli("lit", "verify")
    assert result.exit_code == 0, result.output


def test_entry_type_follows_the_sources_venue_type():
    pnas = Paper("t", venue="Proceedings of the National Academy of Sciences", venue_type="journal")
    assert entry_type(pnas) == "article"  # the name says "Proceedings"; the source says journal
    assert entry_type(Paper("t", venue="Transactions of the ACL", venue_type="conference")) \
        == "inproceedings"
    assert entry_type(Paper("t", venue="arXiv.org", venue_type="preprint")) == "misc"
    assert entry_type(Paper("t", venue=None, venue_type="journal")) == "misc"


def test_s2_venue_type_from_the_real_fields():
    from rstack.literature.s2 import venue_and_type
    # Shapes of real S2 answers (publicationVenue typed; journal only; arXiv; nothing).
    assert venue_and_type({"venue": "Proceedings of the National Academy of Sciences of the "
                           "United States of America", "publicationTypes": ["JournalArticle"],
                           "journal": {"name": "Proceedings of the National Academy of Sciences"},
                           "publicationVenue": {"name": "Proceedings of the National Academy of "
                                                "Sciences of the United States of America",
                                                "type": "journal"}})[1] == "journal"
    assert venue_and_type({"venue": "", "publicationTypes": None,
                           "journal": {"name": "Journal of Applied Physics"}}) == (
        "Journal of Applied Physics", "journal")
    assert venue_and_type({"venue": "Neural Information Processing Systems",
                           "publicationTypes": ["JournalArticle"],
                           "journal": {"name": "ArXiv", "volume": "abs/2107.13163"},
                           "publicationVenue": {"name": "Neural Information Processing Systems",
                                                "type": "conference"}}) == (
        "Neural Information Processing Systems", "conference")
    assert venue_and_type({"venue": "arXiv.org", "journal": {"name": "ArXiv"},
                           "publicationVenue": {"name": "arXiv.org"}}) == ("arXiv.org", "preprint")
    assert venue_and_type({"venue": "", "journal": {"name": ""}}) == (None, None)
