"""Where each stage's numbers go: a small headline metrics file and a full details record.

``metrics/<scene>/<stage>.json`` is what ``dvc.yaml`` declares as the stage's metrics: only the
few numbers a person compares across experiments (``dvc exp show``, ``dvc metrics diff``,
``splatbench diff``), about 15 per scene in all. The full record a stage produces (per-image
values, settings, per-file bytes, timings, conventions, warnings, diagnostics) goes to
``metrics/<scene>/details/<stage>.json``, a DVC-cached output (``cache: false`` would cost the
stage DVC's run cache): versioned by DVC and read by the report, but not a DVC metric, so it
does not flood the experiment table with hundreds of columns. The headline is derived from the
details by the pure functions below, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from splatbench.fsutil import atomic_write_json

#: Directory (under ``metrics/<scene>/``) that holds each stage's full record.
DETAILS_DIR = "details"
#: The models whose test-view quality is a headline number (the exports are in the details).
HEADLINE_MODELS = ("trained", "compressed")
QUALITY_KEYS = ("psnr", "ssim", "lpips")
#: Stems of the export formats' sizes in export.json's headline, by format name in the details.
EXPORT_FORMATS = {"playcanvas_sog": "sog", "spz": "spz"}


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _float(value: Any, digits: int | None = None) -> float | None:
    value = _number(value)
    if value is None:
        return None
    return float(value) if digits is None else round(float(value), digits)


def _int(value: Any) -> int | None:
    value = _number(value)
    return None if value is None else int(value)


def lookup(doc: Mapping[str, Any], *path: str) -> Any:
    """``doc[path[0]][path[1]]...``, or None where a key is missing or a level is no mapping."""
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def sfm_headline(details: Mapping[str, Any]) -> dict[str, Any]:
    """``registered_images`` and ``reprojection_error_px`` (mean, in pixels)."""
    return {
        "registered_images": _int(details.get("registered_images")),
        "reprojection_error_px": _float(details.get("mean_reprojection_error_px"), 4),
    }


def train_headline(details: Mapping[str, Any]) -> dict[str, Any]:
    """Final ``gaussians``, optimizer ``steps``, ``stop_reason`` and wall ``seconds``."""
    return {
        "gaussians": _int(details.get("num_gaussians")),
        "steps": _int(details.get("steps")),
        "stop_reason": details.get("stop_reason"),
        "seconds": _float(details.get("seconds"), 3),
    }


def compress_headline(details: Mapping[str, Any]) -> dict[str, Any]:
    """Compressed ``megabytes`` and the ``ratio`` to the trained PLY."""
    return {
        "megabytes": _float(details.get("megabytes"), 6),
        "ratio": _float(details.get("ratio"), 3),
    }


def export_headline(details: Mapping[str, Any]) -> dict[str, Any]:
    """``sog_megabytes`` and ``spz_megabytes``; null for a format left out of export.formats."""
    formats = details.get("formats") if isinstance(details.get("formats"), Mapping) else {}
    return {
        f"{stem}_megabytes": _float(lookup(formats, name, "megabytes"), 6)
        for name, stem in EXPORT_FORMATS.items()
    }


def eval_headline(details: Mapping[str, Any]) -> dict[str, Any]:
    """Test-view PSNR/SSIM/LPIPS of the trained and compressed models (LPIPS null when it was
    not computed; a model that was not evaluated has all three null)."""
    models = details.get("models") if isinstance(details.get("models"), Mapping) else {}
    return {
        model: {key: _float(lookup(models, model, key)) for key in QUALITY_KEYS}
        for model in HEADLINE_MODELS
    }


#: Headline builder per stage file stem; a stage absent here (ingest) has no metrics file.
HEADLINES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "sfm": sfm_headline,
    "train": train_headline,
    "compress": compress_headline,
    "export": export_headline,
    "eval": eval_headline,
}


def details_path(metrics_dir: Path, scene: str, stem: str) -> Path:
    """``metrics/<scene>/details/<stem>.json``: a stage's full record."""
    return Path(metrics_dir) / scene / DETAILS_DIR / f"{stem}.json"


def headline_path(metrics_dir: Path, scene: str, stem: str) -> Path:
    """``metrics/<scene>/<stem>.json``: a stage's DVC metrics file (headline numbers only)."""
    return Path(metrics_dir) / scene / f"{stem}.json"


def write_stage_metrics(
    scene: str, stem: str, details: Mapping[str, Any], metrics_dir: Path = Path("metrics")
) -> dict[str, Any] | None:
    """Write a stage's details record and, for stages that have one, its headline file
    (both atomically; details first, so a headline never exists without its record).

    Returns:
        The headline written, or None for a stage without a metrics file (ingest).
    """
    atomic_write_json(details_path(metrics_dir, scene, stem), dict(details))
    build = HEADLINES.get(stem)
    if build is None:
        return None
    headline = build(details)
    atomic_write_json(headline_path(metrics_dir, scene, stem), headline)
    return headline
