"""The presets of ``migu pretrain``: YAML files only (read by :mod:`migu.config.presets`)."""
