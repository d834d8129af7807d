"""Print the paper's kind of table from finished runs: one row per method, one column per task order.

Each cell is the mean ± standard deviation over seeds of one metric of the runs with that variant
and that ``data.order``; ``avg`` is the mean of a row's order means (shown only when the row has
every order). Used for docs/results.md:

    .venv/bin/python benchmarks/order_table.py /work/results_small/cpu-standard-small

Runs are read with migu's report reader, so unfinished runs are left out and listed. Other
columns: ``--columns train.lr --rows method --where seed=0 --where data.order=1`` puts the runs'
learning rates across and names rows by method (FT, FT+MIGU, ...) instead of variant.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from migu.report.collect import RunRecord, flatten, load_runs, mean_std, method_label

#: metrics.json key -> (column title, scale to print, digits)
METRICS = {
    "final_average_accuracy": ("final average accuracy (AA), %", 100.0, 1),
    "learning_accuracy": ("learning accuracy (mean of R[i][i]), %", 100.0, 1),
    "backward_transfer": ("backward transfer (BWT), points", 100.0, 1),
    "seconds_per_step": ("seconds per optimizer step", 1.0, 2),
}


def mean_std_cell(values: list[float], scale: float, digits: int) -> str:
    if not values:
        return ""
    mean, std = mean_std(values)  # std is None for one value
    if std is None:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _method(run: RunRecord, rows: str) -> str:
    """A run's row label: its variant's name, or (``rows="method"``) the paper-style method name."""
    if rows == "method":
        return method_label(run.config)
    return run.variant or method_label(run.config)


def _header(key: str, value: object) -> str:
    return f"order {value}" if key == "data.order" else f"{key.rpartition('.')[2]} {value}"


def table(runs: list[RunRecord], metric: str, column: str = "data.order", rows: str = "variant") -> str:
    """A Markdown table of ``metric`` (a ``metrics.json`` key): methods x values of the config key
    ``column`` (default: task orders), each cell the mean ± std over the seeds of its runs; ``avg`` is
    the mean of a row's cell means, shown only when the row has every column."""
    title, scale, digits = METRICS.get(metric, (metric, 1.0, 3))
    # (method, column value) -> values over seeds
    cells: dict[tuple[str, object], list[float]] = defaultdict(list)
    seeds: dict[str, set] = defaultdict(set)
    for run in runs:
        col = flatten(run.config).get(column)
        value = run.metrics.get(metric)
        if col is None or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        method = _method(run, rows)
        cells[(method, col)].append(float(value))
        seeds[method].add(run.seed)
    methods = list(dict.fromkeys(m for m, _ in cells))
    cols = sorted({c for _, c in cells}, key=lambda c: (str(type(c)), c))
    lines = [
        f"{title}; mean ± std over seeds",
        "",
        "| method | " + " | ".join(_header(column, c) for c in cols) + " | avg | seeds |",
        "|---|" + "---:|" * (len(cols) + 2),
    ]
    for m in methods:
        row = [mean_std_cell(cells.get((m, c), []), scale, digits) for c in cols]
        means = [statistics.fmean(cells[(m, c)]) for c in cols if cells.get((m, c))]
        avg = f"{statistics.fmean(means) * scale:.{digits}f}" if len(means) == len(cols) else ""
        n = ", ".join(str(s) for s in sorted(seeds[m], key=str))
        lines.append(f"| {m} | " + " | ".join(row) + f" | {avg} | {n} |")
    return "\n".join(lines)


def select(runs: list[RunRecord], where: list[str]) -> list[RunRecord]:
    """The runs whose config has every ``KEY=VALUE`` of ``where`` (values read as YAML: ``seed=0``)."""
    wanted = {}
    for item in where:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--where {item!r}: expected KEY=VALUE, e.g. --where seed=0")
        wanted[key] = yaml.safe_load(value)
    return [r for r in runs if all(flatten(r.config).get(k) == v for k, v in wanted.items())]


def per_task_table(runs: list[RunRecord], rows: str = "variant") -> str:
    """Per method and task, over every run: accuracy right after learning the task (R[i][i]) and at the end.

    Cells are ``R[i][i] -> final`` in %, each the mean over the runs (all orders and seeds) that have
    the task; a task's column reads the same task whatever its position in an order.
    """
    learned: dict[tuple[str, str], list[float]] = defaultdict(list)
    final: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        method = _method(run, rows)
        for i, task in enumerate(run.tasks):
            learned[(method, task)].append(run.matrix[i + 1][i])  # row i+1: after task i (row 0: before)
            final[(method, task)].append(run.matrix[-1][i])
    methods = list(dict.fromkeys(m for m, _ in learned))
    tasks = sorted({t for _, t in learned})
    lines = [
        "accuracy right after learning each task -> after the last task, %; mean over runs",
        "",
        "| method | " + " | ".join(tasks) + " | runs |",
        "|---|" + "---:|" * (len(tasks) + 1),
    ]
    for m in methods:
        cells = [
            f"{statistics.fmean(learned[(m, t)]) * 100:.1f} -> {statistics.fmean(final[(m, t)]) * 100:.1f}"
            if learned.get((m, t))
            else ""
            for t in tasks
        ]
        n = max(len(learned[(m, t)]) for t in tasks if learned.get((m, t)))
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or folders above them")
    parser.add_argument(
        "--metric",
        action="append",
        help=f"metrics.json key (repeatable; default: {', '.join(list(METRICS)[:3])})",
    )
    parser.add_argument("--columns", default="data.order", help="config key of the columns (data.order)")
    parser.add_argument(
        "--rows", choices=("variant", "method"), default="variant", help="rows: variant names or methods"
    )
    parser.add_argument("--where", action="append", default=[], help="KEY=VALUE: only such runs (repeatable)")
    parser.add_argument("--per-task", action="store_true", help="also the per-task R[i][i] -> final table")
    args = parser.parse_args()
    runs, left_out = load_runs(args.paths)
    runs = select(runs, args.where)
    if not runs:
        raise SystemExit(f"no finished run under {', '.join(map(str, args.paths))} matches {args.where}")
    for metric in args.metric or list(METRICS)[:3]:
        print(table(runs, metric, args.columns, args.rows))
        print()
    if args.per_task:
        print(per_task_table(runs, args.rows))
        print()
    for path, reason in left_out:
        print(f"left out: {path}: {reason}")


if __name__ == "__main__":
    main()
