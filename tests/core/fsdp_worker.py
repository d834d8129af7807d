"""Worker for test_fsdp.py: MIGU under FSDP2 (``fully_shard``), launched by torchrun on gloo (CPU).

For each case, a fresh tiny model gets ``fully_shard`` per decoder block and on the root; each of 2
ranks takes half of every global batch, in 2 micro-batches (gradient accumulation: gradient sync
off on the first, ``set_requires_gradient_sync``). Checked here, on every rank: gradients are
``Shard(0)`` DTensors whose shards are ``torch.chunk`` blocks of the full tensor, as
``migu.core.distributed.local_range`` says; every rank takes the same masks; in strict mode the
masked rows of every rank's weight, bias and AdamW state shards are bit-identical before and after
each step. Rank 0 writes, per case, every step's masks and scores and the final full weights to OUT.

Usage: torchrun --nproc_per_node 2 fsdp_worker.py OUT FAMILY CASE [CASE ...]
  FAMILY: llama | llama_odd (d_out 33 and 37: uneven shards) | gpt2 (Conv1D)
  CASE:   MODE:CRITERION[:MESH[:fast]], MESH = fsdp (1-D) | hsdp (2 replicas x 1 shard);
          or "errors": the sharded setups attach must refuse (FSDP1, tensor parallelism, Shard(1),
          fully_shard after attach), each with its error message saved
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import exit_worker  # noqa: E402
from tiny_models import build, make_batch  # noqa: E402

import migu  # noqa: E402
from migu.core.distributed import is_dtensor, local_range  # noqa: E402

STEPS, GLOBAL_BATCH, LR, WEIGHT_DECAY, THRESHOLD = 3, 4, 1e-2, 0.1, 0.7


def build_model(family: str) -> torch.nn.Module:
    """A tiny random model (the same on every rank and in the test's single process)."""
    if family != "llama_odd":
        return build(family)
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # d_out 33 (o_proj, down_proj) and 37 (gate_proj, up_proj) split 17/16 and 19/18 on 2 ranks.
    cfg = LlamaConfig(
        vocab_size=96,
        hidden_size=33,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=3,
        num_key_value_heads=1,
        head_dim=6,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(cfg)
    model.config.attn_implementation = "eager"
    return model.train()


def batch_family(family: str) -> str:
    return "llama" if family == "llama_odd" else family


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated decoder blocks, each its own FSDP2 unit."""
    if hasattr(model, "model"):  # Llama
        return list(model.model.layers)
    return list(model.transformer.h)  # GPT-2


def parse_case(case: str) -> dict:
    parts = case.split(":")
    return {
        "mode": parts[0],
        "criterion": parts[1],
        "mesh": parts[2] if len(parts) > 2 else "fsdp",
        "fast": len(parts) > 3 and parts[3] == "fast",
    }


def shard_block(full: torch.Tensor, rank: int, shards: int) -> torch.Tensor:
    """This rank's block of ``full`` under Shard(0), as FSDP2 lays it out (torch.chunk)."""
    chunks = list(torch.chunk(full, shards, dim=0))
    chunks += [full[:0]] * (shards - len(chunks))  # torch.chunk may give fewer chunks than ranks
    return chunks[rank]


def check_layout(handle: migu.MiguHandle, rank: int, shards: int) -> None:
    """Gradients are Shard(0) DTensors; local shards are chunk blocks of full_tensor(); local_range agrees.

    Args:
        rank: This rank's index among the ``shards`` ranks that split each tensor.
    """
    for unit in handle.units:
        for p, dim in ((unit.weight, unit.unit_dim), (unit.bias, 0)):
            if p is None:
                continue
            for t in (p, p.grad):
                assert is_dtensor(t), f"{unit.name}: {type(t).__name__}"
                assert t.placements[-1].is_shard(0), t.placements
                full = t.full_tensor()
                assert torch.equal(t.to_local(), shard_block(full, rank, shards)), unit.name
                offset, length = local_range(t, 0)
                assert torch.equal(t.to_local(), full.narrow(0, offset, length)), unit.name
                if dim != 0:  # Conv1D: the unit dim (columns) is whole on every rank
                    assert local_range(t, dim) == (0, t.shape[dim]), unit.name


def snapshot(handle: migu.MiguHandle, opt: torch.optim.Optimizer) -> dict:
    """Local shards of every target weight/bias and of its optimizer state, before a step."""
    out = {}
    for unit in handle.units:
        for p in (unit.weight, unit.bias):
            if p is None:
                continue
            state = {k: v.to_local().clone() for k, v in opt.state.get(p, {}).items() if is_dtensor(v)}
            out[id(p)] = (p.to_local().clone(), state)
    return out


def check_strict(handle: migu.MiguHandle, opt, before: dict, rank: int, shards: int) -> int:
    """Masked rows of every local shard (weight, bias, AdamW state) are bit-identical across the step.

    Returns:
        How many masked rows this rank checked.
    """
    checked = 0
    for unit in handle.units:
        keep = handle.masks[unit.name]  # (d_out,) full mask, the same on every rank
        for p, dim in ((unit.weight, unit.unit_dim), (unit.bias, 0)):
            if p is None:
                continue
            # Units along the sharded dim 0: this rank's chunk of the mask; Conv1D's columns: all.
            local_keep = shard_block(keep, rank, shards) if dim == 0 else keep
            idx = (~local_keep).nonzero().squeeze(1)
            w_before, state_before = before[id(p)]
            pairs = [(w_before, p.to_local())]
            pairs += [(v, opt.state[p][k].to_local()) for k, v in state_before.items()]
            for old, new in pairs:
                assert torch.equal(old.index_select(dim, idx), new.index_select(dim, idx)), unit.name
            kept = local_keep.nonzero().squeeze(1)
            if kept.numel():  # the kept rows did move: the step was not skipped altogether
                assert not torch.equal(w_before.index_select(dim, kept), p.to_local().index_select(dim, kept))
            checked += idx.numel()
    return checked


def run_case(family: str, case: str, rank: int, world: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    spec = parse_case(case)
    model = build_model(family)
    if spec["mesh"] == "hsdp":  # 2 replicas of 1 shard: Replicate() x Shard(0) placements
        mesh = init_device_mesh("cpu", (world, 1), mesh_dim_names=("replicate", "shard"))
    else:
        mesh = init_device_mesh("cpu", (world,))
    for block in blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    config = migu.MiguConfig(
        threshold=THRESHOLD, mode=spec["mode"], criterion=spec["criterion"], fast_path=spec["fast"], seed=3
    )
    handle = migu.attach(model, config, optimizer=opt)
    # Ranks that split each tensor, and this rank's place among them (HSDP: 1 shard, replicated).
    shards, shard_rank = mesh.size(mesh.ndim - 1), mesh.get_local_rank(mesh.ndim - 1)
    masks, scores, strict_rows = [], [], 0
    per_rank = GLOBAL_BATCH // world
    for step in range(STEPS):
        batch = make_batch(batch_family(family), batch=GLOBAL_BATCH, seed=100 + step)
        mine = {k: v[rank * per_rank : (rank + 1) * per_rank] for k, v in batch.items()}
        for micro in range(per_rank):
            part = {k: v[micro : micro + 1] for k, v in mine.items()}
            # Accumulate unsharded gradients locally; reduce-scatter on the last micro-batch only.
            model.set_requires_gradient_sync(micro == per_rank - 1)
            (model(**part).loss / per_rank).backward()
        check_layout(handle, shard_rank, shards)
        before = snapshot(handle, opt)
        opt.step()
        if spec["mode"] == "strict":
            strict_rows += check_strict(handle, opt, before, shard_rank, shards)
        opt.zero_grad()
        masks.append({k: v.clone() for k, v in handle.masks.items()})
        scores.append({k: v.clone() for k, v in handle.magnitudes.items()})
    if spec["mode"] == "strict":
        assert strict_rows > 0, "no masked row was checked"
    # Every rank must have taken the same masks: compare rank 1's with rank 0's.
    flat = torch.cat([torch.cat([m.float() for m in step.values()]) for step in masks])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), "ranks took different masks"
    # full_tensor() is an all-gather: every rank calls it.
    state = {k: v.full_tensor() if is_dtensor(v) else v for k, v in model.state_dict().items()}
    fallbacks = dict(handle.fast_path_fallbacks)
    handle.remove()
    return {"masks": masks, "scores": scores, "state": state, "fallbacks": fallbacks}


def expect_error(fn) -> str:
    """Run ``fn``; return the message of the RuntimeError it must raise."""
    try:
        fn()
    except RuntimeError as e:
        return str(e)
    raise AssertionError(f"{fn.__name__} did not raise")


def unsupported_setups(world: int) -> dict:
    """The error message of each sharded setup MIGU refuses, by name."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FullyShardedDataParallel, fully_shard
    from torch.distributed.tensor import Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, parallelize_module

    mesh = init_device_mesh("cpu", (world,))

    def fsdp1() -> None:
        wrapped = FullyShardedDataParallel(build_model("llama"), device_id=torch.device("cpu"))
        migu.attach(wrapped, migu.MiguConfig())

    def tensor_parallel() -> None:
        model = build_model("llama")
        # ColwiseParallel shards the weight Shard(0) like FSDP2, but each rank sees only its output columns.
        parallelize_module(model.model.layers[0].mlp, mesh, {"gate_proj": ColwiseParallel()})
        migu.attach(model, migu.MiguConfig())

    def shard_dim1() -> None:
        model = build_model("llama")
        for block in blocks(model):
            fully_shard(block, mesh=mesh, shard_placement_fn=lambda p: Shard(1) if p.ndim == 2 else None)
        fully_shard(model, mesh=mesh)
        migu.attach(model, migu.MiguConfig())

    def shard_after_attach() -> None:
        model = build_model("llama")
        handle = migu.attach(model, migu.MiguConfig())  # holds the plain parameters
        for block in blocks(model):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)  # replaces them with DTensor parameters
        model(**make_batch("llama", batch=1)).loss.backward()
        handle.apply_masks()

    cases = [fsdp1, tensor_parallel, shard_dim1, shard_after_attach]
    messages = {fn.__name__: expect_error(fn) for fn in cases}
    return messages


def main() -> None:
    out, family, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2
    results = {
        case: unsupported_setups(world) if case == "errors" else run_case(family, case, rank, world)
        for case in cases
    }
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    exit_worker()  # torch's teardown can hang or abort after this point (tests/launch.py)


if __name__ == "__main__":
    main()
