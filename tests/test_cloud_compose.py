"""compose_params: the params.yaml that `dvc exp run -S` writes, shared by launcher and job."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from splatbench.cloud.contract import compose_params, params_sha256
from splatbench.errors import ConfigError


def test_no_overrides_reproduces_the_committed_params(repo_root: Path) -> None:
    text = compose_params(repo_root, [])
    assert text == (repo_root / "params.yaml").read_text(encoding="utf-8")
    assert params_sha256(text) == params_sha256(text) and len(params_sha256(text)) == 64


def test_overrides_change_params_and_hash(repo_root: Path) -> None:
    base = compose_params(repo_root, [])
    text = compose_params(repo_root, ["strategy.grow_grad2d=1e-4", "benchmark=mipnerf360"])
    params = yaml.safe_load(text)
    assert params["strategy"]["grow_grad2d"] == pytest.approx(1e-4)
    assert params["benchmark"]["name"] == "mipnerf360"
    assert params_sha256(text) != params_sha256(base)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("strategy.no_such_key=1", "strategy.no_such_key"),
        ("benchmark=no_such_benchmark", "no_such_benchmark"),
        ("other.yaml:a=1", "another parameter file"),
    ],
)
def test_bad_overrides_are_user_errors(repo_root: Path, override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        compose_params(repo_root, [override])


@pytest.mark.integration
def test_matches_dvc_exp_run(repo_root: Path, tmp_path: Path) -> None:
    """Byte-identical to what `dvc exp run -S` writes (hydra enabled) in a tiny project."""
    project = tmp_path / "p"
    shutil.copytree(repo_root / "conf", project / "conf")
    (project / ".dvc").mkdir(parents=True)
    shutil.copy2(repo_root / ".dvc" / "config", project / ".dvc" / "config")
    shutil.copy2(repo_root / "params.yaml", project / "params.yaml")
    (project / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: echo ok > out.txt\n    params: [strategy.grow_grad2d]\n"
        "    outs: [out.txt]\n"
    )
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "p"]):
        subprocess.run(cmd, cwd=project, check=True, env=env)
    overrides = ["strategy.grow_grad2d=3e-4", "early_stop=plateau"]
    expected = compose_params(project, overrides)
    subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "run", *[a for o in overrides for a in ("-S", o)]],
        cwd=project,
        check=True,
        env=env,
        capture_output=True,
    )
    assert (project / "params.yaml").read_text(encoding="utf-8") == expected


def test_without_hydra_overrides_apply_to_params_yaml(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / ".dvc").mkdir(parents=True)
    (project / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    (project / "params.yaml").write_text("train:\n  steps: 10\n  lr: 0.1\n")
    text = compose_params(project, ["train.steps=20"])
    assert yaml.safe_load(text) == {"train": {"steps": 20, "lr": 0.1}}
    assert (project / "params.yaml").read_text() == "train:\n  steps: 10\n  lr: 0.1\n"
