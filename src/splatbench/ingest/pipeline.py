"""Ingest one scene: fetch its source, check it, and build ``data/scenes/<scene>/``.

Steps: fetch into a work directory beside the scene (same filesystem, no /tmp size surprises),
safe-extract an archive, find the image directory, decode every image, then build the scene in a
staging directory: ``images/``, ``ground_truth.json`` when the payload has one, and
``manifest.json`` written last. The staging directory replaces the scene directory only when all
of that succeeded.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from splatbench.errors import ManifestError, SourceError
from splatbench.fsutil import staging_dir
from splatbench.ingest.archive import ExtractLimits, detect_archive_format, safe_extract
from splatbench.ingest.images import ImageInfo, find_images, verify_images
from splatbench.ingest.manifest import (
    MANIFEST_FILENAME,
    build_manifest,
    describe_payload,
    file_entry,
    load_manifest,
    verify_files,
    write_manifest,
)
from splatbench.ingest.sources import Source, resolve_source
from splatbench.scene.cameras import GROUND_TRUTH_FILENAME, read_ground_truth

SCENE_IMAGE_DIR = "images"
# Folders archivers add beside the real content; ignored when looking for the single top folder.
_ARCHIVER_NOISE = frozenset({"__MACOSX"})
_LICENSE_PREFIXES = ("license", "licence", "copying")


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_scene` did.

    Attributes:
        manifest: the scene's manifest (the existing one when skipped).
        skipped: True when the scene was already ingested from the same source and verified.
        seconds: wall-clock time of the call.
        warnings: things a user should know that did not stop the ingest (e.g. no license).
    """

    manifest: dict[str, Any]
    skipped: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)


def ingest_scene(
    source_uri: str,
    scene_dir: Path,
    *,
    scene: str,
    dataset: str,
    image_dir: str = "images",
    license_url: str | None = None,
    limits: ExtractLimits = ExtractLimits(),
    progress: bool = False,
) -> IngestResult:
    """Bring the scene at ``source_uri`` into ``scene_dir``.

    Re-running with the same source is a no-op: when ``scene_dir/manifest.json`` records the
    same source (uri, payload sha256, image_dir), scene, dataset and license URL, and every file
    verifies, nothing is written and ``skipped`` is True.

    Raises:
        SourceError, ArchiveError, ImageError, ManifestError: with the file and the fix.
    """
    started = time.perf_counter()
    scene_dir = Path(scene_dir)
    image_rel = _check_image_dir(image_dir)
    source = resolve_source(source_uri)
    scene_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(
        tempfile.mkdtemp(prefix=f".{scene_dir.name}.", suffix=".ingest", dir=scene_dir.parent)
    )
    try:
        with _progress_bar(progress) as bar:
            task = bar.add_task(f"fetching + hashing {source.uri}", total=None)
            payload = source.fetch(work / "fetch")
            source_record = {
                **source.describe(),
                "image_dir": image_rel,
                "payload": describe_payload(payload),
            }
            bar.update(task, total=1, completed=1)
            existing = _reusable_manifest(
                scene_dir,
                scene=scene,
                dataset=dataset,
                source=source_record,
                license_url=license_url,
                bar=bar,
            )
            if existing is not None:
                return IngestResult(existing, True, time.perf_counter() - started)
            root = _unpack(payload, work, limits)
            manifest, warnings = _build_scene(
                root,
                source,
                source_record,
                scene_dir,
                image_rel,
                scene=scene,
                dataset=dataset,
                license_url=license_url,
                bar=bar,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return IngestResult(manifest, False, time.perf_counter() - started, warnings)


def _check_image_dir(image_dir: str) -> str:
    rel = PurePosixPath(image_dir)
    if not image_dir or rel.is_absolute() or ".." in rel.parts or "\\" in image_dir:
        raise SourceError(
            f"image_dir {image_dir!r} must be a relative path inside the payload",
            fix="set image_dir to e.g. 'images' or 'images_4'",
        )
    return rel.as_posix()


def _reusable_manifest(
    scene_dir: Path,
    *,
    scene: str,
    dataset: str,
    source: dict[str, Any],
    license_url: str | None,
    bar: Progress,
) -> dict[str, Any] | None:
    """The existing manifest if it matches this ingest and every file verifies, else None."""
    manifest_path = scene_dir / MANIFEST_FILENAME
    if not manifest_path.is_file():
        return None
    try:
        manifest = load_manifest(manifest_path)
    except ManifestError:
        return None  # unreadable or outdated: rebuild rather than fail
    same = (
        manifest["scene"] == scene
        and manifest["dataset"] == dataset
        and manifest["source"] == source
        and manifest["license"]["url"] == license_url
    )
    if not same:
        return None
    task = bar.add_task("verifying", total=sum(e["size"] for e in manifest["files"]))
    problems = verify_files(manifest, scene_dir, on_file=lambda n: bar.advance(task, n))
    return None if problems else manifest


def _unpack(payload: Path, work: Path, limits: ExtractLimits) -> Path:
    """Return the payload's root directory, extracting it first when it is an archive."""
    if payload.is_dir():
        return payload
    if detect_archive_format(payload) is None:
        raise SourceError(
            f"payload {payload} is neither a directory nor a zip/tar archive",
            fix="point the source at a .zip/.tar[.gz|.bz2|.xz] archive or a directory",
        )
    dest = work / "payload"
    safe_extract(payload, dest, limits)
    return dest


def _locate_base(root: Path, image_rel: str, source: Source) -> Path:
    """The folder holding ``image_rel``: the payload root, or its single top-level folder."""
    if (root / image_rel).is_dir():
        return root
    top = [
        p for p in root.iterdir() if not p.name.startswith(".") and p.name not in _ARCHIVER_NOISE
    ]
    if len(top) == 1 and top[0].is_dir() and (top[0] / image_rel).is_dir():
        return top[0]
    listing = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in top)) or "nothing"
    raise SourceError(
        f"source {source.uri!r} has no {image_rel!r} folder at its root or inside a single "
        f"top-level folder (found: {listing})",
        fix="set the scene's image_dir to the folder that holds the images",
    )


def _licenses(base: Path) -> list[dict[str, str]]:
    """LICENSE*/LICENCE*/COPYING* files at the payload's base, as manifest entries."""
    found = []
    for path in sorted(base.iterdir()):
        if path.is_file() and path.name.lower().startswith(_LICENSE_PREFIXES):
            text = path.read_text(encoding="utf-8", errors="replace")
            found.append({"path": path.name, "text": text})
    return found


def _build_scene(
    root: Path,
    source: Source,
    source_record: dict[str, Any],
    scene_dir: Path,
    image_rel: str,
    *,
    scene: str,
    dataset: str,
    license_url: str | None,
    bar: Progress,
) -> tuple[dict[str, Any], list[str]]:
    base = _locate_base(root, image_rel, source)
    src_images = base / image_rel
    images = find_images(src_images)
    if not images:
        raise SourceError(
            f"no images (.png/.jpg/.jpeg) in {image_rel!r} of source {source.uri!r}",
            fix="check the scene's image_dir and source",
        )
    task = bar.add_task("decoding images", total=len(images))
    infos = verify_images(
        images,
        src_images,
        on_image=lambda _p: bar.advance(task),
        where=f"{image_rel!r} of source {source.uri!r}",
    )
    gt_src = base / GROUND_TRUTH_FILENAME
    if gt_src.is_file():
        _check_ground_truth(gt_src, infos)
    licenses = _licenses(base)
    warnings = []
    if not licenses and license_url is None:
        warnings.append(
            f"{dataset}/{scene}: no license file in the source and no license URL given; "
            "check the data's terms before publishing results"
        )

    copies = [(src_images / info.path, f"{SCENE_IMAGE_DIR}/{info.path}", info) for info in infos]
    if gt_src.is_file():
        copies.append((gt_src, GROUND_TRUTH_FILENAME, None))
    task = bar.add_task("copying + hashing", total=sum(src.stat().st_size for src, _, _ in copies))
    with staging_dir(scene_dir) as stage:
        entries = []
        for src, rel, info in copies:
            dst = stage / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            # Hash the copy, not the source: the manifest must describe what is on disk.
            if info is None:
                entries.append(file_entry(stage, rel))
            else:
                entries.append(file_entry(stage, rel, width=info.width, height=info.height))
            bar.advance(task, src.stat().st_size)
        manifest = build_manifest(
            scene=scene,
            dataset=dataset,
            source=source_record,
            license={"url": license_url, "files": licenses},
            files=entries,
        )
        # Last, so a scene directory with a manifest is always complete.
        write_manifest(stage / MANIFEST_FILENAME, manifest)
    return manifest, warnings


def _check_ground_truth(path: Path, infos: list[ImageInfo]) -> None:
    """Ground-truth cameras must name ingested images and agree on their size."""
    cameras, _scene = read_ground_truth(path)
    sizes = {info.path: (info.width, info.height) for info in infos}
    problems = []
    for cam in cameras:
        if cam.image not in sizes:
            problems.append(f"  camera image {cam.image!r} is not among the ingested images")
        elif sizes[cam.image] != (cam.width, cam.height):
            w, h = sizes[cam.image]
            problems.append(
                f"  {cam.image}: camera says {cam.width}x{cam.height}, image is {w}x{h}"
            )
    if problems:
        raise ManifestError(
            f"{path}: ground-truth cameras disagree with the images:\n" + "\n".join(problems),
            fix="regenerate the scene archive so cameras and images match",
        )


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress]:
    """A rich progress bar, or a disabled one that prints nothing."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )
    with bar:
        yield bar
