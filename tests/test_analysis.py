"""rstack analyze: statistics against hand-computed values; the files it writes from real runs."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest

from analysis_fixtures import (build_real_project, record_metrics_run, record_run, write_project)
from rstack.analysis.numbers import camel, fmt_fixed, fmt_p, macro_name, metric_decimals
from rstack.analysis.compare import compare
from rstack.analysis.stats import summarize
from rstack.ledger import Ledger

# ---------------------------------------------------------------------------------------------
# Statistics, by hand


def test_summary_of_one_two_three_by_hand():
    s = summarize([1, 2, 3])
    assert s.n == 3
    assert s.mean == 2.0
    # sample variance: ((1-2)^2 + 0 + (3-2)^2) / (3 - 1) = 1 -> std 1
    assert s.std == 1.0
    # t(0.975, df=2) = 4.302652729749464; half width = 4.302652729749464 * 1 / sqrt(3)
    assert s.ci_half == pytest.approx(2.484137711750331, rel=1e-12)
    assert s.ci_low == pytest.approx(2 - 2.484137711750331, rel=1e-12)
    assert s.ci_high == pytest.approx(2 + 2.484137711750331, rel=1e-12)
    assert s.flags == ()


def test_two_values_by_hand_and_flagged():
    s = summarize([1.0, 2.0])
    # mean 1.5; variance ((-.5)^2 + (.5)^2) / 1 = 0.5; t(0.975, 1) = 12.706204736174707
    assert s.mean == 1.5
    assert s.std == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert s.ci_half == pytest.approx(12.706204736174707 * math.sqrt(0.5) / math.sqrt(2), rel=1e-9)
    assert s.flags == ("n=2: fewer than 3 seeds, interval is unreliable",)


def test_one_value_has_no_interval():
    s = summarize([0.7])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high, s.ci_half) == (1, 0.7, None, None, None, None)
    assert s.flags == ("n=1: no interval",)


def test_welch_by_hand():
    # a = [1,2,3], b = [4,5,6]: var 1 each, se = sqrt(1/3 + 1/3); t = -3 / se = -3.6742346141747673
    # Welch df = (2/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = 4; p = 2 * P(T_4 > 3.6742) = 0.0213116...
    c = compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], direction="minimize", paired=False)
    assert c.p == pytest.approx(0.021311641128756713, rel=1e-9)
    # half width t(0.975, 4) * se = 2.7764451051977987 * 0.816496580927726 = 2.266957935
    assert (c.ci_low, c.ci_high) == pytest.approx((-3 - 2.266957935, -3 + 2.266957935), rel=1e-9)
    assert c.verdict == "better" and c.significant  # the interval of the difference excludes 0
    assert compare([1.0], [4.0, 5.0], direction="minimize", paired=False).p is None
    assert compare([1.0, 1.0], [2.0, 2.0], direction="minimize", paired=False).p is None


def test_significant_in_either_direction_improvement_says_which():
    arm, base = [1.0, 1.1, 0.9], [2.0, 2.1, 1.9]
    better = compare(arm, base, direction="minimize", paired=False)
    assert better.verdict == "better" and better.significant and better.improvement > 0
    assert better.p < 0.001
    # the same data with the metric maximised: just as significant, the other way
    worse = compare(arm, base, direction="maximize", paired=False)
    assert worse.verdict == "worse" and worse.significant and worse.improvement < 0
    assert worse.p == better.p


def test_fewer_than_three_seeds_is_never_significant():
    # n=2 per arm, tiny spread: p ~ 1e-4, but two seeds prove nothing
    c = compare([1.0, 1.001], [2.0, 2.001], direction="minimize", paired=False)
    assert c.p < 0.001 and c.improvement_low > 0
    assert not c.significant and c.verdict == "too few seeds (n<3)"
    assert c.flags == ("n<3: 2 seed(s); no difference is claimed",)


def test_small_samples_flag_the_comparison():
    c = compare([1.0], [2.0, 2.5, 3.0], direction="minimize", paired=False)
    assert c.p is None and not c.significant and c.verdict == "too few seeds (n<3)"


def test_macro_names_and_formats():
    assert camel("val_loss") == "ValLoss"
    assert camel("lr-1e3") == "LrOneEThree"
    assert macro_name("baseline", "val_loss", "Mean") == "rsBaselineValLossMean"
    assert macro_name("top5", "acc", "CI") == "rsTopFiveAccCI"
    assert re.fullmatch(r"[A-Za-z]+", macro_name("arm_2", "m.9", "N"))
    assert metric_decimals([0.1234, 2.5]) == 3
    assert metric_decimals([92.31]) == 1
    assert fmt_fixed(-0.0001, 3) == "0.000"
    assert fmt_fixed(0.02, 3, signed=True) == "+0.020"
    assert fmt_p(0.0213) == "0.021"
    assert fmt_p(1e-5) == r"\ensuremath{<}0.001"


# ---------------------------------------------------------------------------------------------
# From real runs


@pytest.fixture(scope="module")
def real_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    ids = build_real_project(root)
    return root, ids


@pytest.fixture
def real(project, real_template):
    src, ids = real_template
    shutil.copytree(src, project, dirs_exist_ok=True)
    return project, ids


def _summary(root):
    return json.loads((root / "analysis" / "summary.json").read_text())


def test_analyze_writes_every_output_from_real_runs(real, cli):
    root, ids = real
    result = cli("analyze")
    assert result.exit_code == 0, result.output
    assert "analysed 6 run(s) in 2 arm(s)" in result.output
    out = root / "analysis"
    for stem in ("fig_curves", "fig_bar"):
        pdf, png = (out / f"{stem}.pdf").read_bytes(), (out / f"{stem}.png").read_bytes()
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    for name in ("table_main.tex", "numbers.tex", "summary.json", "README.md"):
        assert (out / name).is_file()


def test_summary_json_shape(real, cli):
    root, ids = real
    assert cli("analyze").exit_code == 0
    s = _summary(root)
    ledger = Ledger(root, "experiments").read()
    assert s["version"] == 1
    assert s["ledger"] == {"path": ".rstack/experiments.jsonl", "sha256": ledger.sha256,
                           "lines": ledger.line_count}
    assert s["plan"]["path"] == "experiment-plan.md" and len(s["plan"]["sha256"]) == 64
    assert (s["primary_metric"], s["direction"], s["baseline_arm"]) == ("val_loss", "minimize",
                                                                        "baseline")
    assert list(s["arms"]) == ["baseline", "treatment"]
    for arm in ("baseline", "treatment"):
        info = s["arms"][arm]
        assert info["run_ids"] == ids[arm]
        assert info["seeds"] == [0, 1, 2]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", info["latest_finished_ts"])
        vl = info["metrics"]["val_loss"]
        assert set(vl) >= {"n", "mean", "std", "ci_low", "ci_high", "values"}
        assert vl["n"] == 3 and len(vl["values"]) == 3
        assert vl["ci_low"] < vl["mean"] < vl["ci_high"]
    # the values are exactly what the runs wrote
    first = json.loads((root / "results" / ids["baseline"][0] / "metrics.json").read_text())
    assert s["arms"]["baseline"]["metrics"]["val_loss"]["values"][0] == first["val_loss"]
    comp = [c for c in s["comparisons"] if c["metric"] == "val_loss"]
    assert len(comp) == 1
    assert set(comp[0]) >= {"arm", "baseline", "metric", "delta", "rel_delta", "p_value",
                            "significant", "improved", "n", "n_baseline", "flags"}
    assert comp[0]["arm"] == "treatment" and comp[0]["n"] == 3 and comp[0]["flags"] == []
    for q in s["quantities"]:
        assert set(q) >= {"macro", "value", "text", "run_ids", "arm", "metric", "stat"}
        assert re.fullmatch(r"rs[A-Za-z]+", q["macro"])
    kinds = {a["path"]: a["kind"] for a in s["artifacts"]}
    assert kinds == {"analysis/fig_bar.pdf": "figure", "analysis/fig_bar.png": "figure",
                     "analysis/fig_curves.pdf": "figure", "analysis/fig_curves.png": "figure",
                     "analysis/table_main.tex": "table", "analysis/numbers.tex": "numbers"}
    import hashlib
    for art in s["artifacts"]:
        assert art["sha256"] == hashlib.sha256((root / art["path"]).read_bytes()).hexdigest()
        assert art["arms"] == ["baseline", "treatment"]
        if art["kind"] == "figure":  # designed print size: a column (3.25 in) or a text width
            width, height = art["size_in"]
            assert 2.5 < width <= 6.75 and 1.5 < height < 3.0
    # generated_at is the ledger's latest record time: reproducible, not the clock
    assert s["generated_at"] == max(r["ts"] for r in ledger.records)


def test_output_is_deterministic(real, cli):
    root, _ = real
    assert cli("analyze").exit_code == 0
    out = root / "analysis"
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    shutil.rmtree(out)
    assert cli("analyze").exit_code == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_table_has_booktabs_and_bold_best(real, cli):
    root, _ = real
    assert cli("analyze").exit_code == 0
    s = _summary(root)
    table = (root / "analysis" / "table_main.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert table.count(rule) == 1
    means = {a: s["arms"][a]["metrics"]["val_loss"]["mean"] for a in s["arms"]}
    best = min(means, key=means.get)  # val_loss is minimised
    row = next(line for line in table.splitlines() if line.strip().startswith(best + " "))
    cells = row.split("&")
    assert cells[2].strip().startswith(r"{\boldmath$")  # val_loss is the first metric column
    other = next(line for line in table.splitlines()
                 if line.strip().startswith(next(a for a in means if a != best) + " "))
    assert r"\boldmath" not in other.split("&")[2]
    # the fixture's plan is the old form: only the primary metric has a direction now
    assert r"val\_loss $\downarrow$" in table and r"sign\_acc \\" in table
    assert r"sign\_acc $\uparrow$" not in table
    # shrinks to a two-column venue's column, never enlarges
    assert r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%" in table


def test_numbers_tex_names_runs_for_every_macro(real, cli):
    root, ids = real
    assert cli("analyze").exit_code == 0
    lines = (root / "analysis" / "numbers.tex").read_text().splitlines()
    all_ids = set(ids["baseline"]) | set(ids["treatment"])
    defs = [i for i, line in enumerate(lines) if line.startswith(r"\newcommand")]
    assert len(defs) == len(_summary(root)["quantities"])
    for i in defs:
        assert lines[i - 1].startswith("% runs: ")
        named = set(lines[i - 1][len("% runs: "):].split(", "))
        assert named and named <= all_ids
        assert re.fullmatch(r"\\newcommand\{\\rs[A-Za-z]+\}\{[^{}]*(\{<\}[^{}]*)?\}", lines[i])
    text = "\n".join(lines)
    s = _summary(root)
    mean = s["arms"]["baseline"]["metrics"]["val_loss"]["mean"]
    d = s["metrics"]["val_loss"]["decimals"]
    assert f"\\newcommand{{\\rsBaselineValLossMean}}{{{mean:.{d}f}}}" in text
    assert "% runs: " + ", ".join(ids["baseline"]) + "\n\\newcommand{\\rsBaselineValLossMean}" \
        in text


def test_hand_computed_values_flow_through(project, cli):
    write_project(project)
    plan = project / "experiment-plan.md"
    plan.write_text(plan.read_text().replace("  baselines: [baseline]\n",
                                             "  baselines: [baseline]\n  pairing: none\n"))
    for seed, value in enumerate([1.0, 2.0, 3.0]):
        record_metrics_run(project, "baseline", seed, {"val_loss": value})
    for seed, value in enumerate([4.0, 5.0, 6.0]):
        record_metrics_run(project, "treatment", seed, {"val_loss": value})
    result = cli("analyze", "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)["summary"]
    b = s["arms"]["baseline"]["metrics"]["val_loss"]
    assert (b["n"], b["mean"], b["std"]) == (3, 2.0, 1.0)
    assert b["ci_low"] == pytest.approx(2 - 2.484137711750331, rel=1e-12)
    (c,) = s["comparisons"]
    assert c["diff"] == c["delta"] == 3.0 and c["rel_diff"] == c["rel_delta"] == 1.5
    assert c["p"] == c["p_value"] == pytest.approx(0.021311641128756713, rel=1e-9)
    assert c["p_adjusted"] == c["p"]  # one comparison: Holm changes nothing
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((3 - 2.266957935, 3 + 2.266957935))
    assert c["paired"] is False and c["direction"] == "minimize"
    assert c["improved"] is False and c["significant"] is True and c["verdict"] == "worse"
    numbers = (project / "analysis" / "numbers.tex").read_text()
    assert r"\newcommand{\rsBaselineValLossMean}{2.00}" in numbers
    assert r"\newcommand{\rsBaselineValLossStd}{1.00}" in numbers
    assert r"\newcommand{\rsBaselineValLossCI}{2.48}" in numbers
    assert r"\newcommand{\rsTreatmentVsBaselineValLossDelta}{+3.00}" in numbers
    assert r"\newcommand{\rsTreatmentVsBaselineValLossRelDeltaPct}{+150.0}" in numbers
    assert r"\newcommand{\rsTreatmentVsBaselineValLossPValue}{0.021}" in numbers
    assert r"\newcommand{\rsTreatmentVsBaselineValLossDeltaLow}{+0.73}" in numbers
    assert r"\newcommand{\rsTreatmentVsBaselineValLossDeltaHigh}{+5.27}" in numbers
    assert r"\newcommand{\rsTreatmentVsBaselineValLossPAdj}{0.021}" in numbers
    # no metrics.jsonl for these runs: the curves are skipped with a note, not a crash
    assert not (project / "analysis" / "fig_curves.pdf").exists()
    assert "learning curves skipped: no run has a usable metrics.jsonl" in s["notes"]


def declare_metrics(project, metrics_yaml: str) -> None:
    """Turn the fixture's old-form plan into one with evaluation.metrics."""
    plan = project / "experiment-plan.md"
    text = plan.read_text().replace("  metrics: [val_loss, train_loss, sign_acc]\n", "")
    plan.write_text(text.replace("  direction: minimize\n", "  metrics:\n" + metrics_yaml))


def test_minimize_metric_that_rises_is_worse_in_every_output(project, cli):
    # The incident: train_ece rising ~20x was bolded as best and called significantly better.
    write_project(project)
    declare_metrics(project, "    val_loss: {direction: minimize}\n"
                             "    train_ece: {direction: minimize, label: Train ECE}\n"
                             "    grad_norm: {}\n")
    for seed, (loss, ece, grad) in enumerate([(1.0, 0.005, 3.0), (1.1, 0.006, 3.5),
                                              (0.9, 0.0055, 2.5)]):
        record_metrics_run(project, "baseline", seed,
                           {"val_loss": loss, "train_ece": ece, "grad_norm": grad})
    for seed, (loss, ece, grad) in enumerate([(0.95, 0.11, 9.0), (1.12, 0.13, 9.5),
                                              (0.88, 0.12, 8.5)]):
        record_metrics_run(project, "treatment", seed,
                           {"val_loss": loss, "train_ece": ece, "grad_norm": grad})
    result = cli("analyze")
    assert result.exit_code == 0, result.output
    s = _summary(project)
    comps = {c["metric"]: c for c in s["comparisons"]}
    ece = comps["train_ece"]
    assert (ece["direction"], ece["verdict"], ece["significant"], ece["improved"]) == (
        "minimize", "worse", True, False)
    assert ece["paired"] is True and ece["diff"] > 0 and ece["ci_low"] > 0
    assert ece["p_adjusted"] >= ece["p"]  # Holm over val_loss and train_ece
    # a metric without a declared direction is never better or worse, and not in the Holm family
    grad = comps["grad_norm"]
    assert (grad["direction"], grad["verdict"], grad["improved"], grad["p_adjusted"]) == (
        None, "direction not declared", None, None)
    assert s["metrics"]["grad_norm"]["direction"] is None
    line = next(ln for ln in result.output.splitlines() if "train_ece" in ln)
    assert line.startswith("  treatment vs baseline, train_ece (minimize): diff +0.11450 "
                           "[+0.09090, +0.13810] (+2081.8%), paired t, p=")
    assert ", paired t, p=" in line and line.endswith(": worse")
    assert "grad_norm (direction not declared)" in result.output
    assert "direction not declared for grad_norm" in result.output
    table = (project / "analysis" / "table_main.tex").read_text()
    header = next(ln for ln in table.splitlines() if ln.strip().startswith("Arm &"))
    assert r"Train ECE $\downarrow$" in header and header.rstrip().endswith(r"& grad\_norm \\")
    rows = {ln.split("&")[0].strip(): ln.split("&") for ln in table.splitlines()
            if ln.strip().startswith(("baseline &", "treatment &"))}
    ece_col = 2 + 1  # Arm, n, val_loss, train_ece, grad_norm
    assert r"\boldmath" in rows["baseline"][ece_col] and r"\boldmath" not in rows["treatment"][ece_col]
    assert not any(r"\boldmath" in row[4] for row in rows.values())  # no direction: no bold
    assert "no arrow: direction not declared, not ranked" in table
    numbers = (project / "analysis" / "numbers.tex").read_text()
    for macro in ("Delta", "DeltaLow", "DeltaHigh", "PValue", "PAdj"):
        assert f"\\newcommand{{\\rsTreatmentVsBaselineTrainEceE{macro}}}" not in numbers
        assert f"\\newcommand{{\\rsTreatmentVsBaselineTrainEce{macro}}}" in numbers
    readme = (project / "analysis" / "README.md").read_text()
    assert "| treatment | train_ece | minimize |" in readme and "| worse |" in readme
    assert "| treatment | grad_norm | not declared |" in readme


def test_the_audit_refuses_better_for_a_minimize_metric_that_rose(project, cli):
    """The same summary.json the analysis wrote: 'significantly better' next to the arm whose
    train_ece rose is refused; 'significantly worse' is accepted."""
    from rstack.paper.audit import (AuditReport, Prose, Source, audit_claims, audit_directions,
                                    load_study)
    from rstack.plan import load_plan
    write_project(project)
    declare_metrics(project, "    val_loss: {direction: minimize}\n"
                             "    train_ece: {direction: minimize}\n")
    for seed, ece in enumerate([0.005, 0.006, 0.0055]):
        record_metrics_run(project, "baseline", seed, {"val_loss": 1.0 + seed / 10, "train_ece": ece})
    for seed, ece in enumerate([0.11, 0.13, 0.12]):
        record_metrics_run(project, "treatment", seed, {"val_loss": 1.0 + seed / 9, "train_ece": ece})
    assert cli("analyze").exit_code == 0
    summary = _summary(project)
    study = load_study(summary, load_plan(project / "experiment-plan.md"))

    def claims(sentence):
        report = AuditReport(tex="paper.tex")
        source = Source("\\begin{document}\n" + sentence + "\n", root=project)
        prose = Prose(source.text, study.arms_in)
        audit_claims(report, source, summary, study, prose)
        audit_directions(report, source, prose, study)
        return [f.message for f in report.findings if f.severity == "error"]

    refused = claims("The treatment arm is significantly better on train\\_ece than the baseline.")
    assert refused and any("train_ece" in m for m in refused), refused
    assert claims("The treatment arm is significantly worse on train\\_ece than the "
                  "baseline.") == []


def test_figure_labels_only_from_a_declared_direction():
    from rstack.analysis.figures import _axis_label
    assert _axis_label("train_ece", "minimize") == "train ece\n(lower is better)"
    assert _axis_label("acc", "maximize", "Accuracy") == "Accuracy\n(higher is better)"
    assert _axis_label("grad_norm", None) == "grad norm"


def test_small_n_is_flagged_in_every_output(project, cli):
    write_project(project)
    for seed, value in enumerate([1.0, 1.2, 1.1]):
        record_metrics_run(project, "baseline", seed, {"val_loss": value})
    record_metrics_run(project, "treatment", 0, {"val_loss": 0.5})
    result = cli("analyze")
    assert result.exit_code == 0, result.output
    assert "treatment: val_loss = 0.500 (n=1)  (n=1: no interval)" in result.output
    s = _summary(project)
    t = s["arms"]["treatment"]["metrics"]["val_loss"]
    assert (t["n"], t["std"], t["ci_low"], t["ci_high"]) == (1, None, None, None)
    assert t["flags"] == ["n=1: no interval"]
    (c,) = s["comparisons"]
    assert c["flags"] == ["pairing: seed, but the ok runs' seeds differ (arm [0], baseline "
                          "[0, 1, 2]): Welch used", "n<3: 1 seed(s); no difference is claimed"]
    assert c["significant"] is False and c["verdict"] == "too few seeds (n<3)"
    numbers = (project / "analysis" / "numbers.tex").read_text()
    assert r"\rsTreatmentValLossCI" not in numbers and r"\rsTreatmentValLossMean" in numbers
    assert "% treatment val_loss: n=1: no interval (no Std/CI macros)" in numbers
    table = (project / "analysis" / "table_main.tex").read_text()
    # one lucky seed never wears the bold: the n=1 arm is not ranked while the baseline has 3
    assert r"treatment & 1 & $0.500$\textsuperscript{\dag} \\" in table
    assert r"\boldmath" not in table  # a single ranked arm has no one to beat
    assert "arms with one seed are not ranked" in table
    assert "fewer than three seeds" in table
    assert "n=1: no interval" in (project / "analysis" / "README.md").read_text()


def test_latest_ok_attempt_per_arm_and_seed_is_used(project, cli):
    write_project(project)
    old = record_metrics_run(project, "baseline", 0, {"val_loss": 9.0})
    new = record_metrics_run(project, "baseline", 0, {"val_loss": 1.0})
    record_metrics_run(project, "baseline", 0, {"val_loss": 5.0}, status="failed")
    assert cli("analyze").exit_code == 0
    s = _summary(project)
    assert s["arms"]["baseline"]["run_ids"] == [new]
    assert s["arms"]["baseline"]["metrics"]["val_loss"]["values"] == [1.0]
    assert f"{old}: superseded by {new} (same arm baseline, seed 0)" in s["notes"]
    assert any("did not finish ok" in n for n in s["notes"])


def test_missing_history_for_one_run_leaves_it_out_with_a_note(project, cli):
    write_project(project)
    kept = record_run(project, "baseline", 0, ["--lr", "0.01", "--steps", "5"])
    lost = record_run(project, "baseline", 1, ["--lr", "0.01", "--steps", "5"],
                      write_history=False)
    assert cli("analyze").exit_code == 0
    s = _summary(project)
    assert (project / "analysis" / "fig_curves.png").is_file()
    assert (f"learning curve: {lost}: no results/{lost}/metrics.jsonl; run left out of "
            "fig_curves") in s["notes"]
    assert kept in s["arms"]["baseline"]["run_ids"]


def test_no_ok_runs_is_an_error(project, cli):
    write_project(project)
    record_metrics_run(project, "baseline", 0, {"val_loss": 1.0}, status="failed")
    result = cli("analyze")
    assert result.exit_code == 1
    assert ("Error: no finished ok runs for the plan's arms (baseline, treatment) in "
            ".rstack/experiments.jsonl (arms with ok runs: none)") in result.output
    assert "fix: run the plan first (rstack run)" in result.output


def test_baseline_without_runs_is_an_error(project, cli):
    write_project(project)
    record_metrics_run(project, "treatment", 0, {"val_loss": 1.0})
    result = cli("analyze")
    assert result.exit_code == 1
    assert ("Error: baseline arm 'baseline' (hypothesis.baseline_arm in experiment-plan.md) has "
            "no finished ok runs; arms with ok runs: treatment") in result.output


def test_missing_plan_is_an_error(project, cli):
    result = cli("analyze")
    assert result.exit_code == 1
    assert "experiment-plan.md: no experiment plan" in result.output
    assert "fix: pass --plan PATH" in result.output


def test_primary_metric_missing_is_an_error(project, cli):
    write_project(project)
    record_metrics_run(project, "baseline", 0, {"accuracy": 0.9})
    result = cli("analyze")
    assert result.exit_code == 1
    assert "primary metric 'val_loss' (evaluation.primary_metric) is in no ok run's metrics; " \
           "the runs report: accuracy" in result.output


def test_out_option_and_plan_option(project, cli, tmp_path):
    write_project(project)
    plan = project / "experiment-plan.md"
    moved = tmp_path / "plans" / "p.md"
    moved.parent.mkdir()
    plan.rename(moved)
    for seed in range(3):
        record_metrics_run(project, "baseline", seed, {"val_loss": 1.0 + seed})
    result = cli("analyze", "--plan", moved, "--out", "custom")
    assert result.exit_code == 0, result.output
    s = json.loads((project / "custom" / "summary.json").read_text())
    assert s["comparisons"] == []
    assert {a["path"] for a in s["artifacts"]} >= {"custom/fig_bar.pdf", "custom/numbers.tex"}


def test_one_constant_arm_still_gets_a_welch_p():
    # a constant: Welch uses b's variance only. se = sqrt(0 + 1/3); t = (1 - 5) / se = -6.9282;
    # df = (1/3)^2 / ((1/3)^2 / 2) = 2; p = 2 * P(T_2 > 6.9282) = 0.0202041...
    c = compare([1.0, 1.0, 1.0], [4.0, 5.0, 6.0], direction="minimize", paired=False)
    assert c.p == pytest.approx(0.020204102886728803, rel=1e-6)


def test_invalid_plan_is_an_error_naming_the_key(project, cli):
    write_project(project)
    plan = project / "experiment-plan.md"
    plan.write_text(plan.read_text().replace("direction: minimize", "direction: sideways"))
    record_metrics_run(project, "baseline", 0, {"val_loss": 1.0})
    result = cli("analyze")
    assert result.exit_code == 1
    assert "evaluation.direction" in result.output and "sideways" in result.output


def test_odd_metric_names_render(project, cli):
    write_project(project)
    for seed in range(2):
        record_metrics_run(project, "baseline", seed, {"val_loss": 1.0 + seed, "cost_$": 3.0,
                                                       "top5/acc%": 0.5 + seed / 10})
        record_metrics_run(project, "treatment", seed, {"val_loss": 0.5 + seed, "cost_$": 2.0,
                                                        "top5/acc%": 0.6 + seed / 10})
    result = cli("analyze")
    assert result.exit_code == 0, result.output
    table = (project / "analysis" / "table_main.tex").read_text()
    assert r"cost\_\$" in table and r"top5/acc\%" in table
    numbers = (project / "analysis" / "numbers.tex").read_text()
    assert r"\newcommand{\rsBaselineTopFiveAccMean}{0.550}" in numbers


def test_log_axis_band_stays_positive_and_step_ticks_are_compact(tmp_path):
    """A noisy loss near zero on a log axis: the band never dives to the axis floor from a
    negative lower edge, and 20,000 steps are labelled 0, 5k, 10k, ... without overlap."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    from rstack.analysis import figures

    steps = list(range(0, 20001, 500))
    runs = []
    for seed, spike in enumerate((0.0, 0.0, 3e-3)):  # one seed is noisy late in training
        runs.append([{"step": s, "loss": 5.0 * 0.8 ** (s / 500) + spike * (s > 15000)}
                     for s in steps])
    captured = {}
    real_save = figures._save

    def keep(fig, out_dir, stem):
        captured["fig"] = fig
        ax = fig.axes[0]
        captured["ylim"] = ax.get_ylim()
        captured["yscale"] = ax.get_yscale()
        fig.canvas.draw()
        captured["xticks"] = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        captured["bands"] = [c.get_paths()[0].vertices[:, 1].min() for c in ax.collections]
        return real_save(fig, out_dir, stem)

    figures._save = keep
    try:
        paths = figures.plot_curves({"a": runs}, ["a"], {"a": figures.PALETTE[0]}, "loss",
                                    {"loss": "minimize"}, tmp_path)
    finally:
        figures._save = real_save
    assert captured["yscale"] == "log"
    late = [sum(r[-1]["loss"] for r in runs) / 3, None]
    assert late[0] < 2e-3  # mean - std < 0 there: a t-band would cross zero
    assert all(low > 0 for low in captured["bands"])
    means_floor = min(sum(r[i]["loss"] for r in runs) / 3 for i in range(len(steps)))
    assert captured["ylim"][0] > means_floor / 10  # not stretched down to 1e-5 by the band
    assert captured["xticks"] and all(len(t) <= 4 for t in captured["xticks"])
    assert any(t.endswith("k") for t in captured["xticks"])
    assert paths[1].suffix == ".png" and paths[1].stat().st_size > 5_000
    low, high = figures.log_band([1e-4, 1.0], [3e-4, 0.5])
    assert (low[0], low[1], high[0]) == pytest.approx((1e-8 / 4e-4, 1.0 / 1.5, 4e-4))
    plt.close("all")
