"""Input handling shared by the metrics: one layout ([B, C, H, W] float tensors) for every metric.

Accepted inputs (torch tensors or numpy arrays, values on [0, data_range]):

* ``[B, C, H, W]``: a batch, channels first (the layout renderers produce);
* ``[H, W, C]``: one image, channels last (the layout image files decode to).

``C`` is 3 (RGB) or 1. Integer arrays are refused rather than rescaled: a uint8 image on [0, 255]
silently treated as [0, 1] would give a plausible but wrong PSNR, and guessing the scale is what
makes published numbers disagree.
"""

from __future__ import annotations

import numpy as np
import torch

from splatbench.errors import SplatbenchError

ImageLike = torch.Tensor | np.ndarray

_ALLOWED_CHANNELS = (1, 3)


class MetricInputError(SplatbenchError, ValueError):
    """Images given to a metric have the wrong shape, dtype or do not match each other."""


def as_bchw(image: ImageLike, name: str = "image") -> torch.Tensor:
    """Return ``image`` as a floating ``[B, C, H, W]`` tensor (a view where possible).

    ``[H, W, C]`` becomes ``[1, C, H, W]``. float16/bfloat16 are promoted to float32 because the
    SSIM window sums lose several digits in half precision; float32 and float64 are kept.
    """
    tensor = image
    if isinstance(image, np.ndarray):
        array = np.ascontiguousarray(image)
        # torch.from_numpy shares memory and warns on read-only arrays (e.g. from np.broadcast_to
        # or a read-only memmap); metrics never write, but copying is cheaper than the warning.
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if not isinstance(tensor, torch.Tensor):
        raise MetricInputError(
            f"{name} must be a torch.Tensor or numpy array, got {type(image).__name__}",
            fix="convert the image with torch.as_tensor(...) or numpy.asarray(...)",
        )
    if not tensor.is_floating_point():
        raise MetricInputError(
            f"{name} has integer dtype {tensor.dtype}; metrics expect floats on [0, 1]",
            fix="convert with image.float() / 255 (or skimage.img_as_float) before evaluating",
        )
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    if tensor.ndim == 4:
        bchw = tensor
    elif tensor.ndim == 3:
        if tensor.shape[-1] not in _ALLOWED_CHANNELS:
            raise MetricInputError(
                f"{name} has shape {tuple(tensor.shape)}; a 3-D image must be [H, W, C] with C "
                f"in {_ALLOWED_CHANNELS}",
                fix="pass channels-first images as a batch [1, C, H, W] (image[None])",
            )
        bchw = tensor.permute(2, 0, 1).unsqueeze(0)
    else:
        raise MetricInputError(
            f"{name} has shape {tuple(tensor.shape)}; expected [B, C, H, W] or [H, W, C]",
            fix="reshape the image to [B, 3, H, W] or [H, W, 3]",
        )
    if bchw.shape[1] not in _ALLOWED_CHANNELS:
        raise MetricInputError(
            f"{name} has {bchw.shape[1]} channels (shape {tuple(bchw.shape)}); expected "
            f"{_ALLOWED_CHANNELS}",
            fix="drop the alpha channel (composite onto the background first) or pass [B, 3, H, W]",
        )
    if bchw.shape[0] == 0 or bchw.shape[2] == 0 or bchw.shape[3] == 0:
        raise MetricInputError(f"{name} is empty (shape {tuple(bchw.shape)})")
    return bchw


def as_pair(pred: ImageLike, target: ImageLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as ``[B, C, H, W]`` tensors of one dtype on one device; shapes must match."""
    p = as_bchw(pred, "pred")
    t = as_bchw(target, "target")
    if p.shape != t.shape:
        raise MetricInputError(
            f"pred has shape {tuple(p.shape)} but target has {tuple(t.shape)} (as [B, C, H, W])",
            fix="render at the ground-truth resolution, or resize the ground truth once, "
            "explicitly, before evaluating",
        )
    if p.device != t.device:
        raise MetricInputError(f"pred is on {p.device} but target is on {t.device}")
    dtype = torch.promote_types(p.dtype, t.dtype)
    return p.to(dtype), t.to(dtype)


def quantize_uint8(image: torch.Tensor, rule: str) -> torch.Tensor:
    """``image`` on [0, 1] through 8 bits and back to [0, 1] (same dtype), or unchanged.

    Rules (``rule``):

    * ``"none"``: unchanged.
    * ``"uint8_round"``: ``clamp(x * 255 + 0.5, 0, 255)`` truncated, then ``/ 255``: torchvision
      ``save_image`` (round half up), what original 3DGS writes as PNG and reads back.
    * ``"uint8_floor"``: ``clip(x * 255, 0, 255)`` truncated, then ``/ 255``: NerfBaselines'
      ``convert_image_dtype`` to uint8.

    The arithmetic runs in the image's dtype (float32 renders, as in both references), so the
    8-bit codes match theirs exactly.
    """
    if rule == "none":
        return image
    if rule == "uint8_round":
        codes = (image * 255 + 0.5).clamp(0, 255).floor()
    elif rule == "uint8_floor":
        codes = (image * 255).clamp(0, 255).floor()
    else:
        raise MetricInputError(f"unknown quantization rule {rule!r}",
                               fix="use none, uint8_round or uint8_floor")  # fmt: skip
    return codes / 255
