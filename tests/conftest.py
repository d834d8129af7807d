"""Shared fixtures. Model factories live in tiny_models.py, the independent reference in reference.py."""

import pytest
from tiny_models import FACTORIES


@pytest.fixture(params=sorted(FACTORIES))
def family(request) -> str:
    """Each model family MIGU must support: BERT, GPT-2 (Conv1D), Llama, T5."""
    return request.param
