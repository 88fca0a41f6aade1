"""Scalar quantisation, the attribute transforms, and bit planes.

All quantisation is per channel with the channel's min/max over the Gaussians:
``q = round((v - min) / step)`` with ``step = (max - min) / (2**bits - 1)``, so the decoded value
``min + q * step`` is within ``step / 2`` of the (transformed) input. The arithmetic runs in
float64 so encoder and decoder (and the tests' error bound) agree to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Quantized:
    """Integer codes of one attribute and the range that decodes them."""

    codes: np.ndarray  # [N, C] uint16
    mins: tuple[float, ...]  # [C]
    maxs: tuple[float, ...]  # [C]
    bits: int


def quant_step(mins: np.ndarray, maxs: np.ndarray, bits: int) -> np.ndarray:
    """``[C]`` quantisation step; 0 for a constant channel (decodes exactly to its min)."""
    return (np.asarray(maxs, np.float64) - np.asarray(mins, np.float64)) / float((1 << bits) - 1)


def quantize(values: np.ndarray, bits: int) -> Quantized:
    """Quantise ``[N, C]`` values to ``bits`` per channel with per-channel min/max."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"quantize expects [N, C], got {v.shape}")
    levels = (1 << bits) - 1
    if v.shape[0] == 0:
        zeros = (0.0,) * v.shape[1]
        return Quantized(np.zeros(v.shape, np.uint16), zeros, zeros, bits)
    # Round the range to float32 first: meta.json stores float32-exact values, and the codes
    # must be computed against exactly the range the decoder reads back.
    mins = v.min(axis=0).astype(np.float32).astype(np.float64)
    maxs = v.max(axis=0).astype(np.float32).astype(np.float64)
    maxs = np.maximum(maxs, mins)
    step = quant_step(mins, maxs, bits)
    safe = np.where(step > 0, step, 1.0)
    codes = np.clip(np.rint((v - mins) / safe), 0, levels)
    codes[:, step == 0] = 0
    return Quantized(
        codes.astype(np.uint16), tuple(map(float, mins)), tuple(map(float, maxs)), bits
    )


def dequantize(codes: np.ndarray, mins: np.ndarray, maxs: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`quantize`: ``[N, C]`` codes -> float32 values."""
    mins = np.asarray(mins, np.float64)
    step = quant_step(mins, maxs, bits)
    return (mins + codes.astype(np.float64) * step).astype(np.float32)


# --- transforms ------------------------------------------------------------------------------


def log_transform(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)``: more resolution near the scene centre, where cameras look."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def inverse_log_transform(y: Tensor) -> Tensor:
    return torch.sign(y) * torch.expm1(torch.abs(y))


def canonical_quats(quats: Tensor) -> Tensor:
    """``[N, 4]`` -> unit quaternions whose largest-magnitude component is positive (``q`` and
    ``-q`` are the same rotation; first index wins ties).

    A zero quaternion (no rotation defined) becomes the identity ``(1, 0, 0, 0)`` instead of NaN.
    """
    norm = quats.norm(dim=-1, keepdim=True)
    ident = torch.zeros_like(quats)
    ident[:, 0] = 1.0
    q = torch.where(norm > 1e-12, quats / norm.clamp_min(1e-12), ident)
    largest = q.abs().argmax(dim=-1, keepdim=True)
    sign = torch.where(q.gather(1, largest) < 0, -1.0, 1.0)
    return q * sign


def smallest_three(quats: Tensor) -> tuple[Tensor, Tensor]:
    """Canonical unit quaternions ``[N, 4]`` -> the three smaller components ``[N, 3]`` (in index
    order) and the index ``[N]`` of the largest, which is positive and >= 1/2, so it is
    recovered as ``sqrt(1 - |rest|^2)``; the stored components lie in ``[-1/sqrt 2, 1/sqrt 2]``.
    """
    q = canonical_quats(quats)
    largest = q.abs().argmax(dim=-1)
    keep = torch.ones_like(q, dtype=torch.bool)
    keep[torch.arange(q.shape[0]), largest] = False
    return q[keep].reshape(-1, 3), largest


def from_smallest_three(rest: Tensor, largest: Tensor) -> Tensor:
    """Inverse of :func:`smallest_three`: ``[N, 3]``, ``[N]`` -> unit quaternions ``[N, 4]``."""
    n = rest.shape[0]
    big = torch.sqrt((1.0 - (rest * rest).sum(-1)).clamp_min(0.0))
    q = torch.empty((n, 4), dtype=rest.dtype)
    keep = torch.ones((n, 4), dtype=torch.bool)
    keep[torch.arange(n), largest] = False
    q[keep] = rest.reshape(-1)
    q[~keep] = big
    return q


# --- bit planes ------------------------------------------------------------------------------


def num_planes(bits: int) -> int:
    """8-bit planes needed for ``bits``-bit codes (1 up to 8 bits, 2 up to 16)."""
    return 1 if bits <= 8 else 2


def split_planes(codes: np.ndarray, bits: int) -> list[np.ndarray]:
    """uint16 codes -> uint8 planes, most significant first (the high byte compresses well)."""
    if bits <= 8:
        return [codes.astype(np.uint8)]
    return [(codes >> 8).astype(np.uint8), (codes & 0xFF).astype(np.uint8)]


def join_planes(planes: list[np.ndarray], bits: int) -> np.ndarray:
    """Inverse of :func:`split_planes`."""
    if bits <= 8:
        return planes[0].astype(np.uint16)
    return (planes[0].astype(np.uint16) << 8) | planes[1].astype(np.uint16)
