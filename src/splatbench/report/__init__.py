"""The report: aggregate metrics files into tables, plots and a static HTML page; compare a
run's metrics against a git revision (``splatbench diff``).

Knows nothing of DVC stages; :mod:`splatbench.report.diff` uses DVC's Python API to read the
metrics of another revision.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names resolve lazily (PEP 562): `splatbench diff` imports this package on every CLI start,
# and the report builder pulls in pandas, matplotlib and the evaluate stage's torch code.
_EXPORTS = {
    "ReportInputs": "build",
    "ReportResult": "build",
    "build_report": "build",
    "render_markdown": "build",
    "ReportError": "collect",
    "SceneMetrics": "collect",
    "collect_metrics": "collect",
    "stage_seconds": "collect",
    "RegressionRule": "config",
    "ReportConfig": "config",
    "report_config_from_dict": "config",
    "cost_frame": "cost",
    "Curves": "curves",
    "read_curve_file": "curves",
    "read_curves": "curves",
    "comparability": "reference",
    "load_reference": "reference",
    "reference_frame": "reference",
    "markdown_table": "tables",
    "summary_frame": "tables",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = [
    "Curves",
    "RegressionRule",
    "ReportConfig",
    "ReportError",
    "ReportInputs",
    "ReportResult",
    "SceneMetrics",
    "build_report",
    "collect_metrics",
    "comparability",
    "cost_frame",
    "load_reference",
    "markdown_table",
    "read_curve_file",
    "read_curves",
    "reference_frame",
    "render_markdown",
    "report_config_from_dict",
    "stage_seconds",
    "summary_frame",
]
