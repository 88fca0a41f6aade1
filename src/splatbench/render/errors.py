"""Errors raised by the rendering backends."""

from __future__ import annotations

from splatbench.errors import SplatbenchError


class RenderBackendError(SplatbenchError):
    """A rendering backend is unavailable (no CUDA, gsplat missing, C++ build failed)."""
