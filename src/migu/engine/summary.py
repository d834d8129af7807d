"""Plain-text views of results: an accuracy matrix, and runs side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from migu.engine.runner import RunResult

__all__ = ["format_comparison", "format_matrix"]

# (metrics.json key, label) in the order a reader looks for them
_METRICS = (
    ("final_average_accuracy", "final average accuracy (AA)"),
    ("learning_accuracy", "accuracy right after learning"),
    ("backward_transfer", "backward transfer (BWT)"),
    ("forgetting", "forgetting"),
    ("forward_transfer", "forward transfer (FWT)"),
    ("average_incremental_accuracy", "average incremental accuracy"),
    ("seconds_per_step", "seconds per optimizer step"),
    ("mean_update_fraction", "rows updated per step"),
)


def _fmt(x: object) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def format_matrix(title: str, tasks: Sequence[str], matrix: Sequence[Sequence[float]]) -> str:
    """The accuracy matrix as a table: rows = after which task, columns = evaluated task."""
    labels = ["before training"] + [f"after {t}" for t in tasks]
    lw = max(len(s) for s in labels[: len(matrix)]) + 2
    cw = max(7, *(len(t) + 2 for t in tasks))
    lines = [title, " " * lw + "".join(t.rjust(cw) for t in tasks)]
    for label, row in zip(labels, matrix, strict=False):
        lines.append(label.ljust(lw) + "".join(_fmt(a).rjust(cw) for a in row))
    return "\n".join(lines)


def format_comparison(results: Mapping[str, RunResult]) -> str:
    """Every run's matrix, then one table of metrics with a column per run."""
    parts = [
        format_matrix(f"{name}: accuracy ({r.metrics.get('metric', '')}) after each task", r.tasks, r.matrix)
        for name, r in results.items()
    ]
    names = list(results)
    cw = max(10, *(len(n) + 2 for n in names))
    # General-ability probes (eval.general): accuracy before, at the end, and the drop, per probe.
    probes = sorted(
        {k.split("/")[1] for r in results.values() for k in r.metrics if k.startswith("general/")}
    )
    rows = list(_METRICS) + [
        (f"general/{p}/{what}", f"{p}: {label}")
        for p in probes
        for what, label in (
            ("acc_before", "acc before training"),
            ("acc", "acc at the end"),
            ("forgetting", "forgetting"),
        )
    ]
    lw = max(len(label) for _, label in rows) + 2
    lines = ["metrics".ljust(lw) + "".join(n.rjust(cw) for n in names)]
    for key, label in rows:
        lines.append(label.ljust(lw) + "".join(_fmt(results[n].metrics.get(key)).rjust(cw) for n in names))
    if len(names) > 1 and any(results[n].metrics.get("seconds_per_step") for n in names):
        lines.append(
            "(seconds per step of runs made one after another also measure the machine's load at the "
            "time; benchmarks/step_cost.py measures methods side by side)"
        )
    lines.append("run directories: " + ", ".join(str(r.run_dir) for r in results.values()))
    return "\n\n".join(parts) + "\n\n" + "\n".join(lines)
