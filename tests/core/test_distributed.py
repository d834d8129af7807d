"""DDP with 2 CPU processes (gloo) gives the weights and masks of one process on the global batch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from launch import free_port, run_launch
from tiny_models import build, make_batch

import migu

WORKER = Path(__file__).with_name("ddp_worker.py")
STEPS, GLOBAL_BATCH = 3, 4


def _single_process(mode: str):
    model = build("llama")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7, mode=mode), optimizer=opt)
    masks = []
    for step in range(STEPS):
        model(**make_batch("llama", batch=GLOBAL_BATCH, seed=100 + step)).loss.backward()
        opt.step()
        opt.zero_grad()
        masks.append(dict(handle.masks))
    return model.state_dict(), masks


def _command(launcher: str, out: Path, mode: str) -> list[str]:
    port = str(free_port())
    if launcher == "torchrun":
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            port,
            str(WORKER),
            str(out),
            mode,
            "torch",
        ]
    else:
        # `accelerate launch --cpu` starts one process; --multi_gpu goes through torchrun, and the
        # worker's Accelerator(cpu=True) then sets up a gloo (CPU) process group.
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
            str(WORKER),
            str(out),
            mode,
            "accelerate",
        ]
    return cmd


def _launch(launcher: str, out: Path, mode: str) -> None:
    proc = run_launch(lambda: _command(launcher, out, mode), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher, mode", [("torchrun", "grad"), ("torchrun", "strict"), ("accelerate", "grad")]
)
def test_ddp_two_processes_equal_one_process(tmp_path, launcher, mode):
    out = tmp_path / "ddp.pt"
    _launch(launcher, out, mode)
    ddp = torch.load(out)
    state, masks = _single_process(mode)
    for step in range(STEPS):
        assert masks[step].keys() == ddp["masks"][step].keys()
        for name in masks[step]:
            assert torch.equal(masks[step][name], ddp["masks"][step][name]), (step, name)
    for key, value in state.items():
        # Adam divides by sqrt(v): an element whose gradient is float noise (summation order differs
        # between 2 ranks and 1 process) can move by a noticeable fraction of lr. 1e-5 = lr * 1e-3.
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-5, atol=1e-5, msg=key)
