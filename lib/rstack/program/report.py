"""What a program has done, read from the knowledge base: `status`, `log`, the progress figure
and the paper's macros ("N trials, K kept, champion improves X by D [lo, hi]").

Nothing here runs anything or computes statistics of its own: intervals come from
`rstack.analysis.compare`/`stats`, values from ledgered runs.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .kb import KnowledgeBase
from .spec import Program, load_program
from .trial import code_values

PLOT_STEM = "fig_program"


def improvement_over_baseline(root: Path, program: Program, kb: KnowledgeBase) -> dict | None:
    """The champion against the baseline, paired on the confirm seeds (fresh seeds no trial was
    selected on), else on the trial seeds; None while the champion is the baseline."""
    champion, baseline = kb.champion, kb.baseline
    if champion is None or baseline is None or champion["champion"] == 0:
        return None
    from ..analysis.compare import compare

    champ, champ_ids = code_values(root, program, champion["tree"])
    base, base_ids = code_values(root, program, baseline["tree"])
    for seeds, which in ((program.confirm_seeds, "confirm"), (program.seeds, "trial")):
        if all(s in champ and s in base for s in seeds):
            c = compare([champ[s] for s in seeds], [base[s] for s in seeds],
                        direction=program.direction, paired=True, alpha=program.alpha)
            return {"seeds": which, "n": len(seeds), "diff": c.diff, "ci_low": c.ci_low,
                    "ci_high": c.ci_high, "improvement": c.improvement,
                    "improvement_low": c.improvement_low, "improvement_high": c.improvement_high,
                    "rel_diff": c.rel_diff, "champion_mean": c.mean_treatment,
                    "baseline_mean": c.mean_baseline,
                    "run_ids": [champ_ids[s] for s in seeds] + [base_ids[s] for s in seeds]}
    return None


def status(root: Path, program: Program | None = None) -> dict:
    """`rstack program status --json`."""
    program = program or load_program(root)
    kb = KnowledgeBase.read(root, program.name)
    champion = kb.champion
    base = kb.baseline
    now = datetime.now(timezone.utc)
    counts = kb.counts()
    spent = kb.spent_usd()
    champ_json = None
    if champion is not None:
        champ_json = {"champion": champion["champion"], "trial": champion["trial"],
                      "member": champion.get("member"), "commit": champion["commit"],
                      "tree": champion["tree"], "metric": program.metric,
                      "mean": champion.get("mean"), "ci_low": champion.get("ci_low"),
                      "ci_high": champion.get("ci_high"), "impact": champion.get("impact")}
    return {
        "program": program.name, "metric": program.metric, "direction": program.direction,
        "min_effect": program.min_effect, "champion": champ_json, "counts": counts,
        "improvement": improvement_over_baseline(root, program, kb),
        "budget": {"max_trials": program.max_trials,
                   "trials_left": (None if program.max_trials is None
                                   else max(0, program.max_trials - counts["trials"])),
                   "max_cost_usd": program.max_cost_usd, "spent_usd": spent,
                   "cost_left_usd": (None if program.max_cost_usd is None
                                     else round(max(0.0, program.max_cost_usd - spent), 6)),
                   "max_hours": program.max_hours, "hours_used": round(kb.hours_used(now), 3)},
        "noise": {"sd": base.get("noise_sd") if base else None,
                  "detectable": base.get("detectable") if base else None,
                  "seeds": program.seeds},
        "damaged_lines": kb.damage,
    }


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def status_lines(data: dict) -> list[str]:
    c = data["champion"]
    counts, budget, noise = data["counts"], data["budget"], data["noise"]
    lines = [f"program {data['program']}: {data['metric']} ({data['direction']}), "
             f"KEEP needs improvement > {data['min_effect']:g} beyond the noise"]
    if c is None:
        lines.append("champion: none yet (rstack program baseline)")
    else:
        who = f" by {c['member']}" if c.get("member") else ""
        lines.append(f"champion #{c['champion']} (trial {c['trial']}{who}, {c['commit'][:10]}): "
                     f"{data['metric']} {_num(c['mean'])} [{_num(c['ci_low'])}, {_num(c['ci_high'])}]")
    imp = data.get("improvement")
    if imp:
        lines.append(f"improvement over the baseline ({imp['seeds']} seeds, n={imp['n']}): "
                     f"{_num(imp['improvement'])} [{_num(imp['improvement_low'])}, "
                     f"{_num(imp['improvement_high'])}]")
    lines.append(f"trials: {counts['trials']} run, {counts['kept']} kept, {counts['discarded']} "
                 f"discarded, {counts['inconclusive']} inconclusive, {counts['failed']} failed")
    left = [f"{budget['trials_left']} trial(s)" if budget["trials_left"] is not None else None,
            f"${budget['cost_left_usd']:.2f}" if budget["cost_left_usd"] is not None else None,
            (f"{max(0.0, budget['max_hours'] - budget['hours_used']):.1f} h"
             if budget["max_hours"] is not None else None)]
    lines.append("budget left: " + (", ".join(x for x in left if x) or "no caps set")
                 + f" (spent ${budget['spent_usd']:.2f})")
    if noise["sd"] is not None:
        lines.append(f"noise: seed sd {_num(noise['sd'], 3)}; smallest detectable effect with "
                     f"{len(noise['seeds'])} seeds ~{_num(noise['detectable'], 3)}")
    return lines


def log_rows(root: Path, program: Program | None = None) -> list[dict]:
    """`rstack program log --json`: one object per trial, in order."""
    program = program or load_program(root)
    kb = KnowledgeBase.read(root, program.name)
    keys = ("trial", "verdict", "hypothesis", "commit", "tree", "mean", "diff", "ci_low",
            "ci_high", "n", "cost_usd", "impact", "champion_before", "champion_after", "runs",
            "files", "diffstat", "reason", "member", "duration_s", "overhead_s", "ts",
            "claim", "claim_status", "verified_by")
    return [{k: t.get(k) for k in keys} for t in kb.trials]


def log_lines(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if r["verdict"] == "BASELINE":
            numbers = f"mean {_num(r['mean'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
        elif r["diff"] is None:
            numbers = "-"
        else:
            numbers = f"diff {r['diff']:+.4g} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
        who = f" ({r['member']})" if r.get("member") else ""
        if r.get("claim_status") == "verified":
            who += f" [verified by {r['verified_by']}]"
        elif r.get("claim_status") in ("unverified", "duplicate"):
            who += f" [claim {r['claim_status']}: {r['reason']}]"
        out.append(f"#{r['trial']:<3} {r['verdict']:<12} {numbers:<36} ${r['cost_usd']:.2f}  "
                   f"{r['commit'][:8]}  {r['hypothesis'] or '-'}{who}")
    return out


def plot(root: Path, out_dir: Path | None = None, program: Program | None = None) -> list[Path]:
    """The progress figure: each trial's mean on the trial seeds with its interval (kept ones
    highlighted), the champion as a step line. PNG and PDF under analysis/."""
    from ..analysis import figures
    from ..analysis.stats import summarize
    from .spec import ProgramError

    program = program or load_program(root)
    kb = KnowledgeBase.read(root, program.name)
    if not kb.trials:
        raise ProgramError(f"program {program.name!r} has no trials to plot",
                           hint="rstack program baseline, then rstack program trial")
    plt = figures._pyplot()
    xs, means, lows, highs, kept = [], [], [], [], []
    for t in kb.trials:
        values = None
        if t["verdict"] == "BASELINE":
            lo, hi = t.get("ci_low"), t.get("ci_high")
            mean = t.get("mean")
        elif t.get("stages"):
            values = list(t["stages"][0]["values"].values())
            s = summarize(values, confidence=1 - program.alpha)
            mean, lo, hi = s.mean, s.ci_low, s.ci_high
        else:
            continue  # a FAILED trial has no value
        xs.append(t["trial"])
        means.append(mean)
        lows.append(mean - lo if lo is not None else 0.0)
        highs.append(hi - mean if hi is not None else 0.0)
        kept.append(t["verdict"] in ("KEEP", "BASELINE"))
    champ_x, champ_y = [], []
    by_trial = {t["trial"]: t for t in kb.trials}
    for c in kb.champions:
        champ_x.append(c["trial"])
        champ_y.append(c.get("mean") if c.get("mean") is not None else by_trial[c["trial"]]["mean"])
    last = max(t["trial"] for t in kb.trials)
    with plt.rc_context(figures.STYLE):
        fig, ax = plt.subplots(figsize=(figures.COLUMN_IN * 1.6, 2.4))
        other = [i for i, k in enumerate(kept) if not k]
        keep = [i for i, k in enumerate(kept) if k]
        ax.errorbar([xs[i] for i in other], [means[i] for i in other],
                    yerr=[[lows[i] for i in other], [highs[i] for i in other]], fmt="o",
                    ms=3, color="#999999", elinewidth=0.8, capsize=1.5, label="discarded / inconclusive")
        ax.errorbar([xs[i] for i in keep], [means[i] for i in keep],
                    yerr=[[lows[i] for i in keep], [highs[i] for i in keep]], fmt="o", ms=4.5,
                    color=figures.PALETTE[1], elinewidth=1.0, capsize=2, label="kept (and baseline)")
        ax.step(champ_x + [last + 0.5], champ_y + champ_y[-1:], where="post",
                color=figures.PALETTE[0], lw=1.2, label="champion")
        ax.set_xlabel("trial")
        note = "lower is better" if program.direction == "minimize" else "higher is better"
        ax.set_ylabel(f"{figures._label(program.metric)} ({note})")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{program.name}: {len(kb.candidates)} trials, "
                     f"{kb.counts()['kept']} kept")
        ax.legend(loc="best")
        out = Path(out_dir) if out_dir else Path(root) / "analysis"
        out.mkdir(parents=True, exist_ok=True)
        paths = figures._save(fig, out, PLOT_STEM)
        plt.close(fig)
    return paths


def quantities(root: Path) -> list:
    """The paper's macros for the project's program (none without program.md or a baseline):
    trials, kept, and the champion's improvement over the baseline with its interval."""
    from ..analysis import numbers
    from .spec import ProgramError, program_path

    if not program_path(root).is_file():
        return []
    try:
        program = load_program(root)
    except ProgramError:
        return []
    kb = KnowledgeBase.read(root, program.name)
    if kb.baseline is None:
        return []
    counts = kb.counts()
    trial_runs = tuple(r for t in kb.candidates for r in t["runs"])
    arm = program.name
    out = [numbers.Quantity(numbers.macro_name("program", arm, "Trials"), counts["trials"],
                            str(counts["trials"]), trial_runs, arm, program.metric, "program_trials"),
           numbers.Quantity(numbers.macro_name("program", arm, "Kept"), counts["kept"],
                            str(counts["kept"]), trial_runs, arm, program.metric, "program_kept")]
    imp = improvement_over_baseline(root, program, kb)
    if imp and imp["improvement_low"] is not None:
        d = numbers.metric_decimals([abs(imp["champion_mean"]), abs(imp["baseline_mean"])])
        ids = tuple(imp["run_ids"])
        for stat, key in (("Improvement", "improvement"), ("ImprovementLow", "improvement_low"),
                          ("ImprovementHigh", "improvement_high")):
            out.append(numbers.Quantity(numbers.macro_name("program", arm, stat), imp[key],
                                        numbers.fmt_fixed(imp[key], d), ids, arm, program.metric,
                                        f"program_{key}"))
    return out


def credits(root: Path, program: Program | None = None) -> dict:
    """`rstack program credits --json`: each member's verified impact (the sum of the verified
    improvements of the champions they made) and its share of the program's total."""
    program = program or load_program(root)
    kb = KnowledgeBase.read(root, program.name)
    impact: dict[str, float] = {}
    for c in kb.champions:
        if c.get("member") and c.get("impact") is not None and c["impact"] > 0:
            impact[c["member"]] = impact.get(c["member"], 0.0) + float(c["impact"])
    total = sum(impact.values())
    rows = [{"member": m, "impact": v, "share": (v / total if total else 0.0),
             "champions": sum(1 for c in kb.champions if c.get("member") == m)}
            for m, v in sorted(impact.items(), key=lambda item: -item[1])]
    return {"program": program.name, "metric": program.metric, "total_impact": total,
            "credits": rows}


def credit_lines(data: dict) -> list[str]:
    if not data["credits"]:
        return [f"program {data['program']}: no verified improvement by a member yet"]
    lines = [f"program {data['program']}: verified improvement of {data['metric']}, "
             f"total {_num(data['total_impact'])}"]
    for row in data["credits"]:
        lines.append(f"  {row['member']:<16} impact {_num(row['impact'])}  share "
                     f"{100 * row['share']:.1f}%  ({row['champions']} champion(s))")
    return lines
