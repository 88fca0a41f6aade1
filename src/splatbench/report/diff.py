"""Compare the workspace's metrics with a git revision and flag regressions (``splatbench diff``).

The metrics of both sides come from DVC (``Repo.metrics.diff``, what ``dvc metrics diff`` runs),
so the comparison covers exactly the metrics files ``dvc.yaml`` declares at each revision.
Thresholds (:class:`~splatbench.report.config.RegressionRule`) decide which changes are
regressions; changes within a threshold are reported but not flagged.
"""

from __future__ import annotations

import fnmatch
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
        key: flattened key (``models.trained.psnr``).
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


def markdown_diff(changes: Sequence[MetricChange], rev: str,
                  rules: Sequence[RegressionRule]) -> str:  # fmt: skip
    """A markdown comment: summary, changed metrics, then unchanged ones folded away."""

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
    if changed:
        lines += [*table(changed), ""]
    if unchanged:
        lines += [f"<details><summary>{len(unchanged)} unchanged metrics</summary>", "",
                  *table(unchanged), "", "</details>", ""]  # fmt: skip
    lines += [f"Thresholds (report.regression): {_thresholds(rules)}. Metric conventions are "
              "recorded in each eval.json (`convention`).", ""]  # fmt: skip
    return "\n".join(lines)


def text_diff(changes: Sequence[MetricChange], rev: str) -> str:
    """A plain aligned table for terminals."""
    rows = [HEADER, *(_row(c) for c in changes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]  # fmt: skip
    return "\n".join([*lines, "", summary_line(changes, rev)]) + "\n"
