"""Arrange Gaussians on a 2D grid so that grid neighbours are similar.

Image codecs compress smooth images well, so the codec stores each attribute as an image whose
pixel ``c`` is Gaussian ``order[c]``. Two layouts:

- **Morton**: sort the Gaussians along a 3D Z-order curve of their positions and lay that
  sequence along a 2D Z-order curve of the grid cells (both curves keep neighbours close).
- **PLAS-style refinement** (after Parallel Linear Assignment Sorting, Barthel et al. 2023, as
  used by Self-Organizing Gaussians): from the Morton layout, repeatedly blur the grid of
  feature vectors with a box filter of radius ``r`` and, for groups of 4 cells (one from each
  quadrant of a ``2r x 2r`` block), apply the best of the 24 permutations against the blurred
  target. All groups are disjoint, so every group is solved in parallel with a few tensor ops;
  the identity is one of the 24 permutations, so no step makes the layout worse against its
  target. The radius shrinks geometrically to 1 (coarse-to-fine).

Grid cells ``[0, N)`` in raster order hold the Gaussians; the ``H * W - N`` padding cells are the
tail of the last row and never move, so a decoder takes the first N cells and nothing else.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

_PERMS4 = torch.tensor(list(itertools.permutations(range(4))), dtype=torch.int64)  # [24, 4]


def grid_shape(n: int) -> tuple[int, int]:
    """``(H, W)`` of the square-ish grid for ``n`` Gaussians: ``W = ceil(sqrt(n))``, fewer than
    ``W`` padding cells. ``(0, 0)`` for ``n == 0``."""
    if n <= 0:
        return 0, 0
    w = math.isqrt(n - 1) + 1
    return (n + w - 1) // w, w


# --- Morton (Z-order) ------------------------------------------------------------------------


def _part1by2(v: Tensor) -> Tensor:
    """Spread the low 21 bits of ``v`` so that two zero bits follow each (3D interleave)."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


def _part1by1(v: Tensor) -> Tensor:
    """Spread the low 31 bits of ``v`` with one zero bit after each (2D interleave)."""
    v = v & 0x7FFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    v = (v | (v << 1)) & 0x5555555555555555
    return v


def morton3d(points: Tensor) -> Tensor:
    """``[N, 3]`` -> ``[N]`` int64 Z-order codes (21 bits per axis over the bounding box)."""
    p = points.double()
    lo = p.min(0).values
    span = (p.max(0).values - lo).clamp_min(1e-30)
    q = ((p - lo) / span * ((1 << 21) - 1)).round().long().clamp(0, (1 << 21) - 1)
    return _part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << 1) | (_part1by2(q[:, 2]) << 2)


def morton_layout(points: Tensor, height: int, width: int) -> Tensor:
    """Morton layout: ``[N]`` Gaussian index for raster cells ``0..N-1``.

    Gaussians sorted by 3D Morton code fill the N real cells in 2D Morton order of ``(y, x)``.
    """
    n = points.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    by_code = torch.argsort(morton3d(points), stable=True)
    cells = torch.arange(n, dtype=torch.int64)
    ys, xs = cells // width, cells % width
    cell_order = torch.argsort(_part1by1(ys) << 1 | _part1by1(xs), stable=True)
    order = torch.empty(n, dtype=torch.int64)
    order[cell_order] = by_code
    return order


# --- smoothness ------------------------------------------------------------------------------


def _grid(values: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """``[N, D]`` in raster order -> ``[H, W, D]`` grid (zeros in padding) and ``[H, W]`` mask."""
    n, dim = values.shape
    grid = torch.zeros(height * width, dim, dtype=values.dtype)
    grid[:n] = values
    mask = torch.zeros(height * width, dtype=values.dtype)
    mask[:n] = 1.0
    return grid.view(height, width, dim), mask.view(height, width)


def neighbour_distance(features: Tensor, order: Tensor, height: int, width: int) -> float:
    """Mean L2 distance between 4-neighbour grid cells that both hold a Gaussian.

    Args:
        features: ``[N, D]`` per-Gaussian features (standardise them first).
        order: ``[N]`` Gaussian index per raster cell.
    """
    if features.shape[0] < 2:
        return 0.0
    grid, mask = _grid(features[order].float(), height, width)
    total, count = 0.0, 0.0
    for a, b, ma, mb in (
        (grid[:, 1:], grid[:, :-1], mask[:, 1:], mask[:, :-1]),
        (grid[1:], grid[:-1], mask[1:], mask[:-1]),
    ):
        both = ma * mb
        total += float(((a - b).norm(dim=-1) * both).sum())
        count += float(both.sum())
    return total / max(count, 1.0)


def sort_features(columns: list[Tensor], weights: list[float] | None = None) -> Tensor:
    """Concatenate ``[N, d_i]`` attribute columns, standardise each column to unit variance and
    scale attribute ``i``'s columns by ``weights[i]`` (default 1). Returns ``[N, sum d_i]``."""
    cols = [c.reshape(c.shape[0], -1).float() for c in columns]
    f = torch.cat(cols, dim=1)
    std = f.std(0, unbiased=False) if f.shape[0] > 1 else torch.ones(f.shape[1])
    f = (f - f.mean(0)) / torch.where(std > 1e-12, std, torch.ones_like(std))
    if weights is not None:
        w = torch.cat(
            [torch.full((c.shape[1],), float(wi)) for c, wi in zip(cols, weights, strict=True)]
        )
        f = f * w
    return f


# --- PLAS-style refinement -------------------------------------------------------------------


def _box_blur(grid: Tensor, mask: Tensor, radius: int) -> Tensor:
    """Masked mean over a ``(2r+1)^2`` box, via cumulative sums (O(HWD) for any radius).

    ``grid`` is ``[H, W, D]`` with zeros where ``mask [H, W]`` is 0.
    """

    def blur_axis(t: Tensor, axis: int) -> Tensor:
        # sum over [i - r, i + r] clipped = C[min(i + r, S - 1)] - C[i - r - 1] (C[<0] = 0):
        # pad C with r + 1 zeros in front and r copies of its last entry behind, then slice.
        size = t.shape[axis]
        c = torch.cumsum(t, dim=axis)
        front = torch.zeros_like(c.narrow(axis, 0, 1)).expand(
            *[radius + 1 if d == axis else -1 for d in range(c.dim())]
        )
        back = c.narrow(axis, size - 1, 1).expand(
            *[radius if d == axis else -1 for d in range(c.dim())]
        )
        p = torch.cat([front, c, back], dim=axis)
        return p.narrow(axis, 2 * radius + 1, size) - p.narrow(axis, 0, size)

    weighted = torch.cat([grid, mask.unsqueeze(-1)], dim=-1)
    s = blur_axis(blur_axis(weighted, 0), 1)
    return s[..., :-1] / s[..., -1:].clamp_min(1e-6)


def plas_refine(
    features: Tensor,
    order: Tensor,
    height: int,
    width: int,
    *,
    iters_per_radius: int = 3,
    radius_decay: float = 0.6,
    start_radius: float | None = None,
    seed: int = 0,
) -> Tensor:
    """Refine a layout by parallel 4-element swaps against a shrinking-radius blurred grid.

    Args:
        features: ``[N, D]`` standardised features of the Gaussians.
        order: ``[N]`` initial Gaussian index per raster cell (e.g. :func:`morton_layout`).
        height, width: grid shape, ``height * width >= N``.
        start_radius: first blur radius (default a quarter of the shorter side).

    Returns:
        ``[N]`` refined layout: a permutation of ``order``.
    """
    n = features.shape[0]
    size = height * width
    if n < 4 or min(height, width) < 2:
        return order.clone()
    gen = torch.Generator().manual_seed(int(seed))
    feats = features.float()
    # cell -> Gaussian index, -1 for padding (padding cells are pinned: never swapped).
    cell = torch.full((size,), -1, dtype=torch.int64)
    cell[:n] = order
    valid_flat = cell >= 0
    mask = valid_flat.float().view(height, width)
    cell_ids = torch.arange(size, dtype=torch.int64).view(height, width)

    radius = float(start_radius or min(height, width) / 4.0)
    while True:
        r = max(1, int(radius))
        q = max(1, min(r, min(height, width) // 2))  # quadrant side; a block is 2q x 2q
        for _ in range(iters_per_radius):
            grid = torch.zeros(size, feats.shape[1])
            grid[:n] = feats[cell[:n]]  # the first n cells hold Gaussians, the rest is padding
            target = _box_blur(grid.view(height, width, -1), mask, r).view(size, -1)
            # Random shift so block borders fall elsewhere each time (torus roll of the ids).
            dy = int(torch.randint(2 * q, (1,), generator=gen))
            dx = int(torch.randint(2 * q, (1,), generator=gen))
            ids = torch.roll(cell_ids, shifts=(-dy, -dx), dims=(0, 1))
            bh, bw = height // (2 * q), width // (2 * q)
            ids = ids[: bh * 2 * q, : bw * 2 * q].reshape(bh, 2, q, bw, 2, q)
            ids = ids.permute(0, 3, 1, 4, 2, 5).reshape(bh * bw, 4, q * q)  # [B, quadrant, cell]
            # Pair cells across quadrants with an independent shuffle per quadrant.
            shuffles = torch.stack(
                [torch.randperm(q * q, generator=gen) for _ in range(4)]
            )  # [4, q*q]
            groups = ids.gather(2, shuffles.unsqueeze(0).expand(bh * bw, 4, q * q))
            groups = groups.permute(0, 2, 1).reshape(-1, 4)  # [G, 4] flat cell ids
            # Groups touching padding are skipped: padding stays put.
            groups = groups[valid_flat[groups].all(1)]
            gx = grid[groups]  # [G, 4, D] current values
            gt = target[groups]  # [G, 4, D] targets at those cells
            # cost[g, i, j] of element i at cell j is |x_i|^2 - 2 x_i.t_j + |t_j|^2; summed over a
            # permutation the squared norms are constant, so only the dot products matter.
            cost = torch.bmm(gx, gt.transpose(1, 2)).mul_(-2.0)
            # total[g, p] = sum_j cost[g, perm[p, j], j]
            total = cost[:, _PERMS4, torch.arange(4)].sum(-1)  # [G, 24]
            best = total.argmin(1)
            # Keep the identity (perm 0) on ties so nothing moves without a gain.
            ident_cost = total[:, 0]
            best = torch.where(total.gather(1, best[:, None]).squeeze(1) < ident_cost, best, 0)
            src = groups.gather(1, _PERMS4[best])  # cell j receives the element from src[:, j]
            moved = best != 0
            if bool(moved.any()):
                dst_m, src_m = groups[moved].reshape(-1), src[moved].reshape(-1)
                cell[dst_m] = cell[src_m].clone()
        if r <= 1:
            break
        radius *= radius_decay
    return cell[:n].clone()
