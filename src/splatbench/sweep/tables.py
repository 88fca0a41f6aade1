"""The sweep report's tables (pandas), from matched points and their headline metrics.

Reads only the headline metrics files (metrics/<scene>/{eval,train,compress}.json, the layout of
the headline contract) plus details/train.json's ``warnings``; pure functions over data, so the
tests feed them synthetic ``dvc exp show`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from splatbench.report.tables import as_float
from splatbench.stage_metrics import lookup
from splatbench.sweep.experiments import PointMatch
from splatbench.sweep.grid import SweepGrid


@dataclass(frozen=True)
class Metric:
    """A headline column: where it comes from, its label and which way is better."""

    file: str  # eval / train / compress
    path: tuple[str, ...]
    label: str
    higher_is_better: bool


# Per scene; a point's value is the mean over its scenes.
METRICS: dict[str, Metric] = {
    "psnr": Metric("eval", ("trained", "psnr"), "test PSNR dB", True),
    "ssim": Metric("eval", ("trained", "ssim"), "test SSIM", True),
    "lpips": Metric("eval", ("trained", "lpips"), "test LPIPS", False),
    "compressed_psnr": Metric("eval", ("compressed", "psnr"), "compressed PSNR dB", True),
    "compressed_ssim": Metric("eval", ("compressed", "ssim"), "compressed SSIM", True),
    "gaussians": Metric("train", ("gaussians",), "Gaussians", False),
    "steps": Metric("train", ("steps",), "steps", False),
    "seconds": Metric("train", ("seconds",), "train s", False),
    "megabytes": Metric("compress", ("megabytes",), "compressed MB", False),
}
TEXT_COLUMNS = ("stop_reason",)
#: Shown instead of warnings when an experiment's details record is in no cache or remote here.
UNAVAILABLE = (
    "(details/train.json not available here: `dvc pull`, or `splatbench remote fetch JOB --data`)"
)
DetailsReader = Callable[[str, str], Mapping[str, Any] | None]


def scenes_of(params: Mapping[str, Any]) -> list[str]:
    """The benchmark scenes a point ran on."""
    return [str(s) for s in (params.get("benchmark") or {}).get("scenes") or []]


def scene_frame(
    grid: SweepGrid, matches: Sequence[PointMatch], details: DetailsReader | None = None
) -> pd.DataFrame:
    """One row per (point, scene) with results: axis values, headline metrics, warnings.

    ``details(rev, scene)`` returns details/train.json of that experiment (or None).
    """
    rows = []
    for m in matches:
        exp = m.experiment
        if exp is None:
            continue
        for scene in scenes_of(m.params):
            row: dict[str, Any] = {"point": m.point.index, "label": m.point.label}
            row.update(dict(m.point.values))
            row.update(scene=scene, experiment=exp.name or exp.rev[:7], rev=exp.rev)
            files = {f: exp.metrics.get(f"metrics/{scene}/{f}.json") or {} for f in _FILES}
            for name, metric in METRICS.items():
                row[name] = as_float(lookup(files[metric.file], *metric.path))
            row["stop_reason"] = str(files["train"].get("stop_reason") or "")
            doc = details(exp.rev, scene) if details is not None else None
            if doc is None and details is not None:
                row["warnings"] = [UNAVAILABLE]
            else:
                row["warnings"] = [str(w) for w in (doc or {}).get("warnings") or []]
            rows.append(row)
    columns = ["point", "label", *(a.key for a in grid.axes), "scene", "experiment", "rev"]
    columns += [*METRICS, "stop_reason", "warnings"]
    return pd.DataFrame(rows, columns=columns)


_FILES = sorted({m.file for m in METRICS.values()})


def point_frame(grid: SweepGrid, scenes: pd.DataFrame) -> pd.DataFrame:
    """One row per point with results, ranked by ``grid.rank_by`` (rank 1 is best).

    Numbers are means over the point's scenes; lpips stays NaN where any scene lacks it.
    """
    axis_keys = [a.key for a in grid.axes]
    if scenes.empty:
        return pd.DataFrame(columns=["rank", "point", "label", *axis_keys, *METRICS])
    keys = ["point", "label", *axis_keys]
    grouped = scenes.groupby(keys, sort=False, dropna=False)
    table = grouped[list(METRICS)].mean().reset_index()
    table["scenes"] = grouped["scene"].count().to_numpy()
    table["stop_reason"] = grouped["stop_reason"].agg(lambda s: ",".join(sorted(set(s)))).values
    table["warnings"] = grouped["warnings"].agg(lambda s: sum(len(w) for w in s)).values
    table["experiment"] = grouped["experiment"].first().values
    metric = METRICS[grid.rank_by]
    table = table.sort_values(
        grid.rank_by, ascending=not metric.higher_is_better, na_position="last", kind="stable"
    ).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[bool]:
    """Which points are on the front of lower ``x`` and higher ``y`` (nobody beats them on both).

    A point is dominated when another has x <= its x and y >= its y, one of them strictly.
    NaN points are never on the front.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    front = []
    for i in range(len(xs)):
        if np.isnan(xs[i]) or np.isnan(ys[i]):
            front.append(False)
            continue
        better = (xs <= xs[i]) & (ys >= ys[i]) & ((xs < xs[i]) | (ys > ys[i]))
        front.append(not bool(np.any(better)))
    return front


def effects(grid: SweepGrid, points: pd.DataFrame) -> pd.DataFrame:
    """Per swept parameter and value: mean / min / max test PSNR and means of time and size."""
    rows = []
    for axis in grid.axes:
        for value in axis.values:
            sub = points[points[axis.key] == value] if not points.empty else points
            psnr = sub["psnr"].dropna() if not sub.empty else pd.Series(dtype=float)
            rows.append(
                {
                    "parameter": axis.key,
                    "value": value,
                    "points": len(sub),
                    "psnr_mean": psnr.mean() if len(psnr) else np.nan,
                    "psnr_min": psnr.min() if len(psnr) else np.nan,
                    "psnr_max": psnr.max() if len(psnr) else np.nan,
                    "seconds_mean": sub["seconds"].mean() if not sub.empty else np.nan,
                    "gaussians_mean": sub["gaussians"].mean() if not sub.empty else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _without_early_stop(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("early_stop", "report")}


def early_stop_savings(matches: Sequence[PointMatch], points: pd.DataFrame) -> pd.DataFrame:
    """Each early-stop point against its reference: the point with the same params but
    ``early_stop=off`` (same max_steps, strategy, ...): seconds saved and PSNR lost.

    Points without a reference in the sweep are listed with ``reference`` empty.
    """
    by_point = points.set_index("point") if not points.empty else points
    rows = []
    for m in matches:
        mode = str((m.params.get("early_stop") or {}).get("name", "off"))
        if mode == "off":
            continue
        ref = next(
            (
                r
                for r in matches
                if str((r.params.get("early_stop") or {}).get("name", "off")) == "off"
                and _without_early_stop(r.params) == _without_early_stop(m.params)
            ),
            None,
        )
        row: dict[str, Any] = {"point": m.point.index, "label": m.point.label, "early_stop": mode}
        row["reference"] = ref.point.label if ref is not None else ""
        have = m.point.index in by_point.index if not points.empty else False
        have_ref = ref is not None and not points.empty and ref.point.index in by_point.index
        for key in ("steps", "seconds", "psnr", "stop_reason"):
            row[key] = by_point.loc[m.point.index, key] if have else np.nan
        if have and have_ref:
            ref_row = by_point.loc[ref.point.index]
            row["reference_steps"] = ref_row["steps"]
            row["seconds_saved"] = ref_row["seconds"] - row["seconds"]
            row["psnr_lost_db"] = ref_row["psnr"] - row["psnr"]
        else:
            row.update(reference_steps=np.nan, seconds_saved=np.nan, psnr_lost_db=np.nan)
        rows.append(row)
    columns = ["point", "label", "early_stop", "reference", "steps", "reference_steps"]
    columns += ["stop_reason", "seconds", "seconds_saved", "psnr", "psnr_lost_db"]
    return pd.DataFrame(rows, columns=columns)


def warnings_table(scenes: pd.DataFrame) -> pd.DataFrame:
    """One row per (point, scene): stop reason and each densification warning (or none)."""
    rows = []
    for _, r in scenes.iterrows():
        rows.append(
            {
                "point": r["point"],
                "label": r["label"],
                "scene": r["scene"],
                "stop_reason": r["stop_reason"],
                "warnings": "; ".join(r["warnings"]) if r["warnings"] else "",
            }
        )
    return pd.DataFrame(rows, columns=["point", "label", "scene", "stop_reason", "warnings"])


def missing_points(matches: Sequence[PointMatch]) -> pd.DataFrame:
    """Points without a finished experiment, with their state and the overrides to run them."""
    rows = [
        {
            "point": m.point.index,
            "label": m.point.label,
            "status": m.status,
            "overrides": " ".join(f"-S {o}" for o in m.point.overrides),
        }
        for m in matches
        if m.experiment is None
    ]
    return pd.DataFrame(rows, columns=["point", "label", "status", "overrides"])
