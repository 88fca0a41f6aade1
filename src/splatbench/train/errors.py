"""Errors the trainer raises (user-facing: message plus fix, see :mod:`splatbench.errors`)."""

from __future__ import annotations

from splatbench.errors import SplatbenchError


class TrainingError(SplatbenchError):
    """Training failed."""


class NonFiniteError(TrainingError):
    """The loss or a parameter became NaN or infinite.

    Attributes:
        step: the 0-based step index at which it was detected.
        tensor: ``"loss"`` or the parameter name (``"means"``, ``"scales"``, ...).
    """

    def __init__(self, step: int, tensor: str, message: str, fix: str | None = None) -> None:
        self.step = step
        self.tensor = tensor
        super().__init__(message, fix=fix)


class TrainingOOMError(TrainingError):
    """The device ran out of memory; the message gives the Gaussian count and the knobs."""

    def __init__(self, step: int, num_gaussians: int, message: str, fix: str | None = None):
        self.step = step
        self.num_gaussians = num_gaussians
        super().__init__(message, fix=fix)
