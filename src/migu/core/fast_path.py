"""The fast path: linear layers whose backward computes the weight gradient of kept rows only.

A linear layer's backward does two matrix products of equal cost: the input gradient
``grad_x = g W`` and the weight gradient ``grad_W = g^T x`` (``g`` the output gradient,
``(N, d_out)``). MIGU keeps only the top ``d_out - floor(T * d_out)`` rows of ``grad_W``, so the
fast path computes ``g[:, keep]^T x`` (one ``(n_keep, N) @ (N, d_in)`` product) and writes it into
the kept rows of the returned gradient, whose masked rows are exact zeros. At T = 0.7 this skips
70% of the weight-gradient product, about a quarter of the layer's training FLOPs. The input
gradient is computed in full, exactly as without MIGU. The bias gradient is masked the same way.

How the mask reaches the backward
---------------------------------
The mask of a layer must be known before its backward, i.e. right after the forward. When
``MiguConfig(fast_path=True)``, :class:`migu.core.handle.MiguHandle` swaps the ``forward`` of each
eligible layer (an instance attribute; ``handle.remove()`` deletes it, so ``module.forward`` is the
class's own method again, and nothing global is patched) for one that runs
:class:`MaskedWeightGradLinear` with an empty :class:`RowSlot`. Every forward of the model then
goes: layer forward (slot created) -> the handle's magnitude hook adds ``|y|`` to the layer's running
total -> ... -> the end of the *model's* forward (a forward hook on the module given to ``attach``):
the handle takes the running totals of all layers (all-reduced across data-parallel ranks when
``sync_distributed``, in one collective, exactly as at step time), ranks them as at step time and
fills every slot of that forward with the kept row indices. The backward reads its slot.

So each micro-batch's weight gradient is masked with the *running mask*: the top ``1 - T`` units of
the magnitudes summed over the forwards of this optimizer step so far, this one included.

- Gradient accumulation 1, one process: the running mask is the step's mask; the gradient equals
  the dense masked gradient (float tolerance; masked rows exactly 0).
- Gradient accumulation ``n > 1``: micro-batch ``i`` contributes ``M_i * g_i`` with ``M_i`` the mask
  of the magnitudes of micro-batches ``1..i``; the step's mask ``M = M_n`` is still applied to
  ``.grad`` at step time (the handle always masks then). The result is ``M * sum_i M_i * g_i``
  where the official (dense) path has ``M * sum_i g_i``: masked rows and the mask are identical; a
  kept row misses the contributions of earlier micro-batches whose running mask had masked it.
  The last micro-batch always uses the step's mask.
- DDP: slots are filled from the rank-averaged running magnitudes (one all-reduce per forward of
  the model, issued at the end of the forward, before any backward), so every rank masks with the
  same running mask and DDP's all-reduce of gradients averages ``M_i * g_(r,i)`` over ranks. With
  one micro-batch per step this equals one process on the global batch, dense path included
  (tested with 2 gloo processes); with accumulation, it equals one process whose micro-batch ``i``
  is the union of the ranks' micro-batches ``i``. The step reuses the magnitudes of the last
  forward's all-reduce when nothing was recorded since, so the step's mask is bit-identical to the
  last running mask and costs no second collective.

The gradient is returned through autograd like any other, so gradient accumulation into ``.grad``,
DDP's reducer hooks, gradient hooks and non-reentrant activation checkpointing (whose backward runs
the original forward's nodes, slots included) work unchanged. A slot that no model forward filled
(a layer called outside the model's forward, reentrant checkpointing) gives the dense gradient,
which the step-time mask then masks: correct, only not faster.

Where it applies
----------------
``nn.Linear`` and transformers ``Conv1D`` (GPT-2, weight ``(d_in, d_out)``: kept *columns*) whose
class does not override ``forward`` and whose ``forward`` is not already replaced on the instance
(e.g. by accelerate's big-model hooks). Everything else keeps the dense path, with the reason in
``handle.fast_path_fallbacks``: PEFT LoRA factors (tiny ``r``-row products, and B's mask comes from
the combined layer output), layers whose ``floor(T * d_out)`` is 0, subclasses with their own forward,
and DTensor (FSDP2-sharded) weights.
Under ``torch.autocast`` the layer casts its input, weight and bias as autocast would and runs the
product in that dtype. Double backward (``create_graph=True``) through a fast layer is not supported.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from migu.core.distributed import is_dtensor
from migu.core.targets import MaskedUnit, lora_layer_types

__all__ = [
    "RowSlot",
    "MaskedWeightGradLinear",
    "fallback_reason",
    "lora_prefixes",
    "install_fast_forward",
    "uninstall",
]


class RowSlot:
    """Which rows one forward's weight gradient keeps: filled after the model's forward, read in backward.

    Attributes:
        keep: ``(n_keep,)`` long indices of kept output units, or ``None`` (dense gradient).
    """

    __slots__ = ("keep",)

    def __init__(self) -> None:
        self.keep: torch.Tensor | None = None


class MaskedWeightGradLinear(torch.autograd.Function):
    """``y = x W^T + b`` (or Conv1D's ``x W + b``) whose backward computes only the kept weight rows.

    Forward: the same op as the module (``F.linear``, or ``addmm`` for Conv1D), so outputs are
    bit-identical to the module's. Backward: ``grad_x = g W`` in full; ``grad_W`` and ``grad_b``
    full-shaped, with the rows of ``slot.keep`` computed from the gathered columns of ``g`` and the
    other rows exactly zero (dense when ``slot.keep`` is None).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        slot: RowSlot,
        transposed: bool,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)  # what the module's own linear saves: no extra memory
        ctx.slot, ctx.transposed, ctx.has_bias = slot, transposed, bias is not None
        if transposed:  # transformers Conv1D, weight (d_in, d_out), always with a bias
            y = torch.addmm(bias, x.view(-1, x.size(-1)), weight)  # (N, d_out)
            return y.view(*x.shape[:-1], weight.shape[1])  # (..., d_out)
        return F.linear(x, weight, bias)  # (..., d_out)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        transposed, slot = ctx.transposed, ctx.slot
        g = grad_out.reshape(-1, grad_out.shape[-1])  # (N, d_out)
        if g.dtype != weight.dtype:  # e.g. a backward run under autocast
            g = g.to(weight.dtype)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            gx = g @ (weight.t() if transposed else weight)  # (N, d_in)
            grad_x = gx.view(x.shape)
        need_w, need_b = ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]
        if not (need_w or need_b):
            return grad_x, None, None, None, None
        x2 = x.reshape(-1, x.shape[-1])  # (N, d_in)
        keep = slot.keep
        if keep is None:  # no mask known before this backward: the dense gradient
            if need_w:
                grad_w = x2.t() @ g if transposed else g.t() @ x2  # (d_in, d_out) / (d_out, d_in)
            if need_b:
                grad_b = g.sum(0)  # (d_out,)
            return grad_x, grad_w, grad_b, None, None
        unit_dim = 1 if transposed else 0
        gk = g.index_select(1, keep)  # (N, n_keep): output-gradient columns of kept units
        if need_w:
            # A memset then the kept rows: measured faster on CPU than index_fill_ of the masked rows.
            grad_w = torch.zeros_like(weight)  # (d_out, d_in) / Conv1D (d_in, d_out)
            part = x2.t() @ gk if transposed else gk.t() @ x2  # (d_in, n_keep) / (n_keep, d_in)
            grad_w.index_copy_(unit_dim, keep, part)
        if need_b:
            grad_b = g.new_zeros(g.shape[1]).index_copy_(0, keep, gk.sum(0))  # (d_out,)
        return grad_x, grad_w, grad_b, None, None


def _conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        return None
    return Conv1D


def lora_prefixes(model: nn.Module) -> list[str]:
    """Qualified names of the PEFT LoRA layers of ``model`` (their factors keep the dense path)."""
    types_ = lora_layer_types()
    return [n for n, m in model.named_modules() if isinstance(m, types_)] if types_ else []


def fallback_reason(
    unit: MaskedUnit, module: nn.Module, num_masked: int, lora_layers: list[str]
) -> str | None:
    """Why ``unit`` keeps the dense path under ``fast_path=True``, or ``None`` if the fast path applies.

    Args:
        unit: The masked weight.
        module: The module owning ``unit.weight``.
        num_masked: ``floor(T * d_out)`` of the unit.
        lora_layers: :func:`lora_prefixes` of the model.
    """
    if unit.source != unit.name or any(unit.name.startswith(p + ".") for p in lora_layers):
        return "PEFT LoRA factor"
    if num_masked == 0:
        return "no unit masked at this threshold"
    if is_dtensor(unit.weight):
        # FSDP2 registers a different (unsharded) weight on the module for each forward, and its
        # backward hooks reduce-scatter what autograd computes; the masked-row backward is not
        # verified there. The step-time mask still masks each shard: correct, only not faster.
        return "DTensor (FSDP2-sharded) weight"
    conv1d = _conv1d_type()
    if type(module).forward is nn.Linear.forward:
        pass
    elif conv1d is not None and type(module).forward is conv1d.forward:
        pass
    else:
        return f"{type(module).__name__} has its own forward"
    if "forward" in module.__dict__:
        return "forward already replaced on this module (another library's wrapper)"
    if module.weight is not unit.weight:
        return "weight is not the module's own parameter"
    return None


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or ``None``."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return None
    except (TypeError, AttributeError):  # torch < 2.4: per-device functions
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return None


def install_fast_forward(
    module: nn.Module, new_slot: Callable[[], RowSlot | None], transposed: bool
) -> types.MethodType:
    """Replace ``module.forward`` (on the instance) with one that runs :class:`MaskedWeightGradLinear`.

    Args:
        module: An ``nn.Linear`` or ``Conv1D`` that passed :func:`fallback_reason`.
        new_slot: Called at every forward; returns the slot to fill later, or ``None`` to run the
            module's own forward (MIGU paused, evaluation under ``no_grad``).
        transposed: True for ``Conv1D``.

    Returns:
        The installed bound method (give it to :func:`uninstall`).
    """
    own_forward = type(module).forward

    def fast_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        trains = weight.requires_grad or (bias is not None and bias.requires_grad)
        slot = new_slot() if trains and torch.is_grad_enabled() else None
        if slot is None:
            return own_forward(self, x)
        cast = _autocast_dtype(x.device.type)
        if cast is None:
            return MaskedWeightGradLinear.apply(x, weight, bias, slot, transposed)
        # Cast as autocast would for a linear op, then run the Function in that dtype (the casts
        # are ordinary autograd ops: the weight gradient reaches the fp32 parameter through them).
        with torch.autocast(x.device.type, enabled=False):
            b = bias.to(cast) if bias is not None else None
            return MaskedWeightGradLinear.apply(x.to(cast), weight.to(cast), b, slot, transposed)

    # A bound method (not a closure over the module): copy.deepcopy of the model rebinds it to the copy.
    method = types.MethodType(fast_forward, module)
    module.forward = method
    return method


def uninstall(module: nn.Module, method: types.MethodType) -> bool:
    """Delete the instance ``forward`` installed by :func:`install_fast_forward`.

    Returns:
        False (nothing changed) if ``module.forward`` was replaced again by someone else since.
    """
    if module.__dict__.get("forward") is method:
        del module.__dict__["forward"]
        return True
    return False
