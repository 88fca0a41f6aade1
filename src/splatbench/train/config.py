"""Frozen config dataclasses for the ``train``, ``strategy`` and ``early_stop`` params sections.

Each ``from_dict`` rejects unknown keys by name (a typo in ``-S strategy.grow_grad_2d=...`` must
not silently train with the default) and coerces YAML scalars to the declared types (PyYAML reads
``1e-4`` without a dot as a *string*; a number given as a string is accepted, anything else is
an error naming the key). Missing keys take the gsplat defaults below.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from splatbench.errors import ConfigError
from splatbench.gaussians.init import InitConfig

BACKENDS = ("auto", "torch", "torch_reference", "gsplat")


# ---------------------------------------------------------------------------------------------
# Generic dict -> dataclass with type coercion
# ---------------------------------------------------------------------------------------------


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build(tp, value, key)
    if origin is tuple:
        (elem,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} must be a list")
        return tuple(_coerce(v, elem, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} must be true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                f = math.nan
            if f.is_integer():
                return int(f)
        raise ConfigError(f"{key}={value!r} must be an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} must be a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}={value!r} must be a string")
    return value


def build(cls: type, d: Mapping[str, Any] | None, section: str) -> Any:
    """Instantiate dataclass ``cls`` from ``d``; unknown keys raise :class:`ConfigError`."""
    d = dict(d or {})
    if not isinstance(d, dict):
        raise ConfigError(f"{section} must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(
            f"unknown {section} parameter(s): {', '.join(unknown)}",
            fix=f"check the spelling; known {section} parameters are {', '.join(sorted(known))}",
        )
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in d.items()}
    return cls(**kwargs)


def _require(ok: bool, message: str, fix: str | None = None) -> None:
    if not ok:
        raise ConfigError(message, fix=fix)


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LrConfig:
    """Per-parameter Adam learning rates (gsplat's example trainer).

    ``means`` is multiplied by the scene scale and decays exponentially to
    ``means * means_final_factor`` at ``train.max_steps``.
    """

    means: float = 1.6e-4
    means_final_factor: float = 0.01
    scales: float = 5e-3
    opacities: float = 5e-2
    quats: float = 1e-3
    sh0: float = 2.5e-3
    shN: float = 2.5e-3 / 20

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            _require(v >= 0 and math.isfinite(v), f"train.lr.{f.name}={v} must be >= 0")
        _require(self.means_final_factor > 0, "train.lr.means_final_factor must be > 0")


@dataclass(frozen=True)
class ProgressiveConfig:
    """Coarse-to-fine image resolution (``train.progressive``).

    Training starts with images downscaled by ``start_downscale`` and halves the factor every
    ``halve_every`` steps until full resolution (e.g. 4 -> 2 -> 1). ``start_downscale: 1``
    disables it. Validation (early stop) and the final PSNR always use full resolution.
    """

    start_downscale: int = 1
    halve_every: int = 1000

    def __post_init__(self) -> None:
        _require(self.start_downscale >= 1, "train.progressive.start_downscale must be >= 1")
        _require(self.halve_every >= 1, "train.progressive.halve_every must be >= 1")

    def downscale_at(self, step: int) -> float:
        """Downscale factor (>= 1) used at ``step``."""
        return max(1.0, self.start_downscale / 2.0 ** (step // self.halve_every))


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` params section. Defaults follow gsplat's example trainer.

    Attributes beyond gsplat's: ``opacity_reg``/``scale_reg`` (the 3DGS-MCMC regularisers,
    gsplat's MCMC preset uses 0.01 each), ``progressive``, and the cadences ``log_every``
    (curves / progress), ``checkpoint_every`` and ``keep_checkpoints``.

    ``early_stop_min_steps`` and ``early_stop_eval_every`` are this protocol's early-stop
    schedule: conf/early_stop/{plateau,target}.yaml take their ``min_steps`` and ``eval_every``
    from them (Hydra interpolation), so ``-S early_stop=plateau`` means something sensible for
    a 3000-step demo and a 30k-step benchmark alike. Training itself does not read them.
    """

    backend: str = "auto"
    max_steps: int = 30_000
    sh_degree: int = 3
    sh_degree_interval: int = 1000
    ssim_lambda: float = 0.2
    init: InitConfig = field(default_factory=InitConfig)
    lr: LrConfig = field(default_factory=LrConfig)
    background: tuple[float, ...] = (0.0, 0.0, 0.0)
    random_background: bool = False
    seed: int = 0
    opacity_reg: float = 0.0
    scale_reg: float = 0.0
    near_plane: float = 0.01
    far_plane: float = 1e10
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    log_every: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    max_gaussians: int | None = None
    early_stop_min_steps: int = 15_000
    early_stop_eval_every: int = 1000
    # Which conf/train file composed this section (train/<benchmark>, or default when the
    # benchmark has none); informational, it changes no training behaviour.
    protocol: str = "default"

    def __post_init__(self) -> None:
        _require(
            self.backend in BACKENDS,
            f"train.backend={self.backend!r} is not one of {', '.join(BACKENDS)}",
            fix="use auto (gsplat on CUDA, torch otherwise)",
        )
        _require(self.max_steps >= 1, f"train.max_steps={self.max_steps} must be >= 1")
        _require(0 <= self.sh_degree <= 4, f"train.sh_degree={self.sh_degree} must be in 0..4")
        _require(self.sh_degree_interval >= 1, "train.sh_degree_interval must be >= 1")
        _require(0.0 <= self.ssim_lambda <= 1.0, "train.ssim_lambda must be in [0, 1]")
        _require(
            len(self.background) == 3 and all(0.0 <= c <= 1.0 for c in self.background),
            f"train.background={list(self.background)} must be 3 values in [0, 1]",
        )
        _require(self.opacity_reg >= 0 and self.scale_reg >= 0, "train.*_reg must be >= 0")
        _require(0 < self.near_plane < self.far_plane, "need 0 < train.near_plane < far_plane")
        _require(self.log_every >= 1, "train.log_every must be >= 1")
        _require(self.checkpoint_every >= 1, "train.checkpoint_every must be >= 1")
        _require(self.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
        _require(
            self.max_gaussians is None or self.max_gaussians >= 1,
            f"train.max_gaussians={self.max_gaussians} must be null or >= 1",
        )
        _require(
            self.early_stop_min_steps >= 0 and self.early_stop_eval_every >= 1,
            "train.early_stop_min_steps must be >= 0 and train.early_stop_eval_every >= 1",
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> TrainConfig:
        return build(cls, d, "train")

    def means_lr(self, step: float, scene_scale: float) -> float:
        """Means learning rate after ``step`` scheduler steps: ``lr * scale * f^(step/max)``.

        Equal to gsplat's ``ExponentialLR(gamma=f ** (1 / max_steps))`` after ``step`` steps,
        but a pure function of the step, so a resumed run needs no scheduler state.
        """
        gamma = self.lr.means_final_factor ** (1.0 / self.max_steps)
        return self.lr.means * scene_scale * gamma**step


# ---------------------------------------------------------------------------------------------
# strategy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultStrategyConfig:
    """gsplat ``DefaultStrategy`` (adaptive density control of the original 3DGS).

    Field meanings and defaults are gsplat 1.5.3's (``gsplat/strategy/default.py``).
    """

    name: str = "default"
    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    grow_scale2d: float = 0.05
    prune_scale3d: float = 0.1
    prune_scale2d: float = 0.15
    refine_scale2d_stop_iter: int = 0
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    reset_every: int = 3000
    refine_every: int = 100
    pause_refine_after_reset: int = 0
    absgrad: bool = False
    revised_opacity: bool = False

    def __post_init__(self) -> None:
        _require(self.name == "default", f"strategy.name={self.name!r} for DefaultStrategyConfig")
        _require(0.0 <= self.prune_opa < 1.0, "strategy.prune_opa must be in [0, 1)")
        _require(self.grow_grad2d >= 0, "strategy.grow_grad2d must be >= 0")
        _require(self.refine_every >= 1, "strategy.refine_every must be >= 1")
        _require(self.reset_every >= 1, "strategy.reset_every must be >= 1")
        _require(self.refine_start_iter >= 0 and self.refine_stop_iter >= 0,
                 "strategy.refine_start_iter / refine_stop_iter must be >= 0")  # fmt: skip


@dataclass(frozen=True)
class MCMCStrategyConfig:
    """3DGS-MCMC (Kheradmand et al. 2024), implemented in torch (see ``strategies.py``).

    Field meanings and defaults are those of gsplat 1.5.3's ``MCMCStrategy``.
    """

    name: str = "mcmc"
    cap_max: int = 1_000_000
    noise_lr: float = 5e5
    refine_start_iter: int = 500
    refine_stop_iter: int = 25_000
    refine_every: int = 100
    min_opacity: float = 0.005

    def __post_init__(self) -> None:
        _require(self.name == "mcmc", f"strategy.name={self.name!r} for MCMCStrategyConfig")
        _require(self.cap_max >= 1, "strategy.cap_max must be >= 1")
        _require(self.noise_lr >= 0, "strategy.noise_lr must be >= 0")
        _require(self.refine_every >= 1, "strategy.refine_every must be >= 1")
        _require(0.0 < self.min_opacity < 1.0, "strategy.min_opacity must be in (0, 1)")


StrategyConfig = DefaultStrategyConfig | MCMCStrategyConfig
_STRATEGIES: dict[str, type] = {"default": DefaultStrategyConfig, "mcmc": MCMCStrategyConfig}


def strategy_config_from_dict(d: Mapping[str, Any] | None) -> StrategyConfig:
    """Build the strategy config selected by ``d["name"]`` (default: ``"default"``)."""
    d = dict(d or {})
    name = d.get("name", "default")
    if name not in _STRATEGIES:
        raise ConfigError(
            f"strategy.name={name!r} is not a known strategy",
            fix=f"use one of {', '.join(_STRATEGIES)} (conf/strategy/*.yaml)",
        )
    return build(_STRATEGIES[name], d, "strategy")


# ---------------------------------------------------------------------------------------------
# early_stop
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyStopOff:
    """Train for ``train.max_steps``."""

    name: str = "off"


@dataclass(frozen=True)
class PlateauConfig:
    """Stop when validation PSNR (a subset of the *training* views) stops improving.

    Every ``eval_every`` steps the PSNR over ``val_views`` training views is measured. An
    evaluation improves when it beats the best so far by more than ``min_delta_db``; after
    ``patience`` evaluations in a row without improvement, training stops (never before
    ``min_steps``).
    """

    name: str = "plateau"
    min_steps: int = 15_000
    eval_every: int = 1000
    val_views: int = 4
    patience: int = 3
    min_delta_db: float = 0.05

    def __post_init__(self) -> None:
        _require(self.eval_every >= 1 and self.val_views >= 1 and self.patience >= 1,
                 "early_stop.eval_every, val_views and patience must be >= 1")  # fmt: skip
        _require(self.min_steps >= 0 and self.min_delta_db >= 0,
                 "early_stop.min_steps and min_delta_db must be >= 0")  # fmt: skip


@dataclass(frozen=True)
class TargetConfig:
    """Stop once validation PSNR (a subset of the training views) reaches ``target_psnr_db``
    (never before ``min_steps``)."""

    name: str = "target"
    min_steps: int = 15_000
    eval_every: int = 1000
    val_views: int = 4
    target_psnr_db: float = 30.0

    def __post_init__(self) -> None:
        _require(self.eval_every >= 1 and self.val_views >= 1,
                 "early_stop.eval_every and val_views must be >= 1")  # fmt: skip
        _require(self.min_steps >= 0, "early_stop.min_steps must be >= 0")


EarlyStopConfig = EarlyStopOff | PlateauConfig | TargetConfig
_EARLY_STOPS: dict[str, type] = {"off": EarlyStopOff, "plateau": PlateauConfig,
                                 "target": TargetConfig}  # fmt: skip


def early_stop_config_from_dict(d: Mapping[str, Any] | None) -> EarlyStopConfig:
    """Build the early-stop config selected by ``d["name"]`` (default: ``"off"``).

    YAML 1.1 reads an unquoted ``off`` as ``False``; that is accepted as ``"off"``.
    """
    d = dict(d or {})
    name = d.get("name", "off")
    if name is False:
        name = d["name"] = "off"
    if name not in _EARLY_STOPS:
        raise ConfigError(
            f"early_stop.name={name!r} is not a known early-stop rule",
            fix=f"use one of {', '.join(_EARLY_STOPS)} (conf/early_stop/*.yaml)",
        )
    return build(_EARLY_STOPS[name], d, "early_stop")


def configs_from_params(
    params: Mapping[str, Any],
) -> tuple[TrainConfig, StrategyConfig, EarlyStopConfig]:
    """The three configs from a composed params.yaml dict (sections may be absent).

    Raises:
        ConfigError: a section is invalid, or the early stop can never fire within
            ``train.max_steps`` (:func:`check_early_stop_can_fire`).
    """
    train = TrainConfig.from_dict(params.get("train"))
    early_stop = early_stop_config_from_dict(params.get("early_stop"))
    check_early_stop_can_fire(early_stop, train)
    return train, strategy_config_from_dict(params.get("strategy")), early_stop


def check_early_stop_can_fire(early_stop: EarlyStopConfig, train: TrainConfig) -> None:
    """Reject an early-stop rule that cannot stop a run of ``train.max_steps`` steps.

    A stop is only considered at an evaluation (every ``eval_every`` steps) at or after
    ``min_steps``, and the run ends at ``max_steps`` regardless: with ``min_steps >= max_steps``
    or ``eval_every > max_steps`` the rule would silently do nothing (the issue this guards
    against: plateau's 7000-step minimum on the 3000-step demo protocol).
    """
    if isinstance(early_stop, EarlyStopOff):
        return
    name, max_steps = early_stop.name, train.max_steps
    fix = (
        f"lower early_stop.min_steps / early_stop.eval_every below train.max_steps (e.g. "
        f"-S early_stop.min_steps={max_steps // 2} -S early_stop.eval_every="
        f"{max(1, max_steps // 12)}; conf/early_stop/{name}.yaml takes them from "
        f"train.early_stop_min_steps and train.early_stop_eval_every), raise train.max_steps, "
        f"or use early_stop=off"
    )
    _require(
        early_stop.min_steps < max_steps,
        f"early_stop={name} can never fire: early_stop.min_steps={early_stop.min_steps} >= "
        f"train.max_steps={max_steps} (no stop is considered before min_steps)",
        fix=fix,
    )
    _require(
        early_stop.eval_every <= max_steps,
        f"early_stop={name} can never fire: early_stop.eval_every={early_stop.eval_every} > "
        f"train.max_steps={max_steps} (validation never runs)",
        fix=fix,
    )


def config_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-able dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))
