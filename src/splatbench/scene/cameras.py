"""Pinhole cameras and the ground-truth camera file shared by scenes, SfM and evaluation.

Convention (COLMAP / OpenCV): ``R`` and ``t`` map world to camera, ``x_cam = R @ x_world + t``;
camera axes are x right, y down, z forward; pixel (0, 0) is the centre of the top-left pixel's
top-left corner, so a pixel centre is at integer + 0.5 (COLMAP's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splatbench.errors import ManifestError
from splatbench.fsutil import atomic_write_json, read_json

GROUND_TRUTH_SCHEMA_VERSION = 1
GROUND_TRUTH_FILENAME = "ground_truth.json"
CONVENTION = (
    "world-to-camera [R|t] (x_cam = R x_world + t); camera x right, y down, z forward; "
    "pixel centres at integer + 0.5 (COLMAP/OpenCV)"
)


@dataclass(frozen=True)
class PinholeCamera:
    """One calibrated view.

    Attributes:
        image: image file name, relative to the scene's ``images/`` directory.
        width, height: image size in pixels.
        fx, fy, cx, cy: pinhole intrinsics in pixels.
        R: ``[3, 3]`` world-to-camera rotation.
        t: ``[3]`` world-to-camera translation.
    """

    image: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    R: np.ndarray
    t: np.ndarray

    @property
    def K(self) -> np.ndarray:
        """``[3, 3]`` intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def center(self) -> np.ndarray:
        """``[3]`` camera centre in world coordinates, ``-R^T t``."""
        return -self.R.T @ self.t

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "width": int(self.width),
            "height": int(self.height),
            "fx": float(self.fx),
            "fy": float(self.fy),
            "cx": float(self.cx),
            "cy": float(self.cy),
            "R": np.asarray(self.R, dtype=float).tolist(),
            "t": np.asarray(self.t, dtype=float).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PinholeCamera:
        return cls(
            image=str(d["image"]),
            width=int(d["width"]),
            height=int(d["height"]),
            fx=float(d["fx"]),
            fy=float(d["fy"]),
            cx=float(d["cx"]),
            cy=float(d["cy"]),
            R=np.asarray(d["R"], dtype=float).reshape(3, 3),
            t=np.asarray(d["t"], dtype=float).reshape(3),
        )


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R [3, 3], t [3])`` for a camera at ``eye`` looking at ``target``.

    ``up`` is the world direction that appears upwards in the image (camera -y).
    """
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    t = -R @ eye
    return R, t


def write_ground_truth(
    path: Path, cameras: list[PinholeCamera], scene: dict[str, Any] | None = None
) -> None:
    """Write ``ground_truth.json``: cameras plus scene facts (centre, extent, bounds)."""
    atomic_write_json(
        path,
        {
            "schema_version": GROUND_TRUTH_SCHEMA_VERSION,
            "convention": CONVENTION,
            "cameras": [c.to_dict() for c in cameras],
            "scene": scene or {},
        },
    )


def read_ground_truth(path: Path) -> tuple[list[PinholeCamera], dict[str, Any]]:
    """Read ``ground_truth.json``; raise :class:`ManifestError` naming the file when malformed."""
    try:
        data = read_json(path)
        if data.get("schema_version") != GROUND_TRUTH_SCHEMA_VERSION:
            raise ManifestError(
                f"{path}: unsupported ground-truth schema_version {data.get('schema_version')!r}",
                fix="regenerate it with a splatbench that writes version "
                f"{GROUND_TRUTH_SCHEMA_VERSION}",
            )
        cams = [PinholeCamera.from_dict(c) for c in data["cameras"]]
    except ManifestError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(
            f"{path}: cannot read ground-truth cameras ({exc})",
            fix="check the file is the ground_truth.json written by `splatbench make-scene`",
        ) from exc
    return cams, dict(data.get("scene", {}))
