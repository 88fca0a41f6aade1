"""Evaluation conventions: which PSNR/SSIM/LPIPS variant a number was computed with.

Published 3DGS numbers are not comparable unless the convention matches; a harness result names
its convention (:meth:`MetricConvention.describe`) next to every number. Presets reproduce the
anchors in ``REFERENCE.md``:

============================  ===========  =========  ============  ===========================
preset                        SSIM border  LPIPS net  LPIPS input   source
============================  ===========  =========  ============  ===========================
``3dgs``                      zero         vgg        [0, 1] as is  graphdeco-inria metrics.py
``gsplat``                    reflect      alex       [-1, 1]       gsplat examples (torchmetrics)
``nerfbaselines``             valid        alex       [-1, 1]       NerfBaselines default
``nerfbaselines-nerf``        valid        vgg        [-1, 1]       NerfBaselines "nerf" protocol
============================  ===========  =========  ============  ===========================

PSNR is the same everywhere: per image on [0, 1], then the mean over images.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from splatbench.errors import ConfigError, check_known_keys
from splatbench.metrics.perceptual import LPIPS_INPUT_RANGES, LPIPS_NETS, LPIPS_VERSION
from splatbench.metrics.structural import K1, K2, SSIM_BORDERS, WINDOW_SIGMA, WINDOW_SIZE

_SSIM_MEANING = {
    "zero": "zero 'same' padding by 5 px, border pixels counted (original 3DGS loss_utils.ssim)",
    "reflect": "reflect padding by 5 px (edge not repeated), border pixels counted, no crop "
    "(torchmetrics 1.9, gsplat eval)",
    "valid": "only windows fully inside the image, map (H-10)x(W-10) (scikit-image "
    "structural_similarity gaussian_weights=True, NerfBaselines)",
}
_LPIPS_INPUT_MEANING = {
    "0_1": "[0,1] images fed to the LPIPS scaling layer unscaled (original 3DGS quirk)",
    "-1_1": "[0,1] images mapped to [-1,1] by 2x-1 before the scaling layer (lpips normalize=True)",
}


@dataclass(frozen=True)
class MetricConvention:
    """How PSNR, SSIM and LPIPS are computed; recorded in every result file.

    Attributes:
        name: preset name, or ``"custom"``.
        ssim_border: ``"zero"`` | ``"reflect"`` | ``"valid"``
            (see :mod:`splatbench.metrics.structural`).
        lpips_net: ``"alex"`` | ``"vgg"``.
        lpips_input_range: ``"0_1"`` | ``"-1_1"``
            (see :mod:`splatbench.metrics.perceptual`).
        psnr_data_range: peak value of the images (1.0: images on [0, 1]); also SSIM's ``L``.
        source: who uses this convention, for the record.
        overrides: config keys that changed a preset's value (empty when the preset is used as is).
        lpips_weights_dir: where to look for LPIPS weights first. Not part of the convention (it
            does not change any value), so it is excluded from equality and from ``describe()``.
    """

    name: str
    ssim_border: str
    lpips_net: str
    lpips_input_range: str
    psnr_data_range: float = 1.0
    source: str = ""
    overrides: tuple[str, ...] = ()
    lpips_weights_dir: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_choice("ssim_border", self.ssim_border, SSIM_BORDERS)
        _check_choice("lpips_net", self.lpips_net, LPIPS_NETS)
        _check_choice("lpips_input_range", self.lpips_input_range, LPIPS_INPUT_RANGES)
        if not (isinstance(self.psnr_data_range, (int, float)) and self.psnr_data_range > 0):
            raise ConfigError(
                f"psnr_data_range must be a positive number, got {self.psnr_data_range!r}"
            )

    def with_weights_dir(self, weights_dir: str | None) -> MetricConvention:
        return replace(self, lpips_weights_dir=weights_dir)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description of exactly what the numbers mean."""
        return {
            "name": self.name,
            "source": self.source,
            "overrides": list(self.overrides),
            "psnr": {
                "data_range": self.psnr_data_range,
                "reduction": "mean over images of per-image PSNR (MSE over pixels and channels)",
            },
            "ssim": {
                "border": self.ssim_border,
                "meaning": _SSIM_MEANING[self.ssim_border],
                "window": f"{WINDOW_SIZE}x{WINDOW_SIZE} gaussian, sigma {WINDOW_SIGMA}",
                "k1": K1,
                "k2": K2,
                "data_range": self.psnr_data_range,
                "reduction": "mean over pixels per channel, then over channels; mean over images",
            },
            "lpips": {
                "net": self.lpips_net,
                "version": LPIPS_VERSION,
                "input_range": self.lpips_input_range,
                "meaning": _LPIPS_INPUT_MEANING[self.lpips_input_range],
                "reduction": "spatial mean per layer, summed over 5 layers; mean over images",
            },
        }


#: Keys of the ``eval`` params section this module reads.
CONVENTION_KEYS: tuple[str, ...] = (
    "preset",
    "ssim_border",
    "lpips_net",
    "lpips_input_range",
    "lpips_weights_dir",
)
#: Keys of the ``eval`` section that belong to other consumers and are accepted here unread.
OTHER_EVAL_KEYS: tuple[str, ...] = ("comparison_images", "render_backend", "error_map_max")

_ALLOWED = {
    "ssim_border": SSIM_BORDERS,
    "lpips_net": LPIPS_NETS,
    "lpips_input_range": LPIPS_INPUT_RANGES,
}


def _check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if isinstance(value, str) and value in allowed:
        return
    hint = ""
    if key == "lpips_input_range" and isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads unquoted 0_1 as the integer 1 and -1_1 as -11.
        hint = ' (unquoted in YAML, 0_1 reads as the integer 1: write "0_1" or "-1_1" in quotes)'
    elif isinstance(value, str):
        close = difflib.get_close_matches(value, allowed, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    raise ConfigError(
        f"eval.{key} = {value!r} is not allowed{hint}; allowed values: {', '.join(allowed)}",
        fix=f"set eval.{key} to one of: {', '.join(allowed)}",
    )


PRESETS: dict[str, MetricConvention] = {
    "3dgs": MetricConvention(
        name="3dgs",
        ssim_border="zero",
        lpips_net="vgg",
        lpips_input_range="0_1",
        source="graphdeco-inria/gaussian-splatting metrics.py (3DGS paper numbers)",
    ),
    "gsplat": MetricConvention(
        name="gsplat",
        ssim_border="reflect",
        lpips_net="alex",
        lpips_input_range="-1_1",
        source="nerfstudio-project/gsplat examples (torchmetrics SSIM/LPIPS)",
    ),
    "nerfbaselines": MetricConvention(
        name="nerfbaselines",
        ssim_border="valid",
        lpips_net="alex",
        lpips_input_range="-1_1",
        source="NerfBaselines default protocol (AlexNet LPIPS)",
    ),
    # NerfBaselines switches LPIPS to VGG under its "nerf" protocol (its published Mip-NeRF 360
    # tables use VGG); a separate preset keeps both explicit instead of guessing which was meant.
    "nerfbaselines-nerf": MetricConvention(
        name="nerfbaselines-nerf",
        ssim_border="valid",
        lpips_net="vgg",
        lpips_input_range="-1_1",
        source="NerfBaselines 'nerf' protocol (VGG LPIPS)",
    ),
}


def convention_from_config(config: Mapping[str, Any] | None) -> MetricConvention:
    """Build the convention from the ``eval`` section of params.

    ``preset`` gives all values; ``ssim_border``, ``lpips_net`` and ``lpips_input_range`` given
    explicitly (not null) override it, are listed in ``overrides``, and rename the convention
    ``"custom (from <preset>)"``; explicit keys equal to the preset's values change nothing.
    Without a preset all three must be given (the convention is then named ``"custom"``).
    ``lpips_weights_dir`` is optional.
    Unknown keys are errors (a typo would otherwise silently fall back to the preset).

    Raises:
        ConfigError: naming the bad key and the allowed keys or values.
    """
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"the eval section must be a mapping, got {type(config).__name__}",
            fix="write eval: as a mapping with preset: 3dgs|gsplat|nerfbaselines",
        )
    check_known_keys(config, (*CONVENTION_KEYS, *OTHER_EVAL_KEYS), "eval")

    preset_name = config.get("preset")
    explicit = {k: config[k] for k in _ALLOWED if config.get(k) is not None}
    for key, value in explicit.items():
        _check_choice(key, value, _ALLOWED[key])

    weights_dir = config.get("lpips_weights_dir")
    if weights_dir is not None and not isinstance(weights_dir, str):
        raise ConfigError(
            f"eval.lpips_weights_dir must be a path string or null, got {weights_dir!r}",
            fix="set eval.lpips_weights_dir to a directory holding the torchvision checkpoints",
        )

    if preset_name is None:
        missing = [k for k in _ALLOWED if k not in explicit]
        if missing:
            raise ConfigError(
                f"eval.preset is not set and eval.{', eval.'.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing",
                fix=f"set eval.preset to one of: {', '.join(PRESETS)} (or give all of "
                f"{', '.join(_ALLOWED)})",
            )
        return MetricConvention(
            name="custom",
            source="explicit eval settings",
            lpips_weights_dir=weights_dir,
            **explicit,
        )

    if not isinstance(preset_name, str) or preset_name not in PRESETS:
        close = difflib.get_close_matches(str(preset_name), PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"eval.preset = {preset_name!r} is not a known preset{hint}; allowed values: "
            f"{', '.join(PRESETS)}",
            fix=f"set eval.preset to one of: {', '.join(PRESETS)}",
        )
    base = PRESETS[preset_name]
    overrides = tuple(k for k, v in explicit.items() if getattr(base, k) != v)
    # A modified preset must not be reported under the preset's bare name: tables often show only
    # the name, and "3dgs" with a reflect border is not the 3DGS convention.
    name = f"custom (from {preset_name})" if overrides else base.name
    return replace(base, name=name, overrides=overrides, lpips_weights_dir=weights_dir, **explicit)
