"""Planning a remote run: everything decided before anything is created.

The commit, the parameters composed for every sweep point (and their hash), the DVC targets
resolved in that commit's ``dvc.yaml``, the committed DVC remote, the image digest, each
request validated, and each job's worst-case cost. The only side effect is a git ref pinning
the commit (``refs/splatbench/code/<commit>``).
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from splatbench.cloud.code_channel import CodeVersion, code_version, export_tree
from splatbench.cloud.contract import JobSpec, compose_params, params_sha256
from splatbench.cloud.costs import CostLine, price_for
from splatbench.cloud.remote_config import RemoteConfig
from splatbench.cloud.s3 import parse_s3_uri
from splatbench.cloud.sagemaker import (
    JobLocation,
    TrainingSettings,
    build_training_request,
    job_name,
    parse_duration,
    resolve_image,
    validate_training_request,
)
from splatbench.errors import ConfigError

# What a job needs from its commit to compose parameters and resolve targets.
_PLAN_PATHS = (".dvc/config", "conf", "params.yaml", "dvc.yaml")


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
