"""Strict masking: masked rows of a weight, and their optimizer state, do not change in a step.

Zeroing a gradient row is not enough for stateful optimizers: AdamW's momentum and weight decay
still move that row. Rather than re-implement each optimizer, we snapshot the masked rows of every
tensor the step may touch (the weight, its bias, and each optimizer-state tensor of the same shape,
e.g. ``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``) and copy them back after the step. This works
for any ``torch.optim`` optimizer whose per-element state has the parameter's shape.

Under FSDP2 the parameter and its state (``exp_avg``, ...) are DTensors sharded alike: each rank
snapshots and restores the masked rows of its own shards (local tensors, local row indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from migu.core.distributed import is_dtensor, local_range

__all__ = ["RowSnapshot", "snapshot_rows", "restore_rows"]


@dataclass
class RowSnapshot:
    """Saved rows of one tensor: ``target.index_select(dim, index)`` before the step."""

    target: torch.Tensor
    dim: int
    index: torch.Tensor
    saved: torch.Tensor


def snapshot_rows(
    param: torch.Tensor, dim: int, masked: torch.Tensor, optimizer_state: dict | None
) -> list[RowSnapshot]:
    """Save the ``masked`` slices (along ``dim``) of ``param`` and of its same-shaped optimizer state.

    Args:
        param: A weight or bias.
        dim: Its output-unit dimension.
        masked: ``(k,)`` long indices of masked units.
        optimizer_state: ``optimizer.state[param]`` (may be empty before the first step; state
            created during the step then keeps what the optimizer computed from a zero gradient,
            which is its initial value for Adam-style and momentum optimizers).

    Returns:
        Snapshots to hand to :func:`restore_rows` after the step.
    """
    tensors = [param.data]
    for value in (optimizer_state or {}).values():
        if torch.is_tensor(value) and value.shape == param.shape and value is not param:
            tensors.append(value)
    if not is_dtensor(param):
        return [RowSnapshot(t, dim, masked, t.index_select(dim, masked)) for t in tensors]
    # FSDP2: the masked units this rank's shard holds along ``dim``, as local indices.
    offset, length = local_range(param, dim)
    local_idx = masked[(masked >= offset) & (masked < offset + length)] - offset  # (k_local,)
    snapshots = []
    for t in tensors:
        if not is_dtensor(t) or t.placements != param.placements or t.device_mesh != param.device_mesh:
            # A state tensor laid out unlike its parameter: its local rows would be other units.
            layout = f"placements {t.placements}" if is_dtensor(t) else "a plain tensor"
            raise RuntimeError(
                "MiguConfig(mode='strict') under FSDP2: an optimizer state tensor of the parameter's shape "
                f"has {layout}, the parameter {param.placements}; strict mode cannot restore its rows."
            )
        local = t.to_local()  # shares storage: restore_rows writes into the shard
        index = local_idx.to(local.device)  # CPU-offloaded shards
        snapshots.append(RowSnapshot(local, dim, index, local.index_select(dim, index)))
    return snapshots


@torch.no_grad()
def restore_rows(snapshots: list[RowSnapshot]) -> None:
    """Copy the saved rows back, bit for bit."""
    for s in snapshots:
        s.target.index_copy_(s.dim, s.index, s.saved)
