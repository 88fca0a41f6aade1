"""The container's ``train`` branch (splatbench.cloud.job_runner) without a pipeline run:
the helpers, and the entrypoint refusing bad jobs with a failure file (real git, real DVC
config, real entrypoint subprocess). The full runs are in tests/test_local_executor.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from splatbench.cloud.contract import JobSpec, SageMakerPaths, compose_params, params_sha256
from splatbench.cloud.job_runner import (
    FAILURE_REASON_CHARS,
    changed_files,
    error_summary,
    failure_text,
    read_job_spec,
    read_resource_config,
    stage_outcome,
)
from splatbench.errors import ConfigError

ENTRYPOINT = Path(__file__).resolve().parents[1] / "containers" / "entrypoint.sh"


def test_error_summary_prefers_the_stage_error_and_fix() -> None:
    lines = [
        "Running stage 'train@a':",
        "error: train.max_steps=0 must be >= 1",
        "fix: set train.max_steps",
        "ERROR: failed to reproduce 'train@a': exited with 2",
    ]
    assert error_summary(lines) == "error: train.max_steps=0 must be >= 1 fix: set train.max_steps"
    trace = [
        "Traceback (most recent call last):",
        '  File "x.py"',
        "ValueError: bad value",
        "ERROR: x",
    ]
    assert error_summary(trace) == "ValueError: bad value"
    assert error_summary(["a", "ERROR: failed to reproduce 'x'", ""]) == (
        "ERROR: failed to reproduce 'x'"
    )
    assert error_summary([]) == "no output"


def test_failure_text_keeps_the_summary_and_the_newest_tail_within_the_limit() -> None:
    tail = [f"line {i} " + "x" * 50 for i in range(100)]
    text = failure_text("stage s failed: boom", tail)
    assert text.startswith("stage s failed: boom\nlog tail:\n")
    assert len(text) <= FAILURE_REASON_CHARS
    assert text.endswith(tail[-1]) and tail[0] not in text
    assert failure_text("x" * 5000, tail).endswith("...")
    assert len(failure_text("x" * 5000, tail)) == FAILURE_REASON_CHARS


def test_stage_outcome_reads_dvc_output() -> None:
    assert stage_outcome("a@b", "Running stage 'a@b':\n> python") == "ran"
    assert stage_outcome("a@b", "Pulling data for stage: 'a@b'\nData and pipelines") == "pulled"
    assert stage_outcome("a@b", "Stage 'a@b' didn't change, skipping") == "unchanged"
    # "Unable to pull" falls back to running the stage
    both = "Pulling data for stage: 'a@b'\nUnable to pull data\nRunning stage 'a@b':"
    assert stage_outcome("a@b", both) == "ran"


def test_more_than_one_host_is_refused(tmp_path: Path) -> None:
    paths = SageMakerPaths(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.resource_config.write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    )
    with pytest.raises(ConfigError, match="2 hosts") as err:
        read_resource_config(paths)
    assert "InstanceCount 1" in (err.value.fix or "")
    paths.resource_config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    assert read_resource_config(paths)["current_host"] == "algo-1"


def test_missing_or_bad_hyperparameters(tmp_path: Path) -> None:
    paths = SageMakerPaths(tmp_path)
    with pytest.raises(ConfigError, match="not a SageMaker training job"):
        read_job_spec(paths)
    paths.config_dir.mkdir(parents=True)
    paths.hyperparameters.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_job_spec(paths)
    paths.hyperparameters.write_text(json.dumps({"splatbench_commit": "a" * 40}))
    with pytest.raises(ConfigError, match="missing splatbench_params_sha256"):
        read_job_spec(paths)


def test_changed_files_lists_new_and_modified_not_deleted_or_ignored(tmp_path: Path) -> None:
    repo = tmp_path
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("data/\n")
    (repo / "keep.txt").write_text("1")
    (repo / "gone.txt").write_text("1")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=repo, check=True)
    (repo / "keep.txt").write_text("2")
    (repo / "gone.txt").unlink()
    (repo / "metrics" / "a").mkdir(parents=True)
    (repo / "metrics" / "a" / "m.json").write_text("{}")
    (repo / "staged.txt").write_text("s")
    subprocess.run(["git", "add", "staged.txt"], cwd=repo, check=True)
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_text("x")
    assert changed_files(repo) == ["keep.txt", "metrics/a/m.json", "staged.txt"]


# ---------------------------------------------------------------------------------------------
# The entrypoint refusing bad jobs (no pipeline runs: each fails during setup)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini_project(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """src/, conf/, .dvc/config and dvc.yaml of this repo, committed: enough to import the
    code and compose params."""
    project = tmp_path_factory.mktemp("mini")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(repo_root / "conf", project / "conf")
    shutil.copytree(repo_root / "src", project / "src", ignore=ignore)
    (project / ".dvc").mkdir()
    shutil.copy2(repo_root / ".dvc" / "config", project / ".dvc" / "config")
    shutil.copy2(repo_root / "dvc.yaml", project / "dvc.yaml")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "mini"], cwd=project, check=True)
    return project


def _job_root(tmp_path: Path, project: Path, **spec_fields: object) -> SageMakerPaths:
    paths = SageMakerPaths(tmp_path / "opt_ml")
    paths.config_dir.mkdir(parents=True)
    code = paths.channel("code")
    code.mkdir(parents=True)
    subprocess.run(
        ["git", "bundle", "create", "-q", str(code / "code.bundle"), "HEAD", "main"],
        cwd=project,
        check=True,
    )
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, check=True, capture_output=True, text=True
    ).stdout.strip()
    fields: dict[str, object] = {
        "commit": commit,
        "params_sha256": params_sha256(compose_params(project, ())),
        "targets": ("train@blocks",),
    }
    fields.update(spec_fields)
    spec = JobSpec(**fields)  # type: ignore[arg-type]
    paths.hyperparameters.write_text(json.dumps(spec.to_hyperparameters()))
    return paths


def _train(paths: SageMakerPaths) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SPLATBENCH_SM_ROOT=str(paths.root))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["bash", str(ENTRYPOINT), "train"], env=env, capture_output=True, text=True, timeout=300
    )


def test_params_hash_mismatch_refuses_to_run(tmp_path: Path, mini_project: Path) -> None:
    paths = _job_root(tmp_path, mini_project, params_sha256="0" * 64)
    proc = _train(paths)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    failure = paths.failure.read_text()
    assert failure.startswith("job setup failed: params.yaml composed at commit")
    assert "0" * 64 in failure and "rebuild the image" in failure
    # The stages would have imported the checkout's code (the check ran before the hash one).
    assert "splatbench from " + str(paths.root / "work" / "project" / "src") in proc.stdout
    job = json.loads((paths.model / "job.json").read_text())
    assert job["status"] == "failed" and job["stages"] == []


def test_commit_missing_from_the_bundle_is_a_clear_error(
    tmp_path: Path, mini_project: Path
) -> None:
    paths = _job_root(tmp_path, mini_project, commit="1" * 40)
    proc = _train(paths)
    assert proc.returncode == 2
    assert "cannot check out commit " + "1" * 40 in paths.failure.read_text()


def test_no_code_channel_and_multi_host_jobs_fail_with_a_reason(
    tmp_path: Path, mini_project: Path
) -> None:
    paths = _job_root(tmp_path, mini_project)
    shutil.rmtree(paths.channel("code"))
    proc = _train(paths)
    assert proc.returncode == 2
    assert "the job has no code channel" in paths.failure.read_text()

    paths.failure.unlink()
    paths.resource_config.write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    proc = _train(paths)
    assert proc.returncode == 2
    assert "a splatbench job runs on one host" in paths.failure.read_text()


def test_no_dvc_remote_is_refused_before_any_stage(tmp_path: Path, mini_project: Path) -> None:
    paths = _job_root(tmp_path, mini_project)
    proc = _train(paths)
    assert proc.returncode == 2, proc.stdout
    assert "has no default DVC remote" in paths.failure.read_text()
    paths.failure.unlink()
    paths = _job_root(tmp_path / "b", mini_project, dvc_remote="nope")
    proc = _train(paths)
    assert "DVC remote 'nope' is not configured" in paths.failure.read_text()
