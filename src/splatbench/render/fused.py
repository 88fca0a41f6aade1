"""Fused C++ projection and SH colours for the ``torch`` backend (``csrc/geometry.cpp``).

Same results as :func:`splatbench.render.projection.fully_fused_projection` and
:func:`splatbench.render.sh.sh_to_rgb` (which stay the reference and the fallback), but each is
one pass over the Gaussians forward and one backward, instead of ~100 small autograd ops. In a
CPU training step the autograd graph of those ops cost several times the tile rasterizer.

Gradients go to means, quats, scales, viewmats (projection) and to the SH coefficients, means and
camera centres (colours); the outputs ``means2d`` etc. are ordinary non-leaf tensors, so the
densification strategy can still ``retain_grad()`` them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from splatbench.render._ext import load_extension
from splatbench.render.projection import Projection, camera_centres

# Highest SH degree with a fused kernel; degree 4 uses the PyTorch implementation.
MAX_FUSED_SH_DEGREE = 3


def _all_float32(*tensors: Tensor) -> bool:
    return all(t.dtype == torch.float32 for t in tensors)


def can_fuse_projection(*tensors: Tensor, Ks: Tensor) -> bool:
    """Whether the fused projection applies: float32 inputs, no gradient wanted for Ks."""
    return _all_float32(*tensors, Ks) and not Ks.requires_grad


def can_fuse_sh(sh_degree: int | None, means: Tensor, colors: Tensor, viewmats: Tensor) -> bool:
    """Whether the fused SH kernel applies: SH colours of degree 0..3 in float32."""
    return (
        sh_degree is not None
        and 0 <= sh_degree <= MAX_FUSED_SH_DEGREE
        and _all_float32(means, colors, viewmats)
    )


class _FusedProjection(torch.autograd.Function):
    """EWA projection; the backward recomputes the per-Gaussian forward (cheaper than saving)."""

    @staticmethod
    def forward(
        ctx: Any,
        means: Tensor,  # [N, 3]
        quats: Tensor,  # [N, 4]
        scales: Tensor,  # [N, 3]
        opacities: Tensor,  # [N], radius bound only (no gradient, as in the torch version)
        viewmats: Tensor,  # [C, 4, 4]
        Ks: Tensor,  # [C, 3, 3]
        settings: tuple[int, int, float, float, float],  # width, height, eps2d, near, far
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        radii, means2d, depths, conics = load_extension().project_fwd(
            means, quats, scales, opacities, viewmats, Ks, *settings
        )
        ctx.mark_non_differentiable(radii)
        ctx.save_for_backward(means, quats, scales, viewmats, Ks)
        ctx.settings = settings
        return radii, means2d, depths, conics

    @staticmethod
    def backward(
        ctx: Any, _v_radii: Tensor, v_means2d: Tensor, v_depths: Tensor, v_conics: Tensor
    ) -> tuple:
        means, quats, scales, viewmats, Ks = ctx.saved_tensors
        want_view = ctx.needs_input_grad[4]
        v_means, v_quats, v_scales, v_view = load_extension().project_bwd(
            means, quats, scales, viewmats, Ks, *ctx.settings,
            v_means2d.contiguous(), v_depths.contiguous(), v_conics.contiguous(), want_view,
        )  # fmt: skip
        v_viewmats = _viewmat_grad(v_view, viewmats) if want_view else None
        return v_means, v_quats, v_scales, None, v_viewmats, None, None


def _viewmat_grad(v_view: Tensor, viewmats: Tensor) -> Tensor:
    """Per-Gaussian [C, N, 12] (rotation rows, translation) -> [C, 4, 4] summed over N."""
    g = v_view.sum(dim=1)  # [C, 12]
    out = torch.zeros_like(viewmats)
    out[:, :3, :3] = g[:, :9].reshape(-1, 3, 3)
    out[:, :3, 3] = g[:, 9:]
    return out


def fused_projection(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projection:
    """Drop-in for :func:`~splatbench.render.projection.fully_fused_projection` (float32).

    Args/returns as there: means [N, 3], quats [N, 4], scales [N, 3], opacities [N],
    viewmats [C, 4, 4], Ks [C, 3, 3] -> radii [C, N, 2] int32, means2d [C, N, 2],
    depths [C, N], conics [C, N, 3].
    """
    settings = (int(width), int(height), float(eps2d), float(near_plane), float(far_plane))
    radii, means2d, depths, conics = _FusedProjection.apply(
        means.contiguous(), quats.contiguous(), scales.contiguous(),
        opacities.detach().contiguous(), viewmats.contiguous(), Ks.detach().contiguous(),
        settings,
    )  # fmt: skip
    return Projection(radii=radii, means2d=means2d, depths=depths, conics=conics)


class _FusedSH(torch.autograd.Function):
    """clamp_min(SH(normalise(mean - campos)) + 0.5, 0) per camera and Gaussian."""

    @staticmethod
    def forward(
        ctx: Any,
        degree: int,
        means: Tensor,  # [N, 3]
        campos: Tensor,  # [C, 3]
        coeffs: Tensor,  # [N, K, 3] or [C, N, K, 3]
    ) -> Tensor:
        coeffs4 = coeffs if coeffs.dim() == 4 else coeffs.unsqueeze(0)
        ctx.save_for_backward(means, campos, coeffs4)
        ctx.degree = degree
        ctx.coeffs_shape = coeffs.shape
        return load_extension().sh_fwd(degree, means, campos, coeffs4)

    @staticmethod
    def backward(ctx: Any, v_colors: Tensor) -> tuple:
        means, campos, coeffs4 = ctx.saved_tensors
        # The kernel sums over cameras for means; camera centres need a sum over Gaussians,
        # done here from per-entry direction gradients (only when viewmats want a gradient).
        v_coeffs, v_means, v_dirs = load_extension().sh_bwd(
            ctx.degree, means, campos, coeffs4, v_colors.contiguous(),
            ctx.needs_input_grad[1], ctx.needs_input_grad[2],
        )  # fmt: skip
        # Empty results: degree 0 colours do not depend on the direction.
        v_means = v_means if v_means.numel() > 0 else None
        v_campos = -v_dirs.sum(dim=1) if v_dirs.numel() > 0 else None  # dirs = means - campos
        return None, v_means, v_campos, v_coeffs.reshape(ctx.coeffs_shape)


def fused_sh_colors(sh_degree: int, means: Tensor, coeffs: Tensor, viewmats: Tensor) -> Tensor:
    """Per camera RGB [C, N, 3] from SH coefficients [N, K, 3] or [C, N, K, 3] (degree 0..3).

    Equals ``sh_to_rgb(degree, means - camera_centre, coeffs)`` as in
    :func:`splatbench.render.api.gaussian_colors`.
    """
    # Degree 0 has no view dependence: any [C, 3] will do, and it needs no gradient.
    campos = viewmats.detach()[:, :3, 3] if sh_degree == 0 else camera_centres(viewmats)
    return _FusedSH.apply(sh_degree, means.contiguous(), campos.contiguous(), coeffs.contiguous())
