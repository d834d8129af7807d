"""Optimizer steps shared by both phases: the batch plan, AdamW and its schedule, one step.

One step is: forward and backward over its micro-batches (MIGU's magnitudes add up over them),
MIGU's masks, gradient clipping, the optimizer update. The mask comes *before* clipping, as in the
official code and in ``migu run``, so the clipping norm is that of the masked gradient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["batch_plan", "derive_seed", "make_optimizer", "train_step"]


def derive_seed(seed: int, *parts: object) -> int:
    """A seed in ``[0, 2**31)`` that is a pure function of ``seed`` and ``parts``.

    Each domain (and each end task) seeds its own RNGs from this, so its training depends only on
    the weights it starts from: a run resumed at a domain boundary repeats an uninterrupted one.
    """
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def batch_plan(
    n_examples: int, *, batch_size: int, accum: int, epochs: float, max_steps: int | None, seed: int
) -> list[list[list[int]]]:
    """Example indices of every optimizer step: ``plan[step][micro_batch] = [indices]``.

    ``floor(epochs * n_examples / batch_size)`` micro-batches, rounded down to whole steps (at least
    one step), capped at ``max_steps``. Each epoch is a fresh permutation from ``seed``.

    Raises:
        ValueError: ``n_examples < 1``.
    """
    if n_examples < 1:
        raise ValueError("batch_plan needs at least one example.")
    n_micro = max(accum, int(epochs * n_examples) // batch_size // accum * accum)
    if max_steps is not None:
        n_micro = min(n_micro, max_steps * accum)
    order: list[int] = []
    epoch = 0
    while len(order) < n_micro * batch_size:
        g = torch.Generator().manual_seed(seed + epoch)
        order.extend(torch.randperm(n_examples, generator=g).tolist())
        epoch += 1
    micro = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_micro)]
    return [micro[s * accum : (s + 1) * accum] for s in range(n_micro // accum)]


def make_optimizer(
    params: Sequence[nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    scheduler: str,
    warmup_ratio: float,
    steps: int,
) -> tuple[torch.optim.Optimizer, Any]:
    """A fresh AdamW and its learning-rate schedule over ``steps`` optimizer steps."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warmup = int(warmup_ratio * steps)
    name = "constant_with_warmup" if scheduler == "constant" and warmup > 0 else scheduler
    return optimizer, get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=steps)


def train_step(
    model: nn.Module,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    optimizer: Any,
    *,
    handle: Any = None,
    max_grad_norm: float | None = None,
    accelerator: Any = None,
) -> float:
    """One optimizer step over ``micro_batches`` (gradient accumulation in a single process).

    Args:
        model: A model whose output has ``.loss`` (the batches carry ``labels``).
        micro_batches: Batches already on the model's device; their mean loss is minimised.
        optimizer: The optimizer (an accelerate-prepared one works too).
        handle: A :class:`migu.MiguHandle` on ``model`` (``None``: no MIGU). Its masks are applied
            after backward and before clipping, when it is enabled.
        max_grad_norm: Clip the (masked) gradient to this norm (``None``: no clipping).
        accelerator: Routes backward and clipping through accelerate (mixed precision scaling).

    Returns:
        The mean loss of the micro-batches.
    """
    total = 0.0
    for batch in micro_batches:
        loss = model(**batch).loss / len(micro_batches)
        if accelerator is not None:
            accelerator.backward(loss)
        else:
            loss.backward()
        total += loss.detach().float().item()
    if handle is not None and handle.enabled:
        handle.apply_masks()  # before clipping, as the official code
    if max_grad_norm:
        params = [p for p in model.parameters() if p.grad is not None]
        if accelerator is not None:
            accelerator.clip_grad_norm_(params, max_grad_norm)
        else:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total
