"""Faults a careful user meets: a crafted checkpoint, divergence, the training loss on record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_runs import run_killed, tiny_config

from migu.cli import main
from migu.engine.config import run_config_from_dict
from migu.engine.runner import TrainingDiverged, resume_run, run


class _Payload:
    """Unpickling this creates a file: what a crafted run directory could do on resume."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_crafted_pickle_in_a_run_directory_is_refused_not_executed(tmp_path, tiny_models_dir, tiny_benchmark):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.checkpoint_every": 2})
    run_dir = run_killed(cfg, tmp_path, after_steps=3)  # a checkpoint of task 1 at step 2, then killed
    marker = tmp_path / "code_ran"
    torch.save({"scheduler": _Payload(marker), "method": {}}, run_dir / "checkpoint" / "migu_state.pt")
    with pytest.raises(RuntimeError, match="holds more than tensors and plain data"):
        resume_run(run_dir, show_progress=False)
    assert not marker.exists()


def test_a_huge_learning_rate_stops_the_run_as_diverged(tmp_path, tiny_models_dir, tiny_benchmark, capsys):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.lr": 1e30})
    cfg["train"]["max_grad_norm"] = None  # nothing between the step and the weights
    with pytest.raises(TrainingDiverged, match="training diverged"):
        run(run_config_from_dict(cfg), show_progress=False)
    run_dir = tmp_path / "tiny"
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "diverged" and "train.lr=1e+30" in state["error"]
    assert "training diverged" in (run_dir / "log.txt").read_text()
    # The last good checkpoint stays: the one taken after step 1 of the first task.
    assert (run_dir / "checkpoint" / "model.safetensors").is_file()
    # The command line says it in one line and exits non-zero.
    (tmp_path / "again.yaml").write_text(json.dumps({**cfg, "name": "again"}))
    assert main(["run", str(tmp_path / "again.yaml"), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("migu run: training diverged") and "Traceback" not in err


def test_training_loss_is_logged_and_kept_per_task(tmp_path, tiny_models_dir, tiny_benchmark):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    result = run(run_config_from_dict(cfg), show_progress=False)
    losses = result.metrics["train_loss"]
    assert len(losses) == 2 and all(isinstance(x, float) and 0.0 < x < 10.0 for x in losses)
    log = (result.run_dir / "log.txt").read_text()
    assert "task 1/2 agnews step 3/3 loss" in log and "task 2/2 sst2 step 3/3 loss" in log
    assert json.loads((result.run_dir / "metrics.json").read_text())["train_loss"] == losses
