"""Round trips of the splatbench-sog codec: every attribute within its quantisation step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from splatbench.compress import (
    CompressConfig,
    compress_splats,
    decode_dir,
    decode_to_ply,
    decompress,
    encode_splats,
    grid_shape,
    write_encoded,
)
from splatbench.compress.quant import canonical_quats, log_transform, quant_step
from splatbench.gaussians.ply import read_ply, write_ply

# Small and fast: a few hundred Gaussians, short sorting schedule.
FAST = {"plas_start_radius": 4, "plas_iters_per_radius": 2, "png_compress_level": 1}


def make_splats(n: int, sh_degree: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2 - 1
    means = torch.randn(n, 3, generator=g) * 3.0
    return {
        "means": means,
        "scales": torch.randn(n, 3, generator=g) * 0.5 - 4.0,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g) * 2.0,
        "sh0": torch.sin(means).unsqueeze(1) + 0.1 * torch.randn(n, 1, 3, generator=g),
        "shN": 0.2 * torch.randn(n, k, 3, generator=g),
    }


def roundtrip(splats, tmp_path: Path, **settings):
    cfg = CompressConfig.from_dict({**FAST, **settings})
    enc = encode_splats(splats, cfg)
    write_encoded(enc, tmp_path / "model")
    return enc, decode_dir(tmp_path / "model")


def _assert_within_step(ref: torch.Tensor, dec: torch.Tensor, attr: dict) -> None:
    step = quant_step(np.asarray(attr["mins"]), np.asarray(attr["maxs"]), attr["bits"])
    err = (dec.reshape(ref.shape[0], -1).double() - ref.reshape(ref.shape[0], -1).double()).abs()
    # Half a step, plus float32 rounding of the decoded value.
    bound = torch.from_numpy(step / 2) + 1e-6 * (1 + ref.reshape(ref.shape[0], -1).abs().double())
    assert bool((err <= bound).all()), f"max err {err.max(0).values} > bound {bound.max(0).values}"


def _assert_quats_within_step(orig: torch.Tensor, dec: torch.Tensor, attr: dict) -> None:
    """Smallest-three: the stored components within half a step; the recomputed largest one
    (``sqrt(1 - |rest|^2)``, >= 1/2, slope <= sqrt(2) per component) within ``3 * step / 2``."""
    ref = canonical_quats(orig).double()
    step = float(quant_step(np.asarray(attr["mins"]), np.asarray(attr["maxs"]), attr["bits"]).max())
    largest = ref.abs().argmax(1)
    err = (dec.double() - ref).abs()
    is_big = torch.nn.functional.one_hot(largest, 4).bool()
    assert bool((err[~is_big] <= step / 2 + 1e-6).all()), float(err[~is_big].max())
    assert bool((err[is_big] <= 3 * step / 2 + 1e-6).all()), float(err[is_big].max())
    assert torch.allclose(dec.norm(dim=1), torch.ones(dec.shape[0]), atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_every_attribute_within_quantisation_step(tmp_path: Path, n: int) -> None:
    splats = make_splats(n)
    # Codebook as large as N: every SH vector is its own entry, so only the codebook's 8-bit
    # quantisation remains and the bound is exact.
    enc, dec = roundtrip(
        splats, tmp_path, shN_codebook_size=4096, shN_points_per_code=1, shN_kmeans_iters=3
    )
    meta = enc.meta
    assert meta["num_gaussians"] == n and dec["means"].shape == (n, 3)
    h, w = grid_shape(n)
    assert (meta["grid"]["height"], meta["grid"]["width"]) == (h, w)
    assert 0 <= h * w - n < w  # padding is less than one row, and never decoded
    o = enc.order
    assert torch.equal(torch.sort(o).values, torch.arange(n))  # a permutation
    attrs = meta["attributes"]
    _assert_within_step(
        log_transform(splats["means"][o]), log_transform(dec["means"]), attrs["means"]
    )
    _assert_within_step(splats["scales"][o], dec["scales"], attrs["scales"])
    _assert_quats_within_step(splats["quats"][o], dec["quats"], attrs["quats"])
    _assert_within_step(splats["opacities"][o], dec["opacities"], attrs["opacities"])
    _assert_within_step(splats["sh0"][o], dec["sh0"], attrs["sh0"])
    assert meta["shN"]["codebook_size"] == n
    _assert_within_step(splats["shN"][o], dec["shN"], meta["shN"]["codebook"])
    assert dec["shN"].shape == (n, 15, 3) and dec["sh0"].shape == (n, 1, 3)
    assert dec["opacities"].shape == (n,) and dec["quats"].shape == (n, 4)


def test_position_bits_and_sixteen_bit_planes(tmp_path: Path) -> None:
    splats = make_splats(300)
    enc, dec = roundtrip(splats, tmp_path, position_bits=12, scale_bits=11, rotation_bits=4)
    a = enc.meta["attributes"]
    assert a["means"]["planes"] == ["means_hi.png", "means_lo.png"]
    assert a["quats"]["planes"] == ["quats.png"]
    o = enc.order
    _assert_within_step(log_transform(splats["means"][o]), log_transform(dec["means"]), a["means"])
    _assert_within_step(splats["scales"][o], dec["scales"], a["scales"])
    _assert_quats_within_step(splats["quats"][o], dec["quats"], a["quats"])


def test_degenerate_quaternions(tmp_path: Path) -> None:
    splats = make_splats(6)
    splats["quats"] = torch.tensor(
        [[0, 0, 0, 0], [-2, 0, 0, 0], [0, 0, -1, 0], [1, 1, 1, 1], [-1, 1, -1, 1], [0, 3, 4, 0]],
        dtype=torch.float32,
    )
    enc, dec = roundtrip(splats, tmp_path)
    expect = canonical_quats(splats["quats"][enc.order])
    assert torch.isfinite(dec["quats"]).all()
    assert torch.allclose(dec["quats"], expect, atol=0.02)
    assert torch.equal(canonical_quats(torch.zeros(1, 4)), torch.tensor([[1.0, 0, 0, 0]]))


def test_zero_gaussians(tmp_path: Path) -> None:
    enc, dec = roundtrip(make_splats(0), tmp_path)
    assert enc.meta["num_gaussians"] == 0 and enc.files == {}
    assert dec["means"].shape == (0, 3) and dec["shN"].shape == (0, 15, 3)


def test_sh_degree_zero_has_no_codebook(tmp_path: Path) -> None:
    splats = make_splats(50, sh_degree=0)
    enc, dec = roundtrip(splats, tmp_path)
    assert enc.meta["shN"] is None and not any("shN" in f for f in enc.files)
    assert dec["shN"].shape == (50, 0, 3)


def test_float16_codebook_and_small_label_plane(tmp_path: Path) -> None:
    splats = make_splats(200, sh_degree=1)
    enc, dec = roundtrip(
        splats,
        tmp_path,
        shN_codebook_format="float16",
        shN_codebook_size=16,
        shN_points_per_code=1,
    )
    shn = enc.meta["shN"]
    assert shn["codebook_size"] == 16 and shn["label_bits"] == 4
    assert shn["label_planes"] == ["shN_labels.png"] and "shN_codebook.f16" in enc.files
    assert dec["shN"].shape == (200, 3, 3)
    # float16 codebook: the decoded vectors are the float16 centroids exactly.
    cb = np.frombuffer(enc.files["shN_codebook.f16"], dtype="<f2").reshape(16, 9)
    assert torch.equal(
        dec["shN"].reshape(200, 9),
        torch.from_numpy(cb.astype(np.float32))[
            torch.cdist(dec["shN"].reshape(200, 9), torch.from_numpy(cb.astype(np.float32))).argmin(
                1
            )
        ],
    )


def test_codebook_capped_by_points_per_code(tmp_path: Path) -> None:
    enc, _ = roundtrip(make_splats(200, sh_degree=1), tmp_path, shN_points_per_code=16)
    assert enc.meta["shN"]["codebook_size"] == 13  # ceil(200 / 16)


def test_webp_lossless_matches_png(tmp_path: Path) -> None:
    pytest.importorskip("PIL.WebPImagePlugin")
    from PIL import features

    if not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    splats = make_splats(150)
    _, png = roundtrip(splats, tmp_path / "png")
    enc, webp = roundtrip(splats, tmp_path / "webp", image_format="webp")
    assert any(name.endswith(".webp") for name in enc.files)
    for key in png:
        assert torch.equal(png[key], webp[key]), key


def test_compress_splats_ply_to_ply(tmp_path: Path) -> None:
    splats = make_splats(500)
    ply = tmp_path / "in.ply"
    write_ply(ply, splats)
    out = tmp_path / "compressed"
    m = compress_splats(ply, out, {**FAST, "shN_codebook_size": 64}, decoded_ply=tmp_path / "d.ply")
    assert m["num_gaussians"] == 500 and m["bytes"] == sum(p.stat().st_size for p in out.iterdir())
    assert m["ratio"] == pytest.approx(ply.stat().st_size / m["bytes"])
    assert m["bits_per_gaussian"] == pytest.approx(8 * m["bytes"] / 500)
    assert m["megabytes"] == pytest.approx(m["bytes"] / 1e6)
    assert m["encode_seconds"] > 0 and m["decode_seconds"] > 0
    assert m["settings"]["shN_codebook_size"] == 64 and m["max_abs_error"]["means"] < 1e-3
    json.dumps(m)  # metrics are JSON-serialisable
    back = read_ply(tmp_path / "d.ply")
    via_api = decompress(out)
    for key in back:
        assert torch.allclose(back[key], via_api[key]), key
    decode_to_ply(out, tmp_path / "again.ply")
    assert (tmp_path / "again.ply").read_bytes() == (tmp_path / "d.ply").read_bytes()
    # No staging directories left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "again.ply",
        "compressed",
        "d.ply",
        "in.ply",
    ]


def test_encoding_is_deterministic(tmp_path: Path) -> None:
    splats = make_splats(400)
    a, _ = roundtrip(splats, tmp_path / "a", shN_codebook_size=32)
    b, _ = roundtrip(splats, tmp_path / "b", shN_codebook_size=32)
    assert a.meta == b.meta and a.files == b.files
