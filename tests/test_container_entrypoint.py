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
