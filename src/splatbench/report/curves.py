"""Training curves as the trainer's DVCLive writes them, read tolerantly.

DVCLive writes one TSV per metric under ``<dir>/plots/metrics/``, nested by the metric name's
slashes (``train/psnr`` -> ``plots/metrics/train/psnr.tsv``) with columns ``timestamp``, ``step``
and the metric's last name component. The reader accepts variations rather than failing the
report: CSV instead of TSV, no ``timestamp``, no ``step`` (the row number is used), the value
under another column name, blank or malformed lines (skipped), empty files (ignored).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

METRICS_SUBDIR = Path("plots") / "metrics"
_NON_VALUE = {"step", "timestamp", "time", "epoch"}


@dataclass
class Curves:
    """Curves of one run: metric name -> frame with ``step`` and ``value`` columns.

    Attributes:
        curves: parsed curves, by metric name (``train/psnr``).
        skipped: files that held no usable numbers, with why.
    """

    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _to_float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_curve_file(path: Path, metric_leaf: str) -> pd.DataFrame | None:
    """``step``/``value`` frame of one curve file, or None when it holds no numbers."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    if all(_to_float(h) is not None for h in header):
        header, body = [f"c{i}" for i in range(len(header))], rows  # no header line
    else:
        body = rows[1:]
    if metric_leaf in header:
        value_col = header.index(metric_leaf)
    else:
        candidates = [i for i, h in enumerate(header) if h.lower() not in _NON_VALUE]
        if not candidates:
            return None
        value_col = candidates[-1]
    step_col = header.index("step") if "step" in header else None
    steps, values = [], []
    for n, row in enumerate(body):
        if len(row) <= value_col:
            continue
        value = _to_float(row[value_col])
        step = _to_float(row[step_col]) if step_col is not None and len(row) > step_col else n
        if value is None or step is None:
            continue
        steps.append(step)
        values.append(value)
    if not values:
        return None
    df = pd.DataFrame({"step": steps, "value": values})
    # A resumed run may log a step twice; keep the last value logged for it.
    return df.drop_duplicates("step", keep="last").sort_values("step", ignore_index=True)


def read_curves(live_dir: Path) -> Curves:
    """All curves under ``live_dir`` (a DVCLive directory); a missing directory gives none."""
    live_dir = Path(live_dir)
    out = Curves()
    root = live_dir / METRICS_SUBDIR
    if not root.is_dir():
        root = live_dir  # tolerate curves written straight into the directory
    if not root.is_dir():
        return out
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".tsv", ".csv")):
        name = path.relative_to(root).with_suffix("").as_posix()
        try:
            df = read_curve_file(path, path.stem)
        except OSError as exc:
            out.skipped.append(f"{path}: {exc}")
            continue
        if df is None:
            out.skipped.append(f"{path}: no numeric values")
        else:
            out.curves[name] = df
    return out
