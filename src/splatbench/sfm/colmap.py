"""Every pycolmap call in splatbench, and the shims that keep it working on pycolmap 3.12 - 4.x.

pycolmap's Python API changed at 3.11, 3.12, 3.13 and 4.0. Instead of pinning one version, the
functions here feature-detect what the installed pycolmap offers (option classes, keyword
names, attributes) and use it. Each shim is marked ``# SHIM:`` with the versions that need it,
so it can be deleted once those versions are no longer supported.

COLMAP logs through glog to stderr, verbosely; :func:`captured_log` sends that to a file so a
failure can quote its tail instead of flooding the console.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pycolmap

from splatbench.errors import ConfigError, SfmError
from splatbench.sfm.config import SfmConfig

# ---------------------------------------------------------------------------------------------
# Introspection helpers
# ---------------------------------------------------------------------------------------------


def pycolmap_version() -> str:
    return str(getattr(pycolmap, "__version__", "unknown"))


def _kwargs_of(fn: Callable[..., Any]) -> set[str]:
    """Keyword names of a pybind11 function, read from the signature line of its docstring.

    pybind11 functions have no ``inspect.signature``; their ``__doc__`` starts with
    ``name(arg: type = default, ...) -> ret`` (one line per overload).
    """
    return set(re.findall(r"[(,]\s*(\w+)\s*:", (fn.__doc__ or "").split("\n\n", 1)[0]))


def _set_if_present(obj: Any, **values: Any) -> None:
    """Set attributes that this pycolmap version's options object has; skip the others."""
    for name, value in values.items():
        if obj is not None and hasattr(obj, name):
            setattr(obj, name, value)


def _device(use_gpu: bool) -> Any:
    if use_gpu and not pycolmap.has_cuda:
        raise ConfigError(
            f"sfm.use_gpu=true but pycolmap {pycolmap_version()} was built without CUDA "
            "(PyPI wheels are CPU-only)",
            fix="set sfm.use_gpu=false, or install a CUDA build of pycolmap",
        )
    return pycolmap.Device.cuda if use_gpu else pycolmap.Device.cpu


# ---------------------------------------------------------------------------------------------
# Seeding and logging
# ---------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed COLMAP's global PRNG (RANSAC and mapper fall back to it when unseeded)."""
    # SHIM: set_random_seed is absent from some older pycolmap builds; newer ones also take
    # per-option random_seed fields, which the option builders below set as well.
    if hasattr(pycolmap, "set_random_seed"):
        pycolmap.set_random_seed(int(seed))


@dataclass
class ColmapLog:
    """Where :func:`captured_log` wrote COLMAP's output."""

    path: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


@contextlib.contextmanager
def captured_log(path: Path, echo: bool = False) -> Iterator[ColmapLog]:
    """Redirect the process's stderr (file descriptor 2, where glog writes) into ``path``.

    COLMAP logs from C++ threads straight to fd 2, so replacing ``sys.stderr`` is not enough.
    With ``echo`` true the log is left on the console instead (useful when debugging).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = ColmapLog(path)
    if echo:
        yield log
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as fh:
            os.dup2(fh.fileno(), 2)
            try:
                yield log
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


# ---------------------------------------------------------------------------------------------
# Feature extraction
# ---------------------------------------------------------------------------------------------


def _create_database(path: Path) -> None:
    """Create an empty COLMAP database file at ``path``."""
    factory = getattr(pycolmap.Database, "open", None)
    try:
        # 4.x: Database.open(path) is a static factory that creates the file.
        db = factory(path) if factory is not None else pycolmap.Database(path)
    except TypeError:
        # SHIM: pycolmap 3.12 / 3.13: open() is an instance method; Database(path) creates it.
        db = pycolmap.Database(path)
    db.close()


def extract_features(
    database: Path, image_dir: Path, image_names: Sequence[str], cfg: SfmConfig
) -> None:
    """SIFT features for ``image_names`` (relative to ``image_dir``) into a new database."""
    reader = pycolmap.ImageReaderOptions()
    kwargs: dict[str, Any] = {}
    accepted = _kwargs_of(pycolmap.extract_features)
    if "camera_model" in accepted:
        # SHIM: pycolmap <= 3.10 took the camera model as an extract_features argument.
        kwargs["camera_model"] = cfg.camera_model
    else:
        # 3.11+: the camera model lives on ImageReaderOptions.
        reader.camera_model = cfg.camera_model
    if hasattr(pycolmap, "FeatureExtractionOptions") and "extraction_options" in accepted:
        # 3.13+ / 4.x: generic FeatureExtractionOptions with SIFT settings under .sift.
        opts = pycolmap.FeatureExtractionOptions()
        _set_if_present(
            opts,
            num_threads=cfg.num_threads,
            max_image_size=cfg.max_image_size,
            use_gpu=cfg.use_gpu,
        )
        _set_if_present(opts.sift, max_num_features=cfg.max_num_features)
        kwargs["extraction_options"] = opts
    else:
        # SHIM: pycolmap 3.12 had SiftExtractionOptions (threads, size, GPU on the SIFT object)
        # passed as sift_options.
        sift = pycolmap.SiftExtractionOptions()
        _set_if_present(
            sift,
            num_threads=cfg.num_threads,
            max_image_size=cfg.max_image_size,
            max_num_features=cfg.max_num_features,
            use_gpu=cfg.use_gpu,
        )
        kwargs["sift_options"] = sift
    # SHIM: the image list keyword was image_list up to 3.10, image_names from 3.11.
    names_kw = "image_names" if "image_names" in accepted else "image_list"
    kwargs[names_kw] = list(image_names)
    camera_mode = pycolmap.CameraMode.SINGLE if cfg.single_camera else pycolmap.CameraMode.AUTO
    # Register the images (and cameras) first, in sorted order, single-threaded. With several
    # extraction threads, COLMAP otherwise assigns image ids in completion order, which differs
    # from run to run and changes the mapper's choices. The extractor reuses existing entries.
    import_kwargs = (
        {names_kw: list(image_names)} if names_kw in _kwargs_of(pycolmap.import_images) else {}
    )
    _create_database(database)
    pycolmap.import_images(
        database, image_dir, camera_mode=camera_mode, options=reader, **import_kwargs
    )
    pycolmap.extract_features(
        database,
        image_dir,
        camera_mode=camera_mode,
        reader_options=reader,
        device=_device(cfg.use_gpu),
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------

# matcher -> (pycolmap function, 4.x pairing options class, 3.12 matching options class)
_MATCHERS = {
    "exhaustive": ("match_exhaustive", "ExhaustivePairingOptions", "ExhaustiveMatchingOptions"),
    "sequential": ("match_sequential", "SequentialPairingOptions", "SequentialMatchingOptions"),
    "vocab_tree": ("match_vocabtree", "VocabTreePairingOptions", "VocabTreeMatchingOptions"),
}


def _verification_options(cfg: SfmConfig) -> Any:
    opts = pycolmap.TwoViewGeometryOptions()
    # Newer pycolmap: RANSAC has its own random_seed (-1 = unseeded); seed it for repeatability.
    _set_if_present(getattr(opts, "ransac", None), random_seed=cfg.seed)
    return opts


def match_features(database: Path, cfg: SfmConfig, matcher: str) -> None:
    """Match features in ``database`` with ``matcher`` (exhaustive / sequential / vocab_tree)."""
    if matcher not in _MATCHERS:
        raise ConfigError(f"sfm matcher {matcher!r} is not one of {', '.join(_MATCHERS)}")
    fn_name, pairing_cls, legacy_cls = _MATCHERS[matcher]
    fn = getattr(pycolmap, fn_name)
    accepted = _kwargs_of(fn)
    if matcher == "vocab_tree":
        tree = Path(cfg.vocab_tree_path or "")
        if not tree.is_file():
            raise ConfigError(
                f"sfm.vocab_tree_path={cfg.vocab_tree_path!r}: file not found",
                fix="point it at a local COLMAP vocabulary tree file (none can be downloaded "
                "here), or use sfm.matcher=exhaustive / sequential",
            )
    kwargs: dict[str, Any] = {"device": _device(cfg.use_gpu)}
    if "pairing_options" in accepted and hasattr(pycolmap, "FeatureMatchingOptions"):
        # 3.13+ / 4.x: FeatureMatchingOptions (threads, GPU, .sift) + a *PairingOptions object.
        matching = pycolmap.FeatureMatchingOptions()
        _set_if_present(matching, num_threads=cfg.num_threads, use_gpu=cfg.use_gpu)
        pairing = getattr(pycolmap, pairing_cls)()
        kwargs["matching_options"] = matching
        kwargs["pairing_options"] = pairing
    else:
        # SHIM: pycolmap 3.12 took SiftMatchingOptions as sift_options and the pairing settings
        # as matching_options=*MatchingOptions.
        sift = pycolmap.SiftMatchingOptions()
        _set_if_present(sift, num_threads=cfg.num_threads, use_gpu=cfg.use_gpu)
        pairing = getattr(pycolmap, legacy_cls)()
        kwargs["sift_options"] = sift
        kwargs["matching_options"] = pairing
    _set_if_present(pairing, num_threads=cfg.num_threads)
    if matcher == "sequential":
        # Loop detection needs a vocab tree; keep it off so sequential works offline.
        _set_if_present(pairing, overlap=cfg.sequential_overlap, loop_detection=False)
    elif matcher == "vocab_tree":
        _set_if_present(pairing, vocab_tree_path=str(cfg.vocab_tree_path))
    if "verification_options" in accepted:
        kwargs["verification_options"] = _verification_options(cfg)
    fn(database, **kwargs)


# ---------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------


def _mapping_options(cfg: SfmConfig) -> Any:
    # SHIM: the pipeline options were IncrementalMapperOptions before 3.10 (pycolmap 0.x names).
    cls = getattr(pycolmap, "IncrementalPipelineOptions", None) or pycolmap.IncrementalMapperOptions
    opts = cls()
    threads = 1 if cfg.deterministic_mapping else cfg.num_threads
    # min_model_size defaults to 10 images, which would discard every model of a small scene;
    # the registration check after mapping is what enforces a minimum.
    _set_if_present(
        opts,
        num_threads=threads,
        random_seed=cfg.seed,  # 3.13+; older versions rely on set_random_seed only
        min_model_size=min(10, cfg.min_registered_images),
        multiple_models=True,
    )
    # Newer pycolmap also has per-component seeds/threads; older ones do not (skipped).
    _set_if_present(getattr(opts, "mapper", None), random_seed=cfg.seed, num_threads=threads)
    _set_if_present(getattr(opts, "triangulation", None), random_seed=cfg.seed)
    return opts


def incremental_mapping(
    database: Path, image_dir: Path, output_dir: Path, cfg: SfmConfig
) -> tuple[Any, Path, int]:
    """Run incremental SfM; return ``(largest model, its directory, number of models)``.

    The largest model is the one with the most registered images (ties: most 3D points, then
    the lowest index, so the choice is deterministic). Raises :class:`SfmError` if none.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    models = pycolmap.incremental_mapping(
        database, image_dir, output_dir, options=_mapping_options(cfg)
    )
    if not models:
        raise SfmError(
            "COLMAP's incremental mapper found no initial image pair, so no model was built",
            fix="check the images overlap (each scene point seen in 3+ views); raise "
            "sfm.max_num_features or try sfm.matcher=exhaustive",
        )
    best = max(
        sorted(models),
        key=lambda i: (models[i].num_reg_images(), models[i].num_points3D(), -i),
    )
    return models[best], output_dir / str(best), len(models)


# ---------------------------------------------------------------------------------------------
# Undistortion
# ---------------------------------------------------------------------------------------------


def undistort(model_dir: Path, image_dir: Path, output_dir: Path, cfg: SfmConfig) -> None:
    """Undistort a model and its images to PINHOLE: ``output_dir/{images,sparse}``."""
    kwargs: dict[str, Any] = {"output_type": "COLMAP"}
    if "num_threads" in _kwargs_of(pycolmap.undistort_images):
        # SHIM: num_threads is a 4.x keyword; 3.12 used all cores.
        kwargs["num_threads"] = cfg.num_threads
    pycolmap.undistort_images(output_dir, model_dir, image_dir, **kwargs)


# ---------------------------------------------------------------------------------------------
# Reading models (version-neutral accessors)
# ---------------------------------------------------------------------------------------------


def read_model(path: Path) -> Any:
    """A ``pycolmap.Reconstruction`` read from a COLMAP model directory."""
    rec = pycolmap.Reconstruction()
    rec.read(path)
    return rec


def image_pose(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R [3, 3], t [3])`` of a registered ``pycolmap.Image``."""
    pose = image.cam_from_world
    # SHIM: cam_from_world is a property up to 3.12 and a method from 3.13 (rigs/frames).
    if callable(pose):
        pose = pose()
    R = np.asarray(pose.rotation.matrix(), dtype=float)
    t = np.asarray(pose.translation, dtype=float).reshape(3)
    return R, t


def camera_model_name(camera: Any) -> str:
    # SHIM: model_name is the portable spelling; the .model enum's repr changed across versions.
    name = getattr(camera, "model_name", None)
    return str(name) if name else str(camera.model.name)


def registered_images(rec: Any) -> dict[str, Any]:
    """Image name -> ``pycolmap.Image`` for the model's registered images, sorted by name."""
    # reg_image_ids() exists in every supported version (Image.registered became has_pose).
    images = {rec.images[i].name: rec.images[i] for i in rec.reg_image_ids()}
    return dict(sorted(images.items()))


def model_stats(rec: Any) -> dict[str, Any]:
    """Size and quality figures of a model."""
    return {
        "registered_images": int(rec.num_reg_images()),
        "points3d": int(rec.num_points3D()),
        "mean_reprojection_error_px": float(rec.compute_mean_reprojection_error()),
        "mean_track_length": float(rec.compute_mean_track_length()),
        "num_observations": int(rec.compute_num_observations()),
    }


def rescale_pinhole_model(rec: Any, size_for: Callable[[int, int], tuple[int, int]]) -> None:
    """Rescale every PINHOLE camera (and the keypoints seen by it) to a new image size, in place.

    ``size_for(width, height) -> (new_width, new_height)``. Intrinsics scale per axis by
    ``new / old`` (COLMAP's pixel-corner origin makes ``cx * s`` exact for a whole-image
    resize), and keypoints scale the same way, so the written model stays self-consistent.
    """
    scales: dict[int, tuple[float, float]] = {}
    for cam_id in sorted(rec.cameras):
        cam = rec.cameras[cam_id]
        if camera_model_name(cam) != "PINHOLE":
            raise SfmError(f"camera {cam_id} is {camera_model_name(cam)}, expected PINHOLE")
        w, h = int(cam.width), int(cam.height)
        new_w, new_h = size_for(w, h)
        sx, sy = new_w / w, new_h / h
        scales[cam_id] = (sx, sy)
        if (new_w, new_h) == (w, h):
            continue
        fx, fy, cx, cy = (float(v) for v in cam.params)
        cam.width, cam.height = new_w, new_h
        cam.params = [fx * sx, fy * sy, cx * sx, cy * sy]
        rec.cameras[cam_id] = cam  # the map may hand out copies; store back to be sure
    for image_id in sorted(rec.images):
        image = rec.images[image_id]
        sx, sy = scales[image.camera_id]
        if (sx, sy) == (1.0, 1.0):
            continue
        for p in image.points2D:
            p.xy = np.asarray(p.xy, dtype=float) * (sx, sy)
    # Stored per-point errors were measured in the old pixel units; recompute where possible.
    # SHIM: update_point_3d_errors is a 4.x method; older models keep the stale values.
    if any(s != (1.0, 1.0) for s in scales.values()) and hasattr(rec, "update_point_3d_errors"):
        rec.update_point_3d_errors()
