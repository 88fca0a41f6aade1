"""Structural similarity (Wang et al. 2004) under the three border conventions in use.

Common to all three: an 11x11 Gaussian window with sigma 1.5 (the 1-D taps are
``exp(-x^2 / (2 sigma^2))`` for ``x = -5..5``, normalised to sum 1), population (not sample)
statistics, ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L = data_range``, the SSIM map::

    ((2 mu_x mu_y + C1) (2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

averaged over pixels per channel, then over channels (equal-sized channels, so this is also the
mean over all map entries). They differ only at the image border, where the window does not fit:

``"zero"`` (original 3DGS, ``utils/loss_utils.py``)
    The image is zero-padded by 5 pixels ("same" convolution with ``padding = 5``); the map has
    the image's size and every pixel counts. Near the border, mu and sigma are computed over a
    window partly filled with zeros *in both images*, which inflates the score for most pairs.

``"reflect"`` (torchmetrics 1.9 ``structural_similarity_index_measure``, used by gsplat's eval)
    The image is reflect-padded by 5 pixels (mirror about the edge pixel, edge not repeated:
    ``torch.nn.functional.pad(mode="reflect")``, numpy ``"reflect"``, scipy ``"mirror"``); the map
    has the image's size and every pixel counts (torchmetrics does not crop the padded border).

``"valid"`` (scikit-image ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``, NerfBaselines / mip-NeRF)
    Only windows that lie fully inside the image: the map is ``(H - 10) x (W - 10)``. scikit-image
    filters with padding and then crops 5 pixels per side, which is the same thing.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F

from splatbench.metrics._images import ImageLike, MetricInputError, as_pair

SsimBorder = Literal["zero", "reflect", "valid"]
SsimBackend = Literal["auto", "torch", "torchmetrics"]
SSIM_BORDERS: tuple[str, ...] = ("zero", "reflect", "valid")

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1 = 0.01
K2 = 0.03

_log = logging.getLogger(__name__)


def gaussian_taps(
    size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, ``[size]``, centred on ``size // 2``."""
    x = torch.arange(size, dtype=torch.float64) - (size // 2)
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype)


def _window_mean(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted window means of an already padded ``[N, C, H, W]`` stack.

    'Valid' correlation: the output is ``[N, C, H - k + 1, W - k + 1]``. The 2-D window is the
    outer product of the 1-D taps, so two 1-D passes equal one 11x11 pass (22 instead of 121
    multiply-adds per pixel); depthwise (``groups = C``) because SSIM never mixes channels.
    """
    c = x.shape[1]
    k = taps.numel()
    row = taps.view(1, 1, 1, k).expand(c, 1, 1, k)
    col = taps.view(1, 1, k, 1).expand(c, 1, k, 1)
    return F.conv2d(F.conv2d(x, row, groups=c), col, groups=c)


def _unknown_border(border: object) -> MetricInputError:
    return MetricInputError(
        f"unknown SSIM border {border!r}; allowed: {', '.join(SSIM_BORDERS)}",
        fix="use border='zero' (3DGS), 'reflect' (gsplat) or 'valid' (NerfBaselines)",
    )


def ssim_map(
    pred: torch.Tensor, target: torch.Tensor, border: SsimBorder, data_range: float = 1.0
) -> torch.Tensor:
    """SSIM map for ``[B, C, H, W]`` tensors: ``[B, C, H, W]`` (zero, reflect) or
    ``[B, C, H - 10, W - 10]`` (valid). See the module docstring for the border rules."""
    pad = WINDOW_SIZE // 2
    h, w = pred.shape[-2:]
    if border == "zero":
        mode = "constant"
    elif border == "reflect":
        mode = "reflect"
        if min(h, w) <= pad:
            raise MetricInputError(
                f"reflect-padded SSIM needs images larger than {pad} pixels, got {h}x{w}"
            )
    elif border == "valid":
        mode = None
        if min(h, w) < WINDOW_SIZE:
            raise MetricInputError(
                f"valid-window SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE}, "
                f"got {h}x{w}"
            )
    else:
        raise _unknown_border(border)

    # Pad x and y *before* forming the products: zero padding then also puts zeros into x^2, y^2
    # and xy, exactly as a padded convolution of each product does in the 3DGS code.
    if mode is not None:
        pred = F.pad(pred, (pad, pad, pad, pad), mode=mode)
        target = F.pad(target, (pad, pad, pad, pad), mode=mode)
    taps = gaussian_taps(dtype=pred.dtype).to(pred.device)
    b = pred.shape[0]
    # One filtering call for the five moments (batch them along N).
    moments = _window_mean(
        torch.cat([pred, target, pred * pred, target * target, pred * target], dim=0), taps
    )
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.split(b, dim=0)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def _torchmetrics_ssim(p: torch.Tensor, t: torch.Tensor, data_range: float) -> torch.Tensor | None:
    """Per-image SSIM from torchmetrics (reflect convention), or None when it cannot be imported.

    torchmetrics is the implementation gsplat evaluates with, so using it makes the reflect
    convention identical by construction. Its only difference from :func:`ssim_map` is that it
    clamps the variances at 0, which matters only at rounding level. Importing it can fail with a
    RuntimeError (not ImportError) when a broken torchvision is installed next to it.
    """
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure
    except Exception as err:  # ImportError, or RuntimeError from a broken torchvision
        _log.debug("torchmetrics unavailable (%s); using the torch SSIM", err)
        return None
    # A float data_range (not a tuple) makes torchmetrics use it as L without clamping the inputs;
    # None would estimate L from the images, which is a different convention.
    values = structural_similarity_index_measure(
        p,
        t,
        gaussian_kernel=True,
        sigma=WINDOW_SIGMA,
        kernel_size=WINDOW_SIZE,
        reduction="none",
        data_range=float(data_range),
        k1=K1,
        k2=K2,
    )
    assert isinstance(values, torch.Tensor)
    return values


def ssim(
    pred: ImageLike,
    target: ImageLike,
    border: SsimBorder = "zero",
    data_range: float = 1.0,
    backend: SsimBackend = "auto",
) -> torch.Tensor:
    """Per-image SSIM under one border convention.

    Args:
        pred: ``[B, C, H, W]`` or ``[H, W, C]`` floats on ``[0, data_range]``.
        target: same shape as ``pred``.
        border: ``"zero"`` | ``"reflect"`` | ``"valid"`` (module docstring).
        data_range: ``L`` in ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2``; never estimated from
            the images.
        backend: ``"auto"`` uses torchmetrics for ``"reflect"`` when it imports and the torch
            implementation otherwise; ``"torch"`` forces the in-house implementation;
            ``"torchmetrics"`` requires torchmetrics (reflect only).

    Returns:
        ``[B]`` tensor: mean of the SSIM map over pixels and channels.
    """
    if border not in SSIM_BORDERS:
        raise _unknown_border(border)
    if not data_range > 0:
        raise MetricInputError(f"data_range must be > 0, got {data_range}")
    p, t = as_pair(pred, target)
    if backend == "torchmetrics" and border != "reflect":
        raise MetricInputError(
            f"torchmetrics implements only the reflect border, not {border!r}",
            fix="use backend='torch' or 'auto'",
        )
    if backend in ("auto", "torchmetrics") and border == "reflect":
        values = _torchmetrics_ssim(p, t, data_range)
        if values is not None:
            return values
        if backend == "torchmetrics":
            raise MetricInputError(
                "backend='torchmetrics' was requested but torchmetrics cannot be imported",
                fix="pip install -c requirements/cpu-constraints.txt torchmetrics "
                "(without torchvision on CPU machines)",
            )
    elif backend not in ("auto", "torch", "torchmetrics"):
        raise MetricInputError(
            f"unknown SSIM backend {backend!r}; allowed: auto, torch, torchmetrics"
        )
    return ssim_map(p, t, border, data_range).flatten(2).mean(dim=2).mean(dim=1)
