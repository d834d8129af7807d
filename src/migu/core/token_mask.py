"""How the padding mask reaches the magnitude hooks.

A forward pre-hook on the model being attached to reads the padding masks from the keyword
arguments of its call (``attention_mask``, ``decoder_attention_mask``, or ``labels != -100`` for a
decoder without a mask) and keeps them until that call returns. Each layer's hook picks the mask of
its token stream: ``"main"`` (encoder-only and decoder-only models), ``"encoder"`` or ``"decoder"``
(encoder-decoder models). A mask set by hand (``MiguHandle.set_token_mask``) wins over both.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TokenMasks"]

_IGNORE_INDEX = -100  # transformers' label value for positions without loss (padding of targets)


class TokenMasks:
    """The padding masks of the forward call in progress, per token stream."""

    def __init__(self) -> None:
        self._auto: dict[str, torch.Tensor] = {}
        self._manual: dict[str, torch.Tensor] = {}
        self._depth = 0  # nested calls of the root (e.g. generate() calling forward) keep the outer masks

    def set_manual(self, mask: torch.Tensor | None, stream: str) -> None:
        """Set (or clear, with ``None``) a mask that overrides the automatic one for ``stream``."""
        if mask is None:
            self._manual.pop(stream, None)
        else:
            self._manual[stream] = mask

    def get(self, stream: str) -> torch.Tensor | None:
        """The mask for ``stream`` (``"main"``, ``"encoder"`` or ``"decoder"``), or ``None``."""
        if stream in self._manual:
            return self._manual[stream]
        return self._auto.get(stream)

    def capture(self, module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        """Forward pre-hook (``with_kwargs=True``) on the root model."""
        self._depth += 1
        if self._depth > 1:
            return
        attention_mask = kwargs.get("attention_mask")
        if (
            attention_mask is not None and attention_mask.dim() == 2
        ):  # (B, T); 4-D masks are not padding masks
            self._auto["main"] = attention_mask
            self._auto["encoder"] = attention_mask
        decoder_mask = kwargs.get("decoder_attention_mask")
        labels = kwargs.get("labels")
        if decoder_mask is not None and decoder_mask.dim() == 2:
            self._auto["decoder"] = decoder_mask
        elif labels is not None and torch.is_tensor(labels) and labels.dim() == 2:
            # Seq2seq models shift labels into decoder inputs: positions labelled -100 are padding.
            self._auto["decoder"] = labels != _IGNORE_INDEX

    def release(self, module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        """Forward hook (``with_kwargs=True``) on the root model: forget this call's masks."""
        self._depth = max(0, self._depth - 1)
        if self._depth == 0:
            self._auto.clear()
