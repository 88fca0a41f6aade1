"""PlayCanvas SOG (``.sog``, meta.json version 2): writer and reader, written from the format.

Sources read (no code copied): ``@playcanvas/splat-transform``'s ``write-sog.ts`` and
``read-sog.ts`` (3.x) and the PlayCanvas SOG format page. A ``.sog`` file is a ZIP archive
(stored entries) of ``meta.json`` and lossless WebP images; the same files side by side in a
directory, opened through ``meta.json``, are the unbundled form. Texel ``i`` of every
per-Gaussian image (raster order) holds Gaussian ``i``; images are ``W x H`` with
``W = 4 * ceil(sqrt(N) / 4)`` and ``H = 4 * ceil(N / W / 4)`` and cells past ``N`` are ignored.

===================  ====================================================================
file (meta key)      content
===================  ====================================================================
means_l / means_u    RGB = low / high byte of 16-bit x, y, z quantised between
(``means``)          ``mins``/``maxs`` of ``sign(v) * ln(1 + |v|)``
quats.webp           RGB = the three smaller components of the unit quaternion
                     ``(w, x, y, z)`` whose largest component is positive, each
                     ``255 * (c * sqrt(2) / 2 + 1 / 2)``; A = ``252 + index`` of the largest
scales.webp          RGB = index into ``scales.codebook`` (256 floats, log scale) per axis
sh0.webp             RGB = index into ``sh0.codebook`` (256 floats, DC coefficient) per
                     channel; A = ``255 * sigmoid(opacity)``
shN_labels.webp      RG = 16-bit palette entry (R low byte) of the Gaussian's higher SH
shN_centroids.webp   palette entry ``e`` at row ``e // 64``, columns ``(e % 64) * C + j``
                     (``C`` coefficients per channel, ``j < C``): RGB = index into
                     ``shN.codebook`` (256 floats) of coefficient ``j`` of R, G, B
===================  ====================================================================

Our encoder: Morton order on the texel grid; 1D k-means (Lloyd, 256 entries, MSE) codebooks
for scales, sh0 and the palette's coefficients; our seeded k-means (flat or two-level) for the
shN palette, whose size is ``min(65536, ceil(N / shN_points_per_code))``; rounding to nearest
everywhere. Readers need none of these choices.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from splatbench.compress.codec import encode_image
from splatbench.compress.config import KMEANS_METRICS
from splatbench.compress.errors import CompressError, CorruptModelError
from splatbench.compress.kmeans import kmeans, kmeans_tree
from splatbench.compress.quant import canonical_quats, log_transform
from splatbench.compress.sort import morton_layout
from splatbench.compress.spz import _from_dict
from splatbench.errors import ConfigError
from splatbench.gaussians.params import check_splats, num_sh_bases, splats_sh_degree

META_VERSION = 2
MAX_PALETTE = 1 << 16
CODEBOOK_SIZE = 256
PALETTE_ROW = 64  # palette entries per row of shN_centroids.webp
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry time: the same input gives the same bytes
SORTS = ("morton", "none")
SQRT2 = math.sqrt(2.0)

_FIX = "re-run the export stage (dvc repro), or re-export the file with splat-transform"


class SogFormatError(CorruptModelError):
    """A .sog file or SOG directory is malformed, truncated or of an unknown version."""


@dataclass(frozen=True)
class SogConfig:
    """Settings of the PlayCanvas SOG writer (the ``export.sog`` params section).

    Attributes:
        shN_points_per_code: Gaussians per shN palette entry (palette size
            ``min(65536, ceil(N / this))``; splat-transform uses about 2 on 30k Gaussians).
        shN_kmeans_iters: Lloyd iterations of the palette k-means.
        shN_kmeans_metric: ``l2`` or ``l1``.
        shN_kmeans_sample: fit the palette on at most this many Gaussians (0: all).
        shN_weighting: ``opacity`` (opacity-weighted palette centroids) or ``none``.
        codebook_iters: Lloyd iterations of the 256-entry scalar codebooks.
        max_sh_degree: write at most this SH degree (-1: the model's).
        sort: ``morton`` (3D Z-order of positions along the texel grid's Z-order) or ``none``.
        bundle: write one ``.sog`` ZIP (True) or ``meta.json`` and the images in a directory.
        seed: seeds the k-means.
    """

    shN_points_per_code: int = 4
    shN_kmeans_iters: int = 10
    shN_kmeans_metric: str = "l2"
    shN_kmeans_sample: int = 262_144
    shN_weighting: str = "opacity"
    codebook_iters: int = 30
    max_sh_degree: int = -1
    sort: str = "morton"
    bundle: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shN_points_per_code < 1:
            raise ConfigError(f"export.sog.shN_points_per_code={self.shN_points_per_code} < 1")
        if self.shN_kmeans_iters < 0 or self.codebook_iters < 0:
            raise ConfigError("export.sog.shN_kmeans_iters and codebook_iters must be >= 0")
        if self.shN_kmeans_sample < 0:
            raise ConfigError(f"export.sog.shN_kmeans_sample={self.shN_kmeans_sample} < 0")
        if self.shN_kmeans_metric not in KMEANS_METRICS:
            raise ConfigError(
                f"export.sog.shN_kmeans_metric={self.shN_kmeans_metric!r} is not one of "
                f"{list(KMEANS_METRICS)}"
            )
        if self.shN_weighting not in ("none", "opacity"):
            raise ConfigError(
                f"export.sog.shN_weighting={self.shN_weighting!r} is not one of none, opacity"
            )
        if self.shN_weighting != "none" and self.shN_kmeans_metric != "l2":
            raise ConfigError("export.sog.shN_weighting=opacity needs shN_kmeans_metric=l2")
        if not -1 <= self.max_sh_degree <= 3:
            raise ConfigError(f"export.sog.max_sh_degree={self.max_sh_degree} must be -1..3")
        if self.sort not in SORTS:
            raise ConfigError(f"export.sog.sort={self.sort!r} is not one of {list(SORTS)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SogConfig:
        return _from_dict(cls, data, "export.sog")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def texture_shape(n: int) -> tuple[int, int]:
    """``(H, W)`` of the per-Gaussian images for ``n`` Gaussians (multiples of 4)."""
    if n <= 0:
        return 4, 4
    w = math.ceil(math.sqrt(n) / 4) * 4
    return math.ceil(n / w / 4) * 4, w


def palette_size(n: int, points_per_code: int) -> int:
    """shN palette entries: ``ceil(n / points_per_code)`` rounded up to whole rows of 64 (the
    reference writer always fills whole rows; readers index rows of 64), at most 65536 and
    never more than ``n``."""
    wanted = math.ceil(math.ceil(n / points_per_code) / PALETTE_ROW) * PALETTE_ROW
    return max(1, min(MAX_PALETTE, n, wanted))


# --- scalar codebooks ------------------------------------------------------------------------


def scalar_codebook(
    values: np.ndarray,
    size: int = CODEBOOK_SIZE,
    iters: int = 30,
    bins: int = 8192,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size``-entry codebook for scalars minimising squared error (1D Lloyd-Max).

    Works on a ``bins``-bin histogram (cost independent of the number of values): starts from
    the quantiles of ``density ** (1/3)`` (the high-resolution optimum for squared error, which
    also gives sparse tails their share of entries), then runs ``iters`` Lloyd iterations on the
    bin means weighted by their counts. Every value is then assigned its nearest entry.
    Deterministic.

    Args:
        values: any shape, float.
        size: entries (at most 256 fit a byte).
        weights: how much each value's error counts (``values``' shape; default all 1), e.g.
            how many Gaussians use a palette entry.

    Returns:
        ``codebook [size]`` float32 ascending, and ``labels`` (``values``' shape, uint8/uint16).
    """
    flat = np.asarray(values, np.float64).reshape(-1)
    wflat = None if weights is None else np.asarray(weights, np.float64).reshape(-1)
    dtype = np.uint8 if size <= 256 else np.uint16
    if flat.size == 0:
        return np.zeros(size, np.float32), np.zeros(np.shape(values), dtype)
    lo, hi = float(flat.min()), float(flat.max())
    if hi <= lo:
        return np.full(size, lo, np.float32), np.zeros(np.shape(values), dtype)
    cell = np.minimum(((flat - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)
    counts = np.bincount(cell, weights=wflat, minlength=bins).astype(np.float64)
    sums = np.bincount(cell, weights=flat if wflat is None else flat * wflat, minlength=bins)
    used = counts > 0
    x, w = sums[used] / counts[used], counts[used]  # bin means and their weights
    if x.size <= size:  # fewer distinct bins than entries: every bin mean is an entry
        centres = np.concatenate([x, np.full(size - x.size, x[-1])])
    else:
        cdf = np.cumsum(w ** (1.0 / 3.0))
        starts = [
            np.interp((np.arange(size) + 0.5) / size * cdf[-1], cdf, x),
            np.linspace(lo, hi, size),  # Lloyd from the uniform grid never ends worse than it
        ]
        fits = [_lloyd_1d(x, w, c, iters) for c in starts]
        centres = min(fits, key=lambda c: _sse_1d(x, w, c))
    codebook = centres.astype(np.float32)
    labels = nearest_entry(codebook, flat).reshape(np.shape(values))
    return codebook, labels.astype(dtype)


def _lloyd_1d(x: np.ndarray, w: np.ndarray, centres: np.ndarray, iters: int) -> np.ndarray:
    """Weighted 1D Lloyd iterations on points ``x`` with weights ``w`` (ascending centres)."""
    size = centres.size
    for _ in range(iters):
        k = np.searchsorted((centres[1:] + centres[:-1]) / 2, x)
        cw = np.bincount(k, weights=w, minlength=size)
        sums = np.bincount(k, weights=w * x, minlength=size)
        moved = np.sort(np.where(cw > 0, sums / np.maximum(cw, 1e-300), centres))
        if np.array_equal(moved, centres):
            break
        centres = moved
    return centres


def _sse_1d(x: np.ndarray, w: np.ndarray, centres: np.ndarray) -> float:
    return float((w * (centres[nearest_entry(centres, x)] - x) ** 2).sum())


def nearest_entry(codebook: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of an ascending ``codebook`` for each value (int64)."""
    cb = np.asarray(codebook, np.float64)
    v = np.asarray(values, np.float64)
    hi = np.clip(np.searchsorted(cb, v), 1, cb.size - 1) if cb.size > 1 else np.zeros(v.shape, int)
    if cb.size == 1:
        return hi.astype(np.int64)
    lo = hi - 1
    return np.where(np.abs(v - cb[lo]) <= np.abs(cb[hi] - v), lo, hi).astype(np.int64)


# --- encode ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SogEncoded:
    """An encoded SOG model in memory."""

    files: dict[str, bytes]  # image name -> WebP bytes
    meta: dict[str, Any]  # meta.json content
    order: Tensor  # [N] input index of the Gaussian at texel i
    palette_size: int

    def meta_bytes(self) -> bytes:
        return json.dumps(self.meta, separators=(",", ":"), allow_nan=False).encode("utf-8")

    def bundle(self) -> bytes:
        """The ``.sog`` ZIP (stored entries, fixed timestamps: deterministic bytes)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, data in [*self.files.items(), ("meta.json", self.meta_bytes())]:
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        return buf.getvalue()


def _grid(values: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """``[N, c]`` uint8 in texel order -> ``[H, W, channels]`` (padding repeats the last row)."""
    n = values.shape[0]
    out = np.empty((height * width, channels), np.uint8)
    out[:n, : values.shape[1]] = values
    if values.shape[1] < channels:
        out[:n, values.shape[1] :] = 255
    out[n:] = out[n - 1] if n else 0
    return out.reshape(height, width, channels)


def _webp(values: np.ndarray, height: int, width: int) -> bytes:
    channels = 4 if values.shape[1] == 4 else 3
    return encode_image(_grid(values, height, width, channels), "webp", 0)


def encode_sog(splats: Mapping[str, Tensor], cfg: SogConfig | None = None) -> SogEncoded:
    """Encode Gaussian parameters as a PlayCanvas SOG (version 2). Pure: returns contents."""
    cfg = cfg or SogConfig()
    n = check_splats(splats)
    if n == 0:
        raise CompressError(
            "a model with no Gaussians cannot be written as SOG (its images would be empty)",
            fix="check the trained model (data/splats/<scene>/point_cloud.ply)",
        )
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        bad = int((~torch.isfinite(splats[key].detach())).sum())
        if bad:
            raise CompressError(
                f"{key} has {bad} non-finite values (NaN or inf); SOG cannot store them",
                fix="prune or repair those Gaussians before exporting",
            )
    height, width = texture_shape(n)
    if max(height, width) > 16383:
        raise CompressError(
            f"{n} Gaussians need {width}x{height} images, over WebP's 16383 px limit",
            fix="use SPZ for this model (export.formats=[spz])",
        )
    degree = splats_sh_degree(splats)
    if cfg.max_sh_degree >= 0:
        degree = min(degree, cfg.max_sh_degree)
    num_rest = num_sh_bases(degree) - 1

    means = log_transform(splats["means"].detach().float().cpu()).double()
    if cfg.sort == "morton" and n > 1:
        order = morton_layout(means.float(), height, width)
    else:
        order = torch.arange(n, dtype=torch.int64)
    idx = order.numpy()
    files: dict[str, bytes] = {}

    # means: 16 bits between the per-axis min/max of the log-transformed positions.
    m = means.numpy()[idx]
    mins = m.min(0).astype(np.float32).astype(np.float64)
    maxs = np.maximum(m.max(0).astype(np.float32).astype(np.float64), mins)
    span = np.where(maxs > mins, maxs - mins, 1.0)
    q = np.where(maxs > mins, np.clip(np.rint((m - mins) / span * 65535), 0, 65535), 0)
    q = q.astype(np.uint16)
    files["means_l.webp"] = _webp((q & 0xFF).astype(np.uint8), height, width)
    files["means_u.webp"] = _webp((q >> 8).astype(np.uint8), height, width)

    # quats: smallest three, largest made positive, tag 252 + its index.
    quats = canonical_quats(splats["quats"].detach().float().cpu()[order]).double().numpy()
    largest = np.abs(quats).argmax(1)
    keep = np.ones_like(quats, dtype=bool)
    keep[np.arange(n), largest] = False
    rest = quats[keep].reshape(n, 3)
    qb = np.clip(np.rint(255 * (rest * SQRT2 * 0.5 + 0.5)), 0, 255).astype(np.uint8)
    tags = (252 + largest).astype(np.uint8)[:, None]
    files["quats.webp"] = _webp(np.concatenate([qb, tags], axis=1), height, width)

    # scales and sh0: one 256-entry codebook per attribute, shared by its channels.
    scales = splats["scales"].detach().float().cpu().numpy()[idx]
    scales_cb, scale_labels = scalar_codebook(scales, iters=cfg.codebook_iters)
    files["scales.webp"] = _webp(scale_labels, height, width)
    sh0 = splats["sh0"].detach().float().cpu().numpy().reshape(n, 3)[idx]
    sh0_cb, sh0_labels = scalar_codebook(sh0, iters=cfg.codebook_iters)
    opac = splats["opacities"].detach().double().cpu().numpy().reshape(n)[idx]
    alpha = np.clip(np.rint(255.0 / (1.0 + np.exp(-opac))), 0, 255).astype(np.uint8)[:, None]
    files["sh0.webp"] = _webp(np.concatenate([sh0_labels, alpha], axis=1), height, width)

    meta: dict[str, Any] = {
        "version": META_VERSION,
        "asset": {"generator": "splatbench"},
        "count": n,
        "means": {
            "mins": [float(v) for v in mins],
            "maxs": [float(v) for v in maxs],
            "files": ["means_l.webp", "means_u.webp"],
        },
        "scales": {"codebook": [float(v) for v in scales_cb], "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": [float(v) for v in sh0_cb], "files": ["sh0.webp"]},
    }
    palette = 0
    if num_rest:
        flat = splats["shN"].detach().float().cpu()[:, :num_rest, :].reshape(n, num_rest * 3)
        palette = palette_size(n, cfg.shN_points_per_code)
        fit = kmeans_tree if palette > 1024 else kmeans
        weights = None
        if cfg.shN_weighting == "opacity":
            weights = torch.sigmoid(splats["opacities"].detach().float().cpu().reshape(n))
        km = fit(
            flat,
            palette,
            iters=cfg.shN_kmeans_iters,
            metric=cfg.shN_kmeans_metric,
            seed=cfg.seed,
            sample_size=cfg.shN_kmeans_sample,
            weights=weights,
        )
        palette = km.centroids.shape[0]
        labels = km.labels.numpy()[idx].astype(np.uint16)
        lab = np.stack([(labels & 0xFF), (labels >> 8), np.zeros_like(labels)], 1)
        files["shN_labels.webp"] = _webp(lab.astype(np.uint8), height, width)
        # The palette's values count as often as Gaussians use their entry (opacity-weighted
        # with shN_weighting=opacity): the codebook is fit to the Gaussians' error.
        usage = np.bincount(km.labels.numpy(), minlength=palette).astype(np.float64)
        if weights is not None:
            usage = np.bincount(km.labels.numpy(), weights=weights.double().numpy(),
                                minlength=palette)  # fmt: skip
        cent_vals = km.centroids.numpy()
        shn_cb, cent = scalar_codebook(
            cent_vals, iters=cfg.codebook_iters,
            weights=np.repeat(usage[:, None] + 1e-9, cent_vals.shape[1], axis=1),
        )  # fmt: skip
        # [K, C*3] coefficient-major/colour-inner -> texels (entry, coefficient) of RGB.
        rows = math.ceil(palette / PALETTE_ROW)
        tex = np.zeros((rows * PALETTE_ROW, num_rest, 3), np.uint8)
        tex[:palette] = cent.reshape(palette, num_rest, 3)
        tex = tex.reshape(rows, PALETTE_ROW * num_rest, 3)
        files["shN_centroids.webp"] = encode_image(tex, "webp", 0)
        meta["shN"] = {
            "count": palette,
            "bands": degree,
            "codebook": [float(v) for v in shn_cb],
            "files": ["shN_centroids.webp", "shN_labels.webp"],
        }
    return SogEncoded(files, meta, order, palette)


def write_sog(enc: SogEncoded, path: Path, *, bundle: bool = True) -> int:
    """Write ``enc`` as ``path`` (a ``.sog`` ZIP) or, unbundled, into directory ``path``
    (``meta.json`` plus images). Atomic per file. Returns the bytes written."""
    from splatbench.fsutil import atomic_write_bytes

    path = Path(path)
    if bundle:
        data = enc.bundle()
        atomic_write_bytes(path, data)
        return len(data)
    path.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, data in enc.files.items():
        atomic_write_bytes(path / name, data)
        total += len(data)
    meta = enc.meta_bytes()
    atomic_write_bytes(path / "meta.json", meta)
    return total + len(meta)


# --- decode ----------------------------------------------------------------------------------


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise SogFormatError(f"{where}: {what}", fix=_FIX)


def _load_files(path: Path) -> tuple[dict[str, Any], dict[str, bytes], str]:
    """meta.json and the images of a ``.sog`` ZIP, a SOG directory or its ``meta.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "meta.json"
    _need(path.is_file(), str(path), "no such file")
    if path.name == "meta.json":
        where = str(path)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SogFormatError(f"{where}: not valid JSON ({exc})", fix=_FIX) from exc

        def read(name: str) -> bytes:
            f = path.parent / name
            _need(Path(name).name == name and f.is_file(), where, f"listed file {name} missing")
            return f.read_bytes()

    else:
        where = str(path)
        try:
            zf = zipfile.ZipFile(path)
            entries = {i.filename: i for i in zf.infolist()}
            _need("meta.json" in entries, where, "ZIP has no meta.json (not a .sog file)")
            meta = json.loads(zf.read("meta.json").decode("utf-8"))
        except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
            raise SogFormatError(f"{where}: not a readable .sog ZIP ({exc})", fix=_FIX) from exc

        def read(name: str) -> bytes:
            _need(name in entries, where, f"listed file {name} missing from the ZIP")
            try:
                return zf.read(name)
            except (zipfile.BadZipFile, OSError) as exc:  # CRC mismatch, truncation
                raise SogFormatError(f"{where}: {name} is damaged ({exc})", fix=_FIX) from exc

    _need(isinstance(meta, dict), where, "meta.json is not an object")
    version = meta.get("version")
    _need(
        version == META_VERSION,
        where,
        f"SOG meta version {version!r}; this reader knows version {META_VERSION} "
        "(legacy unversioned SOG is not supported)",
    )
    names: list[str] = []
    for key in ("means", "quats", "scales", "sh0", "shN"):
        if key in meta:
            names += list(meta[key].get("files", []))
    return meta, {name: read(name) for name in names}, where


def decode_sog(path: Path) -> dict[str, Tensor]:
    """Read a ``.sog`` ZIP, a SOG directory or its ``meta.json`` into Gaussian parameters.

    Raises:
        SogFormatError: unknown version, missing or damaged files, images smaller than the
            count, bad rotation tags or palette labels (the message names the file).
    """
    meta, files, where = _load_files(path)
    try:
        return _decode(meta, files, where)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SogFormatError(f"{where}: inconsistent meta.json ({exc!r})", fix=_FIX) from exc


def _rgba_image(files: dict[str, bytes], name: str, where: str) -> np.ndarray:
    """``[H, W, 4]`` uint8 texels of image ``name`` (A = 255 when the image has none)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(files[name])) as im:
            im.load()
            return np.asarray(im.convert("RGBA"))
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise SogFormatError(f"{where}: {name}: cannot decode image ({exc})", fix=_FIX) from exc


def _rgba(files: dict[str, bytes], name: str, where: str, count: int) -> np.ndarray:
    """``[count, 4]`` texels of a per-Gaussian image, in raster order."""
    flat = _rgba_image(files, name, where).reshape(-1, 4)
    _need(flat.shape[0] >= count, where, f"{name} has {flat.shape[0]} texels for {count} Gaussians")
    return flat[:count]


def _decode(meta: dict[str, Any], files: dict[str, bytes], where: str) -> dict[str, Tensor]:
    n = int(meta["count"])
    _need(n >= 0, where, f"count {n} < 0")
    lo = _rgba(files, meta["means"]["files"][0], where, n).astype(np.float64)
    hi = _rgba(files, meta["means"]["files"][1], where, n).astype(np.float64)
    mins = np.asarray(meta["means"]["mins"], np.float64)
    maxs = np.asarray(meta["means"]["maxs"], np.float64)
    span = np.where(maxs - mins != 0, maxs - mins, 1.0)  # as the reference reader
    t = mins + span * ((lo[:, :3] + 256 * hi[:, :3]) / 65535)
    means = np.sign(t) * np.expm1(np.abs(t))

    qt = _rgba(files, meta["quats"]["files"][0], where, n)
    tag = qt[:, 3].astype(np.int64)
    _need(bool(((tag >= 252) & (tag <= 255)).all()), where, "quats: a rotation tag is not 252..255")
    largest = tag - 252
    rest = (qt[:, :3].astype(np.float64) / 255 * 2 - 1) / SQRT2
    quats = np.zeros((n, 4))
    keep = np.ones((n, 4), bool)
    keep[np.arange(n), largest] = False
    quats[keep] = rest.reshape(-1)
    quats[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1 - (rest * rest).sum(1)))

    scb = np.asarray(meta["scales"]["codebook"], np.float32)
    scales = scb[_rgba(files, meta["scales"]["files"][0], where, n)[:, :3]]
    c0 = _rgba(files, meta["sh0"]["files"][0], where, n)
    ccb = np.asarray(meta["sh0"]["codebook"], np.float32)
    sh0 = ccb[c0[:, :3]]
    a = np.clip(c0[:, 3].astype(np.float64) / 255, 1e-6, 1 - 1e-6)
    opac = np.log(a / (1 - a))

    shn = np.zeros((n, 0, 3), np.float32)
    if meta.get("shN") and int(meta["shN"].get("bands", 0)) > 0:
        s = meta["shN"]
        bands = int(s["bands"])
        _need(1 <= bands <= 3, where, f"shN.bands {bands} is not 1..3")
        coeffs = num_sh_bases(bands) - 1
        count = int(s["count"])
        cb = np.asarray(s["codebook"], np.float32)
        cent_img = _rgba_image(files, s["files"][0], where)[..., :3]
        _need(
            cent_img.shape[1] == PALETTE_ROW * coeffs and cent_img.shape[0] * PALETTE_ROW >= count,
            where,
            f"{s['files'][0]} is {cent_img.shape[1]}x{cent_img.shape[0]}, expected width "
            f"{PALETTE_ROW * coeffs} and room for {count} entries",
        )
        palette = cb[cent_img.reshape(-1, coeffs, 3)[:count]]  # [count, C, 3]
        lab = _rgba(files, s["files"][1], where, n)
        labels = lab[:, 0].astype(np.int64) | (lab[:, 1].astype(np.int64) << 8)
        _need(bool((labels < count).all()), where, f"a shN label is >= the palette size {count}")
        shn = palette[labels]
    return {
        "means": torch.from_numpy(means.astype(np.float32)),
        "scales": torch.from_numpy(np.ascontiguousarray(scales, np.float32)),
        "quats": torch.from_numpy(quats.astype(np.float32)),
        "opacities": torch.from_numpy(opac.astype(np.float32)),
        "sh0": torch.from_numpy(np.ascontiguousarray(sh0.reshape(n, 1, 3), np.float32)),
        "shN": torch.from_numpy(np.ascontiguousarray(shn, np.float32)),
    }
