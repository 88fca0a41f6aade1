"""`splatbench bench compress [--peers]`: every codec decoded and evaluated in one run, the
targets check, the outputs, the peer cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import splat_transform_fixture
from test_compress_roundtrip import make_splats
from typer.testing import CliRunner

from splatbench.bench import compress_peers
from splatbench.bench.compress_peers import (
    check_targets,
    format_table,
    run_compress_peers,
    write_outputs,
)
from splatbench.cli import app
from splatbench.gaussians.ply import write_ply

splat_transform = splat_transform_fixture.splat_transform
REPO = Path(__file__).resolve().parents[1]


def _row(name: str, kind: str, size: int, drop: float) -> dict:
    return {"name": name, "kind": kind, "bytes": size, "psnr_drop": drop}


def test_targets() -> None:
    rows = [
        _row("input", "input", 7_000_000, 0.0),
        _row("ours small", "ours", 300_000, 0.25),
        _row("ours default", "ours", 370_000, 0.12),
        _row("ours hq", "ours", 790_000, 0.02),
        _row("peer SPZ (splat-transform)", "peer", 590_000, 0.17),
        _row("peer PlayCanvas SOG (splat-transform -g cpu)", "peer", 1_100_000, 0.03),
    ]
    t = check_targets(rows)
    spz = t["peer SPZ (splat-transform)"]
    assert spz["met"] and spz["ours"] == "ours default" and spz["pareto_dominated"]
    sog = t["peer PlayCanvas SOG (splat-transform -g cpu)"]
    assert sog["met"] and sog["ours"] == "ours hq"
    # 1.5x smaller is required at SPZ's drop: 0.4 MB is not enough against 0.59 MB
    rows[2]["bytes"] = 400_000
    assert not check_targets(rows)["peer SPZ (splat-transform)"]["met"]


@pytest.fixture(scope="module")
def ply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "model.ply"
    splats = make_splats(900, seed=4)
    splats["opacities"] = splats["opacities"].abs() + 0.5
    write_ply(path, splats)
    return path


@pytest.mark.integration
def test_ours_without_peers_on_orbit_views(ply: Path, tmp_path: Path) -> None:
    report = run_compress_peers(ply, conf_dir=REPO / "conf", presets=("small", "hq"),
                                peers=False, orbit=2, orbit_size=(80, 60))  # fmt: skip
    names = [r["name"] for r in report["rows"]]
    assert names == ["input PLY", "ours codec, small", "ours codec, hq",
                     "ours PlayCanvas SOG export", "ours SPZ export"]  # fmt: skip
    assert not report["ground_truth"] and report["targets"] is None
    base, small, hq = report["rows"][:3]
    assert base["ratio"] == 1.0 and small["bytes"] < hq["bytes"] < base["bytes"]
    # fidelity: PSNR against renders of the input; the near-lossless preset is closer
    assert hq["quality"]["psnr"] > small["quality"]["psnr"] > 20
    assert all(r["encode_seconds"] > 0 for r in report["rows"][1:])
    files = write_outputs(report, tmp_path)
    assert [p.name for p in files] == ["peers.json", "peers.csv", "peers.md",
                                       "quality_vs_size.png"]  # fmt: skip
    assert "| ours codec, hq |" in (tmp_path / "peers.md").read_text()
    assert json.loads((tmp_path / "peers.json").read_text())["input"]["num_gaussians"] == 900
    assert "PSNR drop" not in format_table(report)  # no ground truth, no drops


@pytest.mark.integration
def test_peers_run_decode_and_cache(
    ply: Path, tmp_path: Path, splat_transform: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compress_peers, "_peer_cache_dir",
                        lambda sha, args: tmp_path / "cache" / "-".join(args))  # fmt: skip
    kwargs = {"conf_dir": REPO / "conf", "presets": ("default",), "orbit": 1,
              "orbit_size": (64, 48)}  # fmt: skip
    only_cache = run_compress_peers(ply, peers=True, peer_sog="cache", **kwargs)
    assert [r["name"] for r in only_cache["rows"] if r["kind"] == "peer"] == [
        "peer SPZ (splat-transform)"
    ]  # nothing cached yet: the SOG peer is left out
    first = run_compress_peers(ply, peers=True, peer_sog="run", **kwargs)
    peers = {r["name"]: r for r in first["rows"] if r["kind"] == "peer"}
    sog = peers["peer PlayCanvas SOG (splat-transform -g cpu)"]
    assert sog["num_gaussians"] == 900 and sog["quality"]["psnr"] > 20
    assert not sog["note"].startswith("cached")
    again = run_compress_peers(ply, peers=True, peer_sog="cache", **kwargs)
    cached = next(r for r in again["rows"] if r["name"] == sog["name"])
    assert cached["note"].startswith("cached") and cached["encode_seconds"] == sog["encode_seconds"]
    assert cached["bytes"] == sog["bytes"]
    skipped = run_compress_peers(ply, peers=True, peer_sog="skip", **kwargs)
    assert sog["name"] not in [r["name"] for r in skipped["rows"]]


def test_cli_errors_and_help(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["bench", "compress", "--help"])
    assert out.exit_code == 0 and "--peers" in out.output and "--peer-sog" in out.output
    out = runner.invoke(app, ["bench", "compress", str(tmp_path / "missing.ply")])
    assert out.exit_code == 2 and "no such PLY" in out.output
    out = runner.invoke(app, ["bench", "compress", str(tmp_path / "x.ply"), "--peer-sog", "x"])
    assert out.exit_code == 2
