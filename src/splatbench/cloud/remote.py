"""The launcher behind ``splatbench remote``: plan, submit, wait, tail logs, stop.

SageMaker and CloudWatch Logs are reached only through boto3-client-shaped objects
(:class:`Backend`): boto3 clients for AWS, or :mod:`splatbench.cloud.local_executor`'s
``LocalSageMaker``/``LocalLogs``, which play SageMaker on this machine with the same request,
the same ``/opt/ml`` contract and the same response shapes. Everything above the clients is
shared, so trying a job locally exercises the same launcher code that pays for GPUs.

A run is planned completely before anything is created: the commit, the composed parameters
(and their hash) for every sweep point, the DVC targets checked against that commit's
``dvc.yaml``, the DVC remote, the image digest, every request validated, and the worst-case cost
against ``--max-usd``. Only then is the code bundle uploaded and jobs submitted.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from splatbench.cloud.code_channel import CodeVersion, code_version, export_tree, upload_code
from splatbench.cloud.contract import JobSpec, compose_params, params_sha256
from splatbench.cloud.costs import CostLine, check_budget, price_for
from splatbench.cloud.remote_config import RemoteConfig
from splatbench.cloud.s3 import S3Settings, make_client, parse_s3_uri, scrub
from splatbench.cloud.sagemaker import (
    LOG_GROUP,
    JobLocation,
    TrainingSettings,
    build_training_request,
    job_name,
    parse_duration,
    resolve_image,
    validate_training_request,
)
from splatbench.errors import ConfigError, SplatbenchError
from splatbench.fsutil import atomic_write_json, read_json

TERMINAL = ("Completed", "Failed", "Stopped")
STATE_DIR = Path(".splatbench") / "remote"
AWS_POLL_SECONDS = 15.0
LOCAL_POLL_SECONDS = 1.0
TAIL_LINES = 30
# What a job needs from its commit to compose parameters and resolve targets.
_PLAN_PATHS = (".dvc/config", "conf", "params.yaml", "dvc.yaml")


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
# Local records: which backend a job went to, its sweep, baseline (for list / resume / fetch)


@dataclass
class JobRecord:
    """What the launcher remembers about a job it submitted (``.splatbench/remote/jobs``)."""

    name: str
    backend: str
    commit: str
    baseline: str
    params_sha256: str
    experiment: str
    targets: list[str]
    overrides: list[str]
    submitted_at: str
    jobs_uri: str
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    local_root: str | None = None
    local_image_home: str | None = None
    sweep: str | None = None


def _records_dir(repo: Path) -> Path:
    return Path(repo) / STATE_DIR / "jobs"


def save_record(repo: Path, record: JobRecord) -> None:
    atomic_write_json(_records_dir(repo) / f"{record.name}.json", asdict(record))


def load_record(repo: Path, name: str) -> JobRecord | None:
    path = _records_dir(repo) / f"{name}.json"
    if not path.is_file():
        return None
    return JobRecord(**read_json(path))


def list_records(repo: Path) -> list[JobRecord]:
    folder = _records_dir(repo)
    records = [JobRecord(**read_json(p)) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(records, key=lambda r: r.submitted_at, reverse=True)


def config_for_record(cfg: RemoteConfig, record: JobRecord | None) -> RemoteConfig:
    """``cfg`` with the backend/region/endpoint a recorded job was submitted with, unless the
    command line chose otherwise (those are applied by the caller afterwards)."""
    if record is None:
        return cfg
    return cfg.with_options(
        backend=record.backend,
        region=record.region,
        profile=record.profile,
        endpoint_url=record.endpoint_url,
        local_root=record.local_root,
        local_image_home=record.local_image_home,
        jobs_uri=record.jobs_uri,
    )


# --------------------------------------------------------------------------------------------
# Planning (no side effects beyond a pinned git ref)


@dataclass(frozen=True)
class DvcRemote:
    name: str
    url: str


@dataclass(frozen=True)
class PlannedJob:
    name: str
    spec: JobSpec
    request: dict[str, Any]
    cost: CostLine


@dataclass(frozen=True)
class RunPlan:
    """Everything ``remote run`` will submit, decided before any upload or submission."""

    code: CodeVersion
    jobs: tuple[PlannedJob, ...]
    dvc_remote: DvcRemote
    settings: TrainingSettings
    total_usd: float
    sweep: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [job.request for job in self.jobs]


def expand_sweep(overrides: Sequence[str], sweep: bool) -> list[list[str]]:
    """One override list per job: DVC's own sweep expansion (``a=1,2`` x ``b=x,y``) with
    ``sweep``; without it, sweep syntax is refused (as ``dvc exp run`` without ``--queue``).

    Raises:
        ConfigError: bad override syntax, a sweep without ``--sweep``, or a glob choice.
    """
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import get_hydra_sweeps, to_hydra_overrides
    from hydra.errors import HydraException

    items = list(overrides)
    try:
        parsed = to_hydra_overrides(items)
        if not sweep:
            sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
            if sweeps:
                raise ConfigError(
                    f"{', '.join(sweeps)} describe(s) several values",
                    fix="add --sweep to submit one job per combination",
                )
            return [items]
        points = get_hydra_sweeps({"params.yaml": items})
    except (InvalidArgumentError, HydraException) as exc:
        raise ConfigError(
            f"invalid -S override(s) {items}: {exc}",
            fix="use Hydra override syntax, e.g. -S strategy.grow_grad2d=1e-4 or, with --sweep, "
            "-S 'strategy.grow_grad2d=1e-4,2e-4'",
        ) from exc
    return [list(point["params.yaml"]) for point in points]


def dvc_remote_at(tree: Path, name: str | None) -> DvcRemote:
    """The DVC remote the job will use, from the committed ``.dvc/config`` only.

    Raises:
        ConfigError: no remote, one that exists only in ``config.local``, or not on S3.
    """
    from dvc.config import Config

    repo_cfg = Config(dvc_dir=str(tree / ".dvc"), validate=False).load_one("repo")
    chosen = name or (repo_cfg.get("core") or {}).get("remote")
    if not chosen:
        raise ConfigError(
            "the committed .dvc/config names no default DVC remote; the job pulls its inputs "
            "from it and pushes its outputs to it",
            fix="dvc remote add -d storage s3://BUCKET/PREFIX && git commit .dvc/config "
            "(or pass --dvc-remote NAME)",
        )
    remote = (repo_cfg.get("remote") or {}).get(chosen)
    if remote is None:
        raise ConfigError(
            f"DVC remote {chosen!r} is not in the committed .dvc/config (a remote defined only "
            "in .dvc/config.local or globally is invisible to the job)",
            fix=f"dvc remote add {chosen} s3://BUCKET/PREFIX && git commit .dvc/config",
        )
    url = str(remote.get("url", ""))
    if not url.startswith("s3://"):
        raise ConfigError(
            f"DVC remote {chosen!r} is {url!r}; a SageMaker job can reach only an s3:// remote",
            fix="point the remote at S3 (docs/s3.md), or pass --dvc-remote NAME",
        )
    parse_s3_uri(url)
    return DvcRemote(chosen, url)


def _check_targets(tree: Path, targets: Sequence[str]) -> None:
    """Every target resolves in the commit's ``dvc.yaml`` under the params in ``tree``."""
    if not targets:
        return
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    repo = Repo(str(tree), config={"core": {"no_scm": True}})
    try:
        for target in targets:
            try:
                repo.stage.collect(target)
            except DvcException as exc:
                raise ConfigError(
                    f"target {target!r}: {exc}",
                    fix="name stages as in dvc.yaml (`dvc stage list` shows them), e.g. "
                    "train@garden or report",
                ) from exc
    finally:
        repo.close()


def _check_experiment_name(repo: Path, baseline: str, name: str) -> None:
    from dvc.repo.experiments.refs import ExpRefInfo

    ref = str(ExpRefInfo(baseline, name))
    ok = subprocess.run(["git", "check-ref-format", ref], capture_output=True, check=False)
    if ok.returncode != 0:
        raise ConfigError(
            f"experiment name {name!r} is not a valid git ref name",
            fix="use letters, digits, '-', '_' and '.'",
        )
    exists = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", ref],
        capture_output=True,
        check=False,
    )
    if exists.returncode == 0:
        raise ConfigError(
            f"experiment {name!r} already exists for this commit",
            fix="pick another --name (or `dvc exp remove` the old one)",
        )


def _prices(params_text: str) -> Mapping[str, float]:
    import yaml

    from splatbench.report.config import report_config_from_dict

    params = yaml.safe_load(params_text) or {}
    return report_config_from_dict(params.get("report")).instance_prices


def training_settings(cfg: RemoteConfig, image: str) -> TrainingSettings:
    settings = TrainingSettings(
        role_arn=cfg.effective_role_arn(),
        image=image,
        jobs=JobLocation.from_uri(cfg.effective_jobs_uri()),
        instance_type=cfg.instance_type,
        volume_gb=cfg.volume_gb,
        max_runtime_s=parse_duration(cfg.max_runtime),
        spot=cfg.spot,
        max_wait_s=parse_duration(cfg.max_wait) if cfg.max_wait is not None else None,
        kms_key_id=cfg.kms_key_id,
        subnets=tuple(cfg.subnets),
        security_group_ids=tuple(cfg.security_group_ids),
        tags=dict(cfg.tags),
    )
    settings.check()
    return settings


def plan_run(
    repo: Path,
    cfg: RemoteConfig,
    *,
    targets: Sequence[str] = (),
    overrides: Sequence[str] = (),
    sweep: bool = False,
    name: str | None = None,
    include_uncommitted: bool = False,
    price_per_hour: float | None = None,
    ecr: Any = None,
    now: datetime | None = None,
) -> RunPlan:
    """Decide every job of a run; raises before anything is created when something is off.
    The budget is checked by :func:`launch` (so a caller can show the costs first).

    Raises:
        ConfigError: dirty tree, bad override or target, no DVC remote, bad settings, an image
            not pinned, or a request that fails validation.
    """
    points = expand_sweep(overrides, sweep)
    if not sweep and len(points) != 1:  # pragma: no cover - expand_sweep guarantees it
        raise ConfigError("internal: one job expected without --sweep")
    code = code_version(repo, include_uncommitted=include_uncommitted)
    warnings: list[str] = []
    if code.untracked:
        shown = ", ".join(code.untracked[:5]) + (" ..." if len(code.untracked) > 5 else "")
        warnings.append(f"untracked files are not sent to the job: {shown}")
    image = resolve_image(cfg.effective_image(), ecr=ecr, allow_tag=cfg.allow_tag)
    settings = training_settings(cfg, image)
    now = now or datetime.now(timezone.utc)
    sweep_id = f"{(name or 'sweep')}-{now:%y%m%d%H%M%S}-{secrets.token_hex(2)}" if sweep else None
    jobs: list[PlannedJob] = []
    with tempfile.TemporaryDirectory(prefix="splatbench-plan-") as tmp:
        tree = export_tree(repo, code.commit, Path(tmp) / "tree", _PLAN_PATHS)
        dvc_remote = dvc_remote_at(tree, cfg.dvc_remote)
        for index, point in enumerate(points, start=1):
            params_text = compose_params(tree, point)
            (tree / "params.yaml").write_text(params_text, encoding="utf-8")
            _check_targets(tree, targets)
            label = f"{name}-{index}" if (sweep and name) else name
            if sweep and not name:
                label = f"sweep-{index}"
            jname = job_name(label, now=now)
            experiment = label if name else jname
            _check_experiment_name(repo, code.baseline, experiment)
            spec = JobSpec(
                commit=code.commit,
                params_sha256=params_sha256(params_text),
                targets=tuple(targets),
                overrides=tuple(point),
                dvc_remote=cfg.dvc_remote,
                experiment=experiment,
            )
            extra_tags = {"splatbench:sweep": sweep_id} if sweep_id else {}
            request = build_training_request(jname, spec, settings, tags=extra_tags)
            validate_training_request(request, allow_tag=cfg.allow_tag)
            cost = CostLine(
                job=jname,
                instance_type=settings.instance_type,
                instance_count=settings.instance_count,
                price_per_hour=price_for(
                    settings.instance_type, _prices(params_text), price_per_hour
                ),
                max_runtime_s=settings.max_runtime_s,
                spot=settings.spot,
            )
            jobs.append(PlannedJob(jname, spec, request, cost))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):  # same second, same random token: astronomically rare
        raise ConfigError("internal: duplicate job names planned", fix="re-run the command")
    total = sum(j.cost.max_usd for j in jobs)
    return RunPlan(code, tuple(jobs), dvc_remote, settings, total, sweep_id, tuple(warnings))


# --------------------------------------------------------------------------------------------
# Submission and waiting


def _plans_dir(repo: Path) -> Path:
    return Path(repo) / STATE_DIR / "sweeps"


def save_plan(repo: Path, plan: RunPlan, cfg: RemoteConfig) -> Path | None:
    """Record a sweep's requests so an interrupted launcher can resume it (``remote resume``)."""
    if plan.sweep is None:
        return None
    path = _plans_dir(repo) / f"{plan.sweep}.json"
    atomic_write_json(
        path,
        {
            "sweep": plan.sweep,
            "baseline": plan.code.baseline,
            "commit": plan.code.commit,
            "backend": cfg.backend,
            "region": cfg.region,
            "profile": cfg.profile,
            "endpoint_url": cfg.endpoint_url,
            "local_root": cfg.local_root,
            "local_image_home": cfg.local_image_home,
            "jobs_uri": cfg.jobs_uri,
            "requests": plan.requests,
        },
    )
    return path


def load_plan(repo: Path, sweep: str) -> dict[str, Any]:
    path = _plans_dir(repo) / f"{sweep}.json"
    if not path.is_file():
        known = (
            sorted(p.stem for p in _plans_dir(repo).glob("*.json"))
            if _plans_dir(repo).is_dir()
            else []
        )
        raise ConfigError(
            f"no recorded sweep {sweep!r}",
            fix=f"recorded sweeps: {', '.join(known) or 'none'}",
        )
    return read_json(path)


def record_for(
    request: Mapping[str, Any], cfg: RemoteConfig, baseline: str, sweep: str | None
) -> JobRecord:
    spec = JobSpec.from_hyperparameters(request["HyperParameters"])
    return JobRecord(
        name=request["TrainingJobName"],
        backend=cfg.backend,
        commit=spec.commit,
        baseline=baseline,
        params_sha256=spec.params_sha256,
        experiment=spec.experiment or request["TrainingJobName"],
        targets=list(spec.targets),
        overrides=list(spec.overrides),
        submitted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        jobs_uri=cfg.effective_jobs_uri(),
        region=cfg.region,
        profile=cfg.profile,
        endpoint_url=cfg.endpoint_url,
        local_root=cfg.local_root if cfg.is_local else None,
        local_image_home=cfg.local_image_home if cfg.is_local else None,
        sweep=sweep,
    )


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
