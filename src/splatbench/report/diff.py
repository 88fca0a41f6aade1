"""Compare the workspace's metrics with a git revision and flag regressions (``splatbench diff``).

The metrics of both sides come from DVC (``Repo.metrics.diff``, what ``dvc metrics diff`` runs),
so the comparison covers exactly the metrics files ``dvc.yaml`` declares at each revision.
Thresholds (:class:`~splatbench.report.config.RegressionRule`) decide which changes are
regressions; changes within a threshold are reported but not flagged.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splatbench.report.collect import ReportError
from splatbench.report.config import RegressionRule

#: Hidden marker at the top of the markdown, so a CI job can find and edit its own comment.
MARKER = "<!-- splatbench-metrics-diff -->"
STATUS_ICON = {
    "regression": "❌ regression",
    "improved": "✅ improved",
    "within": "within threshold",
    "changed": "changed",
    "added": "added",
    "removed": "⚠️ removed",
    "unchanged": "",
}


@dataclass(frozen=True)
class MetricChange:
    """One metric, old (at the revision) against new (the workspace).

    Attributes:
        path: metrics file (``metrics/<scene>/eval.json``).
        key: flattened key (``trained.psnr``).
        old, new: values (None where absent on that side).
        rule: the regression rule that applies (its name), or None.
        status: ``regression`` | ``improved`` | ``within`` (changed, within the rule's threshold)
            | ``changed`` (no rule, or not numeric) | ``added`` | ``removed`` | ``unchanged``.
    """

    path: str
    key: str
    old: Any
    new: Any
    rule: str | None
    status: str

    @property
    def delta(self) -> float | None:
        if _is_number(self.old) and _is_number(self.new):
            return float(self.new) - float(self.old)
        return None

    @property
    def rel(self) -> float | None:
        d = self.delta
        if d is None or not self.old:
            return None
        return d / abs(float(self.old))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def find_rule(path: str, key: str, rules: Sequence[RegressionRule]) -> RegressionRule | None:
    """The first rule whose ``file`` glob matches ``path`` and ``metric`` glob matches ``key``."""
    posix = Path(path).as_posix()
    for rule in rules:
        if fnmatch.fnmatchcase(posix, rule.file) and fnmatch.fnmatchcase(key, rule.metric):
            return rule
    return None


def judge(old: Any, new: Any, rule: RegressionRule | None) -> str:
    """Status of one metric change (see :class:`MetricChange`)."""
    if old is None and new is not None:
        return "added"
    if new is None and old is not None:
        return "removed"
    if old == new:
        return "unchanged"
    if rule is None or not (_is_number(old) and _is_number(new)):
        return "changed"
    worsening = (old - new) if rule.worse == "lower" else (new - old)
    size = abs(worsening)
    beyond = (rule.abs is None or size > rule.abs) and (
        rule.rel is None or size > rule.rel * abs(old)
    )
    if not beyond:
        return "within"
    return "regression" if worsening > 0 else "improved"


def classify(diff: Mapping[str, Mapping[str, Mapping[str, Any]]],
             rules: Sequence[RegressionRule]) -> list[MetricChange]:  # fmt: skip
    """Changes from DVC's ``{"path": {"key": {"old", "new", ...}}}``, sorted by file and key."""
    out = []
    for path in sorted(diff):
        for key in sorted(diff[path]):
            entry = diff[path][key] or {}
            old, new = entry.get("old"), entry.get("new")
            rule = find_rule(path, key, rules)
            out.append(MetricChange(path, key, old, new, rule.name if rule else None,
                                    judge(old, new, rule)))  # fmt: skip
    return out


def dvc_metrics_diff(repo_root: Path, rev: str) -> dict[str, Any]:
    """``dvc metrics diff REV --all`` through DVC's Python API: workspace against ``rev``.

    Raises:
        ReportError: not a DVC repository, or DVC could not read the revision.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            result = repo.metrics.diff(a_rev=rev, b_rev="workspace", all=True)
    except DvcException as exc:
        raise ReportError(
            f"dvc metrics diff against {rev!r} failed: {exc}",
            fix="run inside the project's git + DVC repository",
        ) from exc
    errors = result.get("errors") or {}
    rev_error = errors.get(rev)
    if isinstance(rev_error, Exception):
        raise ReportError(
            f"cannot read the metrics of revision {rev!r}: {rev_error}",
            fix=f"fetch it first (git fetch origin {rev}) or pass another revision, e.g. "
            f"origin/{rev}",
        )
    return dict(result)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6g}"


def _row(c: MetricChange) -> list[str]:
    delta = c.delta
    rel = c.rel
    return [
        c.path,
        c.key,
        _fmt(c.old),
        _fmt(c.new),
        "-" if delta is None else f"{delta:+.6g}",
        "-" if rel is None else f"{rel:+.2%}",
        STATUS_ICON[c.status],
    ]


HEADER = ["file", "metric", "old", "new", "change", "change %", "status"]


def _thresholds(rules: Sequence[RegressionRule]) -> str:
    parts = []
    for r in rules:
        limits = [f"abs {r.abs:g}" if r.abs is not None else "",
                  f"rel {r.rel:.0%}" if r.rel is not None else ""]  # fmt: skip
        parts.append(f"{r.name} ({r.metric}, worse when {r.worse}, "
                     f"{' and '.join(p for p in limits if p)})")  # fmt: skip
    return "; ".join(parts)


def summary_line(changes: Sequence[MetricChange], rev: str) -> str:
    reg = [c for c in changes if c.status == "regression"]
    changed = [c for c in changes if c.status != "unchanged"]
    if reg:
        names = ", ".join(f"{c.path}:{c.key}" for c in reg)
        return f"{len(reg)} regression(s) against {rev} beyond thresholds: {names}"
    return f"No regressions against {rev} ({len(changed)} of {len(changes)} metrics changed)."


@dataclass(frozen=True)
class HeadlineRow:
    """One row of the per-scene headline table: a key of a headline metrics file.

    Attributes:
        label: what the row shows (``test PSNR, trained``).
        stem: the headline file's stem (``eval`` for ``metrics/<scene>/eval.json``).
        key: DVC's flattened key in it (``trained.psnr``).
    """

    label: str
    stem: str
    key: str


#: The per-scene headline table of ``splatbench diff --md``, in order: test-view quality of the
#: trained and compressed models first (what regressions are judged on, with size and time),
#: then the training run's shape. Keys are those of :mod:`splatbench.stage_metrics`.
HEADLINE_ROWS: tuple[HeadlineRow, ...] = (
    *(
        HeadlineRow(f"test {name}, {model}", "eval", f"{model}.{key}")
        for key, name in (("psnr", "PSNR"), ("ssim", "SSIM"), ("lpips", "LPIPS"))
        for model in ("trained", "compressed")
    ),
    HeadlineRow("Gaussians", "train", "gaussians"),
    HeadlineRow("compressed MB", "compress", "megabytes"),
    HeadlineRow("train seconds", "train", "seconds"),
    HeadlineRow("steps", "train", "steps"),
    HeadlineRow("stop reason", "train", "stop_reason"),
)


def _scene_and_stem(path: str) -> tuple[str, str] | None:
    """``metrics/<scene>/<stem>.json`` -> (scene, stem); None for any other metrics file."""
    parts = Path(path).parts
    if len(parts) == 3 and parts[0] == "metrics" and parts[2].endswith(".json"):
        return parts[1], parts[2][: -len(".json")]
    return None


def headline_tables(changes: Sequence[MetricChange]) -> list[str]:
    """Markdown: one headline table per scene (old, new, change, status per headline row)."""
    by_place: dict[tuple[str, str, str], MetricChange] = {}
    for c in changes:
        place = _scene_and_stem(c.path)
        if place is not None:
            by_place[(*place, c.key)] = c
    scenes = sorted({scene for scene, _, _ in by_place})
    lines: list[str] = []
    for scene in scenes:
        rows = [(r, by_place.get((scene, r.stem, r.key))) for r in HEADLINE_ROWS]
        if not any(c is not None for _, c in rows):
            continue
        lines += [f"#### {scene}", "", "| | old | new | change | status |",
                  "|---|---:|---:|---:|---|"]  # fmt: skip
        for row, c in rows:
            if c is None:
                cells = [row.label, "-", "-", "-", "not measured"]
            else:
                cells = [row.label, *_row(c)[2:4], _change(c), STATUS_ICON[c.status]]
            lines.append("| " + " | ".join(s.replace("|", "\\|") for s in cells) + " |")
        lines.append("")
    return lines


def _change(c: MetricChange) -> str:
    delta, rel = c.delta, c.rel
    if delta is None:
        return "-"
    return f"{delta:+.6g}" + ("" if rel is None else f" ({rel:+.1%})")


def markdown_diff(changes: Sequence[MetricChange], rev: str,
                  rules: Sequence[RegressionRule],
                  warnings: Mapping[str, Sequence[str]] | None = None) -> str:  # fmt: skip
    """A markdown comment: the verdict, the per-scene headline table, training warnings, then
    every metric (changed first) folded in a ``<details>``.

    Args:
        changes: from :func:`classify`.
        rev: the revision compared against (for the text).
        rules: the regression thresholds (listed at the end).
        warnings: the workspace's training warnings by scene (:func:`training_warnings`).
    """

    def table(rows: Sequence[MetricChange]) -> list[str]:
        lines = ["| " + " | ".join(HEADER) + " |", "|---|---|---:|---:|---:|---:|---|"]
        for c in rows:
            cells = [s.replace("|", "\\|") for s in _row(c)]
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    changed = [c for c in changes if c.status != "unchanged"]
    unchanged = [c for c in changes if c.status == "unchanged"]
    reg = any(c.status == "regression" for c in changes)
    lines = [
        MARKER,
        f"### Metrics vs `{rev}`",
        "",
        f"**{summary_line(changes, rev)}**" if reg else summary_line(changes, rev),
        "",
    ]
    if not changes:
        lines += ["No metrics files found on either side.", ""]
    lines += headline_tables(changes)
    flagged = {scene: list(w) for scene, w in (warnings or {}).items() if w}
    if flagged:
        lines += ["**Training warnings** (this workspace):", ""]
        lines += [f"- {scene}: {w}" for scene, ws in sorted(flagged.items()) for w in ws]
        lines.append("")
    if changes:
        lines += [f"<details><summary>All {len(changes)} metrics ({len(changed)} changed, "
                  f"{len(unchanged)} unchanged)</summary>", ""]  # fmt: skip
        lines += [*table([*changed, *unchanged]), ""]
        lines += [f"Thresholds (report.regression): {_thresholds(rules)}. Full records, "
                  "conventions included, are in metrics/<scene>/details/.", "", "</details>",
                  ""]  # fmt: skip
    return "\n".join(lines)


def training_warnings(repo_root: Path, scenes: Sequence[str]) -> dict[str, list[str]]:
    """The ``warnings`` of each scene's ``metrics/<scene>/details/train.json`` in the
    workspace (early stop before densification ended, growth capped by the budget, ...);
    a scene without the file (or an unreadable one) has none."""
    from splatbench.stage_metrics import details_path

    out: dict[str, list[str]] = {}
    for scene in scenes:
        path = details_path(Path(repo_root) / "metrics", scene, "train")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        ws = doc.get("warnings") if isinstance(doc, dict) else None
        if isinstance(ws, list) and ws:
            out[scene] = [str(w) for w in ws]
    return out


def changed_scenes(changes: Sequence[MetricChange]) -> list[str]:
    """The scenes the headline files of ``changes`` belong to, sorted."""
    return sorted({place[0] for c in changes if (place := _scene_and_stem(c.path)) is not None})


def text_diff(changes: Sequence[MetricChange], rev: str,
              warnings: Mapping[str, Sequence[str]] | None = None) -> str:  # fmt: skip
    """A plain aligned table for terminals, then training warnings and the verdict."""
    rows = [HEADER, *(_row(c) for c in changes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]  # fmt: skip
    notes = [f"warning: {scene}: {w}" for scene, ws in sorted((warnings or {}).items())
             for w in ws]  # fmt: skip
    return "\n".join([*lines, "", *notes, summary_line(changes, rev)]) + "\n"
