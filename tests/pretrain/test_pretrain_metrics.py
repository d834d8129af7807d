"""Accuracy and macro-F1 against values computed by hand."""

import pytest

from migu.pretrain.metrics import accuracy, macro_f1


def test_macro_f1_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    # a: TP 2, FP 0, FN 1 -> F1 = 4/5;  b: TP 1, FP 1, FN 1 -> 2/4;  c: TP 1, FP 1, FN 0 -> 2/3
    assert macro_f1(gold, pred) == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    assert accuracy(gold, pred) == pytest.approx(4 / 6)


def test_macro_f1_counts_predicted_only_classes_and_given_labels():
    gold = ["a", "a", "b", "b"]
    pred = ["a", "a", "b", "z"]
    # a: 1; b: TP 1, FN 1 -> 2/3; z (predicted only): TP 0, FP 1 -> 0
    assert macro_f1(gold, pred) == pytest.approx((1 + 2 / 3 + 0) / 3)
    # An explicit label set: a class absent from both lists scores 0.
    assert macro_f1(["a"], ["a"], labels=["a", "b"]) == pytest.approx(0.5)
    assert macro_f1(["a", "b"], ["a", "b"]) == 1.0


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="length"):
        accuracy(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no examples"):
        macro_f1([], [])
