"""Load a model and its tokenizer from a packaged name, a local folder or a Hugging Face Hub id.

Three families, each trained and evaluated its own way by :mod:`migu.engine.families`:

- ``encoder`` (BERT, RoBERTa, MiniLM): a sequence-classification head over the union of all label
  strings of the task sequence;
- ``encoder-decoder`` (T5): the label text is the target;
- ``decoder`` (Llama, SmolLM2, GPT-2): the label text follows the prompt, loss on its tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from migu.models.packaged import PACKAGED_MODELS, packaged_model_path
from migu.models.smollm2 import SMOLLM2_NAMES, smollm2_path

__all__ = [
    "FAMILIES",
    "LoadedModel",
    "ModelNotFound",
    "detect_family",
    "load_model",
    "load_model_config",
    "resolve_model_source",
]

FAMILIES = ("encoder", "encoder-decoder", "decoder")

#: ``model.dtype`` name -> torch dtype
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotFound(OSError):
    """No packaged model, local folder or reachable Hub repository has this name."""


@dataclass
class LoadedModel:
    """A model ready for the engine.

    Attributes:
        model: The transformers model (classification head for encoders, LM head otherwise).
        tokenizer: Its tokenizer; decoders get ``pad_token = eos_token`` when they have none.
        family: One of :data:`FAMILIES`.
        source: Where the weights came from (a folder or a Hub id).
    """

    model: nn.Module
    tokenizer: Any
    family: str
    source: str


def resolve_model_source(name: str) -> str:
    """Folder or Hub id for ``name``: a packaged model name, then a local folder, then a Hub id.

    ``"SmolLM2-135M-Instruct"`` (or an alias in :data:`migu.models.smollm2.SMOLLM2_NAMES`) is the
    packaged SmolLM2, dequantized once into an fp32 cache folder (:func:`migu.models.smollm2.smollm2_path`).

    Args:
        name: e.g. ``"all-MiniLM-L6-v2"`` (packaged), ``"./my-model"`` (a folder) or ``"t5-small"``.

    Returns:
        A local folder path or the Hub id unchanged.

    Raises:
        migu.models.PackagedModelMissing: a packaged name whose package is not installed.
        ModelNotFound: ``name`` looks like a path (starts with ``.``, ``/`` or ``~``) that does not exist.
    """
    if name in PACKAGED_MODELS:
        return str(packaged_model_path(name))
    if name in SMOLLM2_NAMES:
        return str(smollm2_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFound(
                f"Model folder {path.resolve()} has no config.json; is it a transformers model?"
            )
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelNotFound(f"Model folder not found: {path.resolve()} (model.name={name!r}).")
    return name


def detect_family(config: Any) -> str:
    """The family of a transformers config: encoder-decoder, decoder (causal LM only) or encoder."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    kind = config.model_type
    # BERT-likes also have a causal-LM class; a model with a masked-LM class is an encoder.
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "decoder"
    return "encoder"


def load_model_config(name: str, gguf_file: str | None = None) -> tuple[str, Any]:
    """The model's source (folder or Hub id) and its transformers config, without the weights: the
    cheap check that a model exists (``migu run`` makes it before creating a run directory).

    Raises:
        ModelNotFound: nothing by that name (the message says where it looked).
    """
    from transformers import AutoConfig

    source = resolve_model_source(name)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return source, AutoConfig.from_pretrained(source, **extra)
    except OSError as err:
        raise ModelNotFound(
            f"Could not load model {name!r}. Looked for: a packaged model of that name (available: "
            f"{', '.join(PACKAGED_MODELS)}), a local folder {Path(name).expanduser().resolve()} (absent), "
            f"and the Hugging Face Hub id {name!r} ({err.__class__.__name__}: {str(err).splitlines()[0]}). "
            "Offline, use a packaged model or a local folder."
        ) from err


def load_model(
    name: str,
    *,
    family: str = "auto",
    dtype: str = "float32",
    num_labels: int | None = None,
    gguf_file: str | None = None,
) -> LoadedModel:
    """Load model and tokenizer for continual learning.

    Args:
        name: Packaged model name, local folder or Hub id (see :func:`resolve_model_source`).
        family: ``"auto"`` (from the config) or one of :data:`FAMILIES`.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        num_labels: Size of the classification head (encoders only; required for them).
        gguf_file: A GGUF file inside the folder to load (dequantized) instead of safetensors.

    Returns:
        The :class:`LoadedModel`.

    Raises:
        ModelNotFound: nothing by that name (the message says where it looked).
        ValueError: unknown family or dtype, or an encoder without ``num_labels``.
    """
    import transformers
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if family != "auto" and family not in FAMILIES:
        raise ValueError(
            f"model.family={family!r}: allowed values are 'auto', {', '.join(map(repr, FAMILIES))}."
        )
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"model.dtype={dtype!r}: allowed values are {', '.join(map(repr, TORCH_DTYPES))}.")
    source, config = load_model_config(name, gguf_file)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    fam = detect_family(config) if family == "auto" else family
    tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    kwargs: dict[str, Any] = {"dtype": TORCH_DTYPES[dtype], **extra}
    # The LOAD REPORT of a freshly initialized classification head is expected here, not a problem.
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # a bar per weight file is noise here
    try:
        if fam == "encoder":
            if not num_labels:
                raise ValueError("An encoder model needs num_labels (the size of the union label head).")
            model = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=num_labels, **kwargs
            )
        elif fam == "encoder-decoder":
            model = AutoModelForSeq2SeqLM.from_pretrained(source, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, family=fam, source=source)
