"""Continual-learning metrics as pure functions of the accuracy matrix.

The accuracy matrix ``R`` of a run over ``T`` tasks has ``T + 1`` rows of ``T`` numbers:

- ``R[0][c]``: accuracy on task ``c + 1`` before any training (the untrained model);
- ``R[i][c]`` for ``i >= 1``: accuracy on task ``c + 1`` right after training on task ``i``.

Below, tasks are numbered ``j = 1..T`` as in the papers, and ``R[i][j]`` means row ``i``, task ``j``
(column ``j - 1``). The metrics are in the unit of ``R`` (fractions or percentages alike). ``R`` may
be a list of lists, a tuple, or a 2-D array (NumPy, PyTorch); values must be finite except where
noted.

Definitions (Lopez-Paz & Ranzato 2017, Chaudhry et al. 2018, Rebuffi et al. 2017):

- final average accuracy (the MIGU paper's "AA"): mean over j of R[T][j];
- average incremental accuracy: mean over i = 1..T of (mean over j <= i of R[i][j]);
- backward transfer (BWT): mean over j = 1..T-1 of (R[T][j] - R[j][j]); negative = forgetting;
- forward transfer (FWT): mean over j = 2..T of (R[j-1][j] - R[0][j]): accuracy on task j just
  before learning it, against the untrained model;
- forgetting: mean over j = 1..T-1 of (max over i = j..T-1 of R[i][j], minus R[T][j]);
- learning accuracy: mean over j of R[j][j], the accuracy on each task right after learning it.

``R[0]`` may hold NaN where the untrained model was not evaluated; only forward transfer reads row 0,
and it is then NaN. A run in progress has fewer rows: :func:`summarize` accepts that (see there).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "mean_std",
    "sign_flip_p",
    "average_incremental_accuracy",
    "backward_transfer",
    "final_average_accuracy",
    "forgetting",
    "forward_transfer",
    "learning_accuracy",
    "summarize",
]

_NAN = float("nan")


def _mean(values: Iterable[float]) -> float:
    """Mean of ``values``; NaN for none (a metric with no defined term)."""
    values = list(values)
    return math.fsum(values) / len(values) if values else _NAN


def _rows(R: Any) -> list[list[float]]:
    """Convert an array-like matrix to a list of float rows, checking it is a non-empty rectangle.

    Entries may be NaN here; the callers decide where NaN is allowed.

    Raises:
        ValueError: If ``R`` is not a 2-D matrix with at least one column and equal-length rows, or
            holds non-numbers or infinities.
    """
    if isinstance(R, (str, bytes)) or not isinstance(R, Iterable):
        raise ValueError(f"accuracy matrix must be a 2-D sequence of rows, got {type(R).__name__}")
    rows: list[list[float]] = []
    for i, row in enumerate(R):
        if isinstance(row, (str, bytes)) or not isinstance(row, Iterable):
            raise ValueError(f"accuracy matrix row {i} is not a sequence of numbers: {row!r}")
        try:
            values = [float(value) for value in row]
        except (TypeError, ValueError):
            raise ValueError(f"accuracy matrix row {i} holds a non-number: {row!r}") from None
        if any(math.isinf(value) for value in values):
            raise ValueError(f"accuracy matrix row {i} holds an infinite value: {values}")
        rows.append(values)
    if not rows or not rows[0]:
        raise ValueError(
            "accuracy matrix is empty: it needs a row 0 (before training) with one column per task"
        )
    n_tasks = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != n_tasks:
            raise ValueError(
                f"accuracy matrix rows differ in length: row 0 has {n_tasks} columns, row {i} has {len(row)}"
            )
    return rows


def _check_no_nan(rows: list[list[float]]) -> None:
    """NaN is allowed in row 0 only (the untrained model may not have been evaluated)."""
    for i, row in enumerate(rows[1:], start=1):
        if any(math.isnan(value) for value in row):
            raise ValueError(
                f"accuracy matrix row {i} holds NaN; only row 0 (before training) may. "
                f"For a run in progress pass only the rows computed so far to summarize()."
            )


def _full(R: Any) -> tuple[list[list[float]], int]:
    """Rows of a complete matrix and its number of tasks ``T``.

    Raises:
        ValueError: If ``R`` does not have ``T + 1`` rows of ``T`` finite numbers (row 0 may be NaN).
    """
    rows = _rows(R)
    n_tasks = len(rows[0])
    if len(rows) != n_tasks + 1:
        raise ValueError(
            f"accuracy matrix must have T + 1 = {n_tasks + 1} rows for its T = {n_tasks} columns "
            f"(row 0 before training, row i after task i), got {len(rows)}. "
            f"For a run in progress use summarize(), which accepts fewer rows."
        )
    _check_no_nan(rows)
    return rows, n_tasks


# The _*_at functions compute each metric with row k (1 <= k <= T, or 0) taken as the current state,
# i.e. on the terms of the full-T formula that rows 0..k define; k = T gives the full definition.
# R[i][j] of the docstrings is rows[i][j - 1].


def _final_average_accuracy_at(rows: Sequence[Sequence[float]], k: int) -> float:
    return _mean(rows[k][j - 1] for j in range(1, k + 1))


def _average_incremental_accuracy_at(rows: Sequence[Sequence[float]], k: int) -> float:
    return _mean(_final_average_accuracy_at(rows, i) for i in range(1, k + 1))


def _backward_transfer_at(rows: Sequence[Sequence[float]], k: int) -> float:
    return _mean(rows[k][j - 1] - rows[j][j - 1] for j in range(1, k))


def _forward_transfer_at(rows: Sequence[Sequence[float]], k: int, n_tasks: int) -> float:
    # R[j-1][j] needs row j - 1 <= k: the task after the current one is already measured.
    last = min(k + 1, n_tasks)
    return _mean(rows[j - 1][j - 1] - rows[0][j - 1] for j in range(2, last + 1))


def _max(values: Iterable[float]) -> float:
    """``max``, but NaN when any value is NaN (Python's ``max`` would depend on the order)."""
    values = list(values)
    return _NAN if any(math.isnan(v) for v in values) else max(values)


def _forgetting_at(rows: Sequence[Sequence[float]], k: int) -> float:
    return _mean(_max(rows[i][j - 1] for i in range(j, k)) - rows[k][j - 1] for j in range(1, k))


def _learning_accuracy_at(rows: Sequence[Sequence[float]], k: int) -> float:
    return _mean(rows[j][j - 1] for j in range(1, k + 1))


def final_average_accuracy(R: Any) -> float:
    """Final average accuracy (the MIGU paper's AA): mean accuracy over all tasks after the last.

    Formula: AA = (1/T) * sum over j = 1..T of R[T][j].

    Args:
        R: Accuracy matrix, T + 1 rows of T numbers (see the module docstring).

    Returns:
        The average, in the unit of ``R``.

    Raises:
        ValueError: If ``R`` is not (T + 1) x T, or holds NaN outside row 0, infinities or
            non-numbers.
    """
    rows, n_tasks = _full(R)
    return _final_average_accuracy_at(rows, n_tasks)


def average_incremental_accuracy(R: Any) -> float:
    """Average incremental accuracy: the average accuracy over the tasks seen so far, averaged over
    the training stages.

    Formula: AIA = (1/T) * sum over i = 1..T of [(1/i) * sum over j = 1..i of R[i][j]].

    Args:
        R: Accuracy matrix, T + 1 rows of T numbers (see the module docstring).

    Returns:
        The average, in the unit of ``R``.

    Raises:
        ValueError: If ``R`` is not (T + 1) x T, or holds NaN outside row 0, infinities or
            non-numbers.
    """
    rows, n_tasks = _full(R)
    return _average_incremental_accuracy_at(rows, n_tasks)


def backward_transfer(R: Any) -> float:
    """Backward transfer (BWT): how training on later tasks changed the accuracy on earlier ones.

    Formula: BWT = (1/(T-1)) * sum over j = 1..T-1 of (R[T][j] - R[j][j]). Negative values mean
    forgetting.

    Args:
        R: Accuracy matrix, T + 1 rows of T numbers (see the module docstring).

    Returns:
        The mean change, in the unit of ``R``; NaN when T = 1 (no earlier task to transfer to).

    Raises:
        ValueError: If ``R`` is not (T + 1) x T, or holds NaN outside row 0, infinities or
            non-numbers.
    """
    rows, n_tasks = _full(R)
    return _backward_transfer_at(rows, n_tasks)


def forward_transfer(R: Any) -> float:
    """Forward transfer (FWT): what earlier tasks did for a task before it was learned.

    Formula: FWT = (1/(T-1)) * sum over j = 2..T of (R[j-1][j] - R[0][j]): the accuracy on task j
    just before training on it, minus the untrained model's accuracy on it (row 0).

    Args:
        R: Accuracy matrix, T + 1 rows of T numbers (see the module docstring). Row 0 may hold NaN
            where the untrained model was not evaluated.

    Returns:
        The mean gain, in the unit of ``R``; NaN when T = 1, or when a row-0 entry it needs is NaN.

    Raises:
        ValueError: If ``R`` is not (T + 1) x T, or holds NaN outside row 0, infinities or
            non-numbers.
    """
    rows, n_tasks = _full(R)
    return _forward_transfer_at(rows, n_tasks, n_tasks)


def forgetting(R: Any) -> float:
    """Average forgetting: how far each earlier task fell from its best accuracy after learning it.

    Formula: F = (1/(T-1)) * sum over j = 1..T-1 of (max over i = j..T-1 of R[i][j], minus R[T][j]).
    Row 0 (before learning) does not count towards the maximum.

    Args:
        R: Accuracy matrix, T + 1 rows of T numbers (see the module docstring).

    Returns:
        The mean drop, in the unit of ``R`` (negative if tasks ended above their earlier best); NaN
        when T = 1.

    Raises:
        ValueError: If ``R`` is not (T + 1) x T, or holds NaN outside row 0, infinities or
            non-numbers.
    """
    rows, n_tasks = _full(R)
    return _forgetting_at(rows, n_tasks)


def learning_accuracy(R: Any) -> float:
    """Learning accuracy: the accuracy on each task right after training on it, averaged.

    Formula: LA = (1/T) * sum over j = 1..T of R[j][j] (the diagonal below row 0).

    Args:
        R: Accuracy matrix, T + 1 rows of T numbers (see the module docstring).

    Returns:
        The average, in the unit of ``R``.

    Raises:
        ValueError: If ``R`` is not (T + 1) x T, or holds NaN outside row 0, infinities or
            non-numbers.
    """
    rows, n_tasks = _full(R)
    return _learning_accuracy_at(rows, n_tasks)


def summarize(R: Any, *, allow_missing: bool = False) -> dict[str, float]:
    """All metrics of an accuracy matrix, complete or from a run in progress.

    A complete matrix (T + 1 rows) gives the values of the individual functions. A run in progress
    passes the k + 1 rows computed so far (0 <= k <= T: row 0 and rows 1..k, still T columns); rows
    that are entirely NaN at the end (a preallocated matrix) count as not computed yet. The last row
    present, k, is then the current state, and each metric is its formula restricted to the terms
    those rows define, with R[k] in place of R[T]:

    - final_average_accuracy: mean over j = 1..k of R[k][j] (tasks learned so far);
    - average_incremental_accuracy: mean over i = 1..k of (mean over j <= i of R[i][j]);
    - backward_transfer: mean over j = 1..k-1 of (R[k][j] - R[j][j]);
    - forward_transfer: mean over j = 2..min(k+1, T) of (R[j-1][j] - R[0][j]); task k + 1 counts,
      since row k already holds its accuracy before it is learned;
    - forgetting: mean over j = 1..k-1 of (max over i = j..k-1 of R[i][j], minus R[k][j]);
    - learning_accuracy: mean over j = 1..k of R[j][j].

    A metric with no defined term is NaN (all but forward transfer when k = 0; BWT and forgetting
    when k < 2).

    With ``allow_missing``, NaN entries anywhere mean "not evaluated" (``migu run`` with
    ``eval.rows: learned-and-final`` computes only R[i][i] and the last row): a metric whose terms
    need a missing entry is NaN, the others are exact. AA, BWT and learning accuracy need only the
    diagonal and the last row; FWT needs R[j-1][j], and from T = 3 on forgetting and average
    incremental accuracy need the entries below the diagonal.

    Args:
        R: Accuracy matrix with T columns and 1 to T + 1 rows (see the module docstring).
        allow_missing: Accept NaN outside row 0 (entries not evaluated).

    Returns:
        ``{"final_average_accuracy", "average_incremental_accuracy", "backward_transfer",
        "forward_transfer", "forgetting", "learning_accuracy"}`` -> value, in the unit of ``R``.

    Raises:
        ValueError: If ``R`` has more than T + 1 rows, rows of different lengths, no columns, or NaN
            outside row 0 in a row that is not trailing and entirely NaN.
    """
    rows = _rows(R)
    n_tasks = len(rows[0])
    while len(rows) > 1 and all(math.isnan(value) for value in rows[-1]):
        rows.pop()
    if len(rows) > n_tasks + 1:
        raise ValueError(
            f"accuracy matrix has {len(rows)} rows but only T = {n_tasks} columns; at most T + 1 rows "
            f"(row 0 before training, row i after task i)"
        )
    if not allow_missing:
        _check_no_nan(rows)
    k = len(rows) - 1
    return {
        "final_average_accuracy": _final_average_accuracy_at(rows, k),
        "average_incremental_accuracy": _average_incremental_accuracy_at(rows, k),
        "backward_transfer": _backward_transfer_at(rows, k),
        "forward_transfer": _forward_transfer_at(rows, k, n_tasks),
        "forgetting": _forgetting_at(rows, k),
        "learning_accuracy": _learning_accuracy_at(rows, k),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for fewer than two values).

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("mean_std of no values")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def sign_flip_p(diffs: Sequence[float]) -> float:
    """Exact two-sided p-value of the mean of paired differences under random sign flips.

    Every one of the ``2 ** len(diffs)`` sign patterns is enumerated (fine up to ~20 pairs); no
    distributional assumption. With n pairs it cannot go below ``2 / 2 ** n``.

    Returns:
        The share of sign patterns whose mean is at least as far from zero as the observed mean;
        NaN for no differences.
    """
    n = len(diffs)
    if n == 0:
        return float("nan")
    observed = abs(statistics.fmean(diffs))
    hits = 0
    for signs in itertools.product((1.0, -1.0), repeat=n):
        if abs(statistics.fmean(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - 1e-12:
            hits += 1
    return hits / 2**n
