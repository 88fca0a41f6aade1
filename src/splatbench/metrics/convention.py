"""Evaluation conventions: which PSNR/SSIM/LPIPS variant a number was computed with.

Published 3DGS numbers are not comparable unless the convention matches; a harness result names
its convention (:meth:`MetricConvention.describe`) next to every number. Presets reproduce the
anchors in ``REFERENCE.md``:

======================  ===========  =========  ============  ===========  =====================
preset                  SSIM border  LPIPS net  LPIPS input   renders      source
======================  ===========  =========  ============  ===========  =====================
``3dgs``                zero         vgg        [0, 1] as is  uint8_round  graphdeco metrics.py
``gsplat``              reflect      alex       [-1, 1]       none         gsplat simple_trainer
``nerfbaselines``       valid        alex       [-1, 1]       uint8_floor  NerfBaselines default
``nerfbaselines-nerf``  valid        vgg        [-1, 1]       uint8_floor  NerfBaselines "nerf"
======================  ===========  =========  ============  ===========  =====================

PSNR is the same everywhere: per image on [0, 1], then the mean over images.

Renders ("quantize"): the original 3DGS ``render.py`` writes renders (and ground truth) as PNGs
with torchvision's ``save_image`` (``x * 255 + 0.5``, clamped, truncated: round half up) and
``metrics.py`` reads them back, so its metrics see 8-bit renders. NerfBaselines converts
renders to uint8 before its metrics with ``(x * 255).clip(0, 255).astype(uint8)`` (truncation)
in ``image_to_srgb``. gsplat's ``simple_trainer.py`` evaluates the clamped float renders.
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
_QUANTIZE_MEANING = {
    "none": "float renders clamped to [0,1] (gsplat simple_trainer eval)",
    "uint8_round": "renders through 8 bits and back: round(255x) (x*255+0.5, clamped, truncated, "
    "as torchvision save_image) / 255, the PNG round trip of original 3DGS render.py + metrics.py",
    "uint8_floor": "renders through 8 bits and back: floor(clip(255x, 0, 255)) / 255, as "
    "NerfBaselines' image_to_srgb before its metrics",
}
#: How renders are brought to 8 bits before the metrics, or ``none``.
QUANTIZE_RULES: tuple[str, ...] = tuple(_QUANTIZE_MEANING)
_GT_QUANTIZE_MEANING = (
    "ground truth rounded to 8 bits (exact for the 8-bit images scenes are stored as)"
)
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
        quantize: ``"none"`` | ``"uint8_round"`` | ``"uint8_floor"``: whether renders go
            through 8 bits before every metric (see the module docstring).
        lpips_weights_dir: where to look for LPIPS weights first. Not part of the convention (it
            does not change any value), so it is excluded from equality and from ``describe()``.
        lpips_download: download a missing torchvision LPIPS checkpoint into torch hub's cache
            (hash-checked). Operational, like ``lpips_weights_dir``.
    """

    name: str
    ssim_border: str
    lpips_net: str
    lpips_input_range: str
    psnr_data_range: float = 1.0
    source: str = ""
    overrides: tuple[str, ...] = ()
    quantize: str = "none"
    lpips_weights_dir: str | None = field(default=None, compare=False)
    lpips_download: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        _check_choice("ssim_border", self.ssim_border, SSIM_BORDERS)
        _check_choice("lpips_net", self.lpips_net, LPIPS_NETS)
        _check_choice("lpips_input_range", self.lpips_input_range, LPIPS_INPUT_RANGES)
        _check_choice("quantize", self.quantize, QUANTIZE_RULES)
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
            "quantize": {
                "rule": self.quantize,
                "meaning": _QUANTIZE_MEANING[self.quantize],
                "ground_truth": _GT_QUANTIZE_MEANING if self.quantize != "none" else "as loaded",
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
    "quantize",
    "lpips_weights_dir",
    "lpips_download",
)
#: Keys of the ``eval`` section that belong to other consumers and are accepted here unread.
OTHER_EVAL_KEYS: tuple[str, ...] = ("comparison_images", "render_backend", "error_map_max")

_ALLOWED = {
    "ssim_border": SSIM_BORDERS,
    "lpips_net": LPIPS_NETS,
    "lpips_input_range": LPIPS_INPUT_RANGES,
    "quantize": QUANTIZE_RULES,
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
        quantize="uint8_round",
        source="graphdeco-inria/gaussian-splatting render.py + metrics.py (3DGS paper numbers)",
    ),
    "gsplat": MetricConvention(
        name="gsplat",
        ssim_border="reflect",
        lpips_net="alex",
        lpips_input_range="-1_1",
        source="nerfstudio-project/gsplat examples/simple_trainer.py (torchmetrics SSIM/LPIPS)",
    ),
    "nerfbaselines": MetricConvention(
        name="nerfbaselines",
        ssim_border="valid",
        lpips_net="alex",
        lpips_input_range="-1_1",
        quantize="uint8_floor",
        source="NerfBaselines default protocol (AlexNet LPIPS)",
    ),
    # NerfBaselines switches LPIPS to VGG under its "nerf" protocol (its published Mip-NeRF 360
    # tables use VGG); a separate preset keeps both explicit instead of guessing which was meant.
    "nerfbaselines-nerf": MetricConvention(
        name="nerfbaselines-nerf",
        ssim_border="valid",
        lpips_net="vgg",
        lpips_input_range="-1_1",
        quantize="uint8_floor",
        source="NerfBaselines 'nerf' protocol (VGG LPIPS)",
    ),
}


def convention_from_config(config: Mapping[str, Any] | None) -> MetricConvention:
    """Build the convention from the ``eval`` section of params.

    ``preset`` gives all values; ``ssim_border``, ``lpips_net``, ``lpips_input_range`` and
    ``quantize`` given explicitly (not null) override it, are listed in ``overrides``, and rename
    the convention ``"custom (from <preset>)"``; explicit keys equal to the preset's values
    change nothing. Without a preset the first three must be given (``quantize`` defaults to
    ``none``; the convention is then named ``"custom"``). ``lpips_weights_dir`` and
    ``lpips_download`` (bool) are optional.
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

    download = config.get("lpips_download")
    if download is not None and not isinstance(download, bool):
        raise ConfigError(
            f"eval.lpips_download must be true or false, got {download!r}",
            fix="set eval.lpips_download to true (download missing torchvision checkpoints) "
            "or false",
        )
    download = bool(download)

    if preset_name is None:
        missing = [k for k in _ALLOWED if k not in explicit and k != "quantize"]
        if missing:
            raise ConfigError(
                f"eval.preset is not set and eval.{', eval.'.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing",
                fix=f"set eval.preset to one of: {', '.join(PRESETS)} (or give all of "
                f"{', '.join(k for k in _ALLOWED if k != 'quantize')})",
            )
        return MetricConvention(
            name="custom",
            source="explicit eval settings",
            lpips_weights_dir=weights_dir,
            lpips_download=download,
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
    return replace(base, name=name, overrides=overrides, lpips_weights_dir=weights_dir,
                   lpips_download=download, **explicit)  # fmt: skip
