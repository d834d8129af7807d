"""Plain-text views of results: an accuracy matrix, and runs side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from migu.engine.runner import RunResult
from migu.eval.metrics import mean_std, sign_flip_p

__all__ = ["format_comparison", "format_matrix", "format_over_seeds"]

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
    """Every run's matrix, then one table of metrics with a column per run.

    Runs of several seeds (``RunResult.seed`` set, from ``seeds: [...]``) are summarized by
    :func:`format_over_seeds` instead: the matrices of the first seed, then mean ± std per variant
    and the paired differences.
    """
    if any(r.seed is not None for r in results.values()):
        return format_over_seeds(results)
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


# (metrics.json key, short label) of the summary over seeds: the fractions shown in percent
_SEED_METRICS = (
    ("final_average_accuracy", "AA"),
    ("learning_accuracy", "LA"),
    ("backward_transfer", "BWT"),
)


def _values(runs: Sequence[RunResult], key: str) -> list[float]:
    out = []
    for r in runs:
        x = r.metrics.get(key)
        if isinstance(x, int | float) and not math.isnan(x):
            out.append(100.0 * x)
    return out


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def format_over_seeds(results: Mapping[str, RunResult]) -> str:
    """Runs of several seeds: the first seed's matrices, then per variant the mean ± std over seeds
    of AA, learning accuracy and BWT (in %), then each variant minus the first, paired by seed.

    A difference is called larger than its spread when its mean exceeds the standard deviation of
    the per-seed differences (a rough rule); the exact sign-flip p-value of the mean is printed
    beside it (:func:`migu.eval.metrics.sign_flip_p`), and the per-seed values so that a reader can
    judge.
    """
    by_variant: dict[str, dict[int, RunResult]] = {}
    for r in results.values():
        by_variant.setdefault(r.variant or "run", {})[r.seed if r.seed is not None else 0] = r
    seeds = sorted({s for runs in by_variant.values() for s in runs})
    first = seeds[0]
    parts = [
        format_matrix(
            f"{name} seed={first}: accuracy ({r.metrics.get('metric', '')}) after each task",
            r.tasks,
            r.matrix,
        )
        for name, runs in by_variant.items()
        if (r := runs.get(first)) is not None
    ]
    if len(seeds) > 1:
        parts[-1] += (
            f"\n(the matrices of seeds {', '.join(map(str, seeds[1:]))} are in their run directories)"
        )
    names = list(by_variant)
    cw = max(16, *(len(n) + 2 for n in names))
    lw = 36
    lines = [
        f"over seeds {', '.join(map(str, seeds))}: mean ± std, %".ljust(lw)
        + "".join(n.rjust(cw) for n in names)
    ]
    for key, label in _METRICS[:4]:
        cells = [_mean_std(_values(list(by_variant[n].values()), key)) for n in names]
        lines.append(label.ljust(lw) + "".join(c.rjust(cw) for c in cells))
    ref = names[0]
    for other in names[1:]:
        lines.append("")
        lines.append(f"{other} - {ref}, paired by seed (points):")
        for key, label in _SEED_METRICS:
            pairs = [s for s in seeds if s in by_variant[ref] and s in by_variant[other]]
            diffs = []
            for s in pairs:
                a, b = _values([by_variant[other][s]], key), _values([by_variant[ref][s]], key)
                if a and b:
                    diffs.append(a[0] - b[0])
            if not diffs:
                continue
            each = " ".join(f"{d:+.1f}" for d in diffs)
            mean, sd = mean_std(diffs)
            line = f"  {label:<4}{mean:+.1f}"
            if sd is not None:
                verdict = "larger than its spread" if abs(mean) > sd else "within its spread"
                higher = sum(d > 0 for d in diffs)
                line += (
                    f" ± {sd:.1f}   per seed: {each}   ({higher} of {len(diffs)} higher; {verdict}; "
                    f"sign-flip p {sign_flip_p(diffs):.3f})"
                )
            lines.append(line)
    lines.append("run directories: " + ", ".join(str(r.run_dir) for r in results.values()))
    return "\n\n".join(parts) + "\n\n" + "\n".join(lines)
