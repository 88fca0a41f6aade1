"""The built-in synthetic scene: determinism, archive layout, camera convention, texture."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatbench.errors import ConfigError
from splatbench.scene.cameras import read_ground_truth
from splatbench.scene.synthetic import (
    PHOTOS,
    SyntheticSceneConfig,
    build_scene_model,
    camera_rays,
    cast_rays,
    iter_views,
    make_cameras,
    render_synthetic_scene,
    write_scene_archive,
)

# Tiny but non-square (W != H catches transposition) and cheap to render.
TINY = SyntheticSceneConfig(num_views=3, width=64, height=48, supersample=1)


@pytest.fixture(scope="module")
def tiny_scene():
    return render_synthetic_scene(TINY)


def _project(cam, X: np.ndarray) -> np.ndarray:
    """``[N, 3]`` world points -> ``[N, 2]`` pixel coordinates (u right, v down)."""
    xc = X @ cam.R.T + cam.t
    return (xc[:, :2] / xc[:, 2:3]) * [cam.fx, cam.fy] + [cam.cx, cam.cy]


def test_render_shapes_and_names(tiny_scene) -> None:
    assert [n for n, _ in tiny_scene.images] == ["view_000.png", "view_001.png", "view_002.png"]
    assert [c.image for c in tiny_scene.cameras] == [n for n, _ in tiny_scene.images]
    for _, img in tiny_scene.images:
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    facts = tiny_scene.scene
    lo, hi = np.array(facts["bbox"]["min"]), np.array(facts["bbox"]["max"])
    assert np.allclose(facts["centre"], (lo + hi) / 2)
    assert facts["extent"] == pytest.approx(np.linalg.norm(hi - lo) / 2)
    assert facts["config"]["num_views"] == 3


def test_render_is_deterministic(tiny_scene) -> None:
    again = render_synthetic_scene(TINY)
    for (n1, a), (n2, b) in zip(tiny_scene.images, again.images, strict=True):
        assert n1 == n2 and np.array_equal(a, b)
    streamed = [img for _, img in iter_views(TINY)]
    assert all(np.array_equal(a, b) for (_, a), b in zip(tiny_scene.images, streamed, strict=True))


def test_seed_changes_layout() -> None:
    a = build_scene_model(TINY).boxes
    b = build_scene_model(SyntheticSceneConfig(num_views=3, width=64, height=48, seed=1)).boxes
    assert a != b


def test_archive_is_byte_identical_and_complete(tmp_path: Path) -> None:
    p1 = write_scene_archive(TINY, tmp_path / "a" / "scene.zip")
    p2 = write_scene_archive(TINY, tmp_path / "b" / "scene.zip")
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (p1, p2)]
    assert digest[0] == digest[1]
    assert sorted(q.name for q in p1.parent.iterdir()) == ["scene.zip"]  # no temp file left

    with zipfile.ZipFile(p1) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert names == [
            "LICENSE.txt",
            "ground_truth.json",
            "images/view_000.png",
            "images/view_001.png",
            "images/view_002.png",
        ]
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.compress_type == zipfile.ZIP_DEFLATED
        img = np.asarray(Image.open(io.BytesIO(zf.read("images/view_001.png"))))
        license_txt = zf.read("LICENSE.txt").decode()
        zf.extract("ground_truth.json", tmp_path)

    assert np.array_equal(img, render_synthetic_scene(TINY).images[1][1])
    cams, scene = read_ground_truth(tmp_path / "ground_truth.json")
    expected = make_cameras(TINY, np.asarray(scene["centre"]))
    for got, want in zip(cams, expected, strict=True):
        assert got.image == want.image and got.width == 64 and got.height == 48
        assert np.allclose(got.R, want.R) and np.allclose(got.t, want.t)
    assert scene["config"]["width"] == 64 and scene["config"]["seed"] == 0
    # Every photograph used is named with its license, and no unused one is.
    by_loader = {p.loader: p for p in PHOTOS}
    assert scene["photos"]
    for loader in by_loader:
        assert (f"skimage.data.{loader}:" in license_txt) == (loader in scene["photos"])
    for loader in scene["photos"]:
        assert by_loader[loader].license in license_txt


def test_pixel_centre_rays_reproject_to_pixel_centres() -> None:
    """A ray through pixel (i, j) hits a point that projects to (j + 0.5, i + 0.5).

    Off by half a pixel or with rows/columns swapped, this fails by >= 0.5 px.
    """
    model = build_scene_model(TINY)
    for cam in make_cameras(TINY, np.array([0.0, 0.0, 1.0])):
        origin, dirs = camera_rays(cam, 1)
        assert dirs.shape == (cam.height, cam.width, 3)
        hits = cast_rays(model, origin, dirs.reshape(-1, 3))
        assert np.all(hits.surface >= 0)  # the drum closes the scene: no ray escapes
        X = origin + hits.t[:, None] * dirs.reshape(-1, 3)
        uv = _project(cam, X)
        ii, jj = np.mgrid[0 : cam.height, 0 : cam.width]
        expected = np.stack([jj.ravel() + 0.5, ii.ravel() + 0.5], axis=1)
        assert np.abs(uv - expected).max() < 1e-6
        # The rays hit real boxes: some pixel sees a box face.
        assert np.any(hits.surface >= 3)


def test_box_top_points_land_on_the_box_in_the_image() -> None:
    """Points on a box's top face project into pixels whose centre rays see that top face."""
    # Enough pixels that a top face seen at a slant is several pixels tall.
    cfg = SyntheticSceneConfig(num_views=2, width=320, height=240, supersample=1)
    model = build_scene_model(cfg)
    checked = 0
    for cam in make_cameras(cfg, np.array([0.0, 0.0, 1.0])):
        origin, dirs = camera_rays(cam, 1)
        surf = cast_rays(model, origin, dirs.reshape(-1, 3)).surface
        surf = surf.reshape(cam.height, cam.width)
        for b, box in enumerate(model.boxes):
            top_id = 3 + 6 * b + 5
            top_centre = box.center + np.array([0.0, 0.0, box.half[2]])
            corners = box.corners()[1::2]  # the four top corners (local z sign +1)
            for X in top_centre + 0.5 * (corners - top_centre):  # well inside the top face
                hit = cast_rays(model, cam.center, (X - cam.center)[None])
                if hit.surface[0] != top_id or abs(hit.t[0] - 1.0) > 1e-9:
                    continue  # hidden by another box, or the top is not visible
                u, v = _project(cam, X[None])[0]
                i, j = int(np.floor(v)), int(np.floor(u))
                assert 0 <= i < cam.height and 0 <= j < cam.width
                assert surf[i, j] == top_id
                checked += 1
    assert checked >= 4


def test_supersample_grid_averages_to_pixel_centres() -> None:
    cam = make_cameras(TINY, np.array([0.0, 0.0, 1.0]))[1]
    k = 3
    _, dirs = camera_rays(cam, k)
    uv = _project(cam, cam.center + dirs.reshape(-1, 3)).reshape(cam.height * k, cam.width * k, 2)
    mean = uv.reshape(cam.height, k, cam.width, k, 2).mean(axis=(1, 3))
    ii, jj = np.mgrid[0 : cam.height, 0 : cam.width]
    assert np.allclose(mean[..., 0], jj + 0.5) and np.allclose(mean[..., 1], ii + 0.5)


def test_images_are_textured() -> None:
    scene = render_synthetic_scene(SyntheticSceneConfig(num_views=4, width=160, height=120))
    for _, img in scene.images:
        g = img.astype(float).mean(axis=2)
        grad = np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()
        assert grad > 10.0
        assert img.std() > 30.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "a/b"),
        ("num_views", 1),
        ("num_views", 2.5),
        ("width", 8),
        ("height", True),
        ("seed", -1),
        ("supersample", 0),
        ("fov_deg", 179.0),
        ("orbit_radius", 1.0),
        ("orbit_radius", 20.0),
        ("elevations_deg", ()),
        ("elevations_deg", (15.0, 90.0)),
        ("elevations_deg", [15.0]),
        ("num_boxes", 7),
    ],
)
def test_config_validation_names_the_parameter(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SyntheticSceneConfig(**{field: value})


def test_small_config_is_valid() -> None:
    cfg = SyntheticSceneConfig.small(seed=3)
    assert (cfg.num_views, cfg.width, cfg.height, cfg.seed) == (24, 240, 180, 3)
