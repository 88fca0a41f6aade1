"""What the launcher remembers on disk (``.splatbench/remote/``, git-ignored).

``jobs/<job>.json``: the backend, region and baseline commit a job was submitted with, so
``status``/``logs``/``stop``/``fetch`` find it without repeating options and ``list`` can show
it; ``sweeps/<sweep>.json``: a sweep's requests, so ``remote resume`` can submit what an
interrupted launcher never did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splatbench.cloud.contract import JobSpec
from splatbench.cloud.remote_config import RemoteConfig
from splatbench.errors import ConfigError
from splatbench.fsutil import atomic_write_json, read_json

if TYPE_CHECKING:
    from splatbench.cloud.remote_plan import RunPlan

STATE_DIR = Path(".splatbench") / "remote"


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
