"""The CUDA backend: a thin call into ``gsplat.rasterization`` (imported lazily)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from splatbench.render.errors import RenderBackendError

INSTALL_HINT = (
    "on a machine with an NVIDIA GPU and the CUDA toolkit (nvcc), install a CUDA build of torch "
    "and then `pip install gsplat` (or `pip install splatbench[gpu]`); on CPU-only machines use "
    "backend='torch'"
)


def gsplat_unavailable_reason() -> str | None:
    """None when the gsplat backend can run here, else why not."""
    if not torch.cuda.is_available():
        return "CUDA is not available (torch.cuda.is_available() is False)"
    try:
        importlib.import_module("gsplat")
    except Exception as exc:  # ImportError, or a failed CUDA build inside gsplat's import
        return f"gsplat cannot be imported ({type(exc).__name__}: {exc})"
    return None


def _import_gsplat() -> ModuleType:
    reason = gsplat_unavailable_reason()
    if reason is not None:
        raise RenderBackendError(
            f"the gsplat rendering backend is unavailable: {reason}", fix=INSTALL_HINT
        )
    return importlib.import_module("gsplat")


def rasterize_gsplat(
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
    sh_degree: int | None,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    backgrounds: Tensor | None,
    absgrad: bool,
    tile_size: int,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``gsplat.rasterization`` in non-packed, classic, RGB mode; its info dict unchanged."""
    gsplat = _import_gsplat()
    if not means.is_cuda:
        raise RenderBackendError(
            f"the gsplat backend needs CUDA tensors, got means on {means.device}",
            fix="move the Gaussians and cameras to the GPU (.cuda()) or use backend='torch'",
        )
    colors_out, alphas, info = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree,
        packed=False, tile_size=tile_size, backgrounds=backgrounds, absgrad=absgrad,
        rasterize_mode="classic", render_mode="RGB",
    )  # fmt: skip
    info["backend"] = "gsplat"
    return colors_out, alphas, info
