"""Errors that reach users.

Every error a user can cause carries what went wrong (naming the file or parameter) and how to fix
it. The CLI prints ``str(err)`` without a traceback for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any


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


def check_known_keys(section: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """Raise :class:`ConfigError` for the first key of ``section`` not in ``allowed``.

    The message names ``<where>.<key>``, the closest allowed key (a typo is the usual cause)
    and every allowed key.
    """
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown key {where}.{key}{hint}; allowed keys: {', '.join(allowed)}",
                fix=f"remove or rename {where}.{key}",
            )
