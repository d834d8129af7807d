"""Named configurations: the paper's hyperparameters and CPU-sized versions for a 2-core machine.

A preset is a YAML file in ``migu/benchmarks/presets/``; ``migu run --preset NAME [key=value ...]``
starts from it (``migu list`` shows them). The paper's presets need a T5-large (or another model
given with ``model.name=...``) and a GPU; the ``cpu-`` presets run all-MiniLM-L6-v2 with sample caps.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

__all__ = ["available_presets", "load_preset"]


def _folder():
    return resources.files("migu.benchmarks") / "presets"


def _summary(text: str, width: int = 100) -> str:
    """The first sentence of the file's leading comment block, cut to ``width`` with an ellipsis."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    words = " ".join(lines)
    sentence = re.split(r"(?<=\.)\s", words, maxsplit=1)[0]
    return sentence if len(sentence) <= width else sentence[: width - 1].rstrip() + "…"


def available_presets() -> dict[str, str]:
    """Preset name -> its one-line description (the first sentence of the file's leading comment)."""
    out = {}
    for entry in sorted(_folder().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = _summary(entry.read_text(encoding="utf-8"))
    return out


def load_preset(name: str) -> dict[str, Any]:
    """The preset ``name`` as a config mapping.

    Raises:
        ConfigError: unknown preset (the message lists the available ones); a ``ValueError``.
    """
    from migu.engine.config import ConfigError, load_yaml

    presets = available_presets()
    if name not in presets:
        raise ConfigError(f"preset {name!r} is not one of: {', '.join(presets)} (see `migu list`).")

    return load_yaml((_folder() / f"{name}.yaml").read_text(encoding="utf-8"))
