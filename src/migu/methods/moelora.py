"""MoELoRA: a mixture of LoRA experts on each adapted layer, one expert per task, a learned router.

On each target linear layer ``y = W x + b`` (frozen)::

    y = W x + b + (alpha / r) * sum_i g_i(x) * B_i A_i dropout(x),     g(x) = softmax(R x)

with N = number of tasks experts ``(A_i: r x d_in, B_i: d_out x r)`` and a router ``R: N x d_in``,
dense gating per token (every expert contributes to every token, so every expert and the router get
gradients). Experts, router and an encoder's head train through the whole sequence; no task id is
used. B_i start at zero (the model starts as the pretrained one), A_i as PEFT initializes LoRA A.

Targets: ``method.lora_targets`` (default: the attention's query/value, as LoRA: ``query``, ``value``,
``q``, ``v``, ``q_proj``, ``v_proj``). MIGU masks the experts' A and B rows by their own outputs,
and the router's rows too (``migu.exclude=[router]`` leaves the router unmasked).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from migu.methods.base import Method, register
from migu.methods.lora import unfreeze_heads

__all__ = ["MoELoRA", "MoELoRALinear"]

_DEFAULT_TARGETS = ("query", "value", "q", "v", "q_proj", "v_proj")


class MoELoRALinear(nn.Module):
    """A frozen linear layer plus a routed mixture of LoRA experts (see the module docstring)."""

    def __init__(self, base: nn.Linear, n_experts: int, r: int, alpha: int, dropout: float) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)
        self.router = nn.Linear(base.in_features, n_experts, bias=False)
        self.lora_A = nn.ModuleList(nn.Linear(base.in_features, r, bias=False) for _ in range(n_experts))
        self.lora_B = nn.ModuleList(nn.Linear(r, base.out_features, bias=False) for _ in range(n_experts))
        for a, b in zip(self.lora_A, self.lora_B, strict=True):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))  # as PEFT's LoRA A
            nn.init.zeros_(b.weight)
        dtype, device = base.weight.dtype, base.weight.device
        self.to(device=device, dtype=dtype)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Router weights per token: ``(..., n_experts)``, summing to 1."""
        return torch.softmax(self.router(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (..., d_out)
        g = self.gates(x)  # (..., N)
        h = self.dropout(x)
        for i, (a, b) in enumerate(zip(self.lora_A, self.lora_B, strict=True)):
            y = y + self.scaling * g[..., i : i + 1] * b(a(h))  # (..., d_out)
        return y


@register("moelora")
class MoELoRA(Method):
    """Mixture of LoRA experts (number of experts = number of tasks) with a learned router."""

    def setup(self, model: nn.Module) -> nn.Module:
        targets = tuple(self.config.lora_targets or _DEFAULT_TARGETS)
        for p in model.parameters():
            p.requires_grad_(False)
        replaced = 0
        for module in list(model.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Linear) and child_name in targets:
                    c = self.config
                    setattr(
                        module,
                        child_name,
                        MoELoRALinear(child, len(self.tasks), c.lora_r, c.lora_alpha, c.lora_dropout),
                    )
                    replaced += 1
        if not replaced:
            raise ValueError(
                f"method.name='moelora' found no linear layer named {', '.join(targets)}; set "
                "method.lora_targets to the names of the layers to adapt (e.g. [q_proj, v_proj])."
            )
        unfreeze_heads(model)
        return model
