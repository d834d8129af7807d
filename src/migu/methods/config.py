"""The settings of the continual-learning methods: the ``method`` section of a run config.

It lives beside the methods it configures, so that :mod:`migu.methods` needs nothing from the engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from migu.config.schema import ConfigError, Section, coerce, nonempty, type_error, unknown_key

__all__ = ["MethodConfig"]


@dataclass
class MethodConfig(Section):
    """The continual-learning method of a run (see :mod:`migu.methods`); MIGU combines with any.

    Args:
        name: ``ft``, ``lora``, ``inclora``, ``olora``, ``osf``, ``ewc``, ``mtl``, ``ft_per_task``, or a
            method registered by ``module``. Replay: set ``replay_fraction`` (FTReplay =
            ``ft`` + replay, LoRAReplay = ``lora`` + replay; the paper keeps 2% of each task).
        module: Import path of a module that registers your own method (``migu.methods.register``).
        lora_r: LoRA rank (paper: 8).
        lora_alpha: LoRA alpha (paper: 32).
        lora_dropout: LoRA dropout (paper: 0.05).
        lora_targets: Layer names LoRA (and OSF) adapts; ``None``: PEFT's default for the architecture.
        olora_lambda1: Weight of O-LoRA's orthogonality loss ``sum |A_old A_new^T|``.
        olora_lambda2: Weight of O-LoRA's L2 term on the new adapter (O-LoRA: sum of the L2 norms).
        olora_task_lambda1: Per task name, a ``lambda1`` replacing ``olora_lambda1`` while that task
            trains (O-LoRA's long-sequence scripts set one per task).
        replay_fraction: Share of each finished task's training set kept for replay, in ``[0, 1]``.
        ewc_lambda: Weight of the EWC penalty ``lambda/2 sum_k sum_i F_ki (theta_i - theta*_ki)^2``.
        ewc_samples: Training examples per task used to estimate the diagonal Fisher.
        settings: The settings of a method that declares its own (a ``Settings`` dataclass on the
            method class, as a method of your own can: see :mod:`migu.methods.base`), e.g.
            ``method.settings.strength=0.5``; checked against that dataclass. The built-in methods'
            settings are the keys above.
    """

    _prefix: ClassVar[str] = "method"

    name: str = "ft"
    module: str | None = None
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None
    olora_lambda1: float = 0.5
    olora_lambda2: float = 0.0
    olora_task_lambda1: dict[str, float] = field(default_factory=dict)
    replay_fraction: float = 0.0
    ewc_lambda: float = 100.0
    ewc_samples: int = 64
    settings: dict[str, Any] = field(default_factory=dict)

    def _validate(self) -> None:
        nonempty(self._key("name"), self.name)
        self._check_settings(self._method_class())
        self._range("lora_r", 1)
        self._range("lora_alpha", 1)
        self._range("lora_dropout", 0, 1)
        for name in ("olora_lambda1", "olora_lambda2", "ewc_lambda"):
            self._range(name, 0)
        if not 0.0 <= self.replay_fraction <= 1.0:
            raise ConfigError(
                f"{self._key('replay_fraction')}={self.replay_fraction!r} is out of range: it must be in [0, 1]."
            )
        self._range("ewc_samples", 1)
        if not isinstance(self.olora_task_lambda1, Mapping):
            raise type_error(
                self._key("olora_task_lambda1"), self.olora_task_lambda1, "a mapping of task -> lambda1"
            )
        checked = {}
        for task, value in self.olora_task_lambda1.items():
            key = f"{self._key('olora_task_lambda1')}.{task}"
            number = coerce(key, value, float)
            if number < 0:
                raise ConfigError(f"{key}={value!r} is out of range: it must be >= 0.")
            checked[str(task)] = number
        self.olora_task_lambda1 = checked

    def _method_class(self) -> type:
        """The registered class of ``name`` (importing ``module`` first, which registers it)."""
        from migu.methods import available_methods, registered  # the package registers the built-ins

        if self.module is not None:
            nonempty(self._key("module"), self.module)
            try:
                importlib.import_module(self.module)
            except ImportError as err:
                raise ConfigError(
                    f"{self._key('module')}={self.module!r} cannot be imported: {err}."
                ) from None
        cls = registered().get(self.name)
        if cls is None:
            raise ConfigError(
                f"{self._key('name')}={self.name!r} is not one of: {', '.join(available_methods())} "
                "(or set method.module to the module that registers it)."
            )
        return cls

    def _check_settings(self, cls: type) -> None:
        if not isinstance(self.settings, Mapping):
            raise type_error(self._key("settings"), self.settings, "a mapping of setting -> value")
        declared = getattr(cls, "Settings", None)
        if declared is None:
            if self.settings:
                raise ConfigError(
                    f"{self._key('settings')}: method {self.name!r} declares no settings of its own, got "
                    f"{', '.join(map(str, self.settings))}. The built-in methods take the method.* keys."
                )
            return
        for key in self.settings:
            if key not in {f.name for f in fields(declared)}:
                raise unknown_key(f"{self._key('settings')}.{key}", declared)
        declared(**self.settings)  # its own types, ranges and messages
