"""The fast CPU compositor: tile binning, forward and backward in C++ (``csrc/rasterize.cpp``).

:func:`isect_tiles` and :func:`rasterize_to_pixels` mirror gsplat's functions of the same names
(non-packed layout, flatten ids index ``C * N``); the backward is hand-written in the kernel and
wrapped in a :class:`torch.autograd.Function`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from splatbench.render._ext import load_extension


@torch.no_grad()
def isect_tiles(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    tile_size: int,
    tile_width: int,
    tile_height: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bin Gaussians into tiles, each tile's list sorted front to back (ties by index).

    Args:
        means2d [C, N, 2], radii [C, N, 2] int32, depths [C, N].

    Returns:
        tiles_per_gauss [C, N] int32, isect_ids [M] int64 (gsplat's image|tile|depth key),
        flatten_ids [M] int32 (index into C * N), isect_offsets [C, tile_height, tile_width]
        int32 (start of each tile's run in the flat lists).
    """
    ext = load_extension()
    out = ext.isect_tiles(
        means2d.detach().float().contiguous(),
        radii.to(torch.int32).contiguous(),
        depths.detach().float().contiguous(),
        tile_size,
        tile_width,
        tile_height,
    )
    return out[0], out[1], out[2], out[3]


class _RasterizeToPixels(torch.autograd.Function):
    """Composite tile lists; backward walks each pixel back to front (as gsplat)."""

    @staticmethod
    def forward(
        ctx: Any,
        means2d: Tensor,  # [C, N, 2]
        conics: Tensor,  # [C, N, 3]
        colors: Tensor,  # [C, N, D]
        opacities: Tensor,  # [C, N]
        backgrounds: Tensor | None,  # [C, D]
        width: int,
        height: int,
        tile_size: int,
        isect_offsets: Tensor,  # [C, th, tw]
        flatten_ids: Tensor,  # [M]
        absgrad: bool,
    ) -> tuple[Tensor, Tensor]:
        ext = load_extension()
        bg = backgrounds if backgrounds is not None else means2d.new_empty(0)
        render_colors, render_alphas, final_ts, last_ids = ext.rasterize_fwd(
            means2d,
            conics,
            colors,
            opacities,
            bg,
            width,
            height,
            tile_size,
            isect_offsets,
            flatten_ids,
        )
        ctx.save_for_backward(
            means2d, conics, colors, opacities, bg, isect_offsets, flatten_ids, final_ts, last_ids
        )
        ctx.geometry = (width, height, tile_size)
        ctx.absgrad = absgrad
        return render_colors, render_alphas

    @staticmethod
    def backward(ctx: Any, v_render_colors: Tensor, v_render_alphas: Tensor) -> tuple:
        means2d, conics, colors, opacities, bg, offsets, flatten_ids, final_ts, last_ids = (
            ctx.saved_tensors
        )
        width, height, tile_size = ctx.geometry
        ext = load_extension()
        v_means2d, v_conics, v_colors, v_opacities, v_abs = ext.rasterize_bwd(
            means2d,
            conics,
            colors,
            opacities,
            bg,
            width,
            height,
            tile_size,
            offsets,
            flatten_ids,
            final_ts,
            last_ids,
            v_render_colors.float().contiguous(),
            v_render_alphas.float().contiguous(),
            ctx.absgrad,
        )
        if ctx.absgrad:
            # gsplat's convention: the absolute screen-space gradient rides on means2d itself,
            # where DefaultStrategy(absgrad=True) reads info["means2d"].absgrad.
            means2d.absgrad = v_abs
        v_bg = None
        if ctx.needs_input_grad[4]:
            v_bg = (v_render_colors * final_ts[..., None]).sum(dim=(1, 2))
        return (
            v_means2d, v_conics, v_colors, v_opacities, v_bg,
            None, None, None, None, None, None,
        )  # fmt: skip


def rasterize_to_pixels(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    width: int,
    height: int,
    tile_size: int,
    isect_offsets: Tensor,
    flatten_ids: Tensor,
    backgrounds: Tensor | None = None,
    absgrad: bool = False,
) -> tuple[Tensor, Tensor]:
    """Differentiable tile compositing.

    Args:
        means2d [C, N, 2], conics [C, N, 3], colors [C, N, D] (D in 1, 3, 4),
        opacities [C, N], isect_offsets / flatten_ids from :func:`isect_tiles`,
        backgrounds [C, D] or None.

    Returns:
        render_colors [C, H, W, D], render_alphas [C, H, W, 1]. With ``absgrad`` the backward
        sets ``means2d.absgrad`` [C, N, 2] (sum over pixels of |d loss / d means2d|).
    """
    return _RasterizeToPixels.apply(
        means2d.contiguous(),
        conics.contiguous(),
        colors.contiguous(),
        opacities.contiguous(),
        None if backgrounds is None else backgrounds.contiguous(),
        width,
        height,
        tile_size,
        isect_offsets.contiguous(),
        flatten_ids.contiguous(),
        absgrad,
    )
