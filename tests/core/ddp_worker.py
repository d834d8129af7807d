"""Worker for test_distributed.py: MIGU under DDP, launched by torchrun (or accelerate launch).

Each of 2 ranks takes half of every global batch, in 2 micro-batches (gradient accumulation with
no_sync on the first). Rank 0 writes the final weights and every step's masks to OUT.
Usage: torchrun --nproc_per_node 2 ddp_worker.py OUT [grad|strict] [torch|accelerate]
"""

import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import exit_worker  # noqa: E402
from tiny_models import build, make_batch  # noqa: E402

import migu  # noqa: E402

STEPS, GLOBAL_BATCH = 3, 4


def main() -> None:
    out, mode, launcher = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    model = build("llama")
    if launcher == "accelerate":
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        ddp, opt = accelerator.prepare(model, opt)
        rank, world = accelerator.process_index, accelerator.num_processes
    else:
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    assert world == 2
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7, mode=mode), optimizer=opt)
    masks = []
    per_rank = GLOBAL_BATCH // world
    for step in range(STEPS):
        batch = make_batch("llama", batch=GLOBAL_BATCH, seed=100 + step)
        mine = {k: v[rank * per_rank : (rank + 1) * per_rank] for k, v in batch.items()}
        for micro in range(per_rank):
            part = {k: v[micro : micro + 1] for k, v in mine.items()}
            if micro < per_rank - 1:
                with ddp.no_sync():
                    (ddp(**part).loss / per_rank).backward()
            else:
                (ddp(**part).loss / per_rank).backward()
        opt.step()
        opt.zero_grad()
        masks.append({k: v.clone() for k, v in handle.masks.items()})
    # Every rank must have taken the same masks: compare rank 1's with rank 0's.
    flat = torch.cat([torch.cat([m.float() for m in step.values()]) for step in masks])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), "ranks took different masks"
    if rank == 0:
        torch.save({"state": model.state_dict(), "masks": masks}, out)
    dist.barrier()
    exit_worker()  # torch's teardown can hang or abort after this point (tests/launch.py)


if __name__ == "__main__":
    main()
