"""Niantic SPZ (``.spz``): writer and reader, written from the format description.

Sources read (no code copied): the ``nianticlabs/spz`` README ("File Format") and
``src/cc/load-spz.cc`` (packing and unpacking), and ``@playcanvas/splat-transform``'s reader.
Layout of one file (all integers little-endian):

- **Version 4** (current; ``NGSP`` magic in plain text): a 32-byte header ``magic u32 = 0x5053474e,
  version u32, numPoints u32, shDegree u8, fractionalBits u8, flags u8, numStreams u8,
  tocByteOffset u32, 12 reserved zero bytes``; a table of contents of ``numStreams`` pairs
  ``(compressedSize u64, uncompressedSize u64)``; then one zstd frame per attribute stream in
  the order positions, alphas, colors, scales, rotations, sh (empty streams are left out).
- **Versions 2 and 3** (legacy): one gzip stream holding a 16-byte header (the first 16 bytes
  above, the last one reserved) followed by the same attribute arrays, concatenated.

Attributes (per Gaussian):

==========  =======================  =====================================================
stream      bytes                    encoding
==========  =======================  =====================================================
positions   3 x 3 (int24)            ``round(x * 2^fractionalBits)``, two's complement
alphas      1                        ``round(sigmoid(opacity) * 255)``
colors      3                        ``round(sh0 * 0.15 * 255 + 127.5)`` (not SH_C0)
scales      3                        ``round((log_scale + 10) * 16)``
rotations   4 (v3+) / 3 (v2)         v3+: smallest three, 2-bit index of the largest
                                     component (of x, y, z, w) + three (sign, 9-bit magnitude
                                     of ``|q_i| / sqrt(1/2)``); v2: ``x, y, z`` of the
                                     quaternion with ``w >= 0`` as ``round(127.5 * (q + 1))``
sh          3 * (K-1)                coefficient-major, colour inner (our ``shN[n]`` flattened),
                                     ``round(x * 128) + 128`` rounded to a bucket of
                                     ``2^(8 - bits)`` (``sh1_bits`` for degree 1,
                                     ``sh_rest_bits`` above), clamped to ``0..255``
==========  =======================  =====================================================

All 8-bit values are clamped to ``0..255``. Rounding is half away from zero in float32, as the
reference encoder does, so our files match its bytes for the same input and order.

Coordinates are stored as given (the reference library's ``CoordinateSystem::UNSPECIFIED``, what
``ply_to_spz`` and splat-transform write): our PLY's axes, which is what viewers that read SPZ
files made from 3DGS PLYs expect. Gaussians are written in 3D Morton order of their positions
(``sort=morton``), which shortens the zstd streams; the order carries no meaning.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from splatbench.compress.config import _coerce
from splatbench.compress.errors import CompressError, CorruptModelError
from splatbench.compress.sort import morton3d
from splatbench.errors import ConfigError
from splatbench.gaussians.params import check_splats, num_sh_bases, splats_sh_degree

MAGIC = 0x5053474E  # "NGSP" read little-endian
LATEST_VERSION = 4
SUPPORTED_VERSIONS = (2, 3, 4)
HEADER_BYTES = {2: 16, 3: 16, 4: 32}
FLAG_ANTIALIASED = 0x1
FLAG_EXTENSIONS = 0x2
COLOR_SCALE = 0.15
SQRT1_2 = np.float32(math.sqrt(0.5))
POSITION_LIMIT = (1 << 23) - 1  # the largest int24
# Streams of a version 4 file, in file order.
STREAMS = ("positions", "alphas", "colors", "scales", "rotations", "sh")
SORTS = ("morton", "none")

_FIX = "re-run the export stage (dvc repro), or re-export the file with a current SPZ writer"


class SpzFormatError(CorruptModelError):
    """An .spz file is truncated, malformed or of a version this reader does not know."""


@dataclass(frozen=True)
class SpzConfig:
    """Settings of the SPZ writer (the ``export.spz`` params section).

    Attributes:
        version: 3 (default: one gzip stream, smallest-three rotations; every SPZ reader
            reads it, e.g. Spark 2.2 rejects version 4), 4 (zstd streams, the current spec
            version) or 2 (gzip, first-three rotations).
        sh1_bits: bits kept of each 8-bit degree-1 SH coefficient (1..8; reference default 5).
        sh_rest_bits: bits kept of the degree-2 and 3 coefficients (1..8; reference default 4).
        fractional_bits: fixed-point fraction bits of positions (reference: 12, about 0.25 mm
            for metre units); lowered automatically when the scene does not fit in 24 bits.
        max_sh_degree: write at most this SH degree (-1: the model's degree).
        zstd_level: zstd compression level of version 4 streams (reference: 12).
        sort: ``morton`` (3D Z-order of positions; smaller files) or ``none`` (input order).
    """

    version: int = 3
    sh1_bits: int = 5
    sh_rest_bits: int = 4
    fractional_bits: int = 12
    max_sh_degree: int = -1
    zstd_level: int = 12
    sort: str = "morton"

    def __post_init__(self) -> None:
        if self.version not in SUPPORTED_VERSIONS:
            raise ConfigError(
                f"export.spz.version={self.version} is not one of {list(SUPPORTED_VERSIONS)}"
            )
        for key in ("sh1_bits", "sh_rest_bits"):
            if not 1 <= getattr(self, key) <= 8:
                raise ConfigError(f"export.spz.{key}={getattr(self, key)} must be in 1..8")
        if not 0 <= self.fractional_bits <= 23:
            raise ConfigError(f"export.spz.fractional_bits={self.fractional_bits} must be 0..23")
        if not -1 <= self.max_sh_degree <= 3:
            raise ConfigError(f"export.spz.max_sh_degree={self.max_sh_degree} must be -1..3")
        if not 1 <= self.zstd_level <= 22:
            raise ConfigError(f"export.spz.zstd_level={self.zstd_level} must be 1..22")
        if self.sort not in SORTS:
            raise ConfigError(f"export.spz.sort={self.sort!r} is not one of {list(SORTS)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SpzConfig:
        return _from_dict(cls, data, "export.spz")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _from_dict(cls: Any, data: Mapping[str, Any] | None, where: str) -> Any:
    """Build a frozen config dataclass from a params mapping (unknown keys name the section)."""
    data = dict(data or {})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys {unknown}",
            fix=f"use only {sorted(fields)} (see docs/viewer-formats.md)",
        )
    defaults = cls()
    kwargs = {}
    for key, value in data.items():
        tp = type(getattr(defaults, key))
        if tp is bool:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}={value!r} must be true or false")
            kwargs[key] = value
        else:
            kwargs[key] = _coerce(value, tp, f"{where}.{key}")
    return cls(**kwargs)


# --- rounding helpers (float32, half away from zero, as the reference C++) -------------------


def _round_away(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(_round_away(x), 0, 255).astype(np.uint8)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def quantize_sh(x: np.ndarray, bits: int) -> np.ndarray:
    """SH coefficients -> bytes: ``round(x * 128) + 128`` snapped to a ``2^(8 - bits)`` bucket."""
    bucket = 1 << (8 - bits)
    q = (_round_away(np.asarray(x, np.float32) * np.float32(128)) + 128).astype(np.int64)
    q = (q + bucket // 2) // bucket * bucket  # q >= 0 after the clamp below matters only at 256+
    return np.clip(q, 0, 255).astype(np.uint8)


def pack_rotations_smallest_three(quats_xyzw: np.ndarray) -> np.ndarray:
    """``[N, 4]`` quaternions ``(x, y, z, w)`` -> ``[N, 4]`` bytes (one little-endian u32 each).

    The u32 holds, from the top: the 2-bit index of the largest-magnitude component, then for
    each other component in index order a sign bit (relative to the largest, which is made
    positive) and a 9-bit magnitude ``round(511 * |q_i| / sqrt(1/2))``.
    """
    q = np.asarray(quats_xyzw, np.float32)
    norm = np.linalg.norm(q, axis=1, keepdims=True).astype(np.float32)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1), np.array([0, 0, 0, 1], np.float32))
    largest = np.argmax(np.abs(q), axis=1)  # first index wins ties, as the reference loop
    n = q.shape[0]
    negate = q[np.arange(n), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        use = largest != i
        neg = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.floor(np.float32(511) * (np.abs(q[:, i]) / SQRT1_2) + np.float32(0.5))
        mag = np.minimum(mag, 511).astype(np.uint32)
        comp = np.where(use, (comp << np.uint32(10)) | (neg << np.uint32(9)) | mag, comp)
    return comp.astype("<u4").view(np.uint8).reshape(n, 4)


def unpack_rotations_smallest_three(data: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rotations_smallest_three`: ``[N, 4]`` bytes -> ``(x, y, z, w)``."""
    comp = np.ascontiguousarray(data, np.uint8).view("<u4").reshape(-1).astype(np.uint32)
    n = comp.shape[0]
    largest = (comp >> np.uint32(30)).astype(np.int64)
    out = np.zeros((n, 4), np.float32)
    sum_sq = np.zeros(n, np.float32)
    for i in (3, 2, 1, 0):
        use = largest != i
        mag = (comp & np.uint32(511)).astype(np.float32)
        neg = ((comp >> np.uint32(9)) & np.uint32(1)).astype(bool)
        v = SQRT1_2 * mag / np.float32(511)
        v = np.where(neg, -v, v).astype(np.float32)
        out[:, i] = np.where(use, v, out[:, i])
        sum_sq = np.where(use, sum_sq + v * v, sum_sq)
        comp = np.where(use, comp >> np.uint32(10), comp)
    out[np.arange(n), largest] = np.sqrt(np.maximum(np.float32(0), 1 - sum_sq))
    return out


def pack_rotations_first_three(quats_xyzw: np.ndarray) -> np.ndarray:
    """Version 2: ``x, y, z`` of the unit quaternion with ``w >= 0``, as ``127.5 * (q + 1)``."""
    q = np.asarray(quats_xyzw, np.float32)
    norm = np.linalg.norm(q, axis=1, keepdims=True).astype(np.float32)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1), np.array([0, 0, 0, 1], np.float32))
    q = q * np.where(q[:, 3:4] < 0, np.float32(-127.5), np.float32(127.5)) + np.float32(127.5)
    return _to_u8(q[:, :3])


def unpack_rotations_first_three(data: np.ndarray) -> np.ndarray:
    # float64, then float32: w = sqrt(1 - |xyz|^2) amplifies rounding where w is near 0.
    xyz = data.astype(np.float64) / 127.5 - 1
    w = np.sqrt(np.maximum(0.0, 1 - (xyz * xyz).sum(1)))
    return np.concatenate([xyz, w[:, None]], axis=1).astype(np.float32)


# --- encode ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpzEncoded:
    """An encoded .spz file and what the encoder chose."""

    data: bytes
    order: Tensor  # [N] input index of the Gaussian stored at position i
    sh_degree: int
    fractional_bits: int
    stream_bytes: dict[str, int]  # compressed bytes per stream (v4) or {"gzip": total}


def _fractional_bits(means: np.ndarray, wanted: int) -> int:
    """The largest fraction-bit count up to ``wanted`` at which every coordinate fits in int24."""
    peak = float(np.abs(means).max(initial=0.0))
    fb = wanted
    while fb > 0 and peak * (1 << fb) > POSITION_LIMIT - 0.5:
        fb -= 1
    if peak * (1 << fb) > POSITION_LIMIT - 0.5:
        raise CompressError(
            f"a coordinate of magnitude {peak:g} does not fit SPZ's 24-bit positions",
            fix="rescale the scene (SPZ holds coordinates up to about 8.4 million units)",
        )
    return fb


def encode_spz(splats: Mapping[str, Tensor], cfg: SpzConfig | None = None) -> SpzEncoded:
    """Encode Gaussian parameters (see :mod:`splatbench.gaussians.params`) as an .spz file.

    Pure: returns the bytes; ``order`` maps stored Gaussians back to the input.
    """
    import zstandard

    cfg = cfg or SpzConfig()
    n = check_splats(splats)
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        bad = int((~torch.isfinite(splats[key].detach())).sum())
        if bad:
            raise CompressError(
                f"{key} has {bad} non-finite values (NaN or inf); SPZ cannot store them",
                fix="prune or repair those Gaussians before exporting",
            )
    degree = splats_sh_degree(splats)
    if cfg.max_sh_degree >= 0:
        degree = min(degree, cfg.max_sh_degree)
    num_rest = num_sh_bases(degree) - 1

    def host(key: str) -> np.ndarray:
        return splats[key].detach().float().cpu().numpy()

    means = host("means")
    if cfg.sort == "morton" and n > 1:
        order = torch.argsort(morton3d(torch.from_numpy(means)), stable=True)
    else:
        order = torch.arange(n, dtype=torch.int64)
    idx = order.numpy()
    means = means[idx]
    fb = _fractional_bits(means, cfg.fractional_bits)

    fixed = _round_away(means * np.float32(1 << fb)).astype(np.int64)
    pos = (fixed & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 3, 4)[:, :, :3]
    streams: dict[str, bytes] = {"positions": np.ascontiguousarray(pos).tobytes()}
    streams["alphas"] = _to_u8(_sigmoid(host("opacities")[idx]) * np.float32(255)).tobytes()
    sh0 = host("sh0").reshape(n, 3)[idx]
    streams["colors"] = _to_u8(
        sh0 * np.float32(COLOR_SCALE * 255.0) + np.float32(0.5 * 255.0)
    ).tobytes()
    streams["scales"] = _to_u8((host("scales")[idx] + np.float32(10)) * np.float32(16)).tobytes()
    wxyz = host("quats")[idx]
    xyzw = np.concatenate([wxyz[:, 1:], wxyz[:, :1]], axis=1)
    pack = pack_rotations_smallest_three if cfg.version >= 3 else pack_rotations_first_three
    rot = pack(xyzw)
    streams["rotations"] = rot.tobytes()
    if num_rest:
        shn = host("shN")[idx][:, :num_rest, :]  # [N, K-1, 3]: coefficient-major, colour inner
        sh = np.empty(shn.shape, np.uint8)
        sh[:, :3] = quantize_sh(shn[:, :3], cfg.sh1_bits)
        sh[:, 3:] = quantize_sh(shn[:, 3:], cfg.sh_rest_bits)
        streams["sh"] = sh.tobytes()
    else:
        streams["sh"] = b""

    if cfg.version >= 4:
        cctx = zstandard.ZstdCompressor(level=cfg.zstd_level, write_content_size=True)
        frames = [(name, streams[name]) for name in STREAMS if streams[name]]
        compressed = [(name, cctx.compress(raw), len(raw)) for name, raw in frames]
        header = struct.pack(
            "<IIIBBBBI12x", MAGIC, cfg.version, n, degree, fb, 0, len(compressed), 32
        )
        toc = b"".join(struct.pack("<QQ", len(c), size) for _, c, size in compressed)
        data = header + toc + b"".join(c for _, c, _ in compressed)
        stream_bytes = {name: len(c) for name, c, _ in compressed}
    else:
        header = struct.pack("<IIIBBBB", MAGIC, cfg.version, n, degree, fb, 0, 0)
        payload = header + b"".join(streams[name] for name in STREAMS)
        buf = io.BytesIO()
        # mtime=0 and no file name: the same input gives the same bytes.
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
            gz.write(payload)
        data = buf.getvalue()
        stream_bytes = {"gzip": len(data)}
    return SpzEncoded(data, order, degree, fb, stream_bytes)


# --- decode ----------------------------------------------------------------------------------


def _need(cond: bool, path: str, what: str) -> None:
    if not cond:
        raise SpzFormatError(f"{path}: {what}", fix=_FIX)


def decode_spz(data: bytes, name: str = "<spz>") -> dict[str, Tensor]:
    """Decode .spz bytes (versions 2-4) to Gaussian parameters (float32 tensors).

    Raises:
        SpzFormatError: bad magic or version, truncated data, stream sizes that disagree with
            the header, or a corrupt gzip/zstd stream (the message names ``name``).
    """
    import zstandard

    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SpzFormatError(f"{name}: corrupt gzip stream ({exc})", fix=_FIX) from exc
        legacy = True
    else:
        legacy = False
    _need(len(data) >= 16, name, f"{len(data)} bytes is too short for an SPZ header")
    magic, version, n, degree, fb = struct.unpack_from("<IIIBB", data)
    _need(magic == MAGIC, name, f"not an SPZ file (magic {magic:#010x})")
    _need(
        version in SUPPORTED_VERSIONS and (version < 4) == legacy,
        name,
        f"SPZ version {version} {'in a gzip stream' if legacy else 'without gzip'} is not "
        f"supported (this reader knows {list(SUPPORTED_VERSIONS)})",
    )
    _need(degree <= 3, name, f"SH degree {degree} (this reader supports up to 3)")
    num_rest = num_sh_bases(degree) - 1
    rot_bytes = 4 if version >= 3 else 3
    sizes = {
        "positions": 9 * n,
        "alphas": n,
        "colors": 3 * n,
        "scales": 3 * n,
        "rotations": rot_bytes * n,
        "sh": 3 * num_rest * n,
    }
    raw: dict[str, bytes] = {}
    if version >= 4:
        _need(len(data) >= 32, name, "truncated version 4 header")
        num_streams, toc_at = struct.unpack_from("<BI", data, 15)
        expected = [s for s in STREAMS if sizes[s]]
        _need(
            num_streams == len(expected),
            name,
            f"{num_streams} streams, expected {len(expected)} for {n} Gaussians of SH degree "
            f"{degree}",
        )
        _need(toc_at >= 32 and toc_at + 16 * num_streams <= len(data), name, "truncated TOC")
        offset = toc_at + 16 * num_streams
        dctx = zstandard.ZstdDecompressor()
        for i, stream in enumerate(expected):
            csize, usize = struct.unpack_from("<QQ", data, toc_at + 16 * i)
            _need(
                usize == sizes[stream],
                name,
                f"{stream} stream holds {usize} bytes, expected {sizes[stream]}",
            )
            _need(offset + csize <= len(data), name, f"{stream} stream runs past the file end")
            try:
                raw[stream] = dctx.decompress(data[offset : offset + csize], max_output_size=usize)
            except zstandard.ZstdError as exc:
                raise SpzFormatError(f"{name}: corrupt {stream} stream ({exc})", fix=_FIX) from exc
            _need(len(raw[stream]) == usize, name, f"{stream} stream decoded to the wrong size")
            offset += csize
        _need(offset == len(data), name, f"{len(data) - offset} unexpected bytes after the streams")
        for stream in STREAMS:  # empty streams (no Gaussians, SH degree 0) are not stored
            raw.setdefault(stream, b"")
    else:
        offset = 16
        total = offset + sum(sizes.values())
        _need(len(data) >= total, name, f"payload is {len(data)} bytes, expected {total}")
        for stream in STREAMS:
            raw[stream] = data[offset : offset + sizes[stream]]
            offset += sizes[stream]

    def arr(stream: str, cols: int) -> np.ndarray:
        return np.frombuffer(raw[stream], np.uint8).reshape(n, cols)

    p = arr("positions", 9).reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed.astype(np.float32) * np.float32(1.0 / (1 << fb))
    # Opacity and colour in float64, then float32 (as splat-transform's reader; the reference
    # C++ works in float32 and differs by float32 rounding near opacity 0 and 1).
    alpha = np.clip(arr("alphas", 1)[:, 0].astype(np.float64) / 255, 1e-6, 1 - 1e-6)
    opac = np.log(alpha / (1 - alpha)).astype(np.float32)
    sh0 = ((arr("colors", 3).astype(np.float64) / 255 - 0.5) / COLOR_SCALE).astype(np.float32)
    scales = arr("scales", 3).astype(np.float32) / 16 - 10
    rot = arr("rotations", rot_bytes)
    unpack = unpack_rotations_smallest_three if version >= 3 else unpack_rotations_first_three
    xyzw = unpack(rot)
    quats = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    shn = (arr("sh", 3 * num_rest).astype(np.float32) - 128) / 128 if num_rest else None
    return {
        "means": torch.from_numpy(np.ascontiguousarray(means)),
        "scales": torch.from_numpy(np.ascontiguousarray(scales)),
        "quats": torch.from_numpy(np.ascontiguousarray(quats)),
        "opacities": torch.from_numpy(opac),
        "sh0": torch.from_numpy(np.ascontiguousarray(sh0.reshape(n, 1, 3))),
        "shN": torch.from_numpy(
            np.ascontiguousarray(shn.reshape(n, num_rest, 3))
            if shn is not None
            else np.zeros((n, 0, 3), np.float32)
        ),
    }


def read_spz_header(data: bytes) -> dict[str, int]:
    """Version, count, SH degree, fraction bits and flags of .spz bytes (decompresses v2/v3)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    magic, version, n, degree, fb, flags = struct.unpack_from("<IIIBBB", data)
    return {
        "magic": magic,
        "version": version,
        "num_points": n,
        "sh_degree": degree,
        "fractional_bits": fb,
        "flags": flags,
    }


def read_spz(path: Path) -> dict[str, Tensor]:
    """Read and decode an .spz file."""
    path = Path(path)
    if not path.is_file():
        raise SpzFormatError(f"{path}: no such file", fix=_FIX)
    return decode_spz(path.read_bytes(), str(path))
