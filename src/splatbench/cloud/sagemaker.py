"""CreateTrainingJob requests for pipeline runs: names, images, the S3 layout of a job, validation.

Pure functions over plain data: nothing here calls AWS except :func:`resolve_image`, which is
given an ECR client. The launcher (:mod:`splatbench.cloud.remote`) composes these with the code
channel and the clients.

Where a job's files live, under one S3 prefix (``jobs_uri``)::

    <jobs_uri>/code/<commit>/code.bundle      the code channel (content-addressed by commit)
    <jobs_uri>/output/<job>/output/model.tar.gz   SageMaker's OutputDataConfig layout
    <jobs_uri>/checkpoints/<job>/             CheckpointConfig, one prefix per job
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from splatbench.cloud.contract import CODE_CHANNEL, JobSpec, SageMakerPaths
from splatbench.cloud.jobs import validate_request
from splatbench.cloud.s3 import S3Uri, normalize_prefix, parse_s3_uri
from splatbench.errors import ConfigError

if TYPE_CHECKING:
    from botocore.client import BaseClient

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
CHECKPOINT_LOCAL_PATH = str(SageMakerPaths().checkpoints)
MAX_JOB_NAME = 63
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TAG_PREFIX = "splatbench:"
# SageMaker's instance limits: 1..28 days of runtime; we refuse more than a week (a typo, surely).
MAX_RUNTIME_S = 7 * 24 * 3600
_DIGEST = re.compile(r"^(?P<repo>[^@\s]+)@sha256:[0-9a-f]{64}$")
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[A-Za-z0-9_.-]+)|@(?P<digest>sha256:[0-9a-f]{64}))$"
)


@dataclass(frozen=True)
class JobLocation:
    """The S3 prefix under which the launcher keeps code bundles, outputs and checkpoints."""

    bucket: str
    prefix: str = ""

    @classmethod
    def from_uri(cls, uri: str) -> JobLocation:
        parsed: S3Uri = parse_s3_uri(uri)
        return cls(parsed.bucket, normalize_prefix(parsed.key))

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def uri(self, *parts: str, folder: bool = False) -> str:
        key = self.key(*parts)
        return f"s3://{self.bucket}/{key}{'/' if folder and key else ''}"

    def code_uri(self, commit: str) -> str:
        """The code channel's S3Prefix (it holds ``code.bundle``)."""
        return self.uri("code", commit, folder=True)

    def code_key(self, commit: str, filename: str) -> str:
        return self.key("code", commit, filename)

    @property
    def output_uri(self) -> str:
        return self.uri("output", folder=True)

    def checkpoint_uri(self, job_name: str) -> str:
        return self.uri("checkpoints", job_name, folder=True)

    def model_uri(self, job_name: str) -> str:
        """Where SageMaker puts ``model.tar.gz`` (``<S3OutputPath>/<job>/output/``)."""
        return self.uri("output", job_name, "output", "model.tar.gz")


@dataclass(frozen=True)
class TrainingSettings:
    """Everything about a training job that is not the pipeline run itself.

    Attributes:
        role_arn: the execution role SageMaker assumes (``--print-iam-policy`` prints its policy).
        image: the training image by digest, ``<repo>@sha256:<64 hex>``.
        jobs: where code, outputs and checkpoints live.
        instance_type, instance_count, volume_gb: ResourceConfig (one host: a job runs one
            ``dvc repro``; parallelism is the sweep's fan-out).
        max_runtime_s: StoppingCondition.MaxRuntimeInSeconds, the billing cap per job.
        spot: EnableManagedSpotTraining; ``max_wait_s`` (> max_runtime_s) bounds the wait for
            capacity plus the runtime.
        kms_key_id: encrypts the model output and the training volume (OutputDataConfig.KmsKeyId,
            ResourceConfig.VolumeKmsKeyId) and the uploaded code bundle.
        subnets, security_group_ids: VpcConfig (both or neither).
        tags: extra tags on every job (cost allocation).
        environment: extra container environment (keep credentials out: they would show in
            DescribeTrainingJob).
    """

    role_arn: str
    image: str
    jobs: JobLocation
    instance_type: str = "ml.g5.2xlarge"
    instance_count: int = 1
    volume_gb: int = 100
    max_runtime_s: int = 4 * 3600
    spot: bool = False
    max_wait_s: int | None = None
    kms_key_id: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse settings that cannot make a sensible job (before any AWS call)."""
        problems: list[tuple[str, str]] = []
        if self.instance_count != 1:
            problems.append(
                (
                    f"instance_count={self.instance_count}: a job runs one pipeline on one host",
                    "use a sweep (--sweep) to run several jobs in parallel",
                )
            )
        if not 60 <= self.max_runtime_s <= MAX_RUNTIME_S:
            problems.append(
                (
                    f"max runtime {self.max_runtime_s} s is outside 60 s .. {MAX_RUNTIME_S} s",
                    "pass --max-runtime like 90m, 4h or 2d",
                )
            )
        if self.spot and self.max_wait_s is not None and self.max_wait_s <= self.max_runtime_s:
            problems.append(
                (
                    f"--max-wait ({self.max_wait_s} s) must be above --max-runtime "
                    f"({self.max_runtime_s} s) for spot jobs",
                    "the wait covers waiting for spot capacity plus the run, e.g. 2x the runtime",
                )
            )
        if not self.spot and self.max_wait_s is not None:
            problems.append(
                ("--max-wait only applies to --spot jobs", "drop --max-wait or add --spot")
            )
        if bool(self.subnets) != bool(self.security_group_ids):
            problems.append(
                (
                    "VPC settings need both subnets and security groups",
                    "pass --subnet and --security-group together (or neither)",
                )
            )
        if problems:
            raise ConfigError(
                "; ".join(p for p, _ in problems),
                fix="; ".join(dict.fromkeys(f for _, f in problems)),
            )

    @property
    def effective_max_wait_s(self) -> int | None:
        """MaxWaitTimeInSeconds: given, or twice the runtime for spot jobs."""
        if not self.spot:
            return None
        return self.max_wait_s if self.max_wait_s is not None else 2 * self.max_runtime_s


def job_name(
    label: str | None = None, *, now: datetime | None = None, token: str | None = None
) -> str:
    """A unique training-job name: ``sb-<label>-<UTC yymmdd-HHMMSS>-<4 hex>`` within 63 chars.

    The label (an experiment name or a sweep id) is reduced to SageMaker's alphabet; the time
    stamp and the random suffix keep names unique even for two submissions in one second.
    """
    now = now or datetime.now(timezone.utc)
    token = token or secrets.token_hex(2)
    stamp = now.strftime("%y%m%d-%H%M%S")
    tail = f"-{stamp}-{token}"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label or "run").strip("-") or "run"
    room = MAX_JOB_NAME - len("sb-") - len(tail)
    slug = slug[:room].rstrip("-")
    name = f"sb-{slug}{tail}"
    check_job_name(name)
    return name


def check_job_name(name: str) -> None:
    if len(name) > MAX_JOB_NAME or not JOB_NAME.match(name):
        raise ConfigError(
            f"training job name {name!r} is not valid for SageMaker",
            fix="use at most 63 letters, digits and hyphens, starting with a letter or digit",
        )


def image_repository(image: str) -> str:
    """``<registry>/<repo>`` of an image reference, without tag or digest."""
    if "@" in image:
        return image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return image[: len(image) - len(last)] + last.split(":", 1)[0]


def is_digest(image: str) -> bool:
    return bool(_DIGEST.match(image))


def ecr_parts(image: str) -> dict[str, str] | None:
    """Account, region, repository, tag/digest of an ECR image reference, else None."""
    match = _ECR_IMAGE.match(image)
    return {k: v for k, v in match.groupdict().items() if v} if match else None


def resolve_image(image: str, *, ecr: BaseClient | None, allow_tag: bool = False) -> str:
    """The image reference to submit: by digest.

    A digest reference is returned as is. A tag on an ECR repository is resolved to its digest
    with ``ecr.describe_images`` (so the job runs exactly the image that was tested, even if the
    tag moves later). Other tags are refused unless ``allow_tag`` (then sent as given).

    Raises:
        ConfigError: a tag that cannot be resolved, or an unknown tag.
    """
    if is_digest(image):
        return image
    parts = ecr_parts(image)
    if parts is not None and "tag" in parts and ecr is not None:
        try:
            response = ecr.describe_images(
                registryId=parts["account"],
                repositoryName=parts["repo"],
                imageIds=[{"imageTag": parts["tag"]}],
            )
        except Exception as exc:  # botocore ClientError (ImageNotFoundException, AccessDenied)
            raise ConfigError(
                f"cannot resolve image tag {image!r} to a digest: {exc}",
                fix="push the image (docs/sagemaker.md) or pass it by digest: REPO@sha256:...",
            ) from exc
        details = response.get("imageDetails") or []
        if not details or not details[0].get("imageDigest"):
            raise ConfigError(
                f"ECR has no image tagged {parts['tag']!r} in {parts['repo']}",
                fix="push the image (docs/sagemaker.md) or pass it by digest",
            )
        return f"{image_repository(image)}@{details[0]['imageDigest']}"
    if allow_tag:
        return image
    raise ConfigError(
        f"training image {image!r} is not pinned by digest",
        fix="pass REPO@sha256:<digest> (or an ECR REPO:TAG, which is resolved), or --allow-tag "
        "to accept a moving tag",
    )


def build_training_request(
    name: str,
    spec: JobSpec,
    settings: TrainingSettings,
    *,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The CreateTrainingJob request for one pipeline run (validated by the caller)."""
    settings.check()
    check_job_name(name)
    job_tags = {
        f"{TAG_PREFIX}commit": spec.commit,
        f"{TAG_PREFIX}params-sha256": spec.params_sha256,
        **({f"{TAG_PREFIX}experiment": spec.experiment} if spec.experiment else {}),
        **dict(tags or {}),
        **dict(settings.tags),
    }
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.max_runtime_s}
    wait = settings.effective_max_wait_s
    if wait is not None:
        stopping["MaxWaitTimeInSeconds"] = wait
    resources: dict[str, Any] = {
        "InstanceType": settings.instance_type,
        "InstanceCount": settings.instance_count,
        "VolumeSizeInGB": settings.volume_gb,
    }
    output: dict[str, Any] = {"S3OutputPath": settings.jobs.output_uri}
    if settings.kms_key_id:
        resources["VolumeKmsKeyId"] = settings.kms_key_id
        output["KmsKeyId"] = settings.kms_key_id
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": settings.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": settings.image,
            "TrainingInputMode": "File",
        },
        "HyperParameters": spec.to_hyperparameters(),
        "InputDataConfig": [
            {
                "ChannelName": CODE_CHANNEL,
                "InputMode": "File",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": settings.jobs.code_uri(spec.commit),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "CheckpointConfig": {
            "S3Uri": settings.jobs.checkpoint_uri(name),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
        "EnableManagedSpotTraining": settings.spot,
        "Environment": {"SPLATBENCH_JOB_NAME": name, **dict(settings.environment)},
        "Tags": [{"Key": k, "Value": v} for k, v in job_tags.items()],
    }
    if settings.subnets:
        request["VpcConfig"] = {
            "Subnets": list(settings.subnets),
            "SecurityGroupIds": list(settings.security_group_ids),
        }
    return request


def validate_training_request(request: Mapping[str, Any], *, allow_tag: bool = False) -> None:
    """botocore's model, the model constraints, the strict list, SageMaker's documented rules,
    and this project's own: image by digest (unless ``allow_tag``), one code channel.

    Raises:
        ConfigError: listing every problem.
    """
    body = dict(request)
    image = (body.get("AlgorithmSpecification") or {}).get("TrainingImage", "")
    problems: list[str] = []
    if image and not allow_tag and not is_digest(image):
        problems.append(f"input.AlgorithmSpecification.TrainingImage {image!r} is not a digest")
    channels = [c.get("ChannelName") for c in body.get("InputDataConfig") or []]
    if CODE_CHANNEL not in channels:
        problems.append(f"input.InputDataConfig has no {CODE_CHANNEL!r} channel")
    fix = "this is a bug in the request builder or in the remote settings; see the path above"
    try:
        validate_request("sagemaker", "CreateTrainingJob", body, fix=fix)
    except ConfigError as err:
        problems.insert(0, err.message)
    if problems:
        raise ConfigError("\n".join(problems), fix=fix)


def tags_of(request_or_description: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in request_or_description.get("Tags") or []}


def parse_duration(text: str | int) -> int:
    """Seconds from ``5400``, ``"90m"``, ``"4h"``, ``"1d"``, ``"1h30m"``.

    Raises:
        ConfigError: anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value.isdigit():
        return int(value)
    parts = re.findall(r"(\d+)\s*([smhd])", value)
    if not parts or re.sub(r"\d+\s*[smhd]", "", value).strip():
        raise ConfigError(
            f"duration {text!r} is not understood", fix="use seconds or e.g. 90m, 4h, 1d, 1h30m"
        )
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * unit[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    """``["team=vision", "cost-center=42"]`` -> dict; refuses the reserved prefix."""
    tags: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"tag {item!r} is not KEY=VALUE", fix="e.g. --tag team=vision")
        if key.startswith(TAG_PREFIX):
            raise ConfigError(
                f"tag {key!r} uses the reserved prefix {TAG_PREFIX!r}",
                fix="the launcher sets those tags itself; pick another key",
            )
        tags[key] = value
    return tags
