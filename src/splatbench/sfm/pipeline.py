"""The SfM stage: scene images -> undistorted PINHOLE COLMAP model at benchmark resolution.

Output layout of ``out_dir`` (built in a staging directory and swapped in only on success):

- ``sparse/0/``: COLMAP binary model (cameras, images, points3D), PINHOLE, scaled to the
  benchmark resolution (intrinsics and keypoints scaled with the images);
- ``images/``: the registered images, undistorted and resized (PIL bicubic) to that resolution;
- ``split.json``: the train/test split over *all* input images.

The COLMAP database and the distorted model live in a temporary work directory and are not kept.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from splatbench.errors import SfmError
from splatbench.fsutil import staging_dir
from splatbench.scene.cameras import GROUND_TRUTH_FILENAME, read_ground_truth
from splatbench.scene.split import SPLIT_FILENAME, SplitConfig, split_images, write_split
from splatbench.sfm import colmap
from splatbench.sfm.alignment import pose_accuracy, scene_extent
from splatbench.sfm.config import ResolutionConfig, SfmConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_MAX_NAMES_IN_MESSAGE = 20


def list_scene_images(image_dir: Path) -> list[str]:
    """Sorted names of the image files directly inside ``image_dir`` (png / jpg / jpeg)."""
    if not image_dir.is_dir():
        raise SfmError(
            f"{image_dir}: scene has no images/ directory",
            fix="run the ingest stage first; a scene is data/scenes/<scene>/images/*.png|jpg",
        )
    names = sorted(
        p.name
        for p in image_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not names:
        raise SfmError(
            f"{image_dir}: no .png/.jpg/.jpeg images",
            fix="check the scene was ingested completely",
        )
    return names


def _names_list(names: list[str]) -> str:
    more = len(names) - _MAX_NAMES_IN_MESSAGE
    return ", ".join(names[:_MAX_NAMES_IN_MESSAGE]) + (f" (+{more} more)" if more > 0 else "")


def _check_registration(
    registered: list[str], all_names: list[str], split: dict[str, list[str]], cfg: SfmConfig
) -> None:
    n_reg, n_all = len(registered), len(all_names)
    needed = max(cfg.min_registered_images, cfg.min_registered_fraction * n_all)
    if n_reg >= needed:
        return
    failed = sorted(set(all_names) - set(registered))
    failed_test = sorted(set(failed) & set(split["test"]))
    msg = (
        f"SfM registered {n_reg} of {n_all} images ({n_reg / n_all:.0%}); the benchmark needs "
        f"at least {cfg.min_registered_images} images and a fraction of "
        f"{cfg.min_registered_fraction:g} (sfm.min_registered_images / "
        f"sfm.min_registered_fraction)."
    )
    if failed:
        msg += f"\nNot registered: {_names_list(failed)}"
    if failed_test:
        msg += f"\nOf those, test images: {_names_list(failed_test)}"
    raise SfmError(
        msg,
        fix="give the capture more overlap between neighbouring views, raise "
        "sfm.max_num_features, or try another matcher (sfm.matcher=exhaustive, or sequential "
        "with a larger sfm.sequential_overlap); remove images that show another scene. Only "
        "lower sfm.min_registered_fraction if a partial model is really acceptable",
    )


def _write_images(
    src_dir: Path, dst_dir: Path, names: list[str], size_for: Callable[[int, int], tuple[int, int]]
) -> None:
    """Copy undistorted images, resizing (PIL bicubic) where ``size_for`` asks for a new size."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        src, dst = src_dir / name, dst_dir / name
        with Image.open(src) as im:
            size = size_for(*im.size)
            if size == im.size:
                shutil.copyfile(src, dst)
                continue
            resized = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        if dst.suffix.lower() in (".jpg", ".jpeg"):
            resized.save(dst, quality=95, subsampling=0)
        else:
            resized.save(dst)


def _pose_accuracy(scene_dir: Path, rec: Any) -> dict[str, Any] | None:
    gt_path = scene_dir / GROUND_TRUTH_FILENAME
    if not gt_path.is_file():
        return None
    gt_cams, scene = read_ground_truth(gt_path)
    gt = {c.image: (c.R, c.t) for c in gt_cams}
    est = {name: colmap.image_pose(img) for name, img in colmap.registered_images(rec).items()}
    common = sorted(set(gt) & set(est))
    if len(common) < 3:
        return {"aligned_images": len(common), "error": "fewer than 3 registered GT images"}
    extent, definition = scene_extent(np.stack([c.center for c in gt_cams]), scene)
    acc = pose_accuracy(gt, est, extent, definition)
    per_image = acc.pop("per_image")
    worst = max(per_image, key=lambda n: per_image[n]["rotation_error_deg"])
    acc["worst_rotation_image"] = worst
    acc["missing_ground_truth"] = sorted(set(est) - set(gt))
    return acc


def run_sfm(
    scene_dir: Path,
    out_dir: Path,
    cfg: SfmConfig,
    split: SplitConfig,
    resolution: ResolutionConfig,
    progress: bool = False,
) -> dict[str, Any]:
    """Run SfM on ``scene_dir`` and write the model, images and split to ``out_dir``.

    Args:
        scene_dir: ``data/scenes/<scene>/`` with ``images/`` and optionally
            ``ground_truth.json`` (then pose accuracy is measured).
        out_dir: ``data/sfm/<scene>/``; replaced atomically on success, untouched on failure.
        cfg: SfM parameters.
        split: the train/test split rule (applied to all input images, before SfM).
        resolution: the benchmark resolution for the output images and intrinsics.
        progress: print one line per phase; COLMAP's own log is always captured to a file,
            and its tail is quoted when a phase fails.

    Returns:
        Metrics (the stage writes them to ``metrics/<scene>/sfm.json``): ``registered_images``,
        ``total_images``, ``registered_fraction``, ``unregistered_images``, ``num_models``,
        ``points3d``, ``mean_reprojection_error_px`` (at the input resolution, from mapping),
        ``mean_track_length``, ``num_observations``, ``seconds`` {total, extract, match, map,
        undistort, write}, ``matcher``, ``pycolmap_version``, ``camera_model``, ``resolution``
        [w, h], ``downscale``, ``split`` {train, test counts}, and ``pose_accuracy`` when the
        scene has ground truth.

    Raises:
        SfmError: no model, or too few registered images (message names them and what to try).
        ConfigError: bad parameters (e.g. split list naming images the scene lacks).
    """
    scene_dir, out_dir = Path(scene_dir), Path(out_dir)
    image_dir = scene_dir / "images"
    names = list_scene_images(image_dir)
    split_result = split_images(names, split)
    matcher = cfg.resolve_matcher(len(names))
    say = _printer(progress)
    seconds: dict[str, float] = {}
    t_start = time.perf_counter()

    with (
        tempfile.TemporaryDirectory(prefix="splatbench-sfm-") as tmp,
        staging_dir(out_dir) as stage,
    ):
        work = Path(tmp)
        database = work / "database.db"
        log_path = work / "colmap.log"

        def phase(label: str, key: str, fn: Callable[[], Any]) -> Any:
            say(f"sfm: {label} ...")
            t0 = time.perf_counter()
            with colmap.captured_log(log_path) as log:
                try:
                    result = fn()
                except SfmError:
                    raise
                except (RuntimeError, ValueError) as exc:
                    raise SfmError(
                        f"COLMAP failed while {label} ({exc}); last log lines:\n{log.tail()}",
                        fix="see the log lines above; check the images decode and the "
                        "sfm parameters are valid",
                    ) from exc
            seconds[key] = time.perf_counter() - t0
            say(f"sfm: {label} done in {seconds[key]:.1f} s")
            return result

        colmap.seed_everything(cfg.seed)
        phase(
            f"extracting features from {len(names)} images",
            "extract",
            lambda: colmap.extract_features(database, image_dir, names, cfg),
        )
        phase(
            f"matching ({matcher})", "match", lambda: colmap.match_features(database, cfg, matcher)
        )
        rec, model_dir, num_models = phase(
            "mapping",
            "map",
            lambda: colmap.incremental_mapping(database, image_dir, work / "distorted", cfg),
        )
        stats = colmap.model_stats(rec)
        registered = list(colmap.registered_images(rec))
        _check_registration(registered, names, split_result, cfg)
        camera_models = sorted({colmap.camera_model_name(c) for c in rec.cameras.values()})

        undist = work / "undistorted"
        phase(
            "undistorting", "undistort", lambda: colmap.undistort(model_dir, image_dir, undist, cfg)
        )

        say("sfm: writing model and images ...")
        t0 = time.perf_counter()
        final = colmap.read_model(undist / "sparse")
        colmap.rescale_pinhole_model(final, resolution.target_size)
        sparse = stage / "sparse" / "0"
        sparse.mkdir(parents=True)
        final.write(sparse)
        _write_images(undist / "images", stage / "images", registered, resolution.target_size)
        write_split(stage / SPLIT_FILENAME, split, split_result)
        seconds["write"] = time.perf_counter() - t0

        sizes = sorted({(int(c.width), int(c.height)) for c in final.cameras.values()})
        accuracy = _pose_accuracy(scene_dir, final)
    seconds["total"] = time.perf_counter() - t_start

    metrics: dict[str, Any] = {
        **stats,
        "total_images": len(names),
        "registered_fraction": stats["registered_images"] / len(names),
        "unregistered_images": sorted(set(names) - set(registered)),
        "num_models": int(num_models),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "matcher": matcher,
        "pycolmap_version": colmap.pycolmap_version(),
        "camera_model": cfg.camera_model,
        "estimated_camera_models": camera_models,
        "num_threads": cfg.num_threads,
        "mapping_threads": 1 if cfg.deterministic_mapping else cfg.num_threads,
        "seed": cfg.seed,
        "resolution": list(sizes[0]) if len(sizes) == 1 else [list(s) for s in sizes],
        "downscale": resolution.downscale,
        "max_width": resolution.max_width,
        "split": {
            "rule": split.rule,
            "train": len(split_result["train"]),
            "test": len(split_result["test"]),
        },
    }
    if accuracy is not None:
        metrics["pose_accuracy"] = accuracy
    say(
        f"sfm: registered {metrics['registered_images']}/{len(names)} images, "
        f"{metrics['points3d']} points, reprojection error "
        f"{metrics['mean_reprojection_error_px']:.3f} px, {seconds['total']:.1f} s"
    )
    return metrics


def _printer(progress: bool) -> Callable[[str], None]:
    if not progress:
        return lambda _msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(msg, highlight=False)
