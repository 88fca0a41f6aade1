"""Settings of the evaluate stage, read from the ``eval`` (and ``train``) params sections.

The ``eval`` section is shared: :func:`splatbench.metrics.convention_from_config` owns the metric
convention keys, this module owns the rest. Both reject keys neither knows, so a typo is an error
instead of a silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splatbench.errors import ConfigError, check_known_keys
from splatbench.metrics import CONVENTION_KEYS, MetricConvention, convention_from_config

#: Render backends the evaluate stage accepts (``splatbench.render.BACKENDS``).
RENDER_BACKENDS: tuple[str, ...] = ("auto", "torch", "torch_reference", "gsplat")

#: Keys of the ``eval`` section read here (the metric convention keys are read by ``metrics``).
STAGE_KEYS: tuple[str, ...] = ("comparison_images", "render_backend", "error_map_max")


@dataclass(frozen=True)
class EvalConfig:
    """How the evaluate stage renders and what it writes besides the metric values.

    Attributes:
        comparison_images: how many test views get a ground truth | render | error strip per
            model (0 disables them). Views are spread evenly over the sorted test set.
        render_backend: ``auto`` | ``torch`` | ``torch_reference`` | ``gsplat``.
        background: RGB in [0, 1] composited behind the renders; the training background
            (``train.background``), since the model was fit against it.
        error_map_max: absolute error (mean over RGB, images on [0, 1]) shown at full scale in
            error maps. Fixed rather than per-image so maps of two models compare by eye.
    """

    comparison_images: int = 3
    render_backend: str = "auto"
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error_map_max: float = 0.25

    def __post_init__(self) -> None:
        n = self.comparison_images
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(
                f"eval.comparison_images={n!r} must be an integer >= 0",
                fix="set eval.comparison_images to e.g. 3 (0 writes none)",
            )
        if self.render_backend not in RENDER_BACKENDS:
            raise ConfigError(
                f"eval.render_backend={self.render_backend!r} is not a render backend",
                fix=f"use one of {', '.join(RENDER_BACKENDS)}",
            )
        bg = self.background
        if len(bg) != 3 or not all(isinstance(c, (int, float)) and 0 <= c <= 1 for c in bg):
            raise ConfigError(
                f"train.background={list(bg)} must be 3 numbers in [0, 1]",
                fix="set train.background to e.g. [0, 0, 0]",
            )
        if not (isinstance(self.error_map_max, (int, float)) and self.error_map_max > 0):
            raise ConfigError(
                f"eval.error_map_max={self.error_map_max!r} must be a positive number",
                fix="set eval.error_map_max to e.g. 0.25",
            )


def eval_config_from_params(
    eval_section: Mapping[str, Any] | None, train_section: Mapping[str, Any] | None = None
) -> tuple[EvalConfig, MetricConvention]:
    """The stage settings and the metric convention from the ``eval`` and ``train`` sections.

    Raises:
        ConfigError: an unknown ``eval`` key (with the closest known one), or a bad value.
    """
    eval_section = dict(eval_section or {})
    check_known_keys(eval_section, (*CONVENTION_KEYS, *STAGE_KEYS), "eval")
    convention = convention_from_config({k: eval_section[k] for k in CONVENTION_KEYS
                                         if k in eval_section})  # fmt: skip
    background = tuple((train_section or {}).get("background") or (0.0, 0.0, 0.0))
    defaults = EvalConfig()
    cfg = EvalConfig(
        comparison_images=eval_section.get("comparison_images", defaults.comparison_images),
        render_backend=eval_section.get("render_backend") or defaults.render_backend,
        background=background,  # type: ignore[arg-type]
        error_map_max=eval_section.get("error_map_max", defaults.error_map_max),
    )
    return cfg, convention
