"""An independent reference for multiple-choice scoring: one (context, continuation) pair at a time.

Written from lm-evaluation-harness's rule (trailing context whitespace moves to the continuation;
continuation tokens are those of the whole text after the context's), without migu's batching or
padding, with a plain Python loop over the continuation tokens.
"""

from __future__ import annotations

import torch


def reference_loglikelihood(model, tokenizer, context: str, continuation: str, max_length: int | None = None):
    """Score one pair alone: lm-eval's split, one unpadded forward pass, a plain loop over tokens."""
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    if context == "":
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ctx, cont = [prefix], encode(continuation)
    else:
        stripped = context.rstrip()
        context, continuation = stripped, context[len(stripped) :] + continuation
        whole, ctx = encode(context + continuation), encode(context)
        cont = whole[len(ctx) :]
    tokens = (ctx + cont)[:-1]
    if max_length is not None:
        tokens = tokens[-max_length:]
    with torch.no_grad():
        logprobs = model(input_ids=torch.tensor([tokens])).logits[0].double().log_softmax(-1)
    first = len(tokens) - len(cont)
    return sum(logprobs[first + k, token].item() for k, token in enumerate(cont))
