"""OSF: PEFT's orthogonal subspace fine-tuning (Nayak et al. 2025, "Sculpting Subspaces"), task by task.

Each target weight is split by SVD into its top ``k`` singular directions, frozen, and the rest,
trained, with gradients projected orthogonal to the frozen directions (``peft.tuners.osf``). Between
tasks the trained part is merged back into the weight and the SVD is recomputed on the new weight,
with a larger frozen share, as PEFT's guide for task sequences does ("budget allocation": task t of
T freezes a share t / T of each weight's rank, at least one direction). The layers are those of the
attention and FFN blocks (``method.lora_targets`` narrows them). The classification head of an
encoder is new and trains throughout, as with LoRA.

MIGU does not combine with OSF yet: OSF trains SVD factors, not rows of a weight (the run config
refuses ``method.name=osf`` with ``migu.enabled=true``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from migu.core.targets import block_linear_names
from migu.methods.base import Method, register
from migu.methods.lora import unfreeze_heads

__all__ = ["OSF", "preserved_fraction"]


def preserved_fraction(t: int, n_tasks: int) -> float:
    """Share of each weight's rank frozen while task ``t`` (0-based) of ``n_tasks`` trains: ``t / n``."""
    return t / n_tasks


def _target_names(model: nn.Module, patterns: Sequence[str] | None) -> list[str]:
    """The layers OSF splits: ``method.lora_targets`` (a name or its tail after a dot), or by default
    every linear layer of the attention and FFN blocks (MIGU's default targets)."""
    names = block_linear_names(model)
    if patterns:
        names = [n for n in names if any(n == p or n.endswith("." + p) for p in patterns)]
    if not names:
        raise ValueError(
            f"method.name=osf found no linear layer to split (method.lora_targets={patterns!r}); name layers "
            "of the attention or FFN blocks, e.g. method.lora_targets=[query,value]."
        )
    return names


def _own_storage(model: nn.Module) -> None:
    """Give every OSF factor its own storage: PEFT keeps slices of one SVD result, which share memory
    with each other, and safetensors (checkpoints) refuses to save tensors that share storage."""
    from peft.tuners.osf.layer import OSFLayer

    for layer in model.modules():
        if isinstance(layer, OSFLayer):
            for p in layer.osf_svd_params.parameters():
                p.data = p.data.clone()
            for name, buf in layer.named_buffers(recurse=True):
                if not name.startswith("base_layer"):
                    buf.data = buf.data.clone()


def _svd_buffers(model: nn.Module | None) -> dict[str, Any]:
    """Qualified name -> every OSF buffer (``_osf_*``) of ``model`` (empty before the first task)."""
    if model is None:
        return {}
    return {n: b for n, b in model.named_buffers() if "._osf_" in n}


@register("osf")
class OSF(Method):
    """Orthogonal subspace fine-tuning (PEFT OSF); the frozen subspace grows with each task."""

    changes_trainable_set = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tuner: Any = None
        self._model: nn.Module | None = None

    def begin_task(self, t: int, model: nn.Module) -> None:
        from peft import OSFConfig
        from peft.tuners.osf import OSFModel

        if self._tuner is not None:
            # Fold what the last task learned into the weights; the new SVD starts from them.
            self._tuner.merge_and_unload()
            self._tuner = None
        share = preserved_fraction(t, len(self.tasks))
        names = _target_names(model, self.config.lora_targets)
        modules = dict(model.named_modules())
        # One exact rank per layer (OSF needs at least one frozen direction), as a rank_pattern.
        ranks = {f"^{re.escape(n)}$": max(1, int(share * min(modules[n].weight.shape))) for n in names}
        config = OSFConfig(target_modules=names, effective_rank=1, rank_pattern=ranks)
        # The tuner replaces the target layers of ``model`` in place: the engine's model stays the same object.
        self._tuner = OSFModel(model, config, "default")
        self._model = model
        _own_storage(model)
        unfreeze_heads(model)

    # PEFT keeps the SVD of each weight (the frozen subspace and the starting factors) in buffers
    # that model checkpoints leave out. They depend on the weights when the task began, which a
    # resumed run cannot recompute, so they travel with the method's state.
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["osf_buffers"] = {k: v.detach().cpu().clone() for k, v in _svd_buffers(self._model).items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state.get("osf_buffers", {})
        current = _svd_buffers(self._model)
        if set(saved) != set(current):
            raise ValueError(
                "The checkpoint's OSF subspaces do not match this model's OSF layers "
                f"({len(saved)} saved, {len(current)} here); resume with the run's own config."
            )
        for name, tensor in current.items():
            tensor.data = saved[name].to(tensor.device, tensor.dtype).clone()
