"""EWC (elastic weight consolidation, Kirkpatrick et al. 2017) with one penalty per past task.

After task k, the diagonal empirical Fisher ``F_k = mean over n examples of grad(loss)^2`` (one
example per backward) and the weights ``theta*_k`` are stored; training task t adds
``lambda/2 * sum_{k<t} sum_i F_ki (theta_i - theta*_ki)^2``.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from migu.methods.base import Method, MethodContext, register

__all__ = ["EWC", "ewc_penalty"]


def ewc_penalty(
    params: dict[str, torch.Tensor],
    consolidated: list[dict[str, tuple[torch.Tensor, torch.Tensor]]],
    lam: float,
) -> torch.Tensor:
    """``lam/2 * sum_k sum_i F_ki (theta_i - theta*_ki)^2`` over ``consolidated`` = [{name: (F, theta*)}]."""
    total = None
    for past in consolidated:
        for name, (fisher, star) in past.items():
            term = (fisher * (params[name] - star).pow(2)).sum()
            total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return 0.5 * lam * total


@register("ewc")
class EWC(Method):
    """Full fine-tuning with the EWC penalty of every finished task."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consolidated: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []

    def penalty(self, model: nn.Module, t: int) -> torch.Tensor | None:
        if not self.consolidated:
            return None
        params = dict(_trainable(model))
        device = next(iter(params.values())).device
        if next(iter(self.consolidated[0].values()))[0].device != device:
            self.to(device)  # loaded from a checkpoint on the CPU
        return ewc_penalty(params, self.consolidated, self.config.ewc_lambda)

    def end_task(self, t: int, model: nn.Module, ctx: MethodContext) -> None:
        super().end_task(t, model, ctx)
        task = self.tasks[t]
        rng = random.Random(f"migu.ewc:{self.seed}:{t}")
        records = rng.sample(task.train, min(self.config.ewc_samples, len(task.train)))
        params = dict(_trainable(model))
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        was_training = model.training
        model.eval()  # no dropout: the Fisher is a property of the weights, not of a dropout draw
        for r in records:
            model.zero_grad(set_to_none=True)
            batch = {k: v.to(ctx.device) for k, v in ctx.family.training_batch([(task, r)]).items()}
            ctx.family.loss(model, batch).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach().pow(2)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        self.consolidated.append(
            {n: (f / len(records), params[n].detach().clone()) for n, f in fisher.items()}
        )

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["ewc"] = [{n: (f.cpu(), s.cpu()) for n, (f, s) in past.items()} for past in self.consolidated]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.consolidated = state.get("ewc", [])

    def to(self, device: torch.device) -> None:
        """Move the stored Fisher and weights to ``device`` (after loading a checkpoint)."""
        self.consolidated = [
            {n: (f.to(device), s.to(device)) for n, (f, s) in p.items()} for p in self.consolidated
        ]


def _trainable(model: nn.Module):
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad)
