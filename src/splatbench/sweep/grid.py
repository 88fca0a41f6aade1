"""Named sweep grids: ``benchmarks/sweeps/<name>.yaml``, validated and expanded into points.

A grid file::

    name: densify                       # must equal the file name
    description: what the sweep asks
    axes:                               # swept parameters: the points are their product
      strategy.grow_grad2d: [1.0e-4, 2.0e-4, 4.0e-4]
      train.max_gaussians: [30000, null]
    fixed:                              # applied to every point
      early_stop: "off"
    rank_by: psnr                       # a headline column (splatbench.sweep.tables.METRICS)

Keys are Hydra overrides exactly as ``dvc exp run -S key=value`` takes them: a dotted parameter
(``strategy.grow_grad2d``) or a config group (``strategy``, ``early_stop``) whose value names a
file in ``conf/<group>/``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from splatbench.errors import ConfigError, check_known_keys

GRID_DIR = Path("benchmarks/sweeps")
GRID_KEYS = ("name", "description", "axes", "fixed", "rank_by")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
# Characters Hydra's override grammar treats specially in an unquoted value.
_NEEDS_QUOTES = re.compile(r"[\s,=\[\]{}()'\"\\:$*?]")


@dataclass(frozen=True)
class Axis:
    """One swept parameter: its override key and its values (as override strings)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class SweepGrid:
    """A validated grid file."""

    name: str
    description: str
    axes: tuple[Axis, ...]
    fixed: tuple[tuple[str, str], ...]
    rank_by: str
    path: Path

    @property
    def size(self) -> int:
        """Number of points (the product of the axes' lengths)."""
        n = 1
        for axis in self.axes:
            n *= len(axis.values)
        return n


@dataclass(frozen=True)
class SweepPoint:
    """One point of a grid: its axis values and every override that composes its params.

    Attributes:
        index: position in the grid's expansion order (0-based).
        values: axis key -> override value, in axis order.
        overrides: ``key=value`` strings for ``-S``: fixed, then extra, then the axis values.
    """

    index: int
    values: tuple[tuple[str, str], ...]
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        """Short human label: the axis values, e.g. ``grow_grad2d=2e-4 max_gaussians=null``."""
        return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.values)

    def value(self, key: str) -> str:
        """This point's value of axis ``key``."""
        return dict(self.values)[key]


def format_value(value: Any) -> str:
    """A YAML scalar as Hydra override text (``null``, ``true``, ``2.0e-04``, ``plateau``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def _check_value(where: str, key: str, value: Any, conf_dir: Path | None) -> str:
    """Validate one value; config-group keys must name an existing conf/<group>/<v>.yaml."""
    if isinstance(value, Mapping | list | tuple):
        raise ConfigError(
            f"{where}: {key} has a non-scalar value {value!r}",
            fix="give numbers, strings, true/false or null (one value per list entry)",
        )
    group = conf_dir / key if conf_dir is not None else None
    if group is not None and group.is_dir():
        options = sorted(p.stem for p in group.glob("*.yaml"))
        if isinstance(value, bool):
            raise ConfigError(
                f"{where}: {key} is a config group but its value is the boolean {value!r} "
                "(YAML reads bare off/on/no/yes as booleans)",
                fix=f'quote it, e.g. "off"; options: {", ".join(options)}',
            )
        if str(value) not in options:
            raise ConfigError(
                f"{where}: {key}={value} names no file conf/{key}/{value}.yaml",
                fix=f"use one of: {', '.join(options)}",
            )
    return format_value(value)


def _check_key(where: str, key: Any) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ConfigError(
            f"{where}: {key!r} is not a parameter key",
            fix="use a dotted params.yaml key (train.max_steps) or a config group (strategy)",
        )
    return key


def parse_grid(
    data: Any, path: Path, *, conf_dir: Path | None = None, metrics: Sequence[str] = ()
) -> SweepGrid:
    """Validate a loaded grid file. ``conf_dir`` enables config-group checks; ``metrics`` lists
    the allowed ``rank_by`` columns (empty: not checked).

    Raises:
        ConfigError: naming the file, the key and the fix.
    """
    where = str(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a sweep grid must be a mapping", fix="see benchmarks/sweeps/")
    check_known_keys(data, GRID_KEYS, where)
    name = data.get("name")
    if name != path.stem:
        raise ConfigError(
            f"{where}: name is {name!r} but the file is {path.name}",
            fix=f"set `name: {path.stem}` (the file name is the grid's name)",
        )
    if not _NAME.match(str(name)):
        raise ConfigError(
            f"{where}: name {name!r} must be lowercase letters, digits, - or _ (at most 40)",
            fix="rename the file and its name",
        )
    axes_raw = data.get("axes")
    if not isinstance(axes_raw, Mapping) or not axes_raw:
        raise ConfigError(
            f"{where}: axes must map at least one parameter to a list of values",
            fix="e.g. `axes: {strategy.grow_grad2d: [1.0e-4, 2.0e-4]}`",
        )
    axes = []
    for key, values in axes_raw.items():
        key = _check_key(f"{where}: axes", key)
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{where}: axes.{key} must be a non-empty list of values, got {values!r}",
                fix=f"e.g. `{key}: [a, b]`",
            )
        texts = tuple(_check_value(f"{where}: axes", key, v, conf_dir) for v in values)
        dupes = sorted({t for t in texts if texts.count(t) > 1})
        if dupes:
            raise ConfigError(f"{where}: axes.{key} repeats {dupes}", fix="list each value once")
        axes.append(Axis(key, texts))
    fixed_raw = data.get("fixed") or {}
    if not isinstance(fixed_raw, Mapping):
        raise ConfigError(f"{where}: fixed must be a mapping of key: value", fix="see the docs")
    fixed = []
    for key, value in fixed_raw.items():
        key = _check_key(f"{where}: fixed", key)
        if key in axes_raw:
            raise ConfigError(f"{where}: {key} is both swept and fixed", fix="keep one of them")
        fixed.append((key, _check_value(f"{where}: fixed", key, value, conf_dir)))
    rank_by = str(data.get("rank_by") or "psnr")
    if metrics and rank_by not in metrics:
        raise ConfigError(
            f"{where}: rank_by {rank_by!r} is not a sweep metric",
            fix=f"use one of: {', '.join(metrics)}",
        )
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{where}: description is missing", fix="say what the sweep asks")
    return SweepGrid(str(name), description.strip(), tuple(axes), tuple(fixed), rank_by, path)


def load_grid(root: Path, name: str, *, metrics: Sequence[str] = ()) -> SweepGrid:
    """Load ``benchmarks/sweeps/<name>.yaml`` under project ``root`` (or a path to a file)."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else root / GRID_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(g.stem for g in grid_files(root)) or "none"
        raise ConfigError(
            f"no sweep grid {path}", fix=f"use one of: {known} (`splatbench sweep list`)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})", fix="fix the YAML syntax") from exc
    return parse_grid(data, path, conf_dir=root / "conf", metrics=metrics)


def grid_files(root: Path) -> list[Path]:
    """Every grid file of the project, sorted by name."""
    return sorted((root / GRID_DIR).glob("*.yaml"))


def parse_extra(extra: Sequence[str], grid: SweepGrid) -> tuple[str, ...]:
    """Check ``-S key=value`` overrides given on the command line for every point."""
    out = []
    swept = {a.key for a in grid.axes}
    for item in extra:
        key, sep, _ = item.partition("=")
        key = key.lstrip("+~")
        if not sep or not _KEY.match(key):
            raise ConfigError(f"-S {item!r} is not key=value", fix="e.g. -S train.max_steps=600")
        if key in swept:
            raise ConfigError(
                f"-S {item}: {key} is an axis of sweep {grid.name!r}",
                fix=f"edit the axis in {grid.path} or make a new grid",
            )
        out.append(item)
    return tuple(out)


def expand(grid: SweepGrid, extra: Sequence[str] = ()) -> list[SweepPoint]:
    """Every point of the grid in a stable order (the first axis varies slowest)."""
    base = tuple(f"{k}={v}" for k, v in grid.fixed) + tuple(extra)
    points = []
    for index, combo in enumerate(itertools.product(*(a.values for a in grid.axes))):
        values = tuple((a.key, v) for a, v in zip(grid.axes, combo, strict=True))
        points.append(SweepPoint(index, values, base + tuple(f"{k}={v}" for k, v in values)))
    return points
