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
from typing import Any

__all__ = [
    "ANSWER_KINDS",
    "answer_kinds",
    "answer_metrics",
    "exact_match",
    "exact_match_accuracy",
    "normalize_answer",
]

# str.translate with a deletion table is the fast equivalent of InstructUIE's character filter
# ``"".join(ch for ch in text if ch not in set(string.punctuation))``.
_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)

#: The kinds of answer :func:`answer_kinds` counts.
ANSWER_KINDS = ("own_label", "other_task_label", "no_label")


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


def answer_kinds(
    predictions: Sequence[str], own_labels: Sequence[str], sequence_labels: Sequence[str]
) -> dict[str, float]:
    """What kind of answer each prediction is, as shares of ``predictions`` (they sum to 1).

    Compared after :func:`normalize_answer`:

    - ``own_label``: one of the task's own labels (right or wrong);
    - ``other_task_label``: a label of another task of the sequence and none of this task's: the
      way a model without task labels forgets in the paper's generative setting (it answers an
      earlier task's question with a later task's label);
    - ``no_label``: no label of the sequence at all (free text; only a generative model can).

    Args:
        predictions: The answers (label strings, or generated text).
        own_labels: The task's label strings.
        sequence_labels: Every label string of the sequence (the task's own included).

    Returns:
        ``{"own_label": float, "other_task_label": float, "no_label": float}``; all 0.0 for no prediction.
    """
    own = {normalize_answer(label) for label in own_labels}
    every = {normalize_answer(label) for label in sequence_labels} | own
    counts = dict.fromkeys(ANSWER_KINDS, 0)
    for prediction in predictions:
        answer = normalize_answer(prediction)
        kind = "own_label" if answer in own else "other_task_label" if answer in every else "no_label"
        counts[kind] += 1
    n = len(predictions)
    return {kind: count / n if n else 0.0 for kind, count in counts.items()}


def answer_metrics(rows: Sequence[Sequence[dict[str, float] | None]]) -> dict[str, Any]:
    """The ``metrics.json`` entries of the answer kinds of a run's evaluations.

    Args:
        rows: Per evaluated row of the accuracy matrix (row 0: before training), per task, the
            :func:`answer_kinds` of that evaluation, or None where the task was not evaluated there
            (or by a version that did not record it).

    Returns:
        ``answers_other_task_label`` and ``answers_no_label``: matrices of shares shaped like the
        accuracy matrix (None where unknown); ``final_answers_other_task_label`` and
        ``final_answers_no_label``: their mean over the tasks of the last row (None unless every task
        of it is known).
    """
    out: dict[str, Any] = {}
    for kind in ANSWER_KINDS[1:]:
        matrix = [[None if k is None else k[kind] for k in row] for row in rows]
        last = matrix[-1] if matrix else []
        out[f"answers_{kind}"] = matrix
        out[f"final_answers_{kind}"] = sum(last) / len(last) if last and None not in last else None
    return out
