"""The method interface: what a continual-learning method may change in the engine's loop.

The engine (:mod:`migu.engine.runner`) calls, for a sequence of T tasks::

    model = method.setup(model)                 # once, before accelerate.prepare (e.g. add LoRA)
    for t in range(T):
        method.begin_task(t, model)             # structure and trainability for task t
        params = method.trainable_parameters(model)   # a fresh AdamW over these
        for batch of method.training_items(t):  # (task, record) pairs, mixed by the engine
            loss = family loss + method.penalty(model, t)
        method.end_task(t, model, ctx)          # data-dependent state (Fisher, replay buffer)
        evaluate every task

Resume: ``begin_task(k, model)`` is called again for k = 0..t before the checkpoint is loaded, so it
must depend only on the model's structure and k (no data, no randomness that the checkpoint does not
restore); everything ``end_task`` learns goes in :meth:`Method.state_dict`, saved with checkpoints.

MIGU is not a method: the ``migu:`` block masks the gradient of whatever the method trains.

Adding your own method (one file; run with ``method.name=mine method.module=my_pkg.my_method``)::

    from migu.methods import Method, register

    @register("mine")
    class Mine(Method):
        def penalty(self, model, t):
            return 1e-4 * sum(p.pow(2).sum() for p in self.trainable_parameters(model))

Settings of its own (``method.settings.strength=0.01``, checked when the config is built, with the
same messages as every other key)::

    from dataclasses import dataclass
    from migu.config import Section

    @register("mine")
    class Mine(Method):
        @dataclass
        class Settings(Section):
            _prefix = "method.settings"
            strength: float = 1e-4

            def _validate(self):
                self._range("strength", 0)

        def penalty(self, model, t):
            return self.settings.strength * sum(p.pow(2).sum() for p in self.trainable_parameters(model))
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from migu.data.task import Item, Task

if TYPE_CHECKING:
    from migu.methods.config import MethodConfig

__all__ = ["Family", "Method", "MethodContext", "register", "registered"]

_REGISTRY: dict[str, type[Method]] = {}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a :class:`Method` available as ``method.name=<name>``."""

    def deco(cls: type[Method]) -> type[Method]:
        old = _REGISTRY.get(name)
        # The same class of a module imported again (a notebook's reload) replaces itself.
        reloaded = old is not None and (old.__module__, old.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if old is not None and old is not cls and not reloaded:
            raise ValueError(
                f"A method named {name!r} is already registered ({_REGISTRY[name].__qualname__})."
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def registered() -> dict[str, type[Method]]:
    """Name -> class of every method registered so far (import :mod:`migu.methods` for the built-in
    ones; :func:`migu.methods.available_methods` does)."""
    return dict(_REGISTRY)


class Family(Protocol):
    """What a method needs of a model family (:mod:`migu.engine.families` implements it): batches
    and the training loss, so that a method can compute gradients on its own (EWC's Fisher)."""

    def training_batch(self, items: Sequence[Item]) -> dict[str, torch.Tensor]: ...

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...


@dataclass
class MethodContext:
    """What ``end_task`` may use: the family (to build batches and losses) and the device."""

    family: Family
    device: torch.device


class Method:
    """Plain fine-tuning of every weight; the base of all methods (override what you change).

    Args:
        config: The ``method:`` block of the run configuration.
        tasks: The task sequence.
        seed: The run's seed (for sampling, e.g. of a replay buffer).
        num_processes: Data-parallel processes; methods that change the set of trained parameters
            during a run raise for more than one.
    """

    name = "ft"
    #: True for methods whose trainable parameters change between tasks (not DDP-compatible).
    changes_trainable_set = False
    #: The method's own settings: a dataclass deriving from :class:`migu.config.Section` (set
    #: ``_prefix = "method.settings"`` for messages), filled from ``method.settings`` of the run
    #: config and checked when the config is built. ``None``: no settings of its own.
    Settings: ClassVar[type | None] = None

    def __init__(self, config: MethodConfig, tasks: list[Task], seed: int, num_processes: int = 1) -> None:
        self.config = config
        #: An instance of :attr:`Settings` (``None`` when the method declares none).
        self.settings = self.Settings(**config.settings) if self.Settings is not None else None
        self.tasks = tasks
        self.seed = seed
        self.replay: list[Item] = []  # (task, record) pairs of finished tasks
        if self.changes_trainable_set and num_processes > 1:
            raise ValueError(
                f"method.name={self.name!r} changes which parameters train from task to task, which DDP "
                "does not allow; run it in one process (ft, lora, ewc, mtl and replay run on many)."
            )

    # ------------------------------------------------------------------ hooks the engine calls
    def setup(self, model: nn.Module) -> nn.Module:
        """Change the model once before training (e.g. wrap it with adapters); returns the model."""
        return model

    def begin_task(self, t: int, model: nn.Module) -> None:
        """Prepare task ``t`` (structure and trainability only; see the module docstring)."""

    def trainable_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The parameters the optimizer of the current task trains."""
        return [p for p in model.parameters() if p.requires_grad]

    def training_items(self, t: int) -> list[Item]:
        """Training examples of task ``t``: its records plus the replay buffer."""
        task = self.tasks[t]
        return [(task, r) for r in task.train] + list(self.replay)

    def penalty(self, model: nn.Module, t: int) -> torch.Tensor | None:
        """A term added to the training loss of every micro-batch (None: nothing)."""
        return None

    def end_task(self, t: int, model: nn.Module, ctx: MethodContext) -> None:
        """After training task ``t``: add its share to the replay buffer (``replay_fraction``)."""
        share = self.config.replay_fraction
        if share > 0:
            task = self.tasks[t]
            k = max(1, round(share * len(task.train)))
            rng = random.Random(f"migu.replay:{self.seed}:{t}")
            self.replay.extend((task, r) for r in rng.sample(task.train, min(k, len(task.train))))

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """What ``end_task`` learned, for checkpoints (tensors on CPU)."""
        names = [t.name for t in self.tasks]
        return {"replay": [(names.index(task.name), r) for task, r in self.replay]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.replay = [(self.tasks[i], r) for i, r in state.get("replay", [])]


register("ft")(Method)
