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
        per_token = torch.linalg.vector_norm(y, ord=1, dim=-1, keepdim=True, dtype=torch.float32)  # (..., 1)
        a = y.abs().float() / per_token.clamp_min(torch.finfo(torch.float32).tiny)  # (..., d_out)
    elif token_mask is None:
        # One fused reduction over all token dims; no |y| temporary, accumulates in float32.
        return torch.linalg.vector_norm(
            y, ord=1, dim=tuple(range(y.dim() - 1)), dtype=torch.float32
        )  # (d_out,)
    else:
        a = y.abs()  # (..., d_out)
    if token_mask is None:
        return a.reshape(-1, a.shape[-1]).sum(0, dtype=torch.float32)  # (d_out,)
    # float32 so that half-precision outputs do not lose small tokens' contributions in the sum.
    w = token_mask.reshape(-1).float()  # (N,)
    return w @ a.reshape(-1, a.shape[-1]).float()  # (d_out,)
