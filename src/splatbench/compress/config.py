"""The ``compress`` params section as a frozen dataclass.

``from_dict`` rejects unknown keys by name (a typo in ``-S compress.shN_codebok_size=...`` must
not silently run the default) and coerces YAML scalars (``"8"`` or ``8.0`` for an int).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splatbench.errors import ConfigError

CODEC_NAMES = ("sog",)
SORT_METHODS = ("plas", "morton", "none")
IMAGE_FORMATS = ("png", "webp")
KMEANS_METRICS = ("l2", "l1")
KMEANS_MODES = ("auto", "flat", "tree")
CODEBOOK_FORMATS = ("uint8", "float16")
SHN_BANDS = ("joint", "degree")
SHN_WEIGHTINGS = ("none", "opacity")

# The largest label a 16-bit label plane pair can hold, plus one.
MAX_CODEBOOK_SIZE = 1 << 16


@dataclass(frozen=True)
class CompressConfig:
    """Settings of the self-organizing-grid (``sog``) codec (see docs/compressed-format.md)."""

    name: str = "sog"
    # Bit depths per attribute (1..16; more than 8 bits is stored as a high and a low 8-bit plane).
    position_bits: int = 16
    scale_bits: int = 8
    rotation_bits: int = 8
    opacity_bits: int = 8
    sh0_bits: int = 8
    # SH rest (shN): k-means vector quantisation.
    shN_codebook_size: int = 65536  # upper bound on the codebook entries
    shN_points_per_code: int = 16  # and at most ceil(N / this), so small scenes stay small
    shN_kmeans_iters: int = 10
    shN_kmeans_metric: str = "l2"  # l2 (means) | l1 (medians)
    # flat | tree (two-level, ~2 sqrt(K) distances per point) | auto (tree above 1024 codes)
    shN_kmeans_mode: str = "auto"
    shN_kmeans_sample: int = 262_144  # fit on at most this many Gaussians (0: all), assign all
    shN_codebook_format: str = "uint8"  # uint8 (per-column min/max) | float16
    # joint: one codebook over all higher coefficients (format version 1); degree: one codebook
    # per SH degree (product quantisation, format version 2), each of the size above.
    shN_bands: str = "joint"
    # none | opacity: k-means centroids are opacity-weighted means (transparent Gaussians, whose
    # colour barely shows, pull the codebook less).
    shN_weighting: str = "none"
    # Rate-distortion: drop Gaussians with sigmoid(opacity) below this (0: keep all), and SH
    # degrees above max_sh_degree (-1: keep the model's degree).
    prune_opacity: float = 0.0
    max_sh_degree: int = -1
    # Layout.
    sort: str = "plas"  # plas | morton | none
    # PLAS refinement of the Morton layout: blur radius from plas_start_radius (0: a quarter of
    # the grid's shorter side) down to 1, times plas_radius_decay per step.
    plas_start_radius: int = 16
    plas_iters_per_radius: int = 4
    plas_radius_decay: float = 0.5
    image_format: str = "png"  # png | webp (lossless)
    png_compress_level: int = 9
    seed: int = 0

    def __post_init__(self) -> None:
        def choice(key: str, options: tuple[str, ...]) -> None:
            if getattr(self, key) not in options:
                raise ConfigError(
                    f"compress.{key}={getattr(self, key)!r} is not one of {list(options)}"
                )

        choice("name", CODEC_NAMES)
        choice("sort", SORT_METHODS)
        choice("image_format", IMAGE_FORMATS)
        choice("shN_kmeans_metric", KMEANS_METRICS)
        choice("shN_kmeans_mode", KMEANS_MODES)
        choice("shN_codebook_format", CODEBOOK_FORMATS)
        choice("shN_bands", SHN_BANDS)
        choice("shN_weighting", SHN_WEIGHTINGS)
        if self.shN_weighting != "none" and self.shN_kmeans_metric != "l2":
            raise ConfigError(
                f"compress.shN_weighting={self.shN_weighting!r} needs shN_kmeans_metric=l2",
                fix="set compress.shN_kmeans_metric=l2 or compress.shN_weighting=none",
            )
        if not 0.0 <= self.prune_opacity < 1.0:
            raise ConfigError(f"compress.prune_opacity={self.prune_opacity} must be in [0, 1)")
        if not -1 <= self.max_sh_degree <= 3:
            raise ConfigError(f"compress.max_sh_degree={self.max_sh_degree} must be -1..3")
        for key in ("position_bits", "scale_bits", "rotation_bits", "opacity_bits", "sh0_bits"):
            bits = getattr(self, key)
            if not 1 <= bits <= 16:
                raise ConfigError(f"compress.{key}={bits} must be in 1..16")
        ranges = {
            "shN_codebook_size": (1, MAX_CODEBOOK_SIZE),
            "shN_points_per_code": (1, None),
            "shN_kmeans_iters": (0, None),
            "shN_kmeans_sample": (0, None),
            "plas_start_radius": (0, None),
            "plas_iters_per_radius": (1, None),
            "png_compress_level": (0, 9),
        }
        for key, (lo, hi) in ranges.items():
            v = getattr(self, key)
            if v < lo or (hi is not None and v > hi):
                bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                raise ConfigError(f"compress.{key}={v} must be {bound}")
        if not 0.0 < self.plas_radius_decay < 1.0:
            raise ConfigError(
                f"compress.plas_radius_decay={self.plas_radius_decay} must be in (0, 1)"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CompressConfig:
        """Build from the ``compress`` params section; unknown keys are an error naming them."""
        data = dict(data or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"compress has unknown keys {unknown}",
                fix=f"use only {sorted(fields)} (see docs/compressed-format.md)",
            )
        kwargs = {k: _coerce(v, type(getattr(cls(), k)), f"compress.{k}") for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, tp: type, key: str) -> Any:
    """YAML scalar -> ``tp`` (int, float, str); anything ambiguous is a ConfigError."""
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}={value!r} must be a string")
    if isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}={value!r} must be a number") from None
    if not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} must be a number")
    if tp is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key}={value!r} must be an integer")
        return int(value)
    return float(value)
