"""The presets of ``migu run``: YAML files only (read by :mod:`migu.config.presets`)."""
