"""``rasterize``: one interface over the CPU (torch) and CUDA (gsplat) backends.

Semantics are those of ``gsplat.rasterization`` in non-packed, classic, RGB mode, and the
returned ``info`` carries the keys gsplat's ``DefaultStrategy`` reads (``means2d`` with its
``.grad``/``.absgrad``, ``radii`` [C, N, 2], ``width``, ``height``, ``n_cameras``,
``gaussian_ids``), so the same densification code drives every backend.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Literal

import torch
from torch import Tensor

from splatbench.render import reference
from splatbench.render.errors import RenderBackendError
from splatbench.render.fused import (
    can_fuse_projection,
    can_fuse_sh,
    fused_projection,
    fused_sh_colors,
)
from splatbench.render.gsplat_backend import (
    INSTALL_HINT,
    gsplat_unavailable_reason,
    gsplat_verdict,
    rasterize_gsplat,
)
from splatbench.render.projection import Projection, camera_centres, fully_fused_projection
from splatbench.render.sh import MAX_SH_DEGREE, num_sh_bases, sh_to_rgb

Backend = Literal["torch", "torch_reference", "gsplat", "auto"]
BACKENDS: tuple[str, ...] = ("torch", "torch_reference", "gsplat", "auto")


def decide_backend(requested: str, gsplat_reason: str | None, cuda_available: bool) -> str:
    """The concrete backend for ``requested`` given the gsplat verdict (pure; see
    :func:`resolve_backend`).

    ``auto``: gsplat when it can run, else torch, with a warning when a GPU is present (gsplat
    installed without its kernels, say). ``gsplat`` asked for explicitly and unusable: an error
    with the install hint.
    """
    if requested not in BACKENDS:
        raise ValueError(
            f"unknown render backend {requested!r}; choose one of {', '.join(BACKENDS)}"
        )
    if requested == "auto":
        if gsplat_reason is None:
            return "gsplat"
        if cuda_available:
            warnings.warn(
                f"backend 'auto' falls back to the CPU rasterizer although CUDA is available: "
                f"{gsplat_reason}. Fix: {INSTALL_HINT}",
                RuntimeWarning,
                stacklevel=3,
            )
        return "torch"
    if requested == "gsplat" and gsplat_reason is not None:
        raise RenderBackendError(
            f"backend 'gsplat' was requested but cannot run here: {gsplat_reason}",
            fix=INSTALL_HINT,
        )
    return requested


def resolve_backend(backend: str) -> str:
    """Concrete backend for a name: ``auto`` is gsplat when its kernels work here (checked once
    per process by :func:`~splatbench.render.gsplat_backend.gsplat_verdict`), else torch."""
    if backend in ("torch", "torch_reference"):
        return backend
    reason = gsplat_unavailable_reason()
    return decide_backend(backend, reason, reason is None or _cuda_available())


def _cuda_available() -> bool:
    try:
        return torch.cuda.is_available()
    except Exception:  # a broken driver: treat as no GPU
        return False


def prepare_backend(backend: str) -> float:
    """Load (or build) ``backend``'s kernels now; returns the seconds it took.

    Training and evaluation call this before starting their clocks, so a first-use compile
    (the CPU rasterizer's C++ extension, gsplat's CUDA extension) is reported as setup time
    instead of inflating training time.
    """
    if backend == "gsplat":
        return gsplat_verdict().seconds
    if backend == "torch":
        from splatbench.render._ext import load_extension

        t0 = time.perf_counter()
        load_extension()
        return time.perf_counter() - t0
    return 0.0


def _check_inputs(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    backgrounds: Tensor | None,
) -> None:
    """Shape checks with messages that name the argument (gsplat asserts instead)."""
    n = means.shape[0] if means.dim() == 2 else -1
    c = viewmats.shape[0] if viewmats.dim() == 3 else -1
    expect = {
        "means": (means, (n, 3)),
        "quats": (quats, (n, 4)),
        "scales": (scales, (n, 3)),
        "opacities": (opacities, (n,)),
        "viewmats": (viewmats, (c, 4, 4)),
        "Ks": (Ks, (c, 3, 3)),
    }
    for name, (t, shape) in expect.items():
        if tuple(t.shape) != shape or -1 in shape:
            raise ValueError(f"{name} must have shape {_fmt(shape)}, got {tuple(t.shape)}")
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    if sh_degree is None:
        if colors.shape not in ((n, 3), (c, n, 3)):
            raise ValueError(
                f"colors must be RGB [N, 3] or [C, N, 3] when sh_degree is None, got "
                f"{tuple(colors.shape)}"
            )
    else:
        if not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"sh_degree must be in 0..{MAX_SH_DEGREE}, got {sh_degree}")
        k = num_sh_bases(sh_degree)
        ok = colors.dim() in (3, 4) and colors.shape[-1] == 3 and colors.shape[-2] >= k
        ok = ok and tuple(colors.shape[:-2]) in ((n,), (c, n))
        if not ok:
            raise ValueError(
                f"colors must be SH coefficients [N, K, 3] (or [C, N, K, 3]) with K >= {k} for "
                f"sh_degree={sh_degree}, got {tuple(colors.shape)}"
            )
    if backgrounds is not None and tuple(backgrounds.shape) != (c, 3):
        raise ValueError(
            f"backgrounds must have shape [C, 3] = {[c, 3]}, got {tuple(backgrounds.shape)}"
        )


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if s == -1 else str(s) for s in shape) + "]"


def gaussian_colors(
    means: Tensor, colors: Tensor, viewmats: Tensor, sh_degree: int | None
) -> Tensor:
    """Per camera RGB colours [C, N, 3]: RGB broadcast, or SH evaluated as gsplat does.

    For SH the view direction is the mean minus the camera centre (normalised), and the colour
    is ``clamp_min(SH + 0.5, 0)``.
    """
    n_cams, n = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        return colors.expand(n_cams, n, 3) if colors.dim() == 2 else colors
    coeffs = colors if colors.dim() == 4 else colors.expand(n_cams, *colors.shape)
    dirs = means[None, :, :] - camera_centres(viewmats)[:, None, :]  # [C, N, 3]
    return sh_to_rgb(sh_degree, dirs, coeffs)


def _project_and_shade(
    name: str,
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    **planes: float,
) -> tuple[Projection, Tensor]:
    """Projection and per camera RGB [C, N, 3] for the CPU backends.

    ``torch`` uses the fused C++ kernels where they apply (float32, SH degree <= 3, no gradient
    for Ks); ``torch_reference`` and the remaining cases use the PyTorch implementation.
    """
    if name == "torch" and can_fuse_projection(means, quats, scales, opacities, viewmats, Ks=Ks):
        proj = fused_projection(means, quats, scales, opacities, viewmats, Ks, width, height,
                                **planes)  # fmt: skip
    else:
        proj = fully_fused_projection(
            means, quats, scales, opacities, viewmats, Ks, width, height, **planes
        )
    if name == "torch" and can_fuse_sh(sh_degree, means, colors, viewmats):
        assert sh_degree is not None
        rgb = fused_sh_colors(sh_degree, means, colors, viewmats)
    else:
        rgb = gaussian_colors(means, colors, viewmats, sh_degree)
    return proj, rgb


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backgrounds: Tensor | None = None,
    absgrad: bool = False,
    backend: Backend = "torch",
    tile_size: int = 16,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render N Gaussians into C pinhole cameras (``gsplat.rasterization`` semantics).

    Args:
        means: [N, 3]. quats: [N, 4] wxyz, need not be normalised. scales: [N, 3] activated.
        opacities: [N] activated. colors: [N, K, 3] SH coefficients when ``sh_degree`` is
            given, else [N, 3] RGB (per camera [C, N, ...] also accepted).
        viewmats: world-to-camera [C, 4, 4]. Ks: [C, 3, 3]. width, height: pixels.
        sh_degree: SH degree to evaluate (0-4), None for RGB colours.
        near_plane, far_plane: depth culling in camera z.
        eps2d: screen-space low-pass added to the 2D covariance diagonal.
        backgrounds: [C, 3] added as ``T_final * bg``, or None.
        absgrad: also accumulate |d loss / d means2d| into ``info["means2d"].absgrad``.
        backend: "torch" (fused C++ projection/SH + C++ tiles), "torch_reference" (dense
            autograd oracle), "gsplat" (CUDA) or "auto" (gsplat when CUDA and gsplat are
            available, else torch).
        tile_size: tile edge in pixels.

    Returns:
        render_colors [C, H, W, 3], render_alphas [C, H, W, 1], and ``info`` with gsplat's
        keys: means2d [C, N, 2] (non-leaf; ``retain_grad()`` it before backward), radii
        [C, N, 2] int32 (0 = culled), depths [C, N], conics [C, N, 3], opacities [C, N],
        gaussian_ids/camera_ids/batch_ids None (non-packed), width, height, n_cameras,
        n_batches, tile_size, tile_width, tile_height, tiles_per_gauss [C, N] int32,
        isect_ids, flatten_ids, isect_offsets (None for torch_reference), and backend.

    Raises:
        ValueError: bad shapes, dtypes or names. RenderBackendError: the backend cannot run
        here (no CUDA/gsplat, or the C++ rasterizer failed to build).
    """
    name = resolve_backend(backend)
    _check_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds
    )
    if name == "gsplat":
        return rasterize_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            sh_degree=sh_degree, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d,
            backgrounds=backgrounds, absgrad=absgrad, tile_size=tile_size,
        )  # fmt: skip
    if means.device.type != "cpu":
        raise RenderBackendError(
            f"backend {name!r} renders on the CPU but means is on {means.device}",
            fix="use backend='gsplat' (or 'auto') for CUDA tensors, or move the inputs to CPU",
        )
    if name == "torch" and means.dtype != torch.float32:
        raise ValueError(f"backend 'torch' needs float32 tensors, got {means.dtype}")
    if name == "torch_reference" and absgrad:
        raise ValueError("absgrad needs backend 'torch' or 'gsplat' (autograd cannot sum |grad|)")

    proj, rgb = _project_and_shade(
        name, means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
        eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
    )  # fmt: skip
    n_cams, n = viewmats.shape[0], means.shape[0]
    opac = opacities[None, :].expand(n_cams, n)  # [C, N]
    tile_width = math.ceil(width / tile_size)
    tile_height = math.ceil(height / tile_size)

    if name == "torch":
        from splatbench.render.tiles import isect_tiles, rasterize_to_pixels

        tiles_per_gauss, isect_ids, flatten_ids, isect_offsets = isect_tiles(
            proj.means2d, proj.radii, proj.depths, tile_size, tile_width, tile_height
        )
        render_colors, render_alphas = rasterize_to_pixels(
            proj.means2d, proj.conics, rgb, opac, width, height, tile_size, isect_offsets,
            flatten_ids, backgrounds=backgrounds, absgrad=absgrad,
        )  # fmt: skip
    else:
        render_colors, render_alphas = reference.composite_dense(
            proj.means2d, proj.conics, rgb, opac, proj.radii, proj.depths, width, height,
            backgrounds,
        )  # fmt: skip
        tiles_per_gauss = reference.tiles_per_gauss(
            proj.means2d, proj.radii, tile_size, tile_width, tile_height
        )
        isect_ids = flatten_ids = isect_offsets = None

    info: dict[str, Any] = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opac,
        "tile_width": tile_width,
        "tile_height": tile_height,
        "tiles_per_gauss": tiles_per_gauss,
        "isect_ids": isect_ids,
        "flatten_ids": flatten_ids,
        "isect_offsets": isect_offsets,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": n_cams,
        "backend": name,
    }
    return render_colors, render_alphas, info
