"""Tests for migu.eval.text: exact match as the paper's evaluation computes it."""

from __future__ import annotations

import string

import pytest

from migu.eval.text import exact_match, exact_match_accuracy, normalize_answer


def _reference_normalize(s: str) -> str:
    """InstructUIE / O-LoRA src/compute_metrics.py normalize_answer, restated as the original does it."""
    exclude = set(string.punctuation)
    return " ".join("".join(ch for ch in s.lower() if ch not in exclude).split())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Science or Technology. ", "science or technology"),
        ("Very   Negative!", "very negative"),
        ("SST-2", "sst2"),  # punctuation is deleted, not replaced by a space
        ("The answer", "the answer"),  # articles are kept (unlike SQuAD)
        ("a - b", "a b"),
        ("True\n", "true"),
        ("-", ""),
        ("\u2013caf\u00e9\u2019", "\u2013caf\u00e9\u2019"),  # only ASCII punctuation goes
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected
    assert _reference_normalize(text) == expected


def test_normalize_matches_reference_on_mixed_text() -> None:
    samples = [
        "Office Holder",
        "Mean of Transportation.",
        "  'Educational   Institution' ",
        'He said: "entailment"!?',
        "Society & Culture",
        "very positive\t\t(5 stars)",
        string.punctuation + " x " + string.whitespace,
    ]
    for text in samples:
        assert normalize_answer(text) == _reference_normalize(text)


@pytest.mark.parametrize(
    ("prediction", "label", "expected"),
    [
        ("True.", "True", True),
        ("  entailment ", "entailment", True),
        ("science or technology", "Science or Technology", True),
        ("Society and Culture", "Society & Culture", False),
        ("negative", "very negative", False),
        ("Bad", "Good", False),
        ("", "-", True),  # MNLI's "-" normalizes to "" (why the loader drops those records)
    ],
)
def test_exact_match(prediction: str, label: str, expected: bool) -> None:
    assert exact_match(prediction, label) is expected


def test_exact_match_accuracy() -> None:
    assert (
        exact_match_accuracy(["True", "false.", "Maybe", "TRUE"], ["True", "False", "True", "False"]) == 0.5
    )
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        exact_match_accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        exact_match_accuracy([], [])


def test_answer_kinds_sorts_each_answer_after_normalizing():
    from migu.eval.text import answer_kinds

    own = ["World", "Sci/Tech"]
    sequence = [*own, "Sports", "Business & Finance", "world"]  # a label may recur in another task
    predictions = [
        "world.",  # own label (normalized), though another task has it too
        "SciTech",  # own: "Sci/Tech" normalizes to "scitech"
        "sports",  # another task's label
        "Business & Finance",  # another task's label
        "Business",  # a prefix of a label is no label
        "",  # nothing generated
        "World",
        "Sports!",
    ]
    assert answer_kinds(predictions, own, sequence) == {
        "own_label": 3 / 8,
        "other_task_label": 3 / 8,
        "no_label": 2 / 8,
    }
    assert answer_kinds([], own, sequence) == {"own_label": 0.0, "other_task_label": 0.0, "no_label": 0.0}


def test_answer_metrics_keep_unknown_entries_unknown():
    from migu.eval.text import answer_metrics

    def kinds(other: float, none: float) -> dict:
        return {"own_label": 1.0 - other - none, "other_task_label": other, "no_label": none}

    rows = [
        [kinds(0.0, 1.0), kinds(0.0, 0.5)],  # before training
        [kinds(0.1, 0.0), None],  # learned-and-final: only the task just learned
        [kinds(0.5, 0.25), kinds(0.25, 0.0)],
    ]
    out = answer_metrics(rows)
    assert out["answers_other_task_label"] == [[0.0, 0.0], [0.1, None], [0.5, 0.25]]
    assert out["answers_no_label"] == [[1.0, 0.5], [0.0, None], [0.25, 0.0]]
    assert out["final_answers_other_task_label"] == 0.375
    assert out["final_answers_no_label"] == 0.125
    # A last row with an unknown entry (a task evaluated by a version without the record) has no mean.
    assert answer_metrics([[kinds(0.5, 0.0), None]])["final_answers_other_task_label"] is None
    assert answer_metrics([]) == {
        "answers_other_task_label": [],
        "final_answers_other_task_label": None,
        "answers_no_label": [],
        "final_answers_no_label": None,
    }
