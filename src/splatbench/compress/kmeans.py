"""Seeded k-means in torch (L2: means, L1: medians) with chunked assignment.

Used to vector-quantise the higher SH coefficients: a codebook of ``K`` vectors plus one label per
Gaussian. Chunking bounds the ``[chunk, K]`` distance matrix, so 1M points x 65536 codes runs in
a few hundred MB. Fitting can run on a seeded subsample; every point is assigned at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from splatbench.compress._threads import single_thread

# Distance-matrix elements per chunk (64 MB of float32).
CHUNK_ELEMENTS = 1 << 24
# Above this many codes k-means++ seeding (one pass over the data per code) is too slow; a seeded
# random sample of distinct points is used instead.
KMEANSPP_MAX_K = 256
KMEANSPP_SAMPLE = 8192
# Lloyd iterations stop once at most this fraction of the labels changed.
CONVERGED_FRACTION = 1e-3


@dataclass(frozen=True)
class KMeansResult:
    centroids: Tensor  # [K, D] float32
    labels: Tensor  # [N] int64, index into centroids
    inertia: float  # mean distance (squared L2 or L1) of the points to their centroid
    iters: int  # update iterations run


def assign(
    x: Tensor, centroids: Tensor, metric: str = "l2", x_sq: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Nearest centroid per point, chunked.

    Args:
        x: ``[N, D]`` points.
        centroids: ``[K, D]``.
        metric: ``l2`` (squared Euclidean) or ``l1``.
        x_sq: ``[N]`` precomputed ``|x|^2`` (L2; saves a pass per Lloyd iteration).

    Returns:
        ``labels [N]`` int64 and ``dist [N]`` (squared L2 or L1 distance to that centroid).
    """
    n, k = x.shape[0], centroids.shape[0]
    labels = torch.empty(n, dtype=torch.int64)
    dists = torch.empty(n, dtype=torch.float32)
    chunk = max(1, CHUNK_ELEMENTS // max(k, 1))
    c_sq = (centroids * centroids).sum(1)
    if metric == "l2" and x_sq is None:
        x_sq = (x * x).sum(1)
    for start in range(0, n, chunk):
        xs = x[start : start + chunk]
        if metric == "l2":
            # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 does not change the argmin.
            d = torch.addmm(c_sq.unsqueeze(0), xs, centroids.T, alpha=-2.0)
            best, idx = d.min(1)
            best = (best + x_sq[start : start + chunk]).clamp_min(0.0)
        else:
            best, idx = torch.cdist(xs, centroids, p=1.0).min(1)
        labels[start : start + chunk] = idx
        dists[start : start + chunk] = best
    return labels, dists


def _kmeanspp(
    x: Tensor, k: int, gen: torch.Generator, metric: str, w: Tensor | None = None
) -> Tensor:
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centroids = [x[first]]
    d = _dist_to(x, x[first], metric)
    for _ in range(1, k):
        p = d if w is None else d * w
        total = p.sum()
        if total <= 0:  # every point already coincides with a centroid
            idx = int(torch.randint(n, (1,), generator=gen))
        else:
            idx = int(torch.multinomial(p / total, 1, generator=gen))
        centroids.append(x[idx])
        d = torch.minimum(d, _dist_to(x, x[idx], metric))
    return torch.stack(centroids)


def _dist_to(x: Tensor, c: Tensor, metric: str) -> Tensor:
    diff = x - c
    return (diff * diff).sum(1) if metric == "l2" else diff.abs().sum(1)


def _medians(x: Tensor, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per-cluster, per-dimension lower median. Returns ``[K, D]`` and counts ``[K]``."""
    counts = torch.bincount(labels, minlength=k)
    starts = torch.cumsum(counts, 0) - counts
    # Sort every column by value, then (stably) by label: each cluster's values end up
    # contiguous and sorted, so the median is at start + (count - 1) // 2.
    by_value = torch.argsort(x, dim=0, stable=True)  # [N, D]
    by_label = torch.argsort(labels[by_value], dim=0, stable=True)
    order = by_value.gather(0, by_label)
    mid = (starts + (counts - 1).clamp_min(0) // 2).clamp_max(max(x.shape[0] - 1, 0))
    rows = order[mid]  # [K, D] row index of each median
    return x.gather(0, rows), counts


def kmeans(
    x: Tensor,
    k: int,
    *,
    iters: int = 10,
    metric: str = "l2",
    seed: int = 0,
    sample_size: int = 0,
    init: str = "auto",
    weights: Tensor | None = None,
) -> KMeansResult:
    """Cluster ``[N, D]`` points into ``k`` centroids; deterministic for a given ``seed``.

    Args:
        x: ``[N, D]`` float points (N >= 1).
        k: number of centroids, capped at N.
        iters: Lloyd iterations (stops early when no label changes).
        metric: ``l2`` (centroid = mean) or ``l1`` (centroid = per-dimension median).
        seed: seeds initialisation, the fitting subsample and empty-cluster reseeding.
        sample_size: fit on at most this many points (0: all); all N are assigned at the end.
        init: ``kmeans++``, ``random`` (distinct sample points) or ``auto`` (k-means++ up to
            :data:`KMEANSPP_MAX_K` codes).
        weights: ``[N]`` non-negative importance per point (``l2`` only): centroids become
            weighted means, so the codebook spends its entries where errors cost the most.
            Assignment stays to the nearest centroid. None: all points weigh the same.

    Returns:
        :class:`KMeansResult` with ``centroids [K, D]`` and ``labels [N]``.
    """
    if metric not in ("l2", "l1"):
        raise ValueError(f"metric must be 'l2' or 'l1', got {metric!r}")
    x = x.detach().float().cpu().contiguous()
    n = x.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one point")
    if weights is not None:
        if metric != "l2":
            raise ValueError("weighted k-means needs metric 'l2'")
        weights = weights.detach().float().cpu().reshape(-1)
        if weights.shape[0] != n or not bool((weights >= 0).all()):
            raise ValueError(f"weights must be {n} non-negative values")
        if float(weights.sum()) <= 0:
            weights = None  # nothing to prefer: plain k-means
    k = max(1, min(int(k), n))
    gen = torch.Generator().manual_seed(int(seed))
    fit, fit_w = x, weights
    if 0 < sample_size < n:
        pick = torch.randperm(n, generator=gen)[:sample_size]
        fit = x[pick]
        fit_w = None if weights is None else weights[pick]
    m = fit.shape[0]
    k = min(k, m)
    if init == "kmeans++" or (init == "auto" and k <= KMEANSPP_MAX_K):
        # Seeding needs only a sample: it keeps the k sequential passes cheap at any N.
        pick = torch.randperm(m, generator=gen)[:KMEANSPP_SAMPLE] if m > KMEANSPP_SAMPLE else None
        seed_pts = fit if pick is None else fit[pick]
        seed_w = fit_w if fit_w is None or pick is None else fit_w[pick]
        with single_thread():  # k sequential passes of small ops: threads only add overhead
            centroids = _kmeanspp(seed_pts, k, gen, metric, seed_w)
    else:
        centroids = fit[torch.randperm(m, generator=gen)[:k]].clone()

    labels = torch.full((m,), -1, dtype=torch.int64)
    fit_sq = (fit * fit).sum(1) if metric == "l2" else None
    it = 0
    for it in range(1, iters + 1):  # noqa: B007 (it is reported)
        new_labels, dists = assign(fit, centroids, metric, fit_sq)
        # Converged when (almost) no label moves: the last moves barely change the codebook.
        changed = int((new_labels != labels).sum()) > CONVERGED_FRACTION * m
        labels = new_labels
        if metric == "l2":
            counts = torch.bincount(labels, minlength=k)
            # Sorted segment sums: much faster than index_add_ on CPU for many small fits.
            by_label = torch.argsort(labels, stable=True)
            if fit_w is None:
                sums = torch.segment_reduce(fit[by_label], "sum", lengths=counts, axis=0)
                updated = sums / counts.clamp_min(1).unsqueeze(1).float()
            else:
                wl = fit_w[by_label]
                sums = torch.segment_reduce(fit[by_label] * wl[:, None], "sum", lengths=counts,
                                            axis=0)  # fmt: skip
                wsum = torch.segment_reduce(wl, "sum", lengths=counts, axis=0)
                plain = torch.segment_reduce(fit[by_label], "sum", lengths=counts, axis=0)
                # A cluster of weight-0 points keeps their plain mean.
                updated = torch.where(
                    (wsum > 0).unsqueeze(1),
                    sums / wsum.clamp_min(1e-30).unsqueeze(1),
                    plain / counts.clamp_min(1).unsqueeze(1).float(),
                )
        else:
            updated, counts = _medians(fit, labels, k)
        empty = counts == 0
        centroids = torch.where(empty.unsqueeze(1), centroids, updated)
        n_empty = int(empty.sum())
        if n_empty:
            # Reseed empty clusters at the worst-served points: they are where the codebook
            # is missing an entry (deterministic: top distances, ties by index).
            far = torch.topk(dists if fit_w is None else dists * fit_w, min(n_empty, m)).indices
            slots = torch.nonzero(empty).squeeze(1)[: far.numel()]
            centroids[slots] = fit[far]
            changed = True
        if not changed:
            break
    labels, dists = assign(x, centroids, metric, fit_sq if fit is x else None)
    return KMeansResult(centroids, labels, float(dists.mean()), it)


def _apportion(counts: Tensor, k: int) -> Tensor:
    """Split ``k`` codes over cells in proportion to ``counts`` (>= 1 and <= count per
    non-empty cell), largest remainders first."""
    counts = counts.long()
    quota = k * counts.double() / counts.sum()
    alloc = torch.minimum(quota.floor().long().clamp_min(1), counts)
    alloc[counts == 0] = 0
    for _ in range(64):  # a few passes settle it; each moves up to one code per cell
        diff = k - int(alloc.sum())
        if diff == 0:
            break
        if diff > 0:
            room = (alloc < counts).double()
            score = (quota - alloc) * room - (1 - room) * 1e18
            idx = torch.argsort(score, descending=True, stable=True)[: min(diff, int(room.sum()))]
            if idx.numel() == 0:
                break
            alloc[idx] += 1
        else:
            room = (alloc > 1).double()
            score = (alloc - quota) * room - (1 - room) * 1e18
            idx = torch.argsort(score, descending=True, stable=True)[: min(-diff, int(room.sum()))]
            if idx.numel() == 0:
                break
            alloc[idx] -= 1
    return alloc


def kmeans_tree(
    x: Tensor,
    k: int,
    *,
    iters: int = 10,
    metric: str = "l2",
    seed: int = 0,
    sample_size: int = 0,
    weights: Tensor | None = None,
) -> KMeansResult:
    """Two-level k-means: ``sqrt(k)`` coarse clusters, then each split into its share of ``k``.

    A point is compared with about ``2 sqrt(k)`` centroids instead of ``k`` (65536 codes: 512),
    which is what makes large codebooks affordable on a CPU. Labels are the nearest entry within
    the point's coarse cell, not always the global nearest, so the error is slightly above
    flat k-means. Same arguments and result as :func:`kmeans`.
    """
    x = x.detach().float().cpu().contiguous()
    n = x.shape[0]
    k = max(1, min(int(k), n))
    k1 = math.isqrt(k)
    if k1 < 2:
        return kmeans(x, k, iters=iters, metric=metric, seed=seed, sample_size=sample_size,
                      weights=weights)  # fmt: skip
    coarse = kmeans(x, k1, iters=iters, metric=metric, seed=seed, sample_size=sample_size,
                    weights=weights)  # fmt: skip
    counts = torch.bincount(coarse.labels, minlength=coarse.centroids.shape[0])
    alloc = _apportion(counts, k)
    with single_thread():
        return _fit_cells(x, coarse, counts, alloc, iters, metric, seed, sample_size, weights)


def _fit_cells(
    x: Tensor,
    coarse: KMeansResult,
    counts: Tensor,
    alloc: Tensor,
    iters: int,
    metric: str,
    seed: int,
    sample_size: int,
    weights: Tensor | None = None,
) -> KMeansResult:
    """Second level of :func:`kmeans_tree`: split each coarse cell into its ``alloc`` codes."""
    n = x.shape[0]
    order = torch.argsort(coarse.labels, stable=True)
    labels = torch.empty(n, dtype=torch.int64)
    centroids: list[Tensor] = []
    offset, start, total = 0, 0, 0.0
    for cell, (count, kc) in enumerate(zip(counts.tolist(), alloc.tolist(), strict=True)):
        if count == 0:
            continue
        idx = order[start : start + count]
        start += count
        sub = kmeans(
            x[idx],
            kc,
            iters=iters,
            metric=metric,
            seed=seed + 1 + cell,
            sample_size=sample_size,
            init="random",  # thousands of small fits: k-means++ seeding would dominate
            weights=None if weights is None else weights[idx],
        )
        labels[idx] = sub.labels + offset
        offset += sub.centroids.shape[0]
        centroids.append(sub.centroids)
        total += sub.inertia * count
    return KMeansResult(torch.cat(centroids), labels, total / n, coarse.iters)
