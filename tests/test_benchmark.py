"""Benchmark specs: defaults, per-scene overrides and the errors users see."""

from __future__ import annotations

import pytest

from splatbench.benchmark import scene_spec
from splatbench.errors import ConfigError


def _bench(**overrides: object) -> dict:
    bench = {
        "name": "demo",
        "dataset": "demo",
        "scenes": ["a", "b"],
        "scene_defaults": {"source": "file:///data/{dataset}/{scene}.zip", "image_dir": "images"},
        "scene_settings": {"a": {}, "b": {"image_dir": "images_2", "downscale": 2}},
        "split": {"rule": "every_nth", "every": 8, "offset": 0},
    }
    bench.update(overrides)
    return bench


def test_defaults_then_scene_overrides() -> None:
    a, b = scene_spec(_bench(), "a"), scene_spec(_bench(), "b")
    assert a.source == "file:///data/demo/a.zip" and a.image_dir == "images" and a.downscale == 1
    assert b.image_dir == "images_2" and b.downscale == 2


def test_unknown_scene_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"scene 'c' is not in benchmark 'demo'.*\['a', 'b'\]"):
        scene_spec(_bench(), "c")


def test_scene_without_settings_entry_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"no entry for \['b'\]") as err:
        scene_spec(_bench(scene_settings={"a": {}}), "a")
    assert err.value.fix and "scene_settings" in err.value.fix


def test_unknown_key_and_bad_downscale() -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        scene_spec(_bench(scene_settings={"a": {"donwscale": 2}, "b": {}}), "a")
    with pytest.raises(ConfigError, match="downscale must be an integer"):
        scene_spec(_bench(scene_settings={"a": {"downscale": 0}, "b": {}}), "a")


def test_missing_source() -> None:
    with pytest.raises(ConfigError, match="source is not set"):
        scene_spec(_bench(scene_defaults={}), "a")
