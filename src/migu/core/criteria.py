"""Importance criteria for the mask other than MIGU's output magnitude (paper Table 11).

Every criterion scores each output unit of a weight; the same threshold rule then masks the
``floor(T * d_out)`` lowest scores (:func:`migu.core.mask.keep_mask`):

- ``"output"``: MIGU, the magnitude of the layer's output (recorded by forward hooks);
- ``"gradient"``: L1 norm of each gradient row (plus the bias entry's magnitude);
- ``"weight"``: L1 norm of each weight row (plus the bias entry's magnitude);
- ``"random"``: uniform random scores from a generator seeded by (seed, step, unit index), the same on
  every rank, as the official code's ``random_update``.

The gradient is the same on every data-parallel rank at step time (after DDP's all-reduce), and the
weights are too, so these criteria need no extra collective.
"""

from __future__ import annotations

import torch

from migu.core.config import CRITERIA
from migu.core.targets import MaskedUnit

__all__ = ["CRITERIA", "unit_scores"]


def _row_l1(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
    dims = [d for d in range(t.dim()) if d != unit_dim]
    return t.abs().sum(dim=dims, dtype=torch.float32) if dims else t.abs().float()  # (d_out,)


@torch.no_grad()
def unit_scores(
    unit: MaskedUnit, criterion: str, *, seed: int = 0, step: int = 0, index: int = 0
) -> torch.Tensor:
    """Scores of ``unit``'s output units under ``criterion`` (not ``"output"``): ``(d_out,)``.

    Args:
        unit: The weight (and bias) to score.
        criterion: ``"gradient"``, ``"weight"`` or ``"random"``.
        seed, step, index: Seed the random criterion (per run, optimizer step, unit).

    Raises:
        ValueError: unknown criterion, or ``"gradient"`` for a unit without a gradient.
    """
    w, b = unit.weight, unit.bias
    if criterion == "weight":
        score = _row_l1(w, unit.unit_dim)
        return score + b.abs().float() if b is not None else score
    if criterion == "gradient":
        if w.grad is None:
            raise ValueError(f"criterion='gradient': {unit.name!r} has no gradient at step time.")
        score = _row_l1(w.grad, unit.unit_dim)
        return score + b.grad.abs().float() if b is not None and b.grad is not None else score
    if criterion == "random":
        g = torch.Generator().manual_seed(hash((seed, step, index)) & 0x7FFF_FFFF_FFFF_FFFF)
        return torch.rand(unit.num_units, generator=g).to(w.device)
    raise ValueError(f"criterion={criterion!r} is not one of {CRITERIA[1:]} here.")
