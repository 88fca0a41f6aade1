"""The real pipeline under real DVC: `dvc repro` in a temporary copy of the project.

Covers: the matrix stages run and produce their outputs; a second `dvc repro` runs nothing;
hardware.yaml (what `auto` resolved to) re-runs train and evaluate when it changes, and results
recorded under other hardware leave `dvc status` clean;
`dvc exp run -S strategy...` re-composes params.yaml through Hydra without re-running SfM; an
SfM parameter invalidates SfM but not ingest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from project_copy import SMALL_SOURCE, copy_project

pytestmark = pytest.mark.integration

TRAIN_STEPS = 150


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Stages run `python ...`: it must be this interpreter (the project's venv).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def _dvc(*args: str, cwd: Path) -> str:
    proc = _run([str(Path(sys.executable).parent / "dvc"), *args], cwd)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    dst = copy_project(repo_root, tmp_path_factory.mktemp("project"), max_steps=TRAIN_STEPS)
    _run(["git", "init", "-q", "-b", "main"], dst)
    _run(["git", "add", "-A"], dst)
    _run(["git", "commit", "-qm", "project copy"], dst)
    return dst


@pytest.fixture(scope="module")
def first_repro(project: Path) -> str:
    return _dvc("repro", cwd=project)


def test_repro_builds_every_stage(project: Path, first_repro: str) -> None:
    assert "Running stage 'ingest@blocks'" in first_repro
    assert "Running stage 'sfm@blocks'" in first_repro
    assert "Running stage 'train@blocks'" in first_repro
    assert "Running stage 'export@blocks'" in first_repro
    assert "Running stage 'evaluate@blocks'" in first_repro
    assert "Running stage 'report'" in first_repro

    scene = project / "data" / "scenes" / "blocks"
    manifest = json.loads((scene / "manifest.json").read_text())
    images = [f for f in manifest["files"] if f["path"].startswith("images/")]
    assert len(images) == 24
    assert (scene / "ground_truth.json").is_file()

    sfm_dir = project / "data" / "sfm" / "blocks"
    model = sfm_dir / "sparse" / "0"
    assert {p.name for p in model.iterdir()} >= {"cameras.bin", "images.bin", "points3D.bin"}
    assert len(list((sfm_dir / "images").iterdir())) == 24
    split = json.loads((sfm_dir / "split.json").read_text())
    assert len(split["test"]) == 3 and len(split["train"]) == 21

    details = project / "metrics" / "blocks" / "details"
    metrics = json.loads((details / "sfm.json").read_text())
    assert metrics["registered_images"] == metrics["total_images"] == 24
    assert metrics["mean_reprojection_error_px"] < 1.0
    assert metrics["pose_accuracy"]["rotation_error_deg"]["max"] < 1.0
    ingest = json.loads((details / "ingest.json").read_text())
    assert ingest["images"] == 24

    train = json.loads((details / "train.json").read_text())
    assert train["steps"] == TRAIN_STEPS and train["stop_reason"] == "max_steps"
    assert train["train_views"] == 21
    assert (project / "data" / "splats" / "blocks" / "point_cloud.ply").stat().st_size > 0
    assert list((project / "dvclive" / "blocks" / "plots" / "metrics").rglob("*.tsv"))
    # A finished run leaves no checkpoints behind.
    assert not list((project / ".splatbench" / "checkpoints").rglob("*.pt"))

    evaluation = json.loads((details / "eval.json").read_text())
    trained = evaluation["models"]["trained"]
    assert len(trained["per_image"]) == 3  # the test views only
    assert trained["psnr"] > 10.0
    assert evaluation["convention"]["ssim"]["border"] == "zero"
    assert evaluation["lpips"]["available"] in (True, False)
    summary = (project / "reports" / "summary.md").read_text()
    assert "blocks" in summary
    assert (project / "reports" / "index.html").is_file()

    # The viewer formats: written, evaluated as models, listed in the report and its viewer.
    export = project / "data" / "compressed" / "blocks" / "export"
    assert sorted(p.name for p in export.iterdir()) == ["scene.sog", "scene.spz"]
    assert set(evaluation["models"]) == {"trained", "compressed", "playcanvas_sog", "spz"}
    assert evaluation["models"]["spz"]["storage_bytes"] == (export / "scene.spz").stat().st_size
    for model in ("playcanvas_sog", "spz"):
        assert f"| blocks | {model} |" in summary
    html = (project / "reports" / "index.html").read_text()
    assert 'src="viewer/index.html?model=blocks/spz"' in html
    assert (project / "reports" / "viewer" / "models" / "blocks" / "spz.js").is_file()


def test_dvc_metrics_are_the_headline_numbers(project: Path, first_repro: str) -> None:
    """DVC sees only the headline files (a few numbers per stage); the details are outputs."""
    shown = json.loads(_dvc("metrics", "show", "--json", cwd=project))
    files = shown[""]["data"]  # "": the workspace
    assert sorted(files) == [
        f"metrics/blocks/{stem}.json" for stem in ("compress", "eval", "export", "sfm", "train")
    ]
    data = {path: doc["data"] for path, doc in files.items()}
    assert data["metrics/blocks/train.json"] == {
        "gaussians": data["metrics/blocks/train.json"]["gaussians"],
        "steps": TRAIN_STEPS,
        "stop_reason": "max_steps",
        "seconds": data["metrics/blocks/train.json"]["seconds"],
    }
    assert data["metrics/blocks/sfm.json"]["registered_images"] == 24
    assert set(data["metrics/blocks/eval.json"]) == {"trained", "compressed"}
    assert set(data["metrics/blocks/eval.json"]["trained"]) == {"psnr", "ssim", "lpips"}
    assert data["metrics/blocks/export.json"]["spz_megabytes"] > 0
    leaves = sum(len(doc) if stem != "eval.json" else 6
                 for stem, doc in ((Path(p).name, d) for p, d in data.items()))  # fmt: skip
    assert leaves == 16
    # The headline is derived from the details record the report reads.
    details = json.loads((project / "metrics/blocks/details/eval.json").read_text())
    assert data["metrics/blocks/eval.json"]["trained"]["psnr"] == pytest.approx(
        details["models"]["trained"]["psnr"]
    )


def test_second_repro_runs_nothing(project: Path, first_repro: str) -> None:
    out = _dvc("repro", cwd=project)
    assert "Running stage" not in out, out
    assert "up to date" in _dvc("status", cwd=project)


def test_strategy_sweep_reruns_training_only(project: Path, first_repro: str) -> None:
    out = _dvc("exp", "run", "-S", "strategy.grow_grad2d=1e-4", cwd=project)
    assert "Running stage 'train@blocks'" in out, out
    assert "Running stage 'sfm@blocks'" not in out, out
    assert "Running stage 'ingest@blocks'" not in out, out
    # DVC composed conf/ with the override through Hydra into params.yaml.
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["strategy"]["grow_grad2d"] == pytest.approx(1e-4)
    assert params["benchmark"]["scene_settings"]["blocks"]["source"] == SMALL_SOURCE


def test_compress_sweep_reruns_only_compress_evaluate_report(
    project: Path, first_repro: str
) -> None:
    out = _dvc("exp", "run", "-S", "compress.shN_points_per_code=32", cwd=project)
    for stage in ("compress@blocks", "evaluate@blocks", "report"):
        assert f"Running stage '{stage}'" in out, out
    for stage in ("ingest@blocks", "sfm@blocks", "train@blocks"):
        assert f"Running stage '{stage}'" not in out, out
    compress = json.loads((project / "metrics/blocks/details/compress.json").read_text())
    assert compress["settings"]["shN_points_per_code"] == 32
    assert "Running stage 'export@blocks'" not in out, out
    evaluation = json.loads((project / "metrics/blocks/details/eval.json").read_text())
    assert set(evaluation["models"]) == {"trained", "compressed", "playcanvas_sog", "spz"}


def test_sfm_param_invalidates_only_sfm(project: Path, first_repro: str) -> None:
    params_file = project / "params.yaml"
    original = params_file.read_text()
    try:
        params = yaml.safe_load(original)
        params["sfm"]["max_num_features"] = 4096
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        status = _dvc("status", cwd=project)
        assert "sfm@blocks" in status
        assert "ingest@blocks" not in status
    finally:
        params_file.write_text(original)


def _other_hardware(text: str) -> tuple[str, str]:
    """hardware.yaml as the other kind of machine would write it, and that machine's name."""
    if "auto_backend: torch" in text:
        return text.replace("auto_backend: torch", "auto_backend: gsplat").replace(
            "device: cpu", "device: cuda"
        ), "gsplat on cuda"
    return text.replace("auto_backend: gsplat", "auto_backend: torch").replace(
        "device: cuda", "device: cpu"
    ), "torch on cpu"


def test_other_hardware_reruns_train_and_evaluate(project: Path, first_repro: str) -> None:
    """Running `splatbench hardware` on other hardware (a GPU box, from a CPU one) rewrites
    hardware.yaml (simulated here by writing what it would write there): DVC then sees train
    and evaluate as changed, nothing else; here the train stage refuses to record this
    machine's results as the other machine's."""
    hw = project / "hardware.yaml"
    original = hw.read_text()
    other, name = _other_hardware(original)
    try:
        hw.write_text(other)
        status = _dvc("status", cwd=project)
        assert "train@blocks" in status and "evaluate@blocks" in status, status
        for stage in ("ingest@blocks", "sfm@blocks", "compress@blocks", "report"):
            assert f"{stage}:" not in status, status
        python = str(Path(sys.executable))
        proc = subprocess.run(
            [python, "stages/train.py", "--scene", "blocks"],
            cwd=project, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert f"records backend `auto` = {name}" in proc.stderr
        assert "splatbench hardware" in proc.stderr
    finally:
        hw.write_text(original)
    assert "up to date" in _dvc("status", cwd=project)


def test_results_from_other_hardware_leave_status_clean(project: Path, first_repro: str) -> None:
    """Results fetched from another machine (a SageMaker experiment pulled with `dvc pull`)
    carry their hardware.yaml and dvc.lock: `dvc status` is clean and `dvc repro` runs nothing
    here. The other machine's run is simulated by recording this run's outputs under its
    hardware (`dvc commit`)."""
    hw, lock = project / "hardware.yaml", project / "dvc.lock"
    saved_hw, saved_lock = hw.read_text(), lock.read_text()
    other, name = _other_hardware(saved_hw)
    try:
        hw.write_text(other)
        _dvc("commit", "--force", cwd=project)
        assert f"device: {name.split()[-1]}" in lock.read_text()
        assert "up to date" in _dvc("status", cwd=project)
        out = _dvc("repro", cwd=project)
        assert "Running stage" not in out, out
    finally:
        hw.write_text(saved_hw)
        lock.write_text(saved_lock)
    assert "up to date" in _dvc("status", cwd=project)
