"""Evaluate rendered images against ground truth under one :class:`MetricConvention`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from splatbench.metrics._images import ImageLike, MetricInputError, as_pair, quantize_uint8
from splatbench.metrics.convention import MetricConvention
from splatbench.metrics.perceptual import LpipsModel, LpipsStatus, load_lpips, lpips_with_model
from splatbench.metrics.pixel import psnr
from splatbench.metrics.structural import ssim

Pair = tuple[ImageLike, ImageLike]


def _lpips_record(status: LpipsStatus, convention: MetricConvention) -> dict[str, Any]:
    # File names and hashes, not paths: the same weights must give the same record everywhere.
    return {
        "net": convention.lpips_net,
        "input_range": convention.lpips_input_range,
        **status.record(),
    }


def _one(
    pred: ImageLike,
    target: ImageLike,
    convention: MetricConvention,
    model: LpipsModel | None,
    name: str,
) -> dict[str, Any]:
    p, t = as_pair(pred, target)
    if p.shape[0] != 1:
        raise MetricInputError(
            f"image {name!r} is a batch of {p.shape[0]}; evaluate one image per pair",
            fix="pass [H, W, 3] or [1, 3, H, W] per pair, or split the batch into pairs",
        )
    if convention.quantize != "none":
        # Renders go through 8 bits as the convention's anchor does; the ground truth is
        # rounded, which restores 8-bit images exactly (truncating k/255 * 255 could give k-1).
        p = quantize_uint8(p, convention.quantize)
        t = quantize_uint8(t, "uint8_round")
    value_psnr = float(psnr(p, t, convention.psnr_data_range)[0])
    value_ssim = float(ssim(p, t, convention.ssim_border, convention.psnr_data_range)[0])  # type: ignore[arg-type]
    value_lpips: float | None = None
    if model is not None:
        value_lpips = float(lpips_with_model(model, p, t, convention.lpips_input_range)[0])  # type: ignore[arg-type]
    return {"name": name, "psnr": value_psnr, "ssim": value_ssim, "lpips": value_lpips}


def _mean(values: list[float]) -> float:
    # math.fsum: the order of images must not change the last digits of a reported mean.
    return math.fsum(values) / len(values)


def evaluate_images(
    pairs: Iterable[Pair] | Mapping[str, Pair],
    convention: MetricConvention,
    *,
    lpips_verify_hash: bool = True,
) -> dict[str, Any]:
    """PSNR, SSIM and LPIPS for each (pred, target) pair and their means over images.

    With ``convention.quantize`` other than ``none`` every render goes through 8 bits first
    (:func:`~splatbench.metrics._images.quantize_uint8`), as the convention's anchor does.

    Args:
        pairs: ``(pred, target)`` pairs, or a mapping ``name -> (pred, target)``; each image
            ``[H, W, 3]`` or ``[1, 3, H, W]`` on [0, 1]. Pairs may differ in size.
        convention: how each metric is computed.
        lpips_verify_hash: check the backbone checkpoint's SHA-256 prefix.

    Returns:
        ``{"convention", "count", "per_image": [{"name", "psnr", "ssim", "lpips"}],
        "mean": {"psnr", "ssim", "lpips"}, "lpips": {"available", "net", "input_range",
        "source", "files" [{"name", "sha256"}], "reason", "fix"}}``.
        ``lpips`` values are None when the weights are not available (see ``lpips.reason``).
        A pair reproduced exactly has PSNR ``inf`` (and so has the mean).
    """
    items: list[tuple[str, Pair]]
    if isinstance(pairs, Mapping):
        items = [(str(k), v) for k, v in pairs.items()]
    else:
        items = [(f"{i:05d}", pair) for i, pair in enumerate(pairs)]
    if not items:
        raise MetricInputError("no image pairs to evaluate")

    # Load LPIPS once for all images; a missing file is reported, not raised.
    model, status = load_lpips(
        convention.lpips_net,  # type: ignore[arg-type]
        convention.lpips_weights_dir,
        verify_hash=lpips_verify_hash,
        download=convention.lpips_download,
    )
    with torch.no_grad():
        per_image = [_one(p, t, convention, model, name) for name, (p, t) in items]
    mean: dict[str, float | None] = {
        "psnr": _mean([r["psnr"] for r in per_image]),
        "ssim": _mean([r["ssim"] for r in per_image]),
        "lpips": _mean([r["lpips"] for r in per_image]) if model is not None else None,
    }
    return {
        "convention": convention.describe(),
        "count": len(per_image),
        "per_image": per_image,
        "mean": mean,
        "lpips": _lpips_record(status, convention),
    }


def evaluate_pair(
    pred: ImageLike,
    target: ImageLike,
    convention: MetricConvention,
    *,
    lpips_verify_hash: bool = True,
) -> dict[str, Any]:
    """Metrics for one image pair: ``{"psnr", "ssim", "lpips", "lpips_available",
    "lpips_reason", "lpips_fix", "convention"}``.

    ``pred``/``target``: ``[H, W, 3]`` or ``[1, 3, H, W]`` on [0, 1].
    """
    result = evaluate_images([(pred, target)], convention, lpips_verify_hash=lpips_verify_hash)
    row = result["per_image"][0]
    return {
        "psnr": row["psnr"],
        "ssim": row["ssim"],
        "lpips": row["lpips"],
        "lpips_available": result["lpips"]["available"],
        "lpips_reason": result["lpips"]["reason"],
        "lpips_fix": result["lpips"]["fix"],
        "convention": result["convention"],
    }
