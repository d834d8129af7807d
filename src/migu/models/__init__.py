"""Model loading helpers (offline packaged weights)."""

from migu.models.packaged import PackagedModelMissing, packaged_model_path
from migu.models.smollm2 import SmolLM2Missing, smollm2_path

__all__ = ["PackagedModelMissing", "SmolLM2Missing", "packaged_model_path", "smollm2_path"]
