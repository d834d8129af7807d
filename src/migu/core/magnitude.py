"""The magnitude statistic: how large each output unit of a layer is over a batch of tokens."""

from __future__ import annotations

import torch

__all__ = ["output_magnitude"]


def output_magnitude(
    y: torch.Tensor, token_mask: torch.Tensor | None = None, normalize: str = "none"
) -> torch.Tensor:
    """Per-output-unit magnitude of a layer output, summed over tokens.

    ``m_j = sum_t w_t |y_tj|`` (``normalize="none"``, the official statistic) or
    ``m_j = sum_t w_t |y_tj| / sum_i |y_ti|`` (``normalize="token"``), where ``w_t`` is 1, or the
    token mask (0 at padding) when one is given.

    Args:
        y: Layer output ``(..., d_out)``, any float dtype.
        token_mask: ``y.shape[:-1]``, nonzero where a token counts; ``None`` counts every token.
        normalize: ``"none"`` or ``"token"``.

    Returns:
        ``(d_out,)`` float32 magnitudes.
    """
    y = y.detach()
    if normalize == "token":
        a = y.abs().float()  # (..., d_out)
        a = a / a.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)  # each token sums to 1
    elif token_mask is None:
        # abs + sum, not vector_norm(ord=1): the latter is ~7x slower on CPU for these reductions
        # (18 ms vs 2.4 ms for 16 x 128 x 1536, 2 threads). float32 accumulation for half precision.
        return y.abs().sum(dim=tuple(range(y.dim() - 1)), dtype=torch.float32)  # (d_out,)
    else:
        a = y.abs()  # (..., d_out)
    if token_mask is None:
        return a.reshape(-1, a.shape[-1]).sum(0, dtype=torch.float32)  # (d_out,)
    # float32 so that half-precision outputs do not lose small tokens' contributions in the sum.
    w = token_mask.reshape(-1).float()  # (N,)
    return w @ a.reshape(-1, a.shape[-1]).float()  # (d_out,)
