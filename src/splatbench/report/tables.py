"""Summary tables (pandas): per scene and mean, trained vs compressed; markdown rendering."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from splatbench.report.collect import SceneMetrics, stage_seconds

#: Models in the order the tables list them; any other model of eval.json follows.
MODELS = ("trained", "compressed", "playcanvas_sog", "spz")
#: Summary columns: name -> (markdown header, formatter kind).
COLUMNS: dict[str, tuple[str, str]] = {
    "scene": ("scene", "text"),
    "model": ("model", "text"),
    "psnr": ("PSNR dB", "f2"),
    "ssim": ("SSIM", "f4"),
    "lpips": ("LPIPS", "f4"),
    "num_gaussians": ("Gaussians", "int"),
    "size_mb": ("size MB", "size"),
    "render_fps": ("render img/s", "f1"),
    "train_seconds": ("train time", "duration"),
    "train_steps": ("steps", "int"),
    "stop_reason": ("stop reason", "text"),
    "train_warnings": ("train warnings", "int"),  # the texts are listed once, under Warnings
    "sfm_registered": ("SfM registered", "text"),
    "sfm_reprojection_px": ("SfM reproj. px", "f3"),
    "convention": ("convention", "text"),
    "n_scenes": ("scenes", "int"),
}
NUMERIC = ("psnr", "ssim", "lpips", "num_gaussians", "size_mb", "render_fps", "train_seconds",
           "train_steps", "sfm_reprojection_px")  # fmt: skip


def _first(doc: Mapping[str, Any] | None, *keys: str) -> Any:
    """The first of ``keys`` present (not None) in ``doc`` (fallbacks when eval.json lacks a
    model's entry)."""
    for key in keys:
        if doc and doc.get(key) is not None:
            return doc[key]
    return None


def as_float(value: Any) -> float:
    """A metric value as float; NaN for anything that is not a number (None, text, bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def scene_rows(sm: SceneMetrics) -> list[dict[str, Any]]:
    """One row per model the scene has any metrics for (always a ``trained`` row)."""
    train = sm.stages.get("train")
    compress = sm.stages.get("compress")
    sfm = sm.stages.get("sfm")
    registered = None
    if sfm and sfm.get("registered_images") is not None:
        total = sfm.get("total_images")
        registered = (
            f"{sfm['registered_images']}/{total}" if total else str(sfm["registered_images"])
        )
    common = {
        "sfm_registered": registered,
        "sfm_reprojection_px": as_float((sfm or {}).get("mean_reprojection_error_px")),
        "train_seconds": as_float(stage_seconds(train)),
        "train_steps": as_float((train or {}).get("steps")),
        "stop_reason": (train or {}).get("stop_reason"),
        "train_warnings": len((train or {}).get("warnings") or []) if train else None,
        "convention": sm.get("evaluate", "convention", "name"),
    }
    rows = []
    evaluated = list(sm.get("evaluate", "models", default={}) or {})
    exports = sm.get("export", "formats", default={}) or {}
    for model in dict.fromkeys([*MODELS, *evaluated, *exports]):
        entry = sm.get("evaluate", "models", model, default={})
        if model == "compressed" and not entry and not compress:
            continue
        if model not in ("trained", "compressed") and not entry and model not in exports:
            continue
        own = train if model == "trained" else compress if model == "compressed" else None
        if model in exports:
            own = {"bytes": exports[model].get("bytes"), **exports[model]}
        size_mb = as_float(entry.get("storage_mb"))
        if math.isnan(size_mb) and own:
            # train.json records no size; compress.json calls its total ``bytes``.
            size_bytes = _first(own, "storage_bytes", "bytes") if model != "trained" else None
            size_mb = as_float(size_bytes) / 1e6 if size_bytes is not None else math.nan
        rows.append({
            "scene": sm.scene,
            "model": model,
            "psnr": as_float(entry.get("psnr")),
            "ssim": as_float(entry.get("ssim")),
            "lpips": as_float(entry.get("lpips")),
            "num_gaussians": as_float(entry.get("num_gaussians", _first(own, "num_gaussians"))),
            "size_mb": size_mb,
            "render_fps": as_float((entry.get("render") or {}).get("images_per_second")),
            **common,
        })  # fmt: skip
    return rows


def summary_frame(scenes: Sequence[SceneMetrics]) -> pd.DataFrame:
    """Per scene and model, then one ``mean`` row per model over the scenes that have a value.

    ``n_scenes`` on a mean row counts the scenes with a PSNR: a mean over fewer scenes than the
    benchmark has is not comparable with a published mean.
    """
    rows = [row for sm in scenes for row in scene_rows(sm)]
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "n_scenes"])
    df["n_scenes"] = math.nan
    means = []
    for model in dict.fromkeys(df["model"]):
        part = df[df["model"] == model]
        if part.empty:
            continue
        mean = {c: part[c].mean(skipna=True) for c in NUMERIC}
        conventions = sorted({c for c in part["convention"].dropna()})
        means.append({
            "scene": "mean", "model": model, **mean,
            "n_scenes": float(part["psnr"].notna().sum()),
            "convention": ", ".join(conventions) or None,
        })  # fmt: skip
    if means:
        df = pd.concat([df, pd.DataFrame(means)], ignore_index=True)
    return df[list(COLUMNS)]


def format_value(value: Any, kind: str) -> str:
    """Cell text: ``-`` for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "text":
        return str(value)
    value = float(value)
    if kind == "int":
        return f"{round(value):,}"
    if kind == "duration":
        minutes, seconds = divmod(round(value), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
    if kind == "size":
        return f"{value:.2f}" if value >= 1 else f"{value:.4f}"
    if kind == "money":
        return f"{value:.4f}"
    return f"{value:.{int(kind[1:])}f}"


def markdown_table(
    df: pd.DataFrame,
    columns: Mapping[str, tuple[str, str]],
    *,
    escape: Callable[[str], str] = lambda s: s.replace("|", "\\|").replace("\n", " "),
) -> str:
    """A GitHub markdown table of ``df``'s ``columns`` (name -> (header, kind))."""
    names = [c for c in columns if c in df.columns]
    lines = [
        "| " + " | ".join(columns[c][0] for c in names) + " |",
        "|" + "|".join("---:" if columns[c][1] != "text" else "---" for c in names) + "|",
    ]
    for _, row in df.iterrows():
        cells = [escape(format_value(row[c], columns[c][1])) for c in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def drop_empty_columns(df: pd.DataFrame, keep: Sequence[str] = ("scene", "model")) -> pd.DataFrame:
    """Columns with no value anywhere add nothing to a table; ``keep`` always stays."""
    return df[[c for c in df.columns if c in keep or df[c].notna().any()]]
