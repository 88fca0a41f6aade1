"""SIGTERM as a request to checkpoint and stop.

SageMaker (a stop, a spot interruption, ``MaxRuntimeInSeconds``) sends SIGTERM and kills the
container 120 s later. :class:`StopOnSignal` turns SIGTERM into a flag that the training loop
polls once per step (``train(..., should_stop=stop)``): the loop then writes a checkpoint at once
and raises :class:`TrainingInterrupted`, and the train stage exits with
:data:`INTERRUPTED_EXIT_CODE`. A restarted job finds the checkpoint and resumes from it.

Before the loop has polled the flag for the first time (views loading, the rasterizer's one-off
build) there is nothing to save, so the signal interrupts at once. After the loop has finished
(writing the PLY) nobody polls: the work is then allowed ``grace_s`` seconds to finish before the
signal interrupts it anyway, which keeps the process well inside SageMaker's 120 s window.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

INTERRUPTED_EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a SIGTERM'd process
DEFAULT_GRACE_S = 60.0


class TrainingInterrupted(Exception):
    """Training stopped on a signal; ``steps`` were completed (and checkpointed, if enabled).

    Deliberately not a :class:`~splatbench.errors.SplatbenchError` (a user error, exit 2) nor a
    ``RuntimeError`` (the loop's OOM handler): an interruption has its own exit code.
    """

    def __init__(self, steps: int | None, signum: int = signal.SIGTERM) -> None:
        self.steps = steps
        self.signum = signum
        name = signal.Signals(signum).name
        where = f"after step {steps}" if steps is not None else "before training started"
        super().__init__(f"training interrupted by {name} {where}")


class StopOnSignal:
    """Context manager: while active, SIGTERM (or ``signals``) requests a stop.

    Call the instance (or read :attr:`requested`) to poll. Only usable from the main thread
    (Python delivers signals there).
    """

    def __init__(
        self, signals: tuple[int, ...] = (signal.SIGTERM,), grace_s: float = DEFAULT_GRACE_S
    ) -> None:
        self.signals = signals
        self.grace_s = grace_s
        self.signum: int | None = None
        self._polled = False
        self._previous: dict[int, Any] = {}
        self._previous_alarm: Any = None
        self._lock = threading.Lock()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __call__(self) -> bool:
        """Poll (the training loop calls this once per step)."""
        if not self._polled:
            self._polled = True
            # Libraries imported since __enter__ may have replaced our handler at the C level
            # (pycolmap installs glog's failure handler, which dumps a stack and dies on
            # SIGTERM): take the signals back now that there is state worth saving.
            for sig in self.signals:
                signal.signal(sig, self._on_signal)
        return self.requested

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            first = self.signum is None
            self.signum = signum
        if not self._polled or not first:
            # Nothing to checkpoint yet, or a second signal: stop now.
            raise TrainingInterrupted(None, signum)
        if self.grace_s > 0:
            signal.setitimer(signal.ITIMER_REAL, self.grace_s)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        raise TrainingInterrupted(None, self.signum or signal.SIGTERM)

    def __enter__(self) -> StopOnSignal:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        self._previous_alarm = signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous_alarm)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
