"""Initial Gaussians (SfM / random) and the SfM view loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_support import HEIGHT, WIDTH, camera_rig, write_sfm_scene

from splatbench.errors import ConfigError, SfmError
from splatbench.gaussians import (
    InitConfig,
    check_splats,
    init_from_points,
    init_splats,
    knn_log_scales,
    load_views,
    read_sfm_points,
    rgb_to_sh,
    scene_scale,
    sh_to_rgb,
)


def test_knn_scales_match_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(40, 3))
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nearest3 = np.sort(d, axis=1)[:, :3]
    expected = np.log(np.sqrt((nearest3**2).mean(axis=1)) * 2.0)
    got = knn_log_scales(pts, init_scale=2.0)
    assert got.shape == (40, 3)
    assert np.allclose(got[:, 0].numpy(), expected, atol=1e-5)
    assert torch.equal(got[:, 0], got[:, 2])  # isotropic


def test_knn_scales_survive_duplicate_points():
    pts = np.array([[0.0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert torch.isfinite(knn_log_scales(pts, k=1)).all()


def test_subsample_is_seeded_and_sized():
    rng = np.random.default_rng(1)
    xyz, rgb = rng.normal(size=(500, 3)), rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    cfg = InitConfig(num_points=100)

    def run(seed):
        return init_from_points(xyz, rgb, cfg, sh_degree=2,
                                generator=torch.Generator().manual_seed(seed))  # fmt: skip

    a, b, c = run(0), run(0), run(1)
    assert check_splats(a) == 100
    assert torch.equal(a["means"], b["means"]) and torch.equal(a["quats"], b["quats"])
    assert not torch.equal(a["means"], c["means"])
    assert a["shN"].shape == (100, 8, 3) and not a["shN"].any()
    assert torch.allclose(torch.sigmoid(a["opacities"]), torch.tensor(0.1))
    # Colours are stored as degree-0 SH of the kept points' colours.
    idx = np.argmin(np.linalg.norm(xyz[None] - a["means"].detach().numpy()[:, None], axis=-1), 1)
    assert torch.allclose(sh_to_rgb(a["sh0"][:, 0]), torch.tensor(rgb[idx] / 255.0).float(),
                          atol=1e-5)  # fmt: skip


def test_rgb_sh_round_trip():
    rgb = torch.rand(10, 3)
    assert torch.allclose(sh_to_rgb(rgb_to_sh(rgb)), rgb, atol=1e-6)


def test_init_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"train\.init\.type"):
        InitConfig(type="lidar")
    with pytest.raises(ConfigError, match="init_opacity"):
        InitConfig(init_opacity=1.0)


def test_sfm_init_and_views_from_a_colmap_model(tmp_path):
    root = write_sfm_scene(tmp_path / "sfm", n_views=9, n_points=60)
    xyz, rgb = read_sfm_points(root / "sparse" / "0")
    assert xyz.shape == (60, 3) and rgb.dtype == np.uint8

    train = load_views(root, "train")
    test = load_views(root, "test")
    assert train.names == [f"frame_{i:03d}.png" for i in range(1, 8)]
    assert test.names == ["frame_000.png", "frame_008.png"]
    viewmats, Ks = camera_rig(9)
    assert torch.allclose(train.viewmats, viewmats[1:8], atol=1e-5)
    assert torch.allclose(train.Ks, Ks[1:8])
    img = train.image(0)
    assert img.shape == (HEIGHT, WIDTH, 3) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0 and float(img.max()) > 0.1
    # Camera centres of the rig are at radius 3 around the origin.
    radii = train.camera_centers().norm(dim=1)
    assert bool(((radii > 2.9) & (radii < 3.1)).all())

    scale = scene_scale(train.camera_centers())
    sfm = init_splats(root / "sparse" / "0", train.camera_centers().numpy(), scale,
                      InitConfig(num_points=40), sh_degree=1, seed=3)  # fmt: skip
    assert check_splats(sfm) == 40
    rnd = init_splats(root / "sparse" / "0", train.camera_centers().numpy(), scale,
                      InitConfig(type="random", random_num_points=77, init_extent=0.5),
                      sh_degree=0, seed=3)  # fmt: skip
    assert check_splats(rnd) == 77
    center = train.camera_centers().mean(0).float()
    assert float((rnd["means"].detach() - center).abs().max()) <= 0.5 * scale + 1e-5


def test_load_views_errors_name_the_directory(tmp_path):
    with pytest.raises(SfmError, match="no COLMAP model"):
        load_views(tmp_path, "train")


def test_scene_scale_is_gsplat_rule():
    centers = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 2.0, 0], [0, -2.0, 0]])
    assert scene_scale(centers) == pytest.approx(2.2)
    assert scene_scale(np.zeros((1, 3))) == 1.0
