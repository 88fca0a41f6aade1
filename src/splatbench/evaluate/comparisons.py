"""Comparison images: ground truth | render | error map, side by side, as PNG.

Pure numpy and Pillow (no matplotlib): the evaluate stage should not need a plotting stack to
write three images.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

# Anchor colours of a perceptually ordered dark-to-bright ramp (close to matplotlib's "inferno"),
# so larger errors are always brighter, also in greyscale print.
_RAMP = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float64,
)
#: Width in pixels of the white gap between the panels of a strip.
GAP_PX = 4


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` float on [0, 1] (values outside are clipped) to uint8, rounded."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def error_map(render: np.ndarray, target: np.ndarray, max_error: float) -> np.ndarray:
    """uint8 ``[H, W, 3]`` heat map of ``|render - target|`` averaged over RGB.

    0 is black and ``max_error`` or more is the brightest colour of the ramp; the scale is fixed
    (not per image) so that maps of two models can be compared by eye.
    """
    if render.shape != target.shape:
        raise ValueError(f"render {render.shape} and target {target.shape} differ in shape")
    err = np.abs(render.astype(np.float64) - target.astype(np.float64)).mean(axis=-1)
    t = np.clip(err / max_error, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, len(_RAMP) - 1)
    frac = (t - lo)[..., None]
    rgb = _RAMP[lo] * (1.0 - frac) + _RAMP[hi] * frac
    return (rgb + 0.5).astype(np.uint8)


def side_by_side(panels: Sequence[np.ndarray], gap: int = GAP_PX) -> np.ndarray:
    """Concatenate uint8 ``[H, W, 3]`` panels of one height horizontally with white gaps."""
    heights = {p.shape[0] for p in panels}
    if len(heights) != 1:
        raise ValueError(f"panels differ in height: {sorted(heights)}")
    h = heights.pop()
    spacer = np.full((h, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if i:
            parts.append(spacer)
        parts.append(p)
    return np.concatenate(parts, axis=1)


def comparison_strip(target: np.ndarray, render: np.ndarray, max_error: float) -> np.ndarray:
    """uint8 ``[H, 3W + 2 gaps, 3]``: ground truth | render | error map (float inputs)."""
    return side_by_side([to_uint8(target), to_uint8(render), error_map(render, target, max_error)])


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 ``[H, W, 3]`` image as PNG (lossless, deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def pick_views(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(count)`` (first and last included)."""
    if wanted <= 0 or count <= 0:
        return []
    if wanted >= count:
        return list(range(count))
    if wanted == 1:
        return [0]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})
