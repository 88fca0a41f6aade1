"""params.yaml is what composing conf/ yields, and every benchmark composes into valid scenes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from splatbench.benchmark import scene_names, scene_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from compose_params import compose

BENCHMARKS = ["synthetic", "mipnerf360", "tandt", "db"]


def test_committed_params_match_composed_conf(repo_root: Path, tmp_path: Path) -> None:
    composed = tmp_path / "params.yaml"
    compose(composed, [], root=repo_root)
    committed = (repo_root / "params.yaml").read_text(encoding="utf-8")
    assert composed.read_text(encoding="utf-8") == committed, (
        "params.yaml differs from what conf/ composes to: run `make params` and commit it"
    )


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_every_benchmark_resolves_every_scene(
    repo_root: Path, tmp_path: Path, benchmark: str
) -> None:
    out = tmp_path / "params.yaml"
    compose(out, [f"benchmark={benchmark}"], root=repo_root)
    params = yaml.safe_load(out.read_text())
    bench = params["benchmark"]
    names = scene_names(bench)
    assert names, benchmark
    for name in names:
        spec = scene_spec(bench, name)
        assert spec.dataset == bench["dataset"]
        assert "{scene}" not in spec.source and "${" not in spec.source
        assert name in spec.source or spec.source.startswith("synthetic://")
        assert spec.split["rule"] == "every_nth" and spec.split["every"] == 8


def test_published_scene_lists(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "params.yaml"
    compose(out, ["benchmark=mipnerf360"], root=repo_root)
    bench = yaml.safe_load(out.read_text())["benchmark"]
    # The 3DGS paper averages these 9 scenes; indoor ones use images_2, outdoor images_4.
    assert len(bench["scenes"]) == 9
    assert scene_spec(bench, "room").image_dir == "images_2"
    assert scene_spec(bench, "garden").image_dir == "images_4"
    assert scene_spec(bench, "garden").source == (
        "s3://splatbench-benchmarks/v1/raw/mipnerf360/garden/"
    )


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("strategy=mcmc", ("strategy", "name"), "mcmc"),
        ("early_stop=plateau", ("early_stop", "name"), "plateau"),
        ("early_stop=off", ("early_stop", "name"), "off"),
        ("strategy.grow_grad2d=1e-5", ("strategy", "grow_grad2d"), 1e-5),
    ],
)
def test_group_overrides_compose(
    repo_root: Path, tmp_path: Path, override: str, key: tuple[str, str], expected: object
) -> None:
    out = tmp_path / "params.yaml"
    compose(out, [override], root=repo_root)
    params = yaml.safe_load(out.read_text())
    assert params[key[0]][key[1]] == expected


@pytest.mark.parametrize("preset", ["3dgs", "gsplat", "nerfbaselines", "nerfbaselines-nerf"])
def test_eval_group_selects_an_anchor_convention_unmodified(
    repo_root: Path, tmp_path: Path, preset: str
) -> None:
    """`-S eval=<preset>` gives that anchor's convention as is (not "custom (from ...)")."""
    from splatbench.metrics import convention_from_config

    out = tmp_path / "params.yaml"
    compose(out, [f"eval={preset}"], root=repo_root)
    convention = convention_from_config(yaml.safe_load(out.read_text())["eval"])
    assert convention.name == preset
    assert convention.overrides == ()


def _write_benchmark(conf: Path, name: str) -> None:
    (conf / "benchmark" / f"{name}.yaml").write_text(
        f"name: {name}\ndataset: {name}\ndescription: mine\nscenes: [a]\n"
        "scene_defaults: {source: null, image_dir: images, downscale: 1}\n"
        "scene_settings:\n  a: {source: data/sources/a}\n"
        "split: {rule: every_nth, every: 8, offset: 0}\nreference: null\n"
    )


def test_benchmark_without_train_file_falls_back_to_default(
    repo_root: Path, tmp_path: Path
) -> None:
    import shutil

    from splatbench.benchmark import protocol_note

    shutil.copytree(repo_root / "conf", tmp_path / "conf")
    _write_benchmark(tmp_path / "conf", "mine")
    out = tmp_path / "params.yaml"
    compose(out, ["benchmark=mine"], root=tmp_path)
    params = yaml.safe_load(out.read_text())
    default = yaml.safe_load((repo_root / "conf/train/default.yaml").read_text())
    assert params["train"]["protocol"] == "default"
    assert params["train"]["max_steps"] == default["max_steps"] == 30000
    note = protocol_note(params)
    assert note and "train/default" in note and "conf/train/mine.yaml" in note
    # overrides still apply on top of the fallback, and an explicit protocol still wins
    compose(out, ["benchmark=mine", "train.max_steps=10"], root=tmp_path)
    assert yaml.safe_load(out.read_text())["train"]["max_steps"] == 10
    compose(out, ["benchmark=mine", "train=synthetic"], root=tmp_path)
    assert yaml.safe_load(out.read_text())["train"]["protocol"] == "synthetic"


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_benchmarks_with_a_train_file_keep_it(
    repo_root: Path, tmp_path: Path, benchmark: str
) -> None:
    from splatbench.benchmark import protocol_note
    from splatbench.train.config import configs_from_params

    out = tmp_path / "params.yaml"
    compose(out, [f"benchmark={benchmark}"], root=repo_root)
    params = yaml.safe_load(out.read_text())
    assert params["train"]["protocol"] == benchmark and protocol_note(params) is None
    own = yaml.safe_load((repo_root / f"conf/train/{benchmark}.yaml").read_text())
    assert params["train"]["max_steps"] == own.get("max_steps", 30000)
    assert configs_from_params(params)[0].protocol == benchmark
