"""Language-modelling batches of a corpus: causal LM for decoders, masked LM for encoders.

Each text is one example: tokenized with the model's special tokens, cut to ``block_size`` tokens
and padded to the longest text of its batch. Texts are not concatenated across documents: the
domain corpora here are short (tweets, review snippets, article leads), and one text per row keeps
a batch's magnitudes (MIGU) tied to whole documents.

- Causal LM: ``labels = input_ids`` with padded positions set to ``-100`` (the model shifts them).
  The padding comes from ``attention_mask``, not from ``input_ids == pad_token_id``: decoders often
  use EOS as their pad token, and a real EOS must stay a target.
- Masked LM: ``transformers.DataCollatorForLanguageModeling`` (15% of the non-special tokens;
  80% ``[MASK]``, 10% random, 10% unchanged; labels ``-100`` elsewhere), with its own seeded
  generator so that masking does not depend on, or disturb, the global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["LMBatcher", "causal_lm_batch", "tokenize_corpus"]

#: Label value ignored by the loss of every transformers model.
IGNORE_INDEX = -100


def tokenize_corpus(tokenizer: Any, texts: Sequence[str], block_size: int) -> list[list[int]]:
    """Token ids of each text, special tokens included, cut to ``block_size``.

    Args:
        tokenizer: A transformers tokenizer.
        texts: The corpus.
        block_size: Longest sequence in tokens.

    Returns:
        One list of ids per text (empty texts give just the special tokens).
    """
    enc = tokenizer(list(texts), truncation=True, max_length=block_size, add_special_tokens=True)
    return [list(ids) for ids in enc["input_ids"]]


def causal_lm_batch(rows: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """A right-padded causal-LM batch whose padding is never a target.

    Args:
        rows: Token ids per example (non-empty).
        pad_token_id: Id written at padded positions (ignored by attention and loss).

    Returns:
        ``input_ids``, ``attention_mask`` and ``labels``, each ``(B, T)`` with ``T`` the longest row.
    """
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("causal_lm_batch needs at least one row and no empty row.")
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        attention_mask[i, : len(r)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)  # (B, T)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class LMBatcher:
    """Turns token-id rows into training batches for one objective.

    Args:
        tokenizer: The model's tokenizer (masked LM needs a mask token; causal LM a pad token).
        objective: ``"causal-lm"`` or ``"masked-lm"``.
        mlm_probability: Share of tokens masked (masked LM).
        seed: Seed of the masking generator (masked LM); same seed, same masks.

    Raises:
        ValueError: unknown objective, or a tokenizer without the token the objective needs.
    """

    def __init__(
        self, tokenizer: Any, objective: str, *, mlm_probability: float = 0.15, seed: int = 0
    ) -> None:
        if objective not in ("causal-lm", "masked-lm"):
            raise ValueError(f"objective={objective!r}: allowed values are 'causal-lm', 'masked-lm'.")
        self.objective = objective
        self.pad_token_id = tokenizer.pad_token_id
        if self.pad_token_id is None:
            raise ValueError("The tokenizer has no pad token; set one (e.g. the EOS token) first.")
        self._collator = None
        if objective == "masked-lm":
            from transformers import DataCollatorForLanguageModeling

            if tokenizer.mask_token is None:
                raise ValueError(
                    "Masked LM needs a tokenizer with a mask token; this one has none (is it a decoder? "
                    "use model.family=decoder for causal LM)."
                )
            self._collator = DataCollatorForLanguageModeling(
                tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed
            )

    def __call__(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """The batch of ``rows``: ``input_ids``, ``attention_mask``, ``labels``, each ``(B, T)``."""
        if self._collator is None:
            return causal_lm_batch(rows, self.pad_token_id)
        batch = self._collator([{"input_ids": list(r)} for r in rows])
        return {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
