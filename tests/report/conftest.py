"""Tiny runs for the report tests: hand-written run folders (instant) and real sweeps (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tiny_runs import save_tiny_model, tiny_config, write_tiny_benchmark


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


@pytest.fixture(scope="session")
def tiny_sweeps(tiny_assets) -> dict[str, Path]:
    """FT+MIGU at two thresholds x two seeds, and FT at two seeds, through `migu sweep`."""
    from migu.cli import main

    cfg = str(tiny_assets["config"])
    args = ["--grid", "seed=[0,1]", "--no-progress"]
    assert (
        main(["sweep", cfg, "name=migu", "migu.enabled=true", "--grid", "migu.threshold=[0.3,0.7]", *args])
        == 0
    )
    assert main(["sweep", cfg, "name=ft", "migu.enabled=false", *args]) == 0
    return {"migu": tiny_assets["runs"] / "migu", "ft": tiny_assets["runs"] / "ft"}


@pytest.fixture(scope="session")
def tiny_report(tiny_sweeps, tmp_path_factory):
    """The report of both sweeps, with the checkpoint analyses."""
    from migu.report import ReportOptions, build_report

    out = tmp_path_factory.mktemp("report")
    return build_report([tiny_sweeps["ft"], tiny_sweeps["migu"]], out, ReportOptions(samples=8))
