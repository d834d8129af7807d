"""MIGU + Cluster (paper Appendix E): k-means groups of output units masked as one."""

from __future__ import annotations

import math

import pytest
import torch
from reference import InputRecorder, linear_out, magnitude
from tiny_models import build, make_batch

import migu
from migu.core.cluster import cluster_keep_mask, kmeans


def test_kmeans_recovers_separated_groups():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.arange(3).repeat_interleave(7)  # (21,)
    points = centres[truth] + 0.1 * torch.randn(21, 2, generator=g)
    ids = kmeans(points, 3, seed=1)
    # Same partition up to renaming: units together in the truth are together in the result.
    same_truth = truth[:, None] == truth[None, :]
    same_found = ids[:, None] == ids[None, :]
    assert torch.equal(same_truth, same_found)
    assert torch.equal(ids, kmeans(points, 3, seed=1))  # deterministic


def _reference_cluster_keep(m: torch.Tensor, ids: torch.Tensor, threshold: float) -> torch.Tensor:
    """Clusters sorted by mean magnitude (ties: lower id), masked whole while within floor(T d)."""
    budget = math.floor(threshold * m.shape[0] + 1e-9)
    clusters = sorted(set(ids.tolist()))
    means = {c: float(m[ids == c].double().mean()) for c in clusters}
    keep = torch.ones(m.shape[0], dtype=torch.bool)
    masked = 0
    for c in sorted(clusters, key=lambda c: (means[c], c)):
        size = int((ids == c).sum())
        if masked + size > budget:
            break
        keep[ids == c] = False
        masked += size
    return keep


def test_cluster_keep_mask_matches_reference():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        m = torch.rand(24, generator=g)
        ids = torch.randint(0, 5, (24,), generator=g)
        assert torch.equal(cluster_keep_mask(m, ids, 0.6), _reference_cluster_keep(m, ids, 0.6))


@pytest.mark.parametrize("cluster_by", ["weight", "magnitude"])
def test_handle_masks_whole_clusters(cluster_by):
    model = build("llama")
    cfg = migu.MiguConfig(0.5, clusters=4, cluster_by=cluster_by)
    handle = migu.attach(model, cfg)
    if cluster_by == "magnitude":
        assert not handle.cluster_ids  # nothing to cluster by until data has been seen
        handle.fit_clusters([make_batch("llama", seed=s) for s in range(4)])
    assert set(handle.cluster_ids) == {u.source for u in handle.units}
    modules = dict(model.named_modules())
    recorder = InputRecorder({u.source: modules[u.source] for u in handle.units})
    model(**make_batch("llama", seed=9)).loss.backward()
    recorder.remove()
    handle.apply_masks()
    for u in handle.units:
        ids = handle.cluster_ids[u.source]
        keep = handle.masks[u.name]
        # one decision per cluster
        for c in ids.unique():
            assert keep[ids == c].all() or (~keep[ids == c]).all()
        mod = modules[u.source]
        m = magnitude([linear_out(x, mod.weight, mod.bias) for x in recorder.inputs[u.source]])
        assert torch.equal(keep, _reference_cluster_keep(m.float(), ids, 0.5)), u.name
    assert sum(int((~k).sum()) for k in handle.masks.values()) > 0  # some clusters were masked
    handle.remove()


def test_cluster_config_errors():
    with pytest.raises(ValueError, match="clusters needs criterion='output'"):
        migu.MiguConfig(clusters=3, criterion="weight")
    model = build("bert")
    handle = migu.attach(model, migu.MiguConfig(0.5, clusters=2))
    with pytest.raises(ValueError, match="fit_clusters needs"):
        handle.fit_clusters([make_batch("bert")])
    handle.remove()
