"""benchmarks/gpu/validate.sh's Python steps, run here with the CPU backend (no GPU on this
machine: the script itself runs gsplat on CUDA; see its header)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_support import write_sfm_scene

from splatbench.render import gsplat_unavailable_reason

REPO = Path(__file__).resolve().parents[1]
STEPS = REPO / "benchmarks" / "gpu" / "validate.py"

pytestmark = pytest.mark.integration


def _step(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(STEPS), *args], capture_output=True, text=True,
                          timeout=900, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_scripts_are_valid_bash() -> None:
    for script in ("benchmarks/gpu/validate.sh", "benchmarks/lpips/run_check.sh"):
        proc = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_train_rerun_compare_and_summary_on_cpu(tmp_path: Path) -> None:
    sfm = write_sfm_scene(tmp_path / "sfm" / "toy", n_views=9)
    out = tmp_path / "out"
    out.mkdir()
    for name in ("train_default", "train_default_rerun"):
        json_out, pt_out = str(out / f"{name}.json"), str(out / f"{name}.pt")
        _step("train", "--sfm", str(sfm), "--backend", "torch", "--steps", "20",
              "--out", json_out, "--params-out", pt_out)  # fmt: skip
    _step("train", "--sfm", str(sfm), "--backend", "torch", "--strategy", "mcmc", "--steps",
          "20", "--out", str(out / "train_mcmc.json"))  # fmt: skip
    a, b = out / "train_default", out / "train_default_rerun"
    _step("compare", f"{a}.pt", f"{b}.pt", "--json-a", f"{a}.json", "--json-b", f"{b}.json",
          "--out", str(out / "spread_rerun.json"))  # fmt: skip
    run = json.loads((out / "train_default.json").read_text())
    assert run["steps"] == 20 and run["backend"] == "torch" and run["its_per_second"] > 0
    assert run["deterministic"]["bitwise"] is True
    assert json.loads((out / "train_mcmc.json").read_text())["strategy"] == "mcmc"
    spread = json.loads((out / "spread_rerun.json").read_text())
    # The CPU backend is bit-reproducible: the spread validate.sh measures for gsplat is 0 here.
    assert spread["bit_identical"] is True and max(spread["max_abs_diff"].values()) == 0.0
    assert spread["psnr_diff"] == 0.0

    _step("probe", "--out", str(out / "probe.json"), "--allow-cpu")
    probe = json.loads((out / "probe.json").read_text())
    assert probe["gsplat_usable"] is (gsplat_unavailable_reason() is None)
    assert probe["hardware"]["device"] == ("cuda" if probe["gsplat_usable"] else "cpu")

    proc = subprocess.run([sys.executable, str(STEPS), "summary", str(out), "--out",
                           str(out / "summary.json")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1  # steps that need a GPU are missing, and it says which
    summary = json.loads((out / "summary.json").read_text())
    assert "parity" in summary["missing"] and "itps" in summary["missing"]
    assert summary["figures"]["spread_rerun_max_abs_param_diff"] == 0.0


def test_itps_step_with_the_cpu_backend(tmp_path: Path) -> None:
    _step("itps", "--backends", "torch", "--iters", "1", "--out", str(tmp_path / "itps.json"))
    doc = json.loads((tmp_path / "itps.json").read_text())
    assert {r["name"] for r in doc["results"]} == {"20k@160x120", "200k@640x480"}
    assert all(r["its_per_s"] > 0 and r["device"] == "cpu" for r in doc["results"])
    assert doc["gsplat_speedup"] == {}  # no gsplat row on a CPU machine
