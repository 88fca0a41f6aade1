"""A damaged compressed model fails with a clear error; it never decodes into a wrong model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from splatbench.compress import (
    CompressConfig,
    CompressError,
    CorruptModelError,
    compress_splats,
    decompress,
    encode_splats,
    write_encoded,
)
from splatbench.gaussians.ply import write_ply

FAST = {"plas_start_radius": 4, "plas_iters_per_radius": 2, "png_compress_level": 1}


def make_splats(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random SH-degree-3 Gaussians (kept local: test modules do not import each other)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g) * 3.0,
        "scales": torch.randn(n, 3, generator=g) * 0.5 - 4.0,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g) * 2.0,
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": 0.2 * torch.randn(n, 15, 3, generator=g),
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m"
    enc = encode_splats(
        make_splats(300),
        CompressConfig.from_dict({**FAST, "shN_codebook_size": 300, "shN_points_per_code": 1}),
    )
    write_encoded(enc, out)
    return out


@pytest.fixture
def copy(model: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "m"
    shutil.copytree(model, dst)
    return dst


def test_intact_model_decodes(copy: Path) -> None:
    assert decompress(copy)["means"].shape == (300, 3)


@pytest.mark.parametrize("name", ["means_lo.png", "shN_labels_hi.png", "shN_codebook.png"])
def test_truncated_plane(copy: Path, name: str) -> None:
    p = copy / name
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(CorruptModelError, match=rf"{name}.*truncated"):
        decompress(copy)


def test_tampered_plane_same_size(copy: Path) -> None:
    p = copy / "sh0.png"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError, match=r"sh0\.png: sha256 differs"):
        decompress(copy)


def test_missing_plane(copy: Path) -> None:
    (copy / "quats.png").unlink()
    with pytest.raises(CorruptModelError, match=r"quats\.png: listed in meta.json but missing"):
        decompress(copy)


def test_edited_meta_value(copy: Path) -> None:
    meta = json.loads((copy / "meta.json").read_text())
    meta["attributes"]["opacities"]["maxs"][0] += 1.0  # a plausible edit, still valid JSON
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptModelError, match="checksum mismatch"):
        decompress(copy)


def test_truncated_meta(copy: Path) -> None:
    p = copy / "meta.json"
    p.write_text(p.read_text()[:200])
    with pytest.raises(CorruptModelError, match="not valid JSON"):
        decompress(copy)


def test_wrong_format_and_version(copy: Path) -> None:
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(CorruptModelError, match="version 99"):
        decompress(copy)
    (copy / "meta.json").write_text(json.dumps({**meta, "format": "spz"}))
    with pytest.raises(CorruptModelError, match="format is 'spz'"):
        decompress(copy)


def test_missing_meta(copy: Path) -> None:
    (copy / "meta.json").unlink()
    with pytest.raises(CorruptModelError, match=r"meta\.json: missing"):
        decompress(copy)


def test_error_says_how_to_fix(copy: Path) -> None:
    (copy / "opacities.png").write_bytes(b"")
    with pytest.raises(CorruptModelError) as info:
        decompress(copy)
    assert "Fix:" in str(info.value) and "opacities.png" in str(info.value)


def test_non_finite_input_leaves_previous_output(tmp_path: Path) -> None:
    splats = make_splats(20)
    ply = tmp_path / "in.ply"
    write_ply(ply, splats)
    out = tmp_path / "out"
    compress_splats(ply, out, FAST)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    splats["scales"][3, 1] = float("nan")
    write_ply(ply, splats)
    with pytest.raises(CompressError, match="scales has 1 non-finite"):
        compress_splats(ply, out, FAST)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ply", "out"]
    assert torch.isfinite(decompress(out)["scales"]).all()
