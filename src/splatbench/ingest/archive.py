"""Safe extraction of zip and tar archives from untrusted sources.

Every member is checked before a byte of it is written: no absolute paths, ``..`` escapes, drive
letters or backslashes, no links, devices or FIFOs, no duplicates (case-insensitively, so a scene
extracts the same on macOS), and limits on member count, total size and compression ratio.
Sizes are enforced on the bytes actually produced while streaming, not only on what the headers
declare. Everything is written into a staging directory beside ``dest`` and renamed into place
only when the whole archive has passed, so a failure never leaves a partial extraction.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from splatbench.errors import ArchiveError

GIB = 1 << 30
MIB = 1 << 20
_COPY_CHUNK = 1 << 20
# Bytes a tar stream may carry after its end-of-archive marker. Writers pad to their blocking
# factor (10 KiB for GNU tar, up to 1 MiB with large -b); anything beyond this is suspicious.
_MAX_TAR_TRAILER = 16 * MIB

_UNIQUE_FIX = "re-create the archive with unique names (compared case-insensitively)"

_CORRUPT_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    OSError,
    NotImplementedError,  # zip compression methods Python cannot decode (e.g. zstd on 3.11)
    RuntimeError,  # zipfile raises it for encrypted members
)


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on what an archive may unpack to.

    Attributes:
        max_total_bytes: total uncompressed size of all members.
        max_files: number of members (files and directories).
        max_ratio: uncompressed / compressed size above which an archive (or a zip member) is
            treated as a decompression bomb.
        ratio_min_bytes: the ratio check applies only above this many uncompressed bytes, since
            small, highly compressible files (JSON, text) legitimately have high ratios.
    """

    max_total_bytes: int = 20 * GIB
    max_files: int = 100_000
    max_ratio: float = 200.0
    ratio_min_bytes: int = 1 * MIB


def detect_archive_format(path: Path) -> str | None:
    """Return ``"zip"``, ``"tar"``, ``"tar.gz"``, ``"tar.bz2"``, ``"tar.xz"`` or None.

    Detection reads magic bytes, never the file name: downloads are often misnamed.
    A compressed stream is reported as a tar; :func:`safe_extract` rejects it if it is not.
    """
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:3] == b"BZh":
        return "tar.bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "tar.xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def safe_extract(archive: Path, dest: Path, limits: ExtractLimits = ExtractLimits()) -> list[Path]:
    """Extract ``archive`` (zip or tar, plain/gz/bz2/xz) into ``dest`` after checking it.

    ``dest`` must not exist or be an empty directory. Returns the extracted regular files, sorted.

    Raises:
        ArchiveError: naming the archive and the offending member, for unsafe or corrupt input.
    """
    archive, dest = Path(archive), Path(dest)
    fmt = detect_archive_format(archive)
    if fmt is None:
        raise ArchiveError(
            f"{archive}: not a zip or tar archive (checked the file's content, not its name)",
            fix="give a .zip or .tar[.gz|.bz2|.xz] archive, or a directory",
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiveError(
            f"{archive}: extraction destination {dest} exists and is not empty",
            fix="extract into a new or empty directory",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
    try:
        checker = _MemberChecker(archive, limits)
        try:
            if fmt == "zip":
                _extract_zip(archive, stage, checker)
            else:
                _extract_tar(archive, fmt, stage, checker)
        except ArchiveError:
            raise
        except _CORRUPT_ERRORS as exc:
            raise ArchiveError(
                f"{archive}: corrupt or truncated {fmt} archive ({type(exc).__name__}: {exc})",
                fix="download the archive again and compare its checksum with the publisher's",
            ) from exc
        if dest.exists():
            dest.rmdir()
        os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return sorted(dest / rel for rel in checker.files)


class _MemberChecker:
    """Validates member names, types and limits; remembers what was seen."""

    def __init__(self, archive: Path, limits: ExtractLimits) -> None:
        self.archive = archive
        self.limits = limits
        self.archive_size = max(archive.stat().st_size, 1)
        self.count = 0
        self.declared_total = 0
        self.written_total = 0
        self.files: list[PurePosixPath] = []
        self._files: dict[str, str] = {}  # casefolded path -> original, for collisions
        self._dirs: dict[str, str] = {}

    def fail(self, member: str, problem: str, fix: str | None) -> ArchiveError:
        return ArchiveError(f"{self.archive}: member {member!r} {problem}", fix=fix or None)

    def check_name(self, name: str) -> PurePosixPath | None:
        """Return the safe relative path for ``name``, or None for the archive root (``./``)."""
        refuse = "re-create the archive with relative paths inside one folder"
        if not name or "\x00" in name:
            raise self.fail(name, "has an empty or NUL-containing name", refuse)
        if "\\" in name:
            # On Windows a backslash is a separator, so "a\..\..\x" escapes; on POSIX it would
            # create odd file names. Either way the archive is not portable.
            raise self.fail(name, "contains a backslash", refuse + " and forward slashes")
        if name.startswith("/"):
            raise self.fail(name, "has an absolute path", refuse)
        if re.match(r"^[A-Za-z]:", name):
            raise self.fail(name, "starts with a drive letter", refuse)
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.fail(name, "escapes the destination with '..'", refuse)
        return PurePosixPath(*parts) if parts else None

    def count_member(self, name: str) -> None:
        self.count += 1
        if self.count > self.limits.max_files:
            raise self.fail(
                name,
                f"exceeds the limit of {self.limits.max_files} members",
                "raise ExtractLimits.max_files if the archive is trusted",
            )

    def add_dir(self, name: str, rel: PurePosixPath) -> None:
        key = str(rel).casefold()
        if key in self._files:
            raise self.fail(name, f"is a directory but {self._files[key]!r} is a file", _UNIQUE_FIX)
        self._add_parents(name, rel, include_self=True)

    def add_file(self, name: str, rel: PurePosixPath, declared_size: int) -> None:
        key = str(rel).casefold()
        if key in self._files:
            raise self.fail(
                name,
                f"is a duplicate of {self._files[key]!r} (names are compared case-insensitively)",
                _UNIQUE_FIX,
            )
        if key in self._dirs:
            raise self.fail(name, f"is a file but {self._dirs[key]!r} is a directory", _UNIQUE_FIX)
        self._add_parents(name, rel, include_self=False)
        self._files[key] = name
        self.files.append(rel)
        self.declared_total += max(declared_size, 0)
        self.check_total(name, self.declared_total)
        self.check_archive_ratio(name, self.declared_total)

    def _add_parents(self, name: str, rel: PurePosixPath, *, include_self: bool) -> None:
        paths = [*rel.parents][:-1]  # drop PurePosixPath(".")
        if include_self:
            paths.insert(0, rel)
        for parent in paths:
            key = str(parent).casefold()
            if key in self._files:
                raise self.fail(
                    name,
                    f"needs directory {str(parent)!r}, which is a file in the archive",
                    _UNIQUE_FIX,
                )
            self._dirs.setdefault(key, name)

    def check_total(self, name: str, total: int) -> None:
        if total > self.limits.max_total_bytes:
            raise self.fail(
                name,
                f"brings the uncompressed total to over {self.limits.max_total_bytes} bytes",
                "raise ExtractLimits.max_total_bytes if the archive is trusted",
            )

    def check_archive_ratio(self, name: str, total: int) -> None:
        ratio = total / self.archive_size
        if total > self.limits.ratio_min_bytes and ratio > self.limits.max_ratio:
            raise self.fail(
                name,
                f"brings the compression ratio to {ratio:.0f}:1 (limit {self.limits.max_ratio:g}); "
                "this looks like a decompression bomb",
                "raise ExtractLimits.max_ratio if the archive is trusted",
            )

    def copy(self, name: str, src: IO[bytes], dst_path: Path, declared_size: int) -> None:
        """Stream ``src`` to a new file, enforcing the declared size and the total limit.

        Read errors become "corrupt member" errors naming the member; write errors (disk full,
        permissions) are reported as such rather than blamed on the archive.
        """
        written = 0
        try:
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            # "xb": never overwrite, a last guard against duplicates that slipped through.
            out = open(dst_path, "xb")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise self._write_error(name, exc) from exc
        try:
            while True:
                try:
                    chunk = src.read(_COPY_CHUNK)
                except _CORRUPT_ERRORS as exc:
                    raise self.fail(
                        name,
                        f"is corrupt or truncated ({type(exc).__name__}: {exc})",
                        "download the archive again and compare its checksum with the publisher's",
                    ) from exc
                if not chunk:
                    break
                written += len(chunk)
                self.written_total += len(chunk)
                if written > declared_size:
                    raise self.fail(
                        name,
                        f"holds more data than its declared {declared_size} bytes",
                        "download the archive again; do not trust this archive",
                    )
                self.check_total(name, self.written_total)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise self._write_error(name, exc) from exc
        finally:
            out.close()
        if written != declared_size:
            raise self.fail(
                name,
                f"is truncated: {written} of {declared_size} bytes",
                "download the archive again",
            )

    def _write_error(self, name: str, exc: OSError) -> ArchiveError:
        return ArchiveError(
            f"{self.archive}: cannot write member {name!r} ({exc})",
            fix="check free disk space and permissions where the scene is extracted",
        )


def _zip_mode_problem(info: zipfile.ZipInfo) -> str | None:
    """Describe a non-regular, non-directory zip member, or None when it is fine.

    Zip has no link type: Unix zip tools store ``st_mode`` in the high 16 bits of
    ``external_attr``, and a symlink is a member whose mode says S_IFLNK (its data is the target).
    """
    mode = (info.external_attr >> 16) & 0xFFFF
    kind = stat.S_IFMT(mode)
    if kind in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    return f"is a {_mode_name(kind)}, which is not allowed"


def _mode_name(kind: int) -> str:
    names = {
        stat.S_IFLNK: "symlink",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFIFO: "FIFO",
        stat.S_IFSOCK: "socket",
    }
    return names.get(kind, f"special file (mode {kind:o})")


def _extract_zip(archive: Path, stage: Path, checker: _MemberChecker) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        # Check everything in the central directory before writing anything.
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        compressed_total = 0
        for info in infos:
            name = info.orig_filename
            checker.count_member(name)
            rel = checker.check_name(name)
            if problem := _zip_mode_problem(info):
                raise checker.fail(name, problem, "re-create the archive without links")
            if info.flag_bits & 0x1:
                raise checker.fail(name, "is encrypted", "give an unencrypted archive")
            if rel is None:
                continue
            if info.is_dir():
                checker.add_dir(name, rel)
                continue
            checker.add_file(name, rel, info.file_size)
            if (
                info.file_size > checker.limits.ratio_min_bytes
                and info.file_size / max(info.compress_size, 1) > checker.limits.max_ratio
            ):
                raise checker.fail(
                    name,
                    f"has compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 "
                    f"(limit {checker.limits.max_ratio:g}); this looks like a decompression bomb",
                    "raise ExtractLimits.max_ratio if the archive is trusted",
                )
            compressed_total += info.compress_size
            plan.append((info, rel))
        # Overlapping members (several entries sharing one compressed stream) are the classic
        # non-recursive zip bomb; their compressed sizes add up to more than the file holds.
        if compressed_total > checker.archive_size:
            raise ArchiveError(
                f"{archive}: members claim {compressed_total} compressed bytes but the archive "
                f"has {checker.archive_size}; entries overlap or the archive is corrupt",
                fix="download the archive again; do not extract archives built this way",
            )
        for info, rel in plan:
            # zipfile verifies each member's CRC when its stream reaches the end.
            with zf.open(info) as src:
                checker.copy(info.orig_filename, src, stage / rel, info.file_size)


@contextlib.contextmanager
def _open_decompressed(archive: Path, fmt: str) -> Iterator[BinaryIO]:
    """Open the tar stream inside ``archive``. gzip/bz2/lzma readers verify their trailers."""
    opener = {"tar.gz": gzip.open, "tar.bz2": bz2.open, "tar.xz": lzma.open}.get(fmt)
    if opener is None:
        with open(archive, "rb") as fh:
            yield fh
    else:
        with opener(archive, "rb") as fh:
            yield fh  # type: ignore[misc]


def _extract_tar(archive: Path, fmt: str, stage: Path, checker: _MemberChecker) -> None:
    with _open_decompressed(archive, fmt) as stream:
        # Plain (non-streaming) mode over a forward-only decompressor: members are processed in
        # order, each header checked before its data is copied, so seeks only ever go forward.
        with tarfile.open(fileobj=stream, mode="r:") as tf:
            for member in tf:
                _extract_tar_member(tf, member, stage, checker)
            end = tf.offset
        # tarfile stops silently at a missing, truncated or garbage header. A complete archive
        # has a zero block at the offset where iteration stopped.
        stream.seek(end)
        block = stream.read(tarfile.BLOCKSIZE)
        if len(block) < tarfile.BLOCKSIZE or block.strip(b"\x00"):
            raise ArchiveError(
                f"{archive}: tar stream ends without an end-of-archive marker at byte {end} "
                "(truncated or corrupt)",
                fix="download the archive again and compare its checksum with the publisher's",
            )
        # Read to the end so the decompressor checks its CRC trailer, with a cap on padding.
        trailer = 0
        while chunk := stream.read(_COPY_CHUNK):
            trailer += len(chunk)
            if trailer > _MAX_TAR_TRAILER:
                raise ArchiveError(
                    f"{archive}: more than {_MAX_TAR_TRAILER} bytes after the end of the tar",
                    fix="give an archive without trailing data",
                )


def _extract_tar_member(
    tf: tarfile.TarFile, member: tarfile.TarInfo, stage: Path, checker: _MemberChecker
) -> None:
    name = member.name
    checker.count_member(name)
    rel = checker.check_name(name)
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hardlink"
        raise checker.fail(
            name,
            f"is a {kind} (to {member.linkname!r}), which is not allowed",
            "re-create the archive with links dereferenced (tar -h / --hard-dereference)",
        )
    if not (member.isreg() or member.isdir()):
        kind = {
            tarfile.CHRTYPE: "character device",
            tarfile.BLKTYPE: "block device",
            tarfile.FIFOTYPE: "FIFO",
        }.get(member.type, f"member of type {member.type!r}")
        raise checker.fail(name, f"is a {kind}, which is not allowed", "remove it from the archive")
    if rel is None:
        return
    if member.isdir():
        checker.add_dir(name, rel)
        return
    checker.add_file(name, rel, member.size)
    src = tf.extractfile(member)
    if src is None:  # pragma: no cover - isreg() members always have data
        raise checker.fail(name, "has no data", None)
    with src:
        checker.copy(name, src, stage / rel, member.size)
