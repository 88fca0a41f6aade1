"""Read every scene's full stage records (``metrics/<scene>/details/<stage>.json``, see
:mod:`splatbench.stage_metrics`); any may be missing, the report shows what exists."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splatbench.errors import SplatbenchError
from splatbench.report.config import STAGE_FILES
from splatbench.stage_metrics import details_path


class ReportError(SplatbenchError):
    """An input of the report is unreadable (corrupt metrics file, bad reference table)."""


@dataclass
class SceneMetrics:
    """The full records (details files) of one scene, by stage name (``ingest`` ... ``evaluate``).

    Attributes:
        scene: scene name (a directory under ``metrics/``).
        stages: parsed JSON by stage; a stage without a file is absent.
    """

    scene: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, stage: str, *path: str, default: Any = None) -> Any:
        """``stages[stage][path[0]][path[1]]...``, or ``default`` where anything is missing."""
        node: Any = self.stages.get(stage)
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                return default
            node = node[key]
        return default if node is None else node

    @property
    def dataset(self) -> str | None:
        for doc in self.stages.values():
            if isinstance(doc.get("dataset"), str):
                return doc["dataset"]
        return None


def read_metrics_file(path: Path) -> dict[str, Any]:
    """Parse one metrics JSON file; a corrupt file is an error naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(
            f"{path}: cannot read metrics ({exc})",
            fix="re-run the stage that writes it (dvc repro), or delete the file",
        ) from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: metrics must be a JSON object", fix="re-run its stage")
    return data


def collect_metrics(metrics_dir: Path, scenes: Iterable[str] | None = None) -> list[SceneMetrics]:
    """Details records of ``scenes`` (default: every directory in ``metrics_dir``), in order.

    A listed scene without a directory is returned with no stages (shown as not run yet).
    """
    metrics_dir = Path(metrics_dir)
    if scenes is None:
        scenes = (
            sorted(p.name for p in metrics_dir.iterdir() if p.is_dir())
            if (metrics_dir.is_dir())
            else []
        )
    out = []
    for scene in scenes:
        sm = SceneMetrics(scene)
        for stage, stem in STAGE_FILES.items():
            path = details_path(metrics_dir, scene, stem)
            if path.is_file():
                sm.stages[stage] = read_metrics_file(path)
        out.append(sm)
    return out


def stage_seconds(doc: Mapping[str, Any] | None) -> float | None:
    """A stage's wall time from its metrics: ``seconds`` as a number, ``seconds.total``, or
    ``encode_seconds + decode_seconds`` (compress.json)."""
    if not doc:
        return None
    value = doc.get("seconds")
    if isinstance(value, Mapping):
        value = value.get("total")
    if value is None:
        # The compress stage reports its two phases separately.
        parts = [doc.get(k) for k in ("encode_seconds", "decode_seconds")]
        parts = [p for p in parts if _is_number(p)]
        value = sum(parts) if parts else None
    return float(value) if _is_number(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
