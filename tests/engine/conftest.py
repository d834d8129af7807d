"""Session fixtures for end-to-end engine runs; the builders live in tests/tiny_runs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_runs import save_tiny_model, write_tiny_benchmark


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> dict[str, Path]:
    """Saved tiny models by family name (session-wide: building them costs a few seconds)."""
    base = tmp_path_factory.mktemp("tiny_models")
    return {fam: save_tiny_model(base / fam, fam) for fam in ("bert", "t5", "llama")}


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory) -> Path:
    return write_tiny_benchmark(tmp_path_factory.mktemp("cl_benchmark"))
