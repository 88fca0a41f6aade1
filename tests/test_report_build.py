"""The report stage on a constructed project: one fully evaluated scene (real evaluate run on a
tiny scene), one with SfM and training only, one listed scene with no metrics at all."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_train_support import ground_truth_splats, write_sfm_scene

from splatbench.errors import ConfigError
from splatbench.evaluate import EvalConfig, ModelInput, evaluate_scene
from splatbench.fsutil import atomic_write_json
from splatbench.gaussians import write_ply
from splatbench.metrics import convention_from_config
from splatbench.report import (
    ReportError,
    ReportInputs,
    build_report,
    collect_metrics,
    read_curve_file,
    read_curves,
    report_config_from_dict,
)
from splatbench.report.reference import comparability

REPO_ROOT = Path(__file__).resolve().parents[1]

TRAIN_S1 = {
    "dataset": "mipnerf360", "scene": "s1", "steps": 3000, "max_steps": 30000,
    "stop_reason": "plateau", "seconds": 1800.0, "num_gaussians": 150, "device": "cuda",
    "warnings": ["densification never fired: 0 splits, 0 clones"],
}  # fmt: skip
TRAIN_S2 = {"dataset": "mipnerf360", "steps": 500, "stop_reason": "max_steps", "seconds": 60.0,
            "num_gaussians": 4000, "warnings": []}  # fmt: skip
SFM = {"dataset": "mipnerf360", "registered_images": 17, "total_images": 17,
       "mean_reprojection_error_px": 0.42, "seconds": {"total": 3600.0}}  # fmt: skip


def write_dvclive(live: Path) -> None:
    """Curves as DVCLive writes them, plus files a tolerant reader must survive."""
    m = live / "plots" / "metrics"
    (m / "train").mkdir(parents=True)
    (m / "train" / "psnr.tsv").write_text(
        "timestamp\tstep\tpsnr\n1700000000\t100\t18.5\n1700000001\t200\t21.0\n"
        "1700000002\t300\tnan\n\n1700000003\t300\t22.5\n"
    )
    (m / "train" / "loss.tsv").write_text("step\tloss\n100\t0.3\n200\t0.2\nbroken line\n")
    (m / "train" / "empty.tsv").write_text("")
    (m / "val").mkdir()
    (m / "val" / "psnr.csv").write_text("value\n20.0\n21.5\n")  # no step column, CSV


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reportproj")
    write_sfm_scene(root / "data/sfm/s1", n_views=17)
    # Slightly off the ground-truth model: under the 3dgs convention (8-bit renders) an exact
    # model reproduces the 8-bit ground truth and its PSNR is infinite (null).
    trained = ground_truth_splats()
    trained["sh0"].data.add_(0.02)
    write_ply(root / "data/splats/s1/point_cloud.ply", trained)
    comp = root / "data/compressed/s1"
    splats = ground_truth_splats()
    splats["sh0"].data.add_(0.1)
    write_ply(comp / "point_cloud.ply", splats)
    (comp / "attributes.bin").write_bytes(b"\0" * 500)
    doc = evaluate_scene(
        root / "data/sfm/s1",
        [ModelInput("trained", root / "data/splats/s1/point_cloud.ply"),
         ModelInput("compressed", comp / "point_cloud.ply", storage_dir=comp)],
        EvalConfig(comparison_images=2, render_backend="torch"),
        convention_from_config({"preset": "3dgs"}),
        comparisons_dir=root / "data/eval/s1",
    )  # fmt: skip
    m = root / "metrics"
    atomic_write_json(m / "s1/details/eval.json", {"scene": "s1", "dataset": "mipnerf360", **doc})
    atomic_write_json(m / "s1/details/train.json", TRAIN_S1)
    atomic_write_json(m / "s1/details/sfm.json", SFM)
    atomic_write_json(m / "s1/details/ingest.json", {"dataset": "mipnerf360", "seconds": 12.0})
    atomic_write_json(
        m / "s1/details/compress.json",
        {"dataset": "mipnerf360", "encode_seconds": 850.0, "decode_seconds": 50.0, "bytes": 500},
    )
    atomic_write_json(m / "s2/details/train.json", TRAIN_S2)
    atomic_write_json(
        m / "s2/details/sfm.json", {**SFM, "registered_images": 15, "total_images": 17}
    )
    write_dvclive(root / "dvclive/s1")
    (root / "dvclive/s2/plots/metrics/train").mkdir(parents=True)
    (root / "dvclive/s2/plots/metrics/train/psnr.tsv").write_text("step\tpsnr\n50\t15\n100\t17\n")
    (root / "reports").mkdir()
    (root / "reports/README.md").write_text("tracked by git; the report must leave it alone\n")
    return root


@pytest.fixture(scope="module")
def report(project: Path):
    inputs = ReportInputs(
        metrics_dir=project / "metrics",
        scenes=["s1", "s2", "s3"],
        title="test report",
        dataset="mipnerf360",
        reference_dir=REPO_ROOT / "benchmarks/reference",
        eval_dir=project / "data/eval",
        root=project,
    )
    return build_report(inputs, report_config_from_dict(None), project / "reports")


def test_summary_rows_and_means(project: Path, report) -> None:
    df = pd.read_csv(project / "reports/summary.csv")
    keys = list(zip(df["scene"], df["model"], strict=True))
    assert keys == [("s1", "trained"), ("s1", "compressed"), ("s2", "trained"),
                    ("s3", "trained"), ("mean", "trained"), ("mean", "compressed")]  # fmt: skip
    ev = json.loads((project / "metrics/s1/details/eval.json").read_text())
    s1 = df[(df.scene == "s1") & (df.model == "trained")].iloc[0]
    assert s1["psnr"] == pytest.approx(ev["models"]["trained"]["psnr"], rel=1e-5)
    assert s1["stop_reason"] == "plateau" and s1["train_warnings"] == 1
    assert s1["sfm_registered"] == "17/17" and s1["eval_ssim_border"] == "zero"
    comp = df[(df.scene == "s1") & (df.model == "compressed")].iloc[0]
    assert comp["size_mb"] == pytest.approx(500 / 1e6)
    assert comp["psnr"] < s1["psnr"]
    s2 = df[df.scene == "s2"].iloc[0]
    assert pd.isna(s2["psnr"]) and s2["num_gaussians"] == 4000 and s2["sfm_registered"] == "15/17"
    mean = df[(df.scene == "mean") & (df.model == "trained")].iloc[0]
    assert mean["n_scenes"] == 1  # only s1 has a PSNR: the mean says so
    assert mean["train_seconds"] == pytest.approx((1800 + 60) / 2)
    assert (project / "reports/README.md").read_text().startswith("tracked by git")


def test_markdown_states_convention_and_reference(project: Path) -> None:
    md = (project / "reports/summary.md").read_text()
    assert "PSNR dB (3dgs)" in md
    assert "border 'zero'" in md
    assert "Published reference numbers (mipnerf360)" in md
    lines = md.splitlines()
    row_3dgs = next(ln for ln in lines if ln.startswith("| 3DGS | 9 | 30,000"))
    assert "| yes |" in row_3dgs
    row_gsplat = next(ln for ln in lines if ln.startswith("| gsplat | 7"))
    assert "no: ssim_border reflect vs ours zero" in row_gsplat
    assert "never fired" in md  # training warnings surface
    assert "s3: no metrics files yet" in md
    assert "![" in md and "plots/quality_vs_size.png" in md


def test_costs(report) -> None:
    costs = report.costs
    train = costs[(costs.scene == "s1") & (costs.stage == "train")].iloc[0]
    assert train["instance"] == "ml.g4dn.xlarge"
    assert train["cost"] == pytest.approx(0.5 * 0.736)
    sfm = costs[(costs.scene == "s1") & (costs.stage == "sfm")].iloc[0]
    assert sfm["cost"] == pytest.approx(0.34)  # 1 h on ml.c6i.2xlarge
    total = costs[costs.stage == "total"].iloc[0]
    assert total["cost"] == pytest.approx(costs[costs.scene != "all scenes"]["cost"].sum())


def test_plots_and_images_written(project: Path, report) -> None:
    for rel in ("plots/training_curves.png", "plots/quality_vs_size.png"):
        assert (project / "reports" / rel).stat().st_size > 5000
    images = sorted((project / "reports/images/s1").rglob("*.png"))
    assert len(images) == 4  # 2 views x 2 models
    # The tolerant reader skipped the empty file and said so.
    assert any("empty.tsv" in w for w in report.warnings)


def test_curve_reader_tolerates_variants(project: Path) -> None:
    curves = read_curves(project / "dvclive/s1")
    assert set(curves.curves) == {"train/psnr", "train/loss", "val/psnr"}
    psnr = curves.curves["train/psnr"]
    assert psnr["step"].tolist() == [100, 200, 300] and psnr["value"].tolist()[-1] == 22.5
    assert curves.curves["train/loss"]["value"].tolist() == [0.3, 0.2]
    assert curves.curves["val/psnr"]["step"].tolist() == [0, 1]
    assert read_curves(project / "nope").curves == {}
    headerless = project / "headerless.tsv"
    headerless.write_text("1\t0.5\n2\t0.25\n")
    assert read_curve_file(headerless, "x")["value"].tolist() == [0.5, 0.25]


def test_comparability_flags() -> None:
    ours = {"name": "3dgs", "ssim_border": "zero", "lpips_net": "vgg", "lpips_input_range": "0_1"}
    assert comparability({"ssim_border": "zero", "lpips_net": "vgg",
                          "lpips_input_range": "0_1"}, ours) == "yes"  # fmt: skip
    assert comparability({"ssim_border": "valid", "lpips_net": "vgg",
                          "lpips_input_range": "-1_1"}, ours).startswith("no: ")  # fmt: skip
    assert comparability(None, ours).startswith("unknown")
    assert comparability({"ssim_border": "zero"}, None).startswith("unknown")


def test_corrupt_metrics_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "x/details").mkdir(parents=True)
    (tmp_path / "x/details/eval.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"details/eval\.json"):
        collect_metrics(tmp_path)


def test_report_config_validation() -> None:
    with pytest.raises(ConfigError, match="instance_price"):
        report_config_from_dict({"instance_price": {}})
    with pytest.raises(ConfigError, match="without a price"):
        report_config_from_dict({"stage_instances": {"train": "ml.p5.48xlarge"}})
    with pytest.raises(ConfigError, match="worse"):
        report_config_from_dict({"regression": {"p": {"metric": "psnr", "worse": "up",
                                                      "abs": 1}}})  # fmt: skip
    cfg = report_config_from_dict(yaml.safe_load(REPORT_CONF))
    assert cfg.stage_instances["train"] == "ml.g4dn.xlarge"
    assert {r.name for r in cfg.regression} >= {"psnr", "ssim", "lpips", "size"}
    # The proposed conf file and the built-in defaults (used without params.yaml) agree.
    assert cfg == report_config_from_dict(None)


#: The committed report config; it must agree with the built-in defaults.
REPORT_CONF_PATH = REPO_ROOT / "conf/report/default.yaml"
REPORT_CONF = REPORT_CONF_PATH.read_text()


def test_stage_runs_from_params(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["benchmark"].update(
        name="mini", dataset="mipnerf360", scenes=["s1", "s2"],
        scene_settings={"s1": {"source": "x"}, "s2": {"source": "x"}},
    )  # fmt: skip
    params["report"] = yaml.safe_load(REPORT_CONF)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(project)
    spec = importlib.util.spec_from_file_location("stage_report", REPO_ROOT / "stages/report.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    # The stage reads benchmarks/reference relative to the project root.
    (project / "benchmarks").mkdir(exist_ok=True)
    if not (project / "benchmarks/reference").exists():
        (project / "benchmarks/reference").symlink_to(REPO_ROOT / "benchmarks/reference")
    module.main(["--out", "reports_stage"])
    html = (project / "reports_stage/index.html").read_text()
    assert "splatbench report: mini" in html and "s3" not in html.split("Scenes:")[1][:20]


def _chromium() -> str:
    """The chromium binary; installs the Debian packages when missing (skips only when apt
    cannot install them)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    log = ""
    if shutil.which("apt-get"):
        for cmd in (["apt-get", "install", "-y", "chromium", "chromium-driver"],
                    ["apt-get", "update"],
                    ["apt-get", "install", "-y", "chromium", "chromium-driver"]):  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
            log = (proc.stdout + proc.stderr)[-400:]
            exe = shutil.which("chromium")
            if exe:
                return exe
    pytest.skip(f"chromium is not installed and apt-get could not install it: {log}")


def _headless(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_index_html_in_headless_chromium(project: Path, report, tmp_path: Path) -> None:
    exe = _chromium()
    page = (project / "reports/index.html").resolve()
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing fetched from a network
    proc = _headless(exe, tmp_path / "profile", "--dump-dom", page.as_uri())
    dom = proc.stdout
    assert "<table" in dom, proc.stderr[-2000:]
    check = re.search(r'id="selfcheck"[^>]*data-images="(\d+)"[^>]*data-broken="(\d+)"', dom)
    assert check, "the page's load-time self check did not run"
    images, broken = int(check.group(1)), int(check.group(2))
    assert broken == 0, re.search(r'id="selfcheck"[^>]*>([^<]*)', dom).group(1)
    assert images == 2 + 4  # two plots, 2 comparison views x 2 models
    ev = json.loads((project / "metrics/s1/details/eval.json").read_text())
    assert f"{ev['models']['trained']['psnr']:.2f}" in dom
    for scene in ("s1", "s2", "s3"):
        assert f"<td>{scene}</td>" in dom
    assert "PSNR dB (3dgs)" in dom

    shot = tmp_path / "page.png"
    _headless(exe, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1200,1600",
              page.as_uri())  # fmt: skip
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.std() > 10  # not a blank page


def test_compressed_row_from_compress_json_alone(tmp_path: Path) -> None:
    """Before the evaluate stage has run, the compressed row shows compress.json's size."""
    doc = {"bytes": 2_000_000, "num_gaussians": 10, "encode_seconds": 3.0, "decode_seconds": 1.0}
    atomic_write_json(tmp_path / "s/details/compress.json", doc)
    [sm] = collect_metrics(tmp_path)
    from splatbench.report import stage_seconds, summary_frame

    df = summary_frame([sm])
    row = df[(df.scene == "s") & (df.model == "compressed")].iloc[0]
    assert row["size_mb"] == 2.0 and row["num_gaussians"] == 10
    assert stage_seconds(sm.stages["compress"]) == 4.0
