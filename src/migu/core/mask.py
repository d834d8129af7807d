"""From magnitudes to keep-masks, and masks applied to gradients."""

from __future__ import annotations

import math

import torch

from migu.core.config import KEEP_RULES
from migu.core.distributed import is_dtensor, local_range

__all__ = ["KEEP_RULES", "num_masked", "keep_mask", "keep_indices", "mask_gradient_"]


def num_masked(num_units: int, threshold: float) -> int:
    """``floor(T * d_out)``: how many output units lose their gradient."""
    # The small epsilon keeps e.g. 0.7 * 10 = 7.000000000000001 or 6.9999999 from flipping the floor.
    return min(num_units, math.floor(threshold * num_units + 1e-9))


def keep_mask(magnitudes: torch.Tensor, threshold: float, rule: str = "count") -> torch.Tensor:
    """Which output units keep their gradient.

    ``rule="count"``: the ``floor(T * d_out)`` units with the smallest magnitude are masked. Ties are
    broken by index: among equal magnitudes the lower index counts as smaller (a stable sort), so
    the result is deterministic on every device and rank. ``rule="quantile"`` (official code):
    units with ``m >= torch.quantile(m, T)`` (linear interpolation) keep their gradient.

    Args:
        magnitudes: ``(d_out,)`` or ``(L, d_out)`` (several layers of one width at once).
        threshold: ``T`` in ``[0, 1)``.
        rule: One of :data:`KEEP_RULES`.

    Returns:
        Bool tensor of ``magnitudes``' shape, True where the unit is updated.
    """
    if rule == "quantile":
        m = magnitudes.float()  # torch.quantile needs a floating dtype; bf16 is not accepted
        return m >= torch.quantile(m, threshold, dim=-1, keepdim=True)  # (..., d_out)
    if rule != "count":
        raise ValueError(f"rule={rule!r} is not one of {KEEP_RULES}.")
    k = num_masked(magnitudes.shape[-1], threshold)
    keep = torch.ones_like(magnitudes, dtype=torch.bool)  # (..., d_out)
    if k == 0:
        return keep
    order = torch.argsort(magnitudes, dim=-1, stable=True)  # (..., d_out), ascending
    return keep.scatter_(-1, order[..., :k], False)


def keep_indices(magnitudes: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`keep_mask` as sorted index tensors, without a device-to-host sync.

    The counts are known in advance (``d_out - floor(T * d_out)`` kept), so unlike
    ``keep_mask(...).nonzero()`` this never waits for the GPU. Same ranking and tie rule as
    :func:`keep_mask`: ``keep_mask(m, T)[kept]`` is all True and ``[masked]`` all False.

    Args:
        magnitudes: ``(d_out,)`` or ``(L, d_out)``.
        threshold: ``T`` in ``[0, 1)``.

    Returns:
        ``(kept, masked)``: long tensors ``(..., d_out - k)`` and ``(..., k)``, ascending.
    """
    k = num_masked(magnitudes.shape[-1], threshold)
    order = torch.argsort(magnitudes, dim=-1, stable=True)  # (..., d_out), ascending magnitude
    return order[..., k:].sort(dim=-1).values, order[..., :k].sort(dim=-1).values


def mask_gradient_(grad: torch.Tensor, keep: torch.Tensor, unit_dim: int) -> None:
    """Zero, in place, the slices of ``grad`` along ``unit_dim`` where ``keep`` is False.

    Args:
        grad: Gradient of a weight (``(d_out, d_in)`` with ``unit_dim=0``, ``(d_in, d_out)`` with
            ``unit_dim=1``) or of a bias (``(d_out,)``, ``unit_dim=0``). An FSDP2 gradient (a
            DTensor) is masked in this rank's shard: the rows of ``keep`` it holds along
            ``unit_dim`` (``Shard(0)`` of a Linear weight or a bias), or all of ``keep`` when the
            shard splits another dimension (a ``Conv1D`` weight: all columns of some rows).
        keep: ``(d_out,)`` bool, the full mask (the same on every rank).
        unit_dim: Dimension of ``grad`` that indexes output units.
    """
    if is_dtensor(grad):
        offset, length = local_range(grad, unit_dim)
        keep = keep[offset : offset + length]  # (local units,)
        grad = grad.to_local()  # shares storage with the DTensor: the writes below reach .grad
    masked = (~keep).nonzero().squeeze(1).to(grad.device)  # (k,); .to: CPU-offloaded shards
    # index_fill writes only the masked rows (about 2x faster than masked_fill on CPU), and sets a
    # non-finite value there to exactly 0, which a multiply by the mask would not.
    grad.index_fill_(unit_dim, masked, 0)
