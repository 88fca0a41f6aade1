"""Training curves (DVCLive) and the terminal progress bar (rich), both optional."""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from splatbench.errors import ConfigError


class CurveLogger:
    """Writes scalar curves with DVCLive to ``live_dir`` (``None``: does nothing).

    DVCLive is told not to touch ``dvc.yaml`` or create DVC experiments: the pipeline declares
    the plots itself, and the library must not edit the project's files.
    """

    def __init__(self, live_dir: Path | None, resume: bool = False) -> None:
        self._live: Any = None
        if live_dir is None:
            return
        try:
            from dvclive import Live
        except ImportError as exc:
            raise ConfigError(
                "training curves need the dvclive package",
                fix="pip install dvclive, or pass live_dir=None to train without curves",
            ) from exc
        self._live = Live(
            dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None
        )

    @property
    def enabled(self) -> bool:
        return self._live is not None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self._live is None:
            return
        self._live.step = int(step)
        for name, value in metrics.items():
            self._live.log_metric(name, float(value))
        self._live.next_step()

    def close(self) -> None:
        if self._live is not None:
            self._live.end()
            self._live = None


class ProgressBar:
    """A rich progress bar with step, loss, PSNR and Gaussian count.

    Disabled when ``enabled`` is false or stderr is not a terminal (CI logs, DVC stage logs).
    """

    def __init__(self, total: int, start: int = 0, enabled: bool = True) -> None:
        self._progress: Any = None
        self._task: Any = None
        if not enabled or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  PSNR {task.fields[psnr]}  N {task.fields[n]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task("train", total=total, completed=start,
                                             loss="-", psnr="-", n="-")  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, completed: int, loss: float, psnr: float | None, n: int) -> None:
        if self._progress is None:
            return
        self._progress.update(
            self._task, completed=completed, loss=f"{loss:.4f}",
            psnr="-" if psnr is None else f"{psnr:.2f}", n=f"{n:,}",
        )  # fmt: skip
