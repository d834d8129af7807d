"""`migu run` on 2 CPU processes (torchrun, accelerate launch) equals 1 process with the same global batch.

The engine cuts every global micro-batch into per-rank slices (rank r takes items r*bs..(r+1)*bs), DDP
averages the ranks' gradients, and MIGU averages the ranks' magnitudes before ranking, so two ranks of
batch 2 must train as one process of batch 4: the same masks, the same weights up to float rounding,
and the same accuracy matrix. Padding is left out of the magnitudes (``migu.ignore_padding``) because
each rank pads its slice to its own longest example: counted, padded positions would differ between
the two set-ups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from launch import assert_close_up_to_adam_noise, free_port, launch_env
from safetensors.torch import load_file
from tiny_runs import save_tiny_model, tiny_config, write_tiny_benchmark

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, name: str, batch_size: int, max_steps: int | None, accum: int = 1) -> Path:
    model = tmp_path / "model"
    if not model.exists():
        save_tiny_model(model, "bert")
        write_tiny_benchmark(tmp_path / "data", n_train=32, n_test=12)
    cfg = tiny_config(model, tmp_path / "data", tmp_path / "runs")
    cfg["name"] = name
    # 15 epochs of 8 global batches: enough for the tiny model to learn both tasks (a matrix that moves)
    cfg["train"].update(
        batch_size=batch_size,
        epochs=15,
        max_steps_per_task=max_steps,
        checkpoint_every=0,
        lr=1e-3,
        grad_accum_steps=accum,
    )
    cfg["migu"].update(ignore_padding=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(cmd: list[str]) -> None:
    env = launch_env(PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _result(run_dir: Path) -> tuple[list, dict[str, torch.Tensor], dict]:
    matrix = json.loads((run_dir / "matrix.json").read_text())["matrix"]
    weights = load_file(run_dir / "checkpoint" / "model.safetensors")
    state = json.loads((run_dir / "state.json").read_text())
    return matrix, weights, state


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_end_with_the_matrix_of_one(tmp_path, launcher):
    port = str(free_port())
    if launcher == "torchrun":
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        launch += ["--master_addr", "127.0.0.1", "--master_port", port, "-m", "migu.cli"]
    else:  # the shipped DDP config; without a GPU the engine asks accelerate for gloo on CPU
        config = Path(__file__).parents[2] / "examples" / "accelerate" / "ddp.yaml"
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
        launch += [
            "--num_processes",
            "2",
            "--mixed_precision",
            "no",
            "--main_process_port",
            port,
            "-m",
            "migu.cli",
        ]
    results = {}
    # short: 4 steps a task, weights to float rounding; long: 120 steps a task, the model learns both
    # tasks and the matrices must be equal (the weights then differ by float noise that 240 Adam
    # steps amplified: below 1e-3 = one step of lr on an AMD EPYC; on an Intel Xeon up to 17 steps of
    # lr in single elements, 26 of 1536 elements of one weight beyond 5 steps; so 5 steps of lr for
    # all but 5% of a tensor's elements, and 50 steps for those, far below a fault that moves rows).
    # accum: 2 micro-batches a step; the ranks skip the all-reduce of the first (no_sync) and must
    # still train as one process that accumulates the same examples.
    cases = [("short", 4, 1e-5, 1), ("long", None, 5e-3, 1)]
    if launcher == "torchrun":
        cases.append(("accum", 4, 1e-5, 2))
    for length, max_steps, atol, accum in cases:
        one = _config(tmp_path, f"one-{length}", batch_size=4 // accum, max_steps=max_steps, accum=accum)
        # per process: half the batch, so a step sees the same global examples
        two = _config(tmp_path, f"two-{length}", batch_size=2 // accum, max_steps=max_steps, accum=accum)
        _run([sys.executable, "-m", "migu.cli", "run", str(one), "--no-progress"])
        _run([*launch, "run", str(two), "--no-progress"])
        results[length] = (
            _result(tmp_path / "runs" / f"one-{length}"),
            _result(tmp_path / "runs" / f"two-{length}"),
        )
        (m1, w1, s1), (m2, w2, s2) = results[length]
        assert s2["status"] == "finished" and s1["optimizer_steps"] == s2["optimizer_steps"]
        assert m2 == m1, length
        assert w1.keys() == w2.keys()
        for key in w1:
            if length == "long":
                assert_close_up_to_adam_noise(
                    w2[key], w1[key], atol=atol, outlier_atol=10 * atol, max_outlier_fraction=0.05, msg=key
                )
            else:
                torch.testing.assert_close(w2[key], w1[key], rtol=1e-5, atol=atol, msg=f"{length}: {key}")
    (m1, _, s1), _ = results["long"]
    assert s1["optimizer_steps"] == 240
    assert m1[1] != m1[0] and m1[2] != m1[1], m1  # the model learned: the matrix comparison has teeth
