"""The main results table (analysis/table_main.tex): booktabs, mean +- CI half-width, best in bold.

Rendering only: the statistics and the number formats come from stats.py and numbers.py.
Needs booktabs and graphicx (\\resizebox) in the preamble; every venue template loads both.
Bold marks the best mean in the metric's declared direction; it says nothing about significance,
and a metric without a declared direction has no bold and no arrow.
"""

from __future__ import annotations

from ..tex import tex_escape
from .compare import DIRECTIONS
from .numbers import fmt_fixed
from .stats import MIN_SEEDS, Summary

def best_arms(stats: dict[str, dict[str, Summary]], metric: str, direction: str | None,
              decimals: int) -> set[str]:
    """Arms whose printed mean is the best (ties at the printed precision all count).

    An arm with a single seed is not ranked while any arm has two or more: one lucky seed must
    not wear the bold.
    """
    if direction not in DIRECTIONS:
        return set()  # no declared direction: nothing is "best"
    having = {arm: per[metric] for arm, per in stats.items() if metric in per}
    if any(s.n >= 2 for s in having.values()):
        having = {arm: s for arm, s in having.items() if s.n >= 2}
    printed = {arm: float(fmt_fixed(s.mean, decimals)) for arm, s in having.items()}
    if len(printed) < 2:
        return set()
    target = min(printed.values()) if direction == "minimize" else max(printed.values())
    return {arm for arm, value in printed.items() if value == target}


def _cell(summary: Summary | None, decimals: int, bold: bool) -> str:
    if summary is None:
        return "--"
    body = fmt_fixed(summary.mean, decimals)
    if summary.ci_half is not None:
        body += r" \pm " + fmt_fixed(summary.ci_half, decimals)
    cell = f"{{\\boldmath${body}$}}" if bold else f"${body}$"
    if summary.n < MIN_SEEDS:
        cell += r"\textsuperscript{\dag}"
    return cell


def render_table(arms: list[str], metrics: list[str], stats: dict[str, dict[str, Summary]],
                 directions: dict[str, str | None], decimals: dict[str, int],
                 run_counts: dict[str, int], header: list[str],
                 metric_labels: dict[str, str] | None = None,
                 arm_labels: dict[str, str] | None = None) -> str:
    arrows = {"minimize": r" $\downarrow$", "maximize": r" $\uparrow$"}
    metric_labels, arm_labels = metric_labels or {}, arm_labels or {}
    undeclared = any(directions.get(m) not in arrows for m in metrics)
    best = {m: best_arms(stats, m, directions[m], decimals[m]) for m in metrics}
    any_small = any(s.n < MIN_SEEDS for per in stats.values() for s in per.values())
    any_single = any(s.n < 2 for per in stats.values() for s in per.values()) and any(
        s.n >= 2 for per in stats.values() for s in per.values())
    lines = [f"% {line}" for line in header]
    lines += [
        r"\begin{table}[t]",
        r"  \centering",
        r"  \caption{Results per arm: mean $\pm$ half-width of the 95\% confidence interval "
        r"(Student $t$) over seeds; $n$ is the number of seeds. Bold: best mean per metric "
        r"($\downarrow$ lower is better, $\uparrow$ higher is better"
        + (r"; no arrow: direction not declared, not ranked" if undeclared else "")
        + (r"; arms with one seed are not ranked" if any_single else "") + ")."
        + (r" \dag: fewer than three seeds, interval unreliable or absent." if any_small else "")
        + "}",
        r"  \label{tab:main}",
        r"  \small",
        # Shrink (never enlarge) to the column: many metrics overflow a two-column venue.
        r"  \resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        "  \\begin{tabular}{l" + "r" * (len(metrics) + 1) + "}",
        r"    \toprule",
        "    Arm & $n$ & " + " & ".join(
            f"{tex_escape(metric_labels.get(m) or m)}{arrows.get(directions.get(m), '')}"
            for m in metrics) + r" \\",
        r"    \midrule",
    ]
    for arm in arms:
        cells = [_cell(stats[arm].get(m), decimals[m], arm in best[m]) for m in metrics]
        lines.append(f"    {tex_escape(arm_labels.get(arm) or arm)} & {run_counts[arm]} & "
                     + " & ".join(cells) + r" \\")
    lines += [r"    \bottomrule", r"  \end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
