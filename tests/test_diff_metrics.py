"""`splatbench diff` on a real temporary git + DVC repository with two commits.

main holds the baseline headline metrics; the `feature` branch improves PSNR, regresses SSIM
and training time beyond their thresholds, grows the size within its threshold, changes the
stop reason and records a training warning in details/train.json. The command runs as a
subprocess in that repository, so exit codes are the real ones.
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
    "metrics": ["metrics/s1/eval.json", "metrics/s1/train.json", "metrics/s1/compress.json"],
}
# Headline files (splatbench.stage_metrics): only these are DVC metrics.
BASE_EVAL = {
    "trained": {"psnr": 25.0, "ssim": 0.80, "lpips": None},
    "compressed": {"psnr": 24.5, "ssim": 0.78, "lpips": None},
}
BASE_TRAIN = {"gaussians": 5000, "steps": 3000, "stop_reason": "max_steps", "seconds": 100.0}
BASE_COMPRESS = {"megabytes": 1.0, "ratio": 10.0}
# The feature branch's training record: its warnings appear in the diff; its train PSNR
# dropped a lot, which is not a regression (train views measure fit, not quality).
FEATURE_DETAILS_TRAIN = {
    "train_psnr": 20.0,
    "warnings": ["early stop at step 1200 fired before densification finished (step 1500)"],
}


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


def _write_metrics(root: Path, eval_doc: dict, train_doc: dict, compress_doc: dict) -> None:
    (root / "metrics/s1").mkdir(parents=True, exist_ok=True)
    (root / "metrics/s1/eval.json").write_text(json.dumps(eval_doc, indent=2))
    (root / "metrics/s1/train.json").write_text(json.dumps(train_doc, indent=2))
    (root / "metrics/s1/compress.json").write_text(json.dumps(compress_doc, indent=2))


def _diff(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "splatbench.report.diff_cli", *args], root)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("diffrepo")
    _ok(["git", "init", "-q", "-b", "main"], root)
    _ok([str(Path(sys.executable).parent / "dvc"), "init", "-q"], root)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    _write_metrics(root, BASE_EVAL, BASE_TRAIN, BASE_COMPRESS)
    _ok(["git", "add", "-A"], root)
    _ok(["git", "commit", "-qm", "baseline metrics"], root)

    _ok(["git", "checkout", "-q", "-b", "feature"], root)
    new_eval = json.loads(json.dumps(BASE_EVAL))
    new_eval["trained"].update(psnr=25.5, ssim=0.79)  # +0.5 dB, -0.01
    new_train = {**BASE_TRAIN, "seconds": 300.0, "stop_reason": "plateau", "steps": 1200}
    _write_metrics(root, new_eval, new_train, {"megabytes": 1.02, "ratio": 9.8})  # +2 %
    (root / "metrics/s1/details").mkdir()
    (root / "metrics/s1/details/train.json").write_text(json.dumps(FEATURE_DETAILS_TRAIN))
    _ok(["git", "add", "-A"], root)
    _ok(["git", "commit", "-qm", "feature: faster but worse"], root)
    return root


def _table_rows(lines: list[str]) -> dict[str, str]:
    return {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}


def test_markdown_leads_with_the_headline_table_and_verdict(repo: Path) -> None:
    proc = _diff(repo, "main", "--md")
    assert proc.returncode == 0, proc.stderr  # without --fail-on-regression
    out = proc.stdout
    assert out.startswith("<!-- splatbench-metrics-diff -->")
    head, folded = out.split("<details>", 1)
    # The verdict comes first, then the scene's headline table, then the training warnings.
    assert head.index("2 regression(s) against main") < head.index("#### s1")
    rows = _table_rows(head.split("#### s1", 1)[1].splitlines())
    assert "✅ improved" in rows["test PSNR, trained"] and "+0.5" in rows["test PSNR, trained"]
    assert "❌ regression" in rows["test SSIM, trained"] and "-0.01" in rows["test SSIM, trained"]
    assert "| 24.5 | 24.5 |" in rows["test PSNR, compressed"]  # unchanged, still shown
    assert "| - | - | - | not measured |" in rows["test LPIPS, trained"]  # null: not computed
    assert "within threshold" in rows["compressed MB"] and "+2.0%" in rows["compressed MB"]
    assert "❌ regression" in rows["train seconds"] and "+200.0%" in rows["train seconds"]
    assert "| 3,000 | 1,200 |" in rows["steps"]
    assert "max_steps | plateau" in rows["stop reason"]
    assert "| 5,000 | 5,000 |" in rows["Gaussians"]
    assert "**Training warnings** (this workspace):" in head
    assert "- s1: early stop at step 1200 fired before densification finished" in head
    # Everything else is folded, with the file and key of every metric.
    assert folded.startswith("<summary>All 10 metrics (7 changed, 3 unchanged)</summary>")
    full = {line.split(" | ")[1]: line for line in folded.splitlines()
            if line.startswith("| metrics/")}  # fmt: skip
    assert "compressed.ssim" in full and "ratio" in full
    assert "train_psnr" not in out  # a details value: never a metric, never judged
    assert folded.rstrip().endswith("</details>")


def test_text_output_lists_metrics_warnings_and_verdict(repo: Path) -> None:
    out = _diff(repo, "main").stdout
    assert "metrics/s1/eval.json" in out and "trained.psnr" in out
    assert "warning: s1: early stop at step 1200" in out
    assert out.rstrip().splitlines()[-1].startswith("2 regression(s) against main")


def test_fail_on_regression_exit_codes(repo: Path) -> None:
    assert _diff(repo, "main", "--fail-on-regression").returncode == 1
    same = _diff(repo, "HEAD", "--fail-on-regression")
    assert same.returncode == 0, same.stderr
    assert "No regressions against HEAD" in same.stdout


def test_thresholds_come_from_params(repo: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"report": {"regression": {
        "ssim": {"metric": "*.ssim", "file": "*eval.json", "worse": "lower", "abs": 0.05},
    }}}))  # fmt: skip
    proc = _diff(repo, "main", "--fail-on-regression", "--params", str(params))
    assert proc.returncode == 0, proc.stdout  # SSIM -0.01 within 0.05; time has no rule now
    assert "No regressions against main" in proc.stdout


def test_uncommitted_workspace_change_is_compared(repo: Path) -> None:
    path = repo / "metrics/s1/eval.json"
    original = path.read_text()
    try:
        doc = json.loads(original)
        doc["trained"]["psnr"] = 24.0
        path.write_text(json.dumps(doc))
        proc = _diff(repo, "HEAD", "--fail-on-regression")
        assert proc.returncode == 1
        assert "trained.psnr" in proc.stdout and "regression" in proc.stdout
    finally:
        path.write_text(original)


def test_unknown_revision_is_a_user_error(repo: Path) -> None:
    proc = _diff(repo, "no-such-branch")
    assert proc.returncode == 2
    assert "no-such-branch" in proc.stderr and "fix:" in proc.stderr


def test_judge_rules() -> None:
    psnr = RegressionRule("psnr", "*.psnr", worse="lower", abs=0.1)
    size = RegressionRule("size", "x", worse="higher", abs=1000, rel=0.05)
    assert judge(25.0, 24.85, psnr) == "regression"
    assert judge(25.0, 24.95, psnr) == "within"
    assert judge(25.0, 25.2, psnr) == "improved"
    assert judge(100, 900, size) == "within"  # +800 % but below abs 1000: noise near zero
    assert judge(1_000_000, 1_100_000, size) == "regression"
    assert judge(None, 1.0, psnr) == "added" and judge(1.0, None, psnr) == "removed"
    assert judge("a", "b", None) == "changed" and judge(1, 1, psnr) == "unchanged"
    changes = classify(
        {"metrics/s1/eval.json": {"compressed.psnr": {"old": 30.0, "new": 29.0}},
         "metrics/s1/sfm.json": {"compressed.psnr": {"old": 30.0, "new": 29.0}},
         "metrics/s1/export.json": {"spz_megabytes": {"old": 1.0, "new": 1.2}},
         "metrics/s1/train.json": {"train_psnr": {"old": 30.0, "new": 20.0}}},
        report_config_from_dict(None).regression,
    )  # fmt: skip
    # The psnr rule applies to eval.json only; size covers every *megabytes; train PSNR has no
    # rule (regressions are judged on test-view quality, size and time).
    assert [(c.path.split("/")[-1], c.status) for c in changes] == [
        ("eval.json", "regression"), ("export.json", "regression"), ("sfm.json", "changed"),
        ("train.json", "changed"),
    ]  # fmt: skip


def test_default_rules_match_conf(repo_root: Path) -> None:
    conf = yaml.safe_load((repo_root / "conf/report/default.yaml").read_text())
    assert report_config_from_dict(conf).regression == report_config_from_dict(None).regression
