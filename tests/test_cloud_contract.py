"""The launcher/container contract: JobSpec <-> string hyperparameters, and the /opt/ml layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splatbench.cloud.contract import (
    MAX_VALUE_CHARS,
    SM_ROOT_ENV,
    JobSpec,
    SageMakerPaths,
)
from splatbench.errors import ConfigError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA = "ab" * 32


def test_round_trip_through_json_strings() -> None:
    spec = JobSpec(
        commit=COMMIT,
        params_sha256=SHA,
        targets=("train@garden", "report"),
        overrides=("benchmark=mipnerf360", "benchmark.scenes=[garden]", "x='a b,c'"),
        dvc_remote="storage",
        experiment="grow-1e-4",
    )
    hp = spec.to_hyperparameters()
    assert all(isinstance(v, str) for v in hp.values())
    # SageMaker hands the container a JSON file of strings; go through real JSON.
    assert JobSpec.from_hyperparameters(json.loads(json.dumps(hp))) == spec


def test_defaults_are_omitted_and_restored() -> None:
    hp = JobSpec(commit=COMMIT, params_sha256=SHA).to_hyperparameters()
    assert set(hp) == {
        "splatbench_commit",
        "splatbench_params_sha256",
        "splatbench_targets",
        "splatbench_overrides",
    }
    spec = JobSpec.from_hyperparameters(hp)
    assert spec.targets == () and spec.overrides == () and spec.dvc_remote is None


def test_foreign_keys_are_ignored_but_unknown_own_keys_fail() -> None:
    hp = JobSpec(commit=COMMIT, params_sha256=SHA).to_hyperparameters()
    assert JobSpec.from_hyperparameters({**hp, "sagemaker_region": '"us-east-1"'}).commit == COMMIT
    with pytest.raises(ConfigError, match="splatbench_bogus"):
        JobSpec.from_hyperparameters({**hp, "splatbench_bogus": "1"})


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("splatbench_targets", "train@garden", "not a JSON array"),
        ("splatbench_targets", '{"a": 1}', "JSON array of strings"),
        ("splatbench_overrides", "[1, 2]", "JSON array of strings"),
        ("splatbench_commit", "abc", "40-hex"),
        ("splatbench_params_sha256", "xyz", "sha256"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, match: str) -> None:
    hp = JobSpec(commit=COMMIT, params_sha256=SHA).to_hyperparameters()
    with pytest.raises(ConfigError, match=match):
        JobSpec.from_hyperparameters({**hp, key: value})


def test_missing_required_and_non_string_values() -> None:
    with pytest.raises(ConfigError, match="missing splatbench_commit"):
        JobSpec.from_hyperparameters({"splatbench_params_sha256": SHA})
    with pytest.raises(ConfigError, match="must be a string"):
        JobSpec.from_hyperparameters({"splatbench_commit": COMMIT, "splatbench_params_sha256": 5})


def test_value_length_limit() -> None:
    long = tuple(f"a.b{i}=1" for i in range(MAX_VALUE_CHARS // 5))
    with pytest.raises(ConfigError, match="SageMaker allows"):
        JobSpec(commit=COMMIT, params_sha256=SHA, overrides=long).to_hyperparameters()


def test_paths_follow_the_training_contract(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert SageMakerPaths().hyperparameters == Path("/opt/ml/input/config/hyperparameters.json")
    monkeypatch.setenv(SM_ROOT_ENV, str(tmp_path))
    paths = SageMakerPaths.from_env()
    assert paths.channel("code") == tmp_path / "input/data/code"
    assert paths.failure == tmp_path / "output/failure"
    assert paths.model == tmp_path / "model"
    assert paths.checkpoints == tmp_path / "checkpoints"
