"""The 8-bit render round trip of the 3DGS and NerfBaselines conventions, and that the three
presets give their own values with real LPIPS weights (fetched by `make setup`)."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data, img_as_float

from splatbench.metrics import PRESETS, convention_from_config, evaluate_images
from splatbench.metrics import perceptual as lpips_mod
from splatbench.metrics._images import quantize_uint8
from splatbench.metrics.perceptual import load_lpips, lpips_with_model
from splatbench.metrics.pixel import psnr


def test_rounding_rules_at_the_edges() -> None:
    x = torch.tensor([-0.1, 0.0, 0.4 / 255, 0.5 / 255, 0.99 / 255, 254.6 / 255, 1.0, 1.2])
    r = (quantize_uint8(x, "uint8_round") * 255).round().tolist()
    f = (quantize_uint8(x, "uint8_floor") * 255).round().tolist()
    assert r == [0, 0, 0, 1, 1, 255, 255, 255]
    assert f == [0, 0, 0, 0, 0, 254, 255, 255]
    assert quantize_uint8(x, "none") is x


def _render_like() -> tuple[torch.Tensor, torch.Tensor]:
    """A float 'render' (blurred, noisy photo) and its 8-bit ground truth, [1, 3, H, W]."""
    gt_u8 = data.astronaut()[64:160, 128:256]
    gt = torch.from_numpy(gt_u8).permute(2, 0, 1)[None].float() / 255
    g = torch.Generator().manual_seed(0)
    blurred = torch.nn.functional.avg_pool2d(gt, 3, 1, 1)
    render = blurred + 0.02 * torch.randn(gt.shape, generator=g)
    return render.clamp(0, 1), gt


def test_round_rule_is_the_png_round_trip_of_3dgs() -> None:
    """torchvision save_image (x*255+0.5, clamp, to uint8) -> PNG -> PIL -> /255, done for
    real with PIL, gives exactly quantize_uint8(..., "uint8_round")."""
    render, _ = _render_like()
    codes = render[0].mul(255).add(0.5).clamp(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(codes).save(buf, format="PNG")
    back = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    read = torch.from_numpy(back).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(read, quantize_uint8(render, "uint8_round"))


def test_floor_rule_is_nerfbaselines_convert_image_dtype() -> None:
    render, _ = _render_like()
    ref = (render.numpy() * 255.0).clip(0, 255).astype(np.uint8).astype(np.float32) / 255.0
    assert np.array_equal(quantize_uint8(render, "uint8_floor").numpy(), ref)


def test_evaluate_applies_the_rule_and_records_it() -> None:
    render, gt = _render_like()
    conv = replace(PRESETS["gsplat"], quantize="uint8_round")
    ours = evaluate_images([(render, gt)], conv)
    by_hand = evaluate_images([(quantize_uint8(render, "uint8_round"), gt)], PRESETS["gsplat"])
    assert ours["per_image"][0]["psnr"] == by_hand["per_image"][0]["psnr"]
    assert ours["per_image"][0]["ssim"] == by_hand["per_image"][0]["ssim"]
    assert ours["convention"]["quantize"]["rule"] == "uint8_round"
    assert "save_image" in ours["convention"]["quantize"]["meaning"]
    # The ground truth is 8-bit already: rounding it changes nothing.
    assert torch.equal(quantize_uint8(gt, "uint8_round"), gt)
    floor = evaluate_images([(render, gt)], replace(conv, quantize="uint8_floor"))
    # floor codes are never above round codes: the truncation biases renders dark.
    assert floor["per_image"][0]["psnr"] != ours["per_image"][0]["psnr"]


def test_config_key_and_presets() -> None:
    assert PRESETS["3dgs"].quantize == "uint8_round"
    assert PRESETS["gsplat"].quantize == "none"
    assert PRESETS["nerfbaselines"].quantize == "uint8_floor"
    conv = convention_from_config({"preset": "gsplat", "quantize": "uint8_round"})
    assert conv.name == "custom (from gsplat)" and conv.overrides == ("quantize",)
    with pytest.raises(Exception, match="quantize"):
        convention_from_config({"preset": "gsplat", "quantize": "png"})


def test_presets_give_their_own_lpips_values() -> None:
    """With the real weights: 3dgs (VGG, [0,1], rounded renders), gsplat (AlexNet, [-1,1],
    float renders) and nerfbaselines (AlexNet, [-1,1], truncated renders) each reproduce their
    definition exactly, and differ from each other as they should."""
    lpips_mod.clear_lpips_cache()
    render, gt = _render_like()
    values = {}
    for name in ("3dgs", "gsplat", "nerfbaselines"):
        doc = evaluate_images([(render, gt)], PRESETS[name])
        assert doc["lpips"]["available"], (
            f"LPIPS weights missing: run `make setup`: {doc['lpips']['reason']}"
        )
        values[name] = doc["per_image"][0]["lpips"]
    alex, _ = load_lpips("alex")
    vgg, _ = load_lpips("vgg")
    assert alex is not None and vgg is not None
    q_round, q_floor = quantize_uint8(render, "uint8_round"), quantize_uint8(render, "uint8_floor")
    assert values["3dgs"] == float(lpips_with_model(vgg, q_round, gt, "0_1")[0])
    assert values["gsplat"] == float(lpips_with_model(alex, render, gt, "-1_1")[0])
    assert values["nerfbaselines"] == float(lpips_with_model(alex, q_floor, gt, "-1_1")[0])
    # Different networks: far apart. Same network, 8-bit truncation only: close but not equal.
    assert abs(values["3dgs"] - values["gsplat"]) > 0.01
    assert 0 < abs(values["gsplat"] - values["nerfbaselines"]) < 0.01
    assert float(psnr(q_floor, gt)[0]) < float(psnr(q_round, gt)[0])


def test_photographs_through_all_presets_are_finite_and_ordered() -> None:
    """A clearly worse render scores worse under every preset."""
    gt = torch.from_numpy(img_as_float(data.coffee())[:96, :128]).permute(2, 0, 1)[None].float()
    mild = gt + 0.01 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))
    bad = torch.nn.functional.avg_pool2d(gt, 7, 1, 3)
    for name in ("3dgs", "gsplat", "nerfbaselines"):
        doc = evaluate_images({"mild": (mild.clamp(0, 1), gt), "bad": (bad, gt)}, PRESETS[name])
        rows = {r["name"]: r for r in doc["per_image"]}
        assert rows["mild"]["lpips"] < rows["bad"]["lpips"], name
        assert rows["mild"]["psnr"] > rows["bad"]["psnr"], name
