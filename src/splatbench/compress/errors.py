"""Errors of the compression codec (user-facing: they name the file or setting and the fix)."""

from __future__ import annotations

from splatbench.errors import SplatbenchError


class CompressError(SplatbenchError):
    """The input cannot be compressed (non-finite parameters, an image too large for WebP...)."""


class CorruptModelError(CompressError):
    """A compressed model directory is missing a file, or a file or meta.json was modified.

    Raised before any Gaussian is decoded: a damaged model never decodes into a wrong one.
    """
