"""Benchmark suites: which scenes, where their data lives, at what resolution, how they split.

A benchmark is plain data (the ``benchmark`` section of params.yaml, composed from
``conf/benchmark/<name>.yaml``). This module turns it into typed, validated per-scene specs; it
knows nothing of Hydra or DVC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splatbench.errors import ConfigError

SCENE_KEYS = frozenset({"source", "image_dir", "downscale"})


@dataclass(frozen=True)
class SceneSpec:
    """Everything the ingest and SfM stages need to know about one scene.

    Attributes:
        name: scene name (a directory name under ``data/scenes/``).
        dataset: dataset the scene belongs to (``synthetic``, ``mipnerf360``, ...).
        source: URL of the raw payload, placeholders filled in.
        image_dir: directory inside the payload that holds the images to use.
        downscale: integer factor applied to the undistorted images (1 keeps them).
        split: the split rule (``rule``, ``every``, ``offset`` or ``test_list``).
    """

    name: str
    dataset: str
    source: str
    image_dir: str
    downscale: int
    split: dict[str, Any]


def scene_names(benchmark: Mapping[str, Any]) -> list[str]:
    """The benchmark's scene list, checked for duplicates and missing settings."""
    scenes = list(benchmark.get("scenes") or [])
    if not scenes:
        raise ConfigError(
            f"benchmark '{benchmark.get('name')}' lists no scenes",
            fix="set benchmark.scenes in conf/benchmark/<name>.yaml",
        )
    dupes = sorted({s for s in scenes if scenes.count(s) > 1})
    if dupes:
        raise ConfigError(f"benchmark.scenes lists {dupes} more than once", fix="remove duplicates")
    settings = benchmark.get("scene_settings") or {}
    missing = [s for s in scenes if s not in settings]
    if missing:
        raise ConfigError(
            f"benchmark.scene_settings has no entry for {missing}",
            fix="add `<scene>: {}` under scene_settings for every scene in benchmark.scenes "
            "(DVC tracks each scene's entry as that scene's parameter)",
        )
    return scenes


def scene_spec(benchmark: Mapping[str, Any], scene: str) -> SceneSpec:
    """Resolve one scene of a benchmark: defaults, then the scene's own settings.

    Raises:
        ConfigError: unknown scene, unknown keys, missing source or a bad downscale.
    """
    names = scene_names(benchmark)
    if scene not in names:
        raise ConfigError(
            f"scene '{scene}' is not in benchmark '{benchmark.get('name')}' (scenes: {names})",
            fix="pick one of the listed scenes or select another benchmark (-S benchmark=...)",
        )
    merged: dict[str, Any] = dict(benchmark.get("scene_defaults") or {})
    own = benchmark["scene_settings"][scene] or {}
    unknown = sorted(set(own) - SCENE_KEYS) + sorted(set(merged) - SCENE_KEYS)
    if unknown:
        raise ConfigError(
            f"benchmark.scene_settings.{scene}: unknown keys {unknown}",
            fix=f"use only {sorted(SCENE_KEYS)}",
        )
    merged.update(own)
    dataset = str(benchmark.get("dataset") or benchmark.get("name"))
    source = merged.get("source")
    if not source:
        raise ConfigError(
            f"benchmark.scene_settings.{scene}.source is not set",
            fix="give the scene a source URL (file://, a local path, synthetic://, s3://)",
        )
    downscale = merged.get("downscale", 1)
    if not isinstance(downscale, int) or isinstance(downscale, bool) or downscale < 1:
        raise ConfigError(
            f"benchmark.scene_settings.{scene}.downscale must be an integer >= 1, "
            f"got {downscale!r}",
            fix="use 1 to keep the payload's resolution, 2 to halve it, ...",
        )
    return SceneSpec(
        name=scene,
        dataset=dataset,
        source=str(source).replace("{dataset}", dataset).replace("{scene}", scene),
        image_dir=str(merged.get("image_dir") or "images"),
        downscale=downscale,
        split=dict(benchmark.get("split") or {"rule": "every_nth", "every": 8, "offset": 0}),
    )


def protocol_note(params: Mapping[str, Any]) -> str | None:
    """The warning to show when a benchmark trains with another benchmark's protocol.

    conf/config.yaml lays ``train/<benchmark>.yaml`` over ``train/default.yaml`` when the file
    exists; ``train.protocol`` in the composed params names the file that won. A benchmark
    without its own file (``splatbench add-scene`` writes none) therefore trains with the
    30k-step protocol of the 3DGS paper, which is right for real captures but worth saying.
    Returns None when the benchmark runs with its own protocol.
    """
    bench = params.get("benchmark") or {}
    train = params.get("train") or {}
    name = str(bench.get("name"))
    protocol = str(train.get("protocol", "default"))
    if protocol == name:
        return None
    return (
        f"benchmark '{name}' trains with protocol train/{protocol} "
        f"({train.get('max_steps')} steps), not a protocol of its own: "
        f"add conf/train/{name}.yaml (`defaults: [default, _self_]` plus the keys to change, "
        f"`protocol: {name}`) to give it one, or select one with -S train=<protocol>"
    )
