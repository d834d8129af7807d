"""MIGU inside the transformers ``Trainer``, as a ``TrainerCallback``.

The callback attaches at ``on_train_begin`` to the model and to the Trainer's optimizer, so the
masks are applied by the optimizer's own step pre-hook: right before every ``optimizer.step()``,
once per gradient-accumulation cycle, after DDP has reduced the gradients. Magnitudes recorded in
evaluation (no grad) are ignored.

Order with clipping: the Trainer clips (``max_grad_norm``) before ``on_pre_optimizer_step``, so the
norm is that of the unmasked gradient; masked rows are zero either way.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from migu.core.config import MiguConfig
from migu.core.handle import MiguHandle, attach

__all__ = ["MiguCallback"]


class MiguCallback(TrainerCallback):
    """Apply MIGU during ``Trainer.train()``.

    Args:
        config: The MIGU configuration (``MiguConfig()`` by default).
        enabled: Start enabled; set ``callback.handle.enabled`` later to pause (e.g. on a first task).

    Attributes:
        handle: The :class:`~migu.core.handle.MiguHandle` while training runs (``None`` before), kept
            after training so its last masks and magnitudes can be inspected.

    Example:
        >>> trainer = Trainer(model=model, args=args, train_dataset=ds,
        ...                   callbacks=[MiguCallback(MiguConfig(threshold=0.7))])  # doctest: +SKIP
    """

    def __init__(self, config: MiguConfig | None = None, enabled: bool = True) -> None:
        self.config = config if config is not None else MiguConfig()
        self.enabled = enabled
        self.handle: MiguHandle | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model=None, optimizer=None, **kwargs: Any):
        if model is None or optimizer is None:
            raise RuntimeError("MiguCallback needs the Trainer's model and optimizer at on_train_begin.")
        if self.handle is not None:
            self.handle.remove()  # a second train() call on the same trainer
        self.handle = attach(model, self.config, optimizer=optimizer)
        self.handle.enabled = self.enabled

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        if self.handle is not None:
            self.handle.remove()
