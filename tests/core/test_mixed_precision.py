"""bf16 autocast over fp32 weights keeps every MIGU update; AdamW on bf16 weights loses them.

The paper presets train T5 with ``model.dtype: float32`` and ``train.mixed_precision: bf16`` for this
reason: at lr 1e-4 an AdamW step (about lr per element on the first step) is below bf16's resolution
for most weights, so the kept rows would not move at all.
"""

from __future__ import annotations

import torch
from tiny_models import build, make_batch

import migu


def _step(dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One masked AdamW step at lr 1e-4 under bf16 autocast.

    Returns:
        Per unit: which weight elements moved ``(d_out, d_in)``, and which had a gradient to follow
        (non-zero after masking, so inside a kept row) ``(d_out, d_in)``.
    """
    model = build("t5").to(dtype)
    batch = make_batch("t5", seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7), optimizer=opt)
    before = {u.name: u.weight.detach().clone() for u in handle.units}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    opt.step()
    moved = {u.name: u.weight.detach() != before[u.name] for u in handle.units}  # (d_out, d_in)
    followed = {u.name: u.weight.grad != 0 for u in handle.units}  # (d_out, d_in): masked rows all False
    handle.remove()
    return moved, followed


def test_bf16_autocast_over_fp32_weights_moves_every_element_with_a_gradient():
    moved, followed = _step(torch.float32)
    for name, grad in followed.items():
        assert torch.equal(moved[name], grad), name  # kept rows move, masked rows stay


def test_adamw_on_bf16_weights_loses_most_updates():
    moved, followed = _step(torch.bfloat16)
    assert not any((m & ~followed[n]).any() for n, m in moved.items())  # masked rows never move
    n_grad = sum(int(g.sum()) for g in followed.values())
    n_moved = sum(int(m.sum()) for m in moved.values())
    assert n_moved < 0.5 * n_grad  # what fp32 weights under autocast prevent
