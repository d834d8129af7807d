"""Seeded, class-balanced sampling of labelled records, shared by every task loader."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

__all__ = ["balanced_sample", "check_cap"]


def check_cap(value: int | None, arg: str) -> None:
    """Raise ValueError unless ``value`` is None or a non-negative int (``arg`` names it)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{arg} must be None or a non-negative int, got {value!r}")


def balanced_sample(
    pools: Mapping[str, Sequence[str]],
    labels: Sequence[str],
    *,
    total: int | None,
    rng: random.Random,
    per_class: int | None = None,
) -> list[dict[str, str]]:
    """Class-balanced, seeded sample of texts grouped by label, returned in a seeded shuffled order.

    Each class is shuffled; ``per_class`` keeps its first k. ``total`` then takes texts round-robin
    over the classes (equal shares, differing by at most one; a class that runs out leaves its share
    to the others), so the result is as balanced as the data allows. Without caps all are kept.

    Args:
        pools: Texts per label, in a fixed (e.g. file) order so that the result is deterministic.
        labels: The labels, in the order the round-robin visits them.
        total: Keep at most this many records (``None``: no total cap).
        rng: The seeded generator that decides the sample and the order.
        per_class: Keep at most this many records per label (``None``: no per-class cap).

    Returns:
        Records ``{"sentence": text, "label": label}``.
    """
    shuffled = {}
    for label in labels:
        texts = list(pools.get(label, ()))
        rng.shuffle(texts)
        shuffled[label] = texts[:per_class] if per_class is not None else texts
    if total is None:
        chosen = [(text, label) for label in labels for text in shuffled[label]]
    else:
        chosen = []
        depth = 0
        while len(chosen) < total and any(depth < len(shuffled[label]) for label in labels):
            for label in labels:
                if depth < len(shuffled[label]) and len(chosen) < total:
                    chosen.append((shuffled[label][depth], label))
            depth += 1
    rng.shuffle(chosen)  # mix the classes, so that a training stream is not ordered by label
    return [{"sentence": text, "label": label} for text, label in chosen]
