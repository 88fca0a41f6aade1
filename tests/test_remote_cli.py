"""`splatbench remote` on the command line, up to submission (no AWS here): --dry-run prints the
validated request, user errors exit 2 with a fix, the cost guard refuses over budget, IAM
policies name exactly the prefixes in use. Real git and DVC config; nothing is uploaded."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from splatbench.cli import app
from splatbench.cloud.contract import JobSpec, compose_params, params_sha256
from splatbench.cloud.sagemaker import validate_training_request

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/splatbench@sha256:" + "d" * 64
ROLE = "arn:aws:iam::123456789012:role/splatbench-training"
BASE = ["--jobs-uri", "s3://team-jobs/splatbench", "--image", IMAGE, "--role-arn", ROLE]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def project(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's pipeline definition in a fresh git repo with a committed S3 DVC remote."""
    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("conf", "stages"):
        shutil.copytree(repo_root / name, repo / name)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy2(repo_root / name, repo / name)
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text(
        "[core]\n    remote = storage\n    analytics = false\n[hydra]\n    enabled = true\n"
        "['remote \"storage\"']\n    url = s3://team-dvc/cache\n"
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "project")
    monkeypatch.chdir(repo)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return repo


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["remote", *args], catch_exceptions=False)


def test_dry_run_prints_the_validated_request(project: Path) -> None:
    result = _invoke(
        "run", "train@blocks", "-S", "strategy.grow_grad2d=1e-4", "--spot", "--dry-run",
        "--max-usd", "20", "--tag", "team=vision", "-n", "grow-1e-4", *BASE,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout[result.stdout.index("{") :])
    validate_training_request(request)
    spec = JobSpec.from_hyperparameters(request["HyperParameters"])
    head = _git(project, "rev-parse", "HEAD").strip()
    assert spec.commit == head and spec.targets == ("train@blocks",)
    assert spec.experiment == "grow-1e-4" and request["TrainingJobName"].startswith("sb-grow-1e-4-")
    # The hash is of params.yaml exactly as `dvc exp run -S` composes it at that commit.
    assert spec.params_sha256 == params_sha256(
        compose_params(project, ["strategy.grow_grad2d=1e-4"])
    )
    assert request["EnableManagedSpotTraining"] is True
    assert "Worst-case compute cost" in result.stderr and "$6.06" in result.stderr
    # A dry run creates nothing: no state, no pinned code ref beyond HEAD's.
    assert not (project / ".splatbench" / "remote").exists()


def test_sweep_dry_run_fans_out(project: Path) -> None:
    result = _invoke(
        "run", "--sweep", "-S", "strategy.grow_grad2d=1e-4,2e-4,4e-4", "-S",
        "early_stop=off,plateau", "-n", "grid", "--max-runtime", "1h", "--dry-run", *BASE,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    requests = json.loads(result.stdout[result.stdout.index("[") :])
    assert len(requests) == 6
    names = {r["TrainingJobName"] for r in requests}
    experiments = {JobSpec.from_hyperparameters(r["HyperParameters"]).experiment for r in requests}
    assert len(names) == 6 and experiments == {f"grid-{i}" for i in range(1, 7)}
    sweeps = {t["Value"] for r in requests for t in r["Tags"] if t["Key"] == "splatbench:sweep"}
    assert len(sweeps) == 1
    hashes = {JobSpec.from_hyperparameters(r["HyperParameters"]).params_sha256 for r in requests}
    assert len(hashes) == 6
    assert "$9.09" in result.stderr  # 6 x 1 h x $1.515


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sweep", "-S", "strategy.grow_grad2d=1e-4,2e-4", "--max-usd", "2"], "above --max-usd"),
        (["-S", "strategy.grow_grad2d=1e-4,2e-4"], "--sweep"),
        (["-S", "strategy.no_such=1"], "strategy.no_such"),
        (["train@garden"], "train@garden"),
        (["--instance", "ml.g5.2xlarg"], "closest: ml.g5.2xlarge"),
        (["--instance", "ml.p5.48xlarge"], "no price for ml.p5.48xlarge"),
        (["--max-runtime", "soon"], "duration"),
        (["--spot", "--max-runtime", "2h", "--max-wait", "1h"], "above --max-runtime"),
        (["--subnet", "subnet-1"], "security groups"),
        (["--dvc-remote", "elsewhere"], "elsewhere"),
        (["--tag", "splatbench:commit=x"], "reserved"),
    ],
)
def test_user_errors_exit_2_with_a_fix(project: Path, args: list[str], needle: str) -> None:
    result = _invoke("run", "--dry-run", *args, *BASE)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "fix:" in result.output


def test_refuses_a_dirty_tree_and_sends_it_when_asked(project: Path) -> None:
    with (project / "conf" / "strategy" / "default.yaml").open("a") as fh:
        fh.write("# local tweak\n")
    (project / "notes.txt").write_text("scratch\n")
    result = _invoke("run", "--dry-run", *BASE)
    assert result.exit_code == 2 and "uncommitted changes" in result.output
    result = _invoke("run", "--dry-run", "--include-uncommitted", *BASE)
    assert result.exit_code == 0, result.output
    assert "untracked files are not sent to the job: notes.txt" in result.stderr
    request = json.loads(result.stdout[result.stdout.index("{") :])
    commit = JobSpec.from_hyperparameters(request["HyperParameters"]).commit
    assert commit != _git(project, "rev-parse", "HEAD").strip()
    assert "# local tweak" in _git(project, "show", f"{commit}:conf/strategy/default.yaml")
    assert _git(project, "status", "--porcelain") == " M conf/strategy/default.yaml\n?? notes.txt\n"


def test_dvc_remote_must_be_committed_and_on_s3(project: Path) -> None:
    (project / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    (project / ".dvc" / "config.local").write_text(
        "[core]\n    remote = mine\n['remote \"mine\"']\n    url = s3://private/cache\n"
    )
    _git(project, "commit", "-qam", "no remote")
    result = _invoke("run", "--dry-run", *BASE)
    assert result.exit_code == 2 and "names no default DVC remote" in result.output
    (project / ".dvc" / "config").write_text(
        "[core]\n    remote = local\n['remote \"local\"']\n    url = /mnt/cache\n"
    )
    _git(project, "commit", "-qam", "local remote")
    result = _invoke("run", "--dry-run", *BASE)
    assert result.exit_code == 2 and "only an s3:// remote" in result.output


def test_remote_yaml_settings_and_their_errors(project: Path) -> None:
    (project / "remote.yaml").write_text(
        f"image: {IMAGE}\nrole_arn: {ROLE}\njobs_uri: s3://team-jobs/sb\ninstance_type: "
        "ml.g4dn.xlarge\nmax_runtime: 30m\ntags: {team: vision}\n"
    )
    _git(project, "add", "remote.yaml")
    _git(project, "commit", "-qm", "remote settings")
    result = _invoke("run", "--dry-run")
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout[result.stdout.index("{") :])
    assert request["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 1800
    assert {"Key": "team", "Value": "vision"} in request["Tags"]
    override = _invoke("run", "--dry-run", "--instance", "ml.g5.xlarge")
    assert (
        json.loads(override.stdout[override.stdout.index("{") :])["ResourceConfig"]["InstanceType"]
        == "ml.g5.xlarge"
    )
    (project / "remote.yaml").write_text("instance: ml.g5.xlarge\n")
    result = _invoke("run", "--dry-run")
    assert result.exit_code == 2 and "did you mean 'instance_type'" in result.output


def test_training_role_policy_is_least_privilege(project: Path) -> None:
    kms = "arn:aws:kms:us-east-1:123456789012:key/1234"
    result = _invoke(
        "iam-policy", "--kms-key-id", kms, "--subnet", "subnet-1", "--region", "us-east-1", *BASE
    )
    assert result.exit_code == 0, result.output
    policy = json.loads(result.stdout)
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["PullTrainingImage"]["Resource"] == [
        "arn:aws:ecr:us-east-1:123456789012:repository/splatbench"
    ]
    assert by_sid["ReadCodeBundlesObjects"]["Resource"] == [
        "arn:aws:s3:::team-jobs/splatbench/code/*"
    ]
    assert by_sid["ReadCodeBundlesObjects"]["Action"] == ["s3:GetObject"]
    assert by_sid["WriteModelOutputObjects"]["Action"] == ["s3:PutObject"]
    assert by_sid["DvcRemoteObjects"]["Resource"] == ["arn:aws:s3:::team-dvc/cache/*"]
    assert by_sid["ReadBenchmarkDataObjects"]["Resource"] == [
        "arn:aws:s3:::splatbench-benchmarks/v1/*"
    ]
    assert by_sid["DvcRemoteList"]["Condition"]["StringLike"]["s3:prefix"] == ["cache/*", "cache"]
    assert by_sid["EncryptOutputAndVolume"]["Resource"] == [kms]
    assert "JobNetworkInterfaces" in by_sid
    assert by_sid["WriteJobLogs"]["Resource"][0] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/TrainingJobs"
    )
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert not any(a.endswith(":*") or a == "*" for a in actions)
    assert "s3:DeleteObject" in by_sid["SyncCheckpointsObjects"]["Action"]
    assert all(
        "checkpoints" in r for s in policy["Statement"] if "s3:DeleteObject" in s["Action"]
        for r in s["Resource"]
    )  # fmt: skip
    s3_objects = [
        r for s in policy["Statement"] for r in s["Resource"] if r.startswith("arn:aws:s3")
    ]
    assert not any(r.endswith(":::team-jobs/*") or r.endswith(":::team-dvc/*") for r in s3_objects)
    # The same policy from `remote run --print-iam-policy`.
    same = _invoke("run", "--print-iam-policy", "--kms-key-id", kms, "--subnet", "subnet-1", *BASE)
    assert json.loads(same.stdout) == policy


def test_caller_and_trust_policies(project: Path) -> None:
    caller = json.loads(_invoke("iam-policy", "--caller", *BASE).stdout)
    by_sid = {s["Sid"]: s for s in caller["Statement"]}
    assert by_sid["PassExecutionRoleToSageMakerOnly"] == {
        "Sid": "PassExecutionRoleToSageMakerOnly",
        "Effect": "Allow",
        "Action": ["iam:PassRole"],
        "Resource": [ROLE],
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    }
    assert by_sid["TrainingJobs"]["Resource"] == [
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/sb-*"
    ]
    assert by_sid["UploadCodeBundlesObjects"]["Action"] == ["s3:GetObject", "s3:PutObject"]
    trust = json.loads(_invoke("iam-policy", "--trust", *BASE).stdout)
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_every_remote_command_has_help() -> None:
    runner = CliRunner()
    for command in ("run", "resume", "status", "logs", "stop", "fetch", "list", "iam-policy"):
        result = runner.invoke(app, ["remote", command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_status_of_an_unknown_local_job_is_a_user_error(project: Path) -> None:
    pytest.importorskip("splatbench.cloud.local_executor", reason="needs the local executor")
    result = _invoke("status", "sb-nope", "--backend", "local")
    assert result.exit_code == 2 and "not found" in result.output
