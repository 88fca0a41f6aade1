"""SPZ and PlayCanvas SOG: our writers round-trip through our readers within each format's
quantisation, files are deterministic, and damaged files fail with a clear error."""

from __future__ import annotations

import gzip
import io
import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_compress_roundtrip import make_splats

from splatbench.compress.errors import CorruptModelError
from splatbench.compress.export import ExportConfig, export_viewer_formats
from splatbench.compress.playcanvas_sog import (
    SogConfig,
    SogFormatError,
    decode_sog,
    encode_sog,
    nearest_entry,
    palette_size,
    scalar_codebook,
    texture_shape,
    write_sog,
)
from splatbench.compress.quant import canonical_quats, log_transform
from splatbench.compress.spz import (
    SpzConfig,
    SpzFormatError,
    decode_spz,
    encode_spz,
    pack_rotations_smallest_three,
    quantize_sh,
    read_spz_header,
    unpack_rotations_smallest_three,
)
from splatbench.errors import ConfigError
from splatbench.gaussians.ply import write_ply


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _same_rotation(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Max component error between unit quaternions, q and -q being the same rotation."""
    qa, qb = _np(canonical_quats(a.float())), _np(canonical_quats(b.float()))
    return np.minimum(np.abs(qa - qb).max(1), np.abs(qa + qb).max(1))


def _sigmoid(x: torch.Tensor) -> np.ndarray:
    return 1 / (1 + np.exp(-_np(x)))


# --- SPZ ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3, 4])
def test_spz_roundtrip_within_quantisation(version: int) -> None:
    splats = make_splats(500)
    enc = encode_spz(splats, SpzConfig(version=version))
    dec = decode_spz(enc.data)
    o = enc.order
    assert read_spz_header(enc.data)["version"] == version
    step = 1.0 / (1 << enc.fractional_bits)
    assert np.abs(_np(dec["means"]) - _np(splats["means"][o])).max() <= step / 2 + 1e-6
    assert np.abs(_np(dec["scales"]) - _np(splats["scales"][o])).max() <= 1 / 32 + 1e-6
    if version >= 3:
        assert _same_rotation(dec["quats"], splats["quats"][o]).max() <= 0.004
    else:  # first three: x, y, z of the w >= 0 quaternion within half a step of 1/127.5;
        # w = sqrt(1 - |xyz|^2) is only as precise as that allows (why version 3 changed it)
        ref = torch.nn.functional.normalize(splats["quats"][o].double(), dim=1)
        ref = ref * torch.where(ref[:, :1] < 0, -1.0, 1.0)
        assert np.abs(_np(dec["quats"][:, 1:]) - _np(ref[:, 1:])).max() <= 0.5 / 127.5 + 1e-6
    alpha = np.abs(_sigmoid(dec["opacities"]) - _sigmoid(splats["opacities"][o]))
    assert alpha.max() <= 0.5 / 255 + 1e-6
    assert np.abs(_np(dec["sh0"]) - _np(splats["sh0"][o])).max() <= 0.5 / (0.15 * 255) + 1e-6
    ref = np.clip(_np(splats["shN"][o]), -1, 127 / 128)
    err = np.abs(_np(dec["shN"]) - ref)
    # 5 bits kept of degree 1 (bucket 8/128), 4 of degrees 2-3 (16/128), after 1/128 rounding.
    assert err[:, :3].max() <= 4 / 128 + 0.5 / 128 + 1e-6
    assert err[:, 3:].max() <= 8 / 128 + 0.5 / 128 + 1e-6


def test_spz_sh_quantiser_matches_the_reference_rule() -> None:
    # round(x * 128) + 128, then to the nearest multiple of the bucket (ties up), clamped.
    x = np.array([0.0, 0.03, -0.03, 0.999, -1.5, 2.0, 0.0625, -0.0625], np.float32)
    assert quantize_sh(x, 8).tolist() == [128, 132, 124, 255, 0, 255, 136, 120]
    assert quantize_sh(x, 5).tolist() == [128, 136, 128, 255, 0, 255, 136, 120]
    assert quantize_sh(x, 4).tolist() == [128, 128, 128, 255, 0, 255, 144, 128]


def test_spz_rotation_packing() -> None:
    q = torch.nn.functional.normalize(
        torch.randn(2000, 4, generator=torch.Generator().manual_seed(3)), dim=1
    )
    packed = pack_rotations_smallest_three(q.numpy())
    back = unpack_rotations_smallest_three(packed)
    assert _same_rotation(torch.from_numpy(back), q).max() <= 0.002
    # the index of the largest component sits in the top two bits
    comp = packed.view("<u4").reshape(-1)
    assert ((comp >> 30) == np.abs(q.numpy()).argmax(1)).all()


def test_spz_deterministic_and_sorted(tmp_path: Path) -> None:
    splats = make_splats(300)
    a, b = encode_spz(splats), encode_spz(splats)
    assert a.data == b.data
    unsorted = encode_spz(splats, SpzConfig(sort="none"))
    assert torch.equal(unsorted.order, torch.arange(300))
    assert not torch.equal(a.order, unsorted.order)


def test_spz_sh_degree_cap_and_fraction_bits() -> None:
    splats = make_splats(200)
    enc = encode_spz(splats, SpzConfig(max_sh_degree=1))
    dec = decode_spz(enc.data)
    assert enc.sh_degree == 1 and dec["shN"].shape == (200, 3, 3)
    far = {**splats, "means": splats["means"] * 1e4}  # 30k units: 12 fraction bits overflow int24
    enc = encode_spz(far)
    assert enc.fractional_bits < 12
    assert np.abs(_np(decode_spz(enc.data)["means"]) - _np(far["means"][enc.order])).max() <= (
        0.5 / (1 << enc.fractional_bits) + 1e-3
    )


def test_spz_degree0_and_empty() -> None:
    zero = make_splats(50, sh_degree=0)
    dec = decode_spz(encode_spz(zero, SpzConfig(version=4)).data)
    assert dec["shN"].shape == (50, 0, 3)
    empty = {k: v[:0] for k, v in make_splats(5).items()}
    assert decode_spz(encode_spz(empty, SpzConfig(version=4)).data)["means"].shape == (0, 3)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: d[:-40], "stream|past the file end|unexpected"),
        (lambda d: b"XXXX" + d[4:], "not an SPZ file"),
        (lambda d: d[:4] + struct.pack("<I", 9) + d[8:], "version 9"),
        (lambda d: d[:10], "too short"),
    ],
)
def test_spz_damage_is_an_error(damage, match: str) -> None:
    data = encode_spz(make_splats(100), SpzConfig(version=4)).data
    with pytest.raises(SpzFormatError, match=match):
        decode_spz(damage(data), "scene.spz")


def test_spz_truncated_gzip_is_an_error() -> None:
    data = encode_spz(make_splats(100), SpzConfig(version=3)).data
    with pytest.raises(SpzFormatError, match=r"scene\.spz"):
        decode_spz(data[: len(data) // 2], "scene.spz")
    inner = gzip.decompress(data)
    with pytest.raises(SpzFormatError, match="payload"):
        decode_spz(gzip.compress(inner[:-100]), "scene.spz")


def test_spz_config_errors() -> None:
    for bad, match in [
        ({"version": 5}, "version"),
        ({"sh1_bits": 9}, "sh1_bits"),
        ({"fractional_bits": 30}, "fractional_bits"),
        ({"sort": "x"}, "sort"),
        ({"colour": 1}, "unknown keys"),
    ]:
        with pytest.raises(ConfigError, match=match):
            SpzConfig.from_dict(bad)


# --- PlayCanvas SOG ---------------------------------------------------------------------------


def test_scalar_codebook_is_nearest_and_lloyd_stable() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-4, 0.5, 5000), rng.normal(1, 2, 500)])
    cb, labels = scalar_codebook(values, 256, iters=30)
    assert cb.shape == (256,) and np.all(np.diff(cb) >= 0)
    assert np.array_equal(labels, nearest_entry(cb, values))
    # denser where the data is: the codebook beats a uniform 8-bit grid on squared error
    uniform = np.linspace(values.min(), values.max(), 256)
    assert ((cb[labels] - values) ** 2).mean() < (
        (uniform[nearest_entry(uniform, values)] - values) ** 2
    ).mean()


def test_palette_and_texture_sizes() -> None:
    assert texture_shape(1000) == (32, 32) and texture_shape(1025) == (32, 36)
    assert palette_size(30000, 4) == 7552  # ceil(7500 / 64) * 64
    assert palette_size(100, 1) == 100 and palette_size(10**7, 1) == 65536


@pytest.mark.parametrize("bundle", [True, False])
def test_sog_roundtrip_within_quantisation(tmp_path: Path, bundle: bool) -> None:
    n = 640  # a multiple of 64: with one Gaussian per palette entry the palette is exact
    splats = make_splats(n)
    enc = encode_sog(splats, SogConfig(shN_points_per_code=1, shN_weighting="none"))
    path = tmp_path / ("scene.sog" if bundle else "scene_sog")
    write_sog(enc, path, bundle=bundle)
    dec = decode_sog(path if bundle else path / "meta.json")
    o = enc.order
    m = enc.meta
    step = (np.asarray(m["means"]["maxs"]) - np.asarray(m["means"]["mins"])) / 65535
    err = np.abs(_np(log_transform(dec["means"])) - _np(log_transform(splats["means"][o])))
    assert (err <= step / 2 + 1e-6).all()
    assert _same_rotation(dec["quats"], splats["quats"][o]).max() <= 1.5 * math.sqrt(2) / 255
    alpha = np.abs(_sigmoid(dec["opacities"]) - _sigmoid(splats["opacities"][o]))
    assert alpha.max() <= 0.5 / 255 + 1e-6
    # scales, sh0 and shN: every value decodes to the codebook entry nearest the original
    for key, book in (("scales", "scales"), ("sh0", "sh0"), ("shN", "shN")):
        cb = np.asarray(m[book]["codebook"], np.float32)
        ref = _np(splats[key][o]).reshape(n, -1)
        np.testing.assert_array_equal(_np(dec[key]).reshape(n, -1), cb[nearest_entry(cb, ref)])
    assert m["shN"]["count"] == n and m["shN"]["bands"] == 3


def test_sog_bundle_layout_and_determinism(tmp_path: Path) -> None:
    enc = encode_sog(make_splats(300))
    data = enc.bundle()
    assert data == encode_sog(make_splats(300)).bundle()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = [i.filename for i in zf.infolist()]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        meta = json.loads(zf.read("meta.json"))
    assert names[-1] == "meta.json" and set(names) == {
        "meta.json",
        "means_l.webp",
        "means_u.webp",
        "quats.webp",
        "scales.webp",
        "sh0.webp",
        "shN_centroids.webp",
        "shN_labels.webp",
    }
    assert meta["version"] == 2 and meta["count"] == 300
    assert len(meta["scales"]["codebook"]) == 256 and len(meta["shN"]["codebook"]) == 256


def test_sog_degree0_has_no_shn(tmp_path: Path) -> None:
    enc = encode_sog(make_splats(100, sh_degree=0))
    assert "shN" not in enc.meta
    write_sog(enc, tmp_path / "s.sog")
    assert decode_sog(tmp_path / "s.sog")["shN"].shape == (100, 0, 3)
    capped = encode_sog(make_splats(100), SogConfig(max_sh_degree=1))
    assert capped.meta["shN"]["bands"] == 1


def _rezip(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def test_sog_damage_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "scene.sog"
    write_sog(encode_sog(make_splats(200)), src)

    def meta_version(name: str, data: bytes) -> bytes:
        return (
            json.dumps({**json.loads(data), "version": 3}).encode() if name == "meta.json" else data
        )

    cases = [
        (lambda n, d: None if n == "quats.webp" else d, "quats.webp missing"),
        (meta_version, "version 3"),
        (lambda n, d: d[:50] if n == "sh0.webp" else d, "sh0.webp: cannot decode"),
        (lambda n, d: None if n == "meta.json" else d, "no meta.json"),
    ]
    for i, (edit, match) in enumerate(cases):
        with pytest.raises(SogFormatError, match=match):
            decode_sog(_rezip(src, tmp_path / f"bad{i}.sog", edit))
    (tmp_path / "notzip.sog").write_bytes(b"not a zip")
    with pytest.raises(CorruptModelError, match=r"notzip\.sog"):
        decode_sog(tmp_path / "notzip.sog")


def test_sog_config_errors() -> None:
    for bad, match in [
        ({"shN_points_per_code": 0}, "shN_points_per_code"),
        ({"sort": "plas"}, "sort"),
        ({"bundle": "yes"}, "true or false"),
        ({"shN_weighting": "opacity", "shN_kmeans_metric": "l1"}, "l2"),
    ]:
        with pytest.raises(ConfigError, match=match):
            SogConfig.from_dict(bad)


# --- the export -------------------------------------------------------------------------------


def test_export_writes_both_formats_and_metrics(tmp_path: Path) -> None:
    ply = tmp_path / "in.ply"
    write_ply(ply, make_splats(400))
    m = export_viewer_formats(
        ply, tmp_path / "export", {"prune_opacity": 0.05}, decoded_dir=tmp_path / "dec"
    )
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["scene.sog", "scene.spz"]
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["playcanvas_sog.ply", "spz.ply"]
    for model in ("playcanvas_sog", "spz"):
        f = m["formats"][model]
        assert f["bytes"] == (tmp_path / "export" / f["file"]).stat().st_size
        assert f["num_gaussians"] == 400 - m["pruned"] and m["pruned"] > 0
        assert f["ratio"] == pytest.approx(m["ply_bytes"] / f["bytes"])
        assert f["max_abs_error"]["means"] < 1e-2
    assert m["formats"]["spz"]["spz_version"] == 3
    # one format only: the other is not written
    only = export_viewer_formats(ply, tmp_path / "export2", {"formats": ["spz"]})
    assert list(only["formats"]) == ["spz"]
    assert [p.name for p in (tmp_path / "export2").iterdir()] == ["scene.spz"]


def test_export_config_errors() -> None:
    with pytest.raises(ConfigError, match="formats"):
        ExportConfig.from_dict({"formats": ["sog", "ksplat"]})
    with pytest.raises(ConfigError, match=r"unknown key export\.spx"):
        ExportConfig.from_dict({"spx": {}})
    with pytest.raises(ConfigError, match=r"export\.spz\.version"):
        ExportConfig.from_dict({"spz": {"version": 7}})
