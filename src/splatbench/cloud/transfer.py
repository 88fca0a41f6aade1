"""Idempotent, resumable, concurrent S3 uploads and verified downloads.

Why not ``boto3``'s ``upload_file``: it cannot skip objects that are already there, and an
interrupted multipart upload starts again from byte 0. Here:

* every object carries its sha256 in user metadata (``x-amz-meta-sha256``); an object whose
  metadata and size match is skipped, so re-running a job transfers nothing new;
* large files go up as multipart uploads; on a rerun the newest unfinished upload of the key is
  found with ``ListMultipartUploads`` and only parts whose size and MD5 (the part ETag) differ
  are sent again, so resuming works across machines and containers, with no local state;
* files and parts are sent from thread pools; botocore retries each call (standard mode), and a
  failed file is retried again from its resumable state.

Memory stays flat: parts are streamed from the file (a seekable window per part), never held
whole in memory, so peak memory does not grow with file or part size.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from splatbench.cloud.s3 import S3Error, VerificationError, is_not_found, s3_error
from splatbench.fsutil import sha256_file

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger(__name__)

MIB = 1 << 20
S3_MIN_PART = 5 * MIB  # S3's minimum size of every part but the last
S3_MAX_PARTS = 10_000
SHA256_META = "sha256"  # stored as x-amz-meta-sha256


@dataclass(frozen=True)
class TransferSettings:
    """Tuning of uploads and downloads.

    Attributes:
        multipart_threshold: files of at least this size use multipart upload.
        part_size: bytes per part (raised automatically to stay under 10,000 parts).
        max_workers: concurrent file uploads, and separately concurrent parts.
        file_attempts: attempts per file on top of botocore's per-call retries; each attempt
            resumes the multipart upload where the previous one stopped.
        backoff_seconds: first wait between file attempts (doubled each time).
    """

    multipart_threshold: int = 64 * MIB
    part_size: int = 16 * MIB
    max_workers: int = 8
    file_attempts: int = 3
    backoff_seconds: float = 1.0

    def part_size_for(self, size: int) -> int:
        part = max(self.part_size, S3_MIN_PART)
        while -(-size // part) > S3_MAX_PARTS:
            part *= 2
        return part


@dataclass(frozen=True)
class UploadItem:
    """One local file and where it goes. ``sha256`` is known (from the manifest)."""

    path: Path
    key: str
    sha256: str
    size: int
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class TransferEvent:
    """Progress callback payload: ``kind`` is ``skipped``, ``part``, ``uploaded``."""

    kind: str
    key: str
    nbytes: int = 0
    part_number: int = 0


@dataclass
class UploadStats:
    """What an upload run did (for logs, results and the idempotence tests)."""

    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    parts_sent: int = 0
    parts_reused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "uploaded": len(self.uploaded),
            "skipped": len(self.skipped),
            "bytes_sent": self.bytes_sent,
            "parts_sent": self.parts_sent,
            "parts_reused": self.parts_reused,
        }


ProgressFn = Callable[[TransferEvent], None]


def remote_sha256(client: BaseClient, bucket: str, key: str) -> tuple[str | None, int] | None:
    """``(sha256 metadata or None, size)`` of an object, or None when it does not exist."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise s3_error(exc, "checking", f"s3://{bucket}/{key}") from exc
    return head.get("Metadata", {}).get(SHA256_META), int(head["ContentLength"])


class Uploader:
    """Uploads :class:`UploadItem` s to one bucket, skipping what is already there."""

    def __init__(
        self,
        client: BaseClient,
        bucket: str,
        settings: TransferSettings | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.settings = settings or TransferSettings()
        self.progress = progress
        self.stats = UploadStats()

    def _emit(self, event: TransferEvent) -> None:
        if self.progress is not None:
            self.progress(event)

    def upload_all(self, items: Sequence[UploadItem]) -> UploadStats:
        """Upload every item (concurrently); raises the first failure after all settle."""
        workers = max(1, self.settings.max_workers)
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="s3-file") as files,
            ThreadPoolExecutor(workers, thread_name_prefix="s3-part") as parts,
        ):
            # Largest first: the long multipart uploads start early and small files fill gaps.
            ordered = sorted(items, key=lambda item: -item.size)
            futures = [files.submit(self.upload_one, item, parts) for item in ordered]
            _raise_first(futures)
        return self.stats

    def upload_one(self, item: UploadItem, parts: ThreadPoolExecutor | None = None) -> bool:
        """Upload one file unless an identical object exists; True when bytes were sent."""
        uri = f"s3://{self.bucket}/{item.key}"
        existing = remote_sha256(self.client, self.bucket, item.key)
        if existing == (item.sha256, item.size):
            self.stats.skipped.append(item.key)
            self._emit(TransferEvent("skipped", item.key, item.size))
            return False
        attempts = max(1, self.settings.file_attempts)
        for attempt in range(1, attempts + 1):
            try:
                if item.size >= self.settings.multipart_threshold:
                    self._multipart(item, parts)
                else:
                    self._single(item)
                break
            except S3Error:
                raise
            except Exception as exc:
                if attempt == attempts:
                    raise s3_error(exc, "uploading", uri) from exc
                wait = self.settings.backoff_seconds * 2 ** (attempt - 1)
                log.warning("upload of %s failed (%s); retry %d in %.1fs", uri, exc, attempt, wait)
                time.sleep(wait)
        self.stats.uploaded.append(item.key)
        self._emit(TransferEvent("uploaded", item.key, item.size))
        return True

    def _single(self, item: UploadItem) -> None:
        with open(item.path, "rb") as fh:
            self.client.put_object(
                Bucket=self.bucket,
                Key=item.key,
                Body=fh,
                ContentLength=item.size,
                ContentType=item.content_type,
                Metadata={SHA256_META: item.sha256},
            )
        self.stats.add(bytes_sent=item.size)

    def _multipart(
        self, item: UploadItem, parts: ThreadPoolExecutor | None, *, resume: bool = True
    ) -> None:
        part_size = self.settings.part_size_for(item.size)
        upload_id, existing = self._resumable_upload(item) if resume else (None, {})
        resumed = upload_id is not None
        if upload_id is None:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=item.key,
                ContentType=item.content_type,
                Metadata={SHA256_META: item.sha256},
            )["UploadId"]
        ranges = [
            (number, offset, min(part_size, item.size - offset))
            for number, offset in enumerate(range(0, item.size, part_size), start=1)
        ]

        def send(number: int, offset: int, length: int) -> dict[str, Any]:
            old = existing.get(number)
            if old is not None and old[0] == length:
                # S3 part ETags are the part's MD5 (without SSE-KMS), which is how a part
                # uploaded by an earlier, interrupted run is recognised.
                etag = _md5_range(item.path, offset, length)
                if old[1] == etag:
                    self.stats.add(parts_reused=1)
                    return {"PartNumber": number, "ETag": f'"{etag}"'}
            # A window onto the file rather than bytes in memory: botocore streams it (and
            # seeks back to retry), so memory stays flat whatever the part size.
            with open(item.path, "rb") as fh:
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=item.key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=FileWindow(fh, offset, length),
                    ContentLength=length,
                )
            self.stats.add(parts_sent=1, bytes_sent=length)
            self._emit(TransferEvent("part", item.key, length, number))
            return {"PartNumber": number, "ETag": response["ETag"]}

        if parts is None:
            completed = [send(*r) for r in ranges]
        else:
            futures = [parts.submit(send, *r) for r in ranges]
            completed = _raise_first(futures)
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=item.key,
            UploadId=upload_id,
            MultipartUpload={"Parts": completed},
        )
        # A resumed upload keeps the metadata given when it was created. If that upload was
        # started for other content (the file changed between runs), the parts were all
        # replaced but the sha256 metadata would be stale: detect it and upload afresh.
        stale = resumed and remote_sha256(self.client, self.bucket, item.key) != (
            item.sha256,
            item.size,
        )
        if stale:
            log.warning("%s: resumed upload had stale metadata; uploading afresh", item.key)
            self._abort_uploads(item.key)
            self._multipart(item, parts, resume=False)
        self._abort_uploads(item.key)

    def _pending_uploads(self, key: str) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            uploads.extend(u for u in page.get("Uploads", []) if u["Key"] == key)
        return uploads

    def _resumable_upload(self, item: UploadItem) -> tuple[str | None, dict[int, tuple[int, str]]]:
        """The newest unfinished upload of ``item.key`` and its parts ``{n: (size, md5)}``."""
        try:
            uploads = self._pending_uploads(item.key)
        except Exception as exc:
            # Listing needs s3:ListBucketMultipartUploads; without it we just start afresh.
            log.info("cannot list unfinished uploads of %s (%s); not resuming", item.key, exc)
            return None, {}
        if not uploads:
            return None, {}
        newest = max(uploads, key=lambda u: u["Initiated"])
        parts: dict[int, tuple[int, str]] = {}
        try:
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(
                Bucket=self.bucket, Key=item.key, UploadId=newest["UploadId"]
            ):
                for part in page.get("Parts", []):
                    etag = str(part["ETag"]).strip('"')
                    parts[int(part["PartNumber"])] = (int(part["Size"]), etag)
        except Exception as exc:
            if is_not_found(exc):
                return None, {}
            raise
        log.info("resuming upload of %s: %d parts already there", item.key, len(parts))
        return str(newest["UploadId"]), parts

    def _abort_uploads(self, key: str) -> None:
        """Abort leftover unfinished uploads of ``key`` (they would only cost storage)."""
        with contextlib.suppress(Exception):
            for upload in self._pending_uploads(key):
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                    )


class FileWindow(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes of ``fh`` starting at ``offset``."""

    def __init__(self, fh: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        self._fh, self._start, self._len, self._pos = fh, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._len}[whence]
        self._pos = min(max(base + pos, 0), self._len)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        left = self._len - self._pos
        n = left if size is None or size < 0 else min(size, left)
        if n <= 0:
            return b""
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(n)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __len__(self) -> int:
        return self._len


def _md5_range(path: Path, offset: int, length: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        window = FileWindow(fh, offset, length)
        while chunk := window.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _raise_first(futures: Sequence[Future[Any]]) -> list[Any]:
    """Results in order, or the first exception once running work has settled.

    After a failure the futures not yet started are cancelled: when the endpoint is gone,
    every queued file would otherwise wait out its own retries before the job can fail.
    """
    for done in as_completed(futures):
        if done.exception() is not None:
            for future in futures:
                future.cancel()
            wait(futures)
            raise done.exception()  # type: ignore[misc]
    return [future.result() for future in futures]


def download_verified(
    client: BaseClient,
    bucket: str,
    key: str,
    dest: Path,
    *,
    sha256: str,
    size: int,
    transfer_config: Any = None,
) -> None:
    """Download ``s3://bucket/key`` to ``dest`` and check its size and sha256.

    Written to a temporary sibling first, so a mismatch or failure never leaves a file at
    ``dest``.

    Raises:
        VerificationError: the object does not match (it was modified after publishing).
        S3Error: the download failed.
    """
    uri = f"s3://{bucket}/{key}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.download")
    try:
        try:
            client.download_file(bucket, key, str(tmp), Config=transfer_config)
        except Exception as exc:
            raise s3_error(exc, "downloading", uri) from exc
        actual_size = tmp.stat().st_size
        if actual_size != size:
            raise VerificationError(
                f"{uri}: size is {actual_size} bytes, the manifest says {size}",
                fix="the object was modified after publishing; re-publish the scene with "
                "`splatbench ingest --upload --force` from its original source",
            )
        digest = sha256_file(tmp)
        if digest != sha256:
            raise VerificationError(
                f"{uri}: sha256 {digest} differs from the manifest's {sha256}",
                fix="the object was modified after publishing; re-publish the scene with "
                "`splatbench ingest --upload --force` from its original source",
            )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
