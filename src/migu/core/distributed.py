"""Data-parallel agreement on the mask, FSDP2 shards, and detection of unsupported sharded setups.

MIGU needs, at optimizer-step time, the gradient of every masked row, and every rank must take the
same mask. Supported setups:

- One process, and PyTorch DDP (``torchrun`` / ``accelerate launch``, one or many nodes): gradients
  are all-reduced during backward, each rank holds them whole, and we average the magnitudes here.
- FSDP2 (``torch.distributed.fsdp.fully_shard``): every parameter is a DTensor sharded on dim 0
  (``Shard(0)``; HSDP adds ``Replicate()`` mesh dims), and after backward ``p.grad`` is a DTensor of
  the same placement holding this rank's block of the reduce-scattered gradient. The layer outputs
  are whole on every rank (for its own data), so the magnitudes and, once averaged, the mask are
  full ``(d_out,)`` vectors, identical on every rank; each rank masks the rows of its own shard
  (:func:`local_range` maps the full mask onto the shard).

Not supported (``attach`` raises): FSDP1 (``FullyShardedDataParallel``: flat parameters), DeepSpeed
(any ZeRO stage), and DTensor parameters not sharded by FSDP2 on dim 0 (tensor parallelism, FSDP2
with a ``shard_placement_fn`` other than dim 0): there a rank sees only part of a layer's output,
or no gradient row maps onto one output unit.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:
    from migu.core.targets import MaskedUnit

__all__ = [
    "world_size",
    "average_across_ranks",
    "check_supported_setup",
    "is_dtensor",
    "local_range",
    "local_tensor",
    "full_tensor",
    "sharded_row_scores",
    "UNSUPPORTED_SETUP_HELP",
]

UNSUPPORTED_SETUP_HELP = (
    "MIGU masks gradient rows at optimizer-step time, so each rank must hold whole rows of the "
    "gradient and see whole layer outputs. Supported: one process (CPU/GPU); PyTorch DDP launched by "
    "torchrun or `accelerate launch` (one or many nodes); FSDP2 (`torch.distributed.fsdp.fully_shard`, "
    "applied before attach; parameters sharded on dim 0, HSDP included). Not supported: "
    "FSDP1 (FullyShardedDataParallel, flat parameters: use fully_shard instead), DeepSpeed ZeRO (any "
    "stage), tensor parallelism or any other DTensor placement than Shard(0)/Replicate()."
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


# ---------------------------------------------------------------------------------------- DTensor
@cache  # looked up for every masked tensor at every step
def _dtensor_type() -> type | None:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # older torch, or torch built without distributed
        return None
    return DTensor


def is_dtensor(t: object) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (FSDP2 parameters, their gradients and state)."""
    cls = _dtensor_type()
    return cls is not None and isinstance(t, cls)


def _is_shard0(placement: object) -> bool:
    # Exactly Shard(0): _StridedShard (FSDP2 + TP) is another class, and Shard(1) (FSDP2's
    # shard_placement_fn) splits the input dimension of nn.Linear, where rows are not local.
    from torch.distributed.tensor import Shard

    return type(placement) is Shard and placement.dim == 0


def _is_replicate(placement: object) -> bool:
    return bool(getattr(placement, "is_replicate", lambda: False)())


def local_range(t: torch.Tensor, dim: int) -> tuple[int, int]:
    """``(offset, length)`` of this rank's shard of ``t`` along ``dim``, in global indices.

    A plain tensor is all local: ``(0, t.shape[dim])``. For a DTensor this is torch's own chunking
    (``torch.chunk`` per sharded mesh dimension: ``ceil(n / ranks)`` rows each, the last shards
    shorter or empty), e.g. 37 rows on 2 ranks are ``(0, 19)`` and ``(19, 18)``.
    """
    if not is_dtensor(t):
        return 0, t.shape[dim]
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    shape, offset = compute_local_shape_and_global_offset(t.shape, t.device_mesh, t.placements)
    local_shape = t.to_local().shape
    if tuple(shape) != tuple(local_shape):  # a torch change in how shards are laid out: fail loudly
        raise RuntimeError(
            f"MIGU computed a local shard shape {tuple(shape)} for a DTensor of global shape "
            f"{tuple(t.shape)} and placements {t.placements}, but the shard is {tuple(local_shape)}."
        )
    return offset[dim], shape[dim]


@torch.no_grad()
def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (sharing its storage: in-place writes reach it); else ``t``."""
    return t.to_local() if is_dtensor(t) else t


@torch.no_grad()
def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor (an all-gather, a collective: call it on every rank); ``t`` if not a DTensor."""
    return t.full_tensor() if is_dtensor(t) else t


def _row_l1_part(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
    """``(d_out,)`` float32: L1 norm of this rank's part of each unit slice; 0 where it holds none.

    Summed over the ranks holding shards, these are the L1 norms of whole unit slices. For
    ``nn.Linear`` under ``Shard(0)`` each row lives on one rank, so the sum adds exact zeros and the
    scores are those of one process; for ``Conv1D`` (units are columns) each rank adds a partial sum.
    """
    local = local_tensor(t)  # e.g. (local_rows, d_in)
    dims = [d for d in range(local.dim()) if d != unit_dim]
    # Same reduction as criteria._row_l1 so that a whole local row scores bit-identically.
    part = local.abs().sum(dim=dims, dtype=torch.float32) if dims else local.abs().float()  # (length,)
    offset, length = local_range(t, unit_dim)
    full = part.new_zeros(t.shape[unit_dim])  # (d_out,)
    full[offset : offset + length] = part
    return full


def _sum_over_shards(flat: torch.Tensor, mesh: object, placements: tuple) -> torch.Tensor:
    """All-reduce SUM of ``flat`` over the mesh dimensions that shard (not those that replicate)."""
    for mesh_dim, placement in enumerate(placements):
        # Replicated mesh dims (HSDP) hold the same shard: summing over them would double it.
        if not _is_replicate(placement) and mesh.size(mesh_dim) > 1:
            dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=mesh.get_group(mesh_dim))
    return flat


@torch.no_grad()
def sharded_row_scores(units: list[MaskedUnit], criterion: str) -> dict[str, torch.Tensor]:
    """``"weight"`` / ``"gradient"`` scores of DTensor-sharded units: full ``(d_out,)`` vectors.

    The same statistic as :func:`migu.core.criteria.unit_scores` (L1 of each weight or gradient
    row, plus the bias entry's magnitude), assembled from each rank's shard: every rank writes its
    rows' L1 norms into a zero vector, and one all-reduce (per device mesh, over its sharding
    dimensions) sums them, so every rank ends with the same full scores. A collective: call it on
    every rank with the same units.

    Args:
        units: Units whose weight is a DTensor (all with a gradient, for ``"gradient"``).
        criterion: ``"weight"`` or ``"gradient"``.

    Returns:
        Unit name -> ``(d_out,)`` float32 scores, in ``units`` order.
    """
    if criterion not in ("weight", "gradient"):
        raise ValueError(f"sharded_row_scores: criterion={criterion!r} is not 'weight' or 'gradient'.")
    # Weight and bias parts are reduced separately and added afterwards: for nn.Linear each sum then
    # adds one nonzero to zeros (exact), and w + b rounds once, exactly as on one process.
    parts: list[tuple[str, torch.Tensor, int]] = []  # (unit name, tensor, unit dim)
    for unit in units:
        w = unit.weight if criterion == "weight" else unit.weight.grad
        b = unit.bias if criterion == "weight" or unit.bias is None else unit.bias.grad
        parts.append((unit.name, w, unit.unit_dim))
        if b is not None:
            parts.append((unit.name, b, 0))
    # One flat all-reduce per (mesh, placements): FSDP2 puts every parameter on the same mesh.
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, (_, t, _) in enumerate(parts):
        groups[(t.device_mesh, tuple(t.placements))].append(i)
    reduced: list[torch.Tensor | None] = [None] * len(parts)
    for (mesh, placements), idx in groups.items():
        vectors = [_row_l1_part(parts[i][1], parts[i][2]) for i in idx]
        flat = torch.cat(vectors)  # (sum of d_out,)
        if flat.device.type != mesh.device_type:  # CPU-offloaded shards on a CUDA (NCCL) mesh
            flat = flat.to(mesh.device_type)
        _sum_over_shards(flat, mesh, placements)
        for i, chunk in zip(idx, torch.split(flat, [v.shape[0] for v in vectors]), strict=True):
            reduced[i] = chunk
    scores: dict[str, torch.Tensor] = {}
    for (name, _, _), vector in zip(parts, reduced, strict=True):
        scores[name] = vector if name not in scores else scores[name] + vector  # weight, then bias
    return scores


# ------------------------------------------------------------------------------ setup detection
def _fsdp2_managed(model: nn.Module) -> tuple[bool, set[int] | None]:
    """Whether ``model`` contains FSDP2 modules, and the ids of the parameters they shard.

    The ids are ``None`` when torch's (private) FSDP2 state cannot be read: every DTensor parameter
    then counts as FSDP2's, and only its placements are checked.
    """
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False, set()
    modules = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not modules:
        return False, set()
    ids: set[int] = set()
    try:
        for module in modules:
            state = module._get_fsdp_state()
            groups = getattr(state, "_fsdp_param_groups", None)
            if groups is None:  # torch < 2.10: one group per module
                groups = [g for g in [state._fsdp_param_group] if g is not None]
            for group in groups:
                ids.update(id(fp.sharded_param) for fp in group.fsdp_params)
    except (AttributeError, AssertionError, TypeError):
        return True, None
    return True, ids


def _is_fsdp1(module: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:
        FullyShardedDataParallel = None  # noqa: N806
    if FullyShardedDataParallel is not None and isinstance(module, FullyShardedDataParallel):
        return True
    return type(module).__name__ == "FullyShardedDataParallel"


def check_supported_setup(model: nn.Module, params: list[nn.Parameter], optimizer: object | None) -> None:
    """Raise a clear error for sharded setups MIGU cannot mask: FSDP1, DeepSpeed, non-FSDP2 DTensors.

    FSDP2 (``fully_shard``) is accepted when every DTensor among ``params`` is sharded by an FSDP2
    module inside ``model`` with placements ``Shard(0)`` (and ``Replicate()`` for HSDP).

    Raises:
        RuntimeError: with ``UNSUPPORTED_SETUP_HELP``.
    """
    reasons = []
    for module in model.modules():
        cls = type(module)
        if _is_fsdp1(module):
            reasons.append(f"the model contains {cls.__name__} (FSDP1, flat sharded parameters)")
            break
        if cls.__module__.startswith("deepspeed"):
            reasons.append(f"the model is wrapped by DeepSpeed ({cls.__name__})")
            break
    if any(type(p).__name__ == "FlatParameter" for p in model.parameters()):
        reasons.append("the model has FSDP1 FlatParameters")
    if any(hasattr(p, "ds_id") for p in params):
        reasons.append("parameters are partitioned by DeepSpeed ZeRO-3")
    dtensors = [p for p in params if is_dtensor(p)]
    if dtensors:
        names = {id(p): n for n, p in model.named_parameters()}
        has_fsdp2, managed = _fsdp2_managed(model)
        for p in dtensors:
            name = names.get(id(p), "a target weight")
            if not has_fsdp2 or (managed is not None and id(p) not in managed):
                reasons.append(
                    f"{name} is a DTensor not sharded by an FSDP2 (fully_shard) module of the model given "
                    f"to attach (placements {tuple(p.placements)}: tensor parallelism?). With FSDP2, call "
                    "attach on the module fully_shard was applied to last (the root), after fully_shard"
                )
                break
            if not all(_is_shard0(pl) or _is_replicate(pl) for pl in p.placements):
                reasons.append(
                    f"{name} has DTensor placements {tuple(p.placements)}; MIGU supports Shard(0) "
                    "(FSDP2's default) and Replicate() (HSDP) only"
                )
                break
    inner = getattr(optimizer, "optimizer", optimizer)
    for opt in (optimizer, inner):
        if opt is not None and type(opt).__module__.startswith("deepspeed"):
            reasons.append(f"the optimizer is DeepSpeed's {type(opt).__name__}")
            break
    if reasons:
        raise RuntimeError(f"Unsupported setup: {'; '.join(reasons)}. {UNSUPPORTED_SETUP_HELP}")
