"""Fixtures of the continual pre-training tests: tiny model folders and two tiny user domains."""

from __future__ import annotations

from pathlib import Path

import pytest
from pretrain_helpers import write_domains
from tiny_runs import save_tiny_model


@pytest.fixture(scope="session")
def pretrain_models(tmp_path_factory) -> dict[str, Path]:
    """Saved tiny models: ``llama`` (causal LM) and ``bert`` (a BertModel: its MLM head starts random)."""
    base = tmp_path_factory.mktemp("pretrain_models")
    return {fam: save_tiny_model(base / fam, fam) for fam in ("bert", "llama")}


@pytest.fixture(scope="session")
def tiny_domains(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """(data_dir, data.files entries) of the two tiny domains."""
    root = tmp_path_factory.mktemp("pretrain_domains")
    return root, write_domains(root)
