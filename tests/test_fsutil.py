"""Atomic writes and staging directories: nothing half-written, normal permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from splatbench.fsutil import atomic_write_json, sha256_file, staging_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_json_is_stable_and_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "m" / "metrics.json"
    atomic_write_json(target, {"b": 1, "a": [1.5, None]})
    assert target.read_text() == json.dumps({"a": [1.5, None], "b": 1}, indent=2) + "\n"
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(target) == 0o666 & ~umask  # not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temp left


def test_atomic_write_rejects_nan_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"psnr": 30.0})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"psnr": float("nan")})
    assert json.loads(target.read_text()) == {"psnr": 30.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_staging_dir_swaps_in_on_success_and_keeps_old_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with staging_dir(final) as stage:
        (stage / "a.txt").write_text("one")
    assert (final / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError), staging_dir(final) as stage:
        (stage / "a.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert (final / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_sha256_file_streams(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert sha256_file(f, chunk_bytes=1) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
