"""Build the report: ``summary.csv``, ``summary.md``, ``costs.csv``, ``plots/``, ``images/`` and
``index.html`` from every scene's metrics files, training curves and comparison images.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from splatbench.evaluate.scene import COMPARISONS_FILENAME
from splatbench.fsutil import atomic_write_text, staging_dir
from splatbench.report.collect import SceneMetrics, collect_metrics, read_metrics_file
from splatbench.report.config import ReportConfig
from splatbench.report.cost import COST_COLUMNS, cost_frame
from splatbench.report.curves import Curves, read_curves
from splatbench.report.page import Figure, Section, figure_caption, render_page
from splatbench.report.plots import plot_quality_vs_size, plot_training_curves
from splatbench.report.reference import (
    REFERENCE_COLUMNS,
    load_reference,
    ours_from_describe,
    reference_frame,
)
from splatbench.report.tables import COLUMNS, drop_empty_columns, markdown_table, summary_frame
from splatbench.report.viewer import ViewerResult, build_viewer

CURVES_PNG = "plots/training_curves.png"
QUALITY_PNG = "plots/quality_vs_size.png"
MEASURE_COLUMNS: dict[str, tuple[str, str]] = {
    "scene": ("scene", "text"),
    "convention": ("convention", "text"),
    "ssim_border": ("SSIM border", "text"),
    "lpips": ("LPIPS", "text"),
    "resolution": ("resolution", "text"),
    "test_views": ("test views", "int"),
    "split": ("split rule", "text"),
    "device": ("eval device", "text"),
    "backend": ("renderer", "text"),
}


@dataclass(frozen=True)
class ReportInputs:
    """Where the report reads from.

    Attributes:
        metrics_dir: ``metrics/`` (the full records ``<scene>/details/<stage>.json``).
        scenes: the benchmark's scenes (None: every directory in ``metrics_dir``).
        title: page title, e.g. the benchmark name.
        dataset: dataset whose published numbers to show (None: from the metrics files).
        reference_dir: ``benchmarks/reference/`` (``<dataset>.yaml``).
        eval_dir: ``data/eval/`` (``<scene>/comparisons.json`` plus strips).
        root: project root that ``cfg.curves_dir`` is relative to.
    """

    metrics_dir: Path
    scenes: Sequence[str] | None = None
    title: str = "splatbench report"
    dataset: str | None = None
    reference_dir: Path = Path("benchmarks/reference")
    eval_dir: Path = Path("data/eval")
    root: Path = Path(".")


@dataclass
class ReportResult:
    """What was built (paths relative to the output directory) and the tables."""

    summary: pd.DataFrame
    costs: pd.DataFrame
    reference: pd.DataFrame
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _our_convention(scenes: Sequence[SceneMetrics]) -> tuple[dict[str, Any] | None, list[str]]:
    """The convention of the eval.json files, and a warning when scenes disagree."""
    describes = [sm.stages["evaluate"].get("convention") for sm in scenes
                 if "evaluate" in sm.stages]  # fmt: skip
    describes = [d for d in describes if d]
    if not describes:
        return None, []
    names = sorted({str(d.get("name")) for d in describes})
    warn = []
    if len({repr(sorted(ours_from_describe(d).items())) for d in describes}) > 1:  # type: ignore[union-attr]
        warn.append(f"scenes were evaluated under different conventions ({', '.join(names)}); "
                    "their mean mixes conventions")  # fmt: skip
    return describes[0], warn


def _measure_frame(scenes: Sequence[SceneMetrics]) -> pd.DataFrame:
    rows = []
    for sm in scenes:
        ev = sm.stages.get("evaluate")
        if not ev:
            continue
        conv = ev.get("convention") or {}
        lp = ev.get("lpips") or {}
        res = ev.get("resolution") or {}
        split = ev.get("split") or {}
        lpips_text = (
            f"{lp.get('net')} input {lp.get('input_range')}"
            + (f", weights {lp['source']}" if lp.get("source") else "")
            if lp.get("available")
            else f"not computed ({lp.get('net')}): {lp.get('reason')}"
        )
        size = (f"{res['width']}x{res['height']}" if res.get("width")
                else ", ".join("x".join(map(str, s)) for s in res.get("sizes", [])))  # fmt: skip
        rule = split.get("rule")
        if rule == "every_nth":
            rule = f"every {split.get('every')}th from {split.get('offset')}"
        rows.append({
            "scene": sm.scene,
            "convention": conv.get("name"),
            "ssim_border": (conv.get("ssim") or {}).get("border"),
            "lpips": lpips_text,
            "resolution": size or None,
            "test_views": split.get("count"),
            "split": rule,
            "device": ev.get("device_name") or ev.get("device"),
            "backend": ev.get("backend"),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(MEASURE_COLUMNS))


def _scene_warnings(scenes: Sequence[SceneMetrics]) -> list[str]:
    out = []
    for sm in scenes:
        if not sm.stages:
            out.append(f"{sm.scene}: no metrics files yet (no stage has run for this scene)")
        for stage, doc in sm.stages.items():
            for w in doc.get("warnings") or []:
                out.append(f"{sm.scene} / {stage}: {w}")
        sfm = sm.stages.get("sfm") or {}
        if sfm.get("unregistered_images"):
            out.append(f"{sm.scene} / sfm: unregistered images {sfm['unregistered_images']}")
    return out


def _convention_sentence(describe: Mapping[str, Any] | None) -> str:
    if not describe:
        return "No scene has been evaluated yet: no metric convention to state."
    ssim = describe.get("ssim") or {}
    lp = describe.get("lpips") or {}
    return (
        f"Metric convention '{describe.get('name')}' ({describe.get('source')}): PSNR "
        f"{(describe.get('psnr') or {}).get('reduction')}; SSIM {ssim.get('window')}, border "
        f"'{ssim.get('border')}' = {ssim.get('meaning')}; LPIPS {lp.get('net')} "
        f"{lp.get('version')}, input {lp.get('meaning')}. "
        + (f"Renders: {describe['quantize']['meaning']}. " if describe.get("quantize") else "")
        + "Means are over test views per scene, then over scenes."
    )


def _copy_comparisons(
    scenes: Sequence[SceneMetrics], eval_dir: Path, images_dir: Path
) -> list[dict[str, Any]]:
    """Copy each scene's comparison strips under ``images_dir/<scene>/``; return their index
    with page-relative paths (``images/<scene>/...``)."""
    items = []
    for sm in scenes:
        index_file = Path(eval_dir) / sm.scene / COMPARISONS_FILENAME
        if not index_file.is_file():
            continue
        for item in read_metrics_file(index_file).get("images") or []:
            src = Path(eval_dir) / sm.scene / str(item["path"])
            if not src.is_file():
                continue
            dst = images_dir / sm.scene / str(item["path"])
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            items.append({**item, "scene": sm.scene,
                          "src": f"images/{sm.scene}/{item['path']}"})  # fmt: skip
    return items


def build_report(inputs: ReportInputs, cfg: ReportConfig, out_dir: Path) -> ReportResult:
    """Write the report into ``out_dir`` (each file atomically) and return its tables.

    Only the report's own files are replaced (``out_dir`` may hold other tracked files).

    Raises:
        ReportError: a metrics or reference file is unreadable.
    """
    out_dir = Path(out_dir)
    scenes = collect_metrics(inputs.metrics_dir, inputs.scenes)
    summary = summary_frame(scenes)
    costs = cost_frame(scenes, cfg)
    describe, warnings = _our_convention(scenes)
    ours = ours_from_describe(describe)
    dataset = inputs.dataset or next((sm.dataset for sm in scenes if sm.dataset), None)
    ref_doc = load_reference(Path(inputs.reference_dir) / f"{dataset}.yaml") if dataset else None
    reference = reference_frame(ref_doc, ours)
    compression_ref = reference_frame(ref_doc, ours, section="compression")
    warnings += _scene_warnings(scenes)
    conv_name = (describe or {}).get("name", "no convention")

    files: list[str] = []
    curves: dict[str, Curves] = {}
    for sm in scenes:
        c = read_curves(Path(inputs.root) / cfg.curves_dir.format(scene=sm.scene))
        warnings += [f"{sm.scene} / curves: skipped {s}" for s in c.skipped]
        if c.curves:
            curves[sm.scene] = c
    with staging_dir(out_dir / "plots") as plots_stage:
        curve_names = plot_training_curves(curves, plots_stage / Path(CURVES_PNG).name)
        has_quality = plot_quality_vs_size(
            summary, compression_ref, plots_stage / Path(QUALITY_PNG).name, conv_name
        )
    if curve_names:
        files.append(CURVES_PNG)
    if has_quality:
        files.append(QUALITY_PNG)
    with staging_dir(out_dir / "images") as images_stage:
        comparisons = _copy_comparisons(scenes, inputs.eval_dir, images_stage)
    viewer = build_viewer(out_dir, [sm.scene for sm in scenes], root=Path(inputs.root))
    warnings += viewer.notes

    # Every CSV row carries its convention (a CSV travels without the markdown around it).
    csv_df = summary.copy()
    measure = _measure_frame(scenes).set_index("scene")
    for col in ("ssim_border", "lpips", "resolution", "test_views", "device"):
        csv_df[f"eval_{col}"] = csv_df["scene"].map(measure[col]) if not measure.empty else None
    atomic_write_text(out_dir / "summary.csv", csv_df.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out_dir / "costs.csv", costs.to_csv(index=False, float_format="%.6g"))
    files += ["summary.csv", "costs.csv"]

    sections = _sections(
        scenes, summary, costs, reference, compression_ref, describe, dataset, cfg, warnings,
        curve_names, has_quality, comparisons,
    )  # fmt: skip
    sections.insert(len(sections) - 1, viewer_section(viewer))
    title = inputs.title
    intro = [
        f"Scenes: {', '.join(sm.scene for sm in scenes) or 'none'}. Dataset: {dataset}. "
        "Built from metrics/<scene>/details/{ingest,sfm,train,compress,export,eval}.json; "
        "'-' marks a value whose stage has not run or did not measure it.",
        _convention_sentence(describe),
    ]
    atomic_write_text(out_dir / "summary.md", render_markdown(title, intro, sections))
    atomic_write_text(out_dir / "index.html", render_page(title, intro, sections))
    files += ["summary.md", "index.html"]
    files += [c["src"] for c in comparisons]
    files += viewer.files
    return ReportResult(summary, costs, reference, files, warnings)


def viewer_section(viewer: ViewerResult) -> Section:
    """The "3D viewer" section: the viewer page in a lazily loaded frame, one link per model."""
    if not viewer.models:
        return Section("3D viewer", ["No models to view yet (the train and export stages have "
                                     "not run)."])  # fmt: skip
    first = next((m for m in viewer.models if m["name"] == "spz" and m["script"]),
                 next((m for m in viewer.models if m["script"]), None))  # fmt: skip
    text = [
        "Orbit each scene's trained model and its compressed exports (PlayCanvas SOG, SPZ) in "
        "the browser, offline: drag to orbit, right-drag to pan, wheel to zoom. Models load "
        "only when picked. Viewer: Spark on three.js (bundled by `make viewer`). The viewer "
        "files are the report stage's DVC output reports/viewer/ (dvc pull or dvc repro).",
    ]
    if not viewer.built:
        text.append("The viewer bundle was not built, so models cannot be drawn: run `make "
                    "viewer` (needs Node.js and npm), then `dvc repro -f report`.")  # fmt: skip
    src = f"{viewer.page}?model={first['key']}" if first else viewer.page
    links = [(f"{viewer.page}?model={m['key']}", f"{m['key']} ({m['bytes'] / 1e6:.2f} MB)")
             for m in viewer.models if m["script"]]  # fmt: skip
    return Section("3D viewer", text, iframe=src, links=links)


def _sections(
    scenes: Sequence[SceneMetrics],
    summary: pd.DataFrame,
    costs: pd.DataFrame,
    reference: pd.DataFrame,
    compression_ref: pd.DataFrame,
    describe: Mapping[str, Any] | None,
    dataset: str | None,
    cfg: ReportConfig,
    warnings: list[str],
    curve_names: list[str] | None,
    has_quality: bool,
    comparisons: list[dict[str, Any]],
) -> list[Section]:
    conv = (describe or {}).get("name", "none")
    shown = drop_empty_columns(summary, keep=("scene", "model", "psnr", "ssim", "lpips"))
    cols = {k: v for k, v in COLUMNS.items() if k in shown.columns}
    for key in ("psnr", "ssim", "lpips"):
        if key in cols:
            cols[key] = (f"{cols[key][0]} ({conv})", cols[key][1])
    out = [
        Section(
            "Results on test views",
            [f"PSNR/SSIM/LPIPS on held-out test views under convention '{conv}'; size is the "
             "model's storage (PLY for trained, compressed files for compressed, the .sog / .spz "
             "file for the viewer-format exports playcanvas_sog and spz); 'mean' rows "
             "average over the scenes that have a value (column 'scenes')."],
            shown, cols,
        ),
        Section("How the numbers were measured", [_convention_sentence(describe)],
                _measure_frame(scenes), MEASURE_COLUMNS),
    ]  # fmt: skip
    if not reference.empty or not compression_ref.empty:
        out.append(Section(
            f"Published reference numbers ({dataset})",
            ["Published means over each paper's scene set and convention. Compare only rows "
             "marked 'yes'; a 'no' row was measured under a different SSIM border rule or LPIPS "
             "network/input range, and scene sets differ (see the 'scenes' column)."],
            reference, REFERENCE_COLUMNS,
        ))  # fmt: skip
        if not compression_ref.empty:
            out.append(Section(f"Published compression results ({dataset})", [],
                               compression_ref, REFERENCE_COLUMNS))  # fmt: skip
    else:
        out.append(Section("Published reference numbers",
                           [f"No published numbers for dataset '{dataset}' "
                            "(benchmarks/reference/<dataset>.yaml absent)."]))  # fmt: skip
    prices = ", ".join(f"{k} {v} {cfg.currency}/h" for k, v in cfg.instance_prices.items())
    mapping = ", ".join(f"{k} -> {v}" for k, v in cfg.stage_instances.items())
    out.append(Section(
        "Estimated cost per run",
        [f"Measured stage wall times x instance-hour price ({prices}; stages: {mapping}). An "
         "estimate: times were measured on the device listed, which may not be the priced "
         "instance, and start-up and storage are not included."],
        costs, COST_COLUMNS,
    ))  # fmt: skip
    figures = []
    if has_quality:
        figures.append(Figure(QUALITY_PNG, f"PSNR vs storage ({conv}); published compression "
                                           "results in grey"))  # fmt: skip
    if curve_names:
        figures.append(Figure(CURVES_PNG, "Training curves (DVCLive): " + ", ".join(curve_names)))
    out.append(Section("Plots", [] if figures else ["No plots: no curves or results yet."],
                       figures=figures))  # fmt: skip
    out.append(Section(
        "Comparison images",
        ["Ground truth | render | error map per test view (error: |render - ground truth| "
         "averaged over RGB on a fixed scale)."] if comparisons else
        ["No comparison images (the evaluate stage has not run)."],
        figures=[Figure(c["src"], figure_caption(c)) for c in comparisons],
    ))  # fmt: skip
    out.append(Section("Warnings", [] if warnings else ["None."], warnings=warnings))
    return out


def render_markdown(title: str, intro: Sequence[str], sections: Sequence[Section]) -> str:
    """The report as GitHub markdown (images linked relatively)."""
    lines = [f"# {title}", ""]
    for p in intro:
        lines += [p, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for w in s.warnings:
            lines.append(f"- {w}")
        if s.warnings:
            lines.append("")
        if s.table is not None and s.columns is not None and not s.table.empty:
            lines += [markdown_table(s.table, s.columns)]
        for f in s.figures:
            lines += [f"![{f.caption}]({f.src})", ""]
        if s.iframe:
            lines += [f"[Open the 3D viewer]({s.iframe})", ""]
        lines += [f"- [{text}]({href})" for href, text in s.links]
        if s.links:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
