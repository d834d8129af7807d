"""Importance criteria other than the output magnitude (paper Table 11) select the reference rows."""

from __future__ import annotations

import pytest
import torch
from reference import reference_keep
from tiny_models import build, make_batch

import migu


def _row_l1_reference(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
    rows = t.detach().double().movedim(unit_dim, 0)  # (d_out, ...)
    return rows.reshape(rows.shape[0], -1).abs().sum(1)  # (d_out,)


@pytest.mark.parametrize("criterion", ["gradient", "weight"])
def test_gradient_and_weight_criteria_match_reference(family, criterion):
    model = build(family)
    handle = migu.attach(model, migu.MiguConfig(0.6, criterion=criterion))
    model(**make_batch(family)).loss.backward()
    expected = {}
    for u in handle.units:
        source = u.weight.grad if criterion == "gradient" else u.weight
        score = _row_l1_reference(source, u.unit_dim)
        if u.bias is not None:
            b = u.bias.grad if criterion == "gradient" else u.bias
            score = score + b.detach().double().abs()
        expected[u.name] = reference_keep(score.float(), 0.6)
    handle.apply_masks()
    assert handle.masks.keys() == expected.keys()
    for name, keep in handle.masks.items():
        assert torch.equal(keep, expected[name]), name
    for u in handle.units:  # and the gradient rows follow the masks
        g = u.weight.grad.movedim(u.unit_dim, 0)
        assert torch.count_nonzero(g[~handle.masks[u.name]]) == 0
    handle.remove()


def test_random_criterion_is_seeded_and_masks_floor_t_rows():
    def masks(seed):
        model = build("llama")
        handle = migu.attach(model, migu.MiguConfig(0.7, criterion="random", seed=seed))
        model(**make_batch("llama")).loss.backward()
        handle.apply_masks()
        out = {n: k.clone() for n, k in handle.masks.items()}
        handle.remove()
        return out

    a, b, c = masks(0), masks(0), masks(1)
    assert all(torch.equal(a[n], b[n]) for n in a)  # same seed, same masks
    assert any(not torch.equal(a[n], c[n]) for n in a)
    for k in a.values():
        assert int((~k).sum()) == int(0.7 * k.numel() + 1e-9)


def test_non_output_criteria_record_no_forward_statistic():
    model = build("bert")
    handle = migu.attach(model, migu.MiguConfig(0.5, criterion="weight"))
    model(**make_batch("bert")).loss.backward()
    assert all(s.calls == 0 for s in handle._sources.values())
    handle.remove()


def test_unknown_criterion_is_a_clear_error():
    with pytest.raises(ValueError, match="criterion='grads' is not one of"):
        migu.MiguConfig(criterion="grads")
