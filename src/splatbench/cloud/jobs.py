"""Job specifications for running ``splatbench ingest`` in AWS: Batch (default) or SageMaker.

The specs are rendered from :class:`IngestJobSpec` into the exact request bodies of
``batch.RegisterJobDefinition`` and ``sagemaker.CreateProcessingJob``, written as JSON under
``containers/jobs/`` and validated against botocore's bundled service models (no network).
Validation catches what AWS would reject at submit time, e.g. a processing input without
``S3InputMode``, one of the failures seen in production.

The bucket and prefix are not stated here: they come from ``conf/benchmark/data/default.yaml``,
the same file the benchmark configs read, so the pipeline and the ingestion job cannot disagree on
where raw data lives. Regenerate the checked-in files with
``python -m splatbench.cloud.jobs containers/jobs``.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from splatbench.errors import ConfigError
from splatbench.fsutil import atomic_write_json

BATCH_FILENAME = "batch-job-definition.json"
SAGEMAKER_FILENAME = "sagemaker-processing-job.json"
# The images' WORKDIR is /opt/splatbench (containers/Dockerfile*); absolute so that SageMaker,
# which overrides the entrypoint, finds the script regardless of the working directory.
ENTRYPOINT = "/opt/splatbench/containers/entrypoint.sh"
# Exit code of the CLI for user errors (bad arguments, manifest conflict, verification
# failure): retrying cannot help, so Batch must not retry them.
USER_ERROR_EXIT_CODE = 2
#: The one statement of the benchmark data location (bucket, prefix), relative to the project root.
DATA_LOCATION_FILE = Path("conf/benchmark/data/default.yaml")


def data_location(conf_file: Path = DATA_LOCATION_FILE) -> tuple[str, str]:
    """``(bucket, prefix)`` from the benchmark data config that the benchmark configs include.

    Raises:
        ConfigError: the file is missing or lacks a bucket/prefix string.
    """
    path = Path(conf_file)
    if not path.is_file():
        raise ConfigError(
            f"{path} not found", fix="run from the project root (the file holds bucket and prefix)"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    bucket, prefix = data.get("bucket"), data.get("prefix")
    if not isinstance(bucket, str) or not bucket or not isinstance(prefix, str):
        raise ConfigError(
            f"{path} must set `bucket` (non-empty) and `prefix` (strings)",
            fix="e.g. bucket: my-benchmark-data, prefix: v1",
        )
    return bucket, prefix


@dataclass(frozen=True)
class IngestJobSpec:
    """Everything the two job specs are rendered from.

    ``bucket`` and ``prefix`` have no defaults here: :meth:`from_conf` reads them from the
    benchmark data config. Other defaults are the issue's sizing: 2 vCPU, 8 GiB, 50 GiB scratch,
    2 retries, 1 h per attempt; SageMaker ml.m5.large with a 50 GiB volume and 1 h maximum
    runtime. ``sagemaker_source_key`` is an optional key prefix (inside ``bucket/prefix``) staged
    into the processing container (File mode) as the source.
    """

    bucket: str
    prefix: str
    name: str = "splatbench-ingest"
    image: str = "000000000000.dkr.ecr.us-east-1.amazonaws.com/splatbench:cpu"
    job_role_arn: str = "arn:aws:iam::000000000000:role/splatbench-ingest-job"
    execution_role_arn: str = "arn:aws:iam::000000000000:role/splatbench-ingest-execution"
    region: str = "us-east-1"
    vcpu: float = 2
    memory_mib: int = 8192
    storage_gib: int = 50
    retries: int = 2
    attempt_timeout_s: int = 3600
    output_dir: str = "/tmp/splatbench-ingest"
    log_group: str = "/aws/batch/job"
    sagemaker_instance_type: str = "ml.m5.large"
    sagemaker_volume_gib: int = 50
    sagemaker_max_runtime_s: int = 3600
    sagemaker_source_key: str | None = "staging/example"
    tags: dict[str, str] = field(default_factory=lambda: {"project": "splatbench"})

    @classmethod
    def from_conf(cls, conf_file: Path = DATA_LOCATION_FILE, **fields: Any) -> IngestJobSpec:
        """The spec for the benchmark data location in ``conf_file``; ``fields`` override."""
        bucket, prefix = data_location(conf_file)
        return cls(**{"bucket": bucket, "prefix": prefix, **fields})

    @property
    def sagemaker_source_s3_uri(self) -> str | None:
        if not self.sagemaker_source_key:
            return None
        parts = (self.prefix, self.sagemaker_source_key)
        key = "/".join(p.strip("/") for p in parts if p.strip("/"))
        return f"s3://{self.bucket}/{key}/"

    def check(self) -> None:
        """Refuse values AWS would reject later (ranges from the Batch/Fargate docs)."""
        problems = []
        if not 21 <= self.storage_gib <= 200:
            problems.append(f"storage_gib={self.storage_gib} (Fargate allows 21..200)")
        if not 0 <= self.retries <= 9:
            problems.append(f"retries={self.retries} (Batch allows 1..10 attempts)")
        if self.attempt_timeout_s < 60:
            problems.append(f"attempt_timeout_s={self.attempt_timeout_s} (minimum 60)")
        if problems:
            raise ConfigError(
                "invalid ingest job spec: " + "; ".join(problems), fix="adjust IngestJobSpec"
            )


def _job_args(output_dir: str) -> list[str]:
    # Dataset, scene and source come from Batch job parameters (Ref::...) at submit time.
    return [
        "--dataset",
        "Ref::dataset",
        "--scene",
        "Ref::scene",
        "--source-url",
        "Ref::source_url",
        "--output-dir",
        output_dir,
        "--upload",
    ]


def batch_job_definition(spec: IngestJobSpec) -> dict[str, Any]:
    """The ``RegisterJobDefinition`` request for a Fargate job (no compute hosts to manage)."""
    spec.check()
    return {
        "jobDefinitionName": spec.name,
        "type": "container",
        "platformCapabilities": ["FARGATE"],
        "parameters": {"dataset": "mipnerf360", "scene": "garden", "source_url": ""},
        "containerProperties": {
            "image": spec.image,
            "command": ["splatbench", "ingest", *_job_args(spec.output_dir)],
            "jobRoleArn": spec.job_role_arn,
            "executionRoleArn": spec.execution_role_arn,
            "resourceRequirements": [
                {"type": "VCPU", "value": f"{spec.vcpu:g}"},
                {"type": "MEMORY", "value": str(spec.memory_mib)},
            ],
            "ephemeralStorage": {"sizeInGiB": spec.storage_gib},
            "environment": [
                {"name": "BENCHMARK_BUCKET", "value": spec.bucket},
                {"name": "BENCHMARK_PREFIX", "value": spec.prefix},
                {"name": "AWS_REGION", "value": spec.region},
            ],
            "networkConfiguration": {"assignPublicIp": "ENABLED"},
            "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
            "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": spec.log_group, "awslogs-stream-prefix": spec.name},
            },
        },
        "retryStrategy": {
            "attempts": spec.retries + 1,
            # Order matters: the first matching rule wins.
            "evaluateOnExit": [
                {"onExitCode": str(USER_ERROR_EXIT_CODE), "action": "EXIT"},
                {"onReason": "*", "action": "RETRY"},
            ],
        },
        "timeout": {"attemptDurationSeconds": spec.attempt_timeout_s},
        "propagateTags": True,
        "tags": dict(spec.tags),
    }


def sagemaker_processing_job(
    spec: IngestJobSpec, *, job_name: str = "splatbench-ingest-mipnerf360-garden"
) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request: the same image and CLI as the Batch job."""
    spec.check()
    local_source = "/opt/ml/processing/input/source"
    args = [
        "--dataset",
        "mipnerf360",
        "--scene",
        "garden",
        "--output-dir",
        "/opt/ml/processing/ingest",
        "--upload",
    ]
    if spec.sagemaker_source_s3_uri:
        args += ["--source-url", local_source]
    request: dict[str, Any] = {
        "ProcessingJobName": job_name,
        "RoleArn": spec.job_role_arn,
        "AppSpecification": {
            "ImageUri": spec.image,
            # An explicit, absolute entrypoint: a relative or non-executable one fails at
            # start with exit code 127 (seen in production); tests check the script's mode.
            "ContainerEntrypoint": [ENTRYPOINT, "splatbench", "ingest"],
            "ContainerArguments": args,
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": spec.sagemaker_instance_type,
                "VolumeSizeInGB": spec.sagemaker_volume_gib,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.sagemaker_max_runtime_s},
        "Environment": {
            "BENCHMARK_BUCKET": spec.bucket,
            "BENCHMARK_PREFIX": spec.prefix,
            "AWS_REGION": spec.region,
        },
        "NetworkConfig": {"EnableNetworkIsolation": False},
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(spec.tags.items())],
    }
    if spec.sagemaker_source_s3_uri:
        request["ProcessingInputs"] = [
            {
                "InputName": "source",
                "S3Input": {
                    "S3Uri": spec.sagemaker_source_s3_uri,
                    "LocalPath": local_source,
                    "S3DataType": "S3Prefix",
                    # Required by the API; its absence was a production failure.
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ]
    return request


# Members this project requires on top of botocore's model, by shape name. botocore's current
# SageMaker model marks only S3Uri and S3DataType of a processing input as required, yet a
# request without S3InputMode failed in production (SDK and Step Functions paths require it),
# and without LocalPath the job cannot know where its input lands. For CreateTrainingJob the model
# requires only TrainingJobName, RoleArn and OutputDataConfig (AlgorithmSpecification could be an
# AlgorithmName, ResourceConfig could be an instance-group list); a training job of ours always
# names its image, instance, volume, runtime limit and per-channel input mode and distribution.
# Stricter than AWS on purpose.
STRICT_REQUIRED: dict[str, tuple[str, ...]] = {
    "ProcessingS3Input": ("S3InputMode", "LocalPath", "S3DataDistributionType"),
    "ProcessingS3Output": ("S3UploadMode", "LocalPath"),
    "AppSpecification": ("ContainerEntrypoint",),
    "CreateTrainingJobRequest": ("AlgorithmSpecification", "ResourceConfig", "StoppingCondition"),
    "AlgorithmSpecification": ("TrainingImage", "TrainingInputMode"),
    "ResourceConfig": ("InstanceType", "InstanceCount", "VolumeSizeInGB"),
    "StoppingCondition": ("MaxRuntimeInSeconds",),
    "Channel": ("InputMode",),
    "S3DataSource": ("S3DataDistributionType",),
    "CheckpointConfig": ("LocalPath",),
}

# AWS models write patterns for Java's regex engine; Python's `re` lacks the Unicode property
# classes they use. Each is replaced by its Python spelling (\w and \s are Unicode-aware, a
# little wider than \p{L}\p{N} and \p{Z}: they also admit "_", marks and tabs).
_JAVA_CLASSES = {
    r"\p{N}": r"\d",
    r"\p{Z}": r"\s",
    r"\p{Alnum}": r"a-zA-Z0-9",
    # A UTF-16 surrogate-pair range, i.e. every code point above the BMP.
    r"\uD800\uDC00-\uDBFF\uDFFF": r"\U00010000-\U0010FFFF",
}


def model_pattern(pattern: str) -> re.Pattern[str]:
    """A service-model ``pattern`` compiled for Python (matched with ``fullmatch``).

    Raises:
        re.error: a construct with no Python spelling here (a test compiles every pattern of
            the operations we send, so this cannot surface at submit time).
    """
    if r"\p{L}" in pattern and r"\p{N}" in pattern:
        # [\p{L}\p{Z}\p{N}...]: letters and digits together are \w (which also holds "_").
        pattern = pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", "")
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    return re.compile(pattern)


def validate_request(
    service: str,
    operation: str,
    params: dict[str, Any],
    *,
    fix: str = "fix the job spec in splatbench.cloud.jobs and regenerate containers/jobs/",
) -> None:
    """Validate ``params`` against botocore's model of ``service.operation``.

    Three layers: botocore's ``ParamValidator`` (required members, types, unknown keys, minimum
    lengths), the model's constraints that botocore leaves to the server (maximum lengths and
    values, ``pattern``, ``enum``), and :data:`STRICT_REQUIRED` plus the operation's own rules
    (:data:`OPERATION_RULES`).

    Raises:
        ConfigError: listing every problem, each with its path in the request.
    """
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += _constraint_problems(params, shape, "input")
    problems += _strict_problems(params, shape, "input")
    rule = OPERATION_RULES.get((service, operation))
    if rule is not None:
        problems += rule(params)
    if problems:
        raise ConfigError(
            f"{service}.{operation} request is invalid:\n" + "\n".join(problems), fix=fix
        )


def _strict_problems(value: Any, shape: Any, path: str) -> list[str]:
    """Walk ``value`` along ``shape`` and report members missing per :data:`STRICT_REQUIRED`."""
    problems: list[str] = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name in STRICT_REQUIRED.get(shape.name, ()):
            if name not in value:
                problems.append(
                    f"Missing required parameter in {path}: {name!r} "
                    f"(required by splatbench for {shape.name})"
                )
        for name, member in shape.members.items():
            if name in value:
                problems += _strict_problems(value[name], member, f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            problems += _strict_problems(item, shape.member, f"{path}[{i}]")
    return problems


def _constraint_problems(value: Any, shape: Any, path: str) -> list[str]:
    """Model constraints botocore does not check client-side: max, pattern, enum."""
    problems: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Invalid length for {path}: {len(value)} > maximum {meta['max']}")
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            close = difflib.get_close_matches(value, enum, n=3)
            hint = f" (closest: {', '.join(close)})" if close else ""
            problems.append(f"Invalid value for {path}: {value!r} is not one of {shape.name}{hint}")
        if "pattern" in meta and not model_pattern(meta["pattern"]).fullmatch(value):
            problems.append(f"Invalid value for {path}: {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long") and isinstance(value, int):
        if "max" in meta and value > meta["max"]:
            problems.append(f"Invalid value for {path}: {value} > maximum {meta['max']}")
    elif kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                problems += _constraint_problems(value[name], member, f"{path}.{name}")
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Invalid length for {path}: {len(value)} items > {meta['max']}")
        for i, item in enumerate(value):
            problems += _constraint_problems(item, shape.member, f"{path}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Invalid length for {path}: {len(value)} entries > {meta['max']}")
        for key, item in value.items():
            problems += _constraint_problems(key, shape.key, f"{path} key {key!r}")
            problems += _constraint_problems(item, shape.value, f"{path}[{key!r}]")
    return problems


def _training_job_rules(request: dict[str, Any]) -> list[str]:
    """CreateTrainingJob rules that live in SageMaker's documentation, not in its model."""
    problems: list[str] = []
    stopping = request.get("StoppingCondition") or {}
    runtime, wait = stopping.get("MaxRuntimeInSeconds"), stopping.get("MaxWaitTimeInSeconds")
    if request.get("EnableManagedSpotTraining"):
        if wait is None:
            problems.append(
                "input.StoppingCondition.MaxWaitTimeInSeconds is required with "
                "EnableManagedSpotTraining (the time to wait for spot capacity plus the runtime)"
            )
        elif isinstance(runtime, int) and isinstance(wait, int) and wait <= runtime:
            problems.append(
                f"input.StoppingCondition.MaxWaitTimeInSeconds={wait} must be above "
                f"MaxRuntimeInSeconds={runtime} for managed spot training"
            )
    elif wait is not None:
        problems.append(
            "input.StoppingCondition.MaxWaitTimeInSeconds is only valid with "
            "EnableManagedSpotTraining=true"
        )
    names = [c.get("ChannelName") for c in request.get("InputDataConfig") or []]
    dupes = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if dupes:
        problems.append(f"input.InputDataConfig: channel names {dupes} appear more than once")
    return problems


OPERATION_RULES: dict[tuple[str, str], Callable[[dict[str, Any]], list[str]]] = {
    ("sagemaker", "CreateTrainingJob"): _training_job_rules,
}


def render_job_specs(
    out_dir: Path, spec: IngestJobSpec | None = None, conf_file: Path = DATA_LOCATION_FILE
) -> list[Path]:
    """Validate and write both request bodies as JSON into ``out_dir`` (by default for the data
    location in ``conf_file``)."""
    spec = spec or IngestJobSpec.from_conf(conf_file)
    batch = batch_job_definition(spec)
    sagemaker = sagemaker_processing_job(spec)
    validate_request("batch", "RegisterJobDefinition", batch)
    validate_request("sagemaker", "CreateProcessingJob", sagemaker)
    paths = [Path(out_dir) / BATCH_FILENAME, Path(out_dir) / SAGEMAKER_FILENAME]
    for path, body in zip(paths, (batch, sagemaker), strict=True):
        atomic_write_json(path, body)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render the ingest job specs as JSON.")
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("containers/jobs"))
    parser.add_argument(
        "--data-conf",
        type=Path,
        default=DATA_LOCATION_FILE,
        help="the benchmark data location (bucket, prefix)",
    )
    args = parser.parse_args(argv)
    for path in render_job_specs(args.out_dir, conf_file=args.data_conf):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
