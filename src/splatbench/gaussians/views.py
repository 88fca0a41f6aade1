"""Training and test views of an SfM scene: PINHOLE cameras plus their images as tensors.

Reads ``data/sfm/<scene>/``: ``sparse/0`` (COLMAP model, PINHOLE, benchmark resolution),
``images/`` and ``split.json``. Images are kept as uint8 (a quarter of the memory of float32;
a Mip-NeRF 360 scene at full benchmark resolution is gigabytes as floats) and converted to
float in ``[0, 1]`` per view by :meth:`SceneViews.image`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from splatbench.errors import SfmError
from splatbench.scene.split import SPLIT_FILENAME, read_split

SPLITS = ("train", "test")


@dataclass
class SceneViews:
    """A set of calibrated views.

    Attributes:
        names: image names (relative to ``images/``), sorted.
        Ks: ``[C, 3, 3]`` float32 intrinsics (pixel centres at integer + 0.5).
        viewmats: ``[C, 4, 4]`` float32 world-to-camera matrices.
        images: ``C`` uint8 tensors ``[H, W, 3]`` (sizes may differ between views).
    """

    names: list[str]
    Ks: Tensor
    viewmats: Tensor
    images: list[Tensor]

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int, device: torch.device | str = "cpu") -> Tensor:
        """``[H, W, 3]`` float32 image ``i`` in ``[0, 1]``."""
        return self.images[i].to(device).float() / 255.0

    def size(self, i: int) -> tuple[int, int]:
        """``(width, height)`` of view ``i``."""
        h, w = self.images[i].shape[:2]
        return int(w), int(h)

    def camera_centers(self) -> Tensor:
        """``[C, 3]`` camera centres in world coordinates."""
        R = self.viewmats[:, :3, :3].double()
        t = self.viewmats[:, :3, 3].double()
        return -(R.transpose(1, 2) @ t.unsqueeze(-1)).squeeze(-1)

    def subset(self, indices: list[int]) -> SceneViews:
        return SceneViews(
            names=[self.names[i] for i in indices],
            Ks=self.Ks[indices],
            viewmats=self.viewmats[indices],
            images=[self.images[i] for i in indices],
        )


def scene_scale(camera_centers: Tensor | np.ndarray) -> float:
    """gsplat's scene scale: 1.1 x the largest distance of a camera from the cameras' centroid.

    Used to scale the means learning rate and the strategies' 3D size thresholds. A single
    camera (or coincident cameras) gives 1.0, so a degenerate rig cannot zero the learning rate.
    """
    c = np.asarray(camera_centers, dtype=np.float64).reshape(-1, 3)
    radius = float(np.linalg.norm(c - c.mean(axis=0), axis=1).max()) if len(c) else 0.0
    return 1.1 * radius if radius > 0 else 1.0


def _load_image(path: Path, size: tuple[int, int]) -> Tensor:
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise SfmError(f"{path}: cannot decode image ({exc})", fix="re-run the sfm stage") from exc
    if (rgb.shape[1], rgb.shape[0]) != size:
        raise SfmError(
            f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]} but its camera says "
            f"{size[0]}x{size[1]}",
            fix="re-run the sfm stage so images and model agree",
        )
    return torch.from_numpy(rgb.copy())


def load_views(sfm_dir: Path, split: str = "train") -> SceneViews:
    """Load the ``split`` views of an SfM scene directory.

    Only images SfM registered are returned (a test image SfM failed to register is absent;
    the sfm stage reports those). Views are sorted by name.

    Raises:
        SfmError / ManifestError: missing model, image or split file; non-PINHOLE camera.
    """
    from splatbench.sfm import colmap  # pycolmap is heavy; import on use

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sfm_dir = Path(sfm_dir)
    sparse = sfm_dir / "sparse" / "0"
    if not sparse.is_dir():
        raise SfmError(f"{sparse}: no COLMAP model", fix="run the sfm stage for this scene first")
    wanted = read_split(sfm_dir / SPLIT_FILENAME)[split]
    rec = colmap.read_model(sparse)
    registered = colmap.registered_images(rec)
    names = [n for n in sorted(wanted) if n in registered]
    if not names:
        raise SfmError(
            f"{sfm_dir}: none of the {len(wanted)} {split} images of split.json is in the model",
            fix="re-run the sfm stage; check split.json matches images/",
        )
    Ks, viewmats, images = [], [], []
    for name in names:
        image = registered[name]
        cam = rec.cameras[image.camera_id]
        model = colmap.camera_model_name(cam)
        if model != "PINHOLE":
            raise SfmError(
                f"{sparse}: camera of {name} is {model}; training needs undistorted PINHOLE",
                fix="re-run the sfm stage, which undistorts to PINHOLE",
            )
        fx, fy, cx, cy = (float(v) for v in cam.params)
        Ks.append([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        R, t = colmap.image_pose(image)
        vm = np.eye(4)
        vm[:3, :3], vm[:3, 3] = R, t
        viewmats.append(vm)
        images.append(_load_image(sfm_dir / "images" / name, (int(cam.width), int(cam.height))))
    return SceneViews(
        names=names,
        Ks=torch.tensor(np.array(Ks), dtype=torch.float32),
        viewmats=torch.tensor(np.array(viewmats), dtype=torch.float32),
        images=images,
    )
