"""Loading and checking configuration: YAML files, presets, ``key=value`` overrides, error messages.

- :mod:`migu.config.schema`: the machinery every schema shares (:class:`Schema`, :class:`Section`,
  :class:`ConfigError`, strict YAML, overrides, "did you mean" for unknown keys).
- :mod:`migu.config.presets`: the named configurations shipped with the package.

The schemas themselves sit beside what they configure: :mod:`migu.engine.config` for ``migu run``,
:mod:`migu.pretrain.config` for ``migu pretrain``, :mod:`migu.core.config` for MIGU itself.
"""

from migu.config.presets import available_presets, load_preset
from migu.config.schema import ConfigError, Schema, Section, load_yaml, parse_overrides

__all__ = [
    "ConfigError",
    "Schema",
    "Section",
    "available_presets",
    "load_preset",
    "load_yaml",
    "parse_overrides",
]
