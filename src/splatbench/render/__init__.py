"""Rendering backends behind one interface: ``rasterize`` (gsplat.rasterization semantics).

Backends: ``torch`` (CPU: fused C++ projection and SH kernels and a C++ tile rasterizer, all
with hand-written backwards, built on first use), ``torch_reference`` (dense pure-PyTorch
oracle), ``gsplat`` (CUDA), ``auto``.
"""

from __future__ import annotations

from splatbench.render.api import (
    BACKENDS,
    decide_backend,
    gaussian_colors,
    prepare_backend,
    rasterize,
    resolve_backend,
)
from splatbench.render.errors import RenderBackendError
from splatbench.render.gsplat_backend import (
    GsplatProbes,
    GsplatVerdict,
    gsplat_unavailable_reason,
    gsplat_verdict,
    probe_gsplat,
)

__all__ = [
    "BACKENDS",
    "GsplatProbes",
    "GsplatVerdict",
    "RenderBackendError",
    "decide_backend",
    "gaussian_colors",
    "gsplat_unavailable_reason",
    "gsplat_verdict",
    "prepare_backend",
    "probe_gsplat",
    "rasterize",
    "resolve_backend",
]
