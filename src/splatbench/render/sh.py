"""Real spherical harmonics in gsplat's convention (degrees 0-4).

The basis is the one gsplat and the original 3DGS use (Sloan, "Efficient Spherical Harmonic
Evaluation", JCGT 2013), with the same sign choices, so SH coefficients trained with either
backend decode to the same colours. Colours are ``max(SH(dir) + 0.5, 0)`` where ``dir`` is the
normalised vector from the camera centre to the Gaussian mean.

The ``torch`` backend evaluates degrees 0-3 with a fused C++ kernel
(:mod:`splatbench.render.fused`); this module is its reference and the degree-4 path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.28209479177387814
MAX_SH_DEGREE = 4


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients for a degree: (degree + 1)^2."""
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """SH basis values at unit directions. dirs [..., 3] -> [..., (degree + 1)^2]"""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    out = [torch.full_like(dirs[..., 0], SH_C0)]
    if degree == 0:
        return torch.stack(out, dim=-1)
    x, y, z = dirs.unbind(-1)
    # degree 1: indices 1..3 = (y, z, x) with the Condon-Shortley sign on y and x
    c1 = 0.48860251190292
    out += [-c1 * y, c1 * z, -c1 * x]
    if degree >= 2:
        z2 = z * z
        c1_xy = x * x - y * y  # cos(2 phi) sin^2(theta)
        s1_xy = 2.0 * x * y  # sin(2 phi) sin^2(theta)
        b2 = -1.092548430592079 * z
        p6 = 0.9461746957575601 * z2 - 0.3153915652525201
        out += [0.5462742152960395 * s1_xy, b2 * y, p6, b2 * x, 0.5462742152960395 * c1_xy]
    if degree >= 3:
        c2_xy = x * c1_xy - y * s1_xy
        s2_xy = x * s1_xy + y * c1_xy
        c3 = -2.285228997322329 * z2 + 0.4570457994644658
        b3 = 1.445305721320277 * z
        p12 = z * (1.865881662950577 * z2 - 1.119528997770346)
        out += [
            -0.5900435899266435 * s2_xy, b3 * s1_xy, c3 * y, p12, c3 * x, b3 * c1_xy,
            -0.5900435899266435 * c2_xy,
        ]  # fmt: skip
    if degree >= 4:
        c3_xy = x * c2_xy - y * s2_xy
        s3_xy = x * s2_xy + y * c2_xy
        d4 = z * (-4.683325804901025 * z2 + 2.007139630671868)
        c4 = 3.31161143515146 * z2 - 0.47308734787878
        b4 = -1.770130769779931 * z
        p20 = 1.984313483298443 * z * p12 - 1.006230589874905 * p6
        out += [
            0.6258357354491763 * s3_xy, b4 * s2_xy, c4 * s1_xy, d4 * y, p20, d4 * x,
            c4 * c1_xy, b4 * c2_xy, 0.6258357354491763 * c3_xy,
        ]  # fmt: skip
    return torch.stack(out, dim=-1)


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate SH colours (before gsplat's +0.5 offset).

    Args:
        degree: SH degree to use; coefficients beyond (degree + 1)^2 are ignored.
        dirs: view directions, any length. [..., 3]
        coeffs: SH coefficients. [..., K, 3] with K >= (degree + 1)^2

    Returns:
        [..., 3]
    """
    k = num_sh_bases(degree)
    if coeffs.shape[-2] < k:
        raise ValueError(
            f"sh_degree={degree} needs {k} SH coefficients per Gaussian, colors has "
            f"{coeffs.shape[-2]}"
        )
    if degree == 0:
        return SH_C0 * coeffs[..., 0, :]
    bases = sh_bases(degree, F.normalize(dirs, p=2, dim=-1))  # [..., k]
    return (bases[..., None] * coeffs[..., :k, :]).sum(dim=-2)


def sh_to_rgb(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colours as gsplat renders them: ``clamp_min(SH + 0.5, 0)``. -> [..., 3]"""
    return torch.clamp_min(spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)
