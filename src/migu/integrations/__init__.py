"""Integrations with training frameworks (transformers ``Trainer``; accelerate works through ``attach``)."""

from migu.integrations.trainer import MiguCallback

__all__ = ["MiguCallback"]
