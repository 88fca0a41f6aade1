"""The launcher behind ``splatbench remote``: plan, submit, wait, tail logs, stop.

SageMaker and CloudWatch Logs are reached only through boto3-client-shaped objects
(:class:`Backend`): boto3 clients for AWS, or :mod:`splatbench.cloud.local_executor`'s
``LocalSageMaker``/``LocalLogs``, which play SageMaker on this machine with the same request,
the same ``/opt/ml`` contract and the same response shapes. Everything above the clients is
shared, so trying a job locally exercises the same launcher code that pays for GPUs.

A run is planned completely before anything is created (:mod:`.remote_plan`); :func:`launch`
then checks the budget, uploads the code bundle and submits. What the launcher remembers
between commands is in :mod:`.remote_state`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from splatbench.cloud.code_channel import upload_code
from splatbench.cloud.costs import check_budget
from splatbench.cloud.remote_config import RemoteConfig
from splatbench.cloud.remote_plan import RunPlan
from splatbench.cloud.remote_state import record_for, save_plan, save_record
from splatbench.cloud.s3 import S3Settings, make_client, scrub
from splatbench.cloud.sagemaker import LOG_GROUP
from splatbench.errors import ConfigError, SplatbenchError

TERMINAL = ("Completed", "Failed", "Stopped")
AWS_POLL_SECONDS = 15.0
LOCAL_POLL_SECONDS = 1.0
TAIL_LINES = 30


class RemoteError(SplatbenchError):
    """A SageMaker / CloudWatch call failed or a job is not in the state a command needs."""


# --------------------------------------------------------------------------------------------
# Clients


@dataclass
class Backend:
    """The clients one command uses; ``kind`` is ``sagemaker`` or ``local``."""

    kind: str
    sagemaker: Any
    logs: Any
    s3: Any
    ecr: Any = None
    poll_seconds: float = AWS_POLL_SECONDS


def connect(cfg: RemoteConfig, repo: Path) -> Backend:
    """boto3 clients for ``cfg`` (or the local executor's stand-ins for ``backend: local``).

    Raises:
        RemoteError: no region, an unknown profile, or the local executor is missing.
    """
    s3_settings = S3Settings(endpoint_url=cfg.endpoint_url, region=cfg.region, profile=cfg.profile)
    s3 = make_client(s3_settings)
    if cfg.is_local:
        try:
            from splatbench.cloud.local_executor import LocalLogs, LocalSageMaker
        except ImportError as exc:  # pragma: no cover - only on a checkout without it
            raise RemoteError(
                f"the local backend is not available ({exc})",
                fix="use --backend sagemaker",
            ) from exc
        root = (repo / cfg.local_root).resolve()
        # The executor's worker reads S3 settings from the environment (as botocore does).
        image_home = (repo / cfg.local_image_home).resolve() if cfg.local_image_home else repo
        return Backend(
            "local",
            LocalSageMaker(root, image_home=image_home),
            LocalLogs(root),
            s3,
            None,
            cfg.poll_seconds or LOCAL_POLL_SECONDS,
        )
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    try:
        session = boto3.session.Session(profile_name=cfg.profile, region_name=cfg.region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise RemoteError(
            f"AWS profile {cfg.profile!r} not found", fix="check --profile / AWS_PROFILE"
        ) from exc
    if session.region_name is None:
        raise RemoteError(
            "no AWS region", fix="pass --region, set AWS_REGION, or set `region:` in remote.yaml"
        )
    config = Config(retries={"mode": "standard", "max_attempts": 8})
    return Backend(
        "sagemaker",
        session.client("sagemaker", config=config),
        session.client("logs", config=config),
        s3,
        session.client("ecr", config=config),
        cfg.poll_seconds or AWS_POLL_SECONDS,
    )


def _remote_error(what: str, exc: BaseException) -> RemoteError:
    """A botocore (or executor) error as a :class:`RemoteError`, secrets scrubbed."""
    code = _error_code(exc)
    fix = {
        "AccessDeniedException": "grant the caller the permissions printed by "
        "`splatbench remote iam-policy`",
        "ResourceLimitExceeded": "lower --max-parallel, or ask AWS for a higher quota of "
        "this instance type for training (Service Quotas)",
        "ThrottlingException": "wait a little and re-run the same command",
    }.get(code or "", "check the message above; re-run the command when fixed")
    return RemoteError(f"{what} failed: {scrub(f'{type(exc).__name__}: {exc}')}", fix=fix)


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """One API call; client errors become :class:`RemoteError`."""
    try:
        return fn(**kwargs)
    except SplatbenchError:
        raise
    except Exception as exc:
        raise _remote_error(what, exc) from exc


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def describe(backend: Backend, name: str) -> dict[str, Any]:
    """DescribeTrainingJob; a missing job is a :class:`RemoteError` naming it."""
    try:
        return backend.sagemaker.describe_training_job(TrainingJobName=name)
    except SplatbenchError:
        raise
    except Exception as exc:
        if _error_code(exc) == "ValidationException" and "not found" in str(exc).lower():
            raise RemoteError(
                f"training job {name!r} not found ({backend.kind} backend)",
                fix="check the name (`splatbench remote list`), the region and --backend",
            ) from exc
        raise _remote_error(f"describing {name}", exc) from exc


def job_exists(backend: Backend, name: str) -> bool:
    try:
        describe(backend, name)
    except RemoteError as err:
        if "not found" in err.message:
            return False
        raise
    return True


# --------------------------------------------------------------------------------------------
# Submission and waiting


def submit(backend: Backend, request: Mapping[str, Any]) -> str:
    """CreateTrainingJob; returns the job's name."""
    _call(
        f"creating training job {request['TrainingJobName']}",
        backend.sagemaker.create_training_job,
        **request,
    )
    return str(request["TrainingJobName"])


@dataclass
class JobState:
    """What the waiting display shows for one job."""

    name: str
    status: str = "Pending"
    secondary: str = ""
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass
class RunOutcome:
    states: dict[str, JobState]

    @property
    def ok(self) -> bool:
        return all(s.status == "Completed" for s in self.states.values())

    @property
    def failed(self) -> list[JobState]:
        return [s for s in self.states.values() if s.done and s.status != "Completed"]


class Reporter:
    """Where waiting reports go: a rich live display on a terminal, plain lines otherwise."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Reporter:
        if self.console.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, state: JobState, changed: bool) -> None:
        text = f"{state.name}  {state.status}" + (
            f" / {state.secondary}" if state.secondary else ""
        )
        if self._progress is not None:
            if state.name not in self._tasks:
                self._tasks[state.name] = self._progress.add_task(text, total=1)
            self._progress.update(
                self._tasks[state.name], description=text, completed=1 if state.done else 0
            )
        elif changed:
            self.console.print(text, highlight=False)

    def log(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)


class LogFollower:
    """Reads a job's CloudWatch streams (``<job>/algo-1-<epoch>``; a spot restart adds one)
    from the start, remembering each stream's ``nextForwardToken`` between polls."""

    def __init__(self, logs: Any, job: str) -> None:
        self.logs = logs
        self.job = job
        self.tokens: dict[str, str | None] = {}

    def streams(self) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{self.job}/"}
        while True:
            try:
                page = self.logs.describe_log_streams(**kwargs)
            except Exception as exc:
                if _error_code(exc) == "ResourceNotFoundException":  # no log group yet
                    return names
                raise _remote_error(f"listing log streams of {self.job}", exc) from exc
            names += [s["logStreamName"] for s in page.get("logStreams", [])]
            token = page.get("nextToken")
            if not token:
                return sorted(names)
            kwargs["nextToken"] = token

    def poll(self) -> list[str]:
        """New log lines since the last poll, stream by stream."""
        lines: list[str] = []
        for stream in self.streams():
            token = self.tokens.get(stream)
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if token:
                    kwargs["nextToken"] = token
                page = _call(f"reading log stream {stream}", self.logs.get_log_events, **kwargs)
                lines += [e["message"].rstrip("\n") for e in page.get("events", [])]
                nxt = page.get("nextForwardToken")
                if not nxt or nxt == token:  # CloudWatch returns the same token at the end
                    break
                token = nxt
            self.tokens[stream] = token
        return lines


def tail(backend: Backend, job: str, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a job's log."""
    return list(deque(LogFollower(backend.logs, job).poll(), maxlen=lines))


def run_jobs(
    backend: Backend,
    requests: Sequence[Mapping[str, Any]],
    *,
    max_parallel: int,
    wait: bool,
    reporter: Reporter,
    on_submit: Callable[[Mapping[str, Any]], None] = lambda _r: None,
    follow_logs: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """Submit ``requests`` with at most ``max_parallel`` running; with ``wait``, until all end.

    Jobs that already exist (a resumed sweep) are not submitted again; they are waited for.
    """
    pending = deque(requests)
    states: dict[str, JobState] = {}
    running: list[str] = []
    followers: dict[str, LogFollower] = {}
    while pending or (wait and running):
        while pending and len(running) < max_parallel:
            request = pending.popleft()
            name = str(request["TrainingJobName"])
            if not job_exists(backend, name):
                submit(backend, request)
            on_submit(request)
            states[name] = JobState(name, "InProgress", "Starting")
            reporter.update(states[name], changed=True)
            running.append(name)
            if follow_logs:
                followers[name] = LogFollower(backend.logs, name)
        if not wait:
            if pending:  # pragma: no cover - the caller refuses this combination up front
                raise ConfigError("internal: jobs left unsubmitted without --wait")
            break
        for name in list(running):
            desc = describe(backend, name)
            state = states[name]
            status = str(desc.get("TrainingJobStatus", ""))
            secondary = str(desc.get("SecondaryStatus", ""))
            changed = (status, secondary) != (state.status, state.secondary)
            state.status, state.secondary, state.description = status, secondary, desc
            if name in followers:
                for line in followers[name].poll():
                    reporter.log(line)
            reporter.update(state, changed)
            if state.done:
                running.remove(name)
        if running or pending:
            sleep(backend.poll_seconds)
    return RunOutcome(states)


def wait_for(
    backend: Backend,
    names: Sequence[str],
    *,
    reporter: Reporter,
    follow_logs: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """Wait for already-submitted jobs."""
    requests = [{"TrainingJobName": n} for n in names]
    for name in names:
        describe(backend, name)  # a clear error for an unknown job before waiting
    return run_jobs(
        backend,
        requests,
        max_parallel=max(1, len(names)),
        wait=True,
        reporter=reporter,
        follow_logs=follow_logs,
        sleep=sleep,
    )


def stop(backend: Backend, name: str) -> str:
    """StopTrainingJob; returns the status it had (a finished job is left alone)."""
    status = str(describe(backend, name).get("TrainingJobStatus"))
    if status in TERMINAL:
        return status
    _call(f"stopping {name}", backend.sagemaker.stop_training_job, TrainingJobName=name)
    return status


def follow(
    backend: Backend,
    name: str,
    *,
    emit: Callable[[str], None],
    follow: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Print a job's log; with ``follow`` keep reading until the job ends. Returns its status."""
    follower = LogFollower(backend.logs, name)
    while True:
        status = str(describe(backend, name).get("TrainingJobStatus"))
        for line in follower.poll():
            emit(line)
        if not follow or status in TERMINAL:
            if follow:  # the last lines may land after the status flips
                for line in follower.poll():
                    emit(line)
            return status
        sleep(backend.poll_seconds)


def jsonable(value: Any) -> Any:
    """A DescribeTrainingJob response as JSON (datetimes as ISO 8601, no ResponseMetadata)."""
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def dump_json(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, sort_keys=True)


def launch(
    repo: Path,
    backend: Backend,
    plan: RunPlan,
    cfg: RemoteConfig,
    *,
    wait: bool,
    reporter: Reporter,
    follow_logs: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[RunOutcome, bool]:
    """Upload the code bundle (unless that commit's is there), record the sweep, submit.

    Returns the outcome and whether the bundle was uploaded (False: reused).

    Raises:
        ConfigError: the worst-case cost is above ``cfg.max_usd``, or more jobs than
            ``max_parallel`` without waiting (nobody would submit the rest).
    """
    check_budget([job.cost for job in plan.jobs], cfg.max_usd)
    if not wait and len(plan.jobs) > cfg.max_parallel:
        raise ConfigError(
            f"{len(plan.jobs)} jobs with --max-parallel {cfg.max_parallel} need --wait "
            "(the launcher submits the rest as running jobs finish)",
            fix="add --wait, or raise --max-parallel",
        )
    _, uploaded = upload_code(backend.s3, plan.settings.jobs, repo, plan.code.commit)
    save_plan(repo, plan, cfg)

    def on_submit(request: Mapping[str, Any]) -> None:
        save_record(repo, record_for(request, cfg, plan.code.baseline, plan.sweep))

    outcome = run_jobs(
        backend,
        plan.requests,
        max_parallel=cfg.max_parallel,
        wait=wait,
        reporter=reporter,
        on_submit=on_submit,
        follow_logs=follow_logs,
        sleep=sleep,
    )
    return outcome, uploaded
