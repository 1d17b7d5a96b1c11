"""The audit reads prose like a careful reviewer: each class of mistake is flagged with a message
naming the number, arm or claim and its line, and the honest wording of the same fact passes.

Projects are demo-like: `make_project` (ledgered runs, summary.json, numbers.tex, figures) switched
to the declared-metrics plan (arm labels and aliases, a metric without direction), then
`paper new`. Nothing is compiled: the build check is left out of each assertion.
"""

from __future__ import annotations

import json
import shutil

import pytest

from paper_fixtures import declare_metrics, home_at, make_project, write_summary
from rstack.paper.audit import audit_paper
from rstack.paper.new import new_paper

MARK = "\\section{Discussion and Limitations}"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("prose") / "proj"
    root.mkdir()
    with home_at(root.parent / "home"):
        summary = make_project(root)
        declare_metrics(root, summary)
        new_paper(root, "arxiv", title="Warmup and Validation Loss")
    return root


@pytest.fixture
def proj(base, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(base, root)
    return root


def _audit(root, results: str = "", *, before: str = MARK):
    """Insert `results` before the Discussion heading (or `before`); return the findings of
    every check but the build, as (severity, line, message)."""
    tex = root / "paper.tex"
    text = tex.read_text(encoding="utf-8")
    if results:
        assert before in text
        text = text.replace(before, results + "\n\n" + before, 1)
        tex.write_text(text, encoding="utf-8")
    report = audit_paper(root)
    return [(f.severity, f.file, f.line, f.message) for f in report.findings
            if f.check != "build"]


def _line(root, needle, name="paper.tex"):
    for number, line in enumerate((root / name).read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def _set(root, index=0, **fields):
    summary = json.loads((root / "analysis" / "summary.json").read_text())
    summary["comparisons"][index].update(fields)
    write_summary(root, summary)


def test_the_skeleton_paper_is_clean(proj):
    assert _audit(proj) == []


# -- clause-level arm attribution --------------------------------------------------------------


def test_swapped_macros_are_attributed_to_the_wrong_arm(proj):
    found = _audit(proj, "With linear warmup the loss is \\rsBaselineValLossMean{} against "
                         "\\rsTreatmentValLossMean{} for the constant schedule.")
    line = _line(proj, "With linear warmup")
    assert found == [
        ("error", "paper.tex", line,
         "\\rsBaselineValLossMean (0.412) is a value of arm 'baseline', but its clause names arm "
         "'treatment' (\\rsBaselineValLossMean)"),
        ("error", "paper.tex", line,
         "\\rsTreatmentValLossMean (0.372) is a value of arm 'treatment', but its clause names "
         "arm 'baseline' (\\rsTreatmentValLossMean)")]


def test_macros_in_their_arms_clauses_pass_by_label_and_alias(proj):
    assert _audit(proj, "With linear warmup the loss is \\rsTreatmentValLossMean{} against "
                        "\\rsBaselineValLossMean{} with no warmup, a difference of "
                        "\\rsTreatmentValLossDelta{}. Linear warmup lowers the validation loss "
                        "from \\rsBaselineValLossMean{} to \\rsTreatmentValLossMean{}.") == []


def test_a_typed_value_of_another_arm_is_flagged(proj):
    found = _audit(proj, "The linear warmup arm reaches 0.412 on validation loss.")
    assert found == [("error", "paper.tex", _line(proj, "reaches 0.412"),
                      "0.412 is a value of arm 'baseline', but its clause names arm 'treatment' "
                      "(\\rsBaselineValLossMean)")]


def test_a_typed_value_of_the_named_arm_passes(proj):
    assert _audit(proj, "The constant schedule reaches 0.412 on validation loss.") == []


# -- counts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sentence, message", [
    ("We ran five seeds per arm.",
     "count 'five seeds' (5) matches no seed count in the plan or the analysis (known: 3 (seeds "
     "per arm))"),
    ("Each arm ran 4 independent runs.",
     "count '4 independent runs' (4) matches no run count in the plan or the analysis (known: 3 "
     "(seeds per arm); 6 (runs the analysis used))"),
    ("We compare four arms.",
     "count 'four arms' (4) matches no arm count in the plan or the analysis (known: 2 (arms in "
     "the plan); 1 (arms besides the baseline))"),
    ("Every run trains for 300 steps.",
     "count '300 steps' (300) matches no step count in the plan or the analysis (known: 400 "
     "(experiment-plan.md execution.args[1]); 200 (experiment-plan.md the args of arm treatment "
     "[5]))"),
])
def test_counts_that_no_run_had_are_flagged(proj, sentence, message):
    assert _audit(proj, sentence) == [("error", "paper.tex", _line(proj, sentence[:12]), message)]


def test_true_counts_pass_in_words_and_digits(proj):
    assert _audit(proj, "We ran three seeds per arm, 6 runs in all, over two arms; every run "
                        "trains for 400 steps on 512 examples.") == []


@pytest.mark.parametrize("size", ["384 train + 128 validation examples",
                                  "384 train / 128 validation examples",
                                  "384 train, 128 validation and 64 test examples"])
def test_each_count_of_a_split_list_in_the_plan_passes(proj, size):
    # the plan template writes data.size as "20000 train + 5000 validation examples": the first
    # number describes examples too
    plan = proj / "experiment-plan.md"
    plan.write_text(plan.read_text().replace("size: 512 examples", f"size: {size}"))
    assert _audit(proj, "We train on 384 training examples and validate on 128 examples.") == []
    assert [f[3].split(" (")[0] for f in _audit(proj, "We train on 385 examples.")] == [
        "count '385 examples'"]


def test_a_number_that_counts_something_else_before_seeds_passes(proj):
    # "1 std over seeds" counts standard deviations, not seeds: a preposition between the number
    # and the noun means the number is not the noun's count
    assert _audit(proj, "The band is the mean $\\pm$ 1 std over seeds, and the whiskers span "
                        "2 std across runs.") == []


# -- direction of comparative sentences --------------------------------------------------------


@pytest.mark.parametrize("sentence, word, said, found", [
    ("The constant schedule outperforms linear warmup on validation loss.", "outperforms",
     "baseline is better than treatment", "worse (minimize)"),
    ("Linear warmup has a higher validation loss than the constant schedule.", "higher",
     "treatment is higher than baseline", "lower"),
    ("Linear warmup is outperformed by the constant schedule.", "outperformed by",
     "treatment is worse than baseline", "better (minimize)"),
    ("The constant schedule improves validation loss over linear warmup.",
     "improves validation loss over", "baseline is better than treatment", "worse (minimize)"),
])
def test_a_comparative_sentence_against_the_analysis_is_flagged(proj, sentence, word, said,
                                                                 found):
    [finding] = _audit(proj, sentence)
    assert finding[:3] == ("error", "paper.tex", _line(proj, sentence[:20]))
    assert finding[3].startswith(f"'{word}' says {said} on val_loss, but rstack analyze found "
                                 f"it {found}: ")


@pytest.mark.parametrize("sentence", [
    "Linear warmup outperforms the constant schedule on validation loss.",
    "Linear warmup improves the validation loss over the constant schedule.",
    "The constant schedule has a higher validation loss than linear warmup.",
    "Compared with linear warmup, the constant schedule is worse.",
    "The constant schedule does not outperform linear warmup.",
    "Linear warmup has a higher calibration error than the constant schedule.",
])
def test_a_comparative_sentence_the_analysis_supports_passes(proj, sentence):
    assert _audit(proj, sentence) == []


def test_better_or_worse_on_a_metric_without_declared_direction_is_not_guessed(proj):
    found = _audit(proj, "Linear warmup gives a better calibration error than the constant "
                         "schedule.")
    assert found == [("warning", "paper.tex", _line(proj, "better calibration"),
                      "'better' says treatment is better than baseline on train_ece, which "
                      "cannot be checked: train_ece has no declared direction")]
    found = _audit(proj, "Linear warmup improves the calibration error over the constant "
                         "schedule.")
    assert found[1:] == [("warning", "paper.tex", _line(proj, "improves the calibration"),
                      "'improves the calibration error over' says treatment is better than "
                      "baseline on train_ece, which cannot be checked: train_ece has no "
                      "declared direction")]
    # lower/higher need no direction: the sign of the difference decides
    found = _audit(proj, "Linear warmup has a lower calibration error than the constant "
                         "schedule.")
    assert [f[3].split(":")[0] for f in found if f[0] == "error"] == [
        "'lower' says treatment is lower than baseline on train_ece, but rstack analyze found "
        "it higher"]


# -- plan values in context ------------------------------------------------------------------


def test_a_plan_value_stated_as_a_result_is_flagged(proj):
    found = _audit(proj, "With linear warmup the validation loss drops to 0.003.")
    assert found == [("error", "paper.tex", _line(proj, "drops to 0.003"),
                      "plan value 0.003 (experiment-plan.md execution.args[3]) is stated as a "
                      "result (next to 'validation loss'): a plan value describes the setup, "
                      "not an outcome")]


def test_a_plan_value_describing_the_setup_passes(proj):
    assert _audit(proj, "Both arms train at a learning rate of 0.003 with warmup lengths of 0 "
                        "and 200 steps.") == []


@pytest.mark.parametrize("caption", [
    r"Validation loss over steps, mean $\pm$ 1 std over seeds.",
    r"Validation loss; the band is $\pm 2$ standard deviations, the whiskers $\pm1$~s.d.",
    r"Validation loss, shaded ±1 std.",
    r"Validation loss, shaded $\pm 2\sigma$.",
])
def test_the_width_of_a_band_in_stds_is_not_a_result(proj, caption):
    # "mean ± 1 std" says how the band is drawn; 1 and 2 are also seeds in the plan, so read as
    # results next to the metric's label they were flagged as plan values
    figure = ("\\begin{figure}[t]\n\\centering\n\\caption{" + caption + "}\n"
              "\\end{figure}")
    assert _audit(proj, figure) == []


def test_a_number_next_to_std_that_is_a_result_is_still_checked(proj):
    found = _audit(proj, "Linear warmup lowers the validation loss by 2 standard deviations.")
    assert [f[3].split(" (")[0] for f in found] == ["plan value 2"]


def test_a_spread_typed_before_std_is_still_checked(proj):
    found = _audit(proj, "The validation loss is 0.41 $\\pm$ 0.07 std.")
    assert [f[3].split(" in the ")[0] for f in found] == ["typed number 0.07"]


# -- honest prose ----------------------------------------------------------------------------


def test_years_points_and_reference_lists_pass(proj):
    assert _audit(proj, "Warmup has been studied since 2016 and in 2019--2021; Goyal et al. "
                        "reported it in 2017~\\citep{goyal2017accurate}. Linear warmup lowers the "
                        "validation loss by 4.0 percentage points (see Sections 4 and 5, "
                        "Figures 1--3 and Tables 1, 2 and 3).") == []


def test_the_same_numbers_as_results_are_still_checked(proj):
    found = _audit(proj, "Linear warmup reaches a score of 2016 and lowers the validation loss by "
                         "4.0 points.")
    assert [f[3] for f in found] == [
        "typed number 2016 in the section 'Results' matches no analysed run, plan value or "
        "allow comment",
        "typed number 4.0 in the section 'Results' matches no analysed run, plan value or allow "
        "comment"]


def test_hand_written_input_files_are_read_with_their_own_lines(proj):
    (proj / "sections").mkdir()
    (proj / "sections" / "discussion.tex").write_text(
        "% a hand-written section\n"
        "\\section{Discussion}\n"
        "Linear warmup reaches \\rsTreatmentValLossMean{}, a gain over the constant schedule.\n"
        "We ran five seeds.\n", encoding="utf-8")
    found = _audit(proj, "\\input{sections/discussion}")
    assert found == [("error", "sections/discussion.tex", 4,
                      "count 'five seeds' (5) matches no seed count in the plan or the analysis "
                      "(known: 3 (seeds per arm))")]
    (proj / "sections" / "discussion.tex").write_text(
        "\\section{Discussion}\nWe ran three seeds.\n", encoding="utf-8")
    assert _audit(proj) == []


# -- pre-registered claims -------------------------------------------------------------------


def test_a_refuted_claim_restated_as_a_finding_is_flagged(proj):
    _set(proj, significant=False, p_value=0.3)
    found = _audit(proj, "Linear warmup lowers the validation loss in our runs.")
    claim = [f for f in found if "pre-registered" in f[3]]
    assert claim == [(
        "error", "paper.tex", _line(proj, "Linear warmup lowers the validation loss in"),
        "pre-registered claim 1 ('linear warmup lowers the validation loss') is not supported by "
        "the analysis (treatment vs baseline val_loss: diff -0.04033, not significant) and is "
        "restated in the paper without being marked refuted")]


def test_a_refuted_claim_marked_in_the_paper_passes(proj):
    _set(proj, significant=False, p_value=0.3)
    assert _audit(proj, "The pre-registered claim that linear warmup lowers the validation loss "
                        "was not supported: the difference is within seed noise.") == []


def test_a_supported_claim_needs_no_marker(proj):
    assert _audit(proj, "Linear warmup lowers the validation loss.") == []


# -- placement -------------------------------------------------------------------------------


def test_a_figure_far_from_its_first_reference_is_flagged(proj):
    text = (proj / "paper.tex").read_text()
    block = text[text.index("\\begin{figure}[t]"):text.index("\\end{figure}") + len("\\end{figure}")]
    text = text.replace(block, "", 1).replace(
        "Summarise the finding.", "Summarise the finding.\n" + block, 1).replace(
        "Table~\\ref{tab:main} gives", "Figure~\\ref{fig:fig-bar} and Table~\\ref{tab:main} give")
    (proj / "paper.tex").write_text(text)
    found = _audit(proj)
    assert found == [("warning", "paper.tex", _line(proj, "Summarise the finding.") + 1,
                      "figure 'fig:fig-bar' stands in section 'Conclusion' but is first "
                      f"referenced in section 'Results' (paper.tex:{_line(proj, 'Figure~')})")]


def test_floats_in_the_section_that_references_them_pass(proj):
    text = (proj / "paper.tex").read_text().replace(
        "Table~\\ref{tab:main} gives", "Figure~\\ref{fig:fig-bar} and Table~\\ref{tab:main} give")
    (proj / "paper.tex").write_text(text)
    assert _audit(proj) == []


def test_run_counts_by_status_come_from_the_ledger(proj):
    from rstack.ledger import Ledger

    assert len(_audit(proj, "One run diverged and was re-run.")) == 1
    Ledger(proj, "experiments").append({
        "type": "run.finished", "ts": "2026-11-21T09:00:00.000Z", "run_id": "treatment-s9",
        "arm": "treatment", "seed": 9, "status": "diverged", "exit_code": 0,
        "category": "diverged", "hint": None, "metrics": None, "artifacts": [],
        "duration_s": 1.0, "cost_usd": 0.0})
    assert _audit(proj) == []


def test_each_comparative_in_a_sentence_is_judged(proj):
    found = _audit(proj, "Linear warmup has a lower validation loss than the constant schedule "
                         "and a better calibration error.")
    assert [(f[0], f[3].split(",")[0]) for f in found] == [
        ("warning", "'better' says treatment is better than baseline on train_ece")]
