"""Data-parallel agreement on the mask, and detection of setups where ``.grad`` is not whole.

MIGU needs, at optimizer-step time, the full gradient of every masked weight, and every rank must
take the same mask. Plain PyTorch, DDP (``torchrun`` / ``accelerate launch``, one or many nodes)
meet both: gradients are all-reduced during backward, and we average the magnitudes here. Sharded
setups (FSDP, DeepSpeed) keep only a shard of each gradient, or none, at step time.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["world_size", "average_across_ranks", "check_supported_setup", "UNSUPPORTED_SETUP_HELP"]

UNSUPPORTED_SETUP_HELP = (
    "MIGU masks full gradient tensors at optimizer-step time. Supported: one process (CPU/GPU), "
    "PyTorch DDP launched by torchrun or `accelerate launch` (one or many nodes), and DeepSpeed-free, "
    "FSDP-free accelerate setups. Not supported: FSDP (1 and 2), DeepSpeed ZeRO (any stage), tensor "
    "parallelism (DTensor parameters): there the gradient is sharded or moved before the step. "
    "Use DDP (`accelerate config` -> multi-GPU, no FSDP/DeepSpeed) instead."
)


def world_size(group: dist.ProcessGroup | None = None) -> int:
    """Number of data-parallel ranks; 1 when torch.distributed is not initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(group)
    return 1


def average_across_ranks(flat: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """All-reduce mean of a 1-D tensor, in place (a no-op on one rank).

    SUM then divide: ReduceOp.AVG is NCCL-only, and this also runs on gloo (CPU tests).
    """
    n = world_size(group)
    if n > 1:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat.div_(n)
    return flat


def _is_dtensor(t: torch.Tensor) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # older torch
        return False
    return isinstance(t, DTensor)


def check_supported_setup(model: nn.Module, params: list[nn.Parameter], optimizer: object | None) -> None:
    """Raise a clear error when the model or optimizer is sharded (FSDP, DeepSpeed, DTensor).

    Raises:
        RuntimeError: with ``UNSUPPORTED_SETUP_HELP``.
    """
    reasons = []
    for module in model.modules():
        cls = type(module)
        if cls.__name__ in ("FullyShardedDataParallel", "FSDPModule") or cls.__name__.startswith("FSDP"):
            reasons.append(f"the model contains {cls.__name__} (FSDP)")
            break
        if cls.__module__.startswith("deepspeed"):
            reasons.append(f"the model is wrapped by DeepSpeed ({cls.__name__})")
            break
    if any(hasattr(p, "ds_id") for p in params):
        reasons.append("parameters are partitioned by DeepSpeed ZeRO-3")
    if any(_is_dtensor(p) for p in params):
        reasons.append("parameters are DTensors (FSDP2 or tensor parallelism)")
    inner = getattr(optimizer, "optimizer", optimizer)
    for opt in (optimizer, inner):
        if opt is not None and type(opt).__module__.startswith("deepspeed"):
            reasons.append(f"the optimizer is DeepSpeed's {type(opt).__name__}")
            break
    if reasons:
        raise RuntimeError(f"Unsupported setup: {'; '.join(reasons)}. {UNSUPPORTED_SETUP_HELP}")
