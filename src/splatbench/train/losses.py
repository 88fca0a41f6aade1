"""Training losses and the PSNR used for validation.

The photometric loss is gsplat's: ``(1 - lambda) * L1 + lambda * (1 - SSIM)``, with SSIM over an
11x11 Gaussian window (sigma 1.5) and *valid* padding (``fused_ssim(..., padding="valid")`` in
gsplat's trainer), constants ``C1 = 0.01^2``, ``C2 = 0.03^2`` for a data range of 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_C1 = 0.01**2
_C2 = 0.03**2


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).to(dtype=like.dtype, device=like.device)
    return w.expand(channels, 1, size, size).contiguous()


def ssim(img1: Tensor, img2: Tensor, padding: str = "valid") -> Tensor:
    """Mean SSIM of two image batches ``[B, H, W, C]`` in ``[0, 1]`` (differentiable).

    Args:
        padding: ``"valid"`` (gsplat's training loss: only windows fully inside the image) or
            ``"zero"`` (zero-padded, as the original 3DGS). Images smaller than the window fall
            back to ``"zero"``, since no valid window exists.
    """
    a = img1.permute(0, 3, 1, 2)
    b = img2.permute(0, 3, 1, 2)
    c = a.shape[1]
    if padding == "valid" and min(a.shape[-2:]) < SSIM_WINDOW:
        padding = "zero"
    pad = 0 if padding == "valid" else SSIM_WINDOW // 2
    w = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, c, a)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, w, padding=pad, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return (num / den).mean()


def photometric_loss(
    render: Tensor, target: Tensor, ssim_lambda: float
) -> tuple[Tensor, Tensor, Tensor]:
    """gsplat's loss on ``[B, H, W, 3]`` images: returns ``(loss, l1, 1 - ssim)``."""
    l1 = F.l1_loss(render, target)
    ssim_loss = 1.0 - ssim(render, target, padding="valid")
    return (1.0 - ssim_lambda) * l1 + ssim_lambda * ssim_loss, l1, ssim_loss


def psnr(render: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of one image pair ``[..., H, W, 3]`` on ``[0, 1]`` (render clamped first)."""
    mse = F.mse_loss(render.clamp(0.0, 1.0), target)
    return -10.0 * torch.log10(mse.clamp_min(1e-20))
