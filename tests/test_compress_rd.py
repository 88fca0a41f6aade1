"""The codec's rate-distortion knobs: per-degree SH codebooks (format version 2), opacity-
weighted k-means, pruning, SH degree cap; version 1 files still decode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_compress_roundtrip import FAST, make_splats

from splatbench.compress import (
    CompressConfig,
    CorruptModelError,
    compress_splats,
    decode_dir,
    encode_splats,
    kmeans,
    write_encoded,
)
from splatbench.compress.codec import _relabel_by_position, reduce_model
from splatbench.gaussians.ply import write_ply


def _roundtrip(splats, tmp_path: Path, **settings):
    enc = encode_splats(splats, CompressConfig.from_dict({**FAST, **settings}))
    write_encoded(enc, tmp_path)
    return enc, decode_dir(tmp_path)


def test_per_degree_codebooks_are_version_2(tmp_path: Path) -> None:
    splats = make_splats(400)
    enc, dec = _roundtrip(splats, tmp_path, shN_bands="degree", shN_points_per_code=8)
    shn = enc.meta["shN"]
    assert enc.meta["version"] == 2 and shn["bands"] == "degree"
    assert [g["coeffs"] for g in shn["groups"]] == [[0, 3], [3, 8], [8, 15]]
    assert {f for f in enc.files if f.startswith("shN")} == {
        "shN1_labels.png",
        "shN1_codebook.png",
        "shN2_labels.png",
        "shN2_codebook.png",
        "shN3_labels.png",
        "shN3_codebook.png",
    }
    assert dec["shN"].shape == (400, 15, 3)
    # each degree's coefficients are one of its codebook's 50 entries
    for group in shn["groups"]:
        lo, hi = group["coeffs"]
        rows = {tuple(r) for r in dec["shN"][:, lo:hi].reshape(400, -1).numpy().round(6)}
        assert len(rows) <= group["codebook_size"] == 50
    # more codes per degree than one joint codebook: lower error at the same entry count
    _, joint = _roundtrip(splats, tmp_path / "j", shN_points_per_code=8)
    o = enc.order
    err_deg = (dec["shN"] - splats["shN"][o]).pow(2).mean()
    err_joint = (
        (
            joint["shN"]
            - splats["shN"][
                encode_splats(
                    splats, CompressConfig.from_dict({**FAST, "shN_points_per_code": 8})
                ).order
            ]
        )
        .pow(2)
        .mean()
    )
    assert err_deg < err_joint


def test_joint_files_stay_version_1_and_decode(tmp_path: Path) -> None:
    enc, dec = _roundtrip(make_splats(200), tmp_path)
    assert enc.meta["version"] == 1 and "groups" not in enc.meta["shN"]
    assert dec["shN"].shape == (200, 15, 3)


def test_version_2_damage_is_detected(tmp_path: Path) -> None:
    _roundtrip(make_splats(200), tmp_path, shN_bands="degree")
    (tmp_path / "shN2_codebook.png").unlink()
    with pytest.raises(CorruptModelError, match=r"shN2_codebook\.png"):
        decode_dir(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "version": 3}))
    with pytest.raises(CorruptModelError, match="versions \\[1, 2\\]"):
        decode_dir(tmp_path)


def test_weighted_kmeans_centroids_are_weighted_means() -> None:
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    w = torch.tensor([3.0, 1.0, 1.0, 0.0])
    km = kmeans(x, 2, iters=10, weights=w, seed=0)
    cents = sorted(km.centroids[:, 0].tolist())
    assert cents == pytest.approx([0.25, 10.0])  # (0*3 + 1*1) / 4, and 10 (11 weighs 0)
    with pytest.raises(ValueError, match="l2"):
        kmeans(x, 2, weights=w, metric="l1")
    with pytest.raises(ValueError, match="non-negative"):
        kmeans(x, 2, weights=-w)


def test_opacity_weighting_favours_opaque_gaussians(tmp_path: Path) -> None:
    splats = make_splats(600, seed=2)
    opac = torch.sigmoid(splats["opacities"])
    errs = {}
    for weighting in ("none", "opacity"):
        enc, dec = _roundtrip(
            splats, tmp_path / weighting, shN_weighting=weighting, shN_points_per_code=20
        )
        err = (dec["shN"] - splats["shN"][enc.order]).pow(2).mean((1, 2))
        w = opac[enc.order]
        errs[weighting] = float((err * w).sum() / w.sum())
    assert errs["opacity"] < errs["none"]  # opacity-weighted error goes down


def test_pruning_and_degree_cap(tmp_path: Path) -> None:
    splats = make_splats(500)
    keep = torch.sigmoid(splats["opacities"]) >= 0.2
    enc, dec = _roundtrip(splats, tmp_path, prune_opacity=0.2, max_sh_degree=1)
    assert enc.meta["num_gaussians"] == int(keep.sum()) < 500
    assert enc.meta["encoder"]["pruned"] == {"input_gaussians": 500, "removed": int((~keep).sum())}
    assert enc.meta["sh_degree"] == 1 and dec["shN"].shape[1] == 3
    # order indexes the input: every kept Gaussian decodes near its own position
    assert bool(keep[enc.order].all())
    assert (dec["means"] - splats["means"][enc.order]).abs().max() < 1e-2
    _, kept, degree = reduce_model(splats, 0.0, -1)
    assert torch.equal(kept, torch.arange(500)) and degree == 3


def test_compress_metrics_report_pruning(tmp_path: Path) -> None:
    ply = tmp_path / "in.ply"
    write_ply(ply, make_splats(300))
    m = compress_splats(
        ply, tmp_path / "out", {**FAST, "prune_opacity": 0.3, "shN_bands": "degree"}
    )
    assert m["input_gaussians"] == 300 and m["pruned_gaussians"] == 300 - m["num_gaussians"] > 0
    assert len(m["shN_codebook_sizes"]) == 3 and m["shN_codebook_size"] == sum(
        m["shN_codebook_sizes"]
    )
    assert m["max_abs_error"]["means"] < 1e-3


def test_relabel_keeps_the_decode() -> None:
    g = torch.Generator().manual_seed(0)
    cents = torch.randn(10, 4, generator=g)
    labels = torch.randint(0, 10, (100,), generator=g)
    new_c, new_l = _relabel_by_position(cents, labels)
    assert torch.equal(new_c[new_l], cents[labels])
    firsts = [int(np.nonzero(new_l.numpy() == k)[0].mean()) for k in torch.unique(new_l).tolist()]
    assert firsts == sorted(firsts)  # entries numbered by the mean cell of their users
