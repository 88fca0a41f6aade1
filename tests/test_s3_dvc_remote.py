"""DVC with an S3 remote on SeaweedFS: push, lose the cache, pull, nothing to re-run.

Follows docs/s3.md: ``dvc remote add``, ``endpointurl`` for an S3-compatible store, credentials
only in ``.dvc/config.local`` (git-ignored), never in ``.dvc/config``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import s3_fixture
from s3_fixture import SeaweedS3, list_keys, scan_for_secrets

pytestmark = pytest.mark.integration
seaweedfs = s3_fixture.seaweedfs
s3_env = s3_fixture.s3_env


def _run(repo: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        args, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


def test_dvc_push_pull_roundtrip(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket("dvc")
    repo = tmp_path / "repo"
    repo.mkdir()
    # Credentials reach DVC only through .dvc/config.local: drop them from the environment.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") or k in ("AWS_REQUEST_CHECKSUM_CALCULATION",)
    }
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_REQUEST_CHECKSUM_CALCULATION="WHEN_REQUIRED",
        AWS_RESPONSE_CHECKSUM_VALIDATION="WHEN_REQUIRED",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(tmp_path / "dvc-site"),
    )
    dvc = [sys.executable, "-m", "dvc"]
    outputs = [
        _run(repo, "git", "init", "-q", env=env),
        _run(repo, *dvc, "init", "-q", env=env),
        _run(repo, *dvc, "remote", "add", "-d", "storage", f"s3://{bucket}/dvcstore", env=env),
        _run(
            repo, *dvc, "remote", "modify", "storage", "endpointurl", s3_env.endpoint_url, env=env
        ),
        _run(repo, *dvc, "remote", "modify", "storage", "region", s3_env.region, env=env),
        _run(
            repo,
            *dvc,
            "remote",
            "modify",
            "--local",
            "storage",
            "access_key_id",
            s3_env.access_key,
            env=env,
        ),
        _run(
            repo,
            *dvc,
            "remote",
            "modify",
            "--local",
            "storage",
            "secret_access_key",
            s3_env.secret_key,
            env=env,
        ),
    ]
    (repo / "data.txt").write_text("0123456789\n" * 1000)
    stage_cmd = (
        f"{sys.executable} -c \"import pathlib; p = pathlib.Path('data.txt'); "
        "pathlib.Path('out.txt').write_text(p.read_text()[::-1])\""
    )
    outputs += [
        _run(repo, *dvc, "add", "data.txt", env=env),
        _run(
            repo,
            *dvc,
            "stage",
            "add",
            "-n",
            "upper",
            "-d",
            "data.txt",
            "-o",
            "out.txt",
            stage_cmd,
            env=env,
        ),
        _run(repo, *dvc, "repro", env=env),
        _run(repo, "git", "add", "-A", env=env),
        _run(repo, "git", "commit", "-qm", "data + pipeline", env=env),
        _run(repo, *dvc, "push", env=env),
    ]
    assert len(list_keys(s3_env.client(), bucket, "dvcstore/")) == 2  # data.txt and out.txt

    expected_out = (repo / "out.txt").read_text()
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "out.txt").unlink()
    (repo / "data.txt").unlink()
    outputs.append(_run(repo, *dvc, "pull", env=env))
    assert (repo / "out.txt").read_text() == expected_out
    assert (repo / "data.txt").is_file()

    status = _run(repo, *dvc, "status", env=env)
    assert "up to date" in status, status
    repro = _run(repo, *dvc, "repro", env=env)
    assert "Running stage" not in repro, repro
    outputs += [status, repro]

    # The secret lives only in the git-ignored config.local.
    assert s3_env.secret_key in (repo / ".dvc" / "config.local").read_text()
    _run(repo, "git", "check-ignore", "-q", ".dvc/config.local", env=env)
    tracked = _run(repo, "git", "ls-files", env=env).split()
    assert ".dvc/config.local" not in tracked
    assert scan_for_secrets([repo / ".dvc" / "config", repo / "dvc.lock"], outputs) == []
