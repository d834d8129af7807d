"""Which layers MIGU masks, and how each one's rows map to its output units.

A *unit* is one weight whose rows (output units) get a keep/mask decision: an ``nn.Linear``
weight ``(d_out, d_in)``, a transformers ``Conv1D`` weight ``(d_in, d_out)`` (columns are the output
units), or a PEFT LoRA factor: ``lora_A`` ``(r, d_in)`` ranked by A's own output and ``lora_B``
``(d_out, r)`` ranked by the LoRA layer's combined output ``W x + s B A x``. A *source* is the module
whose forward output gives the magnitudes; several units may share one (the B factors of several
adapters on one layer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from migu.core.config import MiguConfig

__all__ = ["MaskedUnit", "block_linear_names", "find_units", "is_linear_like", "lora_layer_types"]

# Module names that are heads or embeddings: left out of the "default" targets.
_HEAD_NAMES = frozenset({"lm_head", "classifier", "score", "pooler", "qa_outputs", "cls", "head", "proj_out"})
# Containers of attention that reads the *encoder's* tokens inside a decoder (cross-attention).
_CROSS_ATTENTION_NAMES = frozenset({"EncDecAttention", "encoder_attn", "crossattention", "cross_attn"})
_KEY_VALUE_NAMES = frozenset({"k", "v", "key", "value", "k_proj", "v_proj"})


def _conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # transformers is a dependency, but keep the core usable on bare torch
        return None
    return Conv1D


def lora_layer_types() -> tuple[type, ...]:
    """PEFT LoRA layer classes MIGU supports (dense ``lora.Linear``); empty when PEFT is absent."""
    try:
        from peft.tuners.lora.layer import Linear as LoraLinear
    except ImportError:
        return ()
    return (LoraLinear,)


def is_linear_like(module: nn.Module) -> bool:
    """True for ``nn.Linear`` and transformers ``Conv1D`` (GPT-2's linear with a transposed weight)."""
    conv1d = _conv1d_type()
    return isinstance(module, nn.Linear) or (conv1d is not None and isinstance(module, conv1d))


@dataclass(eq=False)
class MaskedUnit:
    """One weight whose output-unit rows are kept or masked together with its bias entries.

    Attributes:
        name: Qualified name of the module owning the weight (for LoRA: ``<layer>.lora_A.<adapter>``).
        weight: The parameter whose rows (``unit_dim``) are masked.
        bias: Its bias (one entry per output unit) or ``None``.
        unit_dim: Dimension of ``weight`` that indexes output units: 0 for ``(d_out, d_in)``
            layouts, 1 for ``Conv1D``'s ``(d_in, d_out)``.
        source: Qualified name of the module whose output gives the magnitudes.
    """

    name: str
    weight: nn.Parameter
    bias: nn.Parameter | None
    unit_dim: int
    source: str

    @property
    def num_units(self) -> int:
        return self.weight.shape[self.unit_dim]


def _name_matches(name: str, pattern: str) -> bool:
    """PEFT's ``target_modules`` rule: the whole name, or its tail after a dot."""
    return name == pattern or name.endswith("." + pattern)


def _is_head_or_embedding(name: str) -> bool:
    return any(p in _HEAD_NAMES or "embed" in p.lower() for p in name.split("."))


def _in_repeated_block(name: str) -> bool:
    """Inside a ModuleList of blocks (``layers.3``, ``h.0``, ``block.1``) and not a head/embedding."""
    return not _is_head_or_embedding(name) and any(p.isdigit() for p in name.split(".")[:-1])


def block_linear_names(model: nn.Module) -> list[str]:
    """Qualified names of the ``nn.Linear`` / ``Conv1D`` layers inside the repeated blocks (attention
    and FFN), trainable or not: what ``targets="default"`` selects, for other methods to reuse."""
    return [n for n, m in model.named_modules() if is_linear_like(m) and _in_repeated_block(n)]


def token_stream(name: str, encoder_prefixes: Sequence[str], decoder_prefixes: Sequence[str]) -> str:
    """Which token sequence a layer's output runs over, for padding-aware magnitudes.

    Returns ``"encoder"`` or ``"decoder"`` in encoder-decoder models (cross-attention key/value
    projections in the decoder read encoder tokens) and ``"main"`` otherwise.
    """
    parts = name.split(".")
    in_encoder = any(name == p or name.startswith(p + ".") for p in encoder_prefixes)
    in_decoder = any(name == p or name.startswith(p + ".") for p in decoder_prefixes)
    if in_decoder and any(p in _CROSS_ATTENTION_NAMES for p in parts) and parts[-1] in _KEY_VALUE_NAMES:
        return "encoder"
    if in_encoder:
        return "encoder"
    if in_decoder:
        return "decoder"
    return "main"


def _selected(name: str, config: MiguConfig, has_blocks: bool) -> bool:
    targets = config.targets
    if targets == "default":
        # A model without repeated blocks (one block, a small MLP): every non-head linear layer.
        chosen = _in_repeated_block(name) if has_blocks else not _is_head_or_embedding(name)
    elif targets == "all-linear":
        chosen = True
    elif isinstance(targets, str):
        chosen = re.fullmatch(targets, name) is not None
    else:
        chosen = any(_name_matches(name, t) for t in targets)
    return chosen and not any(_name_matches(name, e) for e in config.exclude)


def _candidate_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every LoRA layer and every linear layer not inside a LoRA layer."""
    lora_types = lora_layer_types()
    found: list[tuple[str, nn.Module]] = []
    lora_prefixes: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in lora_prefixes):
            continue  # base_layer / lora_A / lora_B of a LoRA layer: handled with the layer
        if lora_types and isinstance(module, lora_types):
            lora_prefixes.append(name)
            found.append((name, module))
        elif is_linear_like(module):
            found.append((name, module))
    return found


def _units_of(name: str, module: nn.Module) -> list[MaskedUnit]:
    """The trainable units of one layer (none when its weights are frozen)."""
    lora_types = lora_layer_types()
    if lora_types and isinstance(module, lora_types):
        units = []
        for adapter, lora_a in module.lora_A.items():
            lora_b = module.lora_B[adapter]
            if lora_a.weight.requires_grad:
                units.append(
                    MaskedUnit(
                        f"{name}.lora_A.{adapter}", lora_a.weight, lora_a.bias, 0, f"{name}.lora_A.{adapter}"
                    )
                )
            if lora_b.weight.requires_grad:
                # B's rows are the layer's output units: ranked by the combined output (source = layer).
                units.append(MaskedUnit(f"{name}.lora_B.{adapter}", lora_b.weight, lora_b.bias, 0, name))
        return units
    if not module.weight.requires_grad:
        return []
    bias = module.bias if module.bias is not None and module.bias.requires_grad else None
    unit_dim = 0 if isinstance(module, nn.Linear) else 1  # Conv1D stores (d_in, d_out)
    return [MaskedUnit(name, module.weight, bias, unit_dim, name)]


def find_units(model: nn.Module, config: MiguConfig) -> list[MaskedUnit]:
    """The units ``config.targets`` selects in ``model``.

    Args:
        model: Any module; PEFT models and DDP wrappers included.
        config: The MIGU configuration.

    Returns:
        The units in module order.

    Raises:
        ValueError: a target or exclude pattern matches no layer, or nothing trainable is selected.
    """
    layers = _candidate_layers(model)
    if not layers:
        raise ValueError(
            f"MIGU found no linear layer in {type(model).__name__}: it masks nn.Linear, transformers "
            "Conv1D and PEFT LoRA Linear layers. Attach it to a model that has some."
        )
    names = [n for n, _ in layers]
    patterns = [("target", p) for p in config.targets] if isinstance(config.targets, tuple) else []
    for kind, pattern in patterns + [("exclude", p) for p in config.exclude]:
        if not any(_name_matches(n, pattern) for n in names):
            raise ValueError(
                f"MIGU {kind} {pattern!r} matches no linear layer of {type(model).__name__}"
                f"{', so it excludes nothing (a misspelling?)' if kind == 'exclude' else ''}. A {kind} "
                f"matches a layer whose name equals it or ends with '.{pattern}'. Linear layers here "
                f"include: {_preview(names)}."
            )
    if isinstance(config.targets, str) and config.targets not in ("default", "all-linear"):
        if not any(re.fullmatch(config.targets, n) for n in names):
            raise ValueError(
                f"MIGU targets regex {config.targets!r} matches no linear layer name of "
                f"{type(model).__name__} (re.fullmatch on the qualified name). Names include: {_preview(names)}."
            )
    has_blocks = any(_in_repeated_block(n) for n in names)
    units = [
        u for name, module in layers if _selected(name, config, has_blocks) for u in _units_of(name, module)
    ]
    if not units:
        raise ValueError(
            f"MIGU selected no trainable layer in {type(model).__name__} with targets={config.targets!r}, "
            f"exclude={list(config.exclude)!r}: the selected layers are frozen (requires_grad=False) or "
            f"nothing matched. Linear layers here include: {_preview(names)}. Use targets='all-linear' "
            "or name the layers to mask."
        )
    return units


def _preview(names: Sequence[str], k: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")
