"""The 3DGS training loop.

One step is gsplat's example trainer step, in the same order: render one training view, composite
the background, ``strategy.step_pre_backward``, loss, backward, Adam step (means learning rate on
gsplat's exponential schedule), ``strategy.step_post_backward``. On top of that: early stop on
training-view PSNR, progressive resolution, NaN / OOM checks, curves, progress, checkpoints.

Determinism: the image order and random backgrounds are pure functions of ``(seed, step)``, the
global RNGs (used by gsplat's split and by MCMC sampling) are seeded once and saved in every
checkpoint, and the means learning rate is a function of the step. With the CPU ``torch``
backend a rerun, or a run resumed from a checkpoint, therefore ends with bit-identical
parameters (same machine, torch thread count and software). With ``gsplat`` on CUDA it does
not: gsplat's backward pass sums gradients with atomic adds whose order varies from run to run,
so reruns and resumes differ in the last bits and drift apart over the steps;
:func:`determinism` says which case a run is, and train.json records it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from splatbench.gaussians.params import check_splats, sh_colors
from splatbench.gaussians.views import SceneViews
from splatbench.train.checkpoint import (
    CheckpointError,
    fingerprint,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from splatbench.train.config import (
    DefaultStrategyConfig,
    EarlyStopConfig,
    StrategyConfig,
    TrainConfig,
    config_dict,
)
from splatbench.train.diagnostics import summarize
from splatbench.train.early_stop import EarlyStopper, validation_indices
from splatbench.train.errors import NonFiniteError, TrainingOOMError
from splatbench.train.interrupt import TrainingInterrupted
from splatbench.train.losses import photometric_loss, psnr
from splatbench.train.monitor import CurveLogger, ProgressBar
from splatbench.train.strategies import FixedDefaultStrategy, build_strategy

RasterizeFn = Callable[..., tuple[Tensor, Tensor, dict[str, Any]]]
"""``splatbench.render.rasterize``'s signature (gsplat-compatible, non-packed)."""

# Seed streams, so the image order and the backgrounds never share random numbers.
_STREAM_ORDER = 1
_STREAM_BACKGROUND = 2


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        splats: the trained parameters (on the training device).
        steps: optimizer steps completed.
        stop_reason: ``"max_steps"``, ``"plateau"`` or ``"target"``.
        events: the densification records (``RefineEvent.to_dict()`` rows).
        summary / warnings: see :func:`splatbench.train.diagnostics.summarize`.
        seconds: training wall time, summed over interrupted and resumed sessions.
        early_stop: the early-stop state (best validation PSNR, history).
        resumed_from: completed steps of the checkpoint this session resumed from, or None.
        num_initial: Gaussian count at step 0.
        last_loss: loss of the last step (None when no step ran in this session).
    """

    splats: torch.nn.ParameterDict
    steps: int
    stop_reason: str
    events: list[dict[str, Any]]
    summary: dict[str, Any]
    warnings: list[str]
    seconds: float
    early_stop: dict[str, Any]
    resumed_from: int | None
    num_initial: int
    last_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_backend(backend: str) -> str:
    """Concrete backend name, as ``splatbench.render.resolve_backend``: ``auto`` is gsplat when
    CUDA and gsplat's kernels work here, else torch; an explicit ``gsplat`` that cannot run is
    an error with the install hint."""
    from splatbench.render import resolve_backend as render_resolve

    return render_resolve(backend)


def prepare_backend(backend: str) -> float:
    """Load or build ``backend``'s kernels; returns the seconds (kept out of training time)."""
    from splatbench.render import prepare_backend as render_prepare

    return render_prepare(backend)


def determinism(backend: str) -> dict[str, Any]:
    """Whether a run on ``backend`` is bit-for-bit reproducible, and under what conditions."""
    if backend in ("torch", "torch_reference"):
        return {
            "bitwise": True,
            "conditions": f"same machine type, torch thread count ({torch.get_num_threads()} "
            "here) and software versions; reruns and resumes give identical parameters",
        }
    return {
        "bitwise": False,
        "conditions": "gsplat's CUDA backward accumulates gradients with atomic adds in a "
        "run-dependent order: reruns and resumes differ (benchmarks/gpu/validate.sh measures "
        "the spread)",
    }


def default_device(backend: str) -> torch.device:
    """The device a backend trains on: CUDA for gsplat; the torch backends render on CPU."""
    return torch.device("cuda") if backend == "gsplat" else torch.device("cpu")


def restore_checkpoint(path: Path, device: torch.device | str) -> dict[str, Any]:
    """Read a checkpoint for a run on ``device``.

    Everything is loaded onto the CPU first: the RNG states must stay there (``set_rng_state``
    takes CPU tensors and the numpy key array is read with ``.numpy()``), whatever device wrote
    the file. Then the parameters and the strategy's tensors move to ``device``; optimizer
    states stay on the CPU here and follow their parameters in ``Optimizer.load_state_dict``.
    """
    data = load_checkpoint(path, map_location="cpu")
    device = torch.device(device)
    data["params"] = {k: v.to(device) for k, v in data["params"].items()}
    data["strategy"] = {
        k: v.to(device) if isinstance(v, Tensor) else v for k, v in data["strategy"].items()
    }
    return data


def _seed_for(seed: int, stream: int, index: int) -> int:
    # A simple mix: distinct (seed, stream, index) triples give distinct generator seeds.
    return (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + index) % (2**63 - 1)


def image_index(step: int, num_views: int, seed: int) -> int:
    """Training view at ``step``: every epoch (``num_views`` steps) is a fresh permutation
    drawn from ``(seed, epoch)``, as a shuffling data loader would, but stateless."""
    epoch, pos = divmod(step, num_views)
    g = torch.Generator().manual_seed(_seed_for(seed, _STREAM_ORDER, epoch))
    return int(torch.randperm(num_views, generator=g)[pos])


def background_at(step: int, cfg: TrainConfig) -> Tensor:
    """``[3]`` background colour at ``step``: fixed, or uniform random from ``(seed, step)``."""
    if not cfg.random_background:
        return torch.tensor(cfg.background, dtype=torch.float32)
    g = torch.Generator().manual_seed(_seed_for(cfg.seed, _STREAM_BACKGROUND, step))
    return torch.rand(3, generator=g)


def make_optimizers(
    splats: torch.nn.ParameterDict, cfg: TrainConfig, scene_scale: float
) -> dict[str, torch.optim.Optimizer]:
    """One Adam per parameter, as gsplat (``eps=1e-15``: gradients of tiny Gaussians are tiny).

    The means rate starts at ``lr.means * scene_scale``; :func:`train` sets it every step.
    """
    lrs = {
        "means": cfg.means_lr(0, scene_scale),
        "scales": cfg.lr.scales,
        "quats": cfg.lr.quats,
        "opacities": cfg.lr.opacities,
        "sh0": cfg.lr.sh0,
        "shN": cfg.lr.shN,
    }
    return {
        name: torch.optim.Adam([{"params": [splats[name]], "lr": lr, "name": name}], eps=1e-15)
        for name, lr in lrs.items()
    }


def render_views(
    rasterize: RasterizeFn,
    splats: torch.nn.ParameterDict,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int,
    cfg: TrainConfig,
    backend: str,
    absgrad: bool = False,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render ``C`` views of the Gaussians: ``(colors [C, H, W, 3], alphas [C, H, W, 1], info)``,
    without background (the caller composites it)."""
    return rasterize(
        splats["means"],
        splats["quats"],
        torch.exp(splats["scales"]),
        torch.sigmoid(splats["opacities"]),
        sh_colors(splats),
        viewmats,
        Ks,
        width,
        height,
        sh_degree=sh_degree,
        near_plane=cfg.near_plane,
        far_plane=cfg.far_plane,
        absgrad=absgrad,
        backend=backend,
    )


@torch.no_grad()
def mean_psnr(
    rasterize: RasterizeFn,
    splats: torch.nn.ParameterDict,
    views: SceneViews,
    indices: list[int],
    *,
    cfg: TrainConfig,
    backend: str,
    device: torch.device,
) -> float:
    """Mean PSNR (dB) over ``views[indices]`` at full resolution, fixed background, full SH."""
    bg = torch.tensor(cfg.background, dtype=torch.float32, device=device)
    values = []
    for i in indices:
        w, h = views.size(i)
        colors, alphas, _ = render_views(
            rasterize, splats, views.viewmats[i : i + 1].to(device), views.Ks[i : i + 1].to(device),
            w, h, sh_degree=cfg.sh_degree, cfg=cfg, backend=backend,
        )  # fmt: skip
        composite = colors + bg * (1.0 - alphas)
        values.append(float(psnr(composite[0], views.image(i, device))))
    return sum(values) / len(values) if values else math.nan


class _ScaledViews:
    """Training images and intrinsics at the current progressive-resolution level."""

    def __init__(self, views: SceneViews, device: torch.device) -> None:
        self.views = views
        self.device = device
        self._factor: float | None = None
        self._cache: dict[int, tuple[Tensor, Tensor, int, int]] = {}

    def get(self, i: int, factor: float) -> tuple[Tensor, Tensor, int, int]:
        """``(image [1, h, w, 3], K [1, 3, 3], w, h)`` of view ``i`` downscaled by ``factor``."""
        if factor != self._factor:
            self._cache.clear()  # one level at a time: coarse levels are never revisited
            self._factor = factor
        if factor == 1.0:
            w, h = self.views.size(i)
            K = self.views.Ks[i : i + 1].to(self.device)
            return self.views.image(i, self.device)[None], K, w, h
        if i not in self._cache:
            full_w, full_h = self.views.size(i)
            w, h = max(1, round(full_w / factor)), max(1, round(full_h / factor))
            img = self.views.image(i, "cpu").permute(2, 0, 1)[None]
            small = F.interpolate(img, size=(h, w), mode="area")[0].permute(1, 2, 0)
            K = self.views.Ks[i].clone()
            # Pixel-corner origin: a whole-image resize scales fx, cx (and fy, cy) alike.
            K[0, :] *= w / full_w
            K[1, :] *= h / full_h
            self._cache[i] = (small.contiguous(), K, w, h)
        img, K, w, h = self._cache[i]
        return img[None].to(self.device), K[None].to(self.device), w, h


def oom_error_types(torch_module: Any = torch) -> tuple[type[BaseException], ...]:
    """The out-of-memory exception classes this torch has.

    ``torch.OutOfMemoryError`` exists from torch 2.5 on; before, only
    ``torch.cuda.OutOfMemoryError`` (a ``RuntimeError``). The project allows torch >= 2.4, so
    neither name may be used unguarded.
    """
    found: list[type[BaseException]] = []
    for owner in (torch_module, getattr(torch_module, "cuda", None)):
        cls = getattr(owner, "OutOfMemoryError", None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(dict.fromkeys(found))


_OOM_TYPES = oom_error_types()


def _is_oom(exc: BaseException) -> bool:
    if _OOM_TYPES and isinstance(exc, _OOM_TYPES):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _oom_error(exc: BaseException, step: int, n: int, strategy: StrategyConfig, device: Any):
    if isinstance(strategy, DefaultStrategyConfig):
        knobs = (
            f"raise strategy.grow_grad2d (now {strategy.grow_grad2d:g}) or lower "
            f"strategy.refine_stop_iter (now {strategy.refine_stop_iter}) to grow fewer "
            f"Gaussians, or use strategy=mcmc with a strategy.cap_max"
        )
    else:
        knobs = f"lower strategy.cap_max (now {strategy.cap_max})"
    return TrainingOOMError(
        step,
        n,
        f"out of memory at step {step} with {n:,} Gaussians on {device} ({exc})",
        fix=f"{knobs}; or subsample the initial cloud (train.init.num_points), lower the "
        f"image resolution, or use a device with more memory",
    )


def _check_finite_params(params: torch.nn.ParameterDict, step: int) -> None:
    # One device sync for all parameters; only on failure find which tensor.
    flags = torch.stack([torch.isfinite(p).all() for p in params.values()])
    if bool(flags.all()):
        return
    for name, p in params.items():
        bad = int((~torch.isfinite(p)).sum())
        if bad:
            raise NonFiniteError(
                step,
                name,
                f"step {step}: parameter '{name}' has {bad} non-finite value(s) (NaN/inf) "
                f"after the optimizer step",
                fix=f"lower train.lr.{name} (or train.lr.means for positions); check the "
                f"cameras and images are valid",
            )


def _run_fingerprint(
    views: SceneViews, cfg: TrainConfig, strategy: StrategyConfig, early: EarlyStopConfig,
    scene_scale: float, backend: str,
) -> str:  # fmt: skip
    train = config_dict(cfg)
    for cadence in ("log_every", "checkpoint_every", "keep_checkpoints"):
        train.pop(cadence)  # how often we log or save does not change the result
    return fingerprint(
        {
            "train": train,
            "strategy": config_dict(strategy),
            "early_stop": config_dict(early),
            "views": views.names,
            "sizes": [views.size(i) for i in range(len(views))],
            "scene_scale": round(scene_scale, 9),
            "backend": backend,
        }
    )


def train(
    views: SceneViews,
    splats: torch.nn.ParameterDict,
    cfg: TrainConfig,
    strategy_cfg: StrategyConfig,
    early_stop_cfg: EarlyStopConfig,
    *,
    scene_scale: float,
    device: torch.device | str = "cpu",
    backend: str | None = None,
    rasterize_fn: RasterizeFn | None = None,
    checkpoint_dir: Path | None = None,
    live_dir: Path | None = None,
    progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train Gaussians on the training ``views``.

    Args:
        views: the training views (early stop validates on a subset of *these*).
        splats: initial parameters (copied to ``device``; the argument is not modified).
        scene_scale: scales the means learning rate and the strategies' 3D thresholds.
        backend: rasterizer backend name passed to ``rasterize_fn``; ``None`` resolves
            ``cfg.backend`` (``auto``: gsplat with CUDA, torch otherwise).
        rasterize_fn: the rasterizer; ``None`` uses ``splatbench.render.rasterize``.
        checkpoint_dir: where checkpoints go every ``cfg.checkpoint_every`` steps and at the
            end; when it holds one, training resumes from the newest. ``None``: no checkpoints.
        live_dir: DVCLive directory for curves; ``None`` disables them.
        progress: show a progress bar (only on a terminal).
        should_stop: polled after every step; when it returns True a checkpoint is written at
            once and :class:`~splatbench.train.interrupt.TrainingInterrupted` is raised
            (:class:`~splatbench.train.interrupt.StopOnSignal` turns SIGTERM into this).

    Raises:
        NonFiniteError: NaN/inf loss or parameter (names the step and the tensor).
        TrainingOOMError: out of memory (gives the Gaussian count and the knobs to turn).
        CheckpointError: the checkpoint belongs to another configuration or scene.
    """
    device = torch.device(device)
    backend = resolve_backend(backend or cfg.backend)
    if rasterize_fn is None:
        from splatbench.render import rasterize as rasterize_fn  # lazy: optional heavy backends
    rasterize: RasterizeFn = rasterize_fn  # type: ignore[assignment]
    check_splats(splats)
    if len(views) == 0:
        raise ValueError("no training views")

    params = torch.nn.ParameterDict(
        {k: torch.nn.Parameter(v.detach().to(device).clone()) for k, v in splats.items()}
    )
    optimizers = make_optimizers(params, cfg, scene_scale)
    strategy = build_strategy(strategy_cfg, cfg.max_gaussians)
    strategy.check_sanity(params, optimizers)
    if isinstance(strategy, FixedDefaultStrategy):
        strategy_state = strategy.initialize_state(scene_scale=scene_scale)
    else:
        strategy_state = strategy.initialize_state()
    stopper = EarlyStopper(early_stop_cfg)
    events: list[dict[str, Any]] = []
    steps_done = 0
    seconds_before = 0.0
    num_initial = len(params["means"])
    finished = False
    resumed_from: int | None = None
    run_id = _run_fingerprint(views, cfg, strategy_cfg, early_stop_cfg, scene_scale, backend)
    torch.manual_seed(cfg.seed)

    ckpt = latest_checkpoint(checkpoint_dir)
    if ckpt is not None:
        data = restore_checkpoint(ckpt, device)
        if data["fingerprint"] != run_id:
            raise CheckpointError(
                f"{ckpt}: checkpoint was written by a run with another configuration or scene",
                fix=f"delete {checkpoint_dir} to start over, or restore the configuration it "
                "was written with",
            )
        params = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(v) for k, v in data["params"].items()}
        )
        optimizers = make_optimizers(params, cfg, scene_scale)
        for name, opt in optimizers.items():
            # Adam's load_state_dict moves its moments onto the parameter's device.
            opt.load_state_dict(data["optimizers"][name])
        strategy_state.update(data["strategy"])
        stopper.load_state_dict(data["early_stop"])
        events = list(data["events"])
        steps_done = resumed_from = int(data["steps"])
        seconds_before = float(data["seconds"])
        num_initial = int(data["num_initial"])
        finished = bool(data["finished"])
        set_rng_state(data["rng"])

    val_idx = validation_indices(len(views), getattr(early_stop_cfg, "val_views", 0))
    scaled = _ScaledViews(views, device)
    absgrad = bool(getattr(strategy_cfg, "absgrad", False))
    logger = CurveLogger(live_dir, resume=resumed_from is not None) if not finished else None
    last_loss: float | None = None
    t0 = time.perf_counter()

    def checkpoint(done: bool) -> None:
        if checkpoint_dir is None:
            return
        save_checkpoint(
            Path(checkpoint_dir),
            steps_done,
            {
                "fingerprint": run_id,
                "steps": steps_done,
                "finished": done,
                "params": {k: v.detach() for k, v in params.items()},
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "strategy": dict(strategy_state),
                "rng": rng_state(),
                "early_stop": stopper.state_dict(),
                "events": events,
                "seconds": seconds_before + time.perf_counter() - t0,
                "num_initial": num_initial,
            },
            keep=cfg.keep_checkpoints,
        )

    step = steps_done
    try:
        with ProgressBar(cfg.max_steps, steps_done, enabled=progress and not finished) as bar:
            for step in range(steps_done, cfg.max_steps if not finished else steps_done):
                i = image_index(step, len(views), cfg.seed)
                target, K, width, height = scaled.get(i, cfg.progressive.downscale_at(step))
                sh_degree = min(step // cfg.sh_degree_interval, cfg.sh_degree)
                bg = background_at(step, cfg).to(device)

                colors, alphas, info = render_views(
                    rasterize, params, views.viewmats[i : i + 1].to(device), K, width, height,
                    sh_degree=sh_degree, cfg=cfg, backend=backend, absgrad=absgrad,
                )  # fmt: skip
                colors = colors + bg * (1.0 - alphas)
                info.setdefault("gaussian_ids", None)  # gsplat's strategy asserts the key
                strategy.step_pre_backward(params, optimizers, strategy_state, step, info)

                loss, _, _ = photometric_loss(colors, target, cfg.ssim_lambda)
                if cfg.opacity_reg > 0:
                    loss = loss + cfg.opacity_reg * torch.sigmoid(params["opacities"]).mean()
                if cfg.scale_reg > 0:
                    loss = loss + cfg.scale_reg * torch.exp(params["scales"]).mean()
                last_loss = float(loss.detach())
                if not math.isfinite(last_loss):
                    raise NonFiniteError(
                        step,
                        "loss",
                        f"step {step}: loss is {last_loss} with {len(params['means']):,} "
                        f"Gaussians (view {views.names[i]})",
                        fix="lower the learning rates (train.lr.*); check the images and "
                        "cameras of the scene",
                    )
                loss.backward()

                optimizers["means"].param_groups[0]["lr"] = cfg.means_lr(step, scene_scale)
                for opt in optimizers.values():
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                _check_finite_params(params, step)

                if isinstance(strategy, FixedDefaultStrategy):
                    new_events = strategy.step_post_backward(
                        params, optimizers, strategy_state, step, info, packed=False
                    )
                else:
                    # gsplat passes the means lr after its scheduler stepped: lr at step + 1.
                    new_events = strategy.step_post_backward(
                        params, optimizers, strategy_state, step, info,
                        lr=cfg.means_lr(step + 1, scene_scale),
                    )  # fmt: skip
                events.extend(e.to_dict() for e in new_events)
                steps_done = step + 1

                log_now = steps_done % cfg.log_every == 0 or steps_done == cfg.max_steps
                batch_psnr = float(psnr(colors.detach(), target)) if log_now else None
                if log_now and logger is not None:
                    logger.log(steps_done, {
                        "train/loss": last_loss,
                        "train/psnr": batch_psnr,
                        "train/num_gaussians": len(params["means"]),
                        "train/lr_means": cfg.means_lr(step, scene_scale),
                    })  # fmt: skip
                if bar.enabled and (log_now or steps_done % 10 == 0):
                    bar.update(steps_done, last_loss, batch_psnr, len(params["means"]))

                stop = False
                if stopper.should_evaluate(steps_done):
                    val = mean_psnr(rasterize, params, views, val_idx, cfg=cfg,
                                    backend=backend, device=device)  # fmt: skip
                    stop = stopper.update(steps_done, val)
                    if logger is not None:
                        logger.log(steps_done, {"val/psnr": val})
                if stop or steps_done == cfg.max_steps:
                    break
                if steps_done % cfg.checkpoint_every == 0:
                    checkpoint(done=False)
                if should_stop is not None and should_stop():  # SIGTERM: save now, then stop
                    checkpoint(done=False)
                    raise TrainingInterrupted(steps_done)
            if not finished:
                checkpoint(done=True)
    except (*_OOM_TYPES, RuntimeError) as exc:
        if _is_oom(exc):
            raise _oom_error(exc, step, len(params["means"]), strategy_cfg, device) from exc
        raise
    finally:
        if logger is not None:
            logger.close()

    seconds = seconds_before + time.perf_counter() - t0 if not finished else seconds_before
    stop_reason = stopper.stop_reason or "max_steps"
    summary, warnings = summarize(
        events, strategy_cfg, steps_run=steps_done, num_initial=num_initial,
        num_final=len(params["means"]), stopped_early=stop_reason != "max_steps",
        max_gaussians=cfg.max_gaussians,
    )  # fmt: skip
    idle_rule = stopper.never_fired_warning(cfg.max_steps)
    if idle_rule:
        warnings.append(idle_rule)
        summary["warnings"] = list(warnings)
    return TrainResult(
        splats=params,
        steps=steps_done,
        stop_reason=stop_reason,
        events=events,
        summary=summary,
        warnings=warnings,
        seconds=seconds,
        early_stop=stopper.state_dict(),
        resumed_from=resumed_from,
        num_initial=num_initial,
        last_loss=last_loss,
    )
