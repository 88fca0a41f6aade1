"""The local SageMaker executor running real jobs: real SeaweedFS S3, real DVC, the real
container entrypoint (``containers/entrypoint.sh train``) as a subprocess.

One module-scoped project (a small copy of this repo's pipeline, committed in a git repo whose
DVC remote is a SeaweedFS bucket) is sent as a git bundle through the ``code`` channel. The
"image" is this checkout (``image_home``); the job must run the bundle's code, not the image's.

Jobs, in order (later ones reuse what the first pushed):
1. ``train@blocks``: ingest, SfM and training run; outputs pushed; model.tar.gz uploaded.
2. a failing stage: FailureReason names the stage and the error.
3. stop during training: SIGTERM, a checkpoint at once, status Stopped.
4. managed spot, on the commit without a dvc.lock: SfM computed, then interrupted mid-training;
   restarted with checkpoints (and the job's journal) restored, it pulls SfM instead of
   re-running it and resumes training from the checkpoint's step.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import s3_fixture
from project_copy import copy_project
from s3_fixture import SeaweedS3, list_keys, scan_for_secrets

from splatbench.cloud.contract import JobSpec, compose_params, params_sha256
from splatbench.cloud.local_executor import LOG_GROUP, LocalLogs, LocalSageMaker

pytestmark = pytest.mark.integration
seaweedfs = s3_fixture.seaweedfs

BASE_STEPS = 40
JOB_TIMEOUT_S = 600


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def s3(seaweedfs: SeaweedS3) -> Iterator[SeaweedS3]:
    """The server, with this process's environment pointing at it (the executor and the
    "container" take their S3 settings from the environment)."""
    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(seaweedfs.env())
    try:
        yield seaweedfs
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def world(
    s3: SeaweedS3, tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> dict[str, Any]:
    bucket = s3.make_bucket("sm")
    project = copy_project(repo_root, tmp_path_factory.mktemp("project"), max_steps=BASE_STEPS)
    _git(project, "init", "-q", "-b", "main")
    dvc = [sys.executable, "-m", "dvc"]
    # The remote as docs/s3.md sets it up: URL and endpoint committed, credentials not.
    for args in (
        ["remote", "add", "-d", "storage", f"s3://{bucket}/dvc"],
        ["remote", "modify", "storage", "endpointurl", s3.endpoint_url],
        ["remote", "modify", "storage", "region", s3.region],
    ):
        subprocess.run([*dvc, *args], cwd=project, check=True, capture_output=True)
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "project")
    _git(project, "branch", "base")  # the commit without any dvc.lock
    return {
        "bucket": bucket,
        "project": project,
        "state": tmp_path_factory.mktemp("executor"),
        "image_home": repo_root,
    }


def _submit(
    world: dict[str, Any],
    s3: SeaweedS3,
    name: str,
    *,
    targets: tuple[str, ...] = ("train@blocks",),
    overrides: tuple[str, ...] = (),
    spot: bool = False,
    ref: str = "main",
    executor: LocalSageMaker | None = None,
) -> tuple[LocalSageMaker, dict[str, Any]]:
    project: Path = world["project"]
    bucket = world["bucket"]
    commit = _git(project, "rev-parse", ref)
    bundle = project.parent / f"{commit}.bundle"
    if not bundle.exists():
        _git(project, "bundle", "create", "-q", str(bundle), ref)
        s3.client().upload_file(str(bundle), bucket, f"code/{commit}/code.bundle")
    spec = JobSpec(
        commit=commit,
        params_sha256=params_sha256(compose_params(project, overrides)),
        targets=targets,
        overrides=overrides,
        experiment=name,
    )
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": 3600}
    if spot:
        stopping["MaxWaitTimeInSeconds"] = 7200
    request = {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::000000000000:role/splatbench-training",
        "AlgorithmSpecification": {
            "TrainingImage": "000000000000.dkr.ecr.us-east-1.amazonaws.com/splatbench@sha256:"
            + "0" * 64,
            "TrainingInputMode": "File",
        },
        "HyperParameters": spec.to_hyperparameters(),
        "InputDataConfig": [
            {
                "ChannelName": "code",
                "InputMode": "File",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/code/{commit}/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output/"},
        "ResourceConfig": {
            "InstanceType": "ml.g5.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 50,
        },
        "StoppingCondition": stopping,
        "CheckpointConfig": {
            "S3Uri": f"s3://{bucket}/checkpoints/{name}/",
            "LocalPath": "/opt/ml/checkpoints",
        },
        "EnableManagedSpotTraining": spot,
        "Tags": [{"Key": "splatbench:commit", "Value": commit}],
    }
    sm = executor or LocalSageMaker(
        world["state"], image_home=world["image_home"], stop_grace_s=60, checkpoint_sync_s=0.5
    )
    sm.create_training_job(**request)
    return sm, request


def _wait(
    sm: LocalSageMaker, name: str, until: Any, timeout: float = JOB_TIMEOUT_S
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        desc = sm.describe_training_job(TrainingJobName=name)
        if until(desc):
            return desc
        assert desc["TrainingJobStatus"] not in ("Completed", "Failed", "Stopped"), desc
        assert time.monotonic() < deadline, f"timed out waiting for {name}: {desc}"
        time.sleep(0.3)


def _done(desc: dict[str, Any]) -> bool:
    return desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped")


def _finished(sm: LocalSageMaker, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        desc = sm.describe_training_job(TrainingJobName=name)
        if _done(desc):
            return desc
        assert time.monotonic() < deadline, f"timed out waiting for {name}: {desc}"
        time.sleep(0.3)


def _log_text(world: dict[str, Any], name: str) -> list[str]:
    """Each log stream of the job as one text, oldest first, read as a launcher would."""
    logs = LocalLogs(world["state"])
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    texts = []
    for stream in streams["logStreams"]:
        token = None
        lines: list[str] = []
        while True:
            kwargs = {"nextToken": token} if token else {}
            page = logs.get_log_events(
                logGroupName=LOG_GROUP,
                logStreamName=stream["logStreamName"],
                startFromHead=True,
                **kwargs,
            )
            lines += [e["message"] for e in page["events"]]
            if page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
        texts.append("\n".join(lines))
    return texts


def _model(s3: SeaweedS3, request: dict[str, Any]) -> dict[str, bytes]:
    bucket = request["OutputDataConfig"]["S3OutputPath"].split("/")[2]
    key = f"output/{request['TrainingJobName']}/output/model.tar.gz"
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _checkpoint_steps(s3: SeaweedS3, bucket: str, name: str) -> list[int]:
    keys = list_keys(s3.client(), bucket, f"checkpoints/{name}/")
    return sorted(int(m.group(1)) for k in keys if (m := re.search(r"ckpt_(\d{8})\.pt$", k)))


@pytest.fixture(scope="module")
def first_job(world: dict[str, Any], s3: SeaweedS3) -> dict[str, Any]:
    sm, request = _submit(world, s3, "sb-first")
    desc = _finished(sm, "sb-first")
    return {"sm": sm, "request": request, "desc": desc}


def test_job_runs_the_code_channel_and_uploads_the_model(
    world: dict[str, Any], s3: SeaweedS3, first_job: dict[str, Any]
) -> None:
    desc = first_job["desc"]
    logs = _log_text(world, "sb-first")
    assert desc["TrainingJobStatus"] == "Completed", (desc, logs[-1][-3000:])
    assert desc["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed",
    ]  # fmt: skip
    assert desc["BillableTimeInSeconds"] >= 1 and desc["TrainingTimeInSeconds"] >= 1
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]

    # The response has the real shape: botocore's Stubber validates it against the model.
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("describe_training_job", desc, {"TrainingJobName": "sb-first"})
        assert client.describe_training_job(TrainingJobName="sb-first")["TrainingJobName"]
        listed = first_job["sm"].list_training_jobs(NameContains="sb-first")
        stub.add_response("list_training_jobs", listed, {"NameContains": "sb-first"})
        assert client.list_training_jobs(NameContains="sb-first")["TrainingJobSummaries"]

    # One log stream named like SageMaker's, holding the container's output.
    (text,) = logs
    assert "Running stage 'ingest@blocks'" in text and "Running stage 'train@blocks'" in text
    streams = LocalLogs(world["state"]).describe_log_streams(
        logGroupName=LOG_GROUP, logStreamNamePrefix="sb-first/"
    )["logStreams"]
    assert re.fullmatch(r"sb-first/algo-1-\d{10}", streams[0]["logStreamName"])

    model = _model(s3, first_job["request"])
    for name in ("dvc.lock", "params.yaml", "job.json", "metrics/blocks/details/ingest.json"):
        assert name in model, sorted(model)
    assert "metrics/blocks/sfm.json" in model and "dvclive/blocks/metrics.json" in model
    assert json.loads(model["metrics/blocks/train.json"])["steps"] == BASE_STEPS
    train = json.loads(model["metrics/blocks/details/train.json"])
    assert train["steps"] == BASE_STEPS and train["resumed_from_step"] is None
    job = json.loads(model["job.json"])
    commit = _git(world["project"], "rev-parse", "HEAD")
    assert job["commit"] == commit and job["targets"] == ["train@blocks"]
    assert [(s["stage"], s["outcome"]) for s in job["stages"]] == [
        ("ingest@blocks", "ran"), ("sfm@blocks", "ran"), ("train@blocks", "ran"),
    ]  # fmt: skip
    # The stages imported the code channel's checkout, not the image's copy (this repo).
    code_file = Path(job["code"]["splatbench_file"])
    assert code_file.is_relative_to(Path(world["state"]))
    assert not code_file.is_relative_to(world["image_home"] / "src")

    # Outputs went to the DVC remote; the journal went to the checkpoint prefix.
    assert len(list_keys(s3.client(), world["bucket"], "dvc/")) > 10
    journal = list_keys(s3.client(), world["bucket"], "checkpoints/sb-first/_splatbench_job/")
    assert any(k.endswith("state.json") for k in journal)
    assert not _checkpoint_steps(s3, world["bucket"], "sb-first")  # finished: deleted in S3 too

    # Credentials reach neither the logs nor the model.
    # (The checked-out code itself is skipped: local_s3.py defines the test credentials.)
    texts = [*logs, *(v.decode("utf-8", "replace") for v in model.values())]
    files = [
        p
        for p in Path(world["state"]).rglob("*")
        if p.is_file() and "src" not in p.relative_to(world["state"]).parts
    ]
    assert scan_for_secrets(files, texts) == []


@pytest.fixture(scope="module")
def warm_project(world: dict[str, Any], s3: SeaweedS3, first_job: dict[str, Any]) -> None:
    """Commit the first job's dvc.lock, as a user does after fetching it: later jobs then pull
    ingest and SfM from the remote instead of recomputing them."""
    assert first_job["desc"]["TrainingJobStatus"] == "Completed"
    model = _model(s3, first_job["request"])
    project = world["project"]
    (project / "dvc.lock").write_bytes(model["dvc.lock"])
    for name, data in model.items():
        if name.startswith("metrics/"):
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_bytes(data)
    _git(project, "add", "dvc.lock", "metrics")
    _git(project, "commit", "-qm", "results of sb-first")


def test_failing_stage_sets_failure_reason(
    world: dict[str, Any], s3: SeaweedS3, warm_project: None
) -> None:
    sm, _ = _submit(world, s3, "sb-fail", overrides=("train.max_steps=0",))
    desc = _finished(sm, "sb-fail")
    assert desc["TrainingJobStatus"] == "Failed" and desc["SecondaryStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("AlgorithmError: stage train@blocks failed: error: "), reason
    assert "train.max_steps=0 must be >= 1" in reason
    assert "log tail:" in reason and len(reason) <= 1024
    (text,) = _log_text(world, "sb-fail")
    assert "Pulling data for stage: 'sfm@blocks'" in text
    assert "Running stage 'sfm@blocks'" not in text


def test_stop_checkpoints_and_stops(
    world: dict[str, Any], s3: SeaweedS3, warm_project: None
) -> None:
    sm, request = _submit(
        world, s3, "sb-stop", overrides=("train.max_steps=5000", "train.checkpoint_every=10")
    )
    _wait(sm, "sb-stop", lambda d: bool(_checkpoint_steps(s3, world["bucket"], "sb-stop")))
    t0 = time.monotonic()
    sm.stop_training_job(TrainingJobName="sb-stop")
    assert sm.describe_training_job(TrainingJobName="sb-stop")["TrainingJobStatus"] in (
        "Stopping", "Stopped",
    )  # fmt: skip
    desc = _finished(sm, "sb-stop")
    assert time.monotonic() - t0 < 45, "the job did not stop promptly after SIGTERM"
    assert desc["TrainingJobStatus"] == "Stopped" and desc["SecondaryStatus"] == "Stopped"
    (text,) = _log_text(world, "sb-stop")
    step = int(re.search(r"training interrupted by SIGTERM after step (\d+)", text).group(1))
    assert step in _checkpoint_steps(s3, world["bucket"], "sb-stop")  # written at once, synced
    job = json.loads(_model(s3, request)["job.json"])
    assert job["status"] == "interrupted"
    with pytest.raises(Exception, match="not in progress"):
        sm.stop_training_job(TrainingJobName="sb-stop")


def test_spot_interruption_resumes_from_checkpoint_without_rerunning_sfm(
    world: dict[str, Any], s3: SeaweedS3, first_job: dict[str, Any]
) -> None:
    # The commit without a dvc.lock: the first attempt computes ingest and SfM itself, so only
    # the job's own journal (in the checkpoint prefix) can tell the restart they are done.
    steps = 150
    sm, request = _submit(
        world,
        s3,
        "sb-spot",
        overrides=(f"train.max_steps={steps}", "train.checkpoint_every=10"),
        spot=True,
        ref="base",
    )
    _wait(sm, "sb-spot", lambda d: bool(_checkpoint_steps(s3, world["bucket"], "sb-spot")))
    sm.interrupt_spot(TrainingJobName="sb-spot")
    desc = _finished(sm, "sb-spot")
    first, second = _log_text(world, "sb-spot")
    assert desc["TrainingJobStatus"] == "Completed", (desc, second[-3000:])
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses[statuses.index("Interrupted") + 1] == "Restarting"
    assert "Running stage 'sfm@blocks'" in first
    interrupted = int(re.search(r"interrupted by SIGTERM after step (\d+)", first).group(1))
    # The restart pulled ingest and SfM and resumed training from the SIGTERM checkpoint.
    assert "restart: finished before: ingest@blocks, sfm@blocks" in second
    assert "Pulling data for stage: 'sfm@blocks'" in second
    assert "Running stage 'sfm@blocks'" not in second
    assert "Running stage 'ingest@blocks'" not in second
    train = json.loads(_model(s3, request)["metrics/blocks/details/train.json"])
    assert train["resumed_from_step"] == interrupted and train["steps"] == steps
    assert 0 < interrupted < steps
