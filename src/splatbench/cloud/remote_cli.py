"""``splatbench remote``: run pipeline targets and sweeps as SageMaker training jobs.

Registered in ``splatbench/cli.py`` with ``app.add_typer(remote_app, name="remote")``. Exit
codes: 0 success, 1 a job failed or was stopped, 2 a user error (bad option, dirty tree, over
budget, AWS refused the request).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from splatbench.cli_support import exit_with_error
from splatbench.errors import SplatbenchError


class _Command(TyperCommand):
    """Help in Markdown mode: the docstrings' wrapped paragraphs are reflowed (the root app's
    rich mode, which a sub-app's commands inherit, keeps every source line break)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["rich_markup_mode"] = "markdown"
        super().__init__(*args, **kwargs)


remote_app = typer.Typer(
    help="Run pipeline targets and sweeps as AWS SageMaker training jobs (or locally, the same "
    "way), follow them, and fetch their results as DVC experiments. See docs/sagemaker.md.",
    no_args_is_help=True,
)

F = TypeVar("F", bound=Callable[..., Any])

# Options every command shares: where the job lives and how to reach it.
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file [default: remote.yaml in the project root]."),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="sagemaker (AWS) or local (this machine plays SageMaker: same request, same "
        "entrypoint, same outputs).",
    ),
]
LocalRootOpt = Annotated[
    str | None, typer.Option("--local-root", help="State directory of the local backend.")
]
RegionOpt = Annotated[str | None, typer.Option("--region", envvar="AWS_REGION", help="AWS region.")]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (~/.aws/config); default AWS_PROFILE.")
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="S3-compatible endpoint (SeaweedFS, MinIO) for the local backend; default "
        "AWS_ENDPOINT_URL_S3.",
    ),
]
JobsUriOpt = Annotated[
    str | None,
    typer.Option("--jobs-uri", help="s3://BUCKET/PREFIX for code bundles, outputs, checkpoints."),
]


def _console() -> Any:
    from rich.console import Console

    # Logs and CI capture stderr at 80 columns by default; tables of job names need more.
    return Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)


def _user_errors(fn: F) -> F:
    """Report :class:`SplatbenchError` as ``error:``/``fix:`` with exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SplatbenchError as err:
            exit_with_error(err)
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def _settings(
    config: Path | None,
    backend: str | None = None,
    local_root: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    jobs_uri: str | None = None,
    **options: Any,
) -> tuple[Path, Any]:
    from splatbench.cloud.code_channel import repo_root
    from splatbench.cloud.remote_config import load_remote_config

    repo = repo_root(Path.cwd())
    cfg = load_remote_config(config, repo).with_options(
        backend=backend,
        local_root=local_root,
        region=region,
        profile=profile,
        endpoint_url=endpoint_url,
        jobs_uri=jobs_uri,
        **options,
    )
    return repo, cfg


def _for_job(cfg: Any, repo: Path, job: str, explicit: dict[str, Any]) -> Any:
    """Settings for a recorded job: its backend/region unless given on the command line."""
    from splatbench.cloud.remote_state import config_for_record, load_record

    return config_for_record(cfg, load_record(repo, job)).with_options(**explicit)


def _backend(cfg: Any, repo: Path) -> Any:
    from splatbench.cloud.remote import connect

    if cfg.is_local and cfg.endpoint_url:
        # The local executor's worker reads the endpoint from its environment, like botocore.
        os.environ["AWS_ENDPOINT_URL_S3"] = cfg.endpoint_url
    return connect(cfg, repo)


def _print_failures(backend: Any, outcome: Any, console: Any) -> None:
    from splatbench.cloud.remote import tail

    for state in outcome.failed:
        reason = state.description.get("FailureReason") or "(no FailureReason)"
        console.print(f"[bold red]{state.name} {state.status}:[/] {reason}", soft_wrap=True)
        lines = tail(backend, state.name)
        if lines:
            console.print(f"last {len(lines)} log lines of {state.name}:")
            for line in lines:
                console.print("  " + line, markup=False, highlight=False, soft_wrap=True)


def _cost_table(plan: Any) -> Any:
    from rich.table import Table

    from splatbench.cloud.costs import cost_rows

    table = Table(title="Worst-case compute cost (jobs stop at --max-runtime)")
    columns = ["job", "instance", "price / h", "max runtime", "worst case"]
    if plan.sweep:
        columns.append("overrides")
    for column in columns:
        table.add_column(column, justify="right" if column in columns[1:5] else "left")
    rows = cost_rows([job.cost for job in plan.jobs])
    for i, row in enumerate(rows):
        if plan.sweep:
            row = [*row, " ".join(plan.jobs[i].spec.overrides) if i < len(plan.jobs) else ""]
        table.add_row(*row)
    table.caption = (
        "On-demand prices from report.instance_prices (conf/report/default.yaml); spot is billed "
        "below on-demand, shown here as an upper bound. S3 and data transfer not included."
    )
    return table


def _policies(repo: Path, cfg: Any, caller: bool, trust: bool) -> dict[str, Any]:
    import tempfile

    from splatbench.cloud.code_channel import export_tree
    from splatbench.cloud.iam import (
        TrainingPolicyInputs,
        launcher_policy,
        training_role_policy,
        trust_policy,
    )
    from splatbench.cloud.jobs import DATA_LOCATION_FILE, data_location
    from splatbench.cloud.remote_plan import dvc_remote_at
    from splatbench.cloud.s3 import normalize_prefix, parse_s3_uri
    from splatbench.cloud.sagemaker import JobLocation

    jobs = JobLocation.from_uri(cfg.effective_jobs_uri())
    with tempfile.TemporaryDirectory() as tmp:
        tree = export_tree(repo, "HEAD", Path(tmp), (".dvc/config",))
        remote = dvc_remote_at(tree, cfg.dvc_remote)
    dvc = parse_s3_uri(remote.url)
    data_file = repo / DATA_LOCATION_FILE
    data_bucket, data_prefix = data_location(data_file) if data_file.is_file() else (None, "")
    region = cfg.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise SplatbenchError("no AWS region", fix="pass --region or set AWS_REGION")
    kms = cfg.kms_key_id
    if kms and not kms.startswith("arn:"):
        account = cfg.effective_role_arn().split(":")[4]
        kms = f"arn:aws:kms:{region}:{account}:key/{kms}"
    inputs = TrainingPolicyInputs(
        role_arn=cfg.effective_role_arn(),
        region=region,
        image=cfg.effective_image(),
        jobs_bucket=jobs.bucket,
        jobs_prefix=jobs.prefix,
        dvc_bucket=dvc.bucket,
        dvc_prefix=normalize_prefix(dvc.key),
        data_bucket=data_bucket,
        data_prefix=normalize_prefix(data_prefix),
        kms_key_arn=kms,
        vpc=bool(cfg.subnets),
    )
    if trust:
        return trust_policy()
    return launcher_policy(inputs) if caller else training_role_policy(inputs)


@remote_app.command("run", cls=_Command)
@_user_errors
def run_command(
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="DVC targets (train@garden, report); none runs the whole pipeline."),
    ] = None,
    set_param: Annotated[
        list[str] | None,
        typer.Option(
            "--set-param",
            "-S",
            help="Hydra override, as for `dvc exp run -S` (with --sweep: a=1,2 fans out).",
        ),
    ] = None,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="One job per combination of the -S values.")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            help="Experiment name (sweeps: NAME-1, NAME-2, ...) [default: job name].",
        ),
    ] = None,
    instance: Annotated[
        str | None, typer.Option("--instance", help="Instance type [default ml.g5.2xlarge].")
    ] = None,
    volume_gb: Annotated[int | None, typer.Option("--volume-gb", help="EBS volume, GB.")] = None,
    max_runtime: Annotated[
        str | None,
        typer.Option("--max-runtime", help="Per-job runtime cap (e.g. 90m, 4h) [default 4h]."),
    ] = None,
    spot: Annotated[
        bool | None, typer.Option("--spot/--on-demand", help="Managed spot training.")
    ] = None,
    max_wait: Annotated[
        str | None,
        typer.Option("--max-wait", help="Spot: cap on waiting + running [default 2x runtime]."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Training image REPO@sha256:... (or ECR REPO:TAG)."),
    ] = None,
    allow_tag: Annotated[
        bool | None,
        typer.Option("--allow-tag", help="Accept an image tag that cannot be pinned to a digest."),
    ] = None,
    role_arn: Annotated[
        str | None, typer.Option("--role-arn", help="The training job's execution role.")
    ] = None,
    dvc_remote: Annotated[
        str | None, typer.Option("--dvc-remote", help="DVC remote name [default: the default].")
    ] = None,
    kms_key_id: Annotated[
        str | None, typer.Option("--kms-key-id", help="KMS key for model output and volume.")
    ] = None,
    subnet: Annotated[
        list[str] | None, typer.Option("--subnet", help="VPC subnet id (repeat).")
    ] = None,
    security_group: Annotated[
        list[str] | None, typer.Option("--security-group", help="VPC security group (repeat).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Extra tag KEY=VALUE.")] = None,
    include_uncommitted: Annotated[
        bool,
        typer.Option(
            "--include-uncommitted",
            help="Send uncommitted changes of tracked files (as a temporary commit).",
        ),
    ] = False,
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", help="Sweep jobs running at once.")
    ] = None,
    max_usd: Annotated[
        float | None, typer.Option("--max-usd", help="Refuse if the worst-case cost is above.")
    ] = None,
    price_per_hour: Annotated[
        float | None,
        typer.Option("--price-per-hour", help="Price the instance at this (USD/h) instead."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the jobs to end.")
    ] = True,
    logs: Annotated[
        bool, typer.Option("--logs/--no-logs", help="Stream the log of a single waited job.")
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the validated request JSON; create nothing."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before submitting.")] = False,
    print_iam_policy: Annotated[
        bool,
        typer.Option("--print-iam-policy", help="Print the execution role's policy and exit."),
    ] = False,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    local_root: LocalRootOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    endpoint_url: EndpointOpt = None,
    jobs_uri: JobsUriOpt = None,
) -> None:
    """Run the pipeline (or TARGETS) at the current commit as SageMaker training job(s).

    Everything is checked before anything is created: the commit (a dirty tree is refused
    unless --include-uncommitted), the parameters composed exactly as `dvc exp run -S` would,
    the targets, the DVC remote, the image digest, the request against SageMaker's API model,
    and the worst-case cost against --max-usd. Then the code goes to S3 as a git bundle (once
    per commit) and the jobs are submitted. Fetch results with `splatbench remote fetch JOB`.
    """
    from splatbench.cloud.costs import check_budget
    from splatbench.cloud.remote import Reporter, launch
    from splatbench.cloud.remote_plan import plan_run
    from splatbench.cloud.sagemaker import ecr_parts, parse_tags

    console = _console()
    repo, cfg = _settings(
        config,
        backend,
        local_root,
        region,
        profile,
        endpoint_url,
        jobs_uri,
        instance_type=instance,
        volume_gb=volume_gb,
        max_runtime=max_runtime,
        spot=spot,
        max_wait=max_wait,
        image=image,
        allow_tag=allow_tag,
        role_arn=role_arn,
        dvc_remote=dvc_remote,
        kms_key_id=kms_key_id,
        subnets=tuple(subnet or ()),
        security_group_ids=tuple(security_group or ()),
        tags=parse_tags(tag or ()) or None,
        max_parallel=max_parallel,
        max_usd=max_usd,
    )
    if print_iam_policy:
        typer.echo(json.dumps(_policies(repo, cfg, caller=False, trust=False), indent=2))
        return
    ecr = None
    if not cfg.is_local and cfg.image and (ecr_parts(cfg.image) or {}).get("tag"):
        ecr = _backend(cfg, repo).ecr  # resolves the tag to a digest (read-only)
    plan = plan_run(
        repo,
        cfg,
        targets=tuple(targets or ()),
        overrides=tuple(set_param or ()),
        sweep=sweep,
        name=name,
        include_uncommitted=include_uncommitted,
        price_per_hour=price_per_hour,
        ecr=ecr,
    )
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    code = plan.code
    console.print(
        f"commit {code.commit[:12]}"
        + (f" (uncommitted changes on {code.baseline[:12]})" if code.uncommitted else "")
        + f", DVC remote {plan.dvc_remote.name} ({plan.dvc_remote.url}), {len(plan.jobs)} job(s)"
        + f" on the {cfg.backend} backend",
        soft_wrap=True,
    )
    console.print(_cost_table(plan))
    check_budget([job.cost for job in plan.jobs], cfg.max_usd)
    if dry_run:
        body = plan.requests if sweep else plan.requests[0]
        typer.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    if (
        not yes
        and sys.stdin.isatty()
        and not typer.confirm(f"Submit {len(plan.jobs)} job(s), worst case ${plan.total_usd:,.2f}?")
    ):
        raise typer.Exit(code=1)
    client = _backend(cfg, repo)
    follow_logs = wait and logs and len(plan.jobs) == 1
    with Reporter(console) as reporter:
        try:
            outcome, uploaded = launch(
                repo, client, plan, cfg, wait=wait, reporter=reporter, follow_logs=follow_logs
            )
        except KeyboardInterrupt:
            hint = "submitted jobs keep running; `splatbench remote list` shows them"
            if plan.sweep:
                hint += f"; `splatbench remote resume {plan.sweep}` submits the rest"
            console.print(f"interrupted: {hint}")
            raise
    console.print(
        ("uploaded" if uploaded else "reused") + f" the code bundle of {code.commit[:12]}"
    )
    for job in plan.jobs:
        state = outcome.states.get(job.name)
        status = state.status if state else "not submitted"
        typer.echo(f"{job.name}\t{status}\texperiment {job.spec.experiment}")
    if not wait:
        console.print(
            "follow with `splatbench remote status|logs JOB`; fetch with "
            "`splatbench remote fetch JOB` once Completed"
        )
        return
    _print_failures(client, outcome, console)
    if outcome.ok:
        console.print("fetch the results: splatbench remote fetch " + " ".join(outcome.states))
        return
    raise typer.Exit(code=1)


@remote_app.command("resume", cls=_Command)
@_user_errors
def resume_command(
    sweep_id: Annotated[str, typer.Argument(help="Sweep id printed by `remote run --sweep`.")],
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", help="Sweep jobs running at once.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Submit the jobs of an interrupted sweep that were never submitted, and wait for all."""
    from splatbench.cloud.remote import Reporter, run_jobs
    from splatbench.cloud.remote_state import load_plan, record_for, save_record

    console = _console()
    repo, cfg = _settings(config, max_parallel=max_parallel)
    plan = load_plan(repo, sweep_id)
    cfg = cfg.with_options(
        backend=plan["backend"],
        region=plan.get("region"),
        profile=plan.get("profile"),
        endpoint_url=plan.get("endpoint_url"),
        local_root=plan.get("local_root"),
        local_image_home=plan.get("local_image_home"),
        jobs_uri=plan.get("jobs_uri"),
    )
    client = _backend(cfg, repo)

    def on_submit(request: Any) -> None:
        save_record(repo, record_for(request, cfg, plan["baseline"], sweep_id))

    with Reporter(console) as reporter:
        outcome = run_jobs(
            client,
            plan["requests"],
            max_parallel=cfg.max_parallel,
            wait=True,
            reporter=reporter,
            on_submit=on_submit,
        )
    _print_failures(client, outcome, console)
    for name, state in outcome.states.items():
        typer.echo(f"{name}\t{state.status}")
    if not outcome.ok:
        raise typer.Exit(code=1)


@remote_app.command("status", cls=_Command)
@_user_errors
def status_command(
    jobs: Annotated[list[str], typer.Argument(help="Training job name(s).")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the jobs end.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print DescribeTrainingJob as JSON.")
    ] = False,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    local_root: LocalRootOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Status, secondary status, times, billable seconds and FailureReason of jobs.

    Exit code 1 when a job Failed or was Stopped.
    """
    from splatbench.cloud.remote import Reporter, describe, dump_json, wait_for

    console = _console()
    explicit = {"backend": backend, "local_root": local_root, "region": region,
                "profile": profile, "endpoint_url": endpoint_url}  # fmt: skip
    repo, base = _settings(config, **explicit)
    bad = False
    for job in jobs:
        cfg = _for_job(base, repo, job, explicit)
        client = _backend(cfg, repo)
        if wait:
            with Reporter(console) as reporter:
                wait_for(client, [job], reporter=reporter)
        desc = describe(client, job)
        if as_json:
            typer.echo(dump_json(desc))
        else:
            typer.echo(_status_text(desc))
        bad |= desc.get("TrainingJobStatus") in ("Failed", "Stopped")
    if bad:
        raise typer.Exit(code=1)


def _status_text(desc: dict[str, Any]) -> str:
    from splatbench.cloud.contract import JobSpec
    from splatbench.cloud.sagemaker import format_duration

    lines = [
        f"{desc.get('TrainingJobName')}: {desc.get('TrainingJobStatus')}"
        + (f" / {desc['SecondaryStatus']}" if desc.get("SecondaryStatus") else "")
    ]
    resources = desc.get("ResourceConfig") or {}
    if resources:
        spot = " (spot)" if desc.get("EnableManagedSpotTraining") else ""
        lines.append(f"  instance     {resources.get('InstanceType')}{spot}")
    for key, label in (
        ("CreationTime", "created"),
        ("TrainingStartTime", "started"),
        ("TrainingEndTime", "ended"),
    ):
        if desc.get(key):
            lines.append(f"  {label:<12} {desc[key]}")
    if desc.get("BillableTimeInSeconds") is not None:
        lines.append(f"  billable     {format_duration(desc['BillableTimeInSeconds'])}")
    try:
        spec = JobSpec.from_hyperparameters(desc.get("HyperParameters") or {})
        lines.append(f"  commit       {spec.commit[:12]}  params {spec.params_sha256[:12]}")
        if spec.overrides:
            lines.append(f"  overrides    {' '.join(spec.overrides)}")
        if spec.targets:
            lines.append(f"  targets      {' '.join(spec.targets)}")
        if spec.experiment:
            lines.append(f"  experiment   {spec.experiment}")
    except SplatbenchError:
        lines.append("  (not a splatbench job: no splatbench_* hyperparameters)")
    if desc.get("FailureReason"):
        lines.append(f"  failure      {desc['FailureReason']}")
    model = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if model:
        lines.append(f"  model        {model}")
    return "\n".join(lines)


@remote_app.command("logs", cls=_Command)
@_user_errors
def logs_command(
    job: Annotated[str, typer.Argument(help="Training job name.")],
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep reading until the job ends.")
    ] = False,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    local_root: LocalRootOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Print a job's CloudWatch log (every stream, oldest first); --follow tails it.

    With --follow, exit code 1 when the job ends Failed or Stopped.
    """
    from splatbench.cloud.remote import follow

    explicit = {"backend": backend, "local_root": local_root, "region": region,
                "profile": profile, "endpoint_url": endpoint_url}  # fmt: skip
    repo, base = _settings(config, **explicit)
    client = _backend(_for_job(base, repo, job, explicit), repo)
    status = follow(client, job, emit=typer.echo, follow=follow_)
    if follow_ and status in ("Failed", "Stopped"):
        raise typer.Exit(code=1)


@remote_app.command("stop", cls=_Command)
@_user_errors
def stop_command(
    jobs: Annotated[list[str], typer.Argument(help="Training job name(s).")],
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    local_root: LocalRootOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Stop jobs (SIGTERM to the container: the trainer checkpoints and exits)."""
    from splatbench.cloud.remote import stop

    explicit = {"backend": backend, "local_root": local_root, "region": region,
                "profile": profile, "endpoint_url": endpoint_url}  # fmt: skip
    repo, base = _settings(config, **explicit)
    for job in jobs:
        client = _backend(_for_job(base, repo, job, explicit), repo)
        before = stop(client, job)
        if before in ("Completed", "Failed", "Stopped"):
            typer.echo(f"{job}: already {before}")
        else:
            typer.echo(f"{job}: stopping (was {before})")


@remote_app.command("fetch", cls=_Command)
@_user_errors
def fetch_command(
    jobs: Annotated[
        list[str] | None, typer.Argument(help="Completed training job name(s).")
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Every job of this sweep (unfinished ones are listed)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Experiment name [default: the job's].")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an experiment of that name.")
    ] = False,
    data: Annotated[
        bool,
        typer.Option(
            "--data", help="Also download its DVC outputs into the cache (for `dvc exp apply`)."
        ),
    ] = False,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    local_root: LocalRootOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Turn completed jobs into DVC experiments (`dvc exp show` lists them).

    The experiment is the job's commit with its dvc.lock, params.yaml, metrics, plots and
    report laid over it, on the commit the run was launched from. Its data stays in the DVC
    remote unless --data; then `dvc exp apply NAME` checks it out. Fetching again changes
    nothing.
    """
    from splatbench.cloud.fetch import fetch_job
    from splatbench.cloud.remote import RemoteError
    from splatbench.cloud.remote_state import list_records

    explicit = {"backend": backend, "local_root": local_root, "region": region,
                "profile": profile, "endpoint_url": endpoint_url}  # fmt: skip
    repo, base = _settings(config, **explicit)
    names = list(jobs or [])
    if sweep:
        names += [r.name for r in reversed(list_records(repo)) if r.sweep == sweep]
        if not names:
            raise SplatbenchError(f"no jobs of sweep {sweep!r} were submitted from this clone",
                                  fix="check the id with `splatbench remote list`")  # fmt: skip
    if not names:
        raise SplatbenchError("no job given", fix="pass job names or --sweep ID")
    if name and len(names) > 1:
        raise SplatbenchError("--name applies to one job", fix="fetch one job at a time")
    unfinished = []
    for job in names:
        client = _backend(_for_job(base, repo, job, explicit), repo)
        try:
            result = fetch_job(repo, client, job, name=name, force=force, data=data)
        except RemoteError as err:
            if sweep is None:
                raise
            unfinished.append(job)
            typer.echo(f"{job}: not fetched: {err.message}")
            continue
        state = "fetched" if result.created else "already fetched"
        typer.echo(
            f"{job}: {state} as experiment {result.experiment} ({result.commit[:7]}, "
            f"baseline {result.baseline[:7]}, {result.files} files"
            + (f", {result.downloaded} outputs downloaded" if result.downloaded is not None else "")
            + ")"
        )
    typer.echo(
        "compare: dvc exp show; splatbench diff EXPERIMENT; dvc metrics diff HEAD EXPERIMENT"
    )
    typer.echo(
        "outputs: dvc exp apply EXPERIMENT (after fetch --data; without it, dvc pull after apply)"
    )
    if unfinished:
        raise typer.Exit(code=1)


@remote_app.command("list", cls=_Command)
@_user_errors
def list_command(
    last: Annotated[int, typer.Option("--last", help="Show this many recent jobs.")] = 20,
    sweep: Annotated[str | None, typer.Option("--sweep", help="Only this sweep's jobs.")] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh/--no-refresh", help="Ask for each job's current status.")
    ] = True,
    config: ConfigOpt = None,
) -> None:
    """Jobs submitted from this clone (newest first), with their current status."""
    from rich.table import Table

    from splatbench.cloud.remote import describe
    from splatbench.cloud.remote_state import list_records

    repo, base = _settings(config)
    records = [r for r in list_records(repo) if sweep is None or r.sweep == sweep][:last]
    table = Table()
    for column in ("job", "backend", "status", "experiment", "commit", "submitted"):
        table.add_column(column)
    for record in records:
        status = "?"
        if refresh:
            try:
                cfg = _for_job(base, repo, record.name, {})
                desc = describe(_backend(cfg, repo), record.name)
                status = str(desc.get("TrainingJobStatus"))
                if desc.get("SecondaryStatus"):
                    status += f" / {desc['SecondaryStatus']}"
            except SplatbenchError as err:
                status = f"unknown ({err.message})"
        table.add_row(
            record.name, record.backend, status, record.experiment, record.commit[:7],
            record.submitted_at,
        )  # fmt: skip
    from rich.console import Console

    Console(highlight=False, width=200).print(table)


@remote_app.command("iam-policy", cls=_Command)
@_user_errors
def iam_policy_command(
    caller: Annotated[
        bool, typer.Option("--caller", help="The launcher's own policy (who runs remote).")
    ] = False,
    trust: Annotated[
        bool, typer.Option("--trust", help="The execution role's trust policy.")
    ] = False,
    role_arn: Annotated[str | None, typer.Option("--role-arn")] = None,
    image: Annotated[str | None, typer.Option("--image")] = None,
    dvc_remote: Annotated[str | None, typer.Option("--dvc-remote")] = None,
    kms_key_id: Annotated[str | None, typer.Option("--kms-key-id")] = None,
    subnet: Annotated[list[str] | None, typer.Option("--subnet")] = None,
    config: ConfigOpt = None,
    region: RegionOpt = None,
    jobs_uri: JobsUriOpt = None,
) -> None:
    """Least-privilege IAM policies: the training role's (default), the caller's, the trust.

    The training role may pull the image's ECR repository, write its CloudWatch logs and
    metrics, read the code bundles, write outputs and checkpoints under --jobs-uri, pull and
    push the DVC remote, read the benchmark data prefix, and use the KMS key and VPC if given.
    """
    repo, cfg = _settings(
        config,
        region=region,
        jobs_uri=jobs_uri,
        role_arn=role_arn,
        image=image,
        dvc_remote=dvc_remote,
        kms_key_id=kms_key_id,
        subnets=tuple(subnet or ()),
    )
    typer.echo(json.dumps(_policies(repo, cfg, caller=caller, trust=trust), indent=2))
