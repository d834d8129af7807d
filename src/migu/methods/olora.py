"""O-LoRA (OIncLoRA): IncLoRA plus an orthogonality loss between the new adapter and the old ones.

The loss, as O-LoRA's code (cmnfriend/O-LoRA, ``uie_trainer_lora.py``) computes it::

    lambda1 * sum over LoRA layers and old adapters k of sum |A_k A_new^T|
  + lambda2 * sum over the new adapter's LoRA matrices P of ||P||_2

(the L2 term is a sum of norms, not of squared norms, in the official code). O-LoRA's defaults for
the standard sequence: lambda1 = 0.5, lambda2 = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from migu.methods.base import register
from migu.methods.lora import IncLoRA, adapter_name

__all__ = ["OLoRA", "olora_penalty"]


def olora_penalty(model: nn.Module, t: int, lambda1: float, lambda2: float) -> torch.Tensor:
    """O-LoRA's extra loss for task ``t`` (see the module docstring)."""
    new = adapter_name(t)
    ortho = torch.zeros(())
    l2 = torch.zeros(())
    for module in model.modules():
        lora_a = getattr(module, "lora_A", None)
        if not isinstance(lora_a, nn.ModuleDict) or new not in lora_a:
            continue
        a_new = lora_a[new].weight  # (r, d_in)
        ortho = ortho.to(a_new.device)
        l2 = l2.to(a_new.device)
        for k in range(t):
            a_old = lora_a[adapter_name(k)].weight  # (r, d_in), frozen
            ortho = ortho + (a_old @ a_new.T).abs().sum()  # (r, r) summed
        l2 = l2 + torch.linalg.vector_norm(a_new) + torch.linalg.vector_norm(module.lora_B[new].weight)
    return lambda1 * ortho + lambda2 * l2


@register("olora")
class OLoRA(IncLoRA):
    """IncLoRA with O-LoRA's orthogonality and L2 losses."""

    def penalty(self, model: nn.Module, t: int) -> torch.Tensor | None:
        lambda1 = self.config.olora_task_lambda1.get(self.tasks[t].name, self.config.olora_lambda1)
        return olora_penalty(model, t, lambda1, self.config.olora_lambda2)
