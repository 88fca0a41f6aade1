"""`remote fetch` and the code channel against real git, real DVC and a real S3 (SeaweedFS).

The SageMaker side is a botocore ``Stubber`` answering DescribeTrainingJob (checked against the
real model): these tests are about what fetch does with a job's outputs, including broken and
hostile ones. The "job" is played by a second clone that runs ``dvc repro`` and ``dvc push`` and
packs ``model.tar.gz`` the way the container does; the end-to-end test
(tests/test_remote_e2e.py) runs the real container entrypoint through the local executor.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import s3_fixture
import yaml
from botocore.stub import Stubber
from s3_fixture import SeaweedS3

from splatbench.cloud.code_channel import (
    CODE_REF_PREFIX,
    code_version,
    ensure_commit,
    has_commit,
    upload_code,
)
from splatbench.cloud.contract import JobSpec, compose_params, params_sha256
from splatbench.cloud.fetch import fetch_job
from splatbench.cloud.remote import Backend, RemoteError
from splatbench.cloud.sagemaker import JobLocation
from splatbench.errors import ArchiveError, ConfigError

pytestmark = pytest.mark.integration
seaweedfs = s3_fixture.seaweedfs
s3_env = s3_fixture.s3_env

MAKE = """\
import json, pathlib, yaml
scale = yaml.safe_load(open("params.yaml"))["scale"]
pathlib.Path("data").mkdir(exist_ok=True)
pathlib.Path("data/out.txt").write_text("x" * 100 * scale)
pathlib.Path("metrics").mkdir(exist_ok=True)
pathlib.Path("metrics/m.json").write_text(json.dumps({"score": scale * 1.5}))
"""
DVC_YAML = """\
stages:
  make:
    cmd: python make.py
    deps: [make.py]
    params: [scale]
    outs: [data/out.txt]
    metrics:
      - metrics/m.json:
          cache: false
"""


def _run(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


@pytest.fixture
def project(tmp_path: Path, s3_env: SeaweedS3) -> dict[str, Any]:
    bucket = s3_env.make_bucket("fetch")
    repo = tmp_path / "user"
    repo.mkdir()
    (repo / "make.py").write_text(MAKE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("scale: 2\n")
    _run(repo, "git", "init", "-q", "-b", "main")
    _dvc(repo, "init", "-q")
    _dvc(repo, "remote", "add", "-d", "storage", f"s3://{bucket}/dvc")
    _dvc(repo, "remote", "modify", "storage", "endpointurl", s3_env.endpoint_url)
    _dvc(repo, "repro")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "baseline")
    return {"repo": repo, "bucket": bucket, "jobs": JobLocation(bucket, "jobs")}


def _job(project: dict[str, Any], tmp_path: Path, s3: Any, name: str, overrides: list[str],
         *, tamper: Any = None) -> dict[str, Any]:  # fmt: skip
    """Play the container: clone the commit, compose params, repro, push, pack, upload."""
    repo: Path = project["repo"]
    code = code_version(repo)
    upload_code(s3, project["jobs"], repo, code.commit)
    work = tmp_path / f"job-{name}"
    _run(tmp_path, "git", "clone", "-q", str(repo), str(work))
    text = compose_params(work, overrides)
    (work / "params.yaml").write_text(text)
    _dvc(work, "repro")
    _dvc(work, "push")
    members = {p: (work / p).read_bytes() for p in ("dvc.lock", "params.yaml", "metrics/m.json")}
    members["job.json"] = json.dumps({"job": name}).encode()
    if tamper is not None:
        tamper(members)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    jobs: JobLocation = project["jobs"]
    key = jobs.key("output", name, "output", "model.tar.gz")
    s3.put_object(Bucket=jobs.bucket, Key=key, Body=buf.getvalue())
    spec = JobSpec(
        commit=code.commit,
        params_sha256=params_sha256(text),
        overrides=tuple(overrides),
        experiment=name,
    )
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "HyperParameters": spec.to_hyperparameters(),
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "InputDataConfig": [
            {
                "ChannelName": "code",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": jobs.code_uri(code.commit)}
                },
            }
        ],
        "ModelArtifacts": {"S3ModelArtifacts": jobs.model_uri(name)},
        "ResourceConfig": {
            "InstanceType": "ml.g5.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 50,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": datetime(2026, 12, 2, 12, tzinfo=timezone.utc),
        "TrainingEndTime": datetime(2026, 12, 2, 13, tzinfo=timezone.utc),
    }


def _backend(s3: Any, *descriptions: dict[str, Any]) -> tuple[Backend, Stubber]:
    client = botocore.session.get_session().create_client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret-just-a-stub",
    )  # fmt: skip
    stub = Stubber(client)
    for desc in descriptions:
        stub.add_response(
            "describe_training_job", desc, {"TrainingJobName": desc["TrainingJobName"]}
        )
    stub.activate()
    return Backend("sagemaker", client, None, s3), stub


def _experiments(repo: Path) -> dict[str, dict[str, Any]]:
    """``dvc exp show --json``: experiment name -> its data (params, metrics)."""
    found = {}
    for row in json.loads(_dvc(repo, "exp", "show", "--json")):
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def test_fetch_makes_a_dvc_experiment_and_is_idempotent(
    project: dict[str, Any], s3_env: SeaweedS3, tmp_path: Path
) -> None:
    s3 = s3_env.client()
    repo: Path = project["repo"]
    desc = _job(project, tmp_path, s3, "sb-scale-3", ["scale=3"])
    head = _run(repo, "git", "rev-parse", "HEAD")
    status_before = _run(repo, "git", "status", "--porcelain")
    backend, stub = _backend(s3, desc, desc)

    first = fetch_job(repo, backend, "sb-scale-3")
    again = fetch_job(repo, backend, "sb-scale-3", data=True)
    stub.assert_no_pending_responses()
    assert first.created and not again.created and again.commit == first.commit
    assert first.downloaded is None and again.downloaded == 1  # data/out.txt
    assert first.ref == f"refs/exps/{head[:2]}/{head.strip()[2:]}/sb-scale-3"
    # The user's work tree, index and branch are untouched.
    assert _run(repo, "git", "rev-parse", "HEAD") == head
    assert _run(repo, "git", "status", "--porcelain") == status_before

    assert "sb-scale-3" in _experiments(repo)
    diff = _dvc(repo, "metrics", "diff", "HEAD", "sb-scale-3", "--json")
    assert json.loads(diff)["metrics/m.json"]["score"] == {"old": 3.0, "new": 4.5, "diff": 1.5}

    # With the data fetched, apply checks the job's outputs out; pull has nothing left to do.
    _dvc(repo, "exp", "apply", "sb-scale-3")
    _dvc(repo, "pull")
    assert (repo / "data" / "out.txt").read_text() == "x" * 300
    assert "up to date" in _dvc(repo, "status")
    assert yaml.safe_load((repo / "params.yaml").read_text()) == {"scale": 3}


def test_fetch_in_another_clone_reads_the_commit_from_the_code_bundle(
    project: dict[str, Any], s3_env: SeaweedS3, tmp_path: Path
) -> None:
    s3 = s3_env.client()
    repo: Path = project["repo"]
    # The job runs uncommitted changes (a `git stash create` commit only the launcher's clone has).
    (repo / "make.py").write_text(MAKE.replace("scale * 1.5", "scale * 2.5"))
    with pytest.raises(ConfigError, match="uncommitted changes"):
        code_version(repo)
    code = code_version(repo, include_uncommitted=True)
    assert code.uncommitted and code.commit != code.baseline
    assert _run(repo, "git", "status", "--porcelain") == " M make.py\n"  # untouched
    assert _run(repo, "git", "stash", "list") == ""
    assert _run(repo, "git", "rev-parse", f"{CODE_REF_PREFIX}{code.commit}").strip() == code.commit
    jobs: JobLocation = project["jobs"]
    uri, uploaded = upload_code(s3, jobs, repo, code.commit)
    assert uploaded and uri == jobs.code_uri(code.commit)
    assert upload_code(s3, jobs, repo, code.commit) == (uri, False)  # content-addressed
    # What the job does with it: a plain `git clone` of the bundle checks the commit out.
    bundle = tmp_path / "code.bundle"
    s3.download_file(jobs.bucket, jobs.code_key(code.commit, "code.bundle"), str(bundle))
    _run(tmp_path, "git", "clone", "-q", str(bundle), str(tmp_path / "job"))
    assert _run(tmp_path / "job", "git", "rev-parse", "HEAD").strip() == code.commit
    assert "scale * 2.5" in (tmp_path / "job" / "make.py").read_text()
    assert "splatbench-job" not in _run(repo, "git", "branch", "--all")

    other = tmp_path / "other"
    # file:// makes git transfer only what the branches reach (a local clone links all objects).
    _run(tmp_path, "git", "clone", "-q", f"file://{repo}", str(other))
    assert not has_commit(other, code.commit)
    ensure_commit(other, code.commit, s3=s3, jobs=jobs)
    assert has_commit(other, code.commit)
    shown = _run(other, "git", "show", f"{code.commit}:make.py")
    assert "scale * 2.5" in shown
    with pytest.raises(ConfigError, match="not in"):
        ensure_commit(other, "f" * 40, s3=s3, jobs=jobs)


@pytest.mark.parametrize(
    ("tamper", "error", "needle"),
    [
        (lambda m: m.update({"params.yaml": b"scale: 7\n"}), RemoteError, "not the one"),
        (lambda m: m.pop("dvc.lock"), RemoteError, "lacks dvc.lock"),
        (lambda m: m.update({"../escape.txt": b"x"}), ArchiveError, r"\.\."),
        (lambda m: m.update({".git/hooks/post-checkout": b"#!/bin/sh\n"}), RemoteError, ".git"),
    ],
    ids=["params-mismatch", "no-lock", "path-escape", "git-internals"],
)
def test_broken_or_hostile_outputs_are_refused(
    project: dict[str, Any], s3_env: SeaweedS3, tmp_path: Path, tamper: Any, error: Any, needle: str
) -> None:
    s3 = s3_env.client()
    desc = _job(project, tmp_path, s3, "sb-bad", ["scale=4"], tamper=tamper)
    backend, _ = _backend(s3, desc)
    with pytest.raises(error, match=needle):
        fetch_job(project["repo"], backend, "sb-bad")
    refs = _run(project["repo"], "git", "for-each-ref", "refs/exps")
    assert "sb-bad" not in refs


def test_unfinished_job_and_name_conflicts(
    project: dict[str, Any], s3_env: SeaweedS3, tmp_path: Path
) -> None:
    s3 = s3_env.client()
    repo: Path = project["repo"]
    five = _job(project, tmp_path, s3, "sb-five", ["scale=5"])
    six = _job(project, tmp_path, s3, "sb-six", ["scale=6"])
    running = {**five, "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"}
    failed = {**five, "TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: train"}
    backend, stub = _backend(s3, running, failed, five, six, six)
    with pytest.raises(RemoteError, match="InProgress"):
        fetch_job(repo, backend, "sb-five")
    with pytest.raises(RemoteError, match="Failed: AlgorithmError: train"):
        fetch_job(repo, backend, "sb-five")
    fetch_job(repo, backend, "sb-five", name="shared")
    with pytest.raises(ConfigError, match="already exists with other results"):
        fetch_job(repo, backend, "sb-six", name="shared")
    replaced = fetch_job(repo, backend, "sb-six", name="shared", force=True)
    stub.assert_no_pending_responses()
    metrics = _run(repo, "git", "show", f"{replaced.ref}:metrics/m.json")
    assert json.loads(metrics) == {"score": 9.0}
