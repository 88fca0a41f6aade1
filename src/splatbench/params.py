"""Reading the composed parameters (params.yaml) that the pipeline stages run with."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from splatbench.errors import ConfigError

DEFAULT_PARAMS_FILE = Path("params.yaml")


def load_params(path: Path = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    """Load params.yaml as plain dicts and lists; errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path} not found",
            fix="run from the project root, or compose it from conf/ with `make params`",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}", fix="run `make params`") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections", fix="run `make params`")
    return data


def section(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One top-level section (``sfm``, ``benchmark``, ...), required to be a mapping."""
    value = params.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"params.yaml has no '{name}' section",
            fix=f"check conf/config.yaml selects a {name}/ option and run `make params`",
        )
    return dict(value)
