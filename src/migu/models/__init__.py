"""Model loading helpers (offline packaged weights)."""

from migu.models.packaged import PackagedModelMissing, packaged_model_path

__all__ = ["PackagedModelMissing", "packaged_model_path"]
