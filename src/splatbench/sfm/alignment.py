"""Compare SfM camera poses with ground truth, up to the similarity SfM cannot observe.

SfM recovers cameras only up to a similarity transform (rotation, translation, scale) of the
world, so estimated cameras are first aligned to ground truth with Umeyama's closed-form
least-squares similarity over the camera centres, then compared per image:

- rotation error: geodesic angle (degrees) between the ground-truth world-to-camera rotation and
  the aligned estimated one, ``arccos((trace(R_gt R_est'^T) - 1) / 2)``;
- centre error: distance between the aligned estimated centre and the ground-truth centre, in
  percent of the scene extent (see :func:`scene_extent`).

All functions are pure numpy; poses follow :mod:`splatbench.scene.cameras` (world-to-camera).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

EXTENT_FROM_SCENE = "ground_truth.json scene.extent"
EXTENT_FROM_CAMERAS = (
    "radius of the ground-truth camera centres' bounding sphere "
    "(max distance of a GT camera centre from their mean)"
)


@dataclass(frozen=True)
class Similarity:
    """``x_dst = scale * R @ x_src + t``.

    Attributes:
        scale: positive scalar.
        R: ``[3, 3]`` rotation (det +1).
        t: ``[3]`` translation.
    """

    scale: float
    R: np.ndarray
    t: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``[N, 3]`` (or ``[3]``) points from the source to the destination frame."""
        points = np.asarray(points, dtype=float)
        return self.scale * points @ self.R.T + self.t


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Similarity:
    """Least-squares similarity mapping ``src`` onto ``dst`` (Umeyama 1991).

    Args:
        src: ``[N, 3]`` points (e.g. estimated camera centres), N >= 3, not all collinear.
        dst: ``[N, 3]`` corresponding points (e.g. ground-truth camera centres).
        with_scale: estimate the scale; False fixes it to 1 (rigid alignment).

    Returns:
        The :class:`Similarity` minimising ``sum ||dst_i - (s R src_i + t)||^2``.

    Raises:
        ValueError: mismatched shapes, fewer than 3 points, or degenerate (collinear) points.
    """
    src = np.asarray(src, dtype=float)
    dst = np.asarray(dst, dtype=float)
    if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape:
        raise ValueError(f"umeyama: need two [N, 3] arrays, got {src.shape} and {dst.shape}")
    n = src.shape[0]
    if n < 3:
        raise ValueError(f"umeyama: need at least 3 point pairs, got {n}")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = float((src_c**2).sum() / n)
    cov = dst_c.T @ src_c / n  # [3, 3]
    U, D, Vt = np.linalg.svd(cov)
    # Rank < 2 (all points on a line or a single point) leaves a rotation about that line free.
    if var_src <= 0.0 or D[1] <= 1e-12 * max(D[0], 1e-300):
        raise ValueError("umeyama: points are degenerate (coincident or collinear)")
    S = np.eye(3)
    # Reflection guard: force det(R) = +1 by flipping the weakest singular direction.
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    scale = float(np.trace(np.diag(D) @ S) / var_src) if with_scale else 1.0
    t = mu_dst - scale * R @ mu_src
    return Similarity(scale=scale, R=R, t=t)


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between rotations.

    Args:
        R_a: ``[N, 3, 3]`` (or ``[3, 3]``) rotations.
        R_b: same shape as ``R_a``.

    Returns:
        ``[N]`` (or scalar) angles in ``[0, 180]`` of ``R_a R_b^T``.
    """
    R_a = np.asarray(R_a, dtype=float)
    R_b = np.asarray(R_b, dtype=float)
    rel = R_a @ np.swapaxes(R_b, -1, -2)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    # Round-off pushes |cos| slightly past 1 for near-identical rotations.
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def camera_centers(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Camera centres ``-R^T t``.

    Args:
        R: ``[N, 3, 3]`` world-to-camera rotations.
        t: ``[N, 3]`` world-to-camera translations.

    Returns:
        ``[N, 3]`` centres in world coordinates.
    """
    R = np.asarray(R, dtype=float)
    t = np.asarray(t, dtype=float)
    return -np.einsum("nji,nj->ni", R, t)


def scene_extent(
    gt_centers: np.ndarray, scene: Mapping[str, Any] | None = None
) -> tuple[float, str]:
    """The length that centre errors are expressed against, and how it was defined.

    If the ground truth's scene dict has a positive ``extent`` (the synthetic scene records the
    radius it was built with), that is used. Otherwise the extent is the radius of the ground-truth
    camera centres' bounding sphere, taken as the largest distance of a centre from their mean
    (the camera-extent idea 3DGS uses to scale its learning rates, without its 1.1 margin).

    Args:
        gt_centers: ``[N, 3]`` ground-truth camera centres.
        scene: the ``scene`` dict of ``ground_truth.json`` (may be empty or None).

    Returns:
        ``(extent, definition)``: a positive length in ground-truth units and a sentence naming
        which definition was used.

    Raises:
        ValueError: the extent is zero (all cameras at one point and no scene extent).
    """
    if scene:
        value = scene.get("extent")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            how = scene.get("extent_definition")
            return float(value), f"{EXTENT_FROM_SCENE} ({how})" if how else EXTENT_FROM_SCENE
    centers = np.asarray(gt_centers, dtype=float).reshape(-1, 3)
    radius = float(np.linalg.norm(centers - centers.mean(axis=0), axis=1).max())
    if not radius > 0.0:
        raise ValueError("scene_extent: ground-truth cameras all share one centre")
    return radius, EXTENT_FROM_CAMERAS


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "max": float(np.max(values)),
    }


def pose_accuracy(
    gt: Mapping[str, tuple[np.ndarray, np.ndarray]],
    est: Mapping[str, tuple[np.ndarray, np.ndarray]],
    extent: float,
    extent_definition: str,
) -> dict[str, Any]:
    """Align estimated poses to ground truth and summarise per-image errors.

    Args:
        gt: image name -> ``(R [3, 3], t [3])`` ground-truth world-to-camera pose.
        est: image name -> ``(R [3, 3], t [3])`` estimated world-to-camera pose; only names
            present in both are compared (at least 3, not collinear).
        extent: the scene extent (see :func:`scene_extent`).
        extent_definition: how ``extent`` was defined (copied into the result).

    Returns:
        ``{"rotation_error_deg": {mean, median, max}, "center_error_pct_extent": {mean, median,
        max}, "extent": float, "extent_definition": str, "aligned_images": int, "scale": float,
        "per_image": {name: {"rotation_error_deg", "center_error_pct_extent"}}}``.
    """
    names = sorted(set(gt) & set(est))
    if len(names) < 3:
        raise ValueError(f"pose_accuracy: need >= 3 images in common, got {len(names)}")
    R_gt = np.stack([np.asarray(gt[n][0], dtype=float) for n in names])
    t_gt = np.stack([np.asarray(gt[n][1], dtype=float) for n in names])
    R_est = np.stack([np.asarray(est[n][0], dtype=float) for n in names])
    t_est = np.stack([np.asarray(est[n][1], dtype=float) for n in names])
    c_gt = camera_centers(R_gt, t_gt)
    c_est = camera_centers(R_est, t_est)
    sim = umeyama(c_est, c_gt, with_scale=True)
    # x_gt = s A x_est + b  =>  a camera's world-to-camera rotation becomes R_est A^T.
    R_aligned = R_est @ sim.R.T
    rot_err = rotation_angle_deg(R_gt, R_aligned)
    ctr_err = 100.0 * np.linalg.norm(sim.apply(c_est) - c_gt, axis=1) / float(extent)
    return {
        "rotation_error_deg": _stats(rot_err),
        "center_error_pct_extent": _stats(ctr_err),
        "extent": float(extent),
        "extent_definition": extent_definition,
        "aligned_images": len(names),
        "scale": sim.scale,
        "per_image": {
            n: {"rotation_error_deg": float(r), "center_error_pct_extent": float(c)}
            for n, r, c in zip(names, rot_err, ctr_err, strict=True)
        },
    }
