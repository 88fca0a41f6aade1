"""Shared builders for the gaussians/train tests: tiny synthetic scenes with known cameras.

Imported by ``tests/test_train_*.py`` and ``tests/test_gaussians_*.py`` (pytest puts ``tests/``
on ``sys.path``). Scenes are small on purpose: 32x24 images, a few hundred Gaussians.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from splatbench.gaussians import create_splats, knn_log_scales, sh_to_rgb
from splatbench.gaussians.views import SceneViews
from splatbench.scene.cameras import look_at

WIDTH, HEIGHT = 32, 24
BACKEND = "torch"


def rasterize(*args, **kwargs):
    """``splatbench.render.rasterize`` (imported on use so collection never needs it)."""
    from splatbench.render import rasterize as _rasterize

    return _rasterize(*args, **kwargs)


def ground_truth_splats(n: int = 150, seed: int = 0, sh_degree: int = 0) -> torch.nn.ParameterDict:
    """Opaque coloured blobs in the unit cube around the origin."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand((n, 3), generator=g) * 2 - 1) * 0.6
    rgbs = torch.rand((n, 3), generator=g)
    splats = create_splats(means, rgbs, knn_log_scales(means.numpy()), sh_degree=sh_degree,
                           init_opacity=0.8, generator=g)  # fmt: skip
    return splats


def camera_rig(n_views: int = 6, radius: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(viewmats [C, 4, 4], Ks [C, 3, 3])`` on a circle around the origin, looking at it."""
    viewmats, Ks = [], []
    for i in range(n_views):
        a = 2 * np.pi * i / n_views
        eye = np.array([radius * np.cos(a), 0.6 * np.sin(3 * a), radius * np.sin(a)])
        R, t = look_at(eye, np.zeros(3), np.array([0.0, -1.0, 0.0]))
        vm = np.eye(4)
        vm[:3, :3], vm[:3, 3] = R, t
        viewmats.append(vm)
        Ks.append([[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]])
    return (torch.tensor(np.array(viewmats), dtype=torch.float32),
            torch.tensor(np.array(Ks), dtype=torch.float32))  # fmt: skip


@torch.no_grad()
def render_images(splats: torch.nn.ParameterDict, viewmats: torch.Tensor, Ks: torch.Tensor):
    """uint8 ``[H, W, 3]`` images of ``splats`` on a black background, one per camera."""
    images = []
    for i in range(len(viewmats)):
        colors, _, _ = rasterize(
            splats["means"], splats["quats"], torch.exp(splats["scales"]),
            torch.sigmoid(splats["opacities"]), torch.cat([splats["sh0"], splats["shN"]], 1),
            viewmats[i : i + 1], Ks[i : i + 1], WIDTH, HEIGHT, sh_degree=0, backend=BACKEND,
        )  # fmt: skip
        images.append((colors[0].clamp(0, 1) * 255).round().to(torch.uint8))
    return images


def make_views(n_views: int = 6) -> SceneViews:
    viewmats, Ks = camera_rig(n_views)
    images = render_images(ground_truth_splats(), viewmats, Ks)
    return SceneViews([f"view_{i:03d}.png" for i in range(n_views)], Ks, viewmats, images)


def initial_splats(n: int = 120, seed: int = 1, sh_degree: int = 1) -> torch.nn.ParameterDict:
    """A perturbed, lower-opacity starting point for training (not the ground truth)."""
    gt = ground_truth_splats()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(gt["means"]), generator=g)[:n]
    means = gt["means"].detach()[idx] + 0.05 * torch.randn((n, 3), generator=g)
    rgbs = torch.rand((n, 3), generator=g)
    return create_splats(means, rgbs, knn_log_scales(means.numpy()), sh_degree=sh_degree,
                         init_opacity=0.1, generator=g)  # fmt: skip


def write_sfm_scene(root: Path, n_views: int = 8, n_points: int = 150) -> Path:
    """A ``data/sfm/<scene>/`` directory: PINHOLE COLMAP model, PNG images, split.json.

    The split is every 8th image for test (index 0). Returns ``root``.
    """
    import pycolmap

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    viewmats, Ks = camera_rig(n_views)
    gt = ground_truth_splats(n=n_points)
    images = render_images(gt, viewmats, Ks)
    names = [f"frame_{i:03d}.png" for i in range(n_views)]

    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera(model="PINHOLE", width=WIDTH, height=HEIGHT,
                          params=[30.0, 30.0, WIDTH / 2, HEIGHT / 2], camera_id=1)  # fmt: skip
    rec.add_camera(cam)
    rig = pycolmap.Rig(rig_id=1)
    rig.add_ref_sensor(cam.sensor_id)
    rec.add_rig(rig)
    for i, name in enumerate(names):
        vm = viewmats[i].double().numpy()
        frame = pycolmap.Frame(frame_id=i + 1, rig_id=1)
        frame.rig_from_world = pycolmap.Rigid3d(pycolmap.Rotation3d(vm[:3, :3]), vm[:3, 3])
        image = pycolmap.Image(name=name, camera_id=1, image_id=i + 1, frame_id=i + 1)
        frame.add_data_id(image.data_id)
        rec.add_frame(frame)
        rec.add_image(image)
        Image.fromarray(images[i].numpy()).save(root / "images" / name)
    xyz = gt["means"].detach().double().numpy()
    rgb = (sh_to_rgb(gt["sh0"].detach()[:, 0]).clamp(0, 1) * 255).round().byte().numpy()
    for p, c in zip(xyz, rgb, strict=True):
        rec.add_point3D(p, pycolmap.Track(), c.astype(np.uint8))
    rec.write(sparse)
    split = {"rule": "every_nth", "every": 8, "offset": 0,
             "train": [n for i, n in enumerate(names) if i % 8], "test": names[::8]}  # fmt: skip
    (root / "split.json").write_text(json.dumps(split))
    return root


def params_equal(a: torch.nn.ParameterDict, b: torch.nn.ParameterDict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k].detach(), b[k].detach()) for k in a)


def test_support_scene_is_not_blank():
    views = make_views(3)
    assert len(views) == 3
    # The synthetic views must show something, or every training test would be vacuous.
    assert all(img.float().std() > 5 for img in views.images)
