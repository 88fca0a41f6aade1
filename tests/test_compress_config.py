"""CompressConfig.from_dict: unknown keys named, YAML scalars coerced, bad values rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from splatbench.compress import CompressConfig
from splatbench.errors import ConfigError


def test_defaults_and_conf_file_parse(repo_root: Path) -> None:
    conf = yaml.safe_load((repo_root / "conf" / "compress" / "default.yaml").read_text())
    cfg = CompressConfig.from_dict(conf)
    assert cfg.sort in ("plas", "morton") and cfg.shN_bands == "degree"


@pytest.mark.parametrize("preset", ["default", "hq", "small", "legacy"])
def test_presets_resolve_like_hydra(repo_root: Path, tmp_path: Path, preset: str) -> None:
    """The bench's preset loader gives what Hydra composes for `compress=<preset>`."""
    import sys

    from splatbench.bench.compress_peers import load_compress_preset

    sys.path.insert(0, str(repo_root / "scripts"))
    from compose_params import compose

    compose(tmp_path / "params.yaml", [f"compress={preset}"], root=repo_root)
    composed = yaml.safe_load((tmp_path / "params.yaml").read_text())["compress"]
    assert load_compress_preset(repo_root / "conf", preset) == composed
    CompressConfig.from_dict(composed)  # every preset is a valid config


def test_new_knobs_validated() -> None:
    for bad, match in [
        ({"shN_bands": "band"}, "shN_bands"),
        ({"shN_weighting": "size"}, "shN_weighting"),
        ({"shN_weighting": "opacity", "shN_kmeans_metric": "l1"}, "shN_kmeans_metric=l2"),
        ({"prune_opacity": 1.0}, "prune_opacity"),
        ({"max_sh_degree": 4}, "max_sh_degree"),
    ]:
        with pytest.raises(ConfigError, match=match):
            CompressConfig.from_dict(bad)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown keys \['shN_codebok_size', 'zzz'\]"):
        CompressConfig.from_dict({"shN_codebok_size": 4, "zzz": 1})


def test_coercion() -> None:
    cfg = CompressConfig.from_dict({"position_bits": "12", "scale_bits": 7.0})
    assert cfg.position_bits == 12 and cfg.scale_bits == 7


@pytest.mark.parametrize(
    "bad",
    [
        {"position_bits": 17},
        {"sort": "hilbert"},
        {"image_format": "jpeg"},
        {"shN_codebook_size": 70000},
        {"scale_bits": 7.5},
        {"seed": True},
        {"plas_radius_decay": 1.0},
    ],
)
def test_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        CompressConfig.from_dict(bad)
