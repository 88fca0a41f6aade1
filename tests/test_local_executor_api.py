"""The local executor's API without running a job: request validation as SageMaker/boto3 do it,
the errors, CloudWatch paging semantics, and a dead worker. Real job runs are in
tests/test_local_executor.py."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from splatbench.cloud.local_executor import (
    LOG_GROUP,
    LocalLogs,
    LocalSageMaker,
    channel_relative_path,
)
from splatbench.fsutil import atomic_write_json


def _request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": "sb-job",
        "RoleArn": "arn:aws:iam::000000000000:role/splatbench-training",
        "AlgorithmSpecification": {
            "TrainingImage": "000000000000.dkr.ecr.us-east-1.amazonaws.com/sb@sha256:" + "0" * 64,
            "TrainingInputMode": "File",
        },
        "HyperParameters": {"splatbench_commit": "a" * 40},
        "InputDataConfig": [
            {
                "ChannelName": "code",
                "InputMode": "File",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/code/x/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/output/"},
        "ResourceConfig": {
            "InstanceType": "ml.g5.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 50,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    request.update(changes)
    return request


def _code(exc: BaseException) -> str:
    assert isinstance(exc, ClientError)
    return exc.response["Error"]["Code"]


def test_model_violations_fail_client_side_like_boto3(tmp_path: Path) -> None:
    sm = LocalSageMaker(tmp_path)
    with pytest.raises(ParamValidationError, match="Unknown parameter"):
        sm.create_training_job(**_request(Bogus=1))
    request = _request()
    del request["RoleArn"]
    with pytest.raises(ParamValidationError, match="RoleArn"):
        sm.create_training_job(**request)
    assert not (tmp_path / "jobs").exists()  # nothing was recorded


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"AlgorithmSpecification": None}, "AlgorithmSpecification"),
        ({"ResourceConfig": None}, "ResourceConfig"),
        ({"StoppingCondition": None}, "StoppingCondition"),
        ({"EnableManagedSpotTraining": True}, "MaxWaitTimeInSeconds"),
    ],
)
def test_strict_list_and_sagemaker_rules_are_validation_exceptions(
    tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    request = _request(**{k: v for k, v in change.items() if v is not None})
    for key, value in change.items():
        if value is None:
            del request[key]
    with pytest.raises(ClientError, match=needle) as err:
        LocalSageMaker(tmp_path).create_training_job(**request)
    assert _code(err.value) == "ValidationException"


def test_missing_channel_input_mode_is_refused(tmp_path: Path) -> None:
    request = _request()
    del request["InputDataConfig"][0]["InputMode"]
    with pytest.raises(ClientError, match="InputMode"):
        LocalSageMaker(tmp_path).create_training_job(**request)


def test_spot_wait_must_exceed_runtime(tmp_path: Path) -> None:
    request = _request(
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600},
    )
    with pytest.raises(ClientError, match="must be above"):
        LocalSageMaker(tmp_path).create_training_job(**request)


def test_what_the_executor_cannot_play_is_refused(tmp_path: Path) -> None:
    sm = LocalSageMaker(tmp_path)
    rc = {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50}
    with pytest.raises(ClientError, match="single-instance"):
        sm.create_training_job(**_request(ResourceConfig=rc))
    algo = dict(_request()["AlgorithmSpecification"], TrainingInputMode="Pipe")
    with pytest.raises(ClientError, match="File only"):
        sm.create_training_job(**_request(AlgorithmSpecification=algo))
    ckpt = {"S3Uri": "s3://bucket/ckpt/", "LocalPath": "/data/ckpt"}
    with pytest.raises(ClientError, match="under /opt/ml/"):
        sm.create_training_job(**_request(CheckpointConfig=ckpt))


def test_duplicate_name_is_resource_in_use(tmp_path: Path) -> None:
    (tmp_path / "jobs" / "sb-job").mkdir(parents=True)
    with pytest.raises(ClientError, match="must be unique") as err:
        LocalSageMaker(tmp_path).create_training_job(**_request())
    assert _code(err.value) == "ResourceInUse"


def test_unknown_jobs_and_log_groups(tmp_path: Path) -> None:
    sm = LocalSageMaker(tmp_path)
    for call in (sm.describe_training_job, sm.stop_training_job, sm.interrupt_spot):
        with pytest.raises(ClientError, match="Requested resource not found") as err:
            call(TrainingJobName="nope")
        assert _code(err.value) == "ValidationException"
    logs = LocalLogs(tmp_path)
    with pytest.raises(ClientError, match="log group does not exist") as err:
        logs.describe_log_streams(logGroupName="/aws/other", logStreamNamePrefix="x")
    assert _code(err.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError, match="log stream does not exist"):
        logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="nope/algo-1-1")
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []


def _fake_job(state_dir: Path, name: str, pid: int, status: str = "InProgress") -> Path:
    job = state_dir / "jobs" / name
    (job / "logs").mkdir(parents=True)
    now = time.time()
    atomic_write_json(job / "request.json", _request(TrainingJobName=name))
    atomic_write_json(
        job / "state.json",
        {
            "TrainingJobStatus": status,
            "SecondaryStatus": "Training",
            "CreationTime": now,
            "LastModifiedTime": now,
            "SecondaryStatusTransitions": [{"Status": "Training", "StartTime": now}],
            "Attempts": [],
        },
    )
    atomic_write_json(job / "worker.json", {"pid": pid, "started": now})
    return job


def test_a_job_whose_worker_died_is_reported_failed(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    _fake_job(tmp_path, "sb-dead", proc.pid)
    desc = LocalSageMaker(tmp_path).describe_training_job(TrainingJobName="sb-dead")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("InternalServerError: the local executor's worker")


def test_log_paging_follows_cloudwatch(tmp_path: Path) -> None:
    job = _fake_job(tmp_path, "sb-logs", 0, status="Completed")
    stream = job / "logs" / "algo-1-1700000000.jsonl"
    events = [
        {"timestamp": 1000 + i, "message": f"m{i}", "ingestionTime": 1000 + i} for i in range(5)
    ]
    stream.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"partial')
    _fake_job(tmp_path, "sb-logs-10", 0, status="Completed")  # a prefix of another job's name
    logs = LocalLogs(tmp_path)
    found = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix="sb-logs/")
    assert [s["logStreamName"] for s in found["logStreams"]] == ["sb-logs/algo-1-1700000000"]
    assert found["logStreams"][0]["lastEventTimestamp"] == 1004
    name = "sb-logs/algo-1-1700000000"
    page = logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=name, startFromHead=True, limit=3
    )
    assert [e["message"] for e in page["events"]] == ["m0", "m1", "m2"]
    page = logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=name, nextToken=page["nextForwardToken"]
    )
    assert [e["message"] for e in page["events"]] == ["m3", "m4"]  # the partial line waits
    token = page["nextForwardToken"]
    again = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=name, nextToken=token)
    assert again["events"] == [] and again["nextForwardToken"] == token  # the end, as CloudWatch
    latest = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=name, limit=2)
    assert [e["message"] for e in latest["events"]] == ["m3", "m4"]


def test_channel_paths_follow_sagemaker() -> None:
    assert channel_relative_path("code/abc/", "code/abc/code.bundle") == "code.bundle"
    assert channel_relative_path("data/tra", "data/train/a.csv") == "train/a.csv"
    assert channel_relative_path("data/one.csv", "data/one.csv") == "one.csv"
    assert channel_relative_path("data/", "data/sub/") is None  # a folder marker
    assert channel_relative_path("data/", "data/../etc/passwd") is None


def test_cli_describes_and_refuses_to_interrupt_a_non_spot_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from splatbench.cloud.local_executor import main

    _fake_job(tmp_path, "sb-cli", 0, status="Completed")
    assert main(["describe", str(tmp_path), "sb-cli"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == (
        "s3://bucket/output/sb-cli/output/model.tar.gz"
    )
    with pytest.raises(ClientError, match="not a managed spot training job"):
        main(["interrupt", str(tmp_path), "sb-cli"])
    with pytest.raises(ClientError, match="not in progress"):
        main(["stop", str(tmp_path), "sb-cli"])
