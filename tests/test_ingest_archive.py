"""Safe extraction: real zips and tars built in tmp_path, each with one unsafe feature."""

from __future__ import annotations

import io
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from splatbench.errors import ArchiveError
from splatbench.ingest.archive import ExtractLimits, detect_archive_format, safe_extract


def make_zip(path: Path, members: list[tuple[str, bytes]], **kwargs: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names; tests want them
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **kwargs) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str) -> Path:
    with tarfile.open(path, mode) as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def leftovers(parent: Path) -> list[str]:
    """Names of staging directories left beside the destination."""
    return sorted(p.name for p in parent.iterdir() if p.name.endswith(".extracting"))


def test_extracts_zip_and_tar_gz_by_content_not_name(tmp_path: Path) -> None:
    members = [("scene/images/a.png", b"A" * 10), ("scene/b.txt", b"hello")]
    zip_path = make_zip(tmp_path / "x.tar.gz", members)  # misnamed on purpose
    tar_path = make_tar(tmp_path / "y.zip", members, "w:gz")
    assert detect_archive_format(zip_path) == "zip"
    assert detect_archive_format(tar_path) == "tar.gz"
    for archive in (zip_path, tar_path):
        dest = tmp_path / f"out-{archive.name}"
        files = safe_extract(archive, dest)
        assert files == [dest / "scene/b.txt", dest / "scene/images/a.png"]
        assert (dest / "scene/images/a.png").read_bytes() == b"A" * 10


@pytest.mark.parametrize("mode", ["w", "w:bz2", "w:xz"])
def test_extracts_other_tar_compressions(tmp_path: Path, mode: str) -> None:
    archive = make_tar(tmp_path / "a.bin", [("./d/f.txt", b"data")], mode)
    files = safe_extract(archive, tmp_path / "out")
    assert [f.relative_to(tmp_path / "out").as_posix() for f in files] == ["d/f.txt"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil", "'..'"),
        ("ok/../../evil", "'..'"),
        ("/etc/evil", "absolute"),
        ("C:/evil", "drive letter"),
        ("ok\\..\\..\\evil", "backslash"),
    ],
)
def test_zip_path_escapes_are_rejected_and_nothing_is_left(
    tmp_path: Path, name: str, problem: str
) -> None:
    archive = make_zip(tmp_path / "bad.zip", [("good.txt", b"fine"), (name, b"pwned")])
    dest = tmp_path / "out" / "dest"
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, dest)
    message = str(info.value)
    assert str(archive) in message
    assert repr(name) in message
    assert problem in message
    assert not dest.exists()
    assert leftovers(dest.parent) == []
    assert not (tmp_path / "evil").exists()


def test_tar_absolute_path_is_rejected(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "bad.tar", [("/tmp/evil", b"x")], "w")
    with pytest.raises(ArchiveError, match="absolute path"):
        safe_extract(archive, tmp_path / "out")


def test_zip_symlink_member_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/a.png", b"x")
        link = zipfile.ZipInfo("images/b.png")
        link.create_system = 3  # Unix: mode lives in external_attr's high 16 bits
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, tmp_path / "out")
    assert "'images/b.png'" in str(info.value)
    assert "symlink" in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("tar_type", "expected"),
    [
        (tarfile.SYMTYPE, "symlink"),
        (tarfile.LNKTYPE, "hardlink"),
        (tarfile.FIFOTYPE, "FIFO"),
        (tarfile.CHRTYPE, "character device"),
    ],
)
def test_tar_links_and_special_files_are_rejected(
    tmp_path: Path, tar_type: bytes, expected: str
) -> None:
    special = tarfile.TarInfo("images/b.png")
    special.type = tar_type
    special.linkname = "/etc/passwd" if tar_type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    archive = make_tar(tmp_path / "bad.tar.gz", [("images/a.png", b"x"), special], "w:gz")
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, tmp_path / "out")
    assert "'images/b.png'" in str(info.value)
    assert expected in str(info.value)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("second", ["a/x.png", "./a/x.png", "A/X.png"])
def test_duplicate_members_are_rejected(tmp_path: Path, second: str) -> None:
    archive = make_zip(tmp_path / "dup.zip", [("a/x.png", b"1"), (second, b"2")])
    with pytest.raises(ArchiveError, match="duplicate"):
        safe_extract(archive, tmp_path / "out")


def test_file_and_directory_with_same_name_are_rejected(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "clash.tar", [("a/b", b"1"), ("a", b"2")], "w")
    with pytest.raises(ArchiveError, match="'a'"):
        safe_extract(archive, tmp_path / "out")


def test_too_many_members(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "many.zip", [(f"f{i}.txt", b"x") for i in range(5)])
    with pytest.raises(ArchiveError, match="limit of 3 members"):
        safe_extract(archive, tmp_path / "out", ExtractLimits(max_files=3))
    assert len(safe_extract(archive, tmp_path / "ok", ExtractLimits(max_files=5))) == 5


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_too_large_total(tmp_path: Path, kind: str) -> None:
    members = [(f"f{i}.bin", bytes(range(256)) * 2) for i in range(3)]  # 3 x 512 bytes
    if kind == "zip":
        archive = make_zip(tmp_path / "big.zip", members)
    else:
        archive = make_tar(tmp_path / "big.tgz", members, "w:gz")
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, tmp_path / "out", ExtractLimits(max_total_bytes=1000))
    assert "'f1.bin'" in str(info.value)  # the member that crosses the limit
    assert "1000 bytes" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_zip_bomb_ratio_is_rejected(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(8 << 20))])
    assert archive.stat().st_size < 100_000  # the premise: 8 MiB of zeros deflate to ~8 KiB
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, tmp_path / "out")
    assert "decompression bomb" in str(info.value)
    assert "'zeros.bin'" in str(info.value)


def test_tar_gz_bomb_ratio_is_rejected(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "bomb.tgz", [("zeros.bin", bytes(8 << 20))], "w:gz")
    with pytest.raises(ArchiveError, match="decompression bomb"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_zip_is_corrupt(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "t.zip", [("a.bin", bytes(range(256)) * 64)])
    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(ArchiveError, match="corrupt or truncated zip"):
        safe_extract(archive, tmp_path / "out")


def test_zip_with_bad_crc_is_corrupt(tmp_path: Path) -> None:
    archive = tmp_path / "crc.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", b"0123456789" * 10)
    data = archive.read_bytes().replace(b"0123456789", b"0123456780", 1)
    archive.write_bytes(data)
    with pytest.raises(ArchiveError, match="corrupt"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cut", ["data", "header", "boundary", "gzip"])
def test_truncated_tar_is_corrupt(tmp_path: Path, cut: str) -> None:
    members = [("a.bin", b"a" * 3000), ("b.bin", b"b" * 3000)]
    mode = "w:gz" if cut == "gzip" else "w"
    archive = make_tar(tmp_path / "t.tar", members, mode)
    data = archive.read_bytes()
    # Layout: header a (512) + data a (3072) + header b (512) + data b (3072) + end marker.
    end = {"data": 2000, "header": 3584 + 200, "boundary": 3584, "gzip": len(data) - 20}[cut]
    archive.write_bytes(data[:end])
    with pytest.raises(ArchiveError, match="truncated"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "scene.zip"
    junk.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ArchiveError, match="not a zip or tar archive"):
        safe_extract(junk, tmp_path / "out")


def test_non_empty_destination_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", [("a.txt", b"a")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="not empty"):
        safe_extract(archive, dest)
    assert (dest / "keep.txt").read_text() == "mine"
