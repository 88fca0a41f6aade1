"""``http(s)://`` sources: Range resume after a dropped connection, retries, clear failures."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_fixture import make_scene_payload, zip_dir

from splatbench.cloud.ingest_job import IngestJobConfig, run_ingest_job
from splatbench.errors import SourceError
from splatbench.ingest.http_source import HttpSettings, HttpSource
from splatbench.ingest.sources import resolve_source

FAST = HttpSettings(attempts=4, backoff_seconds=0.01, max_wait_seconds=0.05, timeout_seconds=10)


class _Server:
    """Serves one payload; can cut the first N responses short or ignore Range."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.cut_first = 0
        self.ignore_range = False
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._respond(head=True)

            def do_GET(self) -> None:
                self._respond(head=False)

            def _respond(self, head: bool) -> None:
                server.requests.append(dict(self.headers))
                if not self.path.startswith("/scene.zip"):
                    self.send_error(404)
                    return
                data, start = server.payload, 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                honour = match and not server.ignore_range
                if honour and self.headers.get("If-Range") not in (None, '"v1"'):
                    honour = False
                if honour:
                    start = int(match.group(1))  # type: ignore[union-attr]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("ETag", '"v1"')
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if head:
                    return
                body = data[start:]
                if server.cut_first > 0:
                    server.cut_first -= 1
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def archive(tmp_path: Path) -> bytes:
    return zip_dir(make_scene_payload(tmp_path / "src"), tmp_path / "garden.zip").read_bytes()


@pytest.fixture
def server(archive: bytes) -> Iterator[_Server]:
    srv = _Server(archive)
    yield srv
    srv.httpd.shutdown()


def test_dropped_connection_resumes_with_range(server: _Server, tmp_path: Path) -> None:
    server.cut_first = 2
    path = HttpSource(f"{server.url}/scene.zip", FAST).fetch(tmp_path / "w")
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(server.payload).digest()
    ranges = [r.get("Range") for r in server.requests]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert server.requests[1].get("If-Range") == '"v1"'


def test_server_without_range_support_restarts_cleanly(server: _Server, tmp_path: Path) -> None:
    server.cut_first = 1
    server.ignore_range = True
    path = HttpSource(f"{server.url}/scene.zip", FAST).fetch(tmp_path / "w")
    assert path.read_bytes() == server.payload


def test_complete_download_is_reused(server: _Server, tmp_path: Path) -> None:
    source = HttpSource(f"{server.url}/scene.zip", FAST)
    source.fetch(tmp_path / "w")
    before = len(server.requests)
    source.fetch(tmp_path / "w")
    assert len(server.requests) == before + 1  # one HEAD to check the validator, no GET


def test_client_errors_fail_fast_and_name_the_url(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="HTTP 404") as info:
        HttpSource(f"{server.url}/missing.zip?X-Amz-Signature=SIGSECRET", FAST).fetch(tmp_path)
    assert len(server.requests) == 1
    assert "SIGSECRET" not in str(info.value)


def test_job_from_http_source_records_redacted_url(server: _Server, tmp_path: Path) -> None:
    assert isinstance(resolve_source(f"{server.url}/scene.zip"), HttpSource)
    result = run_ingest_job(
        IngestJobConfig(
            dataset="mipnerf360",
            scene="garden",
            bucket="bench-data",
            output_dir=tmp_path / "out",
            source_url=f"{server.url}/scene.zip?X-Amz-Signature=SIGSECRET&X-Amz-Expires=60",
            expected_image_dirs=("images",),
        )
    )
    source = result.manifest["source"]
    assert source["kind"] == "http"
    assert "SIGSECRET" not in source["uri"] and "X-Amz-Signature=REDACTED" in source["uri"]
    assert source["payload"]["sha256"] == hashlib.sha256(server.payload).hexdigest()
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert b"SIGSECRET" not in path.read_bytes(), path
