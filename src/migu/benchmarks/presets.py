"""Named configurations: the paper's hyperparameters and CPU-sized versions for a 2-core machine.

A preset is a YAML file in ``migu/benchmarks/presets/``; ``migu run --preset NAME [key=value ...]``
starts from it (``migu list`` shows them). The paper's presets need a T5-large (or another model
given with ``model.name=...``) and a GPU; the ``cpu-`` presets run all-MiniLM-L6-v2 with sample caps.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

__all__ = ["available_presets", "load_preset"]


def _folder():
    return resources.files("migu.benchmarks") / "presets"


def available_presets() -> dict[str, str]:
    """Preset name -> its one-line description (the YAML file's first comment line)."""
    out = {}
    for entry in sorted(_folder().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            first = entry.read_text(encoding="utf-8").splitlines()[0]
            out[entry.name[: -len(".yaml")]] = first.lstrip("# ").strip()
    return out


def load_preset(name: str) -> dict[str, Any]:
    """The preset ``name`` as a config mapping.

    Raises:
        ValueError: unknown preset (the message lists the available ones).
    """
    presets = available_presets()
    if name not in presets:
        raise ValueError(f"preset {name!r} is not one of: {', '.join(presets)}.")
    from migu.engine.config import load_yaml

    return load_yaml((_folder() / f"{name}.yaml").read_text(encoding="utf-8"))
