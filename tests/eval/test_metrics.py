"""Tests for migu.eval.metrics on hand-written accuracy matrices (values worked out by hand)."""

from __future__ import annotations

import math

import pytest

from migu.eval.metrics import (
    average_incremental_accuracy,
    backward_transfer,
    final_average_accuracy,
    forgetting,
    forward_transfer,
    learning_accuracy,
    summarize,
)

KEYS = {
    "final_average_accuracy",
    "average_incremental_accuracy",
    "backward_transfer",
    "forward_transfer",
    "forgetting",
    "learning_accuracy",
}

# Three tasks, percentages. Row 0: untrained model; row i: after training task i.
#            task1 task2 task3
R3 = [
    [10.0, 20.0, 30.0],  # before training
    [80.0, 25.0, 35.0],  # after task 1
    [85.0, 88.0, 40.0],  # after task 2 (task 1 still improves: its best is here, not on the diagonal)
    [60.0, 85.0, 95.0],  # after task 3
]
R3_EXPECTED = {
    # AA = (60 + 85 + 95) / 3 = 240 / 3 = 80
    "final_average_accuracy": 80.0,
    # AIA = [80 + (85 + 88)/2 + (60 + 85 + 95)/3] / 3 = (80 + 86.5 + 80) / 3 = 246.5 / 3
    "average_incremental_accuracy": 246.5 / 3,
    # BWT = [(R3,1 - R1,1) + (R3,2 - R2,2)] / 2 = [(60 - 80) + (85 - 88)] / 2 = (-20 - 3) / 2 = -11.5
    "backward_transfer": -11.5,
    # FWT = [(R1,2 - R0,2) + (R2,3 - R0,3)] / 2 = [(25 - 20) + (40 - 30)] / 2 = 15 / 2 = 7.5
    "forward_transfer": 7.5,
    # F = [(max(R1,1, R2,1) - R3,1) + (max(R2,2) - R3,2)] / 2 = [(85 - 60) + (88 - 85)] / 2 = 28 / 2 = 14
    "forgetting": 14.0,
    # LA = (R1,1 + R2,2 + R3,3) / 3 = (80 + 88 + 95) / 3 = 263 / 3
    "learning_accuracy": 263 / 3,
}

# Two tasks, fractions.
R2 = [
    [0.5, 0.4],
    [0.9, 0.6],
    [0.7, 0.8],
]
R2_EXPECTED = {
    "final_average_accuracy": 0.75,  # (0.7 + 0.8) / 2
    "average_incremental_accuracy": 0.825,  # [0.9 + (0.7 + 0.8)/2] / 2 = (0.9 + 0.75) / 2
    "backward_transfer": -0.2,  # 0.7 - 0.9
    "forward_transfer": 0.2,  # R1,2 - R0,2 = 0.6 - 0.4
    "forgetting": 0.2,  # max(R1,1) - R2,1 = 0.9 - 0.7
    "learning_accuracy": 0.85,  # (0.9 + 0.8) / 2
}

FUNCTIONS = {
    "final_average_accuracy": final_average_accuracy,
    "average_incremental_accuracy": average_incremental_accuracy,
    "backward_transfer": backward_transfer,
    "forward_transfer": forward_transfer,
    "forgetting": forgetting,
    "learning_accuracy": learning_accuracy,
}


def _assert_metrics(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == KEYS
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize(
    ("R", "expected"), [(R3, R3_EXPECTED), (R2, R2_EXPECTED)], ids=["3 tasks", "2 tasks"]
)
def test_each_function_on_hand_matrices(R: list, expected: dict[str, float]) -> None:
    _assert_metrics({key: fn(R) for key, fn in FUNCTIONS.items()}, expected)
    _assert_metrics(summarize(R), expected)


def test_single_task() -> None:
    R = [[0.1], [0.9]]
    nan = float("nan")
    expected = {
        "final_average_accuracy": 0.9,
        "average_incremental_accuracy": 0.9,
        "backward_transfer": nan,  # no earlier task: documented NaN
        "forward_transfer": nan,
        "forgetting": nan,
        "learning_accuracy": 0.9,
    }
    _assert_metrics(summarize(R), expected)
    _assert_metrics({key: fn(R) for key, fn in FUNCTIONS.items()}, expected)


def test_array_likes() -> None:
    np = pytest.importorskip("numpy")
    _assert_metrics(summarize(np.array(R3)), R3_EXPECTED)
    assert final_average_accuracy(tuple(tuple(row) for row in R3)) == 80.0
    assert backward_transfer(np.array(R2, dtype=np.float32)) == pytest.approx(-0.2, abs=1e-6)


def test_partial_after_two_of_three_tasks() -> None:
    # Rows 0..2 present: k = 2 is the current state.
    expected = {
        "final_average_accuracy": 86.5,  # (R2,1 + R2,2) / 2 = (85 + 88) / 2
        "average_incremental_accuracy": 83.25,  # [80 + (85 + 88)/2] / 2 = (80 + 86.5) / 2
        "backward_transfer": 5.0,  # R2,1 - R1,1 = 85 - 80
        # Task 3 counts: row 2 holds its accuracy just before it is learned.
        # [(R1,2 - R0,2) + (R2,3 - R0,3)] / 2 = (5 + 10) / 2
        "forward_transfer": 7.5,
        "forgetting": -5.0,  # max(R1,1) - R2,1 = 80 - 85
        "learning_accuracy": 84.0,  # (R1,1 + R2,2) / 2 = (80 + 88) / 2
    }
    _assert_metrics(summarize(R3[:3]), expected)
    # The same with the not-yet-computed row present as NaN (a preallocated matrix).
    _assert_metrics(summarize(R3[:3] + [[float("nan")] * 3]), expected)


def test_partial_after_one_and_zero_tasks() -> None:
    nan = float("nan")
    after_one = {
        "final_average_accuracy": 80.0,
        "average_incremental_accuracy": 80.0,
        "backward_transfer": nan,
        "forward_transfer": 5.0,  # R1,2 - R0,2 = 25 - 20
        "forgetting": nan,
        "learning_accuracy": 80.0,
    }
    _assert_metrics(summarize(R3[:2]), after_one)
    _assert_metrics(summarize(R3[:1]), dict.fromkeys(KEYS, nan))
    _assert_metrics(summarize([R3[0]] + [[nan] * 3] * 3), dict.fromkeys(KEYS, nan))


def test_full_functions_reject_partial_matrices() -> None:
    for fn in FUNCTIONS.values():
        with pytest.raises(ValueError, match=r"T \+ 1 = 4 rows"):
            fn(R3[:3])


def test_nan_in_row_zero_only_affects_forward_transfer() -> None:
    nan = float("nan")
    R = [[nan, nan, nan]] + R3[1:]
    result = summarize(R)
    assert math.isnan(result["forward_transfer"])
    _assert_metrics(result, {key: value for key, value in R3_EXPECTED.items() if key != "forward_transfer"})
    assert math.isnan(forward_transfer(R))


@pytest.mark.parametrize(
    ("R", "message"),
    [
        ([], "empty"),
        ([[]], "empty"),
        ([[0.1, 0.2], [0.3]], "differ in length"),
        ([0.1, 0.2], "not a sequence"),
        ("abc", "2-D"),
        (5, "2-D"),
        ([["a", "b"], [0.1, 0.2], [0.3, 0.4]], "non-number"),
        ([[0.1], [float("inf")]], "infinite"),
        ([[0.1, 0.2], [0.3, float("nan")], [0.5, 0.6]], "NaN"),
        ([[0.1], [0.2], [0.3]], "rows"),  # T + 2 rows
    ],
)
def test_bad_shapes_and_values(R: object, message: str) -> None:
    for fn in [*FUNCTIONS.values(), summarize]:
        with pytest.raises(ValueError, match=message):
            fn(R)


def test_summarize_rejects_nan_before_a_computed_row() -> None:
    nan = float("nan")
    with pytest.raises(ValueError, match="row 1 holds NaN"):
        summarize([[0.1, 0.2], [nan, nan], [0.5, 0.6]])


def test_summarize_with_missing_entries_is_exact_where_it_can_be():
    import math

    from migu.eval.metrics import summarize

    nan = float("nan")
    full = [[0.1, 0.2, 0.3], [0.8, 0.3, 0.2], [0.6, 0.9, 0.4], [0.5, 0.7, 0.9]]
    cheap = [[0.1, 0.2, 0.3], [0.8, nan, nan], [nan, 0.9, nan], [0.5, 0.7, 0.9]]
    a, b = summarize(full), summarize(cheap, allow_missing=True)
    for key in ("final_average_accuracy", "backward_transfer", "learning_accuracy"):
        assert b[key] == pytest.approx(a[key]), key
    # By hand: AA (0.5 + 0.7 + 0.9) / 3, BWT ((0.5 - 0.8) + (0.7 - 0.9)) / 2, LA (0.8 + 0.9 + 0.9) / 3.
    assert b["final_average_accuracy"] == pytest.approx(0.7)
    assert b["backward_transfer"] == pytest.approx(-0.25)
    assert b["learning_accuracy"] == pytest.approx(2.6 / 3)
    for key in ("forward_transfer", "forgetting", "average_incremental_accuracy"):
        assert math.isnan(b[key]), key
    with pytest.raises(ValueError, match="NaN"):
        summarize(cheap)
