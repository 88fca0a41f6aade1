"""Estimated cost of a run: measured stage times priced at the instance each stage maps to.

An estimate only: the times were measured where the pipeline ran (possibly not on the mapped
instance), and real jobs also pay for start-up and data transfer. The report says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from splatbench.report.collect import SceneMetrics, stage_seconds
from splatbench.report.config import STAGE_FILES, ReportConfig

COST_COLUMNS: dict[str, tuple[str, str]] = {
    "scene": ("scene", "text"),
    "stage": ("stage", "text"),
    "seconds": ("measured time", "duration"),
    "device": ("measured on", "text"),
    "instance": ("priced as", "text"),
    "price_per_hour": ("price / h", "f3"),
    "cost": ("estimated cost", "money"),
}


def _device(sm: SceneMetrics, stage: str) -> str | None:
    doc = sm.stages.get(stage) or {}
    return doc.get("device_name") or doc.get("device")


def cost_frame(scenes: Sequence[SceneMetrics], cfg: ReportConfig) -> pd.DataFrame:
    """One row per scene and stage with a measured time, then a ``total`` row per stage and an
    overall total. Stages without an instance mapping are listed with no cost."""
    rows = []
    for sm in scenes:
        for stage in STAGE_FILES:
            seconds = stage_seconds(sm.stages.get(stage))
            if seconds is None:
                continue
            instance = cfg.stage_instances.get(stage)
            price = cfg.instance_prices.get(instance) if instance else None
            rows.append({
                "scene": sm.scene, "stage": stage, "seconds": seconds,
                "device": _device(sm, stage), "instance": instance, "price_per_hour": price,
                "cost": seconds / 3600.0 * price if price is not None else None,
            })  # fmt: skip
    df = pd.DataFrame(rows, columns=list(COST_COLUMNS))
    if df.empty:
        return df
    totals = (
        df.groupby("stage", sort=False)
        .agg(seconds=("seconds", "sum"), cost=("cost", lambda s: s.sum(min_count=1)))
        .reset_index()
    )
    totals["scene"] = "all scenes"
    grand = pd.DataFrame([{
        "scene": "all scenes", "stage": "total", "seconds": df["seconds"].sum(),
        "cost": df["cost"].sum(min_count=1),
    }])  # fmt: skip
    return pd.concat([df, totals, grand], ignore_index=True)[list(COST_COLUMNS)]
