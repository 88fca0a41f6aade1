"""Write ``reports/sweeps/<name>/``: index.html, summary.md, results.csv and plots/*.png.

The page reuses the main report's layout (splatbench.report.page: inline CSS, no network, the
load-time image self check), so it opens from disk like reports/index.html.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from splatbench.fsutil import atomic_write_text, staging_dir
from splatbench.report.page import Figure, Section, render_page
from splatbench.report.plots import _pyplot, _save
from splatbench.report.tables import markdown_table
from splatbench.sweep import tables as T
from splatbench.sweep.experiments import PointMatch
from splatbench.sweep.grid import SweepGrid

REPORT_DIR = Path("reports/sweeps")


@dataclass(frozen=True)
class SweepTables:
    """Everything the report shows, as data (also what the tests check)."""

    scenes: pd.DataFrame
    points: pd.DataFrame
    effects: pd.DataFrame
    early_stop: pd.DataFrame
    warnings: pd.DataFrame
    missing: pd.DataFrame


def build_tables(
    grid: SweepGrid, matches: Sequence[PointMatch], details: T.DetailsReader | None = None
) -> SweepTables:
    """The report's tables from matched points."""
    scenes = T.scene_frame(grid, matches, details)
    points = T.point_frame(grid, scenes)
    if not points.empty:
        points["front_gaussians"] = T.pareto_front(points["gaussians"], points["psnr"])
        points["front_seconds"] = T.pareto_front(points["seconds"], points["psnr"])
    return SweepTables(
        scenes=scenes,
        points=points,
        effects=T.effects(grid, points),
        early_stop=T.early_stop_savings(matches, points),
        warnings=T.warnings_table(scenes),
        missing=T.missing_points(matches),
    )


def dvc_details_reader(root: Path) -> T.DetailsReader:
    """Read metrics/<scene>/details/train.json at an experiment's commit through DVC.

    Details files are DVC-cached outputs: the experiment's dvc.lock names their hash, and DVC
    reads the object from the local cache (queued runs share it) or the DVC remote (experiments
    fetched from remote jobs). None when neither has it.
    """
    import json

    import dvc.api
    from dvc.exceptions import DvcException

    def read(rev: str, scene: str) -> Mapping[str, Any] | None:
        try:
            text = dvc.api.read(f"metrics/{scene}/details/train.json", repo=str(root), rev=rev)
            return json.loads(text)
        except (DvcException, OSError, json.JSONDecodeError):
            return None

    return read


def _axis_columns(grid: SweepGrid) -> dict[str, tuple[str, str]]:
    return {a.key: (a.key, "text") for a in grid.axes}


def _point_columns(grid: SweepGrid) -> dict[str, tuple[str, str]]:
    cols = {"rank": ("rank", "int"), **_axis_columns(grid)}
    cols.update(
        psnr=("test PSNR dB", "f2"),
        ssim=("test SSIM", "f3"),
        lpips=("test LPIPS", "f3"),
        compressed_psnr=("compressed PSNR", "f2"),
        gaussians=("Gaussians", "int"),
        megabytes=("compressed MB", "size"),
        seconds=("train s", "f1"),
        steps=("steps", "int"),
        stop_reason=("stop", "text"),
        warnings=("warnings", "int"),
        front=("Pareto", "text"),
        experiment=("experiment", "text"),
    )
    return cols


EFFECT_COLUMNS = {
    "parameter": ("parameter", "text"),
    "value": ("value", "text"),
    "points": ("points", "int"),
    "psnr_mean": ("PSNR mean", "f2"),
    "psnr_min": ("PSNR min", "f2"),
    "psnr_max": ("PSNR max", "f2"),
    "seconds_mean": ("train s mean", "f1"),
    "gaussians_mean": ("Gaussians mean", "int"),
}
EARLY_STOP_COLUMNS = {
    "label": ("point", "text"),
    "early_stop": ("early stop", "text"),
    "reference": ("against", "text"),
    "stop_reason": ("stop", "text"),
    "steps": ("steps", "int"),
    "reference_steps": ("against steps", "int"),
    "seconds_saved": ("seconds saved", "f1"),
    "psnr_lost_db": ("PSNR lost dB", "f2"),
}
WARNING_COLUMNS = {
    "label": ("point", "text"),
    "scene": ("scene", "text"),
    "stop_reason": ("stop", "text"),
    "warnings": ("densification warnings", "text"),
}
MISSING_COLUMNS = {
    "label": ("point", "text"),
    "status": ("status", "text"),
    "overrides": ("run it with", "text"),
}


def _front_label(points: pd.DataFrame) -> pd.DataFrame:
    out = points.copy()
    marks = []
    for _, r in out.iterrows():
        m = [n for n, c in (("size", "front_gaussians"), ("time", "front_seconds")) if r.get(c)]
        marks.append(", ".join(m))
    out["front"] = marks
    return out


def plot_pareto(points: pd.DataFrame, x: str, front: str, xlabel: str, path: Path) -> bool:
    """Test PSNR against ``x``, every point labelled, the front joined and marked."""
    data = points.dropna(subset=[x, "psnr"])
    if data.empty:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    others = data[~data[front].astype(bool)]
    best = data[data[front].astype(bool)].sort_values(x)
    ax.scatter(others[x], others["psnr"], color="#999", label="dominated", zorder=2)
    ax.plot(best[x], best["psnr"], "o-", color="#c33", label="Pareto front", zorder=3)
    # points with identical results share one label (else their texts overprint)
    for (px, py), group in data.groupby([x, "psnr"], sort=False):
        text = "\n".join(group["label"])
        ax.annotate(text, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test PSNR dB (mean over scenes)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def plot_effects(effects: pd.DataFrame, path: Path) -> bool:
    """One panel per swept parameter: PSNR mean with its min..max range per value."""
    data = effects.dropna(subset=["psnr_mean"])
    if data.empty:
        return False
    plt = _pyplot()
    params = list(dict.fromkeys(data["parameter"]))
    fig, axes = plt.subplots(1, len(params), figsize=(3.6 * len(params), 3.2), squeeze=False)
    for ax, name in zip(axes[0], params, strict=True):
        sub = data[data["parameter"] == name]
        xs = range(len(sub))
        lo = sub["psnr_mean"] - sub["psnr_min"]
        hi = sub["psnr_max"] - sub["psnr_mean"]
        ax.errorbar(xs, sub["psnr_mean"], yerr=[lo, hi], fmt="o", capsize=4, color="#36c")
        ax.set_xticks(list(xs), list(sub["value"]), rotation=20, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("test PSNR dB")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def write_report(root: Path, grid: SweepGrid, tables: SweepTables, extra: Sequence[str]) -> Path:
    """Write the report directory atomically (a staging directory swapped into place)."""
    final = root / REPORT_DIR / grid.name
    points = _front_label(tables.points) if not tables.points.empty else tables.points
    done = len(tables.points)
    total = grid.size
    with staging_dir(final) as out:
        (out / "plots").mkdir()
        figures: list[Figure] = []
        plotted = [
            plot_pareto(
                points,
                "gaussians",
                "front_gaussians",
                "Gaussians (mean over scenes)",
                out / "plots/psnr_vs_gaussians.png",
            )
            if done
            else False,
            plot_pareto(
                points,
                "seconds",
                "front_seconds",
                "train seconds (mean over scenes)",
                out / "plots/psnr_vs_train_seconds.png",
            )
            if done
            else False,
        ]
        if plotted[0]:
            figures.append(Figure("plots/psnr_vs_gaussians.png", "test PSNR vs Gaussians"))
        if plotted[1]:
            figures.append(Figure("plots/psnr_vs_train_seconds.png", "test PSNR vs train time"))
        effect_figs = []
        if plot_effects(tables.effects, out / "plots/effects.png"):
            effect_figs.append(Figure("plots/effects.png", "test PSNR per value (mean, min-max)"))

        metric = T.METRICS[grid.rank_by]
        order = "higher" if metric.higher_is_better else "lower"
        intro = [
            grid.description,
            f"{done} of {total} points have results; ranked by {metric.label} ({order} is "
            "better); numbers are means over each point's scenes, on the test views.",
        ]
        if extra:
            intro.append("Every point also ran with: " + " ".join(f"-S {e}" for e in extra))
        sections = [
            Section(
                "Ranked points",
                paragraphs=[
                    "Pareto: on the front of test PSNR vs Gaussians (size) or vs train "
                    "time (time): no other point is better on both."
                ],
                table=points,
                columns=_point_columns(grid),
            ),
            Section("Quality vs Gaussians and train time", figures=figures),
            Section(
                "Effect of each swept parameter",
                table=tables.effects,
                columns=EFFECT_COLUMNS,
                figures=effect_figs,
            ),
        ]
        if not tables.early_stop.empty:
            sections.append(
                Section(
                    "Early stop: time saved vs PSNR lost",
                    paragraphs=[
                        "Against the point with the same parameters and early_stop=off "
                        "(same max_steps); positive seconds saved is faster, positive "
                        "PSNR lost is worse."
                    ],
                    table=tables.early_stop,
                    columns=EARLY_STOP_COLUMNS,
                )
            )
        n_warn = sum(1 for w in tables.warnings["warnings"] if w) if done else 0
        sections.append(
            Section(
                "Densification warnings and stop reasons",
                paragraphs=[
                    f"{n_warn} of {len(tables.warnings)} scene runs have warnings "
                    "(details/train.json)."
                ],
                table=tables.warnings,
                columns=WARNING_COLUMNS,
            )
        )
        if not tables.missing.empty:
            sections.append(
                Section(
                    "Missing points",
                    paragraphs=[f"Run `splatbench sweep run {grid.name}` to queue them."],
                    table=tables.missing,
                    columns=MISSING_COLUMNS,
                )
            )
        title = f"Sweep {grid.name}"
        atomic_write_text(out / "index.html", render_page(title, intro, sections))
        atomic_write_text(out / "summary.md", summary_markdown(grid, points, tables, intro))
        csv = tables.scenes.drop(columns=["warnings"]).copy()
        csv["warnings"] = ["; ".join(w) for w in tables.scenes["warnings"]]
        atomic_write_text(out / "results.csv", csv.to_csv(index=False))
    return final


def summary_markdown(
    grid: SweepGrid, points: pd.DataFrame, tables: SweepTables, intro: Sequence[str]
) -> str:
    """summary.md: the ranked table, the effects, early stop and missing points."""
    parts = [f"# Sweep {grid.name}", "", *(f"{p}  " for p in intro), ""]
    parts += ["## Ranked points", "", markdown_table(points, _point_columns(grid)), ""]
    parts += ["## Effect of each swept parameter", ""]
    parts += [markdown_table(tables.effects, EFFECT_COLUMNS), ""]
    if not tables.early_stop.empty:
        parts += ["## Early stop: time saved vs PSNR lost", ""]
        parts += [markdown_table(tables.early_stop, EARLY_STOP_COLUMNS), ""]
    parts += ["## Densification warnings", "", markdown_table(tables.warnings, WARNING_COLUMNS)]
    if not tables.missing.empty:
        parts += ["", "## Missing points", "", markdown_table(tables.missing, MISSING_COLUMNS)]
    return "\n".join(parts) + "\n"
