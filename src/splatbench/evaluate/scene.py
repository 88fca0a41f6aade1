"""Evaluate a scene's models on its test views: render, measure, time, and draw comparisons.

Input is ``data/sfm/<scene>/`` (cameras, images, ``split.json``) and one or more 3DGS PLY files
(the trained model, and the decoded compressed model when there is one). Only the *test* views
of ``split.json`` are rendered. The result is the JSON document the evaluate stage writes to
``metrics/<scene>/eval.json``; comparison strips go to an output directory.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

import splatbench
from splatbench.errors import SplatbenchError
from splatbench.evaluate.comparisons import comparison_strip, pick_views
from splatbench.evaluate.config import EvalConfig
from splatbench.fsutil import atomic_write_bytes, atomic_write_json, staging_dir
from splatbench.hardware import device_name
from splatbench.metrics import MetricConvention, evaluate_images

EVAL_SCHEMA_VERSION = 1
#: Images evaluated per call of ``evaluate_images``: bounds memory (renders are float32) while
#: loading the LPIPS network only once per chunk.
CHUNK_IMAGES = 8
MODEL_NAMES = ("trained", "compressed")  # always known; exports add their own names
COMPARISONS_FILENAME = "comparisons.json"


class EvaluateError(SplatbenchError):
    """A model or scene cannot be evaluated (missing file, empty test split)."""


@dataclass(frozen=True)
class ModelInput:
    """One model to evaluate.

    Attributes:
        name: ``trained``, ``compressed`` or an export's name (keys of ``models`` in eval.json).
        ply: the 3DGS PLY to render (for a compressed model: its decoded PLY).
        storage_dir: for a compressed model, the directory holding the compressed files (its
            size, all files but ``ply``, is the model's storage) or the single compressed file.
            None: the PLY's own size.
    """

    name: str
    ply: Path
    storage_dir: Path | None = None


@dataclass(frozen=True)
class RenderTiming:
    """Wall time of rendering every test view once, one view per call, after a warm-up call.

    Includes projection, SH evaluation, rasterization and background compositing; excludes
    loading, metric computation and image encoding. CUDA is synchronised around each call.
    """

    images: int
    seconds: float
    warmup_seconds: float
    megapixels: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "seconds": round(self.seconds, 4),
            "warmup_seconds": round(self.warmup_seconds, 4),
            "images_per_second": round(self.images / self.seconds, 3) if self.seconds else None,
            "megapixels_per_second": round(self.megapixels / self.seconds, 3)
            if self.seconds
            else None,
            "measured": "one view per rasterize call, after one untimed warm-up call; "
            "excludes loading and metrics",
        }


def storage_bytes(model: ModelInput) -> tuple[int, str]:
    """Bytes the model takes on disk and what was counted."""
    if model.storage_dir is None:
        return model.ply.stat().st_size, "PLY file size"
    if Path(model.storage_dir).is_file():
        return Path(model.storage_dir).stat().st_size, f"size of {model.storage_dir}"
    ply = model.ply.resolve()
    files = [p for p in sorted(Path(model.storage_dir).rglob("*"))
             if p.is_file() and p.resolve() != ply]  # fmt: skip
    if not files:
        return model.ply.stat().st_size, "decoded PLY size (no compressed files found beside it)"
    return sum(p.stat().st_size for p in files), (
        f"sum of the {len(files)} files in {model.storage_dir} except the decoded PLY"
    )


def parse_model_arg(text: str) -> ModelInput:
    """``NAME=PLY[:STORAGE]`` (the evaluate stage's ``--model``) -> :class:`ModelInput`.

    Raises:
        EvaluateError: no name or no PLY, naming the argument.
    """
    name, eq, rest = text.partition("=")
    ply, _, storage = rest.partition(":")
    if not eq or not name.strip() or not ply.strip():
        raise EvaluateError(
            f"--model {text!r}: expected NAME=PLY or NAME=PLY:STORAGE",
            fix="e.g. --model spz=data/compressed/S/export_decoded/spz.ply:"
            "data/compressed/S/export/scene.spz",
        )
    return ModelInput(name.strip(), Path(ply), Path(storage) if storage else None)


def resolve_device(backend: str) -> tuple[str, torch.device]:
    """Concrete backend and the device it renders on (gsplat: CUDA; the torch backends: CPU)."""
    from splatbench.render import resolve_backend

    name = resolve_backend(backend)
    return name, torch.device("cuda") if name == "gsplat" else torch.device("cpu")


def versions() -> dict[str, str | None]:
    """Versions of what produced the numbers (gsplat: None when not installed)."""

    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "splatbench": splatbench.__version__,
        "torch": torch.__version__,
        "gsplat": dist("gsplat"),
        "torchmetrics": dist("torchmetrics"),
        "python": platform.python_version(),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def render_view(
    splats: torch.nn.ParameterDict,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    background: torch.Tensor,
    backend: str,
) -> torch.Tensor:
    """``[H, W, 3]`` render on ``background``, clamped to [0, 1] (as gsplat's eval does).

    Activations follow gsplat's trainer: ``exp`` of the log-scales, ``sigmoid`` of the logit
    opacities; SH evaluated at the full degree the PLY holds.
    """
    from splatbench.gaussians import sh_colors, splats_sh_degree
    from splatbench.render import rasterize

    colors, _, _ = rasterize(
        splats["means"], splats["quats"], torch.exp(splats["scales"]),
        torch.sigmoid(splats["opacities"]), sh_colors(splats), viewmat[None], K[None],
        width, height, sh_degree=splats_sh_degree(splats), backgrounds=background[None],
        backend=backend,  # type: ignore[arg-type]
    )  # fmt: skip
    return colors[0].clamp(0.0, 1.0)


def _json_float(value: float | None) -> float | None:
    # JSON has no inf: an exact reproduction (PSNR inf) is written as null and reported.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def evaluate_model(
    model: ModelInput,
    views: Any,
    cfg: EvalConfig,
    convention: MetricConvention,
    *,
    backend: str,
    device: torch.device,
    comparison_indices: list[int],
) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """Render ``views`` (a :class:`~splatbench.gaussians.SceneViews`) with one model.

    Returns the model's eval.json entry and the comparison strips (uint8) by view index.
    """
    from splatbench.gaussians import check_splats, read_ply, splats_sh_degree

    if not model.ply.is_file():
        raise EvaluateError(
            f"{model.ply}: {model.name} model not found",
            fix="run the stage that writes it first (dvc repro), or drop it from the evaluation",
        )
    splats = read_ply(model.ply, device=device)
    num_gaussians = check_splats(splats)
    background = torch.tensor(cfg.background, dtype=torch.float32, device=device)

    per_image: list[dict[str, Any]] = []
    lpips_status: dict[str, Any] | None = None
    strips: dict[int, np.ndarray] = {}
    seconds = 0.0
    megapixels = 0.0
    warmup = 0.0
    chunk: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def flush() -> None:
        nonlocal lpips_status
        if not chunk:
            return
        result = evaluate_images(chunk, convention)
        per_image.extend(result["per_image"])
        lpips_status = lpips_status or result["lpips"]
        chunk.clear()

    for i, name in enumerate(views.names):
        w, h = views.size(i)
        viewmat, K = views.viewmats[i].to(device), views.Ks[i].to(device)
        if i == 0:
            # Warm-up: builds the C++ extension / CUDA context and allocator pools, which are
            # not part of steady-state rendering speed.
            t0 = time.perf_counter()
            render_view(splats, viewmat, K, w, h, background=background, backend=backend)
            _sync(device)
            warmup = time.perf_counter() - t0
        _sync(device)
        t0 = time.perf_counter()
        render = render_view(splats, viewmat, K, w, h, background=background, backend=backend)
        _sync(device)
        seconds += time.perf_counter() - t0
        megapixels += w * h / 1e6
        target = views.image(i, device)
        if i in comparison_indices:
            strips[i] = comparison_strip(
                target.cpu().numpy(), render.cpu().numpy(), cfg.error_map_max
            )
        chunk[name] = (render.cpu(), target.cpu())
        if len(chunk) >= CHUNK_IMAGES:
            flush()
    flush()

    means = {
        key: (math.fsum(r[key] for r in per_image) / len(per_image))
        if all(r[key] is not None for r in per_image)
        else None
        for key in ("psnr", "ssim", "lpips")
    }
    size, size_meaning = storage_bytes(model)
    entry = {
        "ply": str(model.ply),
        "num_gaussians": num_gaussians,
        "sh_degree": splats_sh_degree(splats),
        "ply_bytes": model.ply.stat().st_size,
        "storage_bytes": size,
        "storage_mb": round(size / 1e6, 4),
        "storage_meaning": size_meaning,
        "psnr": _json_float(means["psnr"]),
        "ssim": _json_float(means["ssim"]),
        "lpips": _json_float(means["lpips"]),
        "render": RenderTiming(len(per_image), seconds, warmup, megapixels).as_dict(),
        "per_image": [
            {
                k: _json_float(r[k]) if k != "name" else r[k]
                for k in ("name", "psnr", "ssim", "lpips")
            }
            for r in per_image
        ],
        "lpips_status": lpips_status,
    }
    return entry, strips


def _resolution(views: Any) -> dict[str, Any]:
    sizes = sorted({views.size(i) for i in range(len(views))})
    width, height = sizes[0] if len(sizes) == 1 else (None, None)
    return {
        "width": width,
        "height": height,
        "sizes": [list(s) for s in sizes],
        "meaning": "test images as written by the sfm stage (benchmark resolution, undistorted)",
    }


def evaluate_scene(
    sfm_dir: Path,
    models: list[ModelInput],
    cfg: EvalConfig,
    convention: MetricConvention,
    *,
    comparisons_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``models`` on the test views of ``sfm_dir``; return the eval.json document.

    Args:
        sfm_dir: ``data/sfm/<scene>/`` (``sparse/0`` PINHOLE model, ``images/``, ``split.json``).
        models: the models to evaluate, named ``trained`` / ``compressed``.
        cfg: stage settings (background, backend, comparison images).
        convention: the metric convention (recorded with ``describe()``).
        comparisons_dir: receives ``<model>/<view>.png`` strips and ``comparisons.json``
            (replaced as a whole, atomically); None writes no images.

    Raises:
        EvaluateError: a model file is missing or two models share a name.
        SfmError / ManifestError: the SfM directory is unusable (from ``load_views``).
    """
    from splatbench.gaussians import load_views
    from splatbench.scene.split import SPLIT_FILENAME, read_split

    names = [m.name for m in models]
    if not models or len(set(names)) != len(names):
        raise EvaluateError(f"models to evaluate must be distinct and non-empty, got {names}")
    sfm_dir = Path(sfm_dir)
    split = read_split(sfm_dir / SPLIT_FILENAME)
    views = load_views(sfm_dir, "test")  # never the training views
    missing = sorted(set(split["test"]) - set(views.names))
    backend, device = resolve_device(cfg.render_backend)
    picks = pick_views(len(views), cfg.comparison_images)

    started = time.perf_counter()
    entries: dict[str, Any] = {}
    strips: dict[str, dict[int, np.ndarray]] = {}
    for model in models:
        entries[model.name], strips[model.name] = evaluate_model(
            model, views, cfg, convention, backend=backend, device=device, comparison_indices=picks
        )
    total = time.perf_counter() - started

    lpips_status = next(iter(entries.values())).pop("lpips_status")
    for entry in entries.values():
        entry.pop("lpips_status", None)

    warnings: list[str] = []
    if not lpips_status["available"]:
        warnings.append(f"LPIPS not computed: {lpips_status['reason']}")
    if missing:
        warnings.append(
            f"{len(missing)} test image(s) of split.json are not in the SfM model and were not "
            f"evaluated: {missing}"
        )
    for model_name, entry in entries.items():
        bad = [r["name"] for r in entry["per_image"] if r["psnr"] is None]
        if bad:
            warnings.append(
                f"{model_name}: PSNR is infinite (render identical to ground truth) for {bad}; "
                "written as null"
            )
    if "compressed" not in entries:
        warnings.append("no compressed model evaluated (none given to the evaluate stage)")

    doc: dict[str, Any] = {
        "schema_version": EVAL_SCHEMA_VERSION,
        "convention": convention.describe(),
        "lpips": lpips_status,
        "resolution": _resolution(views),
        "split": {
            "name": "test",
            "rule": split.get("rule"),
            "every": split.get("every"),
            "offset": split.get("offset"),
            "count": len(views),
            "views": list(views.names),
            "missing": missing,
        },
        "render_values": "renders composited on the background, clamped to [0, 1]; "
        + convention.describe()["quantize"]["meaning"],
        "background": list(cfg.background),
        "error_map": {
            "max": cfg.error_map_max,
            "meaning": "|render - ground truth| averaged over RGB; black 0, brightest >= max",
        },
        "backend": backend,
        "device": str(device),
        "device_name": device_name(device),
        "versions": versions(),
        "models": entries,
        "seconds": round(total, 3),
        "warnings": warnings,
    }
    if "trained" in entries and "compressed" in entries:
        t, c = entries["trained"], entries["compressed"]
        doc["compressed_vs_trained"] = {
            "psnr_delta": _delta(c["psnr"], t["psnr"]),
            "ssim_delta": _delta(c["ssim"], t["ssim"]),
            "lpips_delta": _delta(c["lpips"], t["lpips"]),
            "size_ratio": round(t["storage_bytes"] / c["storage_bytes"], 3)
            if c["storage_bytes"]
            else None,
        }
    if "trained" in entries and len(entries) > 2:
        # Every other model (viewer exports too) against the trained one.
        t = entries["trained"]
        doc["vs_trained"] = {
            name: {
                "psnr_delta": _delta(e["psnr"], t["psnr"]),
                "ssim_delta": _delta(e["ssim"], t["ssim"]),
                "lpips_delta": _delta(e["lpips"], t["lpips"]),
                "size_ratio": round(t["storage_bytes"] / e["storage_bytes"], 3)
                if e["storage_bytes"]
                else None,
            }
            for name, e in entries.items()
            if name != "trained"
        }
    if comparisons_dir is not None:
        doc["comparisons"] = write_comparisons(comparisons_dir, views.names, strips, entries)
    return doc


def _delta(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else round(new - old, 6)


def write_comparisons(
    out_dir: Path,
    view_names: list[str],
    strips: Mapping[str, Mapping[int, np.ndarray]],
    entries: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Write ``out_dir/<model>/<view>.png`` and ``comparisons.json``; return the index.

    The directory is built beside ``out_dir`` and swapped in, so a failed run never leaves a
    mix of old and new images.
    """
    from splatbench.evaluate.comparisons import png_bytes

    index: list[dict[str, Any]] = []
    with staging_dir(Path(out_dir)) as stage:
        for model_name, by_view in strips.items():
            per_image = {r["name"]: r for r in entries[model_name]["per_image"]}
            for i, strip in sorted(by_view.items()):
                view = view_names[i]
                rel = f"{model_name}/{Path(view).stem}.png"
                atomic_write_bytes(stage / rel, png_bytes(strip))
                row = per_image.get(view, {})
                index.append({
                    "model": model_name, "view": view, "path": rel,
                    "psnr": row.get("psnr"), "ssim": row.get("ssim"), "lpips": row.get("lpips"),
                    "panels": ["ground truth", "render", "error |render - gt| (mean RGB)"],
                })  # fmt: skip
        atomic_write_json(stage / COMPARISONS_FILENAME, {"images": index})
    return index
