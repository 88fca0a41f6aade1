"""Our k-means: known clusters recovered, seeded determinism, L1 medians, two-level mode."""

from __future__ import annotations

import pytest
import torch

from splatbench.compress import kmeans, kmeans_tree


def blobs(k: int = 8, per: int = 60, dim: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * 10.0
    labels = torch.arange(k).repeat_interleave(per)
    x = centres[labels] + 0.1 * torch.randn(k * per, dim, generator=g)
    perm = torch.randperm(k * per, generator=g)
    return x[perm], labels[perm], centres


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Labels equal up to renaming the clusters."""
    pairs = torch.unique(torch.stack([a, b], 1), dim=0)
    return pairs.shape[0] == torch.unique(a).numel() == torch.unique(b).numel()


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_known_clusters_recovered(metric: str) -> None:
    x, truth, centres = blobs()
    r = kmeans(x, 8, iters=20, metric=metric, seed=3)
    assert _same_partition(r.labels, truth)
    # Every true centre has a centroid within the noise level.
    d = torch.cdist(centres, r.centroids).min(1).values
    assert float(d.max()) < 0.2


def test_seeded_determinism_and_seed_matters() -> None:
    x = torch.randn(2000, 9, generator=torch.Generator().manual_seed(1))
    a = kmeans(x, 50, iters=5, seed=7)
    b = kmeans(x, 50, iters=5, seed=7)
    c = kmeans(x, 50, iters=5, seed=8)
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.centroids, c.centroids)


def test_labels_are_nearest_centroid_and_k_capped() -> None:
    x = torch.randn(500, 4, generator=torch.Generator().manual_seed(2))
    r = kmeans(x, 40, iters=4, sample_size=200)  # fit on a subsample, assign all
    assert torch.equal(r.labels, torch.cdist(x, r.centroids).argmin(1))
    small = kmeans(x[:5], 100)
    assert small.centroids.shape == (5, 4)
    assert torch.allclose(small.centroids[small.labels], x[:5])  # one point per centroid


def test_lloyd_lowers_the_error() -> None:
    x = torch.randn(3000, 8, generator=torch.Generator().manual_seed(4))
    assert kmeans(x, 64, iters=10).inertia < kmeans(x, 64, iters=1).inertia


def test_duplicate_points_do_not_break_it() -> None:
    x = torch.zeros(100, 3)
    x[50:] = 1.0
    r = kmeans(x, 10, iters=5)
    assert torch.allclose(r.centroids[r.labels], x)


def test_tree_mode_codebook_size_and_quality() -> None:
    x, truth, _ = blobs(k=16, per=40, dim=5, seed=5)
    r = kmeans_tree(x, 64, iters=8, seed=0)
    assert r.centroids.shape == (64, 5) and int(r.labels.max()) < 64
    flat = kmeans(x, 64, iters=8, seed=0)
    assert r.inertia < 3 * flat.inertia + 1e-3
    # The clusters are never merged: each true cluster maps to its own codes.
    pairs = torch.unique(torch.stack([r.labels, truth], 1), dim=0)
    assert torch.unique(pairs[:, 0]).numel() == pairs.shape[0]
