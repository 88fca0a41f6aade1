"""Published reference numbers (``benchmarks/reference/<dataset>.yaml``) beside ours.

Each published row names its convention (SSIM border rule, LPIPS network and input range,
resolution); a row whose convention differs from the one our numbers were measured under is
flagged, since such numbers are not comparable (REFERENCE.md: the three SSIM border rules alone
move SSIM by several hundredths).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from splatbench.report.collect import ReportError

#: Convention keys compared between a published row and ours.
COMPARED = ("ssim_border", "lpips_net", "lpips_input_range")
REFERENCE_COLUMNS: dict[str, tuple[str, str]] = {
    "method": ("method", "text"),
    "scenes": ("scenes", "int"),
    "steps": ("steps", "int"),
    "psnr": ("PSNR dB", "f2"),
    "ssim": ("SSIM", "f3"),
    "lpips": ("LPIPS", "f3"),
    "storage_mb": ("size MB", "f1"),
    "gaussians": ("Gaussians", "int"),
    "train_time": ("train time", "text"),
    "convention": ("convention", "text"),
    "comparable": ("same convention as ours", "text"),
    "source": ("source", "text"),
}


def ours_from_describe(describe: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Our convention in the reference files' terms, from ``MetricConvention.describe()``."""
    if not describe:
        return None
    return {
        "name": str(describe.get("name")),
        "ssim_border": str((describe.get("ssim") or {}).get("border")),
        "lpips_net": str((describe.get("lpips") or {}).get("net")),
        "lpips_input_range": str((describe.get("lpips") or {}).get("input_range")),
    }


def load_reference(path: Path) -> dict[str, Any] | None:
    """The reference file, or None when it does not exist (a dataset without published
    numbers, such as the synthetic scene)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{path}: cannot read reference numbers ({exc})",
                          fix="fix the YAML syntax") from exc  # fmt: skip
    if not isinstance(data, dict) or not isinstance(data.get("results", []), list):
        raise ReportError(
            f"{path}: expected a mapping with a `results` list",
            fix="see benchmarks/README.md for the layout",
        )
    return data


def _convention_text(conv: Mapping[str, Any] | None) -> str:
    if not conv:
        return "not stated"
    return ", ".join(f"{k}={conv[k]}" for k in (*COMPARED, "resolution") if k in conv)


def comparability(conv: Mapping[str, Any] | None, ours: Mapping[str, str] | None) -> str:
    """``yes``, ``no: <differences>``, or ``unknown: <why>``."""
    if ours is None:
        return "unknown: no eval.json with our convention"
    if not conv:
        return "unknown: the source does not state its convention"
    diffs = [
        f"{k} {conv.get(k)} vs ours {ours[k]}"
        for k in COMPARED
        if k in conv and str(conv.get(k)) != ours[k]
    ]
    missing = [k for k in COMPARED if k not in conv]
    if diffs:
        return "no: " + "; ".join(diffs)
    if missing:
        return f"unknown: source does not state {', '.join(missing)}"
    return "yes"


def reference_frame(
    reference: Mapping[str, Any] | None, ours: Mapping[str, str] | None, section: str = "results"
) -> pd.DataFrame:
    """Published rows of ``section`` (``results`` or ``compression``) with comparability flags."""
    rows = []
    for item in (reference or {}).get(section) or []:
        conv = item.get("convention")
        rows.append({
            "method": item.get("method"),
            "scenes": item.get("scenes"),
            "steps": item.get("steps"),
            "psnr": item.get("psnr"),
            "ssim": item.get("ssim"),
            "lpips": item.get("lpips"),
            "storage_mb": item.get("storage_mb", item.get("size_mb")),
            "gaussians": item.get("gaussians"),
            "train_time": item.get("train_time"),
            "convention": _convention_text(conv),
            "comparable": comparability(conv, ours),
            "source": item.get("source"),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS))
