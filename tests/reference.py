"""An independent reference for MIGU, written from the equations (DESIGN.md section 1), not from migu.

It records each target layer's *input* with its own hooks and recomputes the layer output
``y = x W^T + b`` (``x W + b`` for Conv1D) in float64, then ranks units with Python's sort.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn


class InputRecorder:
    """Records the inputs of the given modules during forwards with grad enabled."""

    def __init__(self, modules: dict[str, nn.Module]):
        self.inputs: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._hooks = [m.register_forward_pre_hook(self._hook(n)) for n, m in modules.items()]

    def _hook(self, name):
        def hook(module, args):
            if torch.is_grad_enabled():
                self.inputs[name].append(args[0].detach().double().clone())

        return hook

    def remove(self):
        for h in self._hooks:
            h.remove()


def linear_out(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv1d: bool = False
) -> torch.Tensor:
    w = weight.detach().double()
    y = x @ w if conv1d else x @ w.T
    if bias is not None:
        y = y + bias.detach().double()
    return y


def magnitude(
    ys: list[torch.Tensor], masks: list[torch.Tensor | None] | None = None, normalize: str = "none"
):
    """sum over micro-batches and tokens of |y| (optionally per-token L1-normalized, padding weighted 0)."""
    total = None
    for i, y in enumerate(ys):
        a = y.abs()
        if normalize == "token":
            a = a / a.sum(-1, keepdim=True)
        if masks is not None and masks[i] is not None:
            a = a * masks[i].double().unsqueeze(-1)
        m = a.reshape(-1, a.shape[-1]).sum(0)
        total = m if total is None else total + m
    return total


def reference_keep(m: torch.Tensor, threshold: float) -> torch.Tensor:
    """True for the d_out - floor(T d_out) largest units; ties: the lower index is masked first."""
    d = m.shape[0]
    k = math.floor(threshold * d + 1e-9)
    values = m.tolist()
    order = sorted(range(d), key=lambda j: (values[j], j))
    keep = torch.ones(d, dtype=torch.bool)
    for j in order[:k]:
        keep[j] = False
    return keep
