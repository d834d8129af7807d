"""Named configurations shipped as YAML files in the package.

``migu run --preset NAME`` starts from a file of ``migu/presets/`` (``migu list`` shows them): the
paper's hyperparameters (a T5-large and a GPU) and CPU-sized versions for a 2-core machine
(all-MiniLM-L6-v2 with sample caps). ``migu pretrain --preset NAME`` reads ``migu/pretrain/presets/``.
A preset's description is the first sentence of the file's leading comment block.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from migu.config.schema import ConfigError, load_yaml

__all__ = [
    "DEFAULT_PRESET",
    "RUN_PRESETS",
    "available_presets",
    "load_preset",
    "preset_descriptions",
    "read_preset",
]

#: The package that holds the presets of ``migu run``.
RUN_PRESETS = "migu.presets"
#: The preset ``migu run`` runs when given no config file (the README's main job).
DEFAULT_PRESET = "default"


def _folder(package: str) -> Traversable:
    return resources.files(package)


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


def preset_descriptions(package: str) -> dict[str, str]:
    """Preset name -> its one-line description, for the YAML files of ``package``."""
    out = {}
    for entry in sorted(_folder(package).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = _summary(entry.read_text(encoding="utf-8"))
    return out


def read_preset(package: str, name: str, *, listing: str = "`migu list`") -> dict[str, Any]:
    """The preset ``name`` of ``package`` as a config mapping.

    Raises:
        ConfigError: unknown preset (the message lists the available ones and where to see them).
    """
    presets = preset_descriptions(package)
    if name not in presets:
        raise ConfigError(f"preset {name!r} is not one of: {', '.join(presets)} (see {listing}).")
    return load_yaml((_folder(package) / f"{name}.yaml").read_text(encoding="utf-8")) or {}


def available_presets() -> dict[str, str]:
    """The presets of ``migu run``: name -> one-line description."""
    return preset_descriptions(RUN_PRESETS)


def load_preset(name: str) -> dict[str, Any]:
    """The ``migu run`` preset ``name`` as a config mapping (see :func:`read_preset`)."""
    return read_preset(RUN_PRESETS, name)
