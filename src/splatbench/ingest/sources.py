"""Where a scene's raw payload comes from.

A :class:`Source` turns a URI into a local payload (an archive file or a directory). Callers only
use :func:`resolve_source`, ``describe()`` and ``fetch()``, so S3 and HTTP(S) sources can be added
later with :func:`register_source` without touching the ingest pipeline.

Credentials never leave a source: ``Source.uri`` and ``describe()`` (which ends up in the
manifest, in git and in DVC's cache) carry a redacted URI, and so does every error message.
"""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from splatbench.errors import SourceError, SplatbenchError
from splatbench.uri import redact_uri

SourceFactory = Callable[[str], "Source"]

# Schemes that later issues will implement; named in errors so users know they are planned.
_PLANNED_SCHEMES: tuple[str, ...] = ()


class Source(ABC):
    """A place a scene payload can be fetched from.

    Attributes:
        uri: the source URI with credentials removed (safe to log and to store).
    """

    #: Short name recorded in the manifest, e.g. ``"local"``, ``"synthetic"``, ``"s3"``.
    kind: str = "abstract"

    def __init__(self, uri: str) -> None:
        self.uri = redact_uri(uri)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this source: JSON-safe, never credentials."""
        return {"kind": self.kind, "uri": self.uri}

    @abstractmethod
    def fetch(self, workdir: Path) -> Path:
        """Make the payload available locally and return its path.

        The result is an archive file or a directory. It may lie outside ``workdir`` (a local
        source returns the user's own file), so callers must treat it as read-only.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalSource(Source):
    """A payload already on this machine: a plain path or a ``file://`` URL."""

    kind = "local"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.path = _local_path(uri)

    def fetch(self, workdir: Path) -> Path:
        # No copy: payloads can be tens of GiB, and the pipeline only reads them.
        if not self.path.exists():
            raise SourceError(
                f"source path {self.path} does not exist (from {self.uri!r})",
                fix="check the scene's `source` in the benchmark config, or download the data",
            )
        if not (self.path.is_file() or self.path.is_dir()):
            raise SourceError(
                f"source path {self.path} is neither a file nor a directory",
                fix="point the source at an archive (zip/tar) or a directory",
            )
        return self.path


def _local_path(uri: str) -> Path:
    """Resolve a plain path or ``file://`` URL to an absolute path (relative paths: cwd)."""
    if uri.lower().startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise SourceError(
                f"file URL {redact_uri(uri)!r} names host {parts.hostname!r}; only local files "
                "are supported",
                fix="use file:///absolute/path (three slashes) or a plain path",
            )
        if not parts.path:
            raise SourceError(f"file URL {uri!r} has no path", fix="use file:///absolute/path")
        return Path(unquote(parts.path))
    return Path(uri).expanduser().absolute()


# Aliases accepted in synthetic:// queries for readability (views=24 instead of num_views=24).
_SYNTHETIC_ALIASES = {"views": "num_views"}


class SyntheticSource(Source):
    """The built-in synthetic scene: ``synthetic://<name>?views=24&width=320&height=240&seed=0``.

    Query keys are fields of :class:`splatbench.scene.synthetic.SyntheticSceneConfig` (``views``
    is accepted for ``num_views``). ``fetch`` writes the scene as a zip so it goes through exactly
    the same extraction and checks as a downloaded archive.
    """

    kind = "synthetic"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        self.name = unquote(parts.netloc or parts.path.strip("/"))
        if not self.name or "/" in self.name:
            raise SourceError(
                f"synthetic source {self.uri!r} has no valid scene name",
                fix="use synthetic://<name>?views=24&width=320&height=240&seed=0",
            )
        self.overrides = _parse_query(self.uri, parts.query)
        self.config = self._build_config()

    def _build_config(self) -> Any:
        """Build the ``SyntheticSceneConfig``; unknown keys and bad values raise SourceError."""
        try:
            # Imported here, not at module level: the synthetic module is optional for callers
            # that only ingest real data, and importing it pulls in rendering code.
            from splatbench.scene.synthetic import SyntheticSceneConfig
        except ImportError as exc:  # pragma: no cover - only without the synthetic module
            raise SourceError(
                f"synthetic source {self.uri!r} needs splatbench.scene.synthetic ({exc})",
                fix="install splatbench with the built-in scene module",
            ) from exc
        fields = {f.name: f for f in dataclasses.fields(SyntheticSceneConfig)}
        kwargs: dict[str, Any] = {"name": self.name} if "name" in fields else {}
        for raw_key, raw_value in self.overrides.items():
            key = _SYNTHETIC_ALIASES.get(raw_key, raw_key)
            if key not in fields or key == "name":
                allowed = sorted(set(fields) - {"name"} | set(_SYNTHETIC_ALIASES))
                raise SourceError(
                    f"synthetic source {self.uri!r}: unknown parameter {raw_key!r}",
                    fix=f"use only: {', '.join(allowed)}",
                )
            kwargs[key] = _coerce(self.uri, raw_key, raw_value, fields[key])
        try:
            return SyntheticSceneConfig(**kwargs)
        except (TypeError, ValueError, SplatbenchError) as exc:
            detail = exc.message if isinstance(exc, SplatbenchError) else str(exc)
            fix = exc.fix if isinstance(exc, SplatbenchError) else None
            raise SourceError(
                f"synthetic source {self.uri!r}: invalid configuration ({detail})",
                fix=fix or "check the query parameters' values",
            ) from exc

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "uri": self.uri,
            "config": _json_safe(dataclasses.asdict(self.config)),
        }

    def fetch(self, workdir: Path) -> Path:
        from splatbench.scene.synthetic import write_scene_archive

        workdir.mkdir(parents=True, exist_ok=True)
        return Path(write_scene_archive(self.config, workdir / f"{self.name}.zip"))


def _parse_query(uri: str, query: str) -> dict[str, str]:
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise SourceError(
                f"source {uri!r}: parameter {key!r} is given twice", fix="give it once"
            )
        out[key] = value
    return out


def _coerce(uri: str, key: str, value: str, field: dataclasses.Field[Any]) -> Any:
    """Convert a query string value to the type of the field's default."""
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    try:
        if isinstance(default, bool):
            lowered = value.lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"not a boolean: {value!r}")
            return lowered in ("1", "true", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple) and all(isinstance(v, float) for v in default):
            # e.g. elevations_deg=15,35
            return tuple(float(v) for v in value.split(","))
        if isinstance(default, str) or default is None or default is dataclasses.MISSING:
            return value
    except ValueError as exc:
        raise SourceError(
            f"synthetic source {uri!r}: parameter {key!r} has a bad value ({exc})",
            fix=f"give {key} as a {type(default).__name__}",
        ) from exc
    raise SourceError(
        f"synthetic source {uri!r}: parameter {key!r} cannot be set from a URL",
        fix=f"remove {key!r} from the query",
    )


def _json_safe(value: Any) -> Any:
    """Tuples to lists, numpy scalars to Python numbers, so describe() is JSON-serialisable."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return _json_safe(value.tolist())
    return str(value)


_REGISTRY: dict[str, SourceFactory] = {}


def register_source(scheme: str, factory: SourceFactory) -> None:
    """Register ``factory(uri) -> Source`` for URIs starting with ``scheme://``.

    Re-registering a scheme replaces the previous factory (tests and plugins rely on that).
    """
    scheme = scheme.lower()
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ValueError(f"invalid URL scheme {scheme!r}")
    _REGISTRY[scheme] = factory


def supported_schemes() -> list[str]:
    """Registered schemes, sorted."""
    return sorted(_REGISTRY)


def resolve_source(uri: str) -> Source:
    """Return the :class:`Source` for ``uri``.

    Plain paths (``data/raw/x.zip``, ``/abs/dir``, ``C:\\x``) are local. Anything of the form
    ``scheme:...`` with an unregistered scheme raises :class:`SourceError` listing the supported
    schemes.
    """
    if not uri or not uri.strip():
        raise SourceError("empty source URI", fix="set the scene's `source`")
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", uri)
    # A one-letter "scheme" is a Windows drive letter ("C:\data"), i.e. a path.
    if match is None or len(match.group(1)) == 1:
        return LocalSource(uri)
    scheme = match.group(1).lower()
    factory = _REGISTRY.get(scheme)
    if factory is None:
        supported = ", ".join(f"{s}://" for s in supported_schemes())
        planned = " (not implemented yet)" if scheme in _PLANNED_SCHEMES else ""
        raise SourceError(
            f"unsupported source scheme {scheme!r}{planned} in {redact_uri(uri)!r}; "
            f"supported: {supported}, or a plain local path",
            fix="use a supported scheme, or download the payload and give its local path",
        )
    return factory(uri)


register_source("file", LocalSource)
register_source("synthetic", SyntheticSource)


def _s3_source(uri: str) -> Source:
    # Imported on use: boto3 is only needed by scenes that actually come from S3.
    from splatbench.ingest.s3_source import S3Source

    return S3Source(uri)


def _http_source(uri: str) -> Source:
    from splatbench.ingest.http_source import HttpSource

    return HttpSource(uri)


register_source("s3", _s3_source)
register_source("http", _http_source)
register_source("https", _http_source)
