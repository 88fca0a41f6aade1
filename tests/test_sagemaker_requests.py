"""CreateTrainingJob requests: built from a JobSpec, checked against botocore's real model (via
``Stubber``, which validates every call against the service model), the model constraints
botocore leaves to the server, and the project's strict list. A missing field fails."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from splatbench.cloud.contract import JobSpec
from splatbench.cloud.jobs import model_pattern, validate_request
from splatbench.cloud.sagemaker import (
    JobLocation,
    TrainingSettings,
    build_training_request,
    check_job_name,
    ecr_parts,
    job_name,
    parse_duration,
    parse_tags,
    resolve_image,
    validate_training_request,
)
from splatbench.errors import ConfigError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA = "ab" * 32
DIGEST = "sha256:" + "c" * 64
IMAGE = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/splatbench@{DIGEST}"
ROLE = "arn:aws:iam::123456789012:role/splatbench-training"


def _spec(**kw: Any) -> JobSpec:
    return JobSpec(
        commit=COMMIT,
        params_sha256=SHA,
        targets=("train@garden",),
        overrides=("benchmark=mipnerf360", "benchmark.scenes=[garden]"),
        experiment="garden-1",
        **kw,
    )


def _settings(**kw: Any) -> TrainingSettings:
    base: dict[str, Any] = {
        "role_arn": ROLE,
        "image": IMAGE,
        "jobs": JobLocation("my-jobs", "splatbench/jobs"),
    }
    return TrainingSettings(**{**base, **kw})


def _request(**kw: Any) -> dict[str, Any]:
    name = "sb-garden-1-261202-120000-abcd"
    return build_training_request(name, _spec(), _settings(**kw), tags={"splatbench:sweep": "s1"})


def _client(service: str) -> Any:
    return botocore.session.get_session().create_client(
        service,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret-just-a-stub",
    )


def test_request_passes_botocore_stubber_and_strict_checks() -> None:
    request = _request(
        spot=True,
        kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abc",
        subnets=("subnet-0a1b",),
        security_group_ids=("sg-0a1b",),
        tags={"team": "vision"},
    )
    validate_training_request(request)
    client = _client("sagemaker")
    with Stubber(client) as stub:
        stub.add_response(
            "create_training_job",
            {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"},
            expected_params=request,
        )
        client.create_training_job(**request)
        stub.assert_no_pending_responses()
    # The contract and the layout, as the container and the executor read them.
    assert JobSpec.from_hyperparameters(request["HyperParameters"]) == _spec()
    channel = request["InputDataConfig"][0]
    assert channel["ChannelName"] == "code" and channel["InputMode"] == "File"
    source = channel["DataSource"]["S3DataSource"]
    assert source["S3Uri"] == f"s3://my-jobs/splatbench/jobs/code/{COMMIT}/"
    assert source["S3DataDistributionType"] == "FullyReplicated"
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://my-jobs/splatbench/jobs/checkpoints/{request['TrainingJobName']}/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    stopping = request["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] > stopping["MaxRuntimeInSeconds"]
    assert request["OutputDataConfig"]["KmsKeyId"] == request["ResourceConfig"]["VolumeKmsKeyId"]
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags["splatbench:commit"] == COMMIT and tags["splatbench:params-sha256"] == SHA
    assert tags["splatbench:sweep"] == "s1" and tags["team"] == "vision"
    assert request["VpcConfig"] == {"Subnets": ["subnet-0a1b"], "SecurityGroupIds": ["sg-0a1b"]}


def _drop(path: tuple[Any, ...]) -> Any:
    def mutate(request: dict[str, Any]) -> None:
        node: Any = request
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        (("AlgorithmSpecification",), "AlgorithmSpecification"),
        (("ResourceConfig",), "ResourceConfig"),
        (("StoppingCondition",), "StoppingCondition"),
        (("AlgorithmSpecification", "TrainingImage"), "TrainingImage"),
        (("ResourceConfig", "VolumeSizeInGB"), "VolumeSizeInGB"),
        (("StoppingCondition", "MaxRuntimeInSeconds"), "MaxRuntimeInSeconds"),
        (("InputDataConfig", 0, "InputMode"), "InputMode"),
        (
            ("InputDataConfig", 0, "DataSource", "S3DataSource", "S3DataDistributionType"),
            "S3DataDistributionType",
        ),
        (("CheckpointConfig", "LocalPath"), "LocalPath"),
        (("RoleArn",), "RoleArn"),  # required by botocore's model itself
        (("InputDataConfig",), "'code' channel"),
    ],
)
def test_removing_a_required_field_fails(path: tuple[Any, ...], needle: str) -> None:
    request = _request()
    _drop(path)(request)
    with pytest.raises(ConfigError, match=needle):
        validate_training_request(request)


def test_botocore_alone_misses_what_the_strict_list_catches() -> None:
    """The reason for the strict list: the model accepts these requests as they are."""
    from botocore.validate import ParamValidator

    shape = (
        botocore.session.get_session()
        .get_service_model("sagemaker")
        .operation_model("CreateTrainingJob")
        .input_shape
    )
    for path in (
        ("ResourceConfig",),
        ("StoppingCondition",),
        ("InputDataConfig", 0, "InputMode"),
        ("InputDataConfig", 0, "DataSource", "S3DataSource", "S3DataDistributionType"),
    ):
        request = _request()
        _drop(path)(request)
        assert not ParamValidator().validate(request, shape).has_errors(), path


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: r["StoppingCondition"].pop("MaxWaitTimeInSeconds"), "MaxWaitTimeInSeconds"),
        (
            lambda r: r["StoppingCondition"].update(MaxWaitTimeInSeconds=3600),
            "must be above",
        ),
        (lambda r: r.update(EnableManagedSpotTraining=False), "only valid with"),
        (lambda r: r["ResourceConfig"].update(InstanceType="ml.g5.2xlarg"), "ml.g5.2xlarge"),
        (lambda r: r.update(TrainingJobName="sb_bad_name"), "TrainingJobName"),
        (lambda r: r.update(TrainingJobName="a" * 64), "maximum 63"),
        (lambda r: r["Tags"].append({"Key": "overrides", "Value": "a=[1,2]"}), "Tags"),
        (lambda r: r["HyperParameters"].update(x="y" * 2501), "maximum 2500"),
        (lambda r: r.update(RoleArn="arn:aws:iam::12:role/x"), "RoleArn"),
        (lambda r: r["AlgorithmSpecification"].update(TrainingImage="repo:latest"), "digest"),
        (
            lambda r: r["InputDataConfig"].append(copy.deepcopy(r["InputDataConfig"][0])),
            "more than once",
        ),
    ],
    ids=[
        "spot-without-wait",
        "wait-not-above-runtime",
        "wait-without-spot",
        "instance-typo",
        "bad-job-name",
        "long-job-name",
        "tag-pattern",
        "hyperparameter-length",
        "role-arn-pattern",
        "image-tag",
        "duplicate-channel",
    ],
)
def test_semantic_and_constraint_checks(mutate: Any, needle: str) -> None:
    request = _request(spot=True, max_runtime_s=3600)
    validate_training_request(request)
    mutate(request)
    with pytest.raises(ConfigError, match=needle):
        validate_training_request(request)


def test_every_model_pattern_of_the_operations_we_call_compiles() -> None:
    """No pattern is silently skipped: each one of these operations compiles for Python."""
    session = botocore.session.get_session()
    calls = {
        "sagemaker": [
            "CreateTrainingJob",
            "CreateProcessingJob",
            "DescribeTrainingJob",
            "StopTrainingJob",
            "ListTrainingJobs",
        ],
        "batch": ["RegisterJobDefinition"],
        "ecr": ["DescribeImages"],
        "logs": ["DescribeLogStreams", "GetLogEvents"],
    }
    count = 0
    for service, operations in calls.items():
        model = session.get_service_model(service)
        for operation in operations:
            seen: set[str] = set()
            stack = [model.operation_model(operation).input_shape]
            while stack:
                shape = stack.pop()
                if shape.name in seen:
                    continue
                seen.add(shape.name)
                if "pattern" in shape.metadata:
                    model_pattern(shape.metadata["pattern"])
                    count += 1
                if shape.type_name == "structure":
                    stack += list(shape.members.values())
                elif shape.type_name == "list":
                    stack.append(shape.member)
                elif shape.type_name == "map":
                    stack += [shape.key, shape.value]
    assert count > 50
    tag = model_pattern(r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)")
    assert tag.fullmatch("splatbench:commit") and tag.fullmatch("Grün 2")
    assert not tag.fullmatch("a,b")


def test_processing_job_specs_still_validate(repo_root: Any) -> None:
    """The model-constraint layer also runs on the ingest job specs (they still pass)."""
    from splatbench.cloud.jobs import (
        DATA_LOCATION_FILE,
        IngestJobSpec,
        batch_job_definition,
        sagemaker_processing_job,
    )

    spec = IngestJobSpec.from_conf(repo_root / DATA_LOCATION_FILE)
    validate_request("sagemaker", "CreateProcessingJob", sagemaker_processing_job(spec))
    validate_request("batch", "RegisterJobDefinition", batch_job_definition(spec))


def test_job_names_are_valid_and_unique() -> None:
    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=timezone.utc)
    name = job_name("a very long experiment name, with punctuation!" * 3, now=now, token="beef")
    check_job_name(name)
    assert len(name) <= 63 and name.startswith("sb-a-very-long") and name.endswith("-beef")
    assert job_name(None, now=now, token="0001") == "sb-run-261202-120000-0001"
    assert job_name("x", now=now) != job_name("x", now=now)
    with pytest.raises(ConfigError, match="not valid"):
        check_job_name("-leading-hyphen")


def test_image_must_be_pinned() -> None:
    assert resolve_image(IMAGE, ecr=None) == IMAGE
    with pytest.raises(ConfigError, match="not pinned"):
        resolve_image("splatbench:latest", ecr=None)
    assert resolve_image("splatbench:latest", ecr=None, allow_tag=True) == "splatbench:latest"


def test_ecr_tag_resolves_to_its_digest() -> None:
    tagged = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/splatbench:gpu-1"
    assert ecr_parts(tagged) == {
        "account": "123456789012",
        "region": "us-east-1",
        "repo": "team/splatbench",
        "tag": "gpu-1",
    }
    ecr = _client("ecr")
    with Stubber(ecr) as stub:
        stub.add_response(
            "describe_images",
            {"imageDetails": [{"imageDigest": DIGEST, "imageTags": ["gpu-1"]}]},
            expected_params={
                "registryId": "123456789012",
                "repositoryName": "team/splatbench",
                "imageIds": [{"imageTag": "gpu-1"}],
            },
        )
        stub.add_client_error("describe_images", "ImageNotFoundException", "no such tag")
        resolved = resolve_image(tagged, ecr=ecr)
        assert resolved == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/splatbench@{DIGEST}"
        with pytest.raises(ConfigError, match="cannot resolve image tag"):
            resolve_image(tagged, ecr=ecr)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"instance_count": 2}, "one host"),
        ({"max_runtime_s": 10}, "outside"),
        ({"spot": True, "max_runtime_s": 3600, "max_wait_s": 3600}, "above --max-runtime"),
        ({"max_wait_s": 9000}, "only applies to --spot"),
        ({"subnets": ("subnet-1",)}, "both subnets and security groups"),
    ],
)
def test_bad_settings_are_refused_before_building(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _request(**kw)


def test_spot_wait_defaults_to_twice_the_runtime() -> None:
    assert _request(spot=True, max_runtime_s=5400)["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 5400,
        "MaxWaitTimeInSeconds": 10800,
    }
    assert "MaxWaitTimeInSeconds" not in _request()["StoppingCondition"]


def test_durations_and_tags() -> None:
    assert parse_duration("90m") == 5400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2d") == 172800
    assert parse_duration(60) == 60 and parse_duration("60") == 60
    for bad in ("soon", "1x", "h"):
        with pytest.raises(ConfigError, match="duration"):
            parse_duration(bad)
    assert parse_tags(["team=vision", "cost-center=42"]) == {"team": "vision", "cost-center": "42"}
    with pytest.raises(ConfigError, match="reserved"):
        parse_tags(["splatbench:commit=x"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_tags(["novalue"])
