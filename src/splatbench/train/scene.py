"""Train one SfM scene end to end: views -> initial Gaussians -> :func:`train` -> outputs.

Writes ``out_dir/point_cloud.ply`` (3DGS layout) and ``out_dir/diagnostics.json``, each
atomically, and returns the metrics the train stage writes to ``metrics/<scene>/train.json``.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from splatbench.fsutil import atomic_write_json
from splatbench.gaussians.init import init_splats
from splatbench.gaussians.ply import write_ply
from splatbench.gaussians.views import load_views, scene_scale
from splatbench.hardware import device_name
from splatbench.train.config import EarlyStopConfig, StrategyConfig, TrainConfig, config_dict
from splatbench.train.diagnostics import diagnostics_document
from splatbench.train.loop import (
    RasterizeFn,
    default_device,
    determinism,
    mean_psnr,
    prepare_backend,
    resolve_backend,
    train,
)

PLY_FILENAME = "point_cloud.ply"
DIAGNOSTICS_FILENAME = "diagnostics.json"
TRAIN_METRICS_SCHEMA_VERSION = 1


def _peak_memory(device: torch.device) -> tuple[float, str]:
    """Peak memory in MiB and what was measured."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "process_max_rss"


def train_scene(
    sfm_dir: Path,
    out_dir: Path,
    train_cfg: TrainConfig,
    strategy_cfg: StrategyConfig,
    early_stop_cfg: EarlyStopConfig,
    *,
    checkpoint_dir: Path | None = None,
    live_dir: Path | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    rasterize_fn: RasterizeFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train the scene in ``sfm_dir`` (``data/sfm/<scene>/``) and write its outputs.

    Args:
        sfm_dir: SfM output: ``sparse/0`` (PINHOLE), ``images/``, ``split.json``. Only the
            *train* views of ``split.json`` are read.
        out_dir: receives ``point_cloud.ply`` and ``diagnostics.json``.
        checkpoint_dir: periodic checkpoints; a run resumes from the newest one there.
            Keep it outside directories DVC deletes before a stage runs (or mark it persist).
        live_dir: DVCLive curves (loss, PSNR, Gaussian count, means lr); None disables.
        progress: progress bar on a terminal.
        device: default CUDA when available (and always for the gsplat backend), else CPU.
        rasterize_fn: rasterizer override (tests); default ``splatbench.render.rasterize``.
        should_stop: polled after every step (see :func:`splatbench.train.loop.train`).

    Returns:
        Metrics for ``metrics/<scene>/train.json`` (JSON-safe): ``steps`` (optimizer steps
        run), ``max_steps``, ``stop_reason`` (``max_steps`` | ``plateau`` | ``target``),
        ``stop_step``, ``seconds`` (training wall time, summed over resumed sessions; kernel
        loading or compiling is excluded and reported as ``backend_setup_seconds``),
        ``peak_memory_mb`` + ``peak_memory_kind``, ``num_gaussians``, ``num_gaussians_initial``,
        ``backend``, ``device``, ``device_name`` (GPU or CPU model), ``deterministic``
        (``bitwise`` and its conditions), ``train_psnr`` + ``train_psnr_convention``,
        ``val_psnr_best``,
        ``val_psnr_best_step``, ``early_stop``, ``strategy``, ``densification`` (summary
        counts), ``train_views``, ``scene_scale``, ``sh_degree``, ``seed``,
        ``resumed_from_step``, ``torch_version``, ``warnings`` (list of strings).
    """
    sfm_dir, out_dir = Path(sfm_dir), Path(out_dir)
    backend = resolve_backend(train_cfg.backend)
    device = torch.device(device) if device is not None else default_device(backend)
    # Load (or compile, on first use) the backend's kernels before training's clock starts.
    setup_seconds = prepare_backend(backend) if rasterize_fn is None else 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    views = load_views(sfm_dir, "train")
    centers = views.camera_centers()
    scale = scene_scale(centers)
    splats = init_splats(
        sfm_dir / "sparse" / "0", centers.numpy(), scale, train_cfg.init,
        sh_degree=train_cfg.sh_degree, seed=train_cfg.seed,
    )  # fmt: skip
    result = train(
        views, splats, train_cfg, strategy_cfg, early_stop_cfg,
        scene_scale=scale, device=device, backend=backend, rasterize_fn=rasterize_fn,
        checkpoint_dir=checkpoint_dir, live_dir=live_dir, progress=progress,
        should_stop=should_stop,
    )  # fmt: skip

    if rasterize_fn is None:
        from splatbench.render import rasterize as rasterize_fn
    final_psnr = mean_psnr(
        rasterize_fn, result.splats, views, list(range(len(views))),
        cfg=train_cfg, backend=backend, device=device,
    )  # fmt: skip
    write_ply(out_dir / PLY_FILENAME, result.splats)
    atomic_write_json(
        out_dir / DIAGNOSTICS_FILENAME,
        diagnostics_document(result.events, result.summary, strategy_cfg),
    )
    peak_mb, peak_kind = _peak_memory(device)
    early = result.early_stop
    return {
        "schema_version": TRAIN_METRICS_SCHEMA_VERSION,
        "steps": result.steps,
        "max_steps": train_cfg.max_steps,
        "stop_reason": result.stop_reason,
        "stop_step": result.steps,
        "seconds": round(result.seconds, 3),
        "peak_memory_mb": round(peak_mb, 1),
        "peak_memory_kind": peak_kind,
        "num_gaussians": len(result.splats["means"]),
        "num_gaussians_initial": result.num_initial,
        "backend": backend,
        "device": str(device),
        "device_name": device_name(device),
        "backend_setup_seconds": round(setup_seconds, 3),
        "deterministic": determinism(backend),
        "train_psnr": round(final_psnr, 4),
        "train_psnr_convention": "mean over all training views of per-image PSNR on [0,1], "
        "full resolution, fixed background",
        "val_psnr_best": early["best_psnr"],
        "val_psnr_best_step": early["best_step"],
        "early_stop": config_dict(early_stop_cfg)["name"],
        "strategy": strategy_cfg.name,
        "densification": {k: v for k, v in result.summary.items() if k != "warnings"},
        "train_views": len(views),
        "scene_scale": scale,
        "sh_degree": train_cfg.sh_degree,
        "seed": train_cfg.seed,
        "resumed_from_step": result.resumed_from,
        "torch_version": torch.__version__,
        "warnings": list(result.warnings),
    }
