"""PSNR and SSIM against independent implementations, on real photographs.

Predictions are degraded versions of scikit-image's bundled photographs (noise, blur, shift),
which exercise textured regions and image borders the way renders do.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data, img_as_float
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from splatbench.metrics import MetricInputError, psnr, ssim, ssim_map

TOL = 1e-4


def _photo(name: str) -> np.ndarray:
    return img_as_float(getattr(data, name)())  # [H, W, 3] float64 on [0, 1]


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0.0, 1.0)


def _blurred(img: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma=(1.2, 1.2, 0))


def _shifted(img: np.ndarray) -> np.ndarray:
    return np.roll(img, shift=(2, -3), axis=(0, 1))


@pytest.fixture(scope="module")
def photo_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, pred, target) as [H, W, 3] float64; crops keep the naive reference fast."""
    astronaut = _photo("astronaut")[:160, :200]
    coffee = _photo("coffee")[100:260, 200:400]
    chelsea = _photo("chelsea")[50:210, 100:300]
    return [
        ("astronaut+noise", _noisy(astronaut, 0.05, seed=3), astronaut),
        ("coffee+blur", _blurred(coffee), coffee),
        ("chelsea+shift", _shifted(chelsea), chelsea),
        ("coffee+noise(0.1)", _noisy(coffee, 0.1, seed=1), coffee),
    ]


# ---------------------------------------------------------------------------------------------
# An independent, deliberately naive SSIM: numpy float64, explicit padding, explicit 11x11
# window sums (no separable filtering, no torch).
# ---------------------------------------------------------------------------------------------


def _naive_window() -> np.ndarray:
    w = np.empty((11, 11))
    for i in range(11):
        for j in range(11):
            w[i, j] = np.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5**2))
    return w / w.sum()


def _window_sums(channel: np.ndarray, window: np.ndarray) -> np.ndarray:
    """sum_{i,j} window[i, j] * channel[y + i, x + j] for every window fully inside ``channel``."""
    patches = np.lib.stride_tricks.sliding_window_view(channel, window.shape)
    return np.einsum("yxij,ij->yx", patches, window)


def naive_ssim(pred: np.ndarray, target: np.ndarray, border: str, data_range: float = 1.0) -> float:
    window = _naive_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    per_channel = []
    for c in range(pred.shape[-1]):
        x, y = pred[..., c].astype(np.float64), target[..., c].astype(np.float64)
        if border == "zero":
            x, y = np.pad(x, 5, mode="constant"), np.pad(y, 5, mode="constant")
        elif border == "reflect":
            # numpy "reflect" mirrors about the edge pixel without repeating it (= torch reflect).
            x, y = np.pad(x, 5, mode="reflect"), np.pad(y, 5, mode="reflect")
        mx, my = _window_sums(x, window), _window_sums(y, window)
        vx = _window_sums(x * x, window) - mx**2
        vy = _window_sums(y * y, window) - my**2
        cxy = _window_sums(x * y, window) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        per_channel.append(s.mean())
    return float(np.mean(per_channel))


# ---------------------------------------------------------------------------------------------
# PSNR
# ---------------------------------------------------------------------------------------------


def test_psnr_matches_skimage(photo_pairs):
    for label, pred, target in photo_pairs:
        ours = float(psnr(pred, target)[0])
        ref = peak_signal_noise_ratio(target, pred, data_range=1.0)
        assert abs(ours - ref) < TOL, label


def test_psnr_batch_is_per_image_and_layouts_agree(photo_pairs):
    preds = torch.stack([torch.from_numpy(p).permute(2, 0, 1) for _, p, _ in photo_pairs[:3]])
    targets = torch.stack([torch.from_numpy(t).permute(2, 0, 1) for _, _, t in photo_pairs[:3]])
    batch = psnr(preds, targets)
    assert batch.shape == (3,)
    for i, (_, p, t) in enumerate(photo_pairs[:3]):
        assert abs(float(batch[i]) - float(psnr(p, t)[0])) < 1e-9
    # The convention (mean of per-image PSNR) differs from the PSNR of the pooled MSE.
    pooled = 10 * np.log10(1.0 / float(((preds - targets) ** 2).mean()))
    assert abs(float(batch.mean()) - pooled) > 0.1


def test_psnr_data_range_and_identical_images():
    img = _photo("chelsea")[:64, :64]
    noisy = _noisy(img, 0.05, seed=0)
    ref = peak_signal_noise_ratio(img * 255, noisy * 255, data_range=255.0)
    assert abs(float(psnr(noisy * 255, img * 255, data_range=255.0)[0]) - ref) < TOL
    assert float(psnr(img, img)[0]) == float("inf")


def test_inputs_are_validated():
    img = _photo("coffee")[:32, :32]
    with pytest.raises(MetricInputError, match="integer dtype"):
        psnr((img * 255).astype(np.uint8), (img * 255).astype(np.uint8))
    with pytest.raises(MetricInputError, match="shape"):
        psnr(img, img[:16])
    with pytest.raises(MetricInputError, match="channels"):
        ssim(np.zeros((1, 4, 32, 32)), np.zeros((1, 4, 32, 32)))
    with pytest.raises(MetricInputError, match="border"):
        ssim(img, img, border="same")  # type: ignore[arg-type]
    with pytest.raises(MetricInputError, match="at least 11x11"):
        ssim(img[:8, :8], img[:8, :8], border="valid")


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------


def test_ssim_valid_matches_skimage(photo_pairs):
    for label, pred, target in photo_pairs:
        ours = float(ssim(pred, target, border="valid")[0])
        ref = structural_similarity(
            target,
            pred,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert abs(ours - ref) < TOL, label


@pytest.mark.parametrize("border", ["zero", "reflect", "valid"])
def test_ssim_matches_naive_reference(photo_pairs, border):
    for label, pred, target in photo_pairs:
        ref = naive_ssim(pred, target, border)
        ours = float(ssim(pred, target, border=border, backend="torch")[0])
        assert abs(ours - ref) < TOL, label
        # float32, as renders usually are, stays within tolerance too.
        ours32 = float(ssim(pred.astype(np.float32), target.astype(np.float32), border=border)[0])
        assert abs(ours32 - ref) < TOL, label


def test_ssim_reflect_matches_torchmetrics(photo_pairs):
    tm = pytest.importorskip("torchmetrics.functional.image")
    for label, pred, target in photo_pairs:
        p = torch.from_numpy(pred).permute(2, 0, 1)[None]
        t = torch.from_numpy(target).permute(2, 0, 1)[None]
        ref = float(tm.structural_similarity_index_measure(p, t, data_range=1.0))
        assert abs(float(ssim(p, t, border="reflect", backend="torch")[0]) - ref) < TOL, label
        assert abs(float(ssim(p, t, border="reflect")[0]) - ref) < TOL, label
        assert abs(naive_ssim(pred, target, "reflect") - ref) < TOL, label


def test_ssim_data_range_scales_constants():
    img = _photo("astronaut")[:80, :80]
    noisy = _noisy(img, 0.05, seed=0)
    for border in ("zero", "reflect", "valid"):
        a = float(ssim(noisy, img, border=border, backend="torch")[0])
        b = float(ssim(noisy * 255, img * 255, border=border, data_range=255.0, backend="torch")[0])
        assert abs(a - b) < 1e-9
        assert abs(naive_ssim(noisy * 255, img * 255, border, data_range=255.0) - b) < TOL


def test_ssim_identical_images_is_one_and_map_shapes():
    img = torch.from_numpy(_photo("coffee")[:40, :50]).permute(2, 0, 1)[None]
    for border in ("zero", "reflect", "valid"):
        assert abs(float(ssim(img, img, border=border)[0]) - 1.0) < 1e-9
    assert ssim_map(img, img, "zero").shape == (1, 3, 40, 50)
    assert ssim_map(img, img, "reflect").shape == (1, 3, 40, 50)
    assert ssim_map(img, img, "valid").shape == (1, 3, 30, 40)


def test_border_conventions_reproduce_reference_values():
    """REFERENCE.md: on a noisy 160x200 photo pair SSIM is 0.5125 (zero), 0.4832 (reflect),
    0.4725 (valid). That pair is reproduced by astronaut()[:160, :200] plus N(0, 0.05) noise from
    numpy.random.default_rng(3), clipped to [0, 1] (all three values match to 4 decimals)."""
    target = _photo("astronaut")[:160, :200]
    pred = _noisy(target, 0.05, seed=3)
    zero, reflect, valid = (
        float(ssim(pred, target, border=b)[0]) for b in ("zero", "reflect", "valid")
    )
    assert abs(zero - 0.5125) < 6e-5
    assert abs(reflect - 0.4832) < 6e-5
    assert abs(valid - 0.4725) < 6e-5
    # The conventions are not interchangeable: zero > reflect > valid, gaps well above rounding.
    assert zero - reflect > 0.005
    assert reflect - valid > 0.005


def test_border_conventions_differ_on_other_noisy_photo():
    """The ordering is not specific to one crop: zero padding inflates SSIM on noisy pairs."""
    target = _photo("rocket")[160:320, :200]
    pred = _noisy(target, 0.05, seed=0)
    zero, reflect, valid = (
        float(ssim(pred, target, border=b)[0]) for b in ("zero", "reflect", "valid")
    )
    assert zero - reflect > 0.005
    assert reflect - valid > 0.0
