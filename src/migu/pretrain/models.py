"""Models of continual pre-training: a language model to pre-train, a classifier to fine-tune.

Phase 1 loads the model with its LM head: ``AutoModelForCausalLM`` for decoders,
``AutoModelForMaskedLM`` for encoders. A checkpoint without that head (all-MiniLM-L6-v2 is a
sentence encoder: no MLM head) gets a randomly initialised one; pre-training then starts by
fitting a random head, and :func:`load_language_model` warns about it.

Phase 2 loads ``AutoModelForSequenceClassification`` from the base model (the reference row) or a
pre-trained checkpoint. Two things keep the rows comparable, so that the table measures
pre-training and nothing else:

- the classification head starts from the same seeded values in every row (:func:`init_head`);
- weights that a masked-LM checkpoint does not have but the base model does (BERT's pooler:
  ``BertForMaskedLM`` has none) are copied from the base model instead of starting random.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from migu.models.loading import TORCH_DTYPES, detect_family

__all__ = [
    "OBJECTIVES",
    "LanguageModel",
    "init_head",
    "load_classifier",
    "load_language_model",
    "model_family",
    "quiet_transformers",
]

logger = logging.getLogger("migu")

#: family -> pre-training objective
OBJECTIVES = {"decoder": "causal-lm", "encoder": "masked-lm"}


@dataclass
class LanguageModel:
    """A model with its LM head, ready for phase 1.

    Attributes:
        model: ``*ForCausalLM`` (decoders) or ``*ForMaskedLM`` (encoders).
        tokenizer: Its tokenizer; decoders without a pad token get ``pad_token = eos_token``.
        family: ``"decoder"`` or ``"encoder"``.
        objective: ``"causal-lm"`` or ``"masked-lm"``.
        new_weights: Names of weights the checkpoint did not have (initialised randomly).
    """

    model: nn.Module
    tokenizer: Any
    family: str
    objective: str
    new_weights: list[str]


@contextmanager
def quiet_transformers():
    """Silence transformers' load reports (a fresh head is expected here) and weight-file bars."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def model_family(source: str, family: str = "auto", gguf_file: str | None = None) -> str:
    """``"encoder"`` or ``"decoder"`` for the model at ``source`` (``family`` wins unless ``"auto"``).

    Raises:
        ValueError: an encoder-decoder model (no continual pre-training objective for it here).
    """
    from transformers import AutoConfig

    if family != "auto":
        return family
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    fam = detect_family(AutoConfig.from_pretrained(source, **extra))
    if fam not in OBJECTIVES:
        raise ValueError(
            f"{source} is an {fam} model; continual pre-training supports encoders (masked LM) and "
            "decoders (causal LM)."
        )
    return fam


def _tokenizer(source: str, gguf_file: str | None) -> Any:
    from transformers import AutoTokenizer

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(source, **extra)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_language_model(
    source: str, *, family: str = "auto", dtype: str = "float32", gguf_file: str | None = None
) -> LanguageModel:
    """Load ``source`` with its LM head for continual pre-training.

    Args:
        source: A folder or Hub id (see :func:`migu.models.loading.resolve_model_source`).
        family: ``"auto"``, ``"encoder"`` or ``"decoder"``.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        gguf_file: A GGUF file inside ``source`` to load instead of safetensors.

    Returns:
        The :class:`LanguageModel`, in train mode. When the checkpoint lacks LM-head weights a
        ``UserWarning`` names them: the head starts random (e.g. all-MiniLM-L6-v2).
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    fam = model_family(source, family, gguf_file)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    cls = AutoModelForMaskedLM if fam == "encoder" else AutoModelForCausalLM
    with quiet_transformers():
        model, info = cls.from_pretrained(
            source, dtype=TORCH_DTYPES[dtype], output_loading_info=True, **extra
        )
    tok = _tokenizer(source, gguf_file)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    new = sorted(info.get("missing_keys", ()))
    if new:
        shown = ", ".join(new[:6]) + (f" and {len(new) - 6} more" if len(new) > 6 else "")
        message = (
            f"{source} has no weights for {shown}: they start random. For an encoder this is its "
            "masked-LM head (e.g. all-MiniLM-L6-v2 ships none), so pre-training first fits a random "
            "head and its early gradients are noise for the encoder; see docs/pretraining.md."
        )
        warnings.warn(message, UserWarning, stacklevel=2)
        logger.warning(message)
    model.train()
    return LanguageModel(model=model, tokenizer=tok, family=fam, objective=OBJECTIVES[fam], new_weights=new)


def head_parameter_names(model: nn.Module) -> list[str]:
    """Parameters outside the base model (``model.base_model_prefix``): the task head."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    return [n for n, _ in model.named_parameters() if not n.startswith(prefix)]


def init_head(model: nn.Module, seed: int) -> None:
    """Seeded, model-independent init of the classification head: ``N(0, initializer_range)``
    matrices, zero vectors. The same seed gives every row of the table the same starting head."""
    g = torch.Generator().manual_seed(seed)
    std = getattr(model.config, "initializer_range", 0.02)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(head_parameter_names(model)):
            p = params[name]
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).mul_(std).to(p.dtype))
            else:
                p.zero_()


def load_classifier(
    source: str,
    *,
    num_labels: int,
    base_source: str,
    seed: int,
    dtype: str = "float32",
    gguf_file: str | None = None,
) -> tuple[nn.Module, Any]:
    """``AutoModelForSequenceClassification`` from ``source`` for phase 2, comparable across rows.

    Args:
        source: The base model or a pre-trained checkpoint folder.
        num_labels: Classes of the end task.
        base_source: The un-pre-trained model: body weights missing from ``source`` come from it.
        seed: Seed of the head's init (:func:`init_head`).
        dtype: Weight dtype.
        gguf_file: GGUF file inside ``source`` (only when ``source`` is the base model).

    Returns:
        ``(model, tokenizer)``; the model has ``config.pad_token_id`` set (decoders classify from
        the last non-pad token).
    """
    from transformers import AutoModelForSequenceClassification

    extra = {"gguf_file": gguf_file} if gguf_file and source == base_source else {}
    kwargs = {"num_labels": num_labels, "dtype": TORCH_DTYPES[dtype]}
    with quiet_transformers():
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, output_loading_info=True, **kwargs, **extra
        )
    heads = set(head_parameter_names(model))
    body_missing = sorted(set(info.get("missing_keys", ())) - heads)
    if body_missing and source != base_source:
        base_extra = {"gguf_file": gguf_file} if gguf_file else {}
        with quiet_transformers():
            base, base_info = AutoModelForSequenceClassification.from_pretrained(
                base_source, output_loading_info=True, **kwargs, **base_extra
            )
        have = set(base.state_dict()) - set(base_info.get("missing_keys", ()))
        base_state, state = base.state_dict(), model.state_dict()
        with torch.no_grad():
            for name in body_missing:
                if name in have:
                    state[name].copy_(base_state[name])
        copied = [n for n in body_missing if n in have]
        if copied:
            logger.info(
                "%s: %s taken from the base model (absent from the checkpoint)", source, ", ".join(copied)
            )
        del base
    init_head(model, seed)
    tok = _tokenizer(source, extra.get("gguf_file"))
    model.config.pad_token_id = tok.pad_token_id
    return model, tok
