"""Image-quality metrics (PSNR, SSIM, LPIPS) under the conventions 3DGS papers report with.

The same renders give different SSIM and LPIPS depending on border handling, LPIPS backbone and
LPIPS input scaling, so every value here comes with a :class:`MetricConvention`; presets
reproduce original 3DGS, gsplat and NerfBaselines. ``pixel.py`` (PSNR), ``structural.py`` (SSIM)
and ``perceptual.py`` (LPIPS) document exactly what each variant computes.

Images are ``[B, 3, H, W]`` or ``[H, W, 3]`` floats on [0, 1] (torch or numpy).
"""

from __future__ import annotations

from splatbench.metrics._images import MetricInputError, as_bchw
from splatbench.metrics.convention import (
    CONVENTION_KEYS,
    PRESETS,
    MetricConvention,
    convention_from_config,
)
from splatbench.metrics.evaluate import evaluate_images, evaluate_pair
from splatbench.metrics.perceptual import (
    BACKBONE_FILES,
    LpipsModel,
    LpipsResult,
    LpipsStatus,
    alexnet_features,
    load_lpips,
    locate_lpips_weights,
    lpips,
    vgg16_features,
)
from splatbench.metrics.pixel import psnr
from splatbench.metrics.structural import SSIM_BORDERS, ssim, ssim_map

__all__ = [
    "BACKBONE_FILES",
    "CONVENTION_KEYS",
    "PRESETS",
    "SSIM_BORDERS",
    "LpipsModel",
    "LpipsResult",
    "LpipsStatus",
    "MetricConvention",
    "MetricInputError",
    "alexnet_features",
    "as_bchw",
    "convention_from_config",
    "evaluate_images",
    "evaluate_pair",
    "load_lpips",
    "locate_lpips_weights",
    "lpips",
    "psnr",
    "ssim",
    "ssim_map",
    "vgg16_features",
]
