"""Paired comparisons of two methods, run for run, with an exact sign-flip test.

Two runs are *matched* when they trained the same task sequence with the same seed: the same
training sample and order, the same initial weights and the same test items (test samples do not
depend on the seed). The difference A - B of a metric over the matched pairs removes what the seed
and the order do to both methods alike. For these differences the report gives the mean ± sample
standard deviation, how many pairs A won, tied and lost, and the exact two-sided sign-flip
p-value: the share of the 2^n sign patterns of the n differences whose mean is at least as far
from zero as the observed one (no distributional assumption; with n pairs it cannot go below
2 / 2^n, so 5 pairs are needed before p can reach 0.0625 and 6 before it can go below 0.05).

Which arms are compared (:func:`migu_comparisons`): every method with MIGU against the same
method and settings without it (``FT+MIGU - FT``, ``LoRA+MIGU - LoRA``, a threshold sweep's every
T against its base), and MIGU's output-magnitude mask against another criterion on the same
settings (``FT+MIGU - FT+random``: does the magnitude beat a mask of the same size?). An arm pools
every task sequence it ran (``data.order`` 1-3 count as more pairs, not as separate arms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from migu.eval.metrics import sign_flip_p
from migu.report.collect import Group, RunRecord, flatten, group_runs, mean_std

__all__ = [
    "PAIRED_METRICS",
    "PairedComparison",
    "PairedSummary",
    "migu_comparisons",
    "diff_cell",
    "pair_key",
]

#: (metrics.json key, label) of the metrics compared, each in points (percent).
PAIRED_METRICS = (
    ("final_average_accuracy", "AA"),
    ("backward_transfer", "BWT"),
    ("learning_accuracy", "learning acc."),
)


def diff_cell(diffs: Sequence[float]) -> str:
    """Signed mean ± sample std of paired differences, e.g. ``+1.5 ± 2.0`` (the mean alone for one)."""
    mean, std = mean_std(diffs)
    return f"{mean:+.1f} ± {std:.1f}" if std is not None else f"{mean:+.1f}"


def pair_key(run: RunRecord) -> tuple[Any, tuple[str, ...], Any]:
    """What a matched pair shares: ``(data.order, task sequence, seed)``."""
    return (flatten(run.config).get("data.order"), tuple(run.tasks), run.seed)


@dataclass
class PairedSummary:
    """The matched differences A - B of one metric, in points.

    Attributes:
        diffs: One difference per matched pair (pairs where either run lacks the metric left out).
        mean / std: Their mean and sample standard deviation (``std`` is None for one pair).
        better / equal / worse: Pairs where A was higher, equal, lower.
        p: Exact two-sided sign-flip p-value of the mean (:func:`sign_flip_p`).
    """

    diffs: list[float]
    mean: float
    std: float | None
    better: int
    equal: int
    worse: int
    p: float

    def cell(self) -> str:
        """``+1.5 ± 2.0`` (the mean alone for one pair)."""
        return diff_cell(self.diffs)


@dataclass
class PairedComparison:
    """Arm A against arm B over their matched runs.

    Attributes:
        a / b: The arms' labels (method and the settings that tell the arms apart).
        pairs: ``(pair_key, run of A, run of B)`` for each (sequence, seed) both ran, sorted by key.
        repeated: Keys that an arm ran more than once (the first run read is used).
    """

    a: str
    b: str
    pairs: list[tuple[tuple, RunRecord, RunRecord]]
    repeated: list[tuple] = field(default_factory=list)

    def summary(self, metric: str) -> PairedSummary | None:
        """The differences A - B of ``metric`` (a ``metrics.json`` key) in points; None if no pair has it."""
        diffs = []
        for _, ra, rb in self.pairs:
            va, vb = ra.metrics.get(metric), rb.metrics.get(metric)
            if isinstance(va, int | float) and isinstance(vb, int | float):
                diffs.append(100.0 * (float(va) - float(vb)))
        if not diffs:
            return None
        mean, std = mean_std(diffs)
        better, equal = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
        return PairedSummary(diffs, mean, std, better, equal, len(diffs) - better - equal, sign_flip_p(diffs))


def _by_key(arm: Group) -> tuple[dict[tuple, RunRecord], list[tuple]]:
    runs: dict[tuple, RunRecord] = {}
    repeated = []
    for run in arm.runs:
        key = pair_key(run)
        if key in runs:
            repeated.append(key)
        else:
            runs[key] = run
    return runs, repeated


def compare(a: Group, b: Group) -> PairedComparison:
    """Arm ``a`` against arm ``b``, matched on (sequence, seed)."""
    runs_a, rep_a = _by_key(a)
    runs_b, rep_b = _by_key(b)
    keys = sorted(set(runs_a) & set(runs_b), key=str)
    return PairedComparison(
        a.label, b.label, [(k, runs_a[k], runs_b[k]) for k in keys], sorted(set(rep_a + rep_b), key=str)
    )


def _criterion(arm: Group) -> str:
    return flatten(arm.runs[0].config).get("migu.criterion", "output")


def _without(settings: dict[str, Any], drop: Any) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if not drop(k)}


def migu_comparisons(runs: Sequence[RunRecord]) -> list[PairedComparison]:
    """MIGU against its base, and MIGU's output criterion against the other criteria, run for run.

    Arms are :func:`~migu.report.collect.group_runs` groups spanning seeds and task sequences. An
    arm with MIGU is compared with the arm without MIGU whose other settings are the same (every
    ``migu.*`` key aside), and an arm with ``migu.criterion`` ``output`` with every MIGU arm that
    differs from it in the criterion only. Comparisons without a matched pair are left out.
    """
    arms = group_runs(runs, across_sequences=True)
    enabled = {id(g): g.runs[0].migu_enabled for g in arms}
    out = []
    for a in arms:
        if not enabled[id(a)]:
            continue
        rest = _without(a.settings, lambda k: k.startswith("migu."))
        for b in arms:
            if not enabled[id(b)] and _without(b.settings, lambda k: k.startswith("migu.")) == rest:
                out.append(compare(a, b))
        if _criterion(a) != "output":
            continue
        rest = _without(a.settings, lambda k: k == "migu.criterion")
        for b in arms:
            if (
                b is not a
                and enabled[id(b)]
                and _criterion(b) != "output"
                and _without(b.settings, lambda k: k == "migu.criterion") == rest
            ):
                out.append(compare(a, b))
    return [c for c in out if c.pairs]
