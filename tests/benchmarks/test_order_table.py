"""benchmarks/order_table.py: the methods x orders table of docs/results.md, from run directories."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests" / "report")]

from fake_runs import write_fake_run  # noqa: E402
from order_table import per_task_table, select, table  # noqa: E402

from migu.report.collect import load_runs  # noqa: E402


def _variant_runs(root: Path, seed: int, order: int, aa: dict[str, float]) -> None:
    point = root / f"seed={seed}+data.order={order}"
    variants = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    point.mkdir(parents=True)
    (point / "config.yaml").write_text(f"variants: {variants}\n")
    for name, value in aa.items():
        config = {"seed": seed, "data": {"order": order}, "migu": {"enabled": name == "FT+MIGU"}}
        write_fake_run(
            point / name,
            config,
            [[0.1, 0.1], [0.5, 0.1], [0.4, 0.6]],
            metrics={"final_average_accuracy": value},
        )


def test_cells_are_mean_and_std_over_seeds_and_avg_needs_every_order(tmp_path):
    _variant_runs(tmp_path, 0, 1, {"FT": 0.50, "FT+MIGU": 0.60})
    _variant_runs(tmp_path, 1, 1, {"FT": 0.54, "FT+MIGU": 0.62})
    _variant_runs(tmp_path, 0, 2, {"FT": 0.40})  # FT+MIGU has no order-2 run
    runs, _ = load_runs([tmp_path])
    lines = table(runs, "final_average_accuracy").splitlines()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[4:]}
    ft_std = statistics.stdev([0.50, 0.54]) * 100
    assert rows["FT"] == ["52.0 ± " + f"{ft_std:.1f}", "40.0", "46.0", "0, 1"]
    assert rows["FT+MIGU"][0] == f"61.0 ± {statistics.stdev([0.6, 0.62]) * 100:.1f}"
    assert rows["FT+MIGU"][1:3] == ["", ""]  # no order 2, so no average over orders


def test_per_task_table_reads_the_diagonal_and_the_last_row(tmp_path):
    _variant_runs(tmp_path, 0, 1, {"FT": 0.5})
    _variant_runs(tmp_path, 1, 1, {"FT": 0.5})
    runs, _ = load_runs([tmp_path])
    last = per_task_table(runs).splitlines()[-1]
    # Matrix rows: before, after a, after b = [.1 .1], [.5 .1], [.4 .6]: a learned to .5, ends at .4.
    assert last == "| FT | 50.0 -> 40.0 | 60.0 -> 60.0 | 2 |"


def test_other_columns_method_rows_and_where(tmp_path):
    _variant_runs(tmp_path, 0, 1, {"FT": 0.50, "FT+MIGU": 0.60})
    _variant_runs(tmp_path, 1, 1, {"FT": 0.54, "FT+MIGU": 0.62})
    _variant_runs(tmp_path, 0, 2, {"FT": 0.40})
    runs, _ = load_runs([tmp_path])
    only_order_1 = select(runs, ["data.order=1"])
    assert len(only_order_1) == 4 and {r.seed for r in select(runs, ["seed=1"])} == {1}
    lines = table(only_order_1, "final_average_accuracy", column="seed", rows="method").splitlines()
    assert lines[2] == "| method | seed 0 | seed 1 | avg | seeds |"
    assert lines[4:] == ["| FT | 50.0 | 54.0 | 52.0 | 0, 1 |", "| FT+MIGU | 60.0 | 62.0 | 61.0 | 0, 1 |"]
