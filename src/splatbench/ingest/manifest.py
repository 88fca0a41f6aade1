"""The scene manifest: provenance, license and a size + sha256 for every file of a scene.

The manifest has no timestamps and is written with sorted keys, so ingesting the same source twice
gives a byte-identical file (DVC hashes it; git diffs stay empty). Its structure is defined by
``manifest.schema.json`` next to this module.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

import splatbench
from splatbench.errors import ManifestError
from splatbench.fsutil import atomic_write_json, read_json, sha256_file

MANIFEST_FILENAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
SCHEMA_RESOURCE = "manifest.schema.json"
TOOL_NAME = "splatbench"


@functools.lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    """The manifest JSON Schema (draft 2020-12), loaded from package data."""
    text = resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def validate_manifest(manifest: Any, origin: str | Path) -> None:
    """Check ``manifest`` against the schema and the rules a schema cannot express.

    Raises:
        ManifestError: naming ``origin`` and the first violation.
    """
    validator = Draft202012Validator(manifest_schema())
    errors = list(validator.iter_errors(manifest))
    if errors:
        err = best_match(errors)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ManifestError(
            f"{origin}: invalid manifest at {err.json_path}: {err.message}{more}",
            fix="re-run the ingest stage to regenerate it (`dvc repro` or `splatbench ingest`)",
        )
    paths = [entry["path"] for entry in manifest["files"]]
    if paths != sorted(paths) or len(set(paths)) != len(paths):
        raise ManifestError(
            f"{origin}: invalid manifest: `files` must be sorted by path without duplicates",
            fix="re-run the ingest stage to regenerate it",
        )


def file_entry(
    root: Path, rel: str, *, width: int | None = None, height: int | None = None
) -> dict[str, Any]:
    """Manifest entry for ``root / rel``: path, size, sha256 and, for images, width/height."""
    path = root / rel
    entry: dict[str, Any] = {"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)}
    if width is not None and height is not None:
        entry["width"] = int(width)
        entry["height"] = int(height)
    return entry


def build_manifest(
    *,
    scene: str,
    dataset: str,
    source: dict[str, Any],
    license: dict[str, Any],
    files: Iterable[dict[str, Any]],
) -> dict[str, Any]:
    """Assemble and validate a manifest; ``files`` are sorted by path here."""
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "scene": scene,
        "dataset": dataset,
        "source": source,
        "license": license,
        "tool": {"name": TOOL_NAME, "version": splatbench.__version__},
        "files": sorted(files, key=lambda entry: entry["path"]),
    }
    validate_manifest(manifest, f"manifest for {dataset}/{scene}")
    return manifest


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Validate and write atomically (sorted keys, trailing newline)."""
    validate_manifest(manifest, path)
    atomic_write_json(Path(path), manifest)


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and validate a manifest.

    Raises:
        ManifestError: the file is missing, not JSON, or violates the schema.
    """
    path = Path(path)
    try:
        manifest = read_json(path)
    except FileNotFoundError as exc:
        raise ManifestError(
            f"{path}: manifest not found", fix="run the ingest stage for this scene first"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(
            f"{path}: manifest is not readable JSON ({exc})",
            fix="re-run the ingest stage to regenerate it",
        ) from exc
    validate_manifest(manifest, path)
    return manifest  # type: ignore[no-any-return]


def verify_files(
    manifest: dict[str, Any],
    root: Path,
    on_file: Callable[[int], None] | None = None,
) -> list[str]:
    """Compare the files under ``root`` with the manifest; return problems (empty: all good).

    Reports missing files, size and sha256 mismatches, and files the manifest does not list
    (an extra image would silently join SfM). ``on_file(size)`` is called after each file.
    """
    root = Path(root)
    problems: list[str] = []
    listed: set[str] = set()
    for entry in manifest["files"]:
        rel = entry["path"]
        listed.add(rel)
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            problems.append(f"{rel}: size is {size} bytes, manifest says {entry['size']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest (the file was modified)")
        if on_file is not None:
            on_file(entry["size"])
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel != MANIFEST_FILENAME and rel not in listed:
                problems.append(f"{rel}: not listed in the manifest")
    return problems


def describe_payload(path: Path) -> dict[str, Any]:
    """The manifest's record of a fetched payload: type, sha256 and size.

    A directory's sha256 covers the sorted lines ``<sha256> <size> <path>`` of its files, so any
    change to content or names changes it (symlinks are followed, as a copy would).
    """
    path = Path(path)
    if path.is_file():
        return {"type": "file", "sha256": sha256_file(path), "size": path.stat().st_size}
    digest = hashlib.sha256()
    total = 0
    files = sorted(
        (p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()
    )
    for file in files:
        size = file.stat().st_size
        total += size
        line = f"{sha256_file(file)} {size} {file.relative_to(path).as_posix()}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return {"type": "directory", "sha256": digest.hexdigest(), "size": total}
