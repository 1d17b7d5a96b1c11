"""`rstack analyze`: the ledger's finished ok runs -> analysis/ (figures, table, numbers, summary).

The output depends only on the ledger, the plan and the runs' metrics.jsonl files: the same inputs
give byte-identical files (generated_at is the ledger's latest record time, not the clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text
from ..errors import AnalysisError
from ..hashing import sha256_file
from . import figures, numbers, tables
from .collect import UsedRun, collect_runs, load_history
from .stats import ALPHA, CONFIDENCE, MIN_SEEDS, Summary, compare, metric_direction, summarize

SUMMARY_VERSION = 1
LEDGER_REL = ".rstack/experiments.jsonl"
SIGNIFICANCE_RULE = (f"significant = Welch two-sided p < {ALPHA} AND the two "
                     f"{int(CONFIDENCE * 100)}% confidence intervals do not overlap AND at least "
                     f"{MIN_SEEDS} seeds per arm, in either direction; improved = the difference "
                     "points the metric's good direction; verdict = significantly better, "
                     "significantly worse, not significant (with the reason) or not testable")
DIRECTION_RULE = ("primary metric: the plan's evaluation.direction; other metrics: minimised when "
                  "the name contains loss, error or perplexity (or a word such as err, nll, mse, "
                  "mae, rmse, wer, cer, ppl, regret, time, latency, distance, fid), else maximised")


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
    runs = [r for r in collected.runs if r.arm in plan_arms]
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
    metrics = _order_metrics(runs, primary, list(plan.hypothesis.metrics))
    if not any(primary in r.metrics for r in runs):
        raise AnalysisError(
            f"primary metric {primary!r} (evaluation.primary_metric) is in no ok run's metrics; "
            f"the runs report: {', '.join(m for m in metrics if m != primary)}",
            hint="make the script write it to metrics.json, or fix evaluation.primary_metric")
    directions = {m: metric_direction(m, primary_metric=primary, primary_direction=direction)
                  for m in metrics}

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
    for arm in arms:
        if arm == baseline:
            continue
        for m in metrics:
            if m not in stats[arm] or m not in stats[baseline]:
                continue
            c = compare(stats[arm][m], stats[baseline][m], directions[m], arm_name=arm,
                        baseline_name=baseline)
            ids = tuple(stat_runs[arm][m]) + tuple(stat_runs[baseline][m])
            comparisons.append({
                "arm": arm, "baseline": baseline, "metric": m, "direction": directions[m],
                "delta": c.delta, "rel_delta": c.rel_delta, "p_value": c.p_value,
                "significant": c.significant, "improved": c.improved,
                "ci_overlap": c.overlap, "verdict": c.verdict,
                "n": stats[arm][m].n, "n_baseline": stats[baseline][m].n, "flags": list(c.flags),
                "run_ids": list(ids)})
            stem = (arm, "Vs", baseline, m)
            quantities.append(numbers.Quantity(
                numbers.macro_name(*stem, "Delta"), c.delta,
                numbers.fmt_fixed(c.delta, decimals[m], signed=True), ids, arm, m, "delta",
                baseline))
            if c.rel_delta is not None:
                pct = 100 * c.rel_delta
                quantities.append(numbers.Quantity(
                    numbers.macro_name(*stem, "RelDeltaPct"), pct,
                    numbers.fmt_fixed(pct, 1, signed=True), ids, arm, m, "rel_delta_pct",
                    baseline))
            if c.p_value is not None:
                quantities.append(numbers.Quantity(
                    numbers.macro_name(*stem, "PValue"), c.p_value, numbers.fmt_p(c.p_value),
                    ids, arm, m, "p_value", baseline))
            else:
                omitted.append(f"{arm} vs {baseline} {m}: no p-value ({'; '.join(c.flags)})")
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

    bars = [figures.ArmBar(a, stats[a][primary].mean, stats[a][primary].ci_low,
                           stats[a][primary].ci_high, stats[a][primary].values)
            for a in arms if primary in stats[a]]
    for path in figures.plot_bar(bars, colors, primary, direction, out):
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
        for path in figures.plot_curves(histories, shown, colors, primary, directions, out):
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
                                                  run_counts, header))
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
        "metrics": {m: {"direction": directions[m], "decimals": decimals[m]} for m in metrics},
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
