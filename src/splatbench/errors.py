"""Errors that reach users.

Every error a user can cause carries what went wrong (naming the file or parameter) and how to fix
it. The CLI prints ``str(err)`` without a traceback for these.
"""

from __future__ import annotations


class SplatbenchError(Exception):
    """Base class for user-facing errors: a message plus an optional fix."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\nFix: {fix}")


class ConfigError(SplatbenchError):
    """A parameter in params.yaml / conf/ is missing or invalid."""


class SourceError(SplatbenchError):
    """A scene source cannot be resolved or fetched."""


class ArchiveError(SplatbenchError):
    """An archive is unsafe (path escape, links, too big) or corrupt."""


class ImageError(SplatbenchError):
    """One or more images cannot be decoded."""


class ManifestError(SplatbenchError):
    """A manifest is malformed or disagrees with the files on disk."""


class SfmError(SplatbenchError):
    """Structure-from-motion failed or produced an unusable model."""
