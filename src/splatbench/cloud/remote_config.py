"""Settings of ``splatbench remote``: a team's ``remote.yaml`` plus command-line options.

``remote.yaml`` in the project root (committed: the role, image repository, bucket and limits
are shared by the team) holds any of :class:`RemoteConfig`'s fields; command-line options
override it. Nothing here is a pipeline parameter: changing the instance type or the bucket does
not change ``params.yaml`` or any experiment's identity. Credentials never go here (boto3's chain
provides them: ``--profile``, the environment, or an instance role).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from splatbench.errors import ConfigError, check_known_keys

CONFIG_FILE = "remote.yaml"
BACKENDS = ("sagemaker", "local")
# The local backend runs this checkout's entrypoint; no image is pulled, no role assumed, but the
# request still passes the same validation, so these stand in for the real values.
LOCAL_IMAGE = "local/splatbench@sha256:" + "0" * 64
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/splatbench-local-executor"
DEFAULT_LOCAL_ROOT = ".splatbench/local-sagemaker"


@dataclass(frozen=True)
class RemoteConfig:
    """Where and how remote jobs run (see docs/sagemaker.md for each field).

    Attributes:
        backend: ``sagemaker`` (AWS) or ``local`` (this machine plays SageMaker: the same
            request, channels, entrypoint and outputs, through S3; try a job before paying).
        region, profile: AWS region and ``~/.aws`` profile.
        endpoint_url: an S3-compatible endpoint (SeaweedFS, MinIO) for the local backend.
        role_arn: the training job's execution role.
        image: the training image, ``REPO@sha256:...`` (or an ECR ``REPO:TAG``, resolved).
        allow_tag: accept an image tag that cannot be resolved to a digest.
        jobs_uri: ``s3://bucket/prefix`` for code bundles, outputs and checkpoints.
        dvc_remote: the DVC remote the job pulls from and pushes to (default: the project's).
        instance_type, volume_gb, max_runtime, spot, max_wait: per-job resources and limits
            (durations as seconds or ``90m``/``4h``/``1d``).
        kms_key_id: KMS key for the model output and the training volume.
        subnets, security_group_ids: run the job inside a VPC.
        tags: extra tags on every job.
        max_parallel: jobs of a sweep running at once.
        max_usd: refuse to submit when the worst-case cost is above this.
        local_root: state directory of the local backend.
        local_image_home: the project copy the local backend runs as "the image" (its
            entrypoint and installed environment; the job's code still comes from the code
            channel) [default: this clone].
        poll_seconds: how often waiting polls DescribeTrainingJob.
    """

    backend: str = "sagemaker"
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None
    image: str | None = None
    allow_tag: bool = False
    jobs_uri: str | None = None
    dvc_remote: str | None = None
    instance_type: str = "ml.g5.2xlarge"
    volume_gb: int = 100
    max_runtime: str | int = "4h"
    spot: bool = False
    max_wait: str | int | None = None
    kms_key_id: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    max_parallel: int = 4
    max_usd: float | None = None
    local_root: str = DEFAULT_LOCAL_ROOT
    local_image_home: str | None = None
    poll_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"remote backend {self.backend!r} is not one of {', '.join(BACKENDS)}",
                fix="--backend sagemaker (AWS) or --backend local (this machine)",
            )
        if self.max_parallel < 1:
            raise ConfigError("max_parallel must be >= 1", fix="e.g. --max-parallel 4")
        if self.max_usd is not None and self.max_usd < 0:
            raise ConfigError("max_usd must be >= 0", fix="e.g. --max-usd 20")
        if not isinstance(self.volume_gb, int) or self.volume_gb < 1:
            raise ConfigError(f"volume_gb={self.volume_gb!r} must be a positive integer")

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    def with_options(self, **options: Any) -> RemoteConfig:
        """A copy with every option that is not None applied (command-line values)."""
        values = {k: v for k, v in options.items() if v is not None and v != ()}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown remote settings {unknown}")
        return dataclasses.replace(self, **values)

    def effective_image(self) -> str:
        if self.image:
            return self.image
        if self.is_local:
            return LOCAL_IMAGE
        raise ConfigError(
            "no training image given",
            fix="pass --image ACCOUNT.dkr.ecr.REGION.amazonaws.com/splatbench@sha256:... or set "
            "`image:` in remote.yaml (docs/sagemaker.md shows how to build and push it)",
        )

    def effective_role_arn(self) -> str:
        if self.role_arn:
            return self.role_arn
        if self.is_local:
            return LOCAL_ROLE_ARN
        raise ConfigError(
            "no execution role given",
            fix="pass --role-arn arn:aws:iam::ACCOUNT:role/NAME or set `role_arn:` in "
            "remote.yaml (`splatbench remote iam-policy` prints its policy)",
        )

    def effective_jobs_uri(self) -> str:
        if self.jobs_uri:
            return self.jobs_uri
        raise ConfigError(
            "no S3 location for job code and outputs",
            fix="pass --jobs-uri s3://BUCKET/PREFIX or set `jobs_uri:` in remote.yaml",
        )


def load_remote_config(path: Path | None, repo: Path) -> RemoteConfig:
    """``remote.yaml`` (``path``, else ``<repo>/remote.yaml`` when it exists) or the defaults.

    Raises:
        ConfigError: unreadable file, unknown keys (with the closest known one), bad values.
    """
    explicit = path is not None
    path = Path(path) if path is not None else Path(repo) / CONFIG_FILE
    if not path.is_file():
        if explicit:
            raise ConfigError(f"{path} not found", fix="check --config")
        return RemoteConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}", fix="fix the file") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings", fix="see docs/sagemaker.md")
    names = [f.name for f in dataclasses.fields(RemoteConfig)]
    check_known_keys(data, names, path.name)
    for key in ("subnets", "security_group_ids"):
        if key in data and data[key] is not None:
            data[key] = tuple(str(v) for v in data[key])
    if "tags" in data and data["tags"] is not None:
        data["tags"] = {str(k): str(v) for k, v in dict(data["tags"]).items()}
    data = {k: v for k, v in data.items() if v is not None}
    try:
        return RemoteConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}", fix="see docs/sagemaker.md") from exc
