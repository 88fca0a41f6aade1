"""`splatbench diff` on a real temporary git + DVC repository with two commits.

main holds the baseline metrics; the `feature` branch improves PSNR, regresses SSIM and
training time beyond their thresholds, grows the size within its threshold and changes the stop
reason. The command runs as a subprocess in that repository, so exit codes are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from splatbench.report.config import RegressionRule, report_config_from_dict
from splatbench.report.diff import classify, judge

pytestmark = pytest.mark.integration

DVC_YAML = {
    "metrics": ["metrics/s1/eval.json", "metrics/s1/train.json"],
}
BASE_EVAL = {
    "scene": "s1",
    "convention": {"name": "3dgs"},
    "models": {
        "trained": {"psnr": 25.0, "ssim": 0.80, "lpips": None, "storage_bytes": 1_000_000,
                    "per_image": [{"name": "a.png", "psnr": 25.0}]},
    },
}  # fmt: skip
BASE_TRAIN = {"seconds": 100.0, "stop_reason": "max_steps", "num_gaussians": 5000}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _ok(args: list[str], cwd: Path) -> str:
    proc = _run(args, cwd)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _write_metrics(root: Path, eval_doc: dict, train_doc: dict) -> None:
    (root / "metrics/s1").mkdir(parents=True, exist_ok=True)
    (root / "metrics/s1/eval.json").write_text(json.dumps(eval_doc, indent=2))
    (root / "metrics/s1/train.json").write_text(json.dumps(train_doc, indent=2))


def _diff(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "splatbench.report.diff_cli", *args], root)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("diffrepo")
    _ok(["git", "init", "-q", "-b", "main"], root)
    _ok([str(Path(sys.executable).parent / "dvc"), "init", "-q"], root)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    _write_metrics(root, BASE_EVAL, BASE_TRAIN)
    _ok(["git", "add", "-A"], root)
    _ok(["git", "commit", "-qm", "baseline metrics"], root)

    _ok(["git", "checkout", "-q", "-b", "feature"], root)
    new_eval = json.loads(json.dumps(BASE_EVAL))
    trained = new_eval["models"]["trained"]
    trained.update(psnr=25.5, ssim=0.79, storage_bytes=1_020_000)  # +0.5 dB, -0.01, +2 %
    new_train = {**BASE_TRAIN, "seconds": 300.0, "stop_reason": "plateau"}
    _write_metrics(root, new_eval, new_train)
    _ok(["git", "add", "-A"], root)
    _ok(["git", "commit", "-qm", "feature: faster but worse"], root)
    return root


def test_markdown_table_flags_the_regressions(repo: Path) -> None:
    proc = _diff(repo, "main", "--md")
    assert proc.returncode == 0, proc.stderr  # without --fail-on-regression
    out = proc.stdout
    assert out.startswith("<!-- splatbench-metrics-diff -->")
    rows = {line.split(" | ")[1]: line for line in out.splitlines()
            if line.startswith("| metrics/")}  # fmt: skip
    assert "❌ regression" in rows["models.trained.ssim"]
    assert "-0.01" in rows["models.trained.ssim"]
    assert "✅ improved" in rows["models.trained.psnr"] and "+0.5" in rows["models.trained.psnr"]
    assert "within threshold" in rows["models.trained.storage_bytes"]
    assert "❌ regression" in rows["seconds"] and "+200.00%" in rows["seconds"]
    assert "changed" in rows["stop_reason"] and "plateau" in rows["stop_reason"]
    assert "2 regression(s) against main" in out
    assert "<details><summary>" in out and "num_gaussians" in out  # unchanged, folded away


def test_fail_on_regression_exit_codes(repo: Path) -> None:
    assert _diff(repo, "main", "--fail-on-regression").returncode == 1
    same = _diff(repo, "HEAD", "--fail-on-regression")
    assert same.returncode == 0, same.stderr
    assert "No regressions against HEAD" in same.stdout


def test_thresholds_come_from_params(repo: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"report": {"regression": {
        "ssim": {"metric": "models.*.ssim", "file": "*eval.json", "worse": "lower", "abs": 0.05},
    }}}))  # fmt: skip
    proc = _diff(repo, "main", "--fail-on-regression", "--params", str(params))
    assert proc.returncode == 0, proc.stdout  # SSIM -0.01 within 0.05; time has no rule now
    assert "No regressions against main" in proc.stdout


def test_uncommitted_workspace_change_is_compared(repo: Path) -> None:
    path = repo / "metrics/s1/eval.json"
    original = path.read_text()
    try:
        doc = json.loads(original)
        doc["models"]["trained"]["psnr"] = 24.0
        path.write_text(json.dumps(doc))
        proc = _diff(repo, "HEAD", "--fail-on-regression")
        assert proc.returncode == 1
        assert "models.trained.psnr" in proc.stdout and "regression" in proc.stdout
    finally:
        path.write_text(original)


def test_unknown_revision_is_a_user_error(repo: Path) -> None:
    proc = _diff(repo, "no-such-branch")
    assert proc.returncode == 2
    assert "no-such-branch" in proc.stderr and "fix:" in proc.stderr


def test_judge_rules() -> None:
    psnr = RegressionRule("psnr", "models.*.psnr", worse="lower", abs=0.1)
    size = RegressionRule("size", "x", worse="higher", abs=1000, rel=0.05)
    assert judge(25.0, 24.85, psnr) == "regression"
    assert judge(25.0, 24.95, psnr) == "within"
    assert judge(25.0, 25.2, psnr) == "improved"
    assert judge(100, 900, size) == "within"  # +800 % but below abs 1000: noise near zero
    assert judge(1_000_000, 1_100_000, size) == "regression"
    assert judge(None, 1.0, psnr) == "added" and judge(1.0, None, psnr) == "removed"
    assert judge("a", "b", None) == "changed" and judge(1, 1, psnr) == "unchanged"
    changes = classify(
        {"metrics/s1/eval.json": {"models.compressed.psnr": {"old": 30.0, "new": 29.0}},
         "metrics/s1/sfm.json": {"models.compressed.psnr": {"old": 30.0, "new": 29.0}}},
        report_config_from_dict(None).regression,
    )  # fmt: skip
    # The psnr rule applies to eval.json only.
    assert [c.status for c in changes] == ["regression", "changed"]
