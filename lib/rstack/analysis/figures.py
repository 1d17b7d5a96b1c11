"""Publication figures: learning curves across seeds and a bar chart of the primary metric.

One style for every figure (Okabe-Ito colours, small sans fonts, TrueType embedded so venues
accept the PDFs). Output is deterministic: no creation dates, fixed seed-dot offsets. Figures
never compute statistics themselves; the bar chart draws the intervals it is given.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

# Colour-blind safe (Okabe & Ito); arm i always gets colour i in every figure.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.7,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.linewidth": 0.5,
    "grid.alpha": 0.35,
    "lines.linewidth": 1.4,
    "xtick.major.width": 0.7,
    "ytick.major.width": 0.7,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "savefig.dpi": 200,
    "figure.dpi": 100,
}

MAX_CURVE_PANELS = 4
MAX_CURVE_POINTS = 400
# Designed at print size so 8 pt stays 8 pt: a column is ~3.25 in, a full text width ~6.75 in.
COLUMN_IN = 3.25
TEXT_IN = 6.75
LOG_SPAN = 20.0
FIGURE_FILES = {"curves": "fig_curves", "bar": "fig_bar"}


@dataclass(frozen=True)
class ArmBar:
    arm: str
    mean: float
    ci_low: float | None
    ci_high: float | None
    values: tuple[float, ...]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_size_in(png_path: Path) -> list[float]:
    """[width, height] in inches of a saved figure (from its PNG): its designed print size."""
    from PIL import Image

    dpi = STYLE["savefig.dpi"]
    with Image.open(png_path) as img:
        return [round(img.width / dpi, 2), round(img.height / dpi, 2)]


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for ext, meta in (("pdf", {"CreationDate": None, "Producer": None, "Creator": None}),
                      ("png", {"Software": None})):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(path, format=ext, metadata=meta, bbox_inches="tight", pad_inches=0.02)
        paths.append(path)
    return paths


def _label(metric: str) -> str:
    # A `$` in a metric name would start matplotlib mathtext and fail the whole figure.
    return metric.replace("_", " ").replace("$", r"\$")


def _axis_label(metric: str, direction: str | None, label: str | None = None) -> str:
    """The metric's display name, with "(lower/higher is better)" only from a declared direction."""
    text = _label(label or metric)
    note = {"minimize": "lower is better", "maximize": "higher is better"}.get(direction or "")
    return f"{text}\n({note})" if note else text


def _compact(value: float, _pos=None) -> str:
    """Tick text that stays short: 1,500 -> 1.5k, 20,000 -> 20k, 2e6 -> 2M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _step_axis(ax) -> None:
    """At most 5 integer step ticks, in compact text, so long runs' labels never overlap."""
    from matplotlib import ticker

    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5, integer=True, min_n_ticks=2))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_compact))


def _value_axis(ax) -> None:
    from matplotlib import ticker

    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: f"{v:.4g}"))


def log_band(means, stds):
    """The +-1 std band as a log axis draws it: symmetric in log space, [m / (1 + s/m), m + s].

    mean - std can be 0 or negative (a noisy loss near zero), or positive but tiny, and either
    would pull the axis down by decades; the mirrored lower edge is always positive and never
    below m / 2 when s <= m.
    """
    import numpy as np

    means, stds = np.asarray(means, float), np.asarray(stds, float)
    upper = means + stds
    return means * means / upper, upper


def curve_metrics(histories: dict[str, list[list[dict[str, float]]]], primary: str) -> list[str]:
    """The metrics to draw, primary first, then the others by name (at most MAX_CURVE_PANELS)."""
    names: set[str] = set()
    for runs in histories.values():
        for rows in runs:
            for row in rows:
                names.update(k for k in row if k != "step")
    ordered = ([primary] if primary in names else []) + sorted(names - {primary})
    return ordered[:MAX_CURVE_PANELS]


def plot_curves(histories: dict[str, list[list[dict[str, float]]]], arms: list[str],
                colors: dict[str, str], primary: str, directions: dict[str, str | None],
                out_dir: Path, labels: dict[str, str] | None = None,
                arm_labels: dict[str, str] | None = None) -> list[Path]:
    """Mean over seeds per arm with a band of +-1 sample std (where >= 2 seeds have the step)."""
    import numpy as np

    plt = _pyplot()
    metrics = curve_metrics(histories, primary)
    labels, arm_labels = labels or {}, arm_labels or {}
    with plt.rc_context(STYLE):
        width = min(TEXT_IN, max(COLUMN_IN, 2.6 * len(metrics) + 0.4))
        fig, axes = plt.subplots(1, len(metrics), figsize=(width, 2.35), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            bands = []
            for arm in arms:
                by_step: dict[float, list[float]] = {}
                for rows in histories.get(arm, []):
                    for row in rows:
                        if metric in row:
                            by_step.setdefault(row["step"], []).append(row[metric])
                if not by_step:
                    continue
                steps = np.array(sorted(by_step))
                if len(steps) > MAX_CURVE_POINTS:
                    # Evenly thinned, ends kept: more points than pixels only slows the save.
                    keep = np.unique(np.linspace(0, len(steps) - 1, MAX_CURVE_POINTS).round())
                    steps = steps[keep.astype(int)]
                means = np.array([math.fsum(by_step[s]) / len(by_step[s]) for s in steps])
                stds = np.array([np.std(by_step[s], ddof=1) if len(by_step[s]) > 1 else np.nan
                                 for s in steps])
                n_runs = len(histories.get(arm, []))
                color = colors[arm]
                marker = "o" if len(steps) <= 12 else None
                ax.plot(steps, means, color=color, label=f"{arm_labels.get(arm, arm)} (n={n_runs})",
                        marker=marker, markersize=2.5)
                band = ~np.isnan(stds)
                if band.any():
                    bands.append((steps[band], means[band], stds[band], color))
            ax.set_xlabel("step")
            ax.set_ylabel(_axis_label(metric, directions.get(metric), labels.get(metric)))
            log = _wants_log(ax)
            for xs, ms, ss, color in bands:
                low, high = log_band(ms, ss) if log else (ms - ss, ms + ss)
                ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
            if log:
                _log_axis(ax)
            else:
                _value_axis(ax)
            _step_axis(ax)
            ax.margins(x=0.02)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="upper center", ncol=min(len(handles), 4),
                       bbox_to_anchor=(0.5, 1.0), borderaxespad=0.0)
        fig.tight_layout(rect=(0, 0, 1, 0.92 if handles else 1.0), w_pad=2.0)
        try:
            return _save(fig, out_dir, FIGURE_FILES["curves"])
        finally:
            plt.close(fig)


def _wants_log(ax) -> bool:
    """Log scale when a positive curve spans more than LOG_SPAN x (early losses dwarf the rest)."""
    ys = [y for line in ax.get_lines() for y in line.get_ydata()]
    if not ys or min(ys) <= 0:
        return False
    return max(ys) / min(ys) > LOG_SPAN


def _log_axis(ax) -> None:
    """Log y with plain labels at 1-2-5 steps (10^0 alone leaves the converged end unlabelled)."""
    from matplotlib import ticker

    ax.set_yscale("log")
    low, high = ax.get_ylim()
    # 1-2-5 steps over up to ~2 decades; beyond that they crowd the axis, so decades only.
    subs = (1.0, 2.0, 5.0) if high / max(low, 1e-300) <= 300 else (1.0,)
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def plot_bar(bars: list[ArmBar], colors: dict[str, str], metric: str, direction: str | None,
             out_dir: Path, label: str | None = None,
             arm_labels: dict[str, str] | None = None) -> list[Path]:
    """Mean of the primary metric per arm, 95% CI error bars, and each seed's value as a dot."""
    plt = _pyplot()
    with plt.rc_context(STYLE):
        # One column of a two-column venue (3.25 in) for up to three arms, wider beyond.
        fig, ax = plt.subplots(figsize=(max(COLUMN_IN, 0.75 * len(bars) + 1.2), 2.4))
        xs = list(range(len(bars)))
        for x, bar in zip(xs, bars):
            color = colors[bar.arm]
            ax.bar(x, bar.mean, width=0.6, color=color, alpha=0.85, edgecolor=color,
                   linewidth=0.8, zorder=2)
            if bar.ci_low is not None and bar.ci_high is not None:
                ax.errorbar(x, bar.mean, yerr=[[bar.mean - bar.ci_low], [bar.ci_high - bar.mean]],
                            fmt="none", ecolor="#222222", elinewidth=0.9, capsize=3, zorder=3)
            count = len(bar.values)
            # Fixed, symmetric offsets so identical values stay visible and output is repeatable.
            offsets = [0.0] if count == 1 else [
                -0.12 + 0.24 * i / (count - 1) for i in range(count)]
            ax.scatter([x + o for o in offsets], bar.values, s=9, color="white",
                       edgecolors="#222222", linewidths=0.6, zorder=4)
        labels = []
        arm_labels = arm_labels or {}
        for bar in bars:
            n = len(bar.values)
            note = f"n={n}" if n >= 2 else f"n={n}, no CI"
            # Long names wrap (at most two lines) rather than run into the next arm's label.
            name = textwrap.shorten(_label(arm_labels.get(bar.arm, bar.arm)), 40, placeholder="...")
            labels.append("\n".join(textwrap.wrap(name, 14)[:2]) + f"\n({note})")
        ax.set_xticks(xs)
        slant = len(bars) > 5  # many arms: slanted labels need less width than wrapped ones
        ax.set_xticklabels(labels, rotation=25 if slant else 0, ha="right" if slant else "center")
        ax.set_ylabel(_axis_label(metric, direction, label))
        _value_axis(ax)
        ax.grid(axis="x", visible=False)
        ax.axhline(0, color="#444444", linewidth=0.6, zorder=1)
        _pad_ylim(ax, bars)
        fig.tight_layout()
        try:
            return _save(fig, out_dir, FIGURE_FILES["bar"])
        finally:
            plt.close(fig)


def _pad_ylim(ax, bars: list[ArmBar]) -> None:
    highs = [max([b.mean, *(b.values), b.ci_high if b.ci_high is not None else b.mean])
             for b in bars]
    lows = [min([b.mean, *(b.values), b.ci_low if b.ci_low is not None else b.mean])
            for b in bars]
    top, bottom = max(highs + [0.0]), min(lows + [0.0])
    span = top - bottom
    if span <= 0 or not math.isfinite(span):
        return
    ax.set_ylim(bottom - (0.08 * span if bottom < 0 else 0), top + 0.08 * span)


def arm_colors(arms: list[str]) -> dict[str, str]:
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}
