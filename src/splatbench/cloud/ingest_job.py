"""The ingestion job: fetch a scene's raw payload, describe it in a manifest, publish it to S3.

Layout (docs/s3.md)::

    <output-dir>/downloads/<dataset>/<scene>/...              the raw payload, extracted
    <output-dir>/manifests/<dataset>/<scene>.manifest.json     its manifest (schema v1)
    <output-dir>/s3_dry_run/<prefix>/...                       dry run: the would-be S3 tree
    <output-dir>/fetch/<dataset>/<scene>/                      downloads in progress (resumable)
    <output-dir>/logs/<run_id>/                                this run's log and summary
    s3://<bucket>/<prefix>/raw/<dataset>/<scene>/...           --upload: raw payload
    s3://<bucket>/<prefix>/manifests/<dataset>/<scene>.manifest.json
    s3://<bucket>/<prefix>/results/<run_id>/<dataset>/<scene>/logs/

Guarantees: a dry run (the default) makes no S3 call at all. With ``--upload`` the raw objects go
first (skipped when already present with the same sha256, resumed when interrupted) and the
manifest last, written only if absent (``If-None-Match``) or, with ``--force``, only over the
version that was compared (``If-Match``): a scene without a manifest is incomplete by definition,
and a different published manifest is never silently replaced. When a manifest already exists
(in S3 with ``--upload``, else locally) the fetched payload must reproduce it exactly, so a
download that does not match its sha256s fails before anything is published.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import mimetypes
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from splatbench.cloud.s3 import (
    S3Error,
    S3Layout,
    S3Settings,
    SecretScrubFilter,
    VerificationError,
    error_code,
    is_not_found,
    make_client,
    normalize_prefix,
    parse_s3_uri,
    s3_error,
    scrub,
)
from splatbench.cloud.transfer import (
    SHA256_META,
    ProgressFn,
    TransferSettings,
    Uploader,
    UploadItem,
)
from splatbench.errors import ManifestError, SourceError
from splatbench.fsutil import atomic_write_json, staging_dir
from splatbench.ingest.archive import ExtractLimits, detect_archive_format, safe_extract
from splatbench.ingest.images import find_images, verify_images
from splatbench.ingest.manifest import (
    build_manifest,
    describe_payload,
    load_manifest,
    validate_manifest,
    write_manifest,
)
from splatbench.ingest.pipeline import _check_image_dir, _licenses
from splatbench.ingest.sources import Source, resolve_source

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger("splatbench.cloud.ingest_job")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ARCHIVER_NOISE = frozenset({"__MACOSX"})
_COPY_CHUNK = 1 << 20
LOG_FILENAME = "ingest.log"
SUMMARY_FILENAME = "summary.json"


@dataclass(frozen=True)
class IngestJobConfig:
    """One scene's ingestion (the CLI options of ``splatbench ingest``).

    Attributes:
        expected_image_dirs: folders of the payload that must hold images (the first one is
            recorded as the manifest's ``image_dir``); each is counted and decoded.
        upload: False (the default) is a dry run: nothing is read from or written to S3.
        force: replace a published (or local) manifest that differs.
        run_id: names this run's log folder; default ``$AWS_BATCH_JOB_ID`` or a timestamp.
        verify_images: decode every image of the expected folders before publishing.
    """

    dataset: str
    scene: str
    bucket: str
    output_dir: Path
    source_url: str | None = None
    prefix: str = ""
    license_url: str | None = None
    expected_image_dirs: tuple[str, ...] = ("images",)
    upload: bool = False
    force: bool = False
    run_id: str | None = None
    s3: S3Settings = field(default_factory=S3Settings)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    limits: ExtractLimits = field(default_factory=ExtractLimits)
    verify_images: bool = True


@dataclass
class IngestJobResult:
    """What the job did; ``summary()`` is written next to the run log."""

    run_id: str
    manifest: dict[str, Any]
    manifest_path: Path
    downloads_dir: Path
    image_counts: dict[str, int]
    dry_run_dir: Path | None = None
    upload: dict[str, Any] | None = None
    manifest_published: bool = False
    s3_uris: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        files = self.manifest["files"]
        return {
            "run_id": self.run_id,
            "dataset": self.manifest["dataset"],
            "scene": self.manifest["scene"],
            "files": len(files),
            "bytes": sum(int(f["size"]) for f in files),
            "images": self.image_counts,
            "mode": "upload" if self.upload is not None else "dry-run",
            "upload": self.upload,
            "manifest_published": self.manifest_published,
            "s3": self.s3_uris,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


def default_run_id() -> str:
    """``$AWS_BATCH_JOB_ID`` on Batch, else ``YYYYmmddTHHMMSSZ-<6 hex>``."""
    job_id = os.environ.get("AWS_BATCH_JOB_ID")
    if job_id and _NAME.match(job_id):
        return job_id
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def run_ingest_job(
    config: IngestJobConfig,
    *,
    client: BaseClient | None = None,
    progress: ProgressFn | None = None,
) -> IngestJobResult:
    """Run the job described by ``config``; see the module docstring for the guarantees.

    Raises:
        SourceError, ArchiveError, ImageError, ManifestError, VerificationError, S3Error:
            each naming the file or object and the fix. Nothing is published on failure.
    """
    started = time.perf_counter()
    cfg = _checked(config)
    run_id = cfg.run_id or default_run_id()
    out = Path(cfg.output_dir)
    log_dir = out / "logs" / run_id
    with _run_log(log_dir / LOG_FILENAME):
        log.info(
            "run %s: %s/%s, mode %s",
            run_id,
            cfg.dataset,
            cfg.scene,
            "upload" if cfg.upload else "dry-run",
        )
        result = _run(cfg, run_id, out, client, progress)
        result.seconds = time.perf_counter() - started
        log.info("run %s finished in %.1fs: %s", run_id, result.seconds, _short(result))
    atomic_write_json(log_dir / SUMMARY_FILENAME, result.summary())
    if cfg.upload:
        _publish_logs(cfg, run_id, log_dir, _client(cfg, client), result)
    else:
        _dry_run_logs(cfg, run_id, log_dir, result)
    return result


def _short(result: IngestJobResult) -> str:
    up = result.upload
    if up is None:
        return f"{len(result.manifest['files'])} files staged in {result.dry_run_dir}"
    return (
        f"{up['uploaded']} uploaded, {up['skipped']} already there, "
        f"{up['parts_reused']} parts resumed, manifest "
        f"{'published' if result.manifest_published else 'unchanged'}"
    )


def _checked(cfg: IngestJobConfig) -> IngestJobConfig:
    for what, value in (("dataset", cfg.dataset), ("scene", cfg.scene)):
        if not value or not _NAME.match(value):
            raise SourceError(
                f"invalid {what} name {value!r}",
                fix=f"use letters, digits, '.', '_' or '-' for --{what} (no slashes)",
            )
    if not cfg.bucket:
        raise SourceError("no bucket given", fix="pass --bucket or set BENCHMARK_BUCKET")
    parse_s3_uri(f"s3://{cfg.bucket}/")  # validates the bucket name
    dirs = tuple(_check_image_dir(d) for d in cfg.expected_image_dirs if d.strip())
    if not dirs:
        raise SourceError("no expected image directories", fix="e.g. --expected-image-dirs images")
    return dataclasses.replace(
        cfg,
        prefix=normalize_prefix(cfg.prefix),
        expected_image_dirs=dirs,
        source_url=cfg.source_url or None,  # Batch passes "" for an unset parameter
    )


def _client(cfg: IngestJobConfig, client: BaseClient | None) -> BaseClient:
    return client if client is not None else make_client(cfg.s3)


def _run(
    cfg: IngestJobConfig,
    run_id: str,
    out: Path,
    client: BaseClient | None,
    progress: ProgressFn | None,
) -> IngestJobResult:
    layout = S3Layout(cfg.bucket, cfg.prefix)
    manifest_path = out / "manifests" / cfg.dataset / f"{cfg.scene}.manifest.json"
    downloads = out / "downloads" / cfg.dataset / cfg.scene
    fetch_dir = out / "fetch" / cfg.dataset / cfg.scene
    manifest_key = layout.manifest_key(cfg.dataset, cfg.scene)

    remote: tuple[dict[str, Any], str] | None = None
    if cfg.upload:
        client = _client(cfg, client)
        remote = _read_remote_manifest(client, layout, manifest_key)
    local = _read_local_manifest(manifest_path)
    reference = remote[0] if remote is not None else local
    where = layout.uri(manifest_key) if remote is not None else str(manifest_path)

    source_url = cfg.source_url
    if source_url is None:
        if reference is None:
            raise SourceError(
                f"no manifest for {cfg.dataset}/{cfg.scene} yet, so --source-url is required",
                fix="pass --source-url (http(s)://, s3:// or a local path)",
            )
        source_url = reference["source"]["uri"]
        if "REDACTED" in source_url:
            raise SourceError(
                f"the manifest's source {source_url!r} had credentials that were not recorded",
                fix="pass --source-url with a fresh (e.g. presigned) URL",
            )
        log.info("no --source-url: re-fetching the manifest's source %s", source_url)

    source = _resolve(source_url, cfg, client)
    log.info("fetching %s", source.uri)
    payload = source.fetch(fetch_dir)
    manifest, image_counts, warnings = _build(cfg, source, payload, fetch_dir, downloads)
    for name, count in image_counts.items():
        log.info("expected image folder %s/: %d images", name, count)

    if reference is not None and _differs(reference, manifest):
        detail = _describe_difference(reference, manifest)
        if not cfg.force:
            raise VerificationError(
                f"{cfg.dataset}/{cfg.scene}: the fetched payload does not match the manifest at "
                f"{where}: {detail}. Nothing was published",
                fix="check the source; if the change is intended, re-run with --force to "
                "replace the manifest",
            )
        log.warning("--force: replacing the manifest at %s (%s)", where, detail)
    elif reference is not None:
        manifest = reference  # same content (maybe another tool version): keep it byte-stable
    if local != manifest:
        write_manifest(manifest_path, manifest)

    result = IngestJobResult(
        run_id=run_id,
        manifest=manifest,
        manifest_path=manifest_path,
        downloads_dir=downloads,
        image_counts=image_counts,
        warnings=warnings,
    )
    raw_prefix = layout.raw_prefix(cfg.dataset, cfg.scene)
    result.s3_uris = {
        "raw": layout.uri(raw_prefix),
        "manifest": layout.uri(manifest_key),
        "logs": layout.uri(layout.logs_prefix(run_id, cfg.dataset, cfg.scene)),
    }
    if not cfg.upload:
        result.dry_run_dir = _write_dry_run(cfg, layout, manifest, downloads)
        log.info("dry run: would-be S3 tree in %s (nothing sent to S3)", result.dry_run_dir)
        return result

    assert client is not None
    items = [
        UploadItem(
            path=downloads / entry["path"],
            key=raw_prefix + entry["path"],
            sha256=entry["sha256"],
            size=int(entry["size"]),
            content_type=mimetypes.guess_type(entry["path"])[0] or "application/octet-stream",
        )
        for entry in manifest["files"]
    ]
    uploader = Uploader(client, cfg.bucket, cfg.transfer, progress)
    log.info("uploading %d files to %s", len(items), result.s3_uris["raw"])
    stats = uploader.upload_all(items)
    result.upload = stats.as_dict()
    # Last: only now is the scene complete.
    result.manifest_published = _publish_manifest(
        client, layout, manifest_key, manifest, remote, force=cfg.force
    )
    return result


def _read_local_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return load_manifest(path)
    except ManifestError as exc:
        log.warning("ignoring unreadable local manifest %s (%s)", path, exc.message)
        return None


def _read_remote_manifest(
    client: BaseClient, layout: S3Layout, key: str
) -> tuple[dict[str, Any], str] | None:
    """``(manifest, etag)`` of the published manifest, or None when there is none."""
    uri = layout.uri(key)
    try:
        response = client.get_object(Bucket=layout.bucket, Key=key)
        body = response["Body"].read()
    except Exception as exc:
        if is_not_found(exc):
            return None
        if error_code(exc) in ("403", "AccessDenied"):
            # Without s3:ListBucket a missing key answers 403; the conditional PUT at the end
            # still refuses to overwrite a manifest that does exist.
            log.warning("cannot read %s (access denied); treating it as absent", uri)
            return None
        raise s3_error(exc, "reading", uri) from exc
    try:
        manifest = json.loads(body)
        validate_manifest(manifest, uri)
    except (ValueError, ManifestError) as exc:
        raise ManifestError(
            f"{uri}: the published manifest is invalid ({exc})",
            fix="re-run with --force to replace it",
        ) from None
    return manifest, str(response.get("ETag", ""))


def _resolve(source_url: str, cfg: IngestJobConfig, client: BaseClient | None) -> Source:
    if source_url.lower().startswith("s3://"):
        return S3ObjectSource(source_url, cfg.s3, client)
    return resolve_source(source_url)


class S3ObjectSource(Source):
    """The job's ``s3://`` payloads: one object (an archive) or, with a trailing ``/``, a prefix.

    Unlike the pipeline's :class:`~splatbench.ingest.s3_source.S3Source` there is no manifest to
    verify against yet: this is where manifests come from.
    """

    kind = "s3"

    def __init__(self, uri: str, settings: S3Settings, client: BaseClient | None) -> None:
        super().__init__(uri)
        self.location = parse_s3_uri(uri)
        self.settings = settings
        self._client = client

    def fetch(self, workdir: Path) -> Path:
        client = self._client if self._client is not None else make_client(self.settings)
        loc = self.location
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            if loc.key and not loc.key.endswith("/"):
                dest = workdir / PurePosixPath(loc.key).name
                client.download_file(loc.bucket, loc.key, str(dest))
                return dest
            dest = workdir / "s3-prefix"
            shutil.rmtree(dest, ignore_errors=True)
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.key):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue  # folder marker objects
                    rel = _check_image_dir(obj["Key"][len(loc.key) :])
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(loc.bucket, obj["Key"], str(target))
        except (S3Error, SourceError):
            raise
        except Exception as exc:
            raise s3_error(exc, "downloading", self.uri) from exc
        if not dest.is_dir():
            raise SourceError(f"no objects under {self.uri}", fix="check --source-url")
        return dest


def _build(
    cfg: IngestJobConfig, source: Source, payload: Path, fetch_dir: Path, downloads: Path
) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    """Extract/copy the payload into ``downloads`` and build its manifest (not yet written)."""
    extracted: Path | None = None
    if payload.is_dir():
        root = payload
    elif detect_archive_format(payload) is not None:
        extracted = fetch_dir / "extracted"
        shutil.rmtree(extracted, ignore_errors=True)
        log.info("extracting %s", payload.name)
        safe_extract(payload, extracted, cfg.limits)
        root = extracted
    else:
        raise SourceError(
            f"payload of {source.uri!r} is neither a directory nor a zip/tar archive",
            fix="point --source-url at a .zip/.tar[.gz|.bz2|.xz] archive or a directory",
        )
    base = _locate_base(root, cfg.expected_image_dirs, source)
    try:
        with staging_dir(downloads) as stage:
            hashes = _copy_tree(base, stage, move=extracted is not None)
            image_counts, sizes = _check_expected_dirs(cfg, stage, source)
    finally:
        if extracted is not None:
            shutil.rmtree(extracted, ignore_errors=True)
    if base == payload:
        # Same formula as describe_payload(), from the hashes just taken of the copies.
        lines = "".join(f"{sha} {size} {rel}\n" for rel, (sha, size) in sorted(hashes.items()))
        payload_record = {
            "type": "directory",
            "sha256": hashlib.sha256(lines.encode("utf-8", "surrogateescape")).hexdigest(),
            "size": sum(size for _, size in hashes.values()),
        }
    else:
        payload_record = describe_payload(payload)
    entries = []
    for rel, (sha, size) in hashes.items():
        entry: dict[str, Any] = {"path": rel, "size": size, "sha256": sha}
        if rel in sizes:
            entry["width"], entry["height"] = sizes[rel]
        entries.append(entry)
    licenses = _licenses(downloads)
    warnings = []
    if not licenses and cfg.license_url is None:
        warnings.append(
            f"{cfg.dataset}/{cfg.scene}: no license file in the payload and no --license-url; "
            "check the data's terms before publishing"
        )
        log.warning(warnings[-1])
    manifest = build_manifest(
        scene=cfg.scene,
        dataset=cfg.dataset,
        source={
            **source.describe(),
            "image_dir": cfg.expected_image_dirs[0],
            "expected_image_dirs": list(cfg.expected_image_dirs),
            "payload": payload_record,
        },
        license={"url": cfg.license_url, "files": licenses},
        files=entries,
    )
    return manifest, image_counts, warnings


def _locate_base(root: Path, image_dirs: tuple[str, ...], source: Source) -> Path:
    """The payload root, or its single top-level folder when the image folders are in there."""
    if any((root / d).is_dir() for d in image_dirs):
        return root
    top = [
        p for p in root.iterdir() if not p.name.startswith(".") and p.name not in _ARCHIVER_NOISE
    ]
    if len(top) == 1 and top[0].is_dir() and any((top[0] / d).is_dir() for d in image_dirs):
        return top[0]
    return root  # _check_expected_dirs reports what is missing


def _copy_tree(src: Path, dst: Path, *, move: bool) -> dict[str, tuple[str, int]]:
    """Copy (or move, for our own extraction) every file; return ``{rel: (sha256, size)}``.

    Copies are hashed while they are written, in one read of the source; moved files are
    hashed after the rename (no copy at all).
    """
    hashes: dict[str, tuple[str, int]] = {}
    files = sorted(
        (p for p in src.rglob("*") if p.is_file() and _NOISE.isdisjoint(p.relative_to(src).parts)),
        key=lambda p: p.relative_to(src).as_posix(),
    )
    for path in files:
        rel = path.relative_to(src).as_posix()
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        if move:
            os.replace(path, target)
            with open(target, "rb") as fh:
                while chunk := fh.read(_COPY_CHUNK):
                    digest.update(chunk)
        else:
            with open(path, "rb") as fin, open(target, "xb") as fout:
                while chunk := fin.read(_COPY_CHUNK):
                    digest.update(chunk)
                    fout.write(chunk)
        hashes[rel] = (digest.hexdigest(), target.stat().st_size)
    return hashes


_NOISE = frozenset({"__MACOSX", ".DS_Store"})


def _check_expected_dirs(
    cfg: IngestJobConfig, root: Path, source: Source
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Count (and decode) the images of every expected folder; all must have some."""
    counts: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    missing = []
    for rel in cfg.expected_image_dirs:
        folder = root / rel
        images = find_images(folder) if folder.is_dir() else []
        counts[rel] = len(images)
        if not images:
            missing.append(rel)
            continue
        if cfg.verify_images:
            infos = verify_images(images, folder, where=f"{rel!r} of {source.uri!r}")
            for info in infos:
                sizes[f"{rel}/{info.path}"] = (info.width, info.height)
    if missing:
        found = sorted(p.name + "/" for p in root.iterdir() if p.is_dir()) or ["no folders"]
        raise SourceError(
            f"{source.uri!r}: expected image folder(s) {', '.join(missing)} missing or without "
            f"images (found: {', '.join(found)}; images per expected folder: {counts})",
            fix="check --expected-image-dirs against the payload's layout",
        )
    return counts, sizes


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when the manifests describe different data (the tool version does not count)."""
    return {k: v for k, v in old.items() if k != "tool"} != {
        k: v for k, v in new.items() if k != "tool"
    }


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    before = {f["path"]: f for f in old["files"]}
    after = {f["path"]: f for f in new["files"]}
    changed = sorted(p for p in before.keys() & after.keys() if before[p] != after[p])
    parts = []
    if changed:
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        parts.append(f"{len(changed)} file(s) differ in sha256/size ({shown})")
    if missing := sorted(before.keys() - after.keys()):
        parts.append(f"{len(missing)} file(s) missing ({', '.join(missing[:5])})")
    if extra := sorted(after.keys() - before.keys()):
        parts.append(f"{len(extra)} new file(s) ({', '.join(extra[:5])})")
    for key in ("source", "license", "scene", "dataset"):
        if old.get(key) != new.get(key):
            parts.append(f"{key} differs")
    return "; ".join(parts) or "content differs"


def _write_dry_run(
    cfg: IngestJobConfig, layout: S3Layout, manifest: dict[str, Any], downloads: Path
) -> Path:
    """Mirror the would-be S3 keys under ``<output-dir>/s3_dry_run/`` (hard links when possible)."""
    root = Path(cfg.output_dir) / "s3_dry_run"
    raw = root / layout.raw_prefix(cfg.dataset, cfg.scene)
    with staging_dir(raw) as stage:
        for entry in manifest["files"]:
            src, dst = downloads / entry["path"], stage / entry["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
    atomic_write_json(root / layout.manifest_key(cfg.dataset, cfg.scene), manifest)
    return root / layout.prefix if layout.prefix else root


def _publish_manifest(
    client: BaseClient,
    layout: S3Layout,
    key: str,
    manifest: dict[str, Any],
    remote: tuple[dict[str, Any], str] | None,
    *,
    force: bool,
) -> bool:
    """PUT the manifest unless the identical one is there; True when it was written."""
    uri = layout.uri(key)
    if remote is not None and not _differs(remote[0], manifest):
        log.info("manifest %s unchanged", uri)
        return False
    body = (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    extra: dict[str, Any] = {}
    if remote is None:
        extra["IfNoneMatch"] = "*"  # someone else published meanwhile: do not overwrite
    elif force and remote[1]:
        extra["IfMatch"] = remote[1]  # overwrite exactly the version we compared
    try:
        client.put_object(
            Bucket=layout.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            Metadata={SHA256_META: hashlib.sha256(body).hexdigest()},
            **extra,
        )
    except Exception as exc:
        if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise ManifestError(
                f"{uri} was published by someone else while this job ran; not overwritten",
                fix="re-run to compare with the new manifest (use --force to replace it)",
            ) from None
        raise s3_error(exc, "publishing", uri) from exc
    log.info("published manifest %s", uri)
    return True


def _publish_logs(
    cfg: IngestJobConfig,
    run_id: str,
    log_dir: Path,
    client: BaseClient,
    result: IngestJobResult,
) -> None:
    layout = S3Layout(cfg.bucket, cfg.prefix)
    prefix = layout.logs_prefix(run_id, cfg.dataset, cfg.scene)
    for path in sorted(log_dir.iterdir()):
        key = prefix + path.name
        # Scrubbed again on the way out: the log file is the one artefact that holds free text.
        data = scrub(path.read_text(encoding="utf-8", errors="replace")).encode("utf-8")
        try:
            client.put_object(Bucket=cfg.bucket, Key=key, Body=data, ContentType="text/plain")
        except Exception as exc:
            raise s3_error(exc, "uploading logs to", layout.uri(key)) from exc


def _dry_run_logs(
    cfg: IngestJobConfig, run_id: str, log_dir: Path, result: IngestJobResult
) -> None:
    layout = S3Layout(cfg.bucket, cfg.prefix)
    dest = Path(cfg.output_dir) / "s3_dry_run" / layout.logs_prefix(run_id, cfg.dataset, cfg.scene)
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(log_dir.iterdir()):
        shutil.copyfile(path, dest / path.name)


@contextlib.contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """Send ``splatbench`` log records to ``path`` (scrubbed) for the duration of the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretScrubFilter())
    logger = logging.getLogger("splatbench")
    previous = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    except Exception as exc:
        log.error("run failed: %s", exc)
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()
