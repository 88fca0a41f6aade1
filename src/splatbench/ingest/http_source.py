"""``http(s)://`` sources: resumable downloads with Range requests and retries with backoff.

A download goes to ``<name>.part`` beside its destination, with the server's validator (ETag
or Last-Modified) in ``<name>.part.json``. After a dropped connection, the next attempt (or
the next run, when the work directory is kept, as the ingest job does) asks for
``Range: bytes=<have>-`` with ``If-Range: <validator>``; a server that answers 200 instead of
206 (no Range support, or the file changed) restarts from byte 0, so bytes from two versions
are never stitched together. Nothing but the redacted URI appears in messages.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from splatbench.errors import SourceError
from splatbench.ingest.sources import Source

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Client errors that retrying cannot fix; everything else (5xx, 408, 429, resets) is retried.
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpSettings:
    """Retry policy: ``attempts`` tries, waiting ``backoff * 2**n`` (+ jitter, capped)."""

    attempts: int = 6
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 30.0
    timeout_seconds: float = 60.0


class HttpSource(Source):
    """A payload (usually a zip/tar archive) at an ``http://`` or ``https://`` URL."""

    kind = "http"

    def __init__(self, uri: str, settings: HttpSettings | None = None) -> None:
        super().__init__(uri)
        self._url = uri  # may hold a presigned query; only self.uri (redacted) is ever shown
        self.settings = settings or HttpSettings()
        parts = urlsplit(uri)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise SourceError(f"{self.uri!r} is not an http(s) URL", fix="use https://host/path")
        if parts.username or parts.password:
            raise SourceError(
                f"{self.uri!r}: credentials in http(s) URLs are not supported",
                fix="use a presigned URL or download the file and give its local path",
            )
        name = PurePosixPath(unquote(parts.path)).name
        self.filename = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "payload"

    def fetch(self, workdir: Path) -> Path:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        dest = workdir / self.filename
        if dest.is_file() and self._complete_copy_is_current(dest):
            log.info("%s: reusing the complete download %s", self.uri, dest)
            return dest
        part = dest.with_name(dest.name + ".part")
        state = dest.with_name(dest.name + ".part.json")
        last_error: BaseException | None = None
        for attempt in range(self.settings.attempts):
            if attempt:
                wait = min(
                    self.settings.max_wait_seconds,
                    self.settings.backoff_seconds * 2 ** (attempt - 1),
                )
                wait *= 1 + random.random() / 4  # jitter: parallel jobs do not retry in lockstep
                log.warning("%s: %s; retry %d in %.1fs", self.uri, last_error, attempt, wait)
                time.sleep(wait)
            try:
                self._download(part, state)
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRYABLE_STATUS:
                    raise SourceError(
                        f"{self.uri}: HTTP {exc.code} {exc.reason}",
                        fix="check the URL (a presigned URL may have expired)",
                    ) from None
                last_error = exc
                continue
            except (OSError, http.client.HTTPException, _Incomplete) as exc:
                last_error = exc
                continue
            os.replace(part, dest)
            os.replace(state, dest.with_name(dest.name + ".json"))
            return dest
        raise SourceError(
            f"{self.uri}: download failed after {self.settings.attempts} attempts "
            f"({type(last_error).__name__}: {last_error})",
            fix="check the network and re-run; the download resumes where it stopped",
        )

    def _complete_copy_is_current(self, dest: Path) -> bool:
        """A finished download is reused when the server still reports the same validator."""
        meta = _read_state(dest.with_name(dest.name + ".json"))
        if not meta.get("validator") or meta.get("size") != dest.stat().st_size:
            return False
        try:
            request = urllib.request.Request(self._url, method="HEAD")
            with urllib.request.urlopen(request, timeout=self.settings.timeout_seconds) as resp:
                return bool(_validator(resp.headers) == meta["validator"])
        except (OSError, http.client.HTTPException):
            return False

    def _download(self, part: Path, state_path: Path) -> None:
        state = _read_state(state_path)
        have = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": "splatbench-ingest", "Accept-Encoding": "identity"}
        if have and state.get("validator"):
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = state["validator"]
        elif have:
            have = 0  # no validator: cannot prove the partial bytes are the same file
        request = urllib.request.Request(self._url, headers=headers)
        try:
            resp = urllib.request.urlopen(request, timeout=self.settings.timeout_seconds)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have and have == state.get("size"):
                return  # the previous attempt had everything but the rename
            if exc.code == 416:
                part.unlink(missing_ok=True)  # stale partial file; next attempt starts over
            raise
        with resp:
            if resp.status == 206:
                start, total = _content_range(resp.headers.get("Content-Range", ""))
                if start != have:
                    part.unlink(missing_ok=True)
                    raise _Incomplete(f"server resumed at byte {start}, expected {have}")
                mode = "ab"
            else:
                have, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            validator = _validator(resp.headers)
            with open(state_path, "w", encoding="utf-8") as fh:
                json.dump({"validator": validator, "size": total}, fh)
            written = have
            with open(part, mode) as out:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
        if total is not None and written != total:
            raise _Incomplete(f"connection closed at byte {written} of {total}")


class _Incomplete(Exception):
    """The server stopped early; the next attempt resumes."""


def _validator(headers: Any) -> str | None:
    # A weak ETag ("W/...") cannot be used with If-Range; Last-Modified is the fallback.
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    modified = headers.get("Last-Modified")
    return str(modified) if modified else None


def _content_range(value: str) -> tuple[int, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value)
    if match is None:
        raise _Incomplete(f"unusable Content-Range {value!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _read_state(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    return {}
