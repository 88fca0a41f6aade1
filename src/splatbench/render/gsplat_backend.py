"""The CUDA backend: a thin call into ``gsplat.rasterization`` (imported lazily), and the
check that decides whether it can run here (:func:`gsplat_verdict`)."""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from splatbench.render.errors import RenderBackendError

INSTALL_HINT = (
    "on a machine with an NVIDIA GPU, install a CUDA build of torch, then gsplat: a prebuilt "
    "wheel matching your torch and CUDA, or `pip install gsplat`, whose kernels compile on "
    'first use and need the CUDA toolkit (nvcc); check with `python -c "import '
    "gsplat.cuda._backend as b; print(b._C)\"`. On CPU-only machines use backend='torch'"
)


@dataclass(frozen=True)
class GsplatProbes:
    """The checks behind the gsplat verdict, injectable so the decision logic is testable on a
    machine without CUDA (tests replace them; production uses the defaults)."""

    cuda_available: Callable[[], bool] = torch.cuda.is_available
    import_gsplat: Callable[[], ModuleType] = lambda: importlib.import_module("gsplat")
    load_kernels: Callable[[], Any] = lambda: _load_kernels()
    test_render: Callable[[ModuleType], None] = lambda gsplat: _one_gaussian_render(gsplat)


@dataclass(frozen=True)
class GsplatVerdict:
    """Whether gsplat can render here (``reason`` None) and how long finding out took.

    ``seconds`` includes loading (or JIT-compiling, on first use without a prebuilt wheel)
    gsplat's CUDA kernels and one test render: setup time, kept out of training time.
    """

    reason: str | None
    seconds: float


def _load_kernels() -> Any:
    # gsplat imports its CUDA extension lazily, on the first kernel call; importing
    # gsplat.cuda._backend loads it now (compiling it with nvcc on first use when no prebuilt
    # wheel is installed). A failed build leaves `_C` None rather than raising.
    backend = importlib.import_module("gsplat.cuda._backend")
    return getattr(backend, "_C", None)


def _one_gaussian_render(gsplat: ModuleType) -> None:
    """Forward and backward of one Gaussian in a 16x16 view: every kernel a step needs."""
    dev = torch.device("cuda")
    means = torch.tensor([[0.0, 0.0, 2.0]], device=dev, requires_grad=True)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=dev)
    scales = torch.full((1, 3), 0.2, device=dev)
    opacities = torch.tensor([0.9], device=dev)
    colors = torch.ones((1, 3), device=dev)
    viewmats = torch.eye(4, device=dev)[None]
    Ks = torch.tensor([[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]], device=dev)
    img, _, _ = gsplat.rasterization(means, quats, scales, opacities, colors, viewmats, Ks,
                                     16, 16, packed=False)  # fmt: skip
    img.sum().backward()
    torch.cuda.synchronize()
    if not bool(torch.isfinite(img).all()) or float(img[0, 8, 8].max()) <= 0:
        raise RuntimeError("the test render of one Gaussian came out empty or non-finite")
    if means.grad is None or not bool(torch.isfinite(means.grad).all()):
        raise RuntimeError("the test render's backward pass gave no finite gradient")


def probe_gsplat(probes: GsplatProbes | None = None) -> GsplatVerdict:
    """Check that gsplat can render here: CUDA, the package, its compiled kernels
    (``gsplat.cuda._backend._C`` is not None) and a one-Gaussian render with its backward."""
    probes = probes or GsplatProbes()
    t0 = time.perf_counter()

    def verdict(reason: str | None) -> GsplatVerdict:
        return GsplatVerdict(reason, time.perf_counter() - t0)

    try:
        if not probes.cuda_available():
            return verdict("CUDA is not available (torch.cuda.is_available() is False)")
    except Exception as exc:  # a broken driver can raise here
        return verdict(f"CUDA cannot be queried ({type(exc).__name__}: {exc})")
    try:
        gsplat = probes.import_gsplat()
    except Exception as exc:  # ImportError, or a failure inside gsplat's import
        return verdict(f"gsplat cannot be imported ({type(exc).__name__}: {exc})")
    try:
        kernels = probes.load_kernels()
    except Exception as exc:
        return verdict(f"gsplat's CUDA kernels failed to load ({type(exc).__name__}: {exc})")
    if kernels is None:
        return verdict(
            "gsplat's CUDA kernels are not built (gsplat.cuda._backend._C is None: no "
            "prebuilt extension and no CUDA toolkit/nvcc to compile one)"
        )
    try:
        probes.test_render(gsplat)
    except Exception as exc:
        return verdict(f"gsplat's test render failed ({type(exc).__name__}: {exc})")
    return verdict(None)


@functools.lru_cache(maxsize=1)
def gsplat_verdict() -> GsplatVerdict:
    """:func:`probe_gsplat` with the real probes, once per process (the kernels load once)."""
    return probe_gsplat()


def gsplat_unavailable_reason() -> str | None:
    """None when the gsplat backend can run here, else why not (cached per process)."""
    return gsplat_verdict().reason


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
