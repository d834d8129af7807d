"""LoRA (one adapter through the whole sequence) and IncLoRA (a new adapter per task), on PEFT.

The paper's settings: r = 8, alpha = 32, dropout 0.05, on the attention's q and v (PEFT's default
targets for the architecture). An encoder's classification head is newly initialized, so it trains
too; generative models keep their LM head frozen.
"""

from __future__ import annotations

from torch import nn

from migu.methods.base import Method, register

__all__ = ["IncLoRA", "LoRA", "adapter_name", "unfreeze_heads"]

# Head modules of sequence-classification models (they train with LoRA: they start random).
_HEADS = ("classifier", "score")


def adapter_name(t: int) -> str:
    """PEFT adapter name of task ``t`` (IncLoRA)."""
    return f"task{t}"


def _lora_config(method: Method):
    from peft import LoraConfig

    c = method.config
    return LoraConfig(
        r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout, target_modules=c.lora_targets
    )


def unfreeze_heads(model: nn.Module) -> None:
    """Let a sequence-classification head train (it starts random) whatever the adapter froze."""
    for name, module in model.named_modules():
        if name.split(".")[-1] in _HEADS:
            for p in module.parameters():
                p.requires_grad_(True)


@register("lora")
class LoRA(Method):
    """One LoRA adapter trained through the whole sequence."""

    def setup(self, model: nn.Module) -> nn.Module:
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(self), adapter_name=adapter_name(0))
        unfreeze_heads(model)
        return model


@register("inclora")
class IncLoRA(Method):
    """A new LoRA adapter per task; earlier adapters stay active and frozen.

    All T adapters are created in :meth:`setup` (adapter k becomes active at task k), so that
    :meth:`begin_task` only switches which adapters run and train, and a resumed run rebuilds the
    same structure without consuming randomness.
    """

    changes_trainable_set = True

    def setup(self, model: nn.Module) -> nn.Module:
        from peft import get_peft_model

        config = _lora_config(self)
        model = get_peft_model(model, config, adapter_name=adapter_name(0))
        for t in range(1, len(self.tasks)):
            model.add_adapter(adapter_name(t), _lora_config(self))
        return model

    def begin_task(self, t: int, model: nn.Module) -> None:
        # Adapters 0..t run in every forward; only adapter t trains.
        model.base_model.set_adapter([adapter_name(k) for k in range(t + 1)])
        current = f".{adapter_name(t)}."
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.requires_grad_(current in name)
        unfreeze_heads(model)
