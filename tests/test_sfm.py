"""SfM stage: config parsing (unit) and real pycolmap runs on the synthetic scene (integration).

One session-scoped set of SfM runs (2-3 s each at 24 views of 240x180 on 2 cores; 12 views of the
synthetic orbit are 30 degrees apart, too sparse for SIFT to register them all) is
shared by all integration tests.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from splatbench.errors import ConfigError, SfmError
from splatbench.scene.cameras import write_ground_truth
from splatbench.scene.split import SplitConfig, read_split, split_images
from splatbench.sfm.config import ResolutionConfig, SfmConfig

NUM_VIEWS, WIDTH, HEIGHT = 24, 240, 180
SFM = SfmConfig(num_threads=2, seed=0)

# ---------------------------------------------------------------------------------------------
# Config (no pycolmap needed)
# ---------------------------------------------------------------------------------------------


def test_sfm_config_defaults_and_from_dict() -> None:
    cfg = SfmConfig.from_dict({"matcher": "sequential", "sequential_overlap": 5})
    assert (cfg.matcher, cfg.sequential_overlap, cfg.camera_model) == (
        "sequential",
        5,
        "SIMPLE_RADIAL",
    )
    assert SfmConfig.from_dict(SfmConfig().to_dict()) == SfmConfig()
    with pytest.raises(ConfigError, match=r"(?s)max_features.*max_num_features"):
        SfmConfig.from_dict({"max_features": 100})


def test_auto_matcher_switches_on_image_count() -> None:
    cfg = SfmConfig(exhaustive_max_images=150)
    assert cfg.resolve_matcher(150) == "exhaustive"
    assert cfg.resolve_matcher(151) == "sequential"
    assert SfmConfig(matcher="exhaustive").resolve_matcher(1000) == "exhaustive"


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"matcher": "vocab_tree"}, "vocab_tree_path"),
        ({"matcher": "flann"}, "flann"),
        ({"camera_model": "PINHOLEX"}, "PINHOLEX"),
        ({"min_registered_fraction": 1.5}, "min_registered_fraction"),
        ({"num_threads": 0}, "num_threads"),
    ],
)
def test_bad_sfm_config(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        SfmConfig(**kwargs)


def test_resolution_config() -> None:
    assert ResolutionConfig().target_size(239, 179) == (239, 179)
    assert ResolutionConfig(downscale=2).target_size(239, 179) == (120, 90)
    assert ResolutionConfig(max_width=100).target_size(200, 150) == (100, 75)
    assert ResolutionConfig(max_width=400).target_size(200, 150) == (200, 150)
    with pytest.raises(ConfigError, match="both"):
        ResolutionConfig(downscale=2, max_width=100)
    with pytest.raises(ConfigError, match="scale"):
        ResolutionConfig.from_dict({"scale": 2})


# ---------------------------------------------------------------------------------------------
# Integration: real pycolmap on the synthetic scene
# ---------------------------------------------------------------------------------------------


def _write_scene(scene_dir: Path) -> None:
    """``data/scenes/<scene>/``-like dir: images/ + ground_truth.json from the synthetic scene."""
    from splatbench.scene.synthetic import SyntheticSceneConfig, render_synthetic_scene

    rendered = render_synthetic_scene(
        SyntheticSceneConfig(name="blocks", num_views=NUM_VIEWS, width=WIDTH, height=HEIGHT, seed=0)
    )
    (scene_dir / "images").mkdir(parents=True)
    for name, pixels in rendered.images:
        Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(scene_dir / "images" / name)
    write_ground_truth(
        scene_dir / "ground_truth.json", list(rendered.cameras), dict(rendered.scene)
    )


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("splatbench.scene.synthetic") is None:
        pytest.skip("splatbench.scene.synthetic is not available")
    path = tmp_path_factory.mktemp("scenes") / "blocks"
    _write_scene(path)
    return path


@pytest.fixture(scope="session")
def runs(scene_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two identical full-resolution runs (determinism) and one at downscale 2."""
    pytest.importorskip("pycolmap")
    from splatbench.sfm.pipeline import run_sfm

    root = tmp_path_factory.mktemp("sfm")
    out: dict[str, Any] = {}
    for key, downscale in (("a", 1), ("b", 1), ("half", 2)):
        out_dir = root / key / "blocks"
        metrics = run_sfm(
            scene_dir, out_dir, SFM, SplitConfig(), ResolutionConfig(downscale=downscale)
        )
        out[key] = (out_dir, metrics)
    return out


def _model(out_dir: Path) -> Any:
    from splatbench.sfm import colmap

    return colmap.read_model(out_dir / "sparse" / "0")


@pytest.mark.integration
def test_all_views_register_with_accurate_poses(runs: dict[str, Any]) -> None:
    _, m = runs["a"]
    assert m["registered_images"] == m["total_images"] == NUM_VIEWS
    assert m["registered_fraction"] == 1.0
    assert m["unregistered_images"] == []
    assert m["mean_reprojection_error_px"] < 1.0
    assert m["points3d"] > 100
    assert m["mean_track_length"] > 2.0
    acc = m["pose_accuracy"]
    assert acc["aligned_images"] == NUM_VIEWS
    assert acc["rotation_error_deg"]["max"] < 1.0
    assert acc["center_error_pct_extent"]["max"] < 2.0
    assert acc["extent_definition"]
    for key in ("extract", "match", "map", "undistort", "total"):
        assert m["seconds"][key] >= 0.0
    assert m["matcher"] == "exhaustive"
    assert m["camera_model"] == "SIMPLE_RADIAL"
    assert m["pycolmap_version"]


@pytest.mark.integration
def test_output_layout_split_and_pinhole_model(runs: dict[str, Any], scene_dir: Path) -> None:
    from splatbench.sfm import colmap

    out_dir, m = runs["a"]
    names = sorted(p.name for p in (scene_dir / "images").iterdir())
    assert sorted(p.name for p in (out_dir / "images").iterdir()) == names
    assert {"cameras.bin", "images.bin", "points3D.bin"} <= {
        p.name for p in (out_dir / "sparse" / "0").iterdir()
    }
    split = read_split(out_dir / "split.json")
    assert split["test"] == names[::8]
    assert split == {
        "rule": "every_nth",
        "every": 8,
        "offset": 0,
        **split_images(names, SplitConfig()),
    }
    rec = _model(out_dir)
    (cam,) = rec.cameras.values()
    assert colmap.camera_model_name(cam) == "PINHOLE"
    w, h = m["resolution"]
    assert (cam.width, cam.height) == (w, h)
    with Image.open(out_dir / "images" / names[0]) as im:
        assert im.size == (w, h)
    # Nothing but the outputs: no database, distorted model or staging dirs left around.
    assert sorted(p.name for p in out_dir.iterdir()) == ["images", "sparse", "split.json"]
    assert [p.name for p in out_dir.parent.iterdir()] == [out_dir.name]


@pytest.mark.integration
def test_same_input_same_model(runs: dict[str, Any]) -> None:
    from splatbench.sfm import colmap

    (dir_a, m_a), (dir_b, m_b) = runs["a"], runs["b"]
    rec_a, rec_b = _model(dir_a), _model(dir_b)
    imgs_a, imgs_b = colmap.registered_images(rec_a), colmap.registered_images(rec_b)
    assert list(imgs_a) == list(imgs_b)
    assert rec_a.num_points3D() == rec_b.num_points3D()
    for name in imgs_a:
        (R_a, t_a), (R_b, t_b) = colmap.image_pose(imgs_a[name]), colmap.image_pose(imgs_b[name])
        np.testing.assert_allclose(R_a, R_b, atol=1e-9)
        np.testing.assert_allclose(t_a, t_b, atol=1e-9)
        assert (dir_a / "images" / name).read_bytes() == (dir_b / "images" / name).read_bytes()
    np.testing.assert_allclose(
        np.asarray(next(iter(rec_a.cameras.values())).params),
        np.asarray(next(iter(rec_b.cameras.values())).params),
        atol=1e-9,
    )
    drop = ("seconds",)
    assert {k: v for k, v in m_a.items() if k not in drop} == {
        k: v for k, v in m_b.items() if k not in drop
    }


@pytest.mark.integration
def test_downscale_2_halves_images_and_intrinsics(runs: dict[str, Any]) -> None:
    (dir_full, m_full), (dir_half, m_half) = runs["a"], runs["half"]
    w, h = m_full["resolution"]
    assert m_half["resolution"] == list(ResolutionConfig(downscale=2).target_size(w, h))
    w_half, h_half = m_half["resolution"]
    assert abs(w_half - w / 2) <= 0.5 and abs(h_half - h / 2) <= 0.5
    (cam_full,) = _model(dir_full).cameras.values()
    (cam_half,) = _model(dir_half).cameras.values()
    sx, sy = cam_half.width / cam_full.width, cam_half.height / cam_full.height
    assert sx == pytest.approx(0.5, abs=0.01) and sy == pytest.approx(0.5, abs=0.01)
    fx, fy, cx, cy = np.asarray(cam_full.params)
    np.testing.assert_allclose(cam_half.params, [fx * sx, fy * sy, cx * sx, cy * sy], rtol=1e-9)
    name = sorted(p.name for p in (dir_half / "images").iterdir())[0]
    with Image.open(dir_half / "images" / name) as im:
        assert im.size == (cam_half.width, cam_half.height)
    # Keypoints scale with the camera, so reprojection stays consistent in the new pixels.
    assert m_half["pose_accuracy"]["rotation_error_deg"]["max"] < 1.0


@pytest.mark.integration
def test_unrelated_images_fail_loudly_and_leave_no_output(scene_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pycolmap")
    from splatbench.sfm.pipeline import run_sfm

    scene = tmp_path / "scene"
    (scene / "images").mkdir(parents=True)
    for p in (scene_dir / "images").iterdir():
        (scene / "images" / p.name).write_bytes(p.read_bytes())
    rng = np.random.default_rng(0)
    noise = ["zz_noise_0.png", "zz_noise_1.png"]
    for name in noise:
        pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(scene / "images" / name)
    out_dir = tmp_path / "out" / "blocks"
    out_dir.mkdir(parents=True)
    (out_dir / "previous.txt").write_text("from an earlier successful run")
    with pytest.raises(SfmError) as err:
        run_sfm(scene, out_dir, SFM, SplitConfig(), ResolutionConfig())
    msg = str(err.value)
    assert f"registered {NUM_VIEWS} of {NUM_VIEWS + 2} images" in msg
    for name in noise:
        assert name in msg
    assert "Fix:" in msg and "matcher" in msg
    # The earlier output is untouched and no staging directory is left behind.
    assert [p.name for p in out_dir.iterdir()] == ["previous.txt"]
    assert [p.name for p in out_dir.parent.iterdir()] == ["blocks"]


@pytest.mark.integration
def test_min_registered_images_above_total_fails(scene_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pycolmap")
    from splatbench.sfm.pipeline import run_sfm

    cfg = SfmConfig(num_threads=2, min_registered_images=NUM_VIEWS + 1)
    out_dir = tmp_path / "out" / "blocks"
    with pytest.raises(SfmError, match=f"registered {NUM_VIEWS} of {NUM_VIEWS} images"):
        run_sfm(scene_dir, out_dir, cfg, SplitConfig(), ResolutionConfig())
    assert not out_dir.exists()
    assert list(out_dir.parent.iterdir()) == []


def test_mapping_is_single_threaded_when_deterministic() -> None:
    pytest.importorskip("pycolmap")
    from splatbench.sfm.colmap import _mapping_options

    opts = _mapping_options(SfmConfig(num_threads=2))
    assert opts.num_threads == 1
    assert _mapping_options(SfmConfig(num_threads=2, deterministic_mapping=False)).num_threads == 2
