"""Continual-learning methods (FT, LoRA, IncLoRA, O-LoRA, OSF, EWC, MTL, per-task FT, replay).

Each combines with the ``migu:`` block of a run. See :mod:`migu.methods.base` for the interface and
how to add your own method in one file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migu.data.task import Task
from migu.methods.base import Method, MethodContext, register, registered
from migu.methods.ewc import EWC
from migu.methods.joint import MTL, PerTaskFT
from migu.methods.lora import IncLoRA, LoRA
from migu.methods.moelora import MoELoRA
from migu.methods.olora import OLoRA
from migu.methods.osf import OSF

if TYPE_CHECKING:
    from migu.methods.config import MethodConfig

__all__ = [
    "EWC",
    "MTL",
    "MoELoRA",
    "IncLoRA",
    "LoRA",
    "Method",
    "MethodContext",
    "OLoRA",
    "OSF",
    "PerTaskFT",
    "available_methods",
    "make_method",
    "method_summaries",
    "register",
]


def available_methods() -> list[str]:
    """Names of the registered methods (the built-in ones and those of imported modules)."""
    return sorted(registered())


def method_summaries() -> dict[str, str]:
    """Method name -> the first line of its class docstring (for ``migu list``)."""
    return {n: (cls.__doc__ or "").strip().splitlines()[0] for n, cls in sorted(registered().items())}


def make_method(config: MethodConfig, tasks: list[Task], seed: int, num_processes: int = 1) -> Method:
    """The method named by ``config.name`` (importing ``config.module`` first when set).

    Raises:
        ValueError: unknown method name (the message lists the registered ones).
        ImportError: ``config.module`` cannot be imported.
    """
    if config.module:
        import importlib

        importlib.import_module(config.module)  # registers its methods (done at config time too)
    methods = registered()
    if config.name not in methods:
        raise ValueError(f"method.name={config.name!r} is not one of: {', '.join(sorted(methods))}.")
    return methods[config.name](config, tasks, seed, num_processes)
