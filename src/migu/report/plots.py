"""The report's figures, each returned as PNG bytes (matplotlib, no display, no global state).

Figures are built on ``matplotlib.figure.Figure`` directly rather than through ``pyplot``: no
backend is selected, no figure is kept alive in a global registry, and the module is safe to use
from a library (or from several threads).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "box_over_seeds",
    "cost_bars",
    "layer_overlap_lines",
    "magnitude_distribution",
    "matrix_heatmap",
    "overlap_heatmap",
    "per_task_figure",
    "per_task_overlay",
    "threshold_curve",
]

_DPI = 100


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _tick_names(names: Sequence[str], width: int = 30) -> list[str]:
    """Layer names without their common dotted prefix; long ones cut at the front (the tail tells them apart)."""
    parts = [n.split(".") for n in names]
    common = 0
    while parts and all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    out = []
    for p in parts:
        name = ".".join(p[common:])
        out.append(name if len(name) <= width else "…" + name[-(width - 1) :])
    return out


def _annotated_heatmap(
    ax, values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], vmin: float, vmax: float
):
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(col_labels)), [_short(c) for c in col_labels], rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), [_short(r, 22) for r in row_labels])
    if values.size <= 400:  # numbers stay readable up to a 20 x 20 matrix
        mid = (vmin + vmax) / 2
        for (i, j), v in np.ndenumerate(values):
            if not math.isnan(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if v > mid else "white",
                )
    return im


def matrix_heatmap(tasks: Sequence[str], matrix: Sequence[Sequence[float]], title: str) -> bytes:
    """Accuracy matrix R as a heatmap: row i = after task i (row 0 before training), column j = task j.

    Args:
        tasks: Task names (columns, and the rows after each task).
        matrix: ``len(tasks) + 1`` rows of accuracies in ``[0, 1]`` (NaN shown blank).
        title: Figure title.
    """
    values = np.array(matrix, dtype=float)  # (T + 1, T)
    rows = ["before training"] + [f"after {t}" for t in tasks][: len(values) - 1]
    n = len(tasks)
    fig = Figure(figsize=(1.6 + 0.55 * n, 1.2 + 0.4 * len(rows)))
    ax = fig.add_subplot()
    im = _annotated_heatmap(ax, values, rows, tasks, 0.0, 1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="accuracy")
    ax.set_xlabel("evaluated task")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def per_task_overlay(
    tasks: Sequence[str],
    groups: Mapping[str, Sequence[Sequence[Sequence[float]]]],
    title: str,
    chance: Mapping[str, float] | None = None,
) -> bytes:
    """One panel per task: its accuracy (%) after each step of the sequence, one line per group.

    Methods are compared where they differ, on the same axes; each line is the mean over the
    group's runs (NaN entries, such as those ``eval.rows: learned-and-final`` skips, are left out).
    A grey band marks where the task itself is trained.

    Args:
        tasks: Task names, in training order (every group shares them).
        groups: Group label -> one accuracy matrix per run, ``len(tasks) + 1`` rows each.
        title: Figure title.
        chance: Task -> accuracy of a uniform guess among its labels, drawn as a dotted grey line
            (a task near it is not learned, whatever the curve's shape).
    """
    return _png(per_task_figure(tasks, groups, title, chance))


def per_task_figure(
    tasks: Sequence[str],
    groups: Mapping[str, Sequence[Sequence[Sequence[float]]]],
    title: str,
    chance: Mapping[str, float] | None = None,
) -> Figure:
    """The figure of :func:`per_task_overlay` (for tests and for callers that save it themselves)."""
    chance = chance or {}
    n = len(tasks)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.1 * cols + 1.6, 2.5 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    x = np.arange(n + 1)
    names = ["start"] + list(tasks)
    for j, task in enumerate(tasks):
        ax = axes[j // cols][j % cols]
        ax.axvspan(j + 0.5, j + 1.5, color="0.9", zorder=0)  # where task j is trained
        for i, (label, runs) in enumerate(groups.items()):
            stack = np.full((len(runs), n + 1), np.nan)  # (n_runs, T + 1): this task's column
            for k, m in enumerate(runs):
                col = np.array(m, dtype=float).reshape(len(m), n)[:, j]
                stack[k, : len(col)] = col
            with warnings.catch_warnings():  # a step no run reached is all NaN: left blank
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = 100 * np.nanmean(stack, axis=0)  # (T + 1,)
            keep = ~np.isnan(mean)
            ax.plot(x[keep], mean[keep], marker="o", ms=3, lw=1.2, color=f"C{i % 10}", label=label)
        if task in chance:
            ax.axhline(100 * chance[task], ls=":", lw=1.0, color="0.45", label="chance (1 / labels)")
        ax.set_title(task, fontsize=9)
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        if j % cols == 0:
            ax.set_ylabel("accuracy (%)")
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, fontsize=8, loc="upper center", ncol=min(4, len(labels)), bbox_to_anchor=(0.5, 1.0)
    )
    fig.suptitle(title, fontsize=10, y=1.06)
    fig.tight_layout()
    return fig


def box_over_seeds(values: Mapping[str, Mapping[str, Sequence[float]]], title: str) -> bytes:
    """Spread over seeds: one panel per metric, one box (or violin, from 4 runs on) per group.

    Args:
        values: Metric label -> (group label -> the runs' values).
        title: Figure title.
    """
    metrics = list(values)
    groups = list(dict.fromkeys(g for m in metrics for g in values[m]))
    fig = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(groups)) * len(metrics) / 1.3, 3.6))
    rng = np.random.default_rng(0)  # jitter of the points: fixed, so the page is reproducible
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        data = [list(values[metric].get(g, [])) for g in groups]
        pos = [i + 1 for i, d in enumerate(data) if d]
        present = [d for d in data if d]
        if present:
            if min(len(d) for d in present) >= 4:
                parts = ax.violinplot(present, positions=pos, showmedians=True)
                for body in parts["bodies"]:
                    body.set_alpha(0.35)
            else:
                ax.boxplot(present, positions=pos, widths=0.5)
            for p, d in zip(pos, present, strict=True):
                ax.scatter(p + rng.uniform(-0.08, 0.08, len(d)), d, s=14, color="C1", zorder=3)
        ax.set_xticks(range(1, len(groups) + 1), [_short(g, 16) for g in groups], rotation=30, ha="right")
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def threshold_curve(
    series: Mapping[str, Sequence[tuple[float, float, float | None]]],
    baselines: Mapping[str, float],
    metric: str,
) -> bytes:
    """A metric against MIGU's threshold T (the paper's Fig. 4 and 13).

    Args:
        series: Series label -> points ``(T, mean, std or None)``.
        baselines: Label -> value drawn as a horizontal dashed line (runs without MIGU).
        metric: Y axis label.
    """
    fig = Figure(figsize=(5.5, 3.4))
    ax = fig.add_subplot()
    for label, points in series.items():
        pts = sorted(points)
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        err = [p[2] or 0.0 for p in pts]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
    for i, (label, value) in enumerate(baselines.items()):
        # Greys and dash-dot: a run without MIGU never shares a colour with a threshold series.
        ax.axhline(value, ls=(0, (6, 2, 1, 2)), lw=1.2, color=str(0.15 + 0.2 * (i % 4)), label=label)
    ax.set_xlabel("threshold T (fraction of rows masked)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def tradeoff_scatter(points: Mapping[str, Sequence[tuple[float, float]]]) -> bytes:
    """MIGU against its base method, one point per matched run pair: what it changed in learning
    (x) against what it changed in keeping (y), both in points of final average accuracy.

    Points above the dashed line ``x + y = 0`` ended higher than the base, points left of ``x = 0``
    learned less; so the upper-left quadrant holds a learning cost paid back by retention.

    Args:
        points: Series label (a setting) -> points ``(learning acc. A - B, kept A - B)``.
    """
    fig = Figure(figsize=(5.8, 4.2))
    ax = fig.add_subplot()
    markers = "osD^vP*X"
    for i, (label, pts) in enumerate(points.items()):
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        ax.scatter(xs, ys, s=28, marker=markers[i % len(markers)], label=f"{label} ({len(pts)})", alpha=0.8)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.axvline(0.0, color="0.6", lw=0.8)
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [-lo, -hi], ls="--", color="0.3", lw=1.0, label="AA unchanged (x + y = 0)")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("learning accuracy, MIGU - base (points)")
    ax.set_ylabel("kept: (AA - LA), MIGU - base (points)")
    ax.grid(alpha=0.3)
    # Below the axes: no legend box hides a point, however the points fall.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    return _png(fig)


def overlap_heatmap(tasks: Sequence[str], overlap: np.ndarray, title: str) -> bytes:
    """Tasks x tasks overlap ratio of updated rows (``overlap`` of shape ``(n, n)``)."""
    n = len(tasks)
    fig = Figure(figsize=(2.0 + 0.5 * n, 1.6 + 0.45 * n))
    ax = fig.add_subplot()
    im = _annotated_heatmap(ax, np.asarray(overlap, dtype=float), tasks, tasks, 0.0, 1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="overlap ratio")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def layer_overlap_lines(
    layers: Sequence[str], curves: Mapping[str, Sequence[float]], chance: Mapping[str, float]
) -> bytes:
    """Per layer, the mean overlap between different tasks, one line per run.

    Args:
        layers: Layer names (x axis, in model order).
        curves: Run label -> one value per layer.
        chance: Run label -> overlap of random masks (``1 - T``), drawn dashed.
    """
    fig = Figure(figsize=(max(6.0, 0.16 * len(layers) + 3), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(layers))
    for i, (label, ys) in enumerate(curves.items()):
        ax.plot(x[: len(ys)], ys, marker=".", label=label, color=f"C{i % 10}")
        if label in chance:
            ax.axhline(chance[label], ls="--", lw=0.8, color=f"C{i % 10}")
    step = max(1, len(layers) // 24)  # at most ~24 tick labels
    ax.set_xticks(x[::step], _tick_names(layers)[::step], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("mean overlap between tasks")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("dashed: random masks (1 - T)", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def magnitude_distribution(layer: str, magnitudes: Mapping[str, np.ndarray], title: str) -> bytes:
    """L1-normalized output magnitude of each unit of one layer, per task (the paper's Fig. 1 and 17).

    Top: each task's magnitudes sorted from the largest down (how concentrated they are, readable
    for hundreds of units, unlike a line per unit index). Bottom: the distribution of the units'
    magnitudes per task.
    """
    fig = Figure(figsize=(7.5, 4.6))
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 2]})
    values = [np.asarray(v, dtype=float) for v in magnitudes.values()]
    hi = max(float(v.max()) for v in values) if values else 1.0
    bins = np.linspace(0.0, hi if hi > 0 else 1.0, 30)
    for i, (task, m) in enumerate(magnitudes.items()):
        m = np.asarray(m, dtype=float)  # (d_out,)
        top.plot(np.arange(len(m)), np.sort(m)[::-1], lw=1.2, label=task, color=f"C{i % 10}")
        bottom.hist(m, bins=bins, histtype="step", lw=1.2, label=task, color=f"C{i % 10}")
    top.set_xlabel("output units, sorted by magnitude (largest first)")
    top.set_ylabel("normalized magnitude")
    top.set_title(f"{title}\n{layer}", fontsize=9)
    top.legend(fontsize=7, ncol=min(4, max(1, len(magnitudes))))
    top.grid(alpha=0.3)
    bottom.set_xlabel("normalized magnitude")
    bottom.set_ylabel("units")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def cost_bars(panels: Mapping[str, Mapping[str, tuple[float, float | None]]]) -> bytes:
    """One bar panel per cost (seconds per step, memory, ...), one bar per group, error = std over seeds.

    Args:
        panels: Panel title -> (group label -> ``(mean, std or None)``).
    """
    n = len(panels)
    groups = list(dict.fromkeys(g for p in panels.values() for g in p))
    fig = Figure(figsize=(max(4.0, 0.8 * len(groups) + 1.5) * n, 3.4))
    for k, (name, bars) in enumerate(panels.items()):
        ax = fig.add_subplot(1, n, k + 1)
        labels = [g for g in groups if g in bars]
        means = [bars[g][0] for g in labels]
        errs = [bars[g][1] or 0.0 for g in labels]
        ax.bar(
            range(len(labels)), means, yerr=errs, capsize=3, color=[f"C{i % 10}" for i in range(len(labels))]
        )
        ax.set_xticks(range(len(labels)), [_short(g, 16) for g in labels], rotation=30, ha="right")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    return _png(fig)
