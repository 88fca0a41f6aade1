"""Initial Gaussians: from the SfM point cloud, or random in a box around the cameras.

Follows gsplat's example trainer: scales from the mean distance to the 3 nearest neighbours,
random unnormalised quaternions, opacity 0.1, SH degree 0 from the point colour and higher
degrees zero. Everything random comes from one seeded generator, so the same config gives the
same initial Gaussians on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from splatbench.errors import ConfigError, SfmError
from splatbench.gaussians.params import create_splats

INIT_TYPES = ("sfm", "random")


@dataclass(frozen=True)
class InitConfig:
    """How to create the initial Gaussians (``train.init`` in params.yaml).

    Attributes:
        type: ``"sfm"`` (the SfM points) or ``"random"`` (uniform in a box around the cameras).
        num_points: keep a seeded random subsample of this many SfM points; ``None`` keeps all.
            (Subsampling a dense cloud, e.g. 248K -> 30K points, leaves room to densify.)
        random_num_points: number of Gaussians for ``type="random"``.
        init_opacity: initial opacity of every Gaussian, in ``(0, 1)``.
        init_scale: multiplier on the nearest-neighbour scale.
        init_extent: half-size of the random box, in units of the scene scale (gsplat: 3).
    """

    type: str = "sfm"
    num_points: int | None = None
    random_num_points: int = 100_000
    init_opacity: float = 0.1
    init_scale: float = 1.0
    init_extent: float = 3.0

    def __post_init__(self) -> None:
        if self.type not in INIT_TYPES:
            raise ConfigError(
                f"train.init.type={self.type!r} is not one of {', '.join(INIT_TYPES)}",
                fix="use train.init.type=sfm or train.init.type=random",
            )
        if self.num_points is not None and self.num_points < 1:
            raise ConfigError(
                f"train.init.num_points={self.num_points} must be >= 1 or null",
                fix="use null to keep every SfM point",
            )
        if self.random_num_points < 1:
            raise ConfigError(f"train.init.random_num_points={self.random_num_points} must be >= 1")
        if not 0.0 < self.init_opacity < 1.0:
            raise ConfigError(f"train.init.init_opacity={self.init_opacity} must be in (0, 1)")
        if self.init_scale <= 0 or self.init_extent <= 0:
            raise ConfigError("train.init.init_scale and train.init.init_extent must be > 0")


def knn_log_scales(points: np.ndarray, k: int = 3, init_scale: float = 1.0) -> torch.Tensor:
    """``[N, 3]`` isotropic log scales: log of ``init_scale`` times the RMS distance to the
    ``k`` nearest other points (gsplat's rule). Coincident points get a tiny positive scale.

    Args:
        points: ``[N, 3]`` positions, ``N >= 2``.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 2:
        raise ValueError("need at least 2 points to estimate scales from neighbours")
    kk = min(k, n - 1)
    dist, _ = cKDTree(points).query(points, k=kk + 1)  # column 0 is the point itself
    dist = np.asarray(dist).reshape(n, kk + 1)[:, 1:]
    rms = np.sqrt((dist**2).mean(axis=1))
    # Duplicate SfM points have zero distance; log(0) would be -inf and poison training.
    positive = rms[rms > 0]
    floor = positive.min() * 0.1 if positive.size else 1e-3
    rms = np.maximum(rms, floor) * init_scale
    return torch.from_numpy(np.log(rms)).float().unsqueeze(-1).repeat(1, 3)


def read_sfm_points(sparse_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """SfM points of a COLMAP model: ``(xyz [P, 3] float64, rgb [P, 3] uint8)``, in point-id order.

    Raises:
        SfmError: the model cannot be read (naming the directory and the fix).
    """
    import pycolmap  # heavy import, only needed here

    sparse_dir = Path(sparse_dir)
    try:
        rec = pycolmap.Reconstruction()
        rec.read(sparse_dir)
    except (RuntimeError, ValueError, OSError) as exc:
        raise SfmError(
            f"{sparse_dir}: cannot read the COLMAP model ({exc})",
            fix="re-run the sfm stage, which writes data/sfm/<scene>/sparse/0",
        ) from exc
    ids = sorted(rec.points3D)
    xyz = np.array([rec.points3D[i].xyz for i in ids], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([rec.points3D[i].color for i in ids], dtype=np.uint8).reshape(-1, 3)
    return xyz, rgb


def subsample(n_total: int, n_keep: int | None, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of a seeded random subset of size ``min(n_keep, n_total)`` (all if None)."""
    if n_keep is None or n_keep >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=generator)[:n_keep].sort().values


def init_from_points(
    xyz: np.ndarray,
    rgb: np.ndarray,
    cfg: InitConfig,
    *,
    sh_degree: int,
    generator: torch.Generator,
) -> torch.nn.ParameterDict:
    """Gaussians at the given points (subsampled per ``cfg.num_points``).

    Args:
        xyz: ``[P, 3]`` positions.
        rgb: ``[P, 3]`` colours, uint8 (0..255) or float in ``[0, 1]``.
    """
    if len(xyz) < 2:
        raise SfmError(
            f"the SfM model has {len(xyz)} 3D points; at least 2 are needed to initialise",
            fix="check the SfM stage registered images, or use train.init.type=random",
        )
    keep = subsample(len(xyz), cfg.num_points, generator).numpy()
    xyz = np.asarray(xyz, dtype=np.float64)[keep]
    colours = np.asarray(rgb)[keep]
    colours = colours / 255.0 if colours.dtype == np.uint8 else colours.astype(np.float64)
    return create_splats(
        torch.from_numpy(xyz).float(),
        torch.from_numpy(colours).float(),
        knn_log_scales(xyz, init_scale=cfg.init_scale),
        sh_degree=sh_degree,
        init_opacity=cfg.init_opacity,
        generator=generator,
    )


def init_random(
    center: np.ndarray,
    scene_scale: float,
    cfg: InitConfig,
    *,
    sh_degree: int,
    generator: torch.Generator,
) -> torch.nn.ParameterDict:
    """``cfg.random_num_points`` Gaussians uniform in the cube of half-size
    ``init_extent * scene_scale`` around ``center`` (``[3]``, e.g. the camera centroid), with
    uniform random colours."""
    n = cfg.random_num_points
    half = cfg.init_extent * scene_scale
    unit = torch.rand((n, 3), generator=generator, dtype=torch.float64) * 2 - 1
    xyz = (unit * half + torch.as_tensor(center, dtype=torch.float64)).numpy()
    colours = torch.rand((n, 3), generator=generator, dtype=torch.float64).numpy()
    return init_from_points(
        xyz, colours, InitConfig(**{**cfg.__dict__, "num_points": None}),
        sh_degree=sh_degree, generator=generator,
    )  # fmt: skip


def init_splats(
    sparse_dir: Path,
    camera_centers: np.ndarray,
    scene_scale: float,
    cfg: InitConfig,
    *,
    sh_degree: int,
    seed: int,
) -> torch.nn.ParameterDict:
    """Initial Gaussians for a scene, per ``cfg.type`` (CPU tensors; move them afterwards).

    Args:
        sparse_dir: the COLMAP model (``data/sfm/<scene>/sparse/0``), read for ``type="sfm"``.
        camera_centers: ``[C, 3]`` camera centres; their mean centres the random box.
        scene_scale: scene size (see :func:`splatbench.gaussians.views.scene_scale`).
        seed: seeds the subsample, the random box and the quaternions.
    """
    generator = torch.Generator().manual_seed(int(seed))
    if cfg.type == "sfm":
        xyz, rgb = read_sfm_points(sparse_dir)
        return init_from_points(xyz, rgb, cfg, sh_degree=sh_degree, generator=generator)
    center = np.asarray(camera_centers, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return init_random(center, scene_scale, cfg, sh_degree=sh_degree, generator=generator)
