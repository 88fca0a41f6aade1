"""`splatbench add-scene`: folder and zip sources (real rendered photos), bad inputs, and the
written benchmark composing and resolving through DVC's Hydra compose."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from splatbench.add_scene import add_scene
from splatbench.benchmark import protocol_note, scene_spec
from splatbench.cli import app
from splatbench.errors import ConfigError, SourceError
from splatbench.scene.synthetic import SyntheticSceneConfig, write_scene_archive

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from compose_params import compose


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of real photos: the built-in scene's renders (8 views)."""
    tmp = tmp_path_factory.mktemp("photos")
    archive = write_scene_archive(
        SyntheticSceneConfig(name="blocks", num_views=8, width=96, height=72), tmp / "b.zip"
    )
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp / "x")
    folder = tmp / "my photos"
    shutil.copytree(next((tmp / "x").rglob("images")), folder)
    return folder


@pytest.fixture
def project(tmp_path: Path, repo_root: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(repo_root / "conf", root / "conf")
    shutil.copytree(repo_root / "scripts", root / "scripts")
    shutil.copy2(repo_root / "params.yaml", root / "params.yaml")
    for cmd in (["git", "init", "-q"], [str(Path(sys.executable).with_name("dvc")), "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    # the project's DVC config: Hydra composition on, as `dvc exp run -S` will compose
    shutil.copy2(repo_root / ".dvc/config", root / ".dvc/config")
    return root


def _resolve(root: Path, benchmark: str, scene: str):
    out = root / "composed.yaml"
    compose(out, [f"benchmark={benchmark}"], root=root)
    params = yaml.safe_load(out.read_text())
    return params, scene_spec(params["benchmark"], scene)


def test_folder_then_zip_into_a_new_benchmark(project: Path, photos: Path) -> None:
    added = add_scene(project, str(photos), "garden")
    assert added.created and added.changed and added.source == "data/sources/garden"
    assert sorted(p.name for p in (project / "data/sources/garden/images").iterdir()) == sorted(
        p.name for p in photos.iterdir()
    )
    assert (project / "data/sources/garden.dvc").is_file()  # tracked: queue/remote runs get it
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=project, capture_output=True, text=True
    ).stdout
    assert "!! data/sources/garden/" in status  # the photos: DVC's, ignored by git

    archive = shutil.make_archive(
        str(project.parent / "kitchen"), "zip", photos.parent, photos.name
    )
    added2 = add_scene(project, archive, "kitchen", downscale=2)
    assert not added2.created and added2.image_dir == "my photos" and added2.downscale == 2
    params, spec = _resolve(project, "custom", "kitchen")
    assert params["benchmark"]["scenes"] == ["garden", "kitchen"]
    assert spec.source == "data/sources/kitchen.zip" and spec.image_dir == "my photos"
    # no conf/train/custom.yaml: the 30k protocol, and the note says so
    assert params["train"]["protocol"] == "default" and params["train"]["max_steps"] == 30000
    assert "train/default" in protocol_note(params)
    text = (project / "conf/benchmark/custom.yaml").read_text()
    assert text.startswith("# Scenes added with `splatbench add-scene`")  # comments kept

    # idempotent: the same scene again changes nothing
    again = add_scene(project, str(photos), "garden")
    assert not again.changed
    assert (project / "conf/benchmark/custom.yaml").read_text() == text


def test_cli_recomposes_the_selected_benchmark(project: Path, photos: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["add-scene", str(photos), "--name", "g1", "--repo", str(project)])
    assert res.exit_code == 0, res.output
    assert "next: dvc exp run -S benchmark=custom" in res.output and "train/default" in res.output
    compose(project / "params.yaml", ["benchmark=custom"], root=project)
    res = runner.invoke(app, ["add-scene", str(photos), "--name", "g2", "--repo", str(project)])
    assert res.exit_code == 0, res.output
    assert "re-composed params.yaml" in res.output
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["benchmark"]["scenes"] == ["g1", "g2"]


def test_bad_inputs(project: Path, photos: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scene name 'My Scene'"):
        add_scene(project, str(photos), "My Scene")
    with pytest.raises(ConfigError, match="benchmark name"):
        add_scene(project, str(photos), "ok", "Bad/Name")
    with pytest.raises(SourceError, match="does not exist"):
        add_scene(project, str(tmp_path / "nope"), "ok")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.jpg").write_bytes(b"")
    with pytest.raises(SourceError, match="holds 1 photos"):
        add_scene(project, str(empty), "ok")
    with pytest.raises(SourceError, match="unsupported scheme"):
        add_scene(project, "ftp://host/x.zip", "ok")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match=r"neither a folder nor a \.zip"):
        add_scene(project, str(tmp_path / "notes.txt"), "ok")
    add_scene(project, str(photos), "taken")
    with pytest.raises(ConfigError, match="already there"):
        add_scene(project, "s3://bucket/v1/raw/custom/taken/", "taken")
    assert not (project / "conf/benchmark/ok.yaml").exists()


def test_s3_source_is_referenced_not_copied(project: Path) -> None:
    added = add_scene(project, "s3://my-bucket/v1/raw/mine/garden/", "garden", "mine")
    assert added.copied is None and added.source == "s3://my-bucket/v1/raw/mine/garden/"
    _, spec = _resolve(project, "mine", "garden")
    assert spec.source == "s3://my-bucket/v1/raw/mine/garden/" and spec.dataset == "mine"
