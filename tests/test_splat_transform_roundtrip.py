"""Our SOG and SPZ files read by the reference tool, and its files read by us.

``@playcanvas/splat-transform`` 3.7.0 (whose SPZ code is Niantic's library compiled to
WebAssembly) is installed from npm once (``splat_transform`` fixture, cached under the tools
directory like the SeaweedFS fixture's server); tests skip, saying why, only when npm cannot
install it. Each of our files is converted back to PLY by splat-transform, and every attribute
must equal our own decode of the same file (both read the same quantised values); a file the
tool rejects fails the test. The other direction: splat-transform writes SOG/SPZ and our readers
must decode them as it does.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import splat_transform_fixture
import torch
import zstandard
from test_compress_roundtrip import make_splats

from splatbench.bench.splat_transform import SplatTransformError, run_splat_transform
from splatbench.compress.playcanvas_sog import SogConfig, decode_sog, encode_sog, write_sog
from splatbench.compress.spz import STREAMS, SpzConfig, decode_spz, encode_spz
from splatbench.gaussians.ply import read_ply, write_ply

pytestmark = pytest.mark.integration
splat_transform = splat_transform_fixture.splat_transform


def _to_ply(cli: Path, src: Path, tmp: Path) -> dict[str, torch.Tensor]:
    """splat-transform SRC OUT.ply, read back (raises SplatTransformError if it rejects SRC)."""
    out = tmp / f"{src.name.replace('.', '_')}_by_splat_transform.ply"
    run_splat_transform(cli, [src, out])
    return {k: v.detach() for k, v in read_ply(out).items()}


def assert_same_decode(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> None:
    """Both readers decoded the same bits: equal up to float32 arithmetic."""
    assert theirs["means"].shape == ours["means"].shape, "different Gaussian counts"
    assert theirs["shN"].shape == ours["shN"].shape, "different SH degrees"
    for key in ("means", "scales", "quats", "sh0", "shN"):
        # quaternions: the recomputed component sqrt(1 - |rest|^2) magnifies float32 rounding
        atol = 2e-5 if key == "quats" else 2e-6
        np.testing.assert_allclose(
            theirs[key].numpy(), ours[key].numpy(), rtol=1e-5, atol=atol, err_msg=key
        )
    # opacity logits: compare as opacities (logit(1 - 1e-6) is sensitive to float rounding)
    np.testing.assert_allclose(
        torch.sigmoid(theirs["opacities"]).numpy(),
        torch.sigmoid(ours["opacities"]).numpy(),
        atol=1e-6,
    )


@pytest.mark.parametrize("version", [2, 3, 4])
@pytest.mark.parametrize("sh_degree", [3, 1])
def test_splat_transform_reads_our_spz(
    splat_transform: Path, tmp_path: Path, version: int, sh_degree: int
) -> None:
    splats = make_splats(700, sh_degree=sh_degree, seed=version)
    enc = encode_spz(splats, SpzConfig(version=version))
    path = tmp_path / "ours.spz"
    path.write_bytes(enc.data)
    assert_same_decode(_to_ply(splat_transform, path, tmp_path), decode_spz(enc.data))


@pytest.mark.parametrize("bundle", [True, False])
@pytest.mark.parametrize("sh_degree", [3, 2, 0])
def test_splat_transform_reads_our_sog(
    splat_transform: Path, tmp_path: Path, bundle: bool, sh_degree: int
) -> None:
    splats = make_splats(900, sh_degree=sh_degree)
    enc = encode_sog(splats, SogConfig(shN_points_per_code=3))
    target = tmp_path / ("ours.sog" if bundle else "ours_sog")
    write_sog(enc, target, bundle=bundle)
    src = target if bundle else target / "meta.json"
    assert_same_decode(_to_ply(splat_transform, src, tmp_path), decode_sog(src))


def _ngsp_streams(data: bytes) -> list[bytes]:
    """The decompressed attribute streams of a version 4 SPZ file."""
    count, toc = struct.unpack_from("<BI", data, 15)
    offset, out = toc + 16 * count, []
    for i in range(count):
        size, raw = struct.unpack_from("<QQ", data, toc + 16 * i)
        out.append(zstandard.ZstdDecompressor().decompress(data[offset : offset + size], raw))
        offset += size
    return out


def test_our_spz_packing_equals_the_reference_library(
    splat_transform: Path, tmp_path: Path
) -> None:
    """Same Gaussians, same order: every attribute byte as Niantic's packer (WebAssembly)."""
    splats = make_splats(1200)
    ply = tmp_path / "in.ply"
    write_ply(ply, splats)
    run_splat_transform(splat_transform, [ply, tmp_path / "theirs.spz"])
    theirs = (tmp_path / "theirs.spz").read_bytes()
    ours = encode_spz(splats, SpzConfig(version=4, sort="none")).data
    assert theirs[:32] == ours[:32]  # header: magic, version, count, degree, 12 fraction bits
    for name, a, b in zip(STREAMS, _ngsp_streams(theirs), _ngsp_streams(ours), strict=True):
        assert a == b, f"{name} stream differs"
    # version 3: one gzip stream with the same payload
    run_splat_transform(splat_transform, ["--spz-version", "3", ply, tmp_path / "theirs3.spz"])
    ours3 = encode_spz(splats, SpzConfig(version=3, sort="none")).data
    assert gzip.decompress((tmp_path / "theirs3.spz").read_bytes()) == gzip.decompress(ours3)


def test_we_read_their_spz(splat_transform: Path, tmp_path: Path) -> None:
    ply = tmp_path / "in.ply"
    write_ply(ply, make_splats(600, sh_degree=2))
    run_splat_transform(splat_transform, [ply, tmp_path / "theirs.spz"])
    theirs = tmp_path / "theirs.spz"
    assert_same_decode(_to_ply(splat_transform, theirs, tmp_path), decode_spz(theirs.read_bytes()))


def test_we_read_their_sog(splat_transform: Path, tmp_path: Path) -> None:
    """splat-transform's own SOG (k-means on the CPU: a few seconds at 1500 Gaussians)."""
    ply = tmp_path / "in.ply"
    write_ply(ply, make_splats(1500))
    run_splat_transform(splat_transform, ["-g", "cpu", ply, tmp_path / "theirs.sog"], timeout=900)
    theirs = tmp_path / "theirs.sog"
    assert_same_decode(_to_ply(splat_transform, theirs, tmp_path), decode_sog(theirs))


def test_a_file_the_reader_rejects_fails(splat_transform: Path, tmp_path: Path) -> None:
    data = encode_spz(make_splats(300), SpzConfig(version=3)).data
    bad = tmp_path / "truncated.spz"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(SplatTransformError, match=r"truncated\.spz"):
        _to_ply(splat_transform, bad, tmp_path)
