"""Headline metrics vs details records (splatbench.stage_metrics), and the committed demo files."""

from __future__ import annotations

import json
from pathlib import Path

from splatbench.stage_metrics import (
    HEADLINES,
    details_path,
    eval_headline,
    export_headline,
    headline_path,
    write_stage_metrics,
)

# The contract (shared with the sweep report): each headline file's keys.
CONTRACT = {
    "sfm": {"registered_images", "reprojection_error_px"},
    "train": {"gaussians", "steps", "stop_reason", "seconds"},
    "compress": {"megabytes", "ratio"},
    "export": {"sog_megabytes", "spz_megabytes"},
    "eval": {"trained", "compressed"},
}


def test_write_stage_metrics_writes_details_and_headline(tmp_path: Path) -> None:
    record = {"scene": "s", "num_gaussians": 12, "steps": 30, "stop_reason": "plateau",
              "seconds": 1.23456, "train_psnr": 31.0, "warnings": ["w"]}  # fmt: skip
    headline = write_stage_metrics("s", "train", record, tmp_path)
    assert headline == {"gaussians": 12, "steps": 30, "stop_reason": "plateau", "seconds": 1.235}
    assert json.loads(headline_path(tmp_path, "s", "train").read_text()) == headline
    assert json.loads(details_path(tmp_path, "s", "train").read_text()) == record


def test_ingest_has_details_only(tmp_path: Path) -> None:
    assert write_stage_metrics("s", "ingest", {"images": 3}, tmp_path) is None
    assert details_path(tmp_path, "s", "ingest").is_file()
    assert not headline_path(tmp_path, "s", "ingest").exists()


def test_eval_headline_is_test_quality_of_trained_and_compressed() -> None:
    details = {"models": {
        "trained": {"psnr": 25.0, "ssim": 0.8, "lpips": None, "per_image": [{"psnr": 1}]},
        "spz": {"psnr": 24.0, "ssim": 0.7, "lpips": 0.2},
    }}  # fmt: skip
    assert eval_headline(details) == {
        "trained": {"psnr": 25.0, "ssim": 0.8, "lpips": None},
        "compressed": {"psnr": None, "ssim": None, "lpips": None},  # not evaluated
    }


def test_export_headline_nulls_a_format_left_out() -> None:
    details = {"formats": {"spz": {"megabytes": 0.5, "bytes": 500000}}}
    assert export_headline(details) == {"sog_megabytes": None, "spz_megabytes": 0.5}


def test_committed_metrics_follow_the_layout(repo_root: Path) -> None:
    """The repository's metrics/: headline files with exactly the contract's keys, derived
    from the details record beside them."""
    scenes = [p for p in (repo_root / "metrics").iterdir() if p.is_dir()]
    assert scenes
    for scene in scenes:
        assert not (scene / "ingest.json").exists()
        assert (scene / "details" / "ingest.json").is_file()
        for stem, keys in CONTRACT.items():
            headline = json.loads((scene / f"{stem}.json").read_text())
            assert set(headline) == keys, (scene.name, stem)
            details = json.loads((scene / "details" / f"{stem}.json").read_text())
            assert HEADLINES[stem](details) == headline, (scene.name, stem)
