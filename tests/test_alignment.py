"""Similarity alignment and pose errors (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from splatbench.sfm.alignment import (
    EXTENT_FROM_CAMERAS,
    EXTENT_FROM_SCENE,
    camera_centers,
    pose_accuracy,
    rotation_angle_deg,
    scene_extent,
    umeyama,
)


def _random_similarity(rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    return 0.3 + 2 * rng.random(), Rotation.random(random_state=rng).as_matrix(), rng.normal(size=3)


def test_umeyama_recovers_similarity() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    s, R, t = _random_similarity(rng)
    dst = s * src @ R.T + t
    sim = umeyama(src, dst)
    assert sim.scale == pytest.approx(s, rel=1e-12)
    np.testing.assert_allclose(sim.R, R, atol=1e-12)
    np.testing.assert_allclose(sim.t, t, atol=1e-12)
    np.testing.assert_allclose(sim.apply(src), dst, atol=1e-12)
    assert np.linalg.det(sim.R) == pytest.approx(1.0)


def test_umeyama_never_returns_a_reflection() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 3))
    dst = src * np.array([1.0, 1.0, -1.0])  # mirror image: best proper rotation, not a flip
    assert np.linalg.det(umeyama(src, dst).R) == pytest.approx(1.0)


def test_umeyama_rejects_degenerate_input() -> None:
    line = np.outer(np.arange(5.0), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="degenerate"):
        umeyama(line, line)
    with pytest.raises(ValueError, match="at least 3"):
        umeyama(np.zeros((2, 3)), np.zeros((2, 3)))


def test_rotation_angle() -> None:
    R = Rotation.from_rotvec([0.0, 0.0, np.radians(30.0)]).as_matrix()
    assert rotation_angle_deg(R, np.eye(3)) == pytest.approx(30.0)
    assert rotation_angle_deg(np.eye(3), np.eye(3)) == pytest.approx(0.0)
    batch = rotation_angle_deg(np.stack([R, np.eye(3)]), np.stack([np.eye(3), np.eye(3)]))
    assert batch.shape == (2,)


def test_scene_extent_definitions() -> None:
    centers = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 2.0, 0], [0, -2.0, 0]])
    assert scene_extent(centers, {}) == (2.0, EXTENT_FROM_CAMERAS)
    assert scene_extent(centers, {"extent": 5}) == (5.0, EXTENT_FROM_SCENE)


def _poses(n: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for i in range(n):
        R = Rotation.random(random_state=rng).as_matrix()
        out[f"{i:02d}.png"] = (R, rng.normal(size=3))
    return out


def test_pose_accuracy_is_zero_for_a_similar_copy_and_measures_noise() -> None:
    rng = np.random.default_rng(2)
    gt = _poses(8, rng)
    s, A, b = _random_similarity(rng)
    # The same cameras in another world frame: x_est = s A x_gt + b.
    est = {}
    for name, (R, t) in gt.items():
        c = camera_centers(R[None], t[None])[0]
        R_e = R @ A.T
        c_e = s * A @ c + b
        est[name] = (R_e, -R_e @ c_e)
    acc = pose_accuracy(gt, est, extent=1.0, extent_definition="unit")
    assert acc["aligned_images"] == 8
    assert acc["rotation_error_deg"]["max"] < 1e-6
    assert acc["center_error_pct_extent"]["max"] < 1e-8
    assert acc["scale"] == pytest.approx(1 / s)

    # Rotate one camera by 2 degrees about its own axis (centre unchanged).
    name = "03.png"
    R_e, t_e = est[name]
    c_e = camera_centers(R_e[None], t_e[None])[0]
    R_bad = Rotation.from_rotvec([np.radians(2.0), 0, 0]).as_matrix() @ R_e
    est[name] = (R_bad, -R_bad @ c_e)
    acc = pose_accuracy(gt, est, extent=1.0, extent_definition="unit")
    assert acc["rotation_error_deg"]["max"] == pytest.approx(2.0, abs=1e-6)
    assert acc["per_image"][name]["rotation_error_deg"] == pytest.approx(2.0, abs=1e-6)
