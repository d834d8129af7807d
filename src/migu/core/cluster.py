"""MIGU + Cluster (paper Appendix E): output units grouped into clusters, one mask decision per cluster.

Each layer's output units are grouped by k-means, either over the layer's weight rows
(``cluster_by="weight"``, at attach time) or over co-magnitude profiles (``cluster_by="magnitude"``:
each unit's magnitudes over a few batches of data, L1-normalized over the batches, from
:meth:`migu.MiguHandle.fit_clusters`). At each step a cluster's score is the mean magnitude of its
units; clusters are masked whole, lowest score first, as long as the number of masked units stays
within ``floor(T * d_out)`` (so a cluster-level mask never masks more than MIGU would).
"""

from __future__ import annotations

import torch

from migu.core.mask import num_masked

__all__ = ["cluster_keep_mask", "kmeans"]


@torch.no_grad()
def kmeans(points: torch.Tensor, k: int, *, seed: int = 0, iters: int = 25) -> torch.Tensor:
    """Cluster ids ``(n,)`` of ``points`` ``(n, dim)`` by k-means with k-means++ seeding.

    Deterministic for a given seed (the generator is local); empty clusters keep their centre.
    """
    n = points.shape[0]
    k = min(k, n)
    x = points.detach().float().cpu()  # (n, dim)
    g = torch.Generator().manual_seed(seed)
    centres = [x[int(torch.randint(n, (1,), generator=g))]]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.stack(centres)).pow(2).min(dim=1).values  # (n,)
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full((n,), 1.0 / n)
        centres.append(x[int(torch.multinomial(probs, 1, generator=g))])
    c = torch.stack(centres)  # (k, dim)
    ids = torch.zeros(n, dtype=torch.long)
    for _ in range(iters):
        ids_new = torch.cdist(x, c).argmin(dim=1)  # (n,)
        for j in range(k):
            members = ids_new == j
            if members.any():
                c[j] = x[members].mean(0)
        if torch.equal(ids_new, ids):
            break
        ids = ids_new
    return ids.to(points.device)


def cluster_keep_mask(magnitudes: torch.Tensor, cluster_ids: torch.Tensor, threshold: float) -> torch.Tensor:
    """Keep-mask ``(d_out,)`` with one decision per cluster (see the module docstring).

    Args:
        magnitudes: ``(d_out,)`` this step's magnitudes.
        cluster_ids: ``(d_out,)`` cluster of each unit.
        threshold: ``T`` in ``[0, 1)``.
    """
    budget = num_masked(magnitudes.shape[0], threshold)
    k = int(cluster_ids.max()) + 1
    m = magnitudes.float()
    sums = torch.zeros(k, device=m.device).index_add_(0, cluster_ids, m)  # (k,)
    sizes = torch.bincount(cluster_ids, minlength=k).to(m.device)  # (k,)
    scores = torch.where(sizes > 0, sums / sizes.clamp(min=1), torch.full_like(sums, float("inf")))
    keep = torch.ones_like(m, dtype=torch.bool)  # (d_out,)
    masked = 0
    for j in torch.argsort(scores, stable=True).tolist():  # weakest cluster first
        size = int(sizes[j])
        if size == 0 or masked + size > budget:
            break
        keep[cluster_ids == j] = False
        masked += size
    return keep
