"""Peak signal-to-noise ratio, per image.

Convention shared by original 3DGS, gsplat and NerfBaselines: PSNR is computed per image on
[0, 1] (``data_range = 1``) and a scene's PSNR is the *mean over images of per-image PSNR*, not
the PSNR of the pooled MSE. The two differ (by Jensen's inequality the mean of per-image PSNR is
at least the pooled one), so the reduction is part of the convention.
"""

from __future__ import annotations

import torch

from splatbench.metrics._images import ImageLike, MetricInputError, as_pair


def psnr(pred: ImageLike, target: ImageLike, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB.

    Args:
        pred: ``[B, C, H, W]`` or ``[H, W, C]`` floats on ``[0, data_range]``.
        target: same shape as ``pred``.
        data_range: peak value ``L``; PSNR = 10 log10(L^2 / MSE), MSE over C, H and W.

    Returns:
        ``[B]`` tensor in the inputs' float dtype; ``inf`` where an image is reproduced exactly.
    """
    if not data_range > 0:
        raise MetricInputError(f"data_range must be > 0, got {data_range}")
    p, t = as_pair(pred, target)
    mse = (p - t).pow(2).flatten(1).mean(dim=1)
    # 10 log10(L^2) - 10 log10(mse) rather than log10(L^2 / mse): same value, and mse == 0 gives
    # +inf instead of a division warning.
    peak_db = 10.0 * torch.log10(torch.as_tensor(data_range**2, dtype=p.dtype))
    return peak_db - 10.0 * torch.log10(mse)
