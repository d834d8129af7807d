"""Paired comparisons (migu.report.paired) on hand-written sweeps: which arms meet, which runs pair, the p-value."""

from __future__ import annotations

import statistics

import pytest
import yaml
from fake_runs import write_fake_run

from migu.eval.metrics import sign_flip_p
from migu.report.collect import group_runs, load_runs
from migu.report.paired import migu_comparisons

MATRIX = [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]]
ORDER_TASKS = {1: ("a", "b"), 2: ("b", "a")}
VARIANTS = {
    "FT": {"migu.enabled": False},
    "FT+MIGU": {"migu.enabled": True},
    "FT+random": {"migu.enabled": True, "migu.criterion": "random"},
    "LoRA": {"method.name": "lora", "train.lr": 1e-3, "migu.enabled": False},
    "LoRA+MIGU": {"method.name": "lora", "train.lr": 1e-3, "migu.enabled": True},
}


def _reference_p(diffs: list[float]) -> float:
    """Sign-flip p by bit masks over the sum (same statistic as the mean for a fixed n)."""
    n, observed = len(diffs), abs(sum(diffs))
    hits = sum(
        abs(sum(-d if mask >> i & 1 else d for i, d in enumerate(diffs))) >= observed - 1e-9
        for mask in range(2**n)
    )
    return hits / 2**n


@pytest.mark.parametrize(
    "diffs", [[1.0, 2.0, 3.0], [1.0, -1.0], [0.5, -0.2, 1.5, 2.0, -0.1], [3.0] * 9, [2.0, 0.0, -1.0, 4.0]]
)
def test_sign_flip_p_matches_a_bit_mask_enumeration(diffs):
    assert sign_flip_p(diffs) == pytest.approx(_reference_p(diffs))


def test_sign_flip_p_on_hand_computed_cases():
    # All of n differences positive: only "all +" and "all -" reach |mean| -> 2 / 2^n.
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    assert sign_flip_p([0.5] * 9) == pytest.approx(2 / 512)
    # [3, -1]: patterns (+,+) 1, (+,-) 2, (-,+) -2, (-,-) -1 -> |mean| >= 1 for all four.
    assert sign_flip_p([3.0, -1.0]) == pytest.approx(1.0)
    # [4, 1, 1]: |mean| of the 8 patterns: 2, 4/3, 4/3, 2/3 and mirrored -> 2 of 8 reach 2.
    assert sign_flip_p([4.0, 1.0, 1.0]) == pytest.approx(2 / 8)
    assert sign_flip_p([]) != sign_flip_p([])  # NaN: nothing to test


def _sweep(root, aa: dict[tuple[str, int, int], float]) -> None:
    """A `migu sweep` tree: one folder per (order, seed) point, one run folder per variant."""
    for (variant, order, seed), value in aa.items():
        point = root / f"data.order={order}+seed={seed}"
        point.mkdir(parents=True, exist_ok=True)
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": VARIANTS}))
        over = VARIANTS[variant]
        config = {
            "seed": seed,
            "name": "sweep",
            "data": {"order": order, "tasks": list(ORDER_TASKS[order])},
            "method": {"name": over.get("method.name", "ft")},
            "train": {"lr": over.get("train.lr", 1e-4)},
            "migu": {
                "enabled": over["migu.enabled"],
                "threshold": 0.7,
                "criterion": over.get("migu.criterion", "output"),
            },
        }
        metrics = {
            "final_average_accuracy": value,
            "backward_transfer": -value / 10,
            "learning_accuracy": 0.6,
        }
        write_fake_run(point / variant, config, MATRIX, tasks=ORDER_TASKS[order], metrics=metrics)


def test_migu_meets_its_base_and_the_random_mask_run_for_run_over_orders(tmp_path):
    aa = {}
    base = {(1, 0): 0.50, (1, 1): 0.40, (2, 0): 0.45, (2, 1): 0.30}
    for (order, seed), b in base.items():
        aa[("FT", order, seed)] = b
        aa[("FT+MIGU", order, seed)] = b + 0.01 * (order + seed)  # +1, +2, +2, +3 points
        aa[("FT+random", order, seed)] = b + 0.01
        aa[("LoRA", order, seed)] = b - 0.2
        aa[("LoRA+MIGU", order, seed)] = b - 0.25  # worse than LoRA by 5 points every time
    del aa[("FT+random", 2, 1)]  # a sweep in progress: that point lacks one arm
    _sweep(tmp_path, aa)
    runs, _ = load_runs([tmp_path])
    comparisons = {(c.a, c.b): c for c in migu_comparisons(runs)}
    # LoRA+MIGU is never compared with FT (another method.name and lr), nor FT+random with LoRA.
    assert set(comparisons) == {
        ("FT+MIGU", "FT"),
        ("FT+MIGU", "FT+random"),
        ("FT+random", "FT"),
        ("LoRA+MIGU", "LoRA"),
    }
    migu_ft = comparisons[("FT+MIGU", "FT")]
    assert [k for k, _, _ in migu_ft.pairs] == sorted(((o, ORDER_TASKS[o], s) for o, s in base), key=str)
    s = migu_ft.summary("final_average_accuracy")
    assert s.diffs == pytest.approx([1.0, 2.0, 2.0, 3.0])
    assert (s.mean, s.std) == pytest.approx((2.0, statistics.stdev([1.0, 2.0, 2.0, 3.0])))
    assert (s.better, s.equal, s.worse, s.p) == (4, 0, 0, pytest.approx(2 / 16))
    vs_random = comparisons[("FT+MIGU", "FT+random")]
    assert len(vs_random.pairs) == 3  # (order 2, seed 1) has no FT+random run
    assert vs_random.summary("final_average_accuracy").diffs == pytest.approx([0.0, 1.0, 1.0])
    lora = comparisons[("LoRA+MIGU", "LoRA")].summary("backward_transfer")
    assert lora.diffs == pytest.approx([0.5] * 4) and lora.worse == 0 and lora.better == 4
    assert comparisons[("LoRA+MIGU", "LoRA")].summary("forward_transfer") is None  # not recorded


def test_arms_pool_orders_but_groups_do_not_and_labels_stay_short(tmp_path):
    _sweep(tmp_path, {(v, o, s): 0.5 for v in ("FT", "FT+random") for o in (1, 2) for s in (0, 1)})
    runs, _ = load_runs([tmp_path])
    groups = group_runs(runs)
    # data.tasks follows data.order: only the order is named; migu.criterion is told by the variant name.
    assert sorted(g.label for g in groups) == [
        "FT order=1",
        "FT order=2",
        "FT+random order=1",
        "FT+random order=2",
    ]
    arms = group_runs(runs, across_sequences=True)
    assert sorted((a.label, len(a.runs)) for a in arms) == [("FT", 4), ("FT+random", 4)]
    assert {r.label for r in runs} == {g.label for g in groups}  # pooling leaves the runs' labels alone
    (c,) = migu_comparisons(runs)
    assert (c.a, c.b, len(c.pairs)) == ("FT+random", "FT", 4)


def test_a_point_run_twice_is_named_and_the_first_run_read_is_used(tmp_path):
    _sweep(tmp_path / "s1", {("FT", 1, 0): 0.5, ("FT+MIGU", 1, 0): 0.6})
    _sweep(tmp_path / "s2", {("FT+MIGU", 1, 0): 0.9})
    runs, _ = load_runs([tmp_path])
    (c,) = migu_comparisons(runs)
    assert c.repeated == [(1, ("a", "b"), 0)] and len(c.pairs) == 1
    assert c.summary("final_average_accuracy").diffs == pytest.approx([10.0])


def test_no_comparison_without_a_matching_base(tmp_path):
    _sweep(tmp_path, {("FT+MIGU", 1, 0): 0.6, ("LoRA", 1, 0): 0.5, ("FT", 2, 1): 0.4})
    assert migu_comparisons(load_runs([tmp_path])[0]) == []
