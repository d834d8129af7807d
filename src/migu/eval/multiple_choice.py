"""Multiple-choice accuracy of a decoder by log-likelihood, as lm-evaluation-harness scores it.

For every choice of a :class:`migu.data.multiple_choice.MCItem` the model scores the sum of the
log-probabilities of the continuation's tokens given the context. The predicted choice is the one
with the highest sum (``acc``) or the highest sum per character of the choice (``acc_norm``).

Tokenization follows lm-eval's ``HFLM._encode_pair`` so that a token spanning the context /
continuation boundary is handled the same way:

1. trailing whitespace of the context moves to the front of the continuation;
2. ``context + continuation`` and ``context`` are tokenized without special tokens;
3. the continuation tokens are the whole sequence's tokens after the first ``len(context tokens)``.

An empty context becomes the BOS token (EOS where there is none), and the continuation is tokenized
on its own. The model reads ``(context + continuation)[:-1]``, cut from the left to
``max_length`` tokens; the log-probability of continuation token ``k`` is read at the position
before it. Requests are batched longest first with right padding: with a causal mask the real
positions never attend to the padding, and the default position ids (0, 1, ...) stay correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from migu.data.multiple_choice import MCItem

__all__ = ["choice_length", "encode_pair", "multiple_choice_accuracy"]


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text without special tokens (lm-eval's ``tok_encode`` for causal models)."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _prefix_token_id(tokenizer: Any) -> int:
    """The token an empty context is replaced with: BOS, else EOS (lm-eval's ``prefix_token_id``)."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError("An item has an empty context, and the tokenizer has neither a BOS nor an EOS token.")


def _move_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """Trailing whitespace of the context goes to the front of the continuation (lm-eval)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def _encode_requests(tokenizer: Any, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """:func:`encode_pair` for many pairs, with one batched tokenizer call for speed."""
    out: list[tuple[list[int], list[int]]] = [([], [])] * len(pairs)
    texts: list[str] = []
    slots: list[int] = []
    for index, (context, continuation) in enumerate(pairs):
        if context == "":
            out[index] = ([_prefix_token_id(tokenizer)], _encode(tokenizer, [continuation])[0])
            continue
        context, continuation = _move_trailing_space(context, continuation)
        texts += [context + continuation, context]
        slots.append(index)
    encoded = _encode(tokenizer, texts)
    for k, index in enumerate(slots):
        whole, ctx = encoded[2 * k], encoded[2 * k + 1]
        out[index] = (ctx, whole[len(ctx) :])
    return out


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation token ids, split as lm-eval does (see the module docstring).

    Args:
        tokenizer: A transformers tokenizer.
        context: The text before the choice; ``""`` is replaced by the BOS (or EOS) token.
        continuation: The choice text, usually with a leading space.

    Returns:
        ``(context_ids, continuation_ids)``.
    """
    return _encode_requests(tokenizer, [(context, continuation)])[0]


def choice_length(item: MCItem, index: int) -> int:
    """Characters of choice ``index`` for ``acc_norm``: lm-eval divides by the length of the choice
    text itself, which excludes the single-space target delimiter our continuations start with."""
    choice = item.choices[index]
    return max(1, len(choice[1:] if choice.startswith(" ") else choice))


def _max_length(model: nn.Module, max_length: int | None) -> int | None:
    if max_length is not None:
        return max_length
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


@torch.no_grad()
def _score(
    model: nn.Module,
    requests: list[tuple[list[int], list[int]]],
    batch_size: int,
    device: torch.device,
    max_length: int | None,
    pad_id: int,
    progress: bool,
) -> list[float]:
    """Sum of continuation log-probabilities of each ``(context_ids, continuation_ids)`` request."""
    inputs: list[list[int]] = []
    for ctx, cont in requests:
        full = ctx + cont
        ids = full[:-1]
        if max_length is not None:
            if len(cont) > max_length:
                raise ValueError(
                    f"A continuation of {len(cont)} tokens does not fit the model's {max_length} positions."
                )
            ids = ids[-max_length:]  # lm-eval cuts the context from the left
        inputs.append(ids)
    # Longest first: similar lengths share a batch (less padding), and an out-of-memory error shows
    # on the first batch rather than the last.
    order = sorted(range(len(requests)), key=lambda i: -(len(inputs[i])))
    scores = [0.0] * len(requests)
    batches = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="multiple choice", unit="batch")
    for start in batches:
        rows = order[start : start + batch_size]
        width = max(len(inputs[i]) for i in rows)
        n_cont = max(len(requests[i][1]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # [B, L]
        attention = torch.zeros((len(rows), width), dtype=torch.long)  # [B, L]
        positions = torch.zeros((len(rows), n_cont), dtype=torch.long)  # [B, K] where each target is read
        targets = torch.zeros((len(rows), n_cont), dtype=torch.long)  # [B, K] continuation token ids
        valid = torch.zeros((len(rows), n_cont), dtype=torch.bool)  # [B, K] real (not padded) targets
        for r, i in enumerate(rows):
            ids, cont = inputs[i], requests[i][1]
            n, k = len(ids), len(cont)
            input_ids[r, :n] = torch.tensor(ids)
            attention[r, :n] = 1
            # The logits at position p predict token p + 1: the last k inputs predict the k targets.
            positions[r, :k] = torch.arange(n - k, n)
            targets[r, :k] = torch.tensor(cont)
            valid[r, :k] = True
        input_ids, attention = input_ids.to(device), attention.to(device)
        logits = model(input_ids=input_ids, attention_mask=attention).logits  # [B, L, V]
        rows_index = torch.arange(len(rows), device=device)[:, None]  # [B, 1]
        picked = logits[rows_index, positions.to(device)].float()  # [B, K, V]: only the scored positions
        logprobs = picked.log_softmax(-1).gather(-1, targets.to(device)[..., None]).squeeze(-1)  # [B, K]
        # Summed in float64: a float32 sum of a long continuation loses ~1e-5 to rounding.
        sums = (logprobs.double() * valid.to(device)).sum(-1).tolist()  # [B]
        for r, i in enumerate(rows):
            scores[i] = sums[r]
    return scores


def _argmax(values: Sequence[float]) -> int:
    """Index of the largest value, the first one on ties (as ``numpy.argmax``)."""
    return max(range(len(values)), key=lambda j: (values[j], -j))


def multiple_choice_accuracy(
    model: nn.Module,
    tokenizer: Any,
    items: Sequence[MCItem],
    batch_size: int = 16,
    device: torch.device | str | None = None,
    progress: bool = False,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Zero-shot multiple-choice accuracy of a decoder-only language model by log-likelihood.

    Args:
        model: A causal LM (``*ForCausalLM``; its output has ``.logits`` of shape [B, L, V]).
        tokenizer: Its tokenizer.
        items: The questions (see :mod:`migu.data.multiple_choice`).
        batch_size: Scoring requests (one per choice) per forward pass.
        device: Where to run; ``None`` uses the device of the model's first parameter.
        progress: Show a progress bar over the batches.
        max_length: Longest input in tokens (longer inputs lose their start); ``None`` uses
            ``model.config.max_position_embeddings`` where it exists, else no limit.

    Returns:
        ``{"acc", "acc_norm", "n", "predictions"}``: accuracies in [0, 1] over the ``n`` items, and
        one dict per item with ``id``, ``answer``, ``pred`` (highest log-likelihood), ``pred_norm``
        (highest log-likelihood per character of the choice, see :func:`choice_length`) and
        ``loglikelihoods`` (one per choice). The model's train/eval mode is restored afterwards.

    Raises:
        ValueError: no items, ``batch_size`` below 1, or a continuation that tokenizes to nothing.
    """
    if not items:
        raise ValueError("multiple_choice_accuracy needs at least one item.")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected an integer >= 1.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    pairs = [pair for item in items for pair in item.requests()]
    requests = _encode_requests(tokenizer, pairs)
    for (context, continuation), (_, cont) in zip(pairs, requests, strict=True):
        if not cont:
            raise ValueError(
                f"The continuation {continuation!r} after {context[-40:]!r} tokenizes to no tokens; "
                "it cannot be scored."
            )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked out anyway
    was_training = model.training
    model.eval()
    try:
        scores = _score(model, requests, batch_size, device, _max_length(model, max_length), pad_id, progress)
    finally:
        model.train(was_training)

    predictions: list[dict[str, Any]] = []
    start = 0
    for item in items:
        lls = scores[start : start + len(item.choices)]
        start += len(item.choices)
        normed = [ll / choice_length(item, j) for j, ll in enumerate(lls)]
        predictions.append(
            {
                "id": item.id,
                "answer": item.answer,
                "pred": _argmax(lls),
                "pred_norm": _argmax(normed),
                "loglikelihoods": lls,
            }
        )
    n = len(predictions)
    return {
        "acc": sum(p["pred"] == p["answer"] for p in predictions) / n,
        "acc_norm": sum(p["pred_norm"] == p["answer"] for p in predictions) / n,
        "n": n,
        "predictions": predictions,
    }
