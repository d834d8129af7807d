"""Reference points beside the continual methods: multi-task learning and one model per task.

- ``mtl``: all tasks' training data mixed, learned during the first task's phase (later phases
  train nothing). Every row after row 0 is the multi-task model: the upper bound of the paper.
- ``ft_per_task``: before each task the weights go back to the pretrained ones, so model t has seen
  task t only. The figure to read is the accuracy right after learning (``learning_accuracy``,
  the diagonal of R): each task on its own model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from migu.data.task import Task
from migu.methods.base import Method, register

__all__ = ["MTL", "PerTaskFT"]


@register("mtl")
class MTL(Method):
    """Multi-task learning on all tasks at once (upper bound)."""

    def training_items(self, t: int) -> list[tuple[Task, dict]]:
        if t > 0:
            return []
        return [(task, r) for task in self.tasks for r in task.train]


@register("ft_per_task")
class PerTaskFT(Method):
    """Fine-tuning from the pretrained weights for each task (one model per task)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._initial: dict[str, torch.Tensor] | None = None

    def setup(self, model: nn.Module) -> nn.Module:
        self._initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model

    def begin_task(self, t: int, model: nn.Module) -> None:
        if t > 0 and self._initial is not None:
            model.load_state_dict(self._initial)
