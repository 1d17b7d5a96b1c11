"""`rstack paper audit`: a clean paper passes with no finding; each planted problem is caught.

One real compile (module-scoped) gives the clean project; each test audits a copy of it.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from paper_fixtures import append_run, home_at, make_project, write_summary
from rstack.paper.audit import AuditReport, Source, audit_numbers, masked_text, summary_candidates
from rstack.paper.build import build_paper
from rstack.paper.new import new_paper

CLEAN_RESULTS = r"""
With warmup, \texttt{treatment} reaches \rsTreatmentValLossMean{} against \rsBaselineValLossMean{}
for \texttt{baseline}, a difference of \rsTreatmentValLossDelta{} over 3 seeds per arm
(Table~\ref{tab:main}, Figure~\ref{fig:fig-bar}). The treatment significantly lowers val\_loss
(Welch $p < 0.05$; 95\% confidence intervals). The baseline mean is 0.412, and the warmup lasts
200 steps, following \citet{goyal2017accurate} and Vaswani et al. (2017).
Runs use CIFAR-10-style splits of 512 examples.  % rstack: allow 512 dataset size from the plan
See Section~\ref{sec:method} and Section 3 for the method; ResNet-50 is not used.
\begin{figure}[t]
  \centering
  \includegraphics[width=0.9\linewidth]{analysis/fig_curves.pdf}
  \vspace{-2pt}
  \caption{Validation loss over training, mean and band across the 3 seeds.}
  \label{fig:curves-extra}
\end{figure}
"""


def _paper_text(root, results: str = CLEAN_RESULTS) -> str:
    text = (root / "paper.tex").read_text(encoding="utf-8")
    marker = "\\section{Discussion and Limitations}"
    return text.replace(marker, results + "\n" + marker)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A clean project: fixtures + `paper new` + the clean results text + one real build."""
    root = tmp_path_factory.mktemp("clean") / "proj"
    root.mkdir()
    with home_at(root.parent / "home"):
        make_project(root)
        new_paper(root, "neurips", title="Warmup Lowers Validation Loss")
        (root / "paper.tex").write_text(_paper_text(root), encoding="utf-8")
        result = build_paper(root, engine="auto")  # not a developer's RSTACK_LATEX_ENGINE
    assert result.ok, [str(d) for d in result.log.errors]
    return root


@pytest.fixture
def proj(built, tmp_path, monkeypatch):
    root = tmp_path / "proj"
    shutil.copytree(built, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("RSTACK_PROJECT", str(root))
    return root


def _audit(cli, *extra):
    result = cli("paper", "audit", "--json", *extra)
    return result.exit_code, json.loads(result.output)


def _edit(root, old, new, name="paper.tex"):
    path = root / name
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(root, needle):
    for number, line in enumerate((root / "paper.tex").read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_clean_paper_passes_with_no_finding(proj, cli):
    code, report = _audit(cli)
    assert report["findings"] == []
    assert code == 0 and report["ok"] is True
    assert set(report["checks"].values()) == {"pass"}
    traced = {t["text"]: t for t in report["numbers"]["traced"]}
    assert traced["0.412"]["source"] == "summary"
    assert traced["0.412"]["run_ids"] == ["baseline-s0", "baseline-s1", "baseline-s2"]
    assert traced["200"]["source"] == "plan"
    assert traced["3"]["source"] in ("plan", "summary")
    assert traced["512"]["source"] in ("plan", "allow")
    assert report["numbers"]["macros_used"] >= 3
    record = json.loads((proj / ".rstack" / "paper-audit.json").read_text())
    assert record["ok"] is True and record["errors"] == 0
    import hashlib

    assert record["pdf_sha256"] == hashlib.sha256((proj / "paper.pdf").read_bytes()).hexdigest()
    assert record["tex_sha256"] == hashlib.sha256((proj / "paper.tex").read_bytes()).hexdigest()
    human = cli("paper", "audit")
    assert human.exit_code == 0
    assert human.output.startswith("audit PASS: citations pass, numbers pass, artifacts pass, "
                                   "claims pass, build pass;")


def test_typed_number_no_run_produced(proj, cli):
    _edit(proj, "The baseline mean is 0.412,", "The baseline mean is 0.412, the treatment 0.351,")
    build_paper(proj)
    code, report = _audit(cli)
    assert code == 1
    [finding] = report["findings"]
    assert finding["check"] == "numbers"
    assert finding["line"] == _line_of(proj, "0.351")
    assert finding["message"] == ("typed number 0.351 in the section 'Results' matches no "
                                  "analysed run, plan value or allow comment")
    assert "% rstack: allow 0.351 <reason>" in finding["hint"]
    record = json.loads((proj / ".rstack" / "paper-audit.json").read_text())
    assert (record["ok"], record["errors"], record["checks"]["numbers"]) == (False, 1, "fail")


def test_typed_number_in_abstract_and_caption_caught(proj, cli):
    _edit(proj, "State the question, what you did, and the main result.",
          "We cut the loss by 12.5\\%.")
    _edit(proj, "mean and band across the 3 seeds.", "mean and band across the 7 seeds.")
    build_paper(proj)
    code, report = _audit(cli)
    messages = [f["message"] for f in report["findings"]]
    assert code == 1
    assert ("typed number 12.5% in the abstract matches no analysed run, plan value or allow "
            "comment") in messages
    assert ("count '7 seeds' (7) matches no seed count in the plan or the analysis (known: 3 "
            "(seeds per arm))" in messages)


def test_typed_number_in_title_and_introduction_caught(proj, cli):
    # A headline result is typed first in the title or the introduction; both are audited.
    _edit(proj, "Motivate the question and state the contributions.",
          "Our method cuts the validation loss by 14.8\\%.")
    text = (proj / "paper.tex").read_text()
    title = re.search(r"\\title\{([^}]*)\}", text).group(1)
    _edit(proj, f"\\title{{{title}}}", f"\\title{{{title}: 2.5x Faster}}")
    build_paper(proj)
    code, report = _audit(cli)
    messages = [f["message"] for f in report["findings"]]
    assert code == 1
    assert ("typed number 14.8% in the section 'Introduction' matches no analysed run, plan "
            "value or allow comment") in messages
    assert "typed number 2.5 in the title matches no analysed run, plan value or allow comment" \
        in messages


def test_allow_comment_needs_a_reason(proj, cli):
    _edit(proj, "% rstack: allow 512 dataset size from the plan", "% rstack: allow 512")
    code, report = _audit(cli)
    assert code == 1
    assert {"check": "numbers", "severity": "error", "file": "paper.tex",
            "line": _line_of(proj, "rstack: allow 512"),
            "message": "`rstack: allow 512` gives no reason",
            "hint": "say why the number is not a result, after the number"} in report["findings"]


def test_citation_not_in_ledger(proj, cli):
    _edit(proj, "following \\citet{goyal2017accurate}",
          "following \\citet{goyal2017accurate} and \\citet{smith2021made}")
    bib = proj / "paper.bib"
    bib.write_text(bib.read_text() + "\n@misc{smith2021made,\n  title = {A Paper Nobody "
                   "Returned},\n  author = {Jane Smith},\n  year = {2021}\n}\n")
    code, report = _audit(cli)
    assert code == 1
    cites = [f for f in report["findings"] if f["check"] == "citations"]
    assert cites and all("smith2021made" in f["message"] for f in cites)


def test_real_paper_with_wrong_year(proj, cli):
    import re

    bib = proj / "paper.bib"
    text = bib.read_text(encoding="utf-8")
    entry = re.search(r"@\w+\{vaswani2017attention,.*?\n\}", text, re.S).group()
    assert "2017" in entry
    bib.write_text(text.replace(entry, entry.replace("2017}", "2016}")), encoding="utf-8")
    code, report = _audit(cli)
    assert code == 1
    cites = [f for f in report["findings"] if f["check"] == "citations"]
    assert len(cites) == 1
    assert "vaswani2017attention" in cites[0]["message"]
    assert "year" in cites[0]["message"] and "2016" in cites[0]["message"]


def test_missing_figure(proj, cli):
    _edit(proj, "{analysis/fig_curves.pdf}", "{analysis/fig_missing.pdf}")
    code, report = _audit(cli)
    assert code == 1
    missing = [f for f in report["findings"] if f["check"] == "artifacts"]
    assert missing == [{"check": "artifacts", "severity": "error", "file": "paper.tex",
                        "line": _line_of(proj, "fig_missing"),
                        "message": "\\includegraphics{analysis/fig_missing.pdf}: file not found",
                        "hint": "run `rstack analyze` to write analysis/ figures and tables, "
                                "or fix the path"}]


def test_stale_figure(proj, cli):
    append_run(proj, "treatment-s3", "treatment", 3, 0.360, "2026-11-21T09:00:00.000Z")
    code, report = _audit(cli)
    assert code == 1
    stale = [f for f in report["findings"] if "stale" in f["message"]]
    # fig_bar, fig_curves (twice: Results and the extra figure), the table and numbers.tex
    assert len(stale) == 5
    assert all("treatment: treatment-s3" in f["message"] for f in stale)
    assert all(f["hint"] == "re-run `rstack analyze`, then `rstack paper build`" for f in stale)


def test_failed_newer_run_does_not_make_figures_stale(proj, cli):
    from rstack.ledger import Ledger

    Ledger(proj, "experiments").append({
        "type": "run.finished", "ts": "2026-11-21T09:00:00.000Z", "run_id": "treatment-s4",
        "arm": "treatment", "seed": 4, "status": "failed", "exit_code": 1, "category": "crash",
        "hint": None, "metrics": None, "artifacts": [], "duration_s": 1.0, "cost_usd": 0.0})
    code, report = _audit(cli)
    assert code == 0, report["findings"]


def test_edited_and_foreign_figures(proj, cli):
    from paper_fixtures import minimal_pdf

    with open(proj / "analysis" / "fig_bar.pdf", "ab") as handle:
        handle.write(b"\n% touched\n")
    minimal_pdf(proj / "hand_drawn.pdf")
    _edit(proj, "{analysis/fig_curves.pdf}", "{hand_drawn}")
    code, report = _audit(cli)
    messages = [f["message"] for f in report["findings"] if f["check"] == "artifacts"]
    assert code == 1
    assert ("\\includegraphics{analysis/fig_bar.pdf}: analysis/fig_bar.pdf changed since rstack "
            "analyze wrote it (sha256 differs)") in messages
    assert ("\\includegraphics{hand_drawn}: hand_drawn.pdf was not produced by rstack analyze "
            "(not in analysis/summary.json artifacts)") in messages


def test_unsupported_significantly(proj, cli):
    summary = json.loads((proj / "analysis" / "summary.json").read_text())
    summary["comparisons"][0]["significant"] = False
    summary["comparisons"][0]["p_value"] = 0.21
    write_summary(proj, summary)
    code, report = _audit(cli)
    assert code == 1
    claims = [f for f in report["findings"] if f["check"] == "claims"
              and "pre-registered" not in f["message"]]
    assert claims == [{
        "check": "claims", "severity": "error", "file": "paper.tex",
        "line": _line_of(proj, "significantly lowers"),
        "message": "'significantly' next to arm 'treatment', but rstack analyze marked its "
                   "comparison not significant (val_loss: p=0.21)",
        "hint": "drop the word, or run more seeds, re-run `rstack analyze` and cite the "
                "comparison"}]


def test_negated_significance_is_not_a_claim(proj, cli):
    summary = json.loads((proj / "analysis" / "summary.json").read_text())
    summary["comparisons"][0]["significant"] = False
    write_summary(proj, summary)
    _edit(proj, "The treatment significantly lowers val\\_loss",
          "The treatment does not significantly lower val\\_loss")
    build_paper(proj)
    code, report = _audit(cli)
    assert [f for f in report["findings"] if f["check"] == "claims"
              and "pre-registered" not in f["message"]] == []


def test_build_findings(proj, cli):
    _edit(proj, "Summarise the finding.", "Summarise the finding (Figure~\\ref{fig:nowhere}).")
    code, report = _audit(cli)
    assert code == 1
    assert [f["message"] for f in report["findings"]] == ["paper.tex changed since the last build"]
    build_paper(proj)
    code, report = _audit(cli)
    assert [f["message"] for f in report["findings"]] == [
        "undefined reference 'fig:nowhere' in the last build"]
    record_path = proj / ".rstack" / "paper-build.json"
    record = json.loads(record_path.read_text())
    record.update(undefined_references=[], main_pages=12)
    record_path.write_text(json.dumps(record))
    code, report = _audit(cli)
    assert [f["message"] for f in report["findings"]] == [
        "12 pages of main text, over the neurips limit of 9"]
    record_path.unlink()
    code, report = _audit(cli)
    assert [f["message"] for f in report["findings"]] == ["the paper has not been built"]


def test_audit_without_paper(project, cli):
    result = cli("paper", "audit")
    assert result.exit_code == 1
    assert result.output == (f"Error: {project / 'paper.tex'}: no such file\n"
                             "  fix: write one with `rstack paper new --venue NAME`\n")


# -- the number scanner on snippets (no compile) ------------------------------------------------

SUMMARY = {"primary_metric": "acc", "baseline_arm": "base", "alpha": 0.05, "confidence": 0.95,
           "arms": {"base": {"run_ids": ["r1", "r2"], "metrics": {"acc": {
               "n": 2, "mean": 0.81234, "std": 0.01, "ci_low": 0.7, "ci_high": 0.92,
               "values": [0.80, 0.82468]}}}},
           "comparisons": [{"arm": "big", "baseline": "base", "metric": "acc", "delta": 0.0213,
                            "rel_delta": 0.0262, "p_value": 0.03, "significant": True}],
           "quantities": []}
PLAN = {"execution": {"arms": {"base": ["--lr", "1e-3"], "big": ["--width", "1024"]},
                      "seeds": [0, 1, 2], "timeout_s": 600}}


def _scan(body: str, summary=SUMMARY, plan=PLAN) -> AuditReport:
    report = AuditReport(tex="paper.tex")
    text = "\\begin{document}\n\\section{Results}\n" + body + "\n\\end{document}\n"
    audit_numbers(report, Source(text), summary, plan, [])
    return report


@pytest.mark.parametrize("body", [
    r"Accuracy reaches 0.81 (Table~\ref{tab:a}, Figure 2, Eq.~(3), Section 4.1).",
    r"The mean is 0.812 and one run got 0.825; the gain is 2.6\% ($p = 0.030$).",
    r"We train with learning rate $10^{-3}$ and width 1024 for 3 seeds, at most 600 s.",
    r"We use a learning rate of 1e-3 and a learning rate of $1 \times 10^{-3}$.",
    r"\includegraphics[width=0.45\linewidth]{fig_2.pdf}\hspace{0.5cm}\vspace{-3mm}",
    r"\begin{tabular}{p{2cm}c}\toprule \multicolumn{2}{c}{0.812} \\ \cmidrule(lr){1-2} \end{tabular}",
    r"As \citet{smith2020} and Smith et al. (2019) and Jones, 2018 show, ResNet-50 on CIFAR-10 "
    r"with GPT-2 and an L2 loss in 3D (1) beats x86; PyTorch 2.1.0 was used.",
    r"$x_1 + x^2 = \theta_{12}$ and \cite[p.~7]{smith2020}.",
    r"95\% confidence intervals; significance at 0.05.",
])
def test_scanner_ignores_what_is_not_a_reported_number(body):
    report = _scan(body)
    assert [f.message for f in report.findings] == []


@pytest.mark.parametrize("body, typed", [
    (r"Accuracy reaches 0.87.", "0.87"),
    (r"Accuracy reaches $0.799$ on the test set.", "0.799"),
    (r"It takes 12 hours.", "12"),
    (r"\begin{tabular}{lc} base & 0.6 \\ \end{tabular}", "0.6"),
    (r"a 4x speedup", "4"),
    (r"we reach 71.3\% accuracy", "71.3%"),
    (r"between 0.81-0.97 on Llama-2-7B", "0.97"),
    (r"a 4.5x speedup over GPT-2", "4.5"),
])
def test_scanner_catches_typed_results(body, typed):
    report = _scan(body)
    assert [f.message.split(" in the ")[0] for f in report.findings] == [f"typed number {typed}"]


def test_scanner_only_checks_result_regions():
    report = AuditReport(tex="paper.tex")
    text = ("\\begin{document}\n\\section{Method}\nWe use 0.87 and 17 layers.\n"
            "\\section{Results}\nAccuracy is 0.66.\n\\section{Related Work}\nBack in 1999, 42.\n"
            "\\end{document}\n")
    audit_numbers(report, Source(text), SUMMARY, PLAN, [])
    assert [(f.line, f.message.split(" in ")[0]) for f in report.findings] == [
        (5, "typed number 0.66")]


def test_comments_are_not_scanned():
    report = _scan("Accuracy is 0.81. % was 0.93 before the fix")
    assert report.findings == []


def test_masked_text_keeps_offsets():
    text = r"see \ref{fig:1} and 0.5\linewidth"
    assert len(masked_text(text)) == len(text)


def test_summary_candidates_name_runs():
    values = {c.detail: c.run_ids for c in summary_candidates(SUMMARY)}
    assert values["base acc mean"] == ["r1", "r2"]


# -- tracing order and strength -----------------------------------------------------------------

TRACE_SUMMARY = {
    "primary_metric": "ece", "baseline_arm": "base", "alpha": 0.05, "confidence": 0.95,
    "min_seeds": 3,
    "arms": {"base": {"run_ids": ["b0", "b1", "b2", "b3", "b4"], "metrics": {"val_nll": {
        "n": 5, "mean": 0.4651, "std": 0.0939, "ci_low": 0.348, "ci_high": 0.582,
        "values": [0.41, 0.52, 0.47, 0.39, 0.5355]}}}},
    "comparisons": [{"arm": "smooth", "baseline": "base", "metric": "val_accuracy",
                     "delta": -0.0019, "rel_delta": -0.0024, "p_value": 0.951,
                     "significant": False}],
    "quantities": [
        {"macro": "rsBaseValNllStd", "value": 0.0939, "text": "0.094", "run_ids": ["b0"],
         "arm": "base", "metric": "val_nll", "stat": "std"},
        {"macro": "rsSmoothVsBaseEceDelta", "value": 0.050190, "text": "+0.0502",
         "run_ids": ["s0", "b0"], "arm": "smooth", "metric": "ece", "stat": "delta"},
        {"macro": "rsBaseValNllN", "value": 5, "text": "5", "run_ids": ["b0"], "arm": "base",
         "metric": "val_nll", "stat": "n"},
        {"macro": "rsSmoothAccMean", "value": 0.9514, "text": "0.951", "run_ids": ["s0"],
         "arm": "smooth", "metric": "acc", "stat": "mean"}]}
TRACE_PLAN = {"hypothesis": {"question": "Does label smoothing (0.1) help?"},
              "execution": {"arms": {"base": ["--smoothing", "0.0"],
                                     "smooth": ["--smoothing", "0.1"]},
                            "seeds": [0, 1, 2, 3, 4], "timeout_s": 120}}


def _traced(body, summary=TRACE_SUMMARY, plan=TRACE_PLAN):
    report = _scan(body, summary, plan)
    return report, {t.text: t for t in report.traced}


def test_one_significant_digit_never_traces_by_rounding():
    # 0.09 is the std 0.0939 rounded, but one digit matches too much to mean anything
    report, traced = _traced(r"With smoothing the ECE fell to 0.09.")
    [finding] = report.findings
    assert finding.message == ("typed number 0.09 in the section 'Results' matches no analysed "
                               "run, plan value or allow comment")
    assert finding.hint.startswith("0.09 has fewer than 2 significant digits, too few to trace "
                                   "by rounding (it would pass for \\rsBaseValNllStd = 0.0939); "
                                   "quote it with its \\rs... macro")
    for body in (r"It fell to 0.5.", r"It rose by 7."):
        assert len(_scan(body, TRACE_SUMMARY, TRACE_PLAN).findings) == 1, body


def test_two_significant_digits_trace_at_printed_precision():
    report, traced = _traced(r"The spread is 0.094 (0.0939 to four places), one run 0.54.")
    assert report.findings == []
    assert (traced["0.094"].match, traced["0.094"].detail) == (
        "printed", "\\rsBaseValNllStd (printed 0.094)")
    assert traced["0.0939"].match == "rounded"
    assert traced["0.54"].detail == ("base val_nll value of one run = 0.5355, rounded to 2 "
                                     "decimal(s)")


def test_plan_values_come_before_computed_ones():
    report, traced = _traced(r"Smoothing 0.1 and 0.10 for 120 s over 5 seeds.")
    assert report.findings == []
    assert (traced["0.1"].source, traced["0.1"].detail) == (
        "plan", "experiment-plan.md hypothesis.question")
    assert traced["0.10"].source == "plan"  # not the std 0.0939 -> 0.09, nor a value near 0.10
    assert traced["120"].detail == "experiment-plan.md execution.timeout_s"
    assert traced["5"].source == "plan"


def test_analysis_constants_are_declared():
    report, traced = _traced(r"Error bars are 95\% intervals (0.95 level), alpha 0.05, "
                             r"3 seeds at least.", plan=None)
    assert report.findings == []
    # 95 is the confidence level, not the accuracy p-value 0.951 in percent
    assert (traced["95"].source, traced["95"].detail) == (
        "analysis-setting", "summary.json confidence, x100 as a percentage")
    assert traced["0.95"].detail == "summary.json confidence"
    assert traced["0.05"].detail == "summary.json alpha"
    assert traced["3"].detail == "summary.json min_seeds"
    report, traced = _traced(r"over 5 seeds", plan=None)
    assert traced["5"].detail == "summary.json arms.base: number of seeds (runs)"
    assert traced["5"].run_ids == ["b0", "b1", "b2", "b3", "b4"]


def test_printed_text_traces_exactly():
    report, traced = _traced(r"ECE rose by 0.0502 (n = 5 per arm).", plan=None)
    assert report.findings == []
    assert traced["0.0502"].detail == "\\rsSmoothVsBaseEceDelta (printed +0.0502)"
    assert traced["0.0502"].run_ids == ["s0", "b0"]


def test_percent_form_only_with_a_percent_sign():
    report, traced = _traced(r"Accuracy is 95.1\%.", plan=None)
    assert report.findings == []
    assert traced["95.1"].detail == ("\\rsSmoothAccMean = 0.9514, x100 as a percentage, rounded "
                                     "to 1 decimal(s)")
    report = _scan(r"Accuracy is 95.1 points.", TRACE_SUMMARY, None)
    assert [f.message.split(" in the ")[0] for f in report.findings] == ["typed number 95.1"]


@pytest.mark.parametrize("body, typed", [
    (r"a 7.3-fold improvement", "7.3"),
    (r"a 7.3fold improvement", "7.3"),
    (r"7.3 times faster", "7.3"),
    (r"a 7.3x speedup", "7.3"),
    (r"a 7.3× speedup", "7.3"),
    (r"a $7.3\times$ speedup", "7.3"),
    (r"up by 7.3\%", "7.3%"),
    (r"5-fold cross-validation", "5"),
])
def test_multipliers_and_percentages_are_checked(body, typed):
    report = _scan(body)
    assert [f.message.split(" in the ")[0] for f in report.findings] == [f"typed number {typed}"]


@pytest.mark.parametrize("body", [
    "GPT-2 and GPT-4", "ResNet-50", "an L2 penalty", "CIFAR-10 and CIFAR-100", "3D convolutions",
    "Llama-2-7B", "x86 hosts", "the 1st run", "ImageNet-1k",
])
def test_names_with_digits_are_not_numbers(body):
    assert _scan(body).findings == []


# -- claims: significance in either direction ------------------------------------------------


def _set_comparison(root, **fields):
    summary = json.loads((root / "analysis" / "summary.json").read_text())
    summary["comparisons"][0].update(fields)
    write_summary(root, summary)


def test_significantly_worse_may_be_called_significant(proj, cli):
    _set_comparison(proj, significant=True, improved=False, ci_overlap=False,
                    verdict="significantly worse", p_value=0.00010021779143849131)
    # the plan's claim (warmup lowers val_loss) is now refuted, and the paper says so
    _edit(proj, "The treatment significantly lowers val\\_loss",
          "The pre-registered claim that warmup lowers val\\_loss is refuted. "
          "The treatment significantly raises val\\_loss")
    build_paper(proj)
    code, report = _audit(cli)
    assert report["findings"] == [] and code == 0


def test_significantly_better_next_to_a_worse_result(proj, cli):
    _set_comparison(proj, significant=True, improved=False, ci_overlap=False,
                    verdict="significantly worse", p_value=0.0001)
    _edit(proj, "The treatment significantly lowers val\\_loss",
          "The treatment is significantly better on val\\_loss")
    build_paper(proj)
    code, report = _audit(cli)
    assert code == 1
    assert [f for f in report["findings"] if f["check"] == "claims"
              and "pre-registered" not in f["message"]] == [{
        "check": "claims", "severity": "error", "file": "paper.tex",
        "line": _line_of(proj, "significantly better"),
        "message": "'significantly' with 'better' next to arm 'treatment', but rstack analyze "
                   "found the difference goes the other way (val_loss: significantly worse)",
        "hint": "state the direction the analysis found (its verdict in analysis/summary.json)"}]


def test_significantly_lower_next_to_a_higher_result(proj, cli):
    # one arm, a named metric, a lower/higher verb: the sign analyze found decides
    _set_comparison(proj, significant=True, improved=False, ci_overlap=False,
                    verdict="significantly worse", p_value=0.0001)
    _edit(proj, "The treatment significantly lowers val\\_loss",
          "The pre-registered claim that warmup lowers val\\_loss is refuted. "
          "The treatment significantly lowers val\\_loss")
    build_paper(proj)
    code, report = _audit(cli)
    assert code == 1
    assert [f for f in report["findings"] if f["check"] == "claims"
            and "pre-registered" not in f["message"]] == [{
        "check": "claims", "severity": "error", "file": "paper.tex",
        "line": _line_of(proj, "The treatment significantly lowers"),
        "message": "'significantly' with 'lower' next to arm 'treatment', but rstack analyze "
                   "found it higher (val_loss: significantly worse)",
        "hint": "state the direction the analysis found (its verdict in analysis/summary.json)"}]


def test_baseline_first_sentences_are_read_with_the_baseline_as_subject(proj, cli):
    _set_comparison(proj, significant=True, improved=False, ci_overlap=False,
                    verdict="significantly worse", p_value=0.0001)
    _edit(proj, "The treatment significantly lowers val\\_loss",
          "Contrary to the plan's claim that warmup lowers val\\_loss, "
          "the baseline is significantly better than the treatment on val\\_loss")
    build_paper(proj)
    code, report = _audit(cli)
    assert report["findings"] == [], [f["message"] for f in report["findings"]]


@pytest.mark.parametrize("fields, message, hint", [
    ({"p_value": 0.00010021779143849131, "ci_overlap": True},
     "(val_loss: p=1.0e-04)",
     "p=1.0e-04 is below 0.05, but the two confidence intervals overlap, which analyze does not "
     "call significant; drop the word and report the p-value and the intervals, or run more "
     "seeds and re-run `rstack analyze`"),
    ({"p_value": 0.0004, "ci_overlap": False, "n": 2, "n_baseline": 2},
     "(val_loss: p=4.0e-04)",
     "the comparison has fewer than 3 seeds in an arm (n=2, baseline n=2); drop the word, or run "
     "at least 3 seeds per arm and re-run `rstack analyze`"),
    ({"p_value": None, "ci_overlap": None},
     "(val_loss: p=none)",
     "analyze could compute no p-value (no variance across seeds); drop the word, or run more "
     "seeds and re-run `rstack analyze`"),
    ({"p_value": 0.123456, "ci_overlap": True},
     "(val_loss: p=0.123)",
     "drop the word, or run more seeds, re-run `rstack analyze` and cite the comparison"),
])
def test_not_significant_hint_fits_the_case(proj, cli, fields, message, hint):
    _set_comparison(proj, significant=False, verdict="not significant", **fields)
    code, report = _audit(cli)
    [claim] = [f for f in report["findings"] if f["check"] == "claims"
              and "pre-registered" not in f["message"]]
    assert claim["message"] == ("'significantly' next to arm 'treatment', but rstack analyze "
                                "marked its comparison not significant " + message)
    assert claim["hint"] == hint


def test_significant_on_a_metric_without_direction_names_the_missing_direction(proj, cli):
    # a small p on a metric with no declared direction: more seeds cannot make it significant,
    # declaring the direction can, so the fix says that
    _set_comparison(proj, significant=False, verdict="direction not declared", direction=None,
                    p_value=0.0015, p=0.0015, p_adjusted=None, ci_overlap=False)
    code, report = _audit(cli)
    [claim] = [f for f in report["findings"] if f["check"] == "claims"
              and "pre-registered" not in f["message"]]
    assert claim["message"] == ("'significantly' next to arm 'treatment', but rstack analyze "
                                "marked its comparison not significant (val_loss: p=0.0015)")
    assert claim["hint"] == (
        "val_loss has no declared direction, so analyze never calls a difference in it "
        "significant (its p-value is not Holm-adjusted); drop the word, or declare "
        "evaluation.metrics.val_loss.direction (minimize or maximize) in experiment-plan.md and "
        "re-run `rstack analyze`")


@pytest.mark.parametrize("definition", [
    r"\newcommand{\ourAcc}{0.97}",
    r"\renewcommand*{\ourAcc}{0.97}",
    r"\providecommand\ourAcc{0.97}",
    r"\def\ourAcc{0.97}",
    r"\newcommand{\ourAcc}[1]{#1 reaches 0.97}",
])
def test_number_hidden_in_a_macro_definition_is_caught(definition):
    """A result typed into a preamble macro prints in the results like a typed number."""
    report = AuditReport(tex="paper.tex")
    text = (definition + "\n\\begin{document}\n\\section{Results}\nAccuracy is \\ourAcc{}.\n"
            "\\end{document}\n")
    audit_numbers(report, Source(text), SUMMARY, PLAN, [])
    assert [(f.line, f.message.split(" matches")[0]) for f in report.findings] == [
        (1, r"typed number 0.97 in the definition of \ourAcc")]


@pytest.mark.parametrize("definition", [
    r"\newcommand{\best}[1]{\textbf{#1}}",
    r"\newcommand{\figw}{0.45\linewidth}",
    r"\newcommand{\ours}{ResNet-50}",
    r"\def\sep{\vspace{2pt}}",
    r"\newcommand{\baseAcc}{0.812}",
])
def test_macro_definitions_without_untraced_numbers_pass(definition):
    report = AuditReport(tex="paper.tex")
    text = definition + "\n\\begin{document}\n\\section{Results}\nSee \\best{x}.\n\\end{document}\n"
    audit_numbers(report, Source(text), SUMMARY, PLAN, [])
    assert [f.message for f in report.findings] == []


@pytest.mark.parametrize("definition", [
    r"\renewcommand{\arraystretch}{1.2}",
    r"\renewcommand{\section}{\@startsection{section}{1}{\z@}{-2ex}{1ex}{\bfseries}}",
    r"\def\baselinestretch{0.98}",
])
def test_layout_definitions_are_not_results(definition):
    report = AuditReport(tex="paper.tex")
    text = definition + "\n\\begin{document}\n\\section{Results}\nText.\n\\end{document}\n"
    audit_numbers(report, Source(text), SUMMARY, PLAN, [])
    assert [f.message for f in report.findings] == []


def test_build_older_than_the_analysis_or_a_replaced_pdf(proj, cli):
    """numbers.tex and the figures come from analysis/: a build made before `rstack analyze` last
    ran shows the old numbers even though paper.tex and paper.bib did not change."""
    summary = proj / "analysis" / "summary.json"
    summary.write_text(summary.read_text() + "\n")  # what a re-analysis with new runs rewrites
    code, report = _audit(cli)
    assert code == 1
    assert [(f["check"], f["message"]) for f in report["findings"]] == [
        ("build", "analysis/summary.json changed since the last build (rstack analyze ran "
                  "after it): the PDF may show old numbers and figures")]
    build_paper(proj)
    code, report = _audit(cli)
    assert (code, report["findings"]) == (0, [])
    (proj / "paper.pdf").write_bytes(b"%PDF-1.5 not the built one\n")
    code, report = _audit(cli)
    assert code == 1
    assert [f["message"] for f in report["findings"]] == [
        "paper.pdf is not the PDF the last build wrote"]


def test_citations_are_checked_in_the_bib_the_paper_uses(proj, cli):
    """A paper that reads \\bibliography{refs} is checked against refs.bib, not against a clean
    paper.bib it never uses: here refs.bib gives a cited key an invented year."""
    import re

    text = (proj / "paper.bib").read_text(encoding="utf-8")
    entry = re.search(r"@\w+\{vaswani2017attention,.*?\n\}", text, re.S).group()
    (proj / "refs.bib").write_text(text.replace(entry, entry.replace("2017}", "2016}")),
                                   encoding="utf-8")
    _edit(proj, "\\bibliography{paper}", "\\bibliography{refs}")
    code, report = _audit(cli)
    assert code == 1
    cites = [f for f in report["findings"] if f["check"] == "citations"]
    assert [(f["file"], f["message"].split(":")[0]) for f in cites] == [
        ("refs.bib", "metadata-mismatch")]
    assert "vaswani2017attention" in cites[0]["message"] and "2016" in cites[0]["message"]


@pytest.mark.parametrize("planted, needle", [
    ("\\newread\\f\\openin\\f=/etc/passwd\\read\\f to\\x", "\\openin reads a file"),
    ("\\input{/etc/passwd}", "\\input{/etc/passwd} names a file outside the project"),
    ("\\input /etc/hostname", "\\input{/etc/hostname} names a file outside"),
    ("\\input{~/.modal.toml}", "\\input{~/.modal.toml} names a file outside"),
    ("\\include{../../secret}", "\\include{../../secret} names a file outside"),
    ("\\includegraphics[width=2cm]{/home/alice/.ssh/id_rsa}", "\\includegraphics{/home/alice"),
])
def test_file_access_outside_the_project_is_flagged(proj, cli, planted, needle):
    """issue 18 item 13: the audit passed a paper that \\openin/\\read /etc/passwd."""
    text = (proj / "paper.tex").read_text()
    marker = "\\section{Discussion and Limitations}"
    (proj / "paper.tex").write_text(text.replace(marker, planted + "\n" + marker))
    line = next(n for n, l in enumerate((proj / "paper.tex").read_text().splitlines(), 1)
                if planted in l)
    code, report = _audit(cli)
    assert code == 1 and report["checks"]["build"] == "fail"
    found = [f for f in report["findings"] if needle in f["message"]]
    assert found and found[0]["line"] == line


def test_relative_inputs_are_not_flagged():
    from rstack.paper.file_access import find_file_access

    text = "\\input{analysis/numbers.tex}\\includegraphics{analysis/fig.pdf}\\bibliography{paper}"
    assert list(find_file_access(text)) == []


def test_a_build_error_without_a_line_is_not_printed_as_none(proj, cli):
    """issue 18 item 23: `paper.tex:None:` in audit output."""
    path = proj / ".rstack" / "paper-build.json"
    record = json.loads(path.read_text())
    record.update(ok=False, errors=[{"file": "paper.tex", "line": None,
                                     "message": "Emergency stop."}])
    path.write_text(json.dumps(record))
    result = cli("paper", "audit")
    assert result.exit_code == 1
    assert "None" not in result.output
    assert "the last build failed (paper.tex: Emergency stop.)" in result.output
