"""Rendering backends behind one interface: ``rasterize`` (gsplat.rasterization semantics).

Backends: ``torch`` (CPU: fused C++ projection and SH kernels and a C++ tile rasterizer, all
with hand-written backwards, built on first use), ``torch_reference`` (dense pure-PyTorch
oracle), ``gsplat`` (CUDA), ``auto``.
"""

from __future__ import annotations

from splatbench.render.api import BACKENDS, gaussian_colors, rasterize, resolve_backend
from splatbench.render.errors import RenderBackendError
from splatbench.render.gsplat_backend import gsplat_unavailable_reason

__all__ = [
    "BACKENDS",
    "RenderBackendError",
    "gaussian_colors",
    "gsplat_unavailable_reason",
    "rasterize",
    "resolve_backend",
]
