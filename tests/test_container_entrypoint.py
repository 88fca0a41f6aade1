"""The container entrypoint, run directly (no Docker engine here): dispatch and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENTRYPOINT = Path(__file__).resolve().parents[1] / "containers" / "entrypoint.sh"


def _run(*args: str, repo: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SPLATBENCH_HOME=str(repo))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_info_reports_versions(repo_root: Path) -> None:
    proc = _run("info", repo=repo_root)
    assert proc.returncode == 0, proc.stderr
    assert "splatbench" in proc.stdout and "pycolmap" in proc.stdout


def test_unknown_command_is_a_usage_error(repo_root: Path) -> None:
    proc = _run("bogus", repo=repo_root)
    assert proc.returncode == 64
    assert "unknown command 'bogus'" in proc.stderr


def test_image_without_git_gets_a_snapshot_repo(tmp_path: Path) -> None:
    # Images carry no .git; DVC needs one, so the entrypoint makes a snapshot commit.
    (tmp_path / "README.md").write_text("x\n")
    proc = _run("splatbench", "--version", repo=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".git").is_dir()
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "image snapshot" in log.stdout


def test_repro_records_the_hardware_first(tmp_path: Path) -> None:
    """`repro` (and `exp`, `train`) write hardware.yaml before DVC runs, so DVC sees what
    `auto` means on this machine. No DVC project here: dvc fails after the file is written."""
    (tmp_path / "README.md").write_text("x\n")
    proc = _run("repro", repo=tmp_path)
    assert "hardware.yaml: auto -> " in proc.stdout, proc.stdout + proc.stderr
    assert "auto_backend: " in (tmp_path / "hardware.yaml").read_text()


def test_train_execs_the_job_runner_which_explains_a_missing_job(tmp_path: Path) -> None:
    # `train` is SageMaker's command: the job runner replaces the shell (exec, so it is PID 1's
    # child under tini and receives SIGTERM); outside a job it fails with a failure file.
    env = dict(os.environ, SPLATBENCH_SM_ROOT=str(tmp_path))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        ["bash", str(ENTRYPOINT), "train"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    failure = (tmp_path / "output" / "failure").read_text()
    assert "not a SageMaker training job" in failure
    assert (tmp_path / "model" / "job.json").is_file()


def test_entrypoint_is_executable_in_git(repo_root: Path) -> None:
    # A non-executable entrypoint fails every SageMaker job with exit code 127.
    out = subprocess.run(
        ["git", "ls-files", "-s", "containers/entrypoint.sh"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("100755 "), out
