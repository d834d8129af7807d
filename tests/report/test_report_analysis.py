"""Mask overlap between tasks: pinned against a set-based reference; layer choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from migu.report.analysis import overlap_matrices, overlap_ratio, pick_layer


def _reference_overlap(keep_a: list[bool], keep_b: list[bool]) -> float:
    """|A ∩ B| / |A| with Python sets of row indices: independent of the tensor code."""
    a = {i for i, k in enumerate(keep_a) if k}
    b = {i for i, k in enumerate(keep_b) if k}
    return len(a & b) / len(a)


def _random_masks(seed: int, widths: dict[str, int], keep: float) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, d in widths.items():
        m = torch.zeros(d, dtype=torch.bool)
        m[torch.randperm(d, generator=g)[: max(1, int(keep * d))]] = True
        out[name] = m
    return out


def test_identical_masks_overlap_completely():
    masks = _random_masks(0, {"l0": 16, "l1": 40}, keep=0.3)
    tasks, layers, overlap = overlap_matrices({"a": masks, "b": dict(masks)})
    assert tasks == ["a", "b"] and layers == ["l0", "l1"]
    np.testing.assert_array_equal(overlap, np.ones((2, 2, 2)))


def test_overlap_matches_a_set_reference_per_layer_and_pair():
    widths = {"q": 12, "ffn": 30, "o": 7}
    masks = {t: _random_masks(s, widths, keep=0.4) for s, t in enumerate(["x", "y", "z"])}
    tasks, layers, overlap = overlap_matrices(masks)
    assert overlap.shape == (3, 3, 3)
    for li, layer in enumerate(layers):
        for i, ti in enumerate(tasks):
            for j, tj in enumerate(tasks):
                ref = _reference_overlap(masks[ti][layer].tolist(), masks[tj][layer].tolist())
                assert overlap[li, i, j] == pytest.approx(ref)
                assert overlap_ratio(masks[ti][layer], masks[tj][layer]) == pytest.approx(ref)
    # With equal keep counts per layer the ratio is symmetric; disjoint masks give 0.
    np.testing.assert_allclose(overlap, overlap.transpose(0, 2, 1))
    a = torch.tensor([True, True, False, False])
    assert overlap_ratio(a, ~a) == 0.0
    assert overlap_ratio(torch.zeros(4, dtype=torch.bool), a) == 1.0  # nothing kept: nothing left out


def test_only_layers_every_task_has_are_compared_and_bad_input_is_refused():
    masks = {"a": _random_masks(0, {"l0": 8, "l1": 8}, 0.5), "b": _random_masks(1, {"l1": 8}, 0.5)}
    assert overlap_matrices(masks)[1] == ["l1"]
    with pytest.raises(ValueError, match="different shapes"):
        overlap_ratio(torch.ones(3, dtype=torch.bool), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one task"):
        overlap_matrices({})


def test_pick_layer_by_name_part_or_the_middle_one():
    names = ["enc.0.q", "enc.0.ffn", "enc.1.q", "enc.1.ffn"]
    assert pick_layer(names, None) == "enc.1.q"
    assert pick_layer(names, "enc.0.ffn") == "enc.0.ffn"
    assert pick_layer(names, "1.ffn") == "enc.1.ffn"
    with pytest.raises(ValueError, match="matches no MIGU target layer"):
        pick_layer(names, "lm_head")
