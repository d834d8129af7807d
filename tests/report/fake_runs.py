"""Hand-written run directories, as `migu run` leaves them, for tests that need no training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def write_fake_run(
    run_dir: Path,
    config: dict[str, Any],
    matrix: list[list[float | None]],
    *,
    tasks: tuple[str, ...] = ("a", "b"),
    status: str = "finished",
    metrics: dict[str, Any] | None = None,
) -> Path:
    """A run directory as `migu run` leaves it, without training (no checkpoint)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "state.json").write_text(json.dumps({"status": status, "task": len(matrix) - 1}))
    rows = ["before training"] + [f"after {t}" for t in tasks][: len(matrix) - 1]
    (run_dir / "matrix.json").write_text(
        json.dumps({"metric": "classify", "tasks": list(tasks), "rows": rows, "matrix": matrix})
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics or {"final_average_accuracy": 0.5}))
    return run_dir
