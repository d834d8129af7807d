"""Exact-match scoring of generated answers, as the paper's evaluation does it.

The MIGU and O-LoRA code score a generated answer against the label text with the exact-match
metric of InstructUIE's ``src/compute_metrics.py`` (copied into O-LoRA's ``src/compute_metrics.py``):
``normalize_answer`` lower-cases, removes every character of :data:`string.punctuation` and collapses
whitespace ("adapted from the SQuAD v1.1 evaluation, without removing the articles"), and
``exact_match_score`` compares the two normalized strings. Accuracy is the share of exact matches.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

__all__ = ["exact_match", "exact_match_accuracy", "normalize_answer"]

# str.translate with a deletion table is the fast equivalent of InstructUIE's character filter
# ``"".join(ch for ch in text if ch not in set(string.punctuation))``.
_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(s: str) -> str:
    """Normalize an answer for exact matching: lower-case, drop punctuation, collapse whitespace.

    The steps and their order follow InstructUIE / O-LoRA ``normalize_answer``: ``str.lower``, then
    delete every ASCII punctuation character (:data:`string.punctuation`, so ``"Science or
    Technology."`` -> ``"science or technology"`` and ``"SST-2"`` -> ``"sst2"``), then join the
    whitespace-separated words with single spaces (which also strips both ends). Articles are kept.

    Args:
        s: The text to normalize.

    Returns:
        The normalized text.
    """
    return " ".join(s.lower().translate(_DELETE_PUNCTUATION).split())


def exact_match(prediction: str, label: str) -> bool:
    """Whether a generated answer equals the label after :func:`normalize_answer`.

    Args:
        prediction: The model's decoded answer.
        label: The reference label text.

    Returns:
        ``True`` if the normalized strings are equal.
    """
    return normalize_answer(prediction) == normalize_answer(label)


def exact_match_accuracy(predictions: Sequence[str], labels: Sequence[str]) -> float:
    """Share of predictions that exactly match their label (O-LoRA's ``exact_match`` / 100).

    Args:
        predictions: Decoded answers.
        labels: Reference labels, one per prediction.

    Returns:
        The accuracy in [0, 1].

    Raises:
        ValueError: If the sequences differ in length or are empty.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        raise ValueError("exact_match_accuracy needs at least one prediction")
    return sum(exact_match(p, y) for p, y in zip(predictions, labels, strict=True)) / len(labels)
