"""Differentiable EWA projection of 3D Gaussians to the image plane (pure PyTorch).

Follows gsplat 1.5.x's ``fully_fused_projection`` (pinhole, non-packed, classic mode):
world-to-camera transform, the EWA Jacobian with gsplat's clamp of x/z and y/z to 1.3x the
field of view, the screen-space low-pass ``eps2d`` added to the 2D covariance, near/far and
off-screen culling, and gsplat's CUDA radius rule: per-axis, opacity-aware
(``extend = min(3.33, sqrt(2 ln(255 opacity)))``, culled when opacity < 1/255).

Autograd provides the backward; every function is a small map over tensors. This is the
reference (and the ``torch_reference`` backend's path, and the fallback when Ks needs a gradient
or inputs are not float32); the ``torch`` backend runs the same maths as one fused C++ kernel
each way (:mod:`splatbench.render.fused`, ``csrc/geometry.cpp``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
# gsplat's bound on the Gaussian's extent in standard deviations (before the opacity bound).
MAX_EXTEND_SIGMAS = 3.33


class Projection(NamedTuple):
    """Per camera and Gaussian projection results; entries with ``radii == 0`` are culled."""

    radii: Tensor  # [C, N, 2] int32
    means2d: Tensor  # [C, N, 2]
    depths: Tensor  # [C, N]
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse 2D covariance


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices from wxyz quaternions (normalised here). [..., 4] -> [..., 3, 3]"""
    w, x, y, z = F.normalize(quats, p=2, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape((*quats.shape[:-1], 3, 3))


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space covariances R S S^T R^T as their upper triangle. -> [N, 6]

    Entries are (xx, xy, xz, yy, yz, zz); quats [N, 4] wxyz, scales [N, 3].
    """
    M = quat_to_rotmat(quats) * scales[..., None, :]  # R @ diag(s); rows m0, m1, m2
    m0, m1, m2 = M.unbind(-2)
    pairs = [(m0, m0), (m0, m1), (m0, m2), (m1, m1), (m1, m2), (m2, m2)]
    return torch.stack([(u * v).sum(-1) for u, v in pairs], dim=-1)


_TRIU = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def covar_rotation_map(R: Tensor) -> Tensor:
    """Linear map on upper-triangle covariances for Sigma -> R Sigma R^T. [C, 3, 3] -> [C, 6, 6]

    One [N, 6] x [6, 6] matmul per camera is much faster on CPU than N tiny 3x3 products.
    """
    rows = []
    for i, m in _TRIU:
        cols = []
        for j, k in _TRIU:
            term = R[:, i, j] * R[:, m, k]
            if j != k:  # the off-diagonal entry stands for both (j, k) and (k, j)
                term = term + R[:, i, k] * R[:, m, j]
            cols.append(term)
        rows.append(torch.stack(cols, dim=-1))
    return torch.stack(rows, dim=-2)


def world_to_cam(means: Tensor, covars6: Tensor, viewmats: Tensor) -> tuple[Tensor, Tensor]:
    """Transform means [N, 3] and upper-triangle covariances [N, 6] by viewmats [C, 4, 4].

    Returns camera-space means [C, N, 3] and covariances [C, N, 6].
    """
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, None, :3, 3]  # [C, 1, 3]
    means_c = means[None] @ R.transpose(-1, -2) + t
    covars_c = covars6[None] @ covar_rotation_map(R).transpose(-1, -2)
    return means_c, covars_c


def persp_proj(
    means_c: Tensor, covars_c: Tensor, Ks: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """Pinhole projection with the EWA Jacobian.

    Args:
        means_c: camera-space means with z > 0 (callers substitute a safe z for culled ones).
            [C, N, 3]
        covars_c: camera-space covariances, upper triangle (xx, xy, xz, yy, yz, zz). [C, N, 6]
        Ks: intrinsics. [C, 3, 3]

    Returns:
        means2d [C, N, 2] and 2D covariances (xx, xy, yy) [C, N, 3] (without the low-pass).
    """
    x, y, z = means_c.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # The Jacobian is evaluated with x/z, y/z clamped to 1.3x the image's half field of view,
    # as gsplat and the original 3DGS do, so Gaussians far off-screen do not explode.
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    tx = z * torch.maximum(torch.minimum(x / z, lim_x_pos), -lim_x_neg)
    ty = z * torch.maximum(torch.minimum(y / z, lim_y_pos), -lim_y_neg)
    # J = [[j00, 0, j02], [0, j11, j12]]; J Sigma J^T written out (J is sparse).
    j00, j11 = fx / z, fy / z
    j02, j12 = -fx * tx / (z * z), -fy * ty / (z * z)
    s00, s01, s02, s11, s12, s22 = covars_c.unbind(-1)
    c00 = j00 * j00 * s00 + 2 * j00 * j02 * s02 + j02 * j02 * s22
    c01 = j00 * j11 * s01 + j00 * j12 * s02 + j02 * j11 * s12 + j02 * j12 * s22
    c11 = j11 * j11 * s11 + 2 * j11 * j12 * s12 + j12 * j12 * s22
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    return means2d, torch.stack([c00, c01, c11], dim=-1)


def fully_fused_projection(
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
    """Project N Gaussians into C cameras (gsplat's non-packed layout).

    Args:
        means: [N, 3]; quats: [N, 4] wxyz, any norm; scales: [N, 3] activated;
        opacities: [N] activated, used only for the radius bound (as gsplat's CUDA kernel);
        viewmats: world-to-camera [C, 4, 4]; Ks: [C, 3, 3].

    Returns:
        :class:`Projection` with radii [C, N, 2] int32 (0 where culled), means2d [C, N, 2],
        depths [C, N] (camera-space z), conics [C, N, 3]. Culled entries hold finite values
        that the rasterizer ignores.
    """
    covars = quat_scale_to_covar(quats, scales)
    means_c, covars_c = world_to_cam(means, covars, viewmats)
    depths = means_c[..., 2]
    in_depth = (depths >= near_plane) & (depths <= far_plane)
    # A safe z keeps culled entries finite so that zero upstream gradients stay zero (not NaN).
    safe_z = torch.where(in_depth, depths, torch.ones_like(depths))
    means_c_safe = torch.cat([means_c[..., :2], safe_z[..., None]], dim=-1)
    means2d, covars2d = persp_proj(means_c_safe, covars_c, Ks, width, height)

    a, b, c = covars2d.unbind(-1)
    a, c = a + eps2d, c + eps2d  # screen-space low-pass filter
    det = a * c - b * b
    valid = in_depth & (det > 0)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)

    radii = _radii(
        means2d.detach(), a.detach(), c.detach(), opacities.detach(), valid, width, height
    )
    return Projection(radii=radii, means2d=means2d, depths=depths, conics=conics)


@torch.no_grad()
def _radii(
    means2d: Tensor,
    var_x: Tensor,
    var_y: Tensor,
    opacities: Tensor,
    valid: Tensor,
    width: int,
    height: int,
) -> Tensor:
    """Per-axis pixel radii [C, N, 2] int32, 0 where culled (gsplat's CUDA rule)."""
    opac = opacities[None].expand_as(var_x)
    # Opacity-aware extent (gsplat, from arXiv:2402.00525 B.2): beyond it alpha < 1/255.
    extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
    extend = extend.clamp_max(MAX_EXTEND_SIGMAS)
    rx = torch.ceil(extend * torch.sqrt(var_x.clamp_min(0)))
    ry = torch.ceil(extend * torch.sqrt(var_y.clamp_min(0)))
    keep = valid & (opac >= ALPHA_THRESHOLD) & ((rx > 0) | (ry > 0))
    mx, my = means2d[..., 0], means2d[..., 1]
    keep &= (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
    radii = torch.stack([rx, ry], dim=-1) * keep[..., None]
    return radii.to(torch.int32)


def camera_centres(viewmats: Tensor) -> Tensor:
    """World-space camera centres [C, 3] from world-to-camera matrices [C, 4, 4]."""
    return torch.linalg.inv(viewmats)[:, :3, 3]
