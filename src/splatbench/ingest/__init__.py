"""Ingest: bring a scene from a source (local path, file://, synthetic://) into data/scenes/.

Public API: :func:`ingest_scene` (the whole step), sources (:func:`resolve_source`,
:func:`register_source`), :func:`safe_extract`, image checks and the manifest functions.
"""

from splatbench.ingest.archive import ExtractLimits, detect_archive_format, safe_extract
from splatbench.ingest.images import ImageInfo, find_images, verify_images
from splatbench.ingest.manifest import (
    MANIFEST_FILENAME,
    MANIFEST_SCHEMA_VERSION,
    build_manifest,
    load_manifest,
    manifest_schema,
    validate_manifest,
    verify_files,
    write_manifest,
)
from splatbench.ingest.pipeline import IngestResult, ingest_scene
from splatbench.ingest.sources import (
    LocalSource,
    Source,
    SyntheticSource,
    register_source,
    resolve_source,
    supported_schemes,
)

__all__ = [
    "MANIFEST_FILENAME",
    "MANIFEST_SCHEMA_VERSION",
    "ExtractLimits",
    "ImageInfo",
    "IngestResult",
    "LocalSource",
    "Source",
    "SyntheticSource",
    "build_manifest",
    "detect_archive_format",
    "find_images",
    "ingest_scene",
    "load_manifest",
    "manifest_schema",
    "register_source",
    "resolve_source",
    "safe_extract",
    "supported_schemes",
    "validate_manifest",
    "verify_files",
    "verify_images",
    "write_manifest",
]
