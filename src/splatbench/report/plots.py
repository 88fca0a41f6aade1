"""Report plots (matplotlib, Agg backend: no display needed): training curves, quality vs size."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from splatbench.fsutil import atomic_write_bytes
from splatbench.report.curves import Curves

DPI = 110


def _pyplot():
    import matplotlib

    # Agg before pyplot is imported: the stage runs headless (CI, SageMaker, DVC).
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    # Fixed metadata: without it matplotlib stamps its version and a date-free but
    # software-specific Software tag; keeping it minimal keeps the PNG stable across runs.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def plot_training_curves(curves: Mapping[str, Curves], path: Path) -> list[str] | None:
    """One panel per metric (union over scenes), one line per scene. Returns the metric names
    plotted, or None (and writes nothing) when no scene has curves."""
    names = sorted({name for c in curves.values() for name in c.curves})
    if not names:
        return None
    plt = _pyplot()
    cols = min(2, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for scene, c in curves.items():
            if name in c.curves:
                df = c.curves[name]
                ax.plot(df["step"], df["value"], label=scene, linewidth=1.2)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return names


def plot_quality_vs_size(
    summary: pd.DataFrame, reference: pd.DataFrame | None, path: Path, convention: str
) -> bool:
    """PSNR against storage (log MB): each scene's trained and compressed model joined by a
    line, our mean, and published compression results when there are any. Returns False (and
    writes nothing) without a single point."""
    pts = summary.dropna(subset=["psnr", "size_mb"])
    ref = None
    if reference is not None and not reference.empty:
        ref = reference.dropna(subset=["psnr", "storage_mb"])
    if pts.empty and (ref is None or ref.empty):
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    markers = {"trained": "o", "compressed": "s", "playcanvas_sog": "^", "spz": "D"}
    scenes = pts[pts["scene"] != "mean"]
    for scene, part in scenes.groupby("scene", sort=False):
        part = part.sort_values("size_mb")
        line = ax.plot(part["size_mb"], part["psnr"], "-", alpha=0.5, linewidth=1)[0]
        for _, row in part.iterrows():
            ax.plot(row["size_mb"], row["psnr"], markers.get(row["model"], "o"),
                    color=line.get_color(), label=f"{scene} {row['model']}")  # fmt: skip
    for _, row in pts[pts["scene"] == "mean"].iterrows():
        ax.plot(row["size_mb"], row["psnr"], markers.get(row["model"], "o"), color="black",
                markersize=9, label=f"mean {row['model']} (ours)")  # fmt: skip
    if ref is not None:
        for i, (_, row) in enumerate(ref.iterrows()):
            ax.plot(row["storage_mb"], row["psnr"], "x", color="grey")
            # Staggered labels: published points often sit close together.
            ax.annotate(str(row["method"]), (row["storage_mb"], row["psnr"]), fontsize=7,
                        xytext=(3, 3 + 9 * (i % 3)), textcoords="offset points",
                        color="grey")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("storage (MB, log scale)")
    ax.set_ylabel("PSNR (dB, test views)")
    ax.set_title(f"Quality vs size ({convention}); grey x: published", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True
