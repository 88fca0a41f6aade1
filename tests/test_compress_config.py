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
    assert cfg.position_bits == 16 and cfg.sort in ("plas", "morton")


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
