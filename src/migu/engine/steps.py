"""The optimizer step, shared by ``migu run`` and ``migu pretrain``: batch plan, AdamW and its
schedule, and what happens between the backward and the update.

One step is: forward and backward over its micro-batches (MIGU's magnitudes add up over them),
MIGU's masks, gradient clipping, the optimizer update, the schedule. The mask comes *before*
clipping, as in the official code, so the clipping norm is that of the masked gradient.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "batch_plan",
    "derive_seed",
    "finish_step",
    "make_optimizer",
    "make_scheduler",
    "on_step",
    "per_step",
    "step_done",
    "train_step",
]


def derive_seed(seed: int, *parts: object) -> int:
    """A seed in ``[0, 2**31)`` that is a pure function of ``seed`` and ``parts``.

    Each pre-training domain (and each end task) seeds its own RNGs from this, so its training
    depends only on the weights it starts from: a run resumed at a domain boundary repeats an
    uninterrupted one.
    """
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def batch_plan(
    n_examples: int,
    *,
    batch_size: int,
    accum: int,
    epochs: float,
    max_steps: int | None,
    epoch_seed: Callable[[int], int],
) -> list[list[int]]:
    """Example indices of every micro-batch, ``accum`` micro-batches to an optimizer step.

    ``floor(epochs * n_examples / batch_size)`` micro-batches, rounded down to whole optimizer steps
    (at least one step), capped at ``max_steps`` steps. Epoch ``e`` is a fresh permutation seeded by
    ``epoch_seed(e)``, so the plan is a pure function of its arguments and a resumed run sees the
    same batches.

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
        g = torch.Generator().manual_seed(epoch_seed(epoch))
        order.extend(torch.randperm(n_examples, generator=g).tolist())
        epoch += 1
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(n_micro)]


def per_step(micro_batches: list[list[int]], accum: int) -> list[list[list[int]]]:
    """The micro-batches of :func:`batch_plan` grouped by optimizer step: ``plan[step][micro]``."""
    return [micro_batches[s * accum : (s + 1) * accum] for s in range(len(micro_batches) // accum)]


def make_optimizer(
    params: Sequence[nn.Parameter], *, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """A fresh AdamW over ``params`` (each task, each domain starts one: the paper's protocol)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, *, warmup_ratio: float, steps: int) -> Any:
    """transformers' learning-rate schedule ``name`` over ``steps`` optimizer steps, with
    ``int(warmup_ratio * steps)`` warm-up steps (``constant`` with warm-up becomes
    ``constant_with_warmup``)."""
    from transformers import get_scheduler

    warmup = int(warmup_ratio * steps)
    if name == "constant" and warmup > 0:
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=steps)


def finish_step(
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    *,
    handle: Any = None,
    max_grad_norm: float | None = None,
    accelerator: Any = None,
) -> float | None:
    """Everything after the last backward of a step: MIGU's masks, clipping, update, schedule.

    Args:
        model: The (possibly wrapped) model whose gradients are complete.
        optimizer: The optimizer (an accelerate-prepared one works too).
        scheduler: Its learning-rate schedule (``None``: none).
        handle: A :class:`migu.MiguHandle` on the model (``None``: no MIGU); its masks are applied
            when it is enabled.
        max_grad_norm: Clip the (masked) gradient to this norm (``None`` or 0: no clipping).
        accelerator: Routes clipping through accelerate (mixed-precision unscaling, sharded models).

    Returns:
        The share of output units MIGU let update in this step, or ``None`` without MIGU.
    """
    fraction = None
    if handle is not None and handle.enabled:
        handle.apply_masks()  # before clipping, as the official code
        fraction = handle.update_fraction
    if max_grad_norm:
        if accelerator is not None:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return fraction


def train_step(
    model: nn.Module,
    micro_batches: Sequence[Any],
    loss_of: Callable[[Any], torch.Tensor],
    optimizer: Any,
    scheduler: Any = None,
    *,
    accelerator: Any = None,
    handle: Any = None,
    max_grad_norm: float | None = None,
    check_loss: Callable[[float], None] | None = None,
) -> tuple[float, float | None]:
    """One optimizer step of ``migu run`` and ``migu pretrain``: forward and backward over the
    step's micro-batches, then :func:`finish_step`.

    Each micro-batch's loss is divided by their number, so the step minimises their mean. Under
    data parallelism the gradient all-reduce is skipped for every micro-batch but the last
    (``accelerator.no_sync``), as ``accelerator.accumulate`` would do; the accelerator is built with
    ``gradient_accumulation_steps=1`` so that it does not divide the loss a second time.

    Args:
        model: The (possibly wrapped) model.
        micro_batches: What ``loss_of`` takes, one item per micro-batch (indices, or a batch).
        loss_of: Builds a micro-batch and returns its (scalar) training loss.
        optimizer, scheduler, handle, max_grad_norm: As :func:`finish_step`.
        accelerator: Routes backward (mixed-precision scaling), the skipped all-reduces and clipping
            (``None``: plain PyTorch in one process).
        check_loss: Called with the step's mean loss before the update (one device-to-host read a
            step); it may raise, e.g. for a non-finite loss, and then nothing is updated.

    Returns:
        ``(mean loss, share of output units MIGU let update or None)``.
    """
    n = len(micro_batches)
    total: torch.Tensor | None = None  # sum of the micro-batch losses (detached)
    for i, micro in enumerate(micro_batches):
        last = i == n - 1
        with contextlib.nullcontext() if last or accelerator is None else accelerator.no_sync(model):
            loss = loss_of(micro)
            if accelerator is None:
                (loss / n).backward()
            else:
                accelerator.backward(loss / n)
        total = loss.detach() if total is None else total + loss.detach()
    mean = float(total) / n
    if check_loss is not None:
        check_loss(mean)
    fraction = finish_step(
        model, optimizer, scheduler, handle=handle, max_grad_norm=max_grad_norm, accelerator=accelerator
    )
    return mean, fraction


_STEP_CALLBACKS: list[Callable[[int], None]] = []


@contextlib.contextmanager
def on_step(callback: Callable[[int], None]) -> Iterator[None]:
    """Call ``callback(n)`` after every optimizer step of ``migu run`` and ``migu pretrain`` in this
    process, inside the ``with`` block; ``n`` counts the steps this process has taken so far.

    For your own logging or stopping rules; the tests use it to kill a run mid-task, as an
    out-of-memory kill would, and check that it resumes.
    """
    _STEP_CALLBACKS.append(callback)
    try:
        yield
    finally:
        _STEP_CALLBACKS.remove(callback)


def step_done(n: int) -> None:
    """Tell the :func:`on_step` callbacks that this process has taken ``n`` optimizer steps."""
    for callback in list(_STEP_CALLBACKS):
        callback(n)
