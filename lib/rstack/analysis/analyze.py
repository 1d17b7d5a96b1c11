"""`rstack analyze`: the ledger's finished ok runs -> analysis/ (figures, table, numbers, summary).

The output depends only on the ledger, the plan and the runs' metrics.jsonl files: the same inputs
give byte-identical files (generated_at is the ledger's latest record time, not the clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..atomic import write_text
from ..errors import AnalysisError
from ..hashing import sha256_file
from . import figures, numbers, tables
from .collect import UsedRun, collect_runs, load_history
from .compare import Comparison, compare, holm
from .stats import ALPHA, CONFIDENCE, MIN_SEEDS, Summary, summarize

SUMMARY_VERSION = 1
LEDGER_REL = ".rstack/experiments.jsonl"
SIGNIFICANCE_RULE = (
    f"the difference in means (arm - baseline) with its {int(CONFIDENCE * 100)}% interval: paired "
    "t on the per-seed differences when the plan pairs by seed and both arms ran the same seeds "
    "(same seed = same data and initialisation, so seed-to-seed noise cancels), Welch-"
    "Satterthwaite otherwise; a percentile bootstrap interval beside it; p-values Holm-adjusted "
    f"over every comparison of a metric with a declared direction; significant = the interval "
    f"excludes 0 AND the adjusted p < {ALPHA} AND at least {MIN_SEEDS} seeds per arm, in either "
    "direction; verdict = better or worse in the metric's declared direction, no detectable "
    "difference, with min_effect: better by at least min_effect, smaller than min_effect or "
    "inconclusive (where the interval lies against +-min_effect); a metric without a declared "
    "direction is never called better or worse")
DIRECTION_RULE = ("from the plan's evaluation.metrics only; a metric without a declared direction "
                  "is reported as 'direction not declared': never bolded, never better or worse")


@dataclass
class AnalysisResult:
    summary: dict
    out_dir: Path
    written: list[Path] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return self.summary.get("notes", [])


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())



def _load_plan(root: Path, plan_path: Path | None):
    from ..plan import default_plan_path, load_plan

    path = Path(plan_path) if plan_path else default_plan_path(root)
    if not path.exists():
        raise AnalysisError(
            f"{_rel(path, root)}: no experiment plan; analyze needs its baseline arm, primary "
            "metric and direction",
            hint="pass --plan PATH, or write experiment-plan.md (rstack plan check validates it)")
    return load_plan(path)


def _order_arms(collected_arms: list[str], plan_arms: list[str]) -> list[str]:
    return [a for a in plan_arms if a in collected_arms]


def _order_metrics(runs: list[UsedRun], primary: str, plan_metrics: list[str]) -> list[str]:
    names = {m for run in runs for m in run.metrics}
    ordered = [primary] + [m for m in plan_metrics if m != primary and m in names]
    return ordered + sorted(names - set(ordered))


def run_analysis(root: Path, plan_path: Path | None = None,
                 out_dir: Path | None = None) -> AnalysisResult:
    root = Path(root).resolve()
    plan = _load_plan(root, plan_path)
    collected = collect_runs(root, plan)
    notes = list(collected.notes)
    if collected.ledger.damage_count:
        notes.append(f"{LEDGER_REL} has {collected.ledger.damage_count} damaged line(s), ignored "
                     "(rstack log check experiments)")
    plan_arms = list(plan.arms)
    runs = _one_design_per_arm(collected, [r for r in collected.runs if r.arm in plan_arms],
                               notes)
    for arm in collected.arms:
        if arm not in plan_arms:
            notes.append(f"arm {arm}: has ok runs but is not in the plan's execution.arms; "
                         "left out")
    if not runs:
        found = ", ".join(collected.arms) or "none"
        raise AnalysisError(
            f"no finished ok runs for the plan's arms ({', '.join(plan_arms)}) in {LEDGER_REL} "
            f"(arms with ok runs: {found})",
            hint="run the plan first (rstack run); `rstack log tail experiments --type "
                 "run.finished` shows what finished and how")
    arms = _order_arms([r.arm for r in runs], plan_arms)
    baseline = plan.baseline_arm
    if baseline not in arms:
        raise AnalysisError(
            f"baseline arm {baseline!r} (hypothesis.baseline_arm in {_rel(plan.path, root)}) "
            f"has no finished ok runs; arms with ok runs: {', '.join(arms)}",
            hint=f"run it (rstack run --arm {baseline}), or correct hypothesis.baseline_arm")
    primary, direction = plan.primary_metric, plan.direction
    by_arm = {arm: sorted((r for r in runs if r.arm == arm),
                          key=lambda r: (r.seed is None, r.seed or 0, r.run_id)) for arm in arms}
    metrics = _order_metrics(runs, primary, list(plan.metrics))
    if not any(primary in r.metrics for r in runs):
        raise AnalysisError(
            f"primary metric {primary!r} (evaluation.primary_metric) is in no ok run's metrics; "
            f"the runs report: {', '.join(m for m in metrics if m != primary)}",
            hint="make the script write it to metrics.json, or fix evaluation.primary_metric")
    directions = {m: plan.metric(m).direction for m in metrics}
    undeclared = [m for m in metrics if directions[m] is None]
    if undeclared:
        notes.append(f"direction not declared for {', '.join(undeclared)}: never bolded or "
                     "called better or worse; add evaluation.metrics.<name>.direction to the plan")

    stats: dict[str, dict[str, Summary]] = {}
    stat_runs: dict[str, dict[str, list[str]]] = {}
    for arm in arms:
        stats[arm], stat_runs[arm] = {}, {}
        for m in metrics:
            having = [r for r in by_arm[arm] if m in r.metrics]
            if having:
                stats[arm][m] = summarize([r.metrics[m] for r in having])
                stat_runs[arm][m] = [r.run_id for r in having]
    decimals = {m: numbers.metric_decimals([stats[a][m].mean for a in arms if m in stats[a]])
                for m in metrics}

    comparisons, quantities, omitted = [], [], []
    for arm in arms:
        for m in metrics:
            if m not in stats[arm]:
                continue
            s, ids, d = stats[arm][m], tuple(stat_runs[arm][m]), decimals[m]
            quantities.append(numbers.Quantity(numbers.macro_name(arm, m, "Mean"), s.mean,
                                               numbers.fmt_fixed(s.mean, d), ids, arm, m, "mean"))
            if s.std is not None and s.ci_half is not None:
                quantities.append(numbers.Quantity(numbers.macro_name(arm, m, "Std"), s.std,
                                                   numbers.fmt_fixed(s.std, d), ids, arm, m, "std"))
                quantities.append(numbers.Quantity(numbers.macro_name(arm, m, "CI"), s.ci_half,
                                                   numbers.fmt_fixed(s.ci_half, d), ids, arm, m,
                                                   "ci_half"))
            else:
                omitted.append(f"{arm} {m}: {'; '.join(s.flags)} (no Std/CI macros)")
            quantities.append(numbers.Quantity(numbers.macro_name(arm, m, "N"), s.n, str(s.n), ids,
                                               arm, m, "n"))
    comparisons, compare_quantities, compare_omitted = _compare_arms(
        plan, arms, baseline, metrics, by_arm, stats, stat_runs, decimals)
    quantities += compare_quantities
    omitted += compare_omitted
    from ..program.report import quantities as program_quantities

    quantities += program_quantities(root)  # the improvement loop's trials, kept, improvement
    numbers.check_unique(quantities)

    out = Path(out_dir) if out_dir else root / "analysis"
    if not out.is_absolute():
        out = root / out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalysisError(f"cannot create {out}: {exc.strerror}",
                            hint="pass --out DIR somewhere writable") from None
    ledger_info = {"path": LEDGER_REL, "sha256": collected.ledger.sha256,
                   "lines": collected.ledger.line_count}
    header = [f"Generated by `rstack analyze` from {LEDGER_REL} (sha256 {collected.ledger.sha256}, "
              f"{collected.ledger.line_count} lines). Do not edit: re-run `rstack analyze`."]
    colors = figures.arm_colors(arms)
    artifacts: list[dict] = []
    written: list[Path] = []

    def add(path: Path, kind: str, shown: list[str]) -> None:
        entry = {"path": _rel(path, root), "kind": kind, "sha256": sha256_file(path), "arms": shown}
        if kind == "figure":  # the printed size it was designed for (fonts are 8 pt at it)
            entry["size_in"] = figures.figure_size_in(path.with_suffix(".png"))
        artifacts.append(entry)
        written.append(path)

    metric_labels = {m: plan.metric(m).label for m in metrics if plan.metric(m).label}
    arm_labels = {a: plan.arm_specs[a].label for a in arms
                  if a in plan.arm_specs and plan.arm_specs[a].label}
    bars = [figures.ArmBar(a, stats[a][primary].mean, stats[a][primary].ci_low,
                           stats[a][primary].ci_high, stats[a][primary].values)
            for a in arms if primary in stats[a]]
    for path in figures.plot_bar(bars, colors, primary, direction, out,
                                 plan.metric(primary).label, arm_labels):
        add(path, "figure", [b.arm for b in bars])

    histories: dict[str, list[list[dict[str, float]]]] = {}
    missing: list[str] = []
    for arm in arms:
        for run in by_arm[arm]:
            rows, why = load_history(root, run)
            if rows is None:
                missing.append(why)
            else:
                histories.setdefault(arm, []).append(rows)
    if missing:
        notes += [f"learning curve: {why}; run left out of fig_curves" for why in missing]
    if histories:
        shown = [a for a in arms if a in histories]
        for path in figures.plot_curves(histories, shown, colors, primary, directions, out,
                                        metric_labels, arm_labels):
            add(path, "figure", shown)
    else:
        notes.append("learning curves skipped: no run has a usable metrics.jsonl")
        for ext in ("pdf", "png"):
            stale = out / f"{figures.FIGURE_FILES['curves']}.{ext}"
            if stale.exists():
                stale.unlink()

    table_path = out / "table_main.tex"
    run_counts = {a: len(by_arm[a]) for a in arms}
    write_text(table_path, tables.render_table(arms, metrics, stats, directions, decimals,
                                                  run_counts, header, metric_labels, arm_labels))
    add(table_path, "table", list(arms))
    numbers_path = out / "numbers.tex"
    write_text(numbers_path, numbers.render_numbers_tex(quantities, header, omitted))
    add(numbers_path, "numbers", list(arms))

    summary = {
        "version": SUMMARY_VERSION,
        "generated_at": collected.latest_ts(),
        "ledger": ledger_info,
        "plan": {"path": _rel(plan.path, root), "sha256": plan.sha256},
        "primary_metric": primary,
        "direction": direction,
        "baseline_arm": baseline,
        "confidence": CONFIDENCE,
        "alpha": ALPHA,
        "min_seeds": MIN_SEEDS,
        "significance_rule": SIGNIFICANCE_RULE,
        "direction_rule": DIRECTION_RULE,
        "metrics": {m: {"direction": directions[m], "decimals": decimals[m],
                        "label": plan.metric(m).label,
                        "min_effect": plan.metric(m).min_effect,
                        "min_effect_relative": plan.metric(m).min_effect_relative}
                    for m in metrics},
        "pairing": plan.evaluation.pairing,
        "arms": {arm: _arm_json(by_arm[arm], stats[arm], stat_runs[arm]) for arm in arms},
        "comparisons": comparisons,
        "quantities": [q.as_json() for q in quantities],
        "artifacts": artifacts,
        "notes": notes,
    }
    summary_path = out / "summary.json"
    write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False,
                                           allow_nan=False) + "\n")
    readme_path = out / "README.md"
    from .report import render_readme

    write_text(readme_path, render_readme(summary))
    written += [summary_path, readme_path]
    return AnalysisResult(summary=summary, out_dir=out, written=written)


def _one_design_per_arm(collected, runs: list[UsedRun], notes: list[str]) -> list[UsedRun]:
    """Only the runs of each arm's latest design (the args of its latest run.started, up to a
    design-preserving OOM retry): an arm whose plan or `retry: adjust` changed its args never
    mixes old-design seeds into its statistics."""
    from ..retrypolicy import same_design

    latest = collected.latest_args
    keep = []
    for run in runs:
        design = latest.get(run.arm, run.args)
        if same_design(run.args, design):
            keep.append(run)
        else:
            notes.append(f"{run.run_id}: arm {run.arm} seed {run.seed} ran with "
                         f"{' '.join(run.args) or 'no args'}, but the arm's latest design is "
                         f"{' '.join(design) or 'no args'}; left out so the arm does not mix "
                         "designs (re-run that seed with rstack run)")
    return keep


def _compare_arms(plan, arms: list[str], baseline: str, metrics: list[str],
                  by_arm: dict[str, list[UsedRun]], stats: dict[str, dict[str, Summary]],
                  stat_runs: dict[str, dict[str, list[str]]], decimals: dict[str, int]
                  ) -> tuple[list[dict], list[numbers.Quantity], list[str]]:
    """Every arm against the baseline on every metric both have (rstack.analysis.compare), Holm
    over the comparisons with a declared direction, as summary.json entries and macros."""
    raw: list[tuple[Comparison, tuple[str, ...]]] = []
    for arm in arms:
        if arm == baseline:
            continue
        for m in metrics:
            if m not in stats[arm] or m not in stats[baseline]:
                continue
            spec = plan.metric(m)
            treat = {r.seed: r.metrics[m] for r in by_arm[arm] if m in r.metrics}
            base = {r.seed: r.metrics[m] for r in by_arm[baseline] if m in r.metrics}
            paired = plan.paired and set(treat) == set(base) and None not in treat
            flags: tuple[str, ...] = ()
            if plan.paired and not paired:
                flags = (f"pairing: seed, but the ok runs' seeds differ (arm {sorted(treat)}, "
                         f"baseline {sorted(base)}): Welch used",)
            seeds = sorted(treat) if paired else None
            c = compare([treat[s] for s in seeds] if paired else list(stats[arm][m].values),
                        [base[s] for s in seeds] if paired else list(stats[baseline][m].values),
                        direction=spec.direction, min_effect=spec.min_effect,
                        min_effect_relative=spec.min_effect_relative, paired=paired,
                        alpha=ALPHA, arm=arm, baseline_arm=baseline, metric=m)
            if flags:
                c = replace(c, flags=flags + c.flags)
            raw.append((c, tuple(stat_runs[arm][m]) + tuple(stat_runs[baseline][m])))
    family = [i for i, (c, _) in enumerate(raw) if c.direction is not None]
    adjusted = dict(zip(family, holm([raw[i][0] for i in family])))
    entries, quantities, omitted = [], [], []
    for i, (c, ids) in enumerate(raw):
        c = adjusted.get(i) or replace(c, p_adjusted=None)
        m, arm, d = c.metric, c.arm, decimals[c.metric]
        entry = {key: value for key, value in c.as_json().items()
                 if key not in ("mean_treatment", "mean_baseline", "significant")}
        s_arm, s_base = stats[arm][m], stats[baseline][m]
        overlap = (None if s_arm.ci_low is None or s_base.ci_low is None else
                   not (s_arm.ci_high < s_base.ci_low or s_base.ci_high < s_arm.ci_low))
        entry.update({
            "n": s_arm.n, "n_baseline": s_base.n, "significant": c.significant,
            # The names an older summary.json used, kept for its readers (the paper audit).
            "delta": c.diff, "rel_delta": c.rel_diff, "p_value": c.p,
            "improved": None if c.improvement is None else c.improvement > 0,
            "ci_overlap": overlap, "run_ids": list(ids)})
        entries.append(entry)
        stem = (arm, "Vs", baseline, m)

        def q(suffix: str, value: float, text: str, stat: str) -> None:
            quantities.append(numbers.Quantity(numbers.macro_name(*stem, suffix), value, text,
                                               ids, arm, m, stat, baseline))

        q("Delta", c.diff, numbers.fmt_fixed(c.diff, d, signed=True), "delta")
        if c.ci_low is not None and c.ci_high is not None:
            q("DeltaLow", c.ci_low, numbers.fmt_fixed(c.ci_low, d, signed=True), "diff_ci_low")
            q("DeltaHigh", c.ci_high, numbers.fmt_fixed(c.ci_high, d, signed=True),
              "diff_ci_high")
        else:
            omitted.append(f"{arm} vs {baseline} {m}: no interval of the difference "
                           f"({'; '.join(c.flags) or 'too few values'})")
        if c.rel_diff is not None:
            pct = 100 * c.rel_diff
            q("RelDeltaPct", pct, numbers.fmt_fixed(pct, 1, signed=True), "rel_delta_pct")
        if c.p is not None:
            q("PValue", c.p, numbers.fmt_p(c.p), "p_value")
        else:
            omitted.append(f"{arm} vs {baseline} {m}: no p-value ({'; '.join(c.flags)})")
        if c.p_adjusted is not None:
            q("PAdj", c.p_adjusted, numbers.fmt_p(c.p_adjusted), "p_adjusted")
    return entries, quantities, omitted


def _arm_json(runs: list[UsedRun], stats: dict[str, Summary],
              stat_runs: dict[str, list[str]]) -> dict:
    return {
        "run_ids": [r.run_id for r in runs],
        "seeds": [r.seed for r in runs],
        "latest_finished_ts": max(r.finished_ts for r in runs),
        "runs": [{"run_id": r.run_id, "seed": r.seed, "finished_ts": r.finished_ts,
                  "ledger_line": r.finished_line, "output_dir": r.output_dir} for r in runs],
        "metrics": {m: {"n": s.n, "mean": s.mean, "std": s.std, "ci_low": s.ci_low,
                        "ci_high": s.ci_high, "ci_half": s.ci_half, "values": list(s.values),
                        "run_ids": stat_runs[m], "flags": list(s.flags)}
                    for m, s in stats.items()},
    }
