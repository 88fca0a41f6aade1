"""Job specs (AWS Batch / SageMaker) against botocore's service models, the IAM policy, the CLI."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("botocore")

from typer.testing import CliRunner

from splatbench.cloud.iam import PolicyOptions, ingest_job_policy
from splatbench.cloud.jobs import (
    BATCH_FILENAME,
    DATA_LOCATION_FILE,
    SAGEMAKER_FILENAME,
    IngestJobSpec,
    batch_job_definition,
    render_job_specs,
    sagemaker_processing_job,
    validate_request,
)
from splatbench.cloud.s3 import S3Layout
from splatbench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "containers" / "jobs"
DATA_CONF = REPO / DATA_LOCATION_FILE


def _spec(**fields: object) -> IngestJobSpec:
    return IngestJobSpec.from_conf(DATA_CONF, **fields)


def test_checked_in_specs_are_current_and_valid(tmp_path: Path) -> None:
    render_job_specs(tmp_path, conf_file=DATA_CONF)
    for name in (BATCH_FILENAME, SAGEMAKER_FILENAME):
        assert json.loads((JOBS / name).read_text()) == json.loads((tmp_path / name).read_text()), (
            f"containers/jobs/{name} is stale: python -m splatbench.cloud.jobs containers/jobs"
        )
    validate_request(
        "batch", "RegisterJobDefinition", json.loads((JOBS / BATCH_FILENAME).read_text())
    )
    validate_request(
        "sagemaker", "CreateProcessingJob", json.loads((JOBS / SAGEMAKER_FILENAME).read_text())
    )


def test_job_specs_and_benchmarks_name_one_data_location(tmp_path: Path) -> None:
    """The benchmark configs and the ingestion job read the same bucket/prefix file."""
    import sys

    import yaml

    sys.path.insert(0, str(REPO / "scripts"))
    from compose_params import compose

    spec = _spec()
    batch_env = {
        e["name"]: e["value"]
        for e in json.loads((JOBS / BATCH_FILENAME).read_text())["containerProperties"][
            "environment"
        ]
    }
    processing_env = json.loads((JOBS / SAGEMAKER_FILENAME).read_text())["Environment"]
    for env in (batch_env, processing_env):
        assert (env["BENCHMARK_BUCKET"], env["BENCHMARK_PREFIX"]) == (spec.bucket, spec.prefix)
    for benchmark in ("mipnerf360", "tandt", "db"):
        out = tmp_path / f"{benchmark}.yaml"
        compose(out, [f"benchmark={benchmark}"], root=REPO)
        data = yaml.safe_load(out.read_text())["benchmark"]["data"]
        assert (data["bucket"], data["prefix"]) == (spec.bucket, spec.prefix), benchmark
    # Overriding it on the command line still works (the run reads params, not the file).
    out = tmp_path / "override.yaml"
    compose(out, ["benchmark=mipnerf360", "benchmark.data.bucket=other-bucket"], root=REPO)
    settings = yaml.safe_load(out.read_text())["benchmark"]["scene_defaults"]
    assert settings["source"].startswith(f"s3://other-bucket/{spec.prefix}/raw/")


def test_data_location_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        IngestJobSpec.from_conf(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prefix: v1\n")
    with pytest.raises(ConfigError, match="bucket"):
        IngestJobSpec.from_conf(bad)


def test_batch_sizing_matches_the_issue() -> None:
    body = batch_job_definition(_spec())
    props = body["containerProperties"]
    assert {r["type"]: r["value"] for r in props["resourceRequirements"]} == {
        "VCPU": "2",
        "MEMORY": "8192",
    }
    assert 20 <= props["ephemeralStorage"]["sizeInGiB"] <= 50
    assert body["retryStrategy"]["attempts"] == 3  # 2 retries
    assert body["timeout"]["attemptDurationSeconds"] == 3600
    assert props["command"][:2] == ["splatbench", "ingest"] and "--upload" in props["command"]


def test_sagemaker_sizing_matches_the_issue() -> None:
    body = sagemaker_processing_job(_spec())
    cluster = body["ProcessingResources"]["ClusterConfig"]
    assert (cluster["InstanceType"], cluster["VolumeSizeInGB"]) == ("ml.m5.large", 50)
    assert body["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600


def test_missing_s3_input_mode_fails_validation() -> None:
    body = copy.deepcopy(sagemaker_processing_job(_spec()))
    validate_request("sagemaker", "CreateProcessingJob", body)
    del body["ProcessingInputs"][0]["S3Input"]["S3InputMode"]
    with pytest.raises(ConfigError, match="S3InputMode"):
        validate_request("sagemaker", "CreateProcessingJob", body)


@pytest.mark.parametrize(
    ("service", "operation", "mutate", "needle"),
    [
        ("batch", "RegisterJobDefinition", lambda b: b.pop("type"), "type"),
        (
            "batch",
            "RegisterJobDefinition",
            lambda b: b["retryStrategy"].update(attempts="3"),
            "attempts",
        ),
        ("sagemaker", "CreateProcessingJob", lambda b: b.pop("RoleArn"), "RoleArn"),
        (
            "sagemaker",
            "CreateProcessingJob",
            lambda b: b["ProcessingResources"]["ClusterConfig"].update(VolumeSizeGB=50),
            "VolumeSizeGB",
        ),
    ],
)
def test_validation_catches_broken_requests(service, operation, mutate, needle) -> None:  # type: ignore[no-untyped-def]
    spec = _spec()
    body = batch_job_definition(spec) if service == "batch" else sagemaker_processing_job(spec)
    mutate(body)
    with pytest.raises(ConfigError, match=needle):
        validate_request(service, operation, body)


def test_bad_spec_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="storage_gib"):
        batch_job_definition(_spec(storage_gib=10))


def test_entrypoint_is_executable() -> None:
    # Exit code 127 in production came from a non-executable entrypoint.
    entrypoint = REPO / "containers" / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    assert entrypoint.read_text().startswith("#!")
    assert "splatbench)" in entrypoint.read_text()


def test_iam_policy_is_least_privilege() -> None:
    policy = ingest_job_policy(S3Layout("bench-data", "bench/v1"))
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    publish = by_sid["PublishRawPayloadAndManifests"]
    assert "s3:PutObject" in publish["Action"]
    assert publish["Resource"] == [
        "arn:aws:s3:::bench-data/bench/v1/raw/*",
        "arn:aws:s3:::bench-data/bench/v1/manifests/*",
    ]
    assert by_sid["ExportRunLogs"]["Resource"] == ["arn:aws:s3:::bench-data/bench/v1/results/*"]
    listing = by_sid["ListOnlyTheBenchmarkPrefix"]
    assert listing["Condition"]["StringLike"]["s3:prefix"][0] == "bench/v1/raw/*"
    assert any(a.startswith("logs:") for a in by_sid["WriteContainerLogs"]["Action"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert not any(a.endswith("*") for a in actions)
    assert "s3:DeleteObject" not in actions
    resources = [r for s in policy["Statement"] for r in s["Resource"]]
    assert "arn:aws:s3:::bench-data/*" not in resources
    minimal = ingest_job_policy(
        S3Layout("bench-data"), PolicyOptions(include_list_bucket=False, include_resume=False)
    )
    assert all("List" not in s["Sid"] for s in minimal["Statement"])


def _app():  # type: ignore[no-untyped-def]
    import typer

    from splatbench.cloud.ingest_job_cli import ingest_command

    app = typer.Typer()
    app.command()(ingest_command)
    return app


def test_cli_prints_policy_and_requires_options(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BENCHMARK_BUCKET", "BENCH_DATASET", "BENCH_SCENE", "BENCHMARK_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    result = runner.invoke(
        _app(), ["--print-iam-policy", "--bucket", "bench-data", "--prefix", "p"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["Version"] == "2012-10-17"
    result = runner.invoke(_app(), ["--dataset", "d", "--scene", "s", "--output-dir", "o"])
    assert result.exit_code == 2
    assert "BENCHMARK_BUCKET" in result.output


def test_cli_dry_run_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dry run needs no S3 at all: no endpoint, no credentials."""
    pytest.importorskip("PIL")
    from s3_fixture import make_scene_payload

    src = make_scene_payload(tmp_path / "src")
    monkeypatch.setenv("BENCHMARK_BUCKET", "bench-data")
    monkeypatch.setenv("BENCH_DATASET", "mipnerf360")
    monkeypatch.setenv("BENCH_SCENE", "garden")
    monkeypatch.setenv("BENCHMARK_PREFIX", "v1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # would fail if used
    out = tmp_path / "out"
    result = CliRunner().invoke(
        _app(),
        [
            "--output-dir",
            str(out),
            "--source-url",
            str(src),
            "--expected-image-dirs",
            "images,images_2",
            "--json",
            "--run-id",
            "r1",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["mode"] == "dry-run" and summary["images"] == {"images": 3, "images_2": 3}
    assert (
        out / "s3_dry_run" / "v1" / "manifests" / "mipnerf360" / "garden.manifest.json"
    ).is_file()
    assert (out / "s3_dry_run" / "v1" / "raw" / "mipnerf360" / "garden" / "LICENSE.txt").is_file()
