"""The official code's MIGU choices as options: the quantile rule and weight-rows-only masking.

The reference for the quantile rule is NumPy's ``quantile`` (linear interpolation, the default of
both NumPy and ``torch.quantile``), applied as the official code does: keep ``m >= quantile(m, T)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import migu
from migu.core.mask import keep_mask, num_masked


def _numpy_keep(m: torch.Tensor, threshold: float) -> torch.Tensor:
    values = m.detach().double().numpy()
    return torch.from_numpy(values >= np.quantile(values, threshold))


@pytest.mark.parametrize("d_out", [7, 10, 384, 1536])
@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.4, 0.7])
def test_quantile_rule_matches_numpy(d_out: int, threshold: float) -> None:
    g = torch.Generator().manual_seed(d_out)
    m = torch.rand(3, d_out, generator=g, dtype=torch.float64)  # three layers of one width, no ties
    got = keep_mask(m, threshold, "quantile")
    for row, keep in zip(m, got, strict=True):
        assert torch.equal(keep, _numpy_keep(row, threshold))


def test_quantile_rule_keeps_ties_and_masks_at_most_one_unit_more_than_the_count_rule() -> None:
    m = torch.tensor([1.0, 2.0, 2.0, 2.0, 2.0, 3.0])  # quantile(m, 0.5) = 2: every tied 2 is kept
    assert keep_mask(m, 0.5, "quantile").tolist() == [False, True, True, True, True, True]
    assert keep_mask(m, 0.5, "count").tolist() == [False, False, False, True, True, True]
    # Without ties the quantile rule masks ceil(T (d - 1)) units: MiniLM's widths at T = 0.7 give one
    # unit more than floor(T d) at 384 (269 vs 268) and the same at 1536 (1075).
    for d_out, count, quantile in ((384, 268, 269), (1536, 1075, 1075)):
        m = torch.randperm(d_out, generator=torch.Generator().manual_seed(0)).double()
        assert num_masked(d_out, 0.7) == count
        assert int((~keep_mask(m, 0.7, "quantile")).sum()) == quantile == math.ceil(0.7 * (d_out - 1))


def test_keep_rule_and_mask_bias_are_checked() -> None:
    with pytest.raises(ValueError, match="keep_rule"):
        migu.MiguConfig(keep_rule="median")
    with pytest.raises(ValueError, match="mask_bias"):
        migu.MiguConfig(mask_bias="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fast_path"):
        migu.MiguConfig(keep_rule="quantile", fast_path=True)
    with pytest.raises(ValueError, match="fast_path"):
        migu.MiguConfig(mask_bias=False, fast_path=True)


def test_official_choice_masks_weight_rows_by_quantile_and_leaves_biases_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 9))
    plain = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 9))
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 5, 6)  # (B, T, d_in)

    # Independent reference: plain gradients, and each layer's output magnitude sum_t |y_tj| in float64.
    plain(x).pow(2).mean().backward()
    h = x.double() @ model[0].weight.double().T + model[0].bias.double()  # (B, T, 12)
    y = torch.tanh(h) @ model[2].weight.double().T + model[2].bias.double()  # (B, T, 9)
    expected = {"0": _numpy_keep(h.abs().sum((0, 1)), 0.7), "2": _numpy_keep(y.abs().sum((0, 1)), 0.7)}

    cfg = migu.MiguConfig(threshold=0.7, targets="all-linear", keep_rule="quantile", mask_bias=False)
    handle = migu.attach(model, cfg)
    model(x).pow(2).mean().backward()
    handle.apply_masks()
    for name, keep in expected.items():
        layer, ref = model[int(name)], plain[int(name)]
        assert torch.equal(handle.masks[name], keep), name
        assert torch.equal(layer.weight.grad[keep], ref.weight.grad[keep])  # kept rows: untouched
        assert not layer.weight.grad[~keep].any()  # masked rows: zero
        assert torch.equal(layer.bias.grad, ref.bias.grad)  # weight rows only: every bias entry moves
    handle.remove()


def test_mask_bias_true_masks_bias_entries_with_their_rows() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10))
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7, targets="all-linear"))
    model(torch.randn(3, 6)).pow(2).sum().backward()
    handle.apply_masks()
    keep = handle.masks["0"]
    assert int((~keep).sum()) == 7
    assert not model[0].bias.grad[~keep].any() and model[0].bias.grad[keep].all()
    handle.remove()


def test_misspelled_exclude_and_too_many_clusters_are_errors() -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"exclude 'O' matches no linear layer"):
        migu.attach(model, migu.MiguConfig(targets="all-linear", exclude=["O"]))
    with pytest.raises(ValueError, match=r"clusters=4 is more than the output units of 1 \(3\)"):
        migu.attach(model, migu.MiguConfig(targets="all-linear", clusters=4))


def test_nonfinite_magnitudes_warn_once() -> None:
    model = nn.Sequential(nn.Linear(6, 4))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    handle = migu.attach(model, migu.MiguConfig(threshold=0.5, targets="all-linear"))
    with pytest.warns(RuntimeWarning, match="hold NaN or inf"):
        model(torch.randn(2, 6)).sum().backward()
        handle.apply_masks()
    handle.remove()
