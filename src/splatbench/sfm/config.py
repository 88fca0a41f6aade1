"""SfM and resolution parameters (the ``sfm`` and ``resolution`` sections of params.yaml).

Plain frozen dataclasses validated on construction, so a typo in the YAML fails before any
COLMAP work starts. Importing this module does not import pycolmap.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass
from typing import Any

from splatbench.errors import ConfigError
from splatbench.scene.split import SplitConfig

__all__ = ["CAMERA_MODELS", "MATCHERS", "ResolutionConfig", "SfmConfig", "SplitConfig"]

MATCHERS = ("auto", "exhaustive", "sequential", "vocab_tree")

# COLMAP's camera models that feature extraction can start from (names as COLMAP spells them).
CAMERA_MODELS = (
    "SIMPLE_PINHOLE",
    "PINHOLE",
    "SIMPLE_RADIAL",
    "RADIAL",
    "OPENCV",
    "OPENCV_FISHEYE",
    "FULL_OPENCV",
    "FOV",
    "SIMPLE_RADIAL_FISHEYE",
    "RADIAL_FISHEYE",
    "THIN_PRISM_FISHEYE",
)


def _reject_unknown(d: dict[str, Any], cls: type, section: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ConfigError(
            f"{section} parameters must be a mapping, got {type(d).__name__}",
            fix=f"write {section}: as a YAML mapping of key: value",
        )
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            if close:
                hints.append(f"{key} -> {close[0]}?")
        raise ConfigError(
            f"unknown {section} parameter(s): {', '.join(map(str, unknown))}"
            + (f" (did you mean: {'; '.join(hints)})" if hints else ""),
            fix=f"check the spelling; known {section} parameters are {', '.join(sorted(known))}",
        )
    return dict(d)


def _check_int(section: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{section}.{name}={value!r} must be an integer >= {minimum}")


@dataclass(frozen=True)
class SfmConfig:
    """Structure-from-motion parameters.

    Attributes:
        matcher: ``auto`` (exhaustive up to ``exhaustive_max_images`` images, else sequential),
            ``exhaustive``, ``sequential`` (for ordered captures: video, drone strips) or
            ``vocab_tree`` (large unordered sets; needs ``vocab_tree_path``).
        exhaustive_max_images: the ``auto`` matcher's switch-over point.
        sequential_overlap: how many following images each image is matched against.
        vocab_tree_path: a COLMAP vocabulary tree file; required for ``vocab_tree`` and for
            nothing else. These machines have no internet, so it is never downloaded.
        camera_model: the COLMAP model the mapper estimates (undistortion then makes PINHOLE).
        single_camera: all images share one camera (true for a single-device capture).
        max_num_features: SIFT features kept per image.
        max_image_size: images are downscaled to this longest side for feature extraction.
        num_threads: threads for extraction, matching, mapping and undistortion.
        seed: seeds COLMAP's random number generators (RANSAC, mapper) for repeatable models.
        min_registered_fraction: fail when fewer than this fraction of images register.
        min_registered_images: fail when fewer than this many images register.
        use_gpu: SIFT on the GPU; PyPI's pycolmap wheels are CPU-only, so keep False there.
        deterministic_mapping: run incremental mapping (bundle adjustment) on one thread.
            Multi-threaded bundle adjustment sums in an order that depends on thread timing,
            so under load a rerun can differ in the last digits (seen: focal 1e-4 relative).
            Extraction and matching stay on ``num_threads``: they are per image / per pair.
    """

    matcher: str = "auto"
    exhaustive_max_images: int = 150
    sequential_overlap: int = 10
    vocab_tree_path: str | None = None
    camera_model: str = "SIMPLE_RADIAL"
    single_camera: bool = True
    max_num_features: int = 8192
    max_image_size: int = 3200
    num_threads: int = 2
    seed: int = 0
    min_registered_fraction: float = 1.0
    min_registered_images: int = 3
    use_gpu: bool = False
    deterministic_mapping: bool = True

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise ConfigError(
                f"sfm.matcher={self.matcher!r} is not a known matcher",
                fix=f"use one of {', '.join(MATCHERS)}",
            )
        if self.matcher == "vocab_tree" and not self.vocab_tree_path:
            raise ConfigError(
                "sfm.matcher='vocab_tree' needs sfm.vocab_tree_path (a COLMAP vocabulary tree "
                "file); there is no internet here to download one",
                fix="set sfm.vocab_tree_path to a local vocab tree file, or use "
                "sfm.matcher=exhaustive / sequential",
            )
        if self.camera_model not in CAMERA_MODELS:
            raise ConfigError(
                f"sfm.camera_model={self.camera_model!r} is not a COLMAP camera model",
                fix=f"use one of {', '.join(CAMERA_MODELS)}",
            )
        _check_int("sfm", "exhaustive_max_images", self.exhaustive_max_images, 2)
        _check_int("sfm", "sequential_overlap", self.sequential_overlap, 1)
        _check_int("sfm", "max_num_features", self.max_num_features, 64)
        _check_int("sfm", "max_image_size", self.max_image_size, 64)
        _check_int("sfm", "num_threads", self.num_threads, 1)
        _check_int("sfm", "seed", self.seed, 0)
        _check_int("sfm", "min_registered_images", self.min_registered_images, 2)
        frac = self.min_registered_fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 <= frac <= 1.0:
            raise ConfigError(
                f"sfm.min_registered_fraction={frac!r} must be a number in [0, 1]",
                fix="use 1.0 to require every image to register (the benchmark default)",
            )
        for name in ("single_camera", "use_gpu", "deterministic_mapping"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"sfm.{name}={getattr(self, name)!r} must be true or false")

    def resolve_matcher(self, num_images: int) -> str:
        """The matcher actually used for ``num_images`` images (resolves ``auto``)."""
        if self.matcher != "auto":
            return self.matcher
        return "exhaustive" if num_images <= self.exhaustive_max_images else "sequential"

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SfmConfig:
        """Build from a params dict; unknown keys raise :class:`ConfigError` naming them."""
        return cls(**_reject_unknown(d or {}, cls, "sfm"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResolutionConfig:
    """The benchmark resolution that SfM outputs (images and intrinsics) are scaled to.

    Attributes:
        downscale: integer factor (1 = full resolution, 2 = half, like Mip-NeRF 360's
            ``images_2``). Size becomes ``round(w / downscale) x round(h / downscale)``.
        max_width: alternatively, the largest allowed width; wider images are scaled to it
            (height by the same factor, rounded). Mutually exclusive with ``downscale > 1``.
    """

    downscale: int = 1
    max_width: int | None = None

    def __post_init__(self) -> None:
        _check_int("resolution", "downscale", self.downscale, 1)
        if self.max_width is not None:
            _check_int("resolution", "max_width", self.max_width, 8)
            if self.downscale != 1:
                raise ConfigError(
                    "resolution.downscale and resolution.max_width are both set",
                    fix="set only one of them",
                )

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """Output ``(width, height)`` for an input of ``width x height`` pixels."""
        if self.max_width is not None and width > self.max_width:
            factor = width / self.max_width
        else:
            factor = float(self.downscale)
        if factor == 1.0:
            return int(width), int(height)
        # Round half up (not Python's banker's rounding) so e.g. 241 / 2 -> 121 predictably.
        return (
            max(1, math.floor(width / factor + 0.5)),
            max(1, math.floor(height / factor + 0.5)),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ResolutionConfig:
        """Build from a params dict; unknown keys raise :class:`ConfigError` naming them."""
        return cls(**_reject_unknown(d or {}, cls, "resolution"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
