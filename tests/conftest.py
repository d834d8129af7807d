"""Shared fixtures. Model factories live in tiny_models.py, the independent reference in reference.py."""

from pathlib import Path

import pytest
import yaml
from tiny_models import FACTORIES
from tiny_runs import save_tiny_model, tiny_config, write_tiny_benchmark


@pytest.fixture(params=sorted(FACTORIES))
def family(request) -> str:
    """Each model family MIGU must support: BERT, GPT-2 (Conv1D), Llama, T5."""
    return request.param


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> dict[str, Path]:
    """A tiny BERT folder, a 2-task benchmark folder and a base config file (2 steps per task)."""
    base = tmp_path_factory.mktemp("report_assets")
    model = save_tiny_model(base / "bert", "bert")
    bench = write_tiny_benchmark(base / "bench")
    cfg = tiny_config(
        model, bench, base / "runs", **{"train.max_steps_per_task": 2, "train.checkpoint_every": 0}
    )
    cfg.pop("name")
    cfg["eval"]["save_predictions"] = False
    path = base / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return {"model": model, "bench": bench, "config": path, "runs": base / "runs"}
