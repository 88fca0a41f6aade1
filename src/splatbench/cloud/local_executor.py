"""A local executor that plays SageMaker (training jobs) and CloudWatch Logs on this machine.

``LocalSageMaker`` takes the same ``CreateTrainingJob`` request as AWS and answers
``describe_training_job`` / ``stop_training_job`` / ``list_training_jobs`` with responses of the
real shapes; ``LocalLogs`` answers ``describe_log_streams`` / ``get_log_events`` for the
``/aws/sagemaker/TrainingJobs`` log group. ``splatbench remote --backend local`` uses them to try a
job before paying for it, and the tests use them to run the real container entrypoint end to end.

What it does for a job, as SageMaker does (the "image" is a checkout of this project,
``image_home``, run with the image's interpreter ``python``):

* validates the request: botocore's model (:class:`botocore.exceptions.ParamValidationError`,
  as boto3 raises client-side) and :func:`splatbench.cloud.jobs.validate_request`'s strict
  list and SageMaker's documented rules (``ClientError`` ``ValidationException``); a duplicate
  name is ``ResourceInUse``;
* runs each job in a detached worker process (``python -m splatbench.cloud.local_executor
  run-job STATE JOB``), with the job's state in ``STATE/jobs/<job>/``, so separate commands
  (run, then status, logs, stop) see the same job;
* per attempt (one "instance"), builds a fresh ``/opt/ml``-shaped root: downloads every
  ``InputDataConfig`` channel (``S3Prefix``, File mode) into ``input/data/<channel>/``, writes
  ``hyperparameters.json`` (strings), ``resourceconfig.json`` and ``inputdataconfig.json``,
  restores ``CheckpointConfig.S3Uri`` into ``checkpoints/``, then runs
  ``containers/entrypoint.sh train`` with ``SPLATBENCH_SM_ROOT`` set to that root;
* mirrors ``checkpoints/`` to S3 while the job runs and when it exits (new and changed files up,
  deleted files removed, as SageMaker documents), except dot-files (temporaries of atomic
  writes);
* streams the container's output into a log stream ``<job>/algo-1-<epoch>``;
* on exit 0 tars ``model/`` into ``<S3OutputPath>/<job>/output/model.tar.gz`` (also after a
  stop); otherwise the job fails with ``AlgorithmError: <output/failure>`` (1024 characters);
* ``stop_training_job`` and ``MaxRuntimeInSeconds`` send SIGTERM to the container's first process
  and SIGKILL after ``stop_grace_s`` (SageMaker's 120 s);
* :meth:`LocalSageMaker.interrupt_spot` plays a managed-spot interruption: SIGTERM, the grace
  period, a final checkpoint sync, then a new attempt on a fresh root with the checkpoints
  restored (``MaxWaitTimeInSeconds`` bounds the whole job).

Not played: multi-instance jobs (refused: a splatbench job is one host), Pipe/FastFile input
modes, ManifestFile channels, VPC and KMS settings (accepted and echoed, not enforced), and the
real container isolation (the job runs as a process of this user, with this machine's tools).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from splatbench.fsutil import atomic_write_json, read_json

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"
STOP_GRACE_S = 120.0  # SageMaker's window between SIGTERM and SIGKILL
FAILURE_REASON_CHARS = 1024
CONTAINER_ENTRYPOINT = "containers/entrypoint.sh"
IMAGE_ROOT = "/opt/splatbench"  # the images' WORKDIR (containers/Dockerfile*)
SM_ROOT = "/opt/ml"
TERMINAL = ("Completed", "Failed", "Stopped")
# Passed from the executor's environment into the "container" (credentials and endpoints the
# instance's role and network would provide on AWS); nothing else of the host environment is.
_PASS_ENV_PREFIXES = ("AWS_",)
_PASS_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "TORCH_EXTENSIONS_DIR", "SPLATBENCH_DEBUG")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _client_error(code: str, message: str, operation: str, status: int = 400) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())},
        },
        operation,
    )


def _utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts is not None else None


def _ms(ts: float) -> int:
    return int(ts * 1000)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)`` (the https form SageMaker accepts is refused)."""
    scheme, sep, rest = uri.partition("://")
    if scheme != "s3" or not sep or not rest.split("/", 1)[0]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = rest.partition("/")
    return bucket, key


def channel_relative_path(prefix: str, key: str) -> str | None:
    """Where object ``key`` lands inside a channel whose S3Prefix key is ``prefix``.

    As SageMaker: keys below the prefix keep their path relative to the prefix's "directory"
    (``data/tra`` + ``data/train/a.csv`` -> ``train/a.csv``; ``data/`` + ``data/a.csv`` ->
    ``a.csv``); a prefix naming one object gives its base name. Keys with ``..`` segments or
    empty names are refused (None).
    """
    base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    rel = key[len(base) :]
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts) or key.endswith("/"):
        return None
    return "/".join(parts)


@dataclass(frozen=True)
class ExecutorConfig:
    """Settings a job's worker needs (saved with the job, so the worker is self-contained)."""

    image_home: str
    python: str
    region: str
    account: str
    stop_grace_s: float
    checkpoint_sync_s: float
    poll_s: float


class LocalSageMaker:
    """The SageMaker training-job API, played locally (see the module docstring).

    Args:
        state_dir: where jobs live (``jobs/<name>/``); share it between the commands that
            create, watch and stop a job.
        image_home: the project checkout that plays the image (``SPLATBENCH_HOME``): its
            ``containers/entrypoint.sh`` is what runs. Default: this package's checkout.
        python: the image's interpreter; its directory leads the container's ``PATH``.
        stop_grace_s: SIGTERM-to-SIGKILL window on stop, timeout and spot interruption.
        checkpoint_sync_s: how often ``checkpoints/`` is mirrored to S3 while a job runs.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        image_home: Path | None = None,
        python: str | None = None,
        region: str | None = None,
        account: str = DEFAULT_ACCOUNT,
        stop_grace_s: float = STOP_GRACE_S,
        checkpoint_sync_s: float = 5.0,
        poll_s: float = 0.2,
        s3_client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        home = Path(image_home) if image_home else Path(__file__).resolve().parents[3]
        self.config = ExecutorConfig(
            image_home=str(home.resolve()),
            python=python or sys.executable,
            region=region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION,
            account=account,
            stop_grace_s=stop_grace_s,
            checkpoint_sync_s=checkpoint_sync_s,
            poll_s=poll_s,
        )
        # Accepted for interface symmetry; the worker, a separate process, makes its own
        # client from the environment it inherits.
        self._s3_client_factory = s3_client_factory

    # -- paths --------------------------------------------------------------------------------

    def _job_dir(self, name: str) -> Path:
        return self.state_dir / "jobs" / name

    def _arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.config.region}:{self.config.account}:training-job/{name}"

    # -- API ----------------------------------------------------------------------------------

    def create_training_job(self, **request: Any) -> dict[str, Any]:
        """Validate ``request`` as SageMaker would, record the job and start its worker."""
        op = "CreateTrainingJob"
        _validate_model(request)
        from splatbench.cloud.jobs import validate_request
        from splatbench.errors import ConfigError

        try:
            validate_request("sagemaker", op, request)
        except ConfigError as exc:
            raise _client_error("ValidationException", exc.message, op) from None
        problems = _local_limits(request)
        if problems:
            raise _client_error("ValidationException", "; ".join(problems), op)
        name = request["TrainingJobName"]
        job_dir = self._job_dir(name)
        try:
            job_dir.mkdir(parents=True)
        except FileExistsError:
            raise _client_error(
                "ResourceInUse",
                f"Training job names must be unique within an AWS account and region, and a "
                f"training job with this name already exists ({self._arn(name)})",
                op,
            ) from None
        now = time.time()
        atomic_write_json(job_dir / "request.json", request)
        atomic_write_json(job_dir / "config.json", vars(self.config))
        atomic_write_json(
            job_dir / "state.json",
            {
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Starting",
                "CreationTime": now,
                "LastModifiedTime": now,
                "SecondaryStatusTransitions": [
                    {
                        "Status": "Starting",
                        "StartTime": now,
                        "StatusMessage": "Launching requested ML instances",
                    }
                ],
                "Attempts": [],
            },
        )
        log = open(job_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the worker
        try:
            worker = subprocess.Popen(
                [sys.executable, "-m", __name__, "run-job", str(self.state_dir), name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command, like a SageMaker job
                close_fds=True,
            )
        finally:
            log.close()
        atomic_write_json(job_dir / "worker.json", {"pid": worker.pid, "started": time.time()})
        return {"TrainingJobArn": self._arn(name)}

    def describe_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:
        job_dir = self._job_dir(TrainingJobName)
        if not (job_dir / "state.json").is_file():
            raise _client_error(
                "ValidationException", "Requested resource not found.", "DescribeTrainingJob"
            )
        request = read_json(job_dir / "request.json")
        state = self._state_checked(TrainingJobName)
        out: dict[str, Any] = {
            "TrainingJobName": TrainingJobName,
            "TrainingJobArn": self._arn(TrainingJobName),
            "ModelArtifacts": {"S3ModelArtifacts": model_artifact_uri(request)},
            "TrainingJobStatus": state["TrainingJobStatus"],
            "SecondaryStatus": state["SecondaryStatus"],
            "HyperParameters": request.get("HyperParameters", {}),
            "AlgorithmSpecification": request["AlgorithmSpecification"],
            "RoleArn": request["RoleArn"],
            "InputDataConfig": request.get("InputDataConfig", []),
            "OutputDataConfig": request["OutputDataConfig"],
            "ResourceConfig": request["ResourceConfig"],
            "StoppingCondition": request["StoppingCondition"],
            "CreationTime": _utc(state["CreationTime"]),
            "LastModifiedTime": _utc(state["LastModifiedTime"]),
            "SecondaryStatusTransitions": [
                {k: (_utc(v) if k.endswith("Time") else v) for k, v in t.items()}
                for t in state["SecondaryStatusTransitions"]
            ],
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
            "EnableInterContainerTrafficEncryption": request.get(
                "EnableInterContainerTrafficEncryption", False
            ),
            "EnableManagedSpotTraining": request.get("EnableManagedSpotTraining", False),
        }
        for key in ("VpcConfig", "CheckpointConfig", "Environment", "RetryStrategy"):
            if key in request:
                out[key] = request[key]
        if state.get("FailureReason"):
            out["FailureReason"] = state["FailureReason"]
        for key in ("TrainingStartTime", "TrainingEndTime"):
            if state.get(key) is not None:
                out[key] = _utc(state[key])
        if state.get("TrainingEndTime") is not None and state.get("TrainingStartTime"):
            out["TrainingTimeInSeconds"] = max(
                1, math.ceil(state["TrainingEndTime"] - state["TrainingStartTime"])
            )
            out["BillableTimeInSeconds"] = max(
                1, math.ceil(sum(a.get("seconds", 0.0) for a in state["Attempts"]))
            )
        return out

    def stop_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:
        op = "StopTrainingJob"
        job_dir = self._job_dir(TrainingJobName)
        if not (job_dir / "state.json").is_file():
            raise _client_error("ValidationException", "Requested resource not found.", op)
        state = self._state_checked(TrainingJobName)
        if state["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            raise _client_error(
                "ValidationException",
                f"The training job {TrainingJobName} is not in progress "
                f"(status {state['TrainingJobStatus']}); only in-progress jobs can be stopped.",
                op,
            )
        _touch(job_dir / "control" / "stop")
        return {}

    def interrupt_spot(self, *, TrainingJobName: str) -> dict[str, Any]:
        """Play a spot interruption of a managed-spot job (not an AWS API: a test hook)."""
        op = "InterruptSpot"
        job_dir = self._job_dir(TrainingJobName)
        if not (job_dir / "state.json").is_file():
            raise _client_error("ValidationException", "Requested resource not found.", op)
        request = read_json(job_dir / "request.json")
        if not request.get("EnableManagedSpotTraining"):
            raise _client_error(
                "ValidationException",
                f"{TrainingJobName} is not a managed spot training job; it cannot be "
                "interrupted and restarted",
                op,
            )
        if self._state_checked(TrainingJobName)["TrainingJobStatus"] != "InProgress":
            raise _client_error("ValidationException", "the job is not in progress", op)
        _touch(job_dir / "control" / f"interrupt-{uuid.uuid4().hex[:8]}")
        return {}

    def list_training_jobs(
        self,
        *,
        NameContains: str | None = None,
        StatusEquals: str | None = None,
        SortBy: str = "CreationTime",
        SortOrder: str = "Descending",
        MaxResults: int = 100,
        NextToken: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        jobs_dir = self.state_dir / "jobs"
        rows = []
        for job_dir in sorted(jobs_dir.iterdir()) if jobs_dir.is_dir() else []:
            if not (job_dir / "state.json").is_file():
                continue
            name = job_dir.name
            if NameContains and NameContains not in name:
                continue
            state = self._state_checked(name)
            if StatusEquals and state["TrainingJobStatus"] != StatusEquals:
                continue
            row = {
                "TrainingJobName": name,
                "TrainingJobArn": self._arn(name),
                "CreationTime": _utc(state["CreationTime"]),
                "LastModifiedTime": _utc(state["LastModifiedTime"]),
                "TrainingJobStatus": state["TrainingJobStatus"],
                "SecondaryStatus": state["SecondaryStatus"],
            }
            if state.get("TrainingEndTime") is not None:
                row["TrainingEndTime"] = _utc(state["TrainingEndTime"])
            rows.append(row)
        key = {"Name": "TrainingJobName", "Status": "TrainingJobStatus"}.get(SortBy, SortBy)
        rows.sort(key=lambda r: r[key], reverse=SortOrder == "Descending")
        start = int(NextToken or 0)
        page = rows[start : start + MaxResults]
        out: dict[str, Any] = {"TrainingJobSummaries": page}
        if start + MaxResults < len(rows):
            out["NextToken"] = str(start + MaxResults)
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _state_checked(self, name: str) -> dict[str, Any]:
        """The job's state; an in-progress job whose worker died is reported Failed."""
        job_dir = self._job_dir(name)
        state = read_json(job_dir / "state.json")
        if state["TrainingJobStatus"] not in TERMINAL:
            if not _worker_alive(job_dir):
                # Re-read: the worker may have finished between the two reads.
                state = read_json(job_dir / "state.json")
                if state["TrainingJobStatus"] not in TERMINAL:
                    now = time.time()
                    state.update(
                        TrainingJobStatus="Failed",
                        SecondaryStatus="Failed",
                        FailureReason="InternalServerError: the local executor's worker "
                        f"process ended unexpectedly; see {job_dir / 'worker.log'}",
                        TrainingEndTime=now,
                        LastModifiedTime=now,
                    )
                    atomic_write_json(job_dir / "state.json", state)
            elif (job_dir / "control" / "stop").exists() and state["TrainingJobStatus"] == (
                "InProgress"
            ):
                state = dict(state, TrainingJobStatus="Stopping", SecondaryStatus="Stopping")
        return state


def model_artifact_uri(request: dict[str, Any]) -> str:
    base = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return f"{base}/{request['TrainingJobName']}/output/model.tar.gz"


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _worker_alive(job_dir: Path) -> bool:
    info_path = job_dir / "worker.json"
    if not info_path.is_file():
        return True  # being started
    info = read_json(info_path)
    import psutil

    try:
        proc = psutil.Process(info["pid"])
        # The pid may have been reused: the worker started before worker.json was written.
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= info["started"] + 1
    except psutil.NoSuchProcess:
        return False


def _validate_model(request: dict[str, Any]) -> None:
    """What boto3 checks before sending: botocore's ``ParamValidator`` on the model."""
    import botocore.session
    from botocore.exceptions import ParamValidationError
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateTrainingJob").input_shape
    report = ParamValidator().validate(request, shape)
    if report.has_errors():
        raise ParamValidationError(report=report.generate_report())


def _local_limits(request: dict[str, Any]) -> list[str]:
    """Requests SageMaker accepts but this executor cannot play faithfully."""
    problems = []
    algo = request.get("AlgorithmSpecification", {})
    if algo.get("TrainingInputMode", "File") != "File":
        problems.append("the local executor supports TrainingInputMode File only")
    entry = algo.get("ContainerEntrypoint")
    if entry and not (len(entry) >= 1 and entry[0].startswith(IMAGE_ROOT + "/")):
        problems.append(
            f"the local executor runs the image's own files only: ContainerEntrypoint must "
            f"start with {IMAGE_ROOT}/"
        )
    if request.get("ResourceConfig", {}).get("InstanceCount", 1) != 1:
        problems.append(
            "the local executor runs single-instance jobs (InstanceCount 1); a splatbench job "
            "is one host"
        )
    for channel in request.get("InputDataConfig", []):
        s3 = channel.get("DataSource", {}).get("S3DataSource")
        if s3 is None:
            problems.append(f"channel {channel.get('ChannelName')}: only S3DataSource is supported")
            continue
        if s3.get("S3DataType") != "S3Prefix":
            problems.append(f"channel {channel['ChannelName']}: only S3DataType S3Prefix")
        if channel.get("InputMode", "File") != "File":
            problems.append(f"channel {channel['ChannelName']}: only InputMode File")
        try:
            split_s3_uri(s3["S3Uri"])
        except ValueError as exc:
            problems.append(f"channel {channel['ChannelName']}: {exc}")
    local = request.get("CheckpointConfig", {}).get("LocalPath", SM_ROOT + "/checkpoints")
    if not local.startswith(SM_ROOT + "/"):
        problems.append(f"CheckpointConfig.LocalPath must be under {SM_ROOT}/ for the local run")
    return problems


# ---------------------------------------------------------------------------------------------
# CloudWatch Logs
# ---------------------------------------------------------------------------------------------


class LocalLogs:
    """``describe_log_streams`` / ``get_log_events`` over the executor's job logs."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)

    def _check_group(self, group: str | None, op: str) -> None:
        if group != LOG_GROUP:
            raise _client_error(
                "ResourceNotFoundException", "The specified log group does not exist.", op
            )

    def _streams(self) -> dict[str, Path]:
        found = {}
        for path in sorted(self.state_dir.glob("jobs/*/logs/*.jsonl")):
            found[f"{path.parent.parent.name}/{path.stem}"] = path
        return found

    def describe_log_streams(
        self,
        *,
        logGroupName: str | None = None,
        logStreamNamePrefix: str = "",
        orderBy: str = "LogStreamName",
        descending: bool = False,
        limit: int = 50,
        nextToken: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self._check_group(logGroupName, "DescribeLogStreams")
        rows = []
        for name, path in self._streams().items():
            if not name.startswith(logStreamNamePrefix):
                continue
            events = _read_events(path)
            created = _ms(path.stat().st_ctime)
            row: dict[str, Any] = {
                "logStreamName": name,
                "creationTime": events[0]["timestamp"] if events else created,
                "arn": f"arn:aws:logs:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:log-group:"
                f"{LOG_GROUP}:log-stream:{name}",
                "storedBytes": 0,
            }
            if events:
                row["firstEventTimestamp"] = events[0]["timestamp"]
                row["lastEventTimestamp"] = events[-1]["timestamp"]
                row["lastIngestionTime"] = events[-1]["ingestionTime"]
            rows.append(row)
        key = "logStreamName" if orderBy == "LogStreamName" else "lastEventTimestamp"
        rows.sort(key=lambda r: r.get(key, 0), reverse=descending)
        start = int(nextToken or 0)
        out: dict[str, Any] = {"logStreams": rows[start : start + limit]}
        if start + limit < len(rows):
            out["nextToken"] = str(start + limit)
        return out

    def get_log_events(
        self,
        *,
        logGroupName: str | None = None,
        logStreamName: str,
        nextToken: str | None = None,
        startFromHead: bool = False,
        limit: int = 10000,
        **_: Any,
    ) -> dict[str, Any]:
        """Events from the token on (forward), as CloudWatch: at the end the forward token
        returned is the one passed in."""
        op = "GetLogEvents"
        self._check_group(logGroupName, op)
        path = self._streams().get(logStreamName)
        if path is None:
            raise _client_error(
                "ResourceNotFoundException", "The specified log stream does not exist.", op
            )
        events = _read_events(path)
        if nextToken:
            direction, _, index = nextToken.partition("/")
            position = int(index)
            if direction == "b":
                start = max(0, position - limit)
                page = events[start:position]
                return _events_page(page, start, start + len(page), nextToken)
            page = events[position : position + limit]
            return _events_page(page, position, position + len(page), nextToken)
        if startFromHead:
            page = events[:limit]
            return _events_page(page, 0, len(page), None)
        start = max(0, len(events) - limit)
        return _events_page(events[start:], start, len(events), None)


def _events_page(page: list[dict[str, Any]], start: int, end: int, token: str | None) -> dict:
    forward = f"f/{end:020d}"
    if token and token.startswith("f/") and not page:
        forward = token
    return {"events": page, "nextForwardToken": forward, "nextBackwardToken": f"b/{start:020d}"}


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):  # a line being written is read next time
                events.append(json.loads(line))
    return events


# ---------------------------------------------------------------------------------------------
# The worker: one job, all its attempts
# ---------------------------------------------------------------------------------------------


class _Worker:
    def __init__(self, state_dir: Path, name: str) -> None:
        self.job_dir = Path(state_dir) / "jobs" / name
        self.name = name
        self.request = read_json(self.job_dir / "request.json")
        self.config = ExecutorConfig(**read_json(self.job_dir / "config.json"))
        self.state = read_json(self.job_dir / "state.json")
        self.seen_interrupts: set[str] = set()
        self._s3: Any = None
        self.synced: dict[str, tuple[int, int]] = {}  # checkpoint rel path -> (size, mtime_ns)

    # -- state --------------------------------------------------------------------------------

    def save(self) -> None:
        self.state["LastModifiedTime"] = time.time()
        atomic_write_json(self.job_dir / "state.json", self.state)

    def transition(self, status: str, message: str) -> None:
        now = time.time()
        transitions = self.state["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        self.state["SecondaryStatus"] = status
        self.save()

    def finish(self, status: str, secondary: str, message: str, reason: str | None = None) -> None:
        now = time.time()
        self.transition(secondary, message)
        self.state["SecondaryStatusTransitions"][-1]["EndTime"] = now
        self.state["TrainingJobStatus"] = status
        self.state["TrainingEndTime"] = now
        self.state.setdefault("TrainingStartTime", now)
        if reason:
            self.state["FailureReason"] = reason[:FAILURE_REASON_CHARS]
        self.save()

    # -- S3 -----------------------------------------------------------------------------------

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from splatbench.cloud.s3 import make_client

            self._s3 = make_client()
        return self._s3

    def download_prefix(self, uri: str, dest: Path) -> int:
        bucket, prefix = split_s3_uri(uri)
        count = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = channel_relative_path(prefix, obj["Key"])
                if rel is None:
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, obj["Key"], str(target))
                count += 1
        return count

    def restore_checkpoints(self, local: Path) -> int:
        config = self.request.get("CheckpointConfig")
        local.mkdir(parents=True, exist_ok=True)
        self.synced = {}
        if not config:
            return 0
        bucket, prefix = split_s3_uri(config["S3Uri"])
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        count = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if not rel or any(p in ("", ".", "..") for p in rel.split("/")):
                    continue
                target = local / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, obj["Key"], str(target))
                st = target.stat()
                self.synced[rel] = (st.st_size, st.st_mtime_ns)
                count += 1
        return count

    def sync_checkpoints(self, local: Path) -> None:
        """Mirror ``local`` to CheckpointConfig.S3Uri (uploads and deletions)."""
        config = self.request.get("CheckpointConfig")
        if not config or not local.is_dir():
            return
        bucket, prefix = split_s3_uri(config["S3Uri"])
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        present: dict[str, tuple[int, int]] = {}
        for path in local.rglob("*"):
            rel = path.relative_to(local).as_posix()
            if path.is_file() and not any(p.startswith(".") for p in rel.split("/")):
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    present[rel] = (st.st_size, st.st_mtime_ns)
        for rel, sig in sorted(present.items()):
            if self.synced.get(rel) != sig:
                with contextlib.suppress(FileNotFoundError):  # deleted while we looked
                    self.s3.upload_file(str(local / rel), bucket, prefix + rel)
                    self.synced[rel] = sig
        for rel in sorted(set(self.synced) - set(present)):
            self.s3.delete_object(Bucket=bucket, Key=prefix + rel)
            del self.synced[rel]

    def upload_model(self, model_dir: Path) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            if model_dir.is_dir():
                for path in sorted(model_dir.rglob("*")):
                    tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
        bucket, key = split_s3_uri(model_artifact_uri(self.request))
        self.s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())

    # -- the container ------------------------------------------------------------------------

    def prepare_root(self, attempt: int) -> Path:
        root = self.job_dir / "attempts" / str(attempt) / "opt_ml"
        shutil.rmtree(root, ignore_errors=True)
        config_dir = root / "input" / "config"
        config_dir.mkdir(parents=True)
        for sub in ("model", "output", "output/data", "input/data"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            config_dir / "hyperparameters.json", self.request.get("HyperParameters", {})
        )
        rc = self.request["ResourceConfig"]
        atomic_write_json(
            config_dir / "resourceconfig.json",
            {
                "current_host": "algo-1",
                "current_instance_type": rc.get("InstanceType"),
                "current_group_name": "homogeneousCluster",
                "hosts": ["algo-1"],
                "instance_groups": [
                    {
                        "instance_group_name": "homogeneousCluster",
                        "instance_type": rc.get("InstanceType"),
                        "hosts": ["algo-1"],
                    }
                ],
                "network_interface_name": "eth0",
            },
        )
        atomic_write_json(
            config_dir / "inputdataconfig.json",
            {
                c["ChannelName"]: {
                    "TrainingInputMode": c.get("InputMode", "File"),
                    "S3DistributionType": c["DataSource"]["S3DataSource"].get(
                        "S3DataDistributionType", "FullyReplicated"
                    ),
                    "RecordWrapperType": c.get("RecordWrapperType", "None"),
                    **({"ContentType": c["ContentType"]} if "ContentType" in c else {}),
                }
                for c in self.request.get("InputDataConfig", [])
            },
        )
        return root

    def checkpoint_dir(self, root: Path) -> Path:
        local = self.request.get("CheckpointConfig", {}).get("LocalPath", SM_ROOT + "/checkpoints")
        return root / local[len(SM_ROOT) + 1 :]

    def container_env(self, root: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.startswith(_PASS_ENV_PREFIXES)}
        env.update({k: os.environ[k] for k in _PASS_ENV if k in os.environ})
        env["AWS_REGION"] = env.get("AWS_REGION") or self.config.region
        env["AWS_DEFAULT_REGION"] = env.get("AWS_DEFAULT_REGION") or self.config.region
        env["PATH"] = f"{Path(self.config.python).parent}:{_SYSTEM_PATH}"
        env.update(self.request.get("Environment", {}))
        env["TRAINING_JOB_NAME"] = self.name
        env["TRAINING_JOB_ARN"] = (
            f"arn:aws:sagemaker:{self.config.region}:{self.config.account}:training-job/{self.name}"
        )
        env["SPLATBENCH_SM_ROOT"] = str(root)
        env["SPLATBENCH_HOME"] = self.config.image_home
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def container_command(self) -> list[str]:
        algo = self.request["AlgorithmSpecification"]
        home = self.config.image_home
        entry = algo.get("ContainerEntrypoint")
        if entry:
            args = [
                home + e[len(IMAGE_ROOT) :] if e.startswith(IMAGE_ROOT + "/") else e for e in entry
            ]
            return [*args, *algo.get("ContainerArguments", [])]
        return [str(Path(home) / CONTAINER_ENTRYPOINT), "train"]

    def _pump(self, proc: subprocess.Popen[bytes], stream: Path) -> threading.Thread:
        def run() -> None:
            assert proc.stdout is not None
            with open(stream, "a", encoding="utf-8") as out:
                for raw in proc.stdout:
                    now = _ms(time.time())
                    message = raw.decode("utf-8", "replace").rstrip("\n")
                    event = {"timestamp": now, "message": message, "ingestionTime": now}
                    out.write(json.dumps(event) + "\n")
                    out.flush()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def run_attempt(self, attempt: int) -> tuple[str, int | None, Path]:
        """One instance's life: returns (why it ended, exit code, root)."""
        root = self.prepare_root(attempt)
        self.transition("Downloading", "Downloading input data")
        for channel in self.request.get("InputDataConfig", []):
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            dest = root / "input" / "data" / channel["ChannelName"]
            dest.mkdir(parents=True, exist_ok=True)
            if self.download_prefix(uri, dest) == 0:
                raise _JobClientError(
                    f'No S3 objects found under S3 URL "{uri}" given in input data source. '
                    "Please ensure that the bucket exists in the selected region, that objects "
                    "exist under that S3 prefix, and that the role has s3:ListBucket on it."
                )
        ckpt = self.checkpoint_dir(root)
        restored = self.restore_checkpoints(ckpt)
        self.transition(
            "Training",
            "Training image download completed. Training in progress."
            + (f" Restored {restored} checkpoint files." if restored else ""),
        )
        self.state.setdefault("TrainingStartTime", time.time())
        stream = self.job_dir / "logs" / f"algo-1-{int(time.time())}.jsonl"
        stream.parent.mkdir(parents=True, exist_ok=True)
        stream.touch()
        started = time.time()
        self.state["Attempts"].append({"stream": stream.stem, "started": started})
        self.save()
        proc = subprocess.Popen(
            self.container_command(),
            cwd=self.config.image_home,
            env=self.container_env(root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pump = self._pump(proc, stream)
        reason = "exited"
        term_sent: float | None = None
        last_sync = time.monotonic()
        runtime_limit = self.request["StoppingCondition"].get("MaxRuntimeInSeconds")
        wait_limit = self.request["StoppingCondition"].get("MaxWaitTimeInSeconds")
        while proc.poll() is None:
            time.sleep(self.config.poll_s)
            if term_sent is None:
                why = self._control_reason(started, runtime_limit, wait_limit)
                if why is not None:
                    reason = why
                    secondary = {
                        "stop": ("Stopping", "Stopping the training job"),
                        "interrupt": ("Interrupted", "Spot capacity was reclaimed"),
                        "runtime": ("MaxRuntimeExceeded", "Job exceeded MaxRuntimeInSeconds"),
                        "wait": ("MaxWaitTimeExceeded", "Job exceeded MaxWaitTimeInSeconds"),
                    }[why]
                    self.transition(*secondary)
                    _signal(proc.pid, signal.SIGTERM, group=False)  # docker stop: PID 1 only
                    term_sent = time.monotonic()
            elif time.monotonic() - term_sent > self.config.stop_grace_s:
                _signal(proc.pid, signal.SIGKILL, group=True)  # docker kill: everything
            if time.monotonic() - last_sync >= self.config.checkpoint_sync_s:
                self.sync_checkpoints(ckpt)
                last_sync = time.monotonic()
        _signal(proc.pid, signal.SIGKILL, group=True)  # leftovers of the "container"
        pump.join(timeout=10)
        self.sync_checkpoints(ckpt)
        self.state["Attempts"][-1]["seconds"] = time.time() - started
        self.state["Attempts"][-1]["exit_code"] = proc.returncode
        self.save()
        return reason, proc.returncode, root

    def _control_reason(
        self, started: float, runtime_limit: int | None, wait_limit: int | None
    ) -> str | None:
        control = self.job_dir / "control"
        if (control / "stop").exists():
            return "stop"
        fresh = {p.name for p in control.glob("interrupt-*")} - self.seen_interrupts
        if fresh:
            self.seen_interrupts |= fresh
            return "interrupt"
        used = sum(a.get("seconds", 0.0) for a in self.state["Attempts"][:-1])
        if runtime_limit and used + time.time() - started > runtime_limit:
            return "runtime"
        if wait_limit and time.time() - self.state["CreationTime"] > wait_limit:
            return "wait"
        return None

    def run(self) -> None:
        attempt = 0
        self.seen_interrupts = {p.name for p in (self.job_dir / "control").glob("interrupt-*")}
        try:
            while True:
                attempt += 1
                reason, code, root = self.run_attempt(attempt)
                if reason == "interrupt":
                    self.transition("Restarting", "Restarting the job on a new spot instance")
                    continue
                if reason in ("stop", "runtime", "wait"):
                    self.transition("Uploading", "Uploading generated training model")
                    self.upload_model(root / "model")
                    secondary = {
                        "stop": ("Stopped", "The job was stopped"),
                        "runtime": ("MaxRuntimeExceeded", "Training job exceeded MaxRuntime"),
                        "wait": ("MaxWaitTimeExceeded", "Training job exceeded MaxWaitTime"),
                    }[reason]
                    self.finish("Stopped", *secondary)
                    return
                if code == 0:
                    self.transition("Uploading", "Uploading generated training model")
                    self.upload_model(root / "model")
                    self.finish("Completed", "Completed", "Training job completed")
                    return
                failure = root / "output" / "failure"
                text = failure.read_text("utf-8", "replace").strip() if failure.is_file() else ""
                detail = text or f"See job logs for more information (exit code {code})"
                self.finish("Failed", "Failed", "Training job failed", f"AlgorithmError: {detail}")
                return
        except _JobClientError as exc:
            self.finish("Failed", "Failed", "Training job failed", f"ClientError: {exc}")
        except Exception as exc:
            from splatbench.cloud.s3 import scrub

            self.finish(
                "Failed",
                "Failed",
                "Training job failed",
                f"InternalServerError: {scrub(f'{type(exc).__name__}: {exc}')}",
            )
            raise


class _JobClientError(Exception):
    """A problem SageMaker reports as ``ClientError: ...`` (bad input locations)."""


def _signal(pid: int, sig: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m splatbench.cloud.local_executor",
        description="The local SageMaker executor's worker and controls.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run-job", "run a created job (the detached worker; not for direct use)"),
        ("describe", "print describe_training_job as JSON"),
        ("stop", "stop a job (SIGTERM, then SIGKILL after the grace period)"),
        ("interrupt", "play a spot interruption of a managed-spot job"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("state_dir", type=Path)
        cmd.add_argument("job")
    args = parser.parse_args(argv)
    if args.command == "run-job":
        _Worker(args.state_dir, args.job).run()
        return 0
    executor = LocalSageMaker(args.state_dir)
    if args.command == "describe":
        print(json.dumps(executor.describe_training_job(TrainingJobName=args.job), default=str))
    elif args.command == "stop":
        executor.stop_training_job(TrainingJobName=args.job)
    else:
        executor.interrupt_spot(TrainingJobName=args.job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
