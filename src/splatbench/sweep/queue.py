"""Queue a sweep's missing points with DVC's experiment queue and wait for them.

``dvc exp run --queue -S ... --name ...`` (DVC's Python API) for every point without a finished
or pending experiment, then ``dvc queue start -j N`` (the worker processes outlive this one),
then poll the queue's status until none of the sweep's experiments is queued or running.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from splatbench.errors import SplatbenchError
from splatbench.sweep.experiments import PointMatch, experiment_name

ACTIVE = ("Queued", "Running")


@dataclass(frozen=True)
class Queued:
    """A point sent to the queue under ``name``."""

    name: str
    match: PointMatch


def to_queue(matches: Sequence[PointMatch]) -> list[PointMatch]:
    """Points that need a run: no finished experiment and none queued or running.

    A failed try is queued again (its log stays readable with `dvc queue logs`).
    """
    return [
        m
        for m in matches
        if m.experiment is None and (m.pending is None or m.pending.state == "failed")
    ]


def queue_points(root: Path, grid_name: str, matches: Sequence[PointMatch]) -> list[Queued]:
    """``dvc exp run --queue`` each point (same overrides as ``-S``, DVC composes params)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    queued = []
    with Repo(str(root)) as repo:
        for m in matches:
            name = experiment_name(grid_name, m)
            try:
                repo.experiments.run(params=list(m.point.overrides), queue=True, name=name)
            except DvcException as exc:
                raise SplatbenchError(
                    f"could not queue sweep point {m.point.index} ({m.point.label}): {exc}",
                    fix="see `dvc queue status`; `dvc exp remove --queue` clears stale entries",
                ) from exc
            queued.append(Queued(name, m))
    return queued


def start_workers(root: Path, jobs: int) -> None:
    """``dvc queue start -j N``: DVC's own worker processes run the queued experiments."""
    dvc = Path(sys.executable).with_name("dvc")
    cmd = [str(dvc) if dvc.exists() else "dvc", "queue", "start", "-j", str(jobs)]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SplatbenchError(
            f"`{' '.join(cmd[1:])}` failed: {(proc.stderr or proc.stdout).strip()[-500:]}",
            fix="check `dvc queue status`; `dvc queue stop` then retry",
        )


def queue_status(root: Path, names: Sequence[str]) -> dict[str, str]:
    """Each name's newest queue status (Queued, Running, Success, Failed; missing: absent)."""
    from dvc.repo import Repo

    wanted = set(names)
    newest: dict[str, tuple[str, str]] = {}
    with Repo(str(root)) as repo:
        for entry in repo.experiments.celery_queue.status():
            name = entry.get("name")
            if name not in wanted:
                continue
            stamp = str(entry.get("timestamp") or "")
            if name not in newest or stamp >= newest[name][0]:
                newest[name] = (stamp, str(entry.get("status")))
    return {n: s for n, (_, s) in newest.items()}


def wait(root: Path, names: Sequence[str], *, poll_s: float = 3.0) -> dict[str, str]:
    """Wait with a progress bar until none of ``names`` is queued or running."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not names:
        return {}
    columns = (
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("starting", total=len(names))
        while True:
            status = queue_status(root, names)
            finished = [n for n in names if status.get(n) not in ACTIVE]
            running = [n for n in names if status.get(n) == "Running"]
            failed = [n for n in names if status.get(n) == "Failed"]
            desc = f"running: {', '.join(running) or '-'}"
            if failed:
                desc += f"  [red]failed: {len(failed)}[/]"
            progress.update(task, completed=len(finished), description=desc)
            if len(finished) == len(names):
                return status
            time.sleep(poll_s)
