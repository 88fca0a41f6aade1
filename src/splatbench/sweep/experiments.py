"""Which DVC experiments belong to which sweep point.

A point is identified by its composed params (what ``dvc exp run -S ...`` would write to
params.yaml), not by an experiment name: so experiments run by hand with the same ``-S`` values,
or fetched from remote jobs by ``splatbench remote fetch`` (normal DVC experiments), count too.
The newest finished experiment per point wins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from splatbench.errors import ConfigError
from splatbench.sweep.grid import SweepPoint

PARAMS_FILE = "params.yaml"
# Sections that do not change what a point trains and measures; an experiment that differs only
# there still counts as the point (a report setting changed after the sweep ran).
IGNORED_SECTIONS = frozenset({"report"})


@dataclass(frozen=True)
class Experiment:
    """One experiment (or the workspace / a baseline) from ``dvc exp show --json``.

    Attributes:
        rev: its commit (``workspace`` for the workspace).
        name: experiment name, None for baselines.
        baseline: the commit it was run on.
        timestamp: ISO time of its commit ("" when unknown).
        state: ``success``, ``queued``, ``running`` or ``failed``.
        params: params.yaml as composed for it.
        metrics: metrics file path -> its data.
    """

    rev: str
    name: str | None
    baseline: str
    timestamp: str
    state: str
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


def _files(data: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    out = {}
    for path, entry in ((data or {}).get(key) or {}).items():
        if isinstance(entry, Mapping) and isinstance(entry.get("data"), Mapping):
            out[path] = dict(entry["data"])
    return out


def _experiment(state: Mapping[str, Any], baseline: str, status: str) -> Experiment | None:
    data = state.get("data")
    if not isinstance(data, Mapping):
        return None
    params = _files(data, "params").get(PARAMS_FILE)
    if params is None:
        return None
    return Experiment(
        rev=str(state.get("rev")),
        name=state.get("name"),
        baseline=baseline,
        timestamp=str(data.get("timestamp") or ""),
        state=status,
        params=params,
        metrics=_files(data, "metrics"),
    )


def experiments_from_show(rows: Sequence[Mapping[str, Any]]) -> list[Experiment]:
    """Experiments of ``dvc exp show --json`` output (the workspace and baselines excluded)."""
    out = []
    for row in rows:
        if row.get("rev") == "workspace":
            continue
        baseline = str(row.get("rev"))
        for exp_range in row.get("experiments") or []:
            executor = exp_range.get("executor") or {}
            status = str(executor.get("state") or "success")
            for rev in (exp_range.get("revs") or [])[:1]:  # the newest commit of the range
                exp = _experiment(rev, baseline, status)
                if exp is not None:
                    out.append(exp)
    return out


def load_experiments(root: Path) -> list[Experiment]:
    """Every experiment of the repository at ``root``, on any baseline (DVC's Python API).

    All baselines, not only HEAD: a remote job's experiment hangs off the commit it was
    launched from, which need not be the current one.
    """
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        baselines = list(repo.experiments.ls(all_commits=True))
        states = repo.experiments.show(revs=baselines or None, hide_workspace=True)
        rows = [json.loads(json.dumps(s.dumpd(), default=_iso)) for s in states]
    return experiments_from_show(rows)


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def comparable(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that identify a point (everything but :data:`IGNORED_SECTIONS`)."""
    return {k: v for k, v in params.items() if k not in IGNORED_SECTIONS}


def params_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of a point's comparable params (used in experiment names)."""
    text = json.dumps(comparable(params), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:7]


def compose_point(root: Path, point: SweepPoint) -> dict[str, Any]:
    """params.yaml for ``point`` as ``dvc exp run -S ...`` composes it (the same composition
    remote jobs use: :func:`splatbench.cloud.contract.compose_params`)."""
    from splatbench.cloud.contract import compose_params

    try:
        text = compose_params(root, list(point.overrides))
    except ConfigError as exc:
        raise ConfigError(
            f"sweep point {point.index} ({' '.join(point.overrides)}) does not compose: "
            f"{exc.message}",
            fix="check the grid's keys and values against conf/ (and any -S you added)",
        ) from exc
    return yaml.safe_load(text)


@dataclass(frozen=True)
class PointMatch:
    """A point, its composed params, and the experiment that holds its results (if any)."""

    point: SweepPoint
    params: dict[str, Any]
    key: str
    experiment: Experiment | None
    pending: Experiment | None = None  # a queued / running / failed try, newest first

    @property
    def status(self) -> str:
        """``done``, or the pending try's state, or ``missing``."""
        if self.experiment is not None:
            return "done"
        return self.pending.state if self.pending is not None else "missing"


def match_points(
    points: Iterable[tuple[SweepPoint, dict[str, Any]]], experiments: Sequence[Experiment]
) -> list[PointMatch]:
    """Give each point its newest finished experiment with identical comparable params."""
    by_key: dict[str, list[Experiment]] = {}
    for exp in experiments:
        by_key.setdefault(params_key(exp.params), []).append(exp)
    out = []
    for point, params in points:
        key = params_key(params)
        # a hash collision would need a 7-hex-digit clash AND equal params: compare for real
        same = [e for e in by_key.get(key, []) if comparable(e.params) == comparable(params)]
        same.sort(key=lambda e: e.timestamp, reverse=True)
        done = [e for e in same if e.state == "success" and e.metrics]
        other = [e for e in same if e not in done]
        out.append(
            PointMatch(point, params, key, done[0] if done else None, other[0] if other else None)
        )
    return out


def experiment_name(grid_name: str, match: PointMatch) -> str:
    """The name a queued point gets: grid, point index, params hash (unique per params)."""
    return f"{grid_name}-p{match.point.index}-{match.key}"
