"""Accuracy and macro-F1 of predicted labels (the metrics of the paper's continual pre-training table).

Pure functions of two label lists; no scikit-learn needed. ``macro_f1`` matches
``sklearn.metrics.f1_score(gold, pred, average="macro")``: the mean over the classes that occur in
``gold`` or ``pred`` of ``2 * TP / (2 * TP + FP + FN)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

__all__ = ["accuracy", "macro_f1"]


def _check(gold: Sequence[str], pred: Sequence[str]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold and pred differ in length ({len(gold)} vs {len(pred)}).")
    if not gold:
        raise ValueError("no examples: accuracy and F1 are undefined.")


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Share of positions where ``pred`` equals ``gold``.

    Raises:
        ValueError: different lengths or no examples.
    """
    _check(gold, pred)
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean of the per-class F1 scores.

    Args:
        gold: True labels.
        pred: Predicted labels, same length.
        labels: Classes to average over (a class absent from both lists scores 0). ``None``: the
            classes that occur in ``gold`` or ``pred`` (scikit-learn's default).

    Returns:
        Macro-F1 in ``[0, 1]``.

    Raises:
        ValueError: different lengths or no examples.
    """
    _check(gold, pred)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    classes = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    scores = []
    for c in classes:
        denom = 2 * tp[c] + fp[c] + fn[c]
        scores.append(2 * tp[c] / denom if denom else 0.0)
    return sum(scores) / len(scores)
