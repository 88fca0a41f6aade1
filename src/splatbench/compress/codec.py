"""The ``splatbench-sog`` format: Gaussians as sorted, quantised lossless image planes.

See ``docs/compressed-format.md`` for the on-disk layout. Encoding is a pure function from
parameters to file contents (:func:`encode_splats`); :func:`write_encoded` puts them in a
directory and :func:`decode_dir` verifies every file's sha256 and the meta.json checksum before
decoding anything, so a truncated or edited file is an error, never a silently wrong model.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from splatbench.compress._threads import single_thread
from splatbench.compress.config import CompressConfig
from splatbench.compress.errors import CompressError, CorruptModelError
from splatbench.compress.kmeans import kmeans, kmeans_tree
from splatbench.compress.quant import (
    canonical_quats,
    dequantize,
    from_smallest_three,
    inverse_log_transform,
    join_planes,
    log_transform,
    quantize,
    smallest_three,
    split_planes,
)
from splatbench.compress.sort import (
    grid_shape,
    morton_layout,
    neighbour_distance,
    plas_refine,
    sort_features,
)
from splatbench.fsutil import atomic_write_bytes
from splatbench.gaussians.params import check_splats, num_sh_bases, splats_sh_degree

FORMAT_NAME = "splatbench-sog"
# Version 2 adds per-degree shN codebooks (``shN.groups``); files without them are written as
# version 1, byte for byte as before, and this decoder reads both.
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
META_FILE = "meta.json"
WEBP_MAX_SIDE = 16383
CODEBOOK_BITS = 8
# shN_kmeans_mode=auto switches to two-level k-means above this many codes (CPU time).
TREE_KMEANS_ABOVE = 1024

# attribute -> (config field with its bit depth, transform name). Channels come from the data.
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "means": ("position_bits", "signed_log1p"),
    "scales": ("scale_bits", "identity"),  # already log scales
    "quats": ("rotation_bits", "smallest_three"),
    "opacities": ("opacity_bits", "identity"),  # logits
    "sh0": ("sh0_bits", "identity"),
}

# Weight of each attribute in the sorting features (after standardising every column). Positions
# take the most bytes (16 bits) and are smooth in any real scene, so they dominate; attributes
# that are often noisy (rotation) weigh little, so the sort does not trade position order for them.
SORT_WEIGHTS: dict[str, float] = {
    "means": 1.0,
    "sh0": 0.5,
    "scales": 0.3,
    "opacities": 0.3,
    "quats": 0.1,
}

_FIX = "re-run the compress stage to rebuild the model (dvc repro <compress stage>)"


@dataclass(frozen=True)
class Encoded:
    """An encoded model in memory."""

    files: dict[str, bytes]  # file name -> content, every file except meta.json
    meta: dict[str, Any]  # meta.json content (with its checksum)
    order: Tensor  # [N] index into the input Gaussians of decoded Gaussian i
    seconds: dict[str, float]  # wall time per encoder step (kept out of meta.json: determinism)


def effective_codebook_size(n: int, cfg: CompressConfig) -> int:
    """Codebook entries for ``n`` Gaussians: the configured size, at most ``ceil(n / ppc)``."""
    if n == 0:
        return 0
    return max(1, min(cfg.shN_codebook_size, n, math.ceil(n / cfg.shN_points_per_code)))


def attribute_values(splats: dict[str, Tensor]) -> dict[str, Tensor]:
    """The transformed ``[N, C]`` values each attribute is quantised in."""
    n = splats["means"].shape[0]
    return {
        "means": log_transform(splats["means"].detach().float().cpu()),
        "scales": splats["scales"].detach().float().cpu(),
        "quats": canonical_quats(splats["quats"].detach().float().cpu()),
        "opacities": splats["opacities"].detach().float().cpu().reshape(n, 1),
        "sh0": splats["sh0"].detach().float().cpu().reshape(n, 3),
    }


def layout(values: dict[str, Tensor], cfg: CompressConfig) -> tuple[Tensor, dict[str, float]]:
    """``[N]`` Gaussian per raster cell, and the neighbour distance before/after sorting."""
    n = values["means"].shape[0]
    height, width = grid_shape(n)
    identity = torch.arange(n, dtype=torch.int64)
    if cfg.sort == "none" or n == 0:
        return identity, {}
    feats = sort_features(
        [values[k] for k in SORT_WEIGHTS], weights=[SORT_WEIGHTS[k] for k in SORT_WEIGHTS]
    )
    order = morton_layout(values["means"], height, width)
    if cfg.sort == "plas":
        with single_thread():  # hundreds of mid-sized ops: see _threads.single_thread
            order = plas_refine(
                feats,
                order,
                height,
                width,
                iters_per_radius=cfg.plas_iters_per_radius,
                radius_decay=cfg.plas_radius_decay,
                start_radius=cfg.plas_start_radius or None,
                seed=cfg.seed,
            )
    stats = {
        "neighbour_distance_input_order": neighbour_distance(feats, identity, height, width),
        "neighbour_distance_sorted": neighbour_distance(feats, order, height, width),
    }
    return order, stats


def _meta_checksum(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- images ----------------------------------------------------------------------------------


def _to_grid(codes: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[N, C]`` codes in raster order -> ``[H, W, C]``; padding repeats the last Gaussian (it
    is never decoded; repeating keeps the image smooth for the compressor)."""
    n, c = codes.shape
    grid = np.empty((height * width, c), dtype=codes.dtype)
    grid[:n] = codes
    grid[n:] = codes[n - 1]
    return grid.reshape(height, width, c)


def encode_image(plane: np.ndarray, fmt: str, level: int) -> bytes:
    """``[H, W, C]`` uint8 (C in 1, 3, 4) -> lossless PNG or WebP bytes."""
    c = plane.shape[2]
    buf = io.BytesIO()
    if fmt == "png":
        img = Image.fromarray(plane[..., 0] if c == 1 else plane, {1: "L", 3: "RGB", 4: "RGBA"}[c])
        img.save(buf, format="PNG", compress_level=level)
    else:
        if max(plane.shape[:2]) > WEBP_MAX_SIDE:
            raise CompressError(
                f"a {plane.shape[1]}x{plane.shape[0]} plane exceeds WebP's {WEBP_MAX_SIDE} px",
                fix="set compress.image_format=png",
            )
        if c == 1:  # WebP has no grey mode; lossless coding of equal channels costs little
            plane = np.repeat(plane, 3, axis=2)
        img = Image.fromarray(plane, "RGBA" if c == 4 else "RGB")
        # exact: keep colour under alpha 0 (alpha is data here, not transparency). method 4 gives
        # the size of method 6 on these planes at a small fraction of its time.
        img.save(buf, format="WEBP", lossless=True, quality=80, method=4, exact=True)
    return buf.getvalue()


def decode_image(data: bytes, name: str, height: int, width: int, channels: int) -> np.ndarray:
    """Image bytes -> ``[H, W, C]`` uint8, checking size and channels."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            arr = np.asarray(img)
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise CorruptModelError(f"{name}: cannot decode image ({exc})", fix=_FIX) from exc
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[:2] != (height, width) or arr.dtype != np.uint8 or arr.shape[2] < channels:
        raise CorruptModelError(
            f"{name}: image is {arr.shape} {arr.dtype}, expected ({height}, {width}, {channels})"
            " uint8",
            fix=_FIX,
        )
    return arr[..., :channels]


# --- encode ----------------------------------------------------------------------------------


def _relabel_by_position(centroids: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Renumber codebook entries by the mean grid cell of the Gaussians using them.

    ``labels [N]`` are in grid (raster) order. Codebook order is free (decoders only index it);
    numbering entries along the grid makes neighbouring labels numerically closer, which the
    image codec's predictors turn into fewer bytes. Unused entries go last.
    """
    k = centroids.shape[0]
    cells = torch.arange(labels.shape[0], dtype=torch.float64)
    counts = torch.bincount(labels, minlength=k).double()
    mean_cell = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, cells)
    mean_cell = torch.where(counts > 0, mean_cell / counts.clamp_min(1), torch.inf)
    new_of_old = torch.empty(k, dtype=torch.int64)
    new_of_old[torch.argsort(mean_cell, stable=True)] = torch.arange(k)
    return centroids[torch.argsort(mean_cell, stable=True)], new_of_old[labels]


def _encode_shn_group(
    flat: Tensor,
    k: int,
    cfg: CompressConfig,
    prefix: str,
    order: Tensor,
    height: int,
    width: int,
    weights: Tensor | None,
    files: dict[str, bytes],
) -> dict[str, Any]:
    """Vector-quantise ``[N, D]`` SH coefficients into ``files`` (labels planes + codebook);
    return the group's meta (codebook size, label bits and planes, codebook, k-means stats)."""
    n, ext = flat.shape[0], cfg.image_format
    tree = cfg.shN_kmeans_mode == "tree" or (
        cfg.shN_kmeans_mode == "auto" and k > TREE_KMEANS_ABOVE
    )
    km = (kmeans_tree if tree else kmeans)(
        flat,
        k,
        iters=cfg.shN_kmeans_iters,
        metric=cfg.shN_kmeans_metric,
        seed=cfg.seed,
        sample_size=cfg.shN_kmeans_sample,
        weights=weights,
    )
    k = km.centroids.shape[0]
    label_bits = max(1, (k - 1).bit_length())
    centroids, grid_labels = _relabel_by_position(km.centroids, km.labels[order])
    labels = grid_labels.numpy().astype(np.uint16).reshape(n, 1)
    label_planes = []
    for suffix, plane in zip(("hi", "lo"), split_planes(labels, label_bits), strict=False):
        name = f"{prefix}_labels.{ext}" if label_bits <= 8 else f"{prefix}_labels_{suffix}.{ext}"
        files[name] = encode_image(_to_grid(plane, height, width), ext, cfg.png_compress_level)
        label_planes.append(name)
    codebook: dict[str, Any] = {"format": cfg.shN_codebook_format, "shape": [k, flat.shape[1]]}
    if cfg.shN_codebook_format == "uint8":
        cq = quantize(centroids.numpy(), CODEBOOK_BITS)
        # One row per entry, one column per (coefficient, channel): PNG even for webp output
        # (a 65536-row image exceeds WebP's size limit).
        name = f"{prefix}_codebook.png"
        files[name] = encode_image(
            cq.codes.astype(np.uint8)[..., None], "png", cfg.png_compress_level
        )
        codebook.update(file=name, bits=CODEBOOK_BITS, mins=list(cq.mins), maxs=list(cq.maxs))
    else:
        name = f"{prefix}_codebook.f16"
        files[name] = centroids.numpy().astype("<f2").tobytes()
        codebook["file"] = name
    return {
        "codebook_size": k,
        "label_bits": label_bits,
        "label_planes": label_planes,
        "codebook": codebook,
        "kmeans": {
            "metric": cfg.shN_kmeans_metric,
            "mode": "tree" if tree else "flat",
            "weighting": cfg.shN_weighting,
            "iters_run": km.iters,
            "mean_distance": km.inertia,
        },
    }


def encode_splats(splats: Any, cfg: CompressConfig) -> Encoded:
    """Encode Gaussian parameters (a ``ParameterDict`` or dict of tensors, see
    :mod:`splatbench.gaussians.params`) into file contents. Pure: writes nothing."""
    n_input = check_splats(splats)
    sh_degree = splats_sh_degree(splats)
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        bad = int((~torch.isfinite(splats[key].detach())).sum())
        if bad:
            raise CompressError(
                f"{key} has {bad} non-finite values (NaN or inf); the codec cannot quantise them",
                fix="prune or repair those Gaussians before compressing (a diverged training run?)",
            )
    splats, kept, sh_degree = reduce_model(splats, cfg.prune_opacity, cfg.max_sh_degree)
    n = kept.shape[0]
    height, width = grid_shape(n)
    ext = cfg.image_format
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    values = attribute_values(splats)
    order, sort_stats = layout(values, cfg)
    seconds["sort"] = time.perf_counter() - t
    t = time.perf_counter()
    files: dict[str, bytes] = {}
    attributes: dict[str, Any] = {}
    for key, (bits_field, transform) in ATTRIBUTES.items():
        bits = getattr(cfg, bits_field)
        vals = values[key][order]
        extra = None
        if key == "quats":
            # Smallest three: 3 quantised components + the largest's index in the 4th channel.
            vals, largest = smallest_three(vals)
            extra = largest.numpy().astype(np.uint16).reshape(-1, 1)
        q = quantize(vals.numpy(), bits)
        codes = q.codes if extra is None else np.concatenate([q.codes, extra], axis=1)
        planes = []
        if n:
            for suffix, plane in zip(("hi", "lo"), split_planes(codes, bits), strict=False):
                name = f"{key}.{ext}" if bits <= 8 else f"{key}_{suffix}.{ext}"
                files[name] = encode_image(
                    _to_grid(plane, height, width), ext, cfg.png_compress_level
                )
                planes.append(name)
        attributes[key] = {
            "bits": bits,
            "channels": int(codes.shape[1]),
            "transform": transform,
            "mins": list(q.mins),
            "maxs": list(q.maxs),
            "planes": planes,
        }

    seconds["quantize_images"] = time.perf_counter() - t
    t = time.perf_counter()
    shn_meta: dict[str, Any] | None = None
    num_rest = num_sh_bases(sh_degree) - 1
    if num_rest and n:
        k = effective_codebook_size(n, cfg)
        shn = splats["shN"].detach().float().cpu()[:, :num_rest, :]
        weights = None
        if cfg.shN_weighting == "opacity":
            weights = torch.sigmoid(splats["opacities"].detach().float().cpu().reshape(n))
        if cfg.shN_bands == "joint":
            groups = [("shN", 0, num_rest)]
        else:  # one codebook per SH degree l: coefficients [l^2 - 1, (l + 1)^2 - 1)
            groups = [(f"shN{deg}", deg * deg - 1, (deg + 1) ** 2 - 1)
                      for deg in range(1, sh_degree + 1)]  # fmt: skip
        metas = []
        for prefix, lo, hi in groups:
            flat = shn[:, lo:hi, :].reshape(n, (hi - lo) * 3)
            group = _encode_shn_group(flat, k, cfg, prefix, order, height, width, weights, files)
            metas.append({"coeffs": [lo, hi], **group} if cfg.shN_bands != "joint" else group)
        shn_meta = {
            "num_coeffs": num_rest,
            "layout": "[K-1, 3] flattened, coefficient-major (shN[n].reshape(-1))",
        }
        if cfg.shN_bands == "joint":
            shn_meta.update(metas[0])
        else:
            shn_meta.update(bands="degree", groups=metas)

    seconds["shN"] = time.perf_counter() - t
    version = 2 if shn_meta is not None and "groups" in shn_meta else 1
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": version,
        "num_gaussians": n,
        "sh_degree": sh_degree,
        "grid": {"height": height, "width": width, "padding": height * width - n},
        "image_format": ext,
        "attributes": attributes,
        "shN": shn_meta,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        },
        "encoder": {"settings": cfg.to_dict(), "layout": sort_stats},
    }
    if n != n_input:
        meta["encoder"]["pruned"] = {"input_gaussians": n_input, "removed": n_input - n}
    meta["meta_sha256"] = _meta_checksum(meta)
    # order: input index of decoded Gaussian i (through the pruning, when there was any).
    return Encoded(files=files, meta=meta, order=kept[order], seconds=seconds)


def reduce_model(
    splats: Any, prune_opacity: float, max_sh_degree: int
) -> tuple[dict[str, Tensor], Tensor, int]:
    """Drop Gaussians with ``sigmoid(opacity) < prune_opacity`` and SH above ``max_sh_degree``.

    Returns the reduced parameters, the ``[M]`` input index of each kept Gaussian and the SH
    degree kept (``-1``: the model's).
    """
    n = splats["means"].shape[0]
    degree = splats_sh_degree(splats)
    if max_sh_degree >= 0:
        degree = min(degree, max_sh_degree)
    keep_rest = num_sh_bases(degree) - 1
    if prune_opacity > 0 and n:
        mask = torch.sigmoid(splats["opacities"].detach().float().cpu().reshape(n)) >= prune_opacity
        kept = torch.nonzero(mask).squeeze(1)
    else:
        kept = torch.arange(n, dtype=torch.int64)
    out = {k: splats[k].detach().float().cpu()[kept] for k in ("means", "scales", "quats",
                                                               "opacities", "sh0")}  # fmt: skip
    out["shN"] = splats["shN"].detach().float().cpu()[kept][:, :keep_rest, :]
    return out, kept, degree


def write_encoded(enc: Encoded, directory: Path) -> int:
    """Write the files and meta.json into ``directory``; returns the bytes written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in enc.files.items():
        atomic_write_bytes(directory / name, data)
    text = json.dumps(enc.meta, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(directory / META_FILE, text.encode("utf-8"))
    return sum(len(d) for d in enc.files.values()) + len(text.encode("utf-8"))


# --- decode ----------------------------------------------------------------------------------


def read_meta(directory: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Load and verify meta.json and every file it lists.

    Raises:
        CorruptModelError: missing or unparsable meta.json, wrong format or version, a meta.json
            edited after encoding, a missing file, or a file whose size or sha256 differs.
    """
    directory = Path(directory)
    path = directory / META_FILE
    if not path.is_file():
        raise CorruptModelError(
            f"{path}: missing; {directory} is not a compressed splatbench model", fix=_FIX
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"{path}: not valid JSON ({exc})", fix=_FIX) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CorruptModelError(f"{path}: format is {got!r}, expected {FORMAT_NAME!r}", fix=_FIX)
    if meta.get("version") not in READ_VERSIONS:
        raise CorruptModelError(
            f"{path}: format version {meta.get('version')!r}, this splatbench reads "
            f"versions {list(READ_VERSIONS)}",
            fix="decode with the splatbench version that wrote it, or re-run compress",
        )
    try:
        expected = _meta_checksum(meta)
    except (TypeError, ValueError) as exc:
        raise CorruptModelError(f"{path}: cannot checksum ({exc})", fix=_FIX) from exc
    if meta.get("meta_sha256") != expected:
        raise CorruptModelError(
            f"{path}: checksum mismatch, meta.json was edited or damaged after encoding", fix=_FIX
        )
    listed = meta.get("files")
    if not isinstance(listed, dict) or not all(
        isinstance(i, dict) and {"bytes", "sha256"} <= set(i) for i in listed.values()
    ):
        raise CorruptModelError(f"{path}: 'files' is missing or malformed", fix=_FIX)
    files: dict[str, bytes] = {}
    for name, info in listed.items():
        fpath = directory / name
        if Path(name).name != name or not fpath.is_file():
            raise CorruptModelError(f"{fpath}: listed in meta.json but missing", fix=_FIX)
        data = fpath.read_bytes()
        if len(data) != info["bytes"]:
            raise CorruptModelError(
                f"{fpath}: {len(data)} bytes, meta.json records {info['bytes']} (truncated?)",
                fix=_FIX,
            )
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise CorruptModelError(
                f"{fpath}: sha256 differs from meta.json (file modified or damaged)", fix=_FIX
            )
        files[name] = data
    return meta, files


def decode_dir(directory: Path) -> dict[str, Tensor]:
    """Verify and decode a model directory to parameter tensors (see params.py for shapes)."""
    meta, files = read_meta(directory)
    try:
        return _decode(meta, files)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CorruptModelError(
            f"{Path(directory) / META_FILE}: inconsistent with its planes ({exc!r})", fix=_FIX
        ) from exc


def _decode(meta: dict[str, Any], files: dict[str, bytes]) -> dict[str, Tensor]:
    n = int(meta["num_gaussians"])
    sh_degree = int(meta["sh_degree"])
    num_rest = num_sh_bases(sh_degree) - 1
    height, width = int(meta["grid"]["height"]), int(meta["grid"]["width"])
    if (height, width) != grid_shape(n):
        raise CorruptModelError(f"grid {height}x{width} does not fit {n} Gaussians", fix=_FIX)
    out: dict[str, Tensor] = {}
    for key in ATTRIBUTES:
        a = meta["attributes"][key]
        bits, channels = int(a["bits"]), int(a["channels"])
        if n == 0:
            vals = np.zeros((0, channels), np.float32)
        else:
            planes = [
                decode_image(files[name], name, height, width, channels).reshape(-1, channels)[:n]
                for name in a["planes"]
            ]
            codes = join_planes(planes, bits)
            if key == "quats":
                largest = codes[:, 3].astype(np.int64)
                if largest.max(initial=0) > 3:
                    raise CorruptModelError("quats: largest-component index above 3", fix=_FIX)
                rest = dequantize(codes[:, :3], np.asarray(a["mins"]), np.asarray(a["maxs"]), bits)
                vals = from_smallest_three(
                    torch.from_numpy(rest), torch.from_numpy(largest)
                ).numpy()
            else:
                vals = dequantize(codes, np.asarray(a["mins"]), np.asarray(a["maxs"]), bits)
        out[key] = torch.from_numpy(vals)
    out["means"] = inverse_log_transform(out["means"])
    out["opacities"] = out["opacities"].reshape(n)
    out["sh0"] = out["sh0"].reshape(n, 1, 3)
    shn = meta["shN"]
    if num_rest == 0 or n == 0:
        out["shN"] = torch.zeros((n, num_rest, 3), dtype=torch.float32)
        return out
    if int(shn["num_coeffs"]) != num_rest:
        raise CorruptModelError(f"shN.num_coeffs does not match SH degree {sh_degree}", fix=_FIX)
    groups = shn.get("groups", [{"coeffs": [0, num_rest], **shn}])
    out_shn = np.zeros((n, num_rest, 3), np.float32)
    covered = 0
    for group in groups:
        lo, hi = (int(v) for v in group["coeffs"])
        if not 0 <= lo < hi <= num_rest or lo != covered:
            raise CorruptModelError(f"shN group coefficients [{lo}, {hi}) out of order", fix=_FIX)
        covered = hi
        out_shn[:, lo:hi, :] = _decode_shn_group(group, files, n, height, width, (hi - lo) * 3)
    if covered != num_rest:
        raise CorruptModelError(f"shN groups cover {covered} of {num_rest} coefficients", fix=_FIX)
    out["shN"] = torch.from_numpy(out_shn)
    return out


def _decode_shn_group(
    group: dict[str, Any], files: dict[str, bytes], n: int, height: int, width: int, dim: int
) -> np.ndarray:
    """``[N, dim / 3, 3]`` decoded coefficients of one shN codebook group."""
    k, width_cb = (int(v) for v in group["codebook"]["shape"])
    if width_cb != dim:
        raise CorruptModelError(f"codebook width {width_cb} does not match {dim} values", fix=_FIX)
    cb = group["codebook"]
    if cb["format"] == "uint8":
        img = decode_image(files[cb["file"]], cb["file"], k, dim, 1)[..., 0]
        centroids = dequantize(img, np.asarray(cb["mins"]), np.asarray(cb["maxs"]), cb["bits"])
    else:
        raw = files[cb["file"]]
        if len(raw) != k * dim * 2:
            raise CorruptModelError(f"{cb['file']}: {len(raw)} bytes, expected {k * dim * 2}")
        centroids = np.frombuffer(raw, dtype="<f2").reshape(k, dim).astype(np.float32)
    label_bits = int(group["label_bits"])
    planes = [
        decode_image(files[name], name, height, width, 1).reshape(-1, 1)[:n]
        for name in group["label_planes"]
    ]
    labels = join_planes(planes, label_bits)[:, 0].astype(np.int64)
    if labels.max(initial=0) >= k:
        raise CorruptModelError(f"shN label {int(labels.max())} >= codebook size {k}", fix=_FIX)
    return centroids[labels].reshape(n, dim // 3, 3)
