"""Dense pure-PyTorch alpha compositing: the test oracle for the tile kernel.

Every pixel is composited against every visible Gaussian of its camera (no tiles), sorted by
depth, with autograd doing the backward. The discrete decisions (alpha < 1/255 skipped, the
transmittance stop) are made without gradient, exactly as the kernel makes them; gradients then
flow through the kept alphas. Memory is O(pixels x Gaussians) per chunk, so this is for small
scenes; large ones are processed in pixel chunks under activation checkpointing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from splatbench.render.projection import ALPHA_THRESHOLD

MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
# Pixel x Gaussian elements per chunk (keeps the reference within a few hundred MB).
CHUNK_ELEMENTS = 2_000_000


def pixel_centres(width: int, height: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Pixel centres (x + 0.5, y + 0.5) in row-major order. -> [H * W, 2]"""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device),
        torch.arange(width, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=-1).reshape(-1, 2) + 0.5


def composite_pixels(
    pix: Tensor, means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor
) -> tuple[Tensor, Tensor]:
    """Composite depth-sorted Gaussians front to back at some pixels.

    Args:
        pix: pixel centres. [P, 2]
        means2d: [n, 2], conics: [n, 3], colors: [n, D], opacities: [n], sorted front to back.

    Returns:
        accumulated colour (without background) [P, D] and final transmittance [P].
    """
    d = means2d[None, :, :] - pix[:, None, :]  # [P, n, 2], Gaussian minus pixel as gsplat
    dx, dy = d[..., 0], d[..., 1]
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), MAX_ALPHA)  # [P, n]
    with torch.no_grad():
        valid = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        trans_after = torch.cumprod(1.0 - torch.where(valid, alpha, 0.0), dim=-1)
        # A pixel stops before the first Gaussian that would take T to <= 1e-4; T only falls,
        # so "T after this Gaussian > 1e-4" marks exactly the Gaussians that are kept.
        keep = valid & (trans_after > TRANSMITTANCE_STOP)
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    trans = torch.cumprod(1.0 - alpha, dim=-1)  # T after each Gaussian
    ones = torch.ones_like(trans[:, :1])
    trans_before = torch.cat([ones, trans[:, :-1]], dim=-1)
    weights = alpha * trans_before  # [P, n]
    return weights @ colors, trans[:, -1]


def composite_image(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    background: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Render one camera densely.

    Args:
        means2d [N, 2], conics [N, 3], colors [N, D], opacities [N], radii [N, 2] (int),
        depths [N], background [D] or None.

    Returns:
        colours [H, W, D] and alphas [H, W, 1].
    """
    visible = torch.nonzero((radii > 0).all(dim=-1)).flatten()
    order = visible[torch.argsort(depths.detach()[visible], stable=True)]
    m, q, col, op = means2d[order], conics[order], colors[order], opacities[order]
    pix = pixel_centres(width, height, means2d.dtype, means2d.device)
    n_dim = colors.shape[-1]
    if order.numel() == 0:
        rgb = pix.new_zeros(pix.shape[0], n_dim)
        trans = pix.new_ones(pix.shape[0])
    else:
        step = max(1, CHUNK_ELEMENTS // order.numel())
        outs = []
        for start in range(0, pix.shape[0], step):
            chunk = pix[start : start + step]
            if torch.is_grad_enabled() and math.ceil(pix.shape[0] / step) > 1:
                outs.append(checkpoint(composite_pixels, chunk, m, q, col, op, use_reentrant=False))
            else:
                outs.append(composite_pixels(chunk, m, q, col, op))
        rgb = torch.cat([o[0] for o in outs])
        trans = torch.cat([o[1] for o in outs])
    if background is not None:
        rgb = rgb + trans[:, None] * background
    return rgb.reshape(height, width, n_dim), (1.0 - trans).reshape(height, width, 1)


def composite_dense(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Dense compositing for C cameras (the ``torch_reference`` backend).

    Args:
        means2d [C, N, 2], conics [C, N, 3], colors [C, N, D], opacities [C, N],
        radii [C, N, 2], depths [C, N], backgrounds [C, D] or None.

    Returns:
        render_colors [C, H, W, D], render_alphas [C, H, W, 1].
    """
    outs = [
        composite_image(
            means2d[i], conics[i], colors[i], opacities[i], radii[i], depths[i], width, height,
            None if backgrounds is None else backgrounds[i],
        )
        for i in range(means2d.shape[0])
    ]  # fmt: skip
    return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])


@torch.no_grad()
def tiles_per_gauss(
    means2d: Tensor, radii: Tensor, tile_size: int, tile_width: int, tile_height: int
) -> Tensor:
    """Number of tiles each Gaussian touches, with gsplat's tile bounds. -> [C, N] int32"""
    tm = means2d / tile_size
    tr = radii.to(means2d.dtype) / tile_size
    lo, hi = torch.floor(tm - tr), torch.ceil(tm + tr)
    limit = torch.tensor([tile_width, tile_height], dtype=means2d.dtype, device=means2d.device)
    lo = torch.minimum(lo.clamp_min(0), limit)
    hi = torch.minimum(hi.clamp_min(0), limit)
    count = (hi - lo).prod(dim=-1) * (radii > 0).all(dim=-1)
    return count.to(torch.int32)
