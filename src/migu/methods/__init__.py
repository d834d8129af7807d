"""Continual-learning methods (FT, LoRA, IncLoRA, O-LoRA, OSF, EWC, MTL, per-task FT, replay).

Each combines with the ``migu:`` block of a run. See :mod:`migu.methods.base` for the interface and
how to add your own method in one file.
"""

from migu.methods.base import (
    Method,
    MethodContext,
    available_methods,
    make_method,
    method_summaries,
    register,
)
from migu.methods.ewc import EWC
from migu.methods.joint import MTL, PerTaskFT
from migu.methods.lora import IncLoRA, LoRA
from migu.methods.moelora import MoELoRA
from migu.methods.olora import OLoRA
from migu.methods.osf import OSF

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
