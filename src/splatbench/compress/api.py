"""File-level API: PLY -> compressed directory (with metrics) -> parameters or PLY."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from splatbench.compress.codec import META_FILE, decode_dir, encode_splats, write_encoded
from splatbench.compress.config import CompressConfig
from splatbench.compress.quant import canonical_quats
from splatbench.fsutil import staging_dir
from splatbench.gaussians.params import check_splats as check_input_count
from splatbench.gaussians.ply import read_ply, write_ply


def _as_config(cfg: CompressConfig | Mapping[str, Any] | None) -> CompressConfig:
    return cfg if isinstance(cfg, CompressConfig) else CompressConfig.from_dict(cfg)


def decompress(out_dir: Path) -> torch.nn.ParameterDict:
    """Verify and decode a compressed model directory (raises ``CorruptModelError``)."""
    tensors = decode_dir(Path(out_dir))
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in tensors.items()})


def decode_to_ply(out_dir: Path, ply_path: Path) -> torch.nn.ParameterDict:
    """Decode ``out_dir`` and write the standard 3DGS PLY to ``ply_path`` (atomically)."""
    splats = decompress(out_dir)
    write_ply(Path(ply_path), splats)
    return splats


def max_abs_errors(
    original: Mapping[str, torch.Tensor], decoded: Mapping[str, torch.Tensor], order: torch.Tensor
) -> dict[str, float]:
    """Per-attribute max |decoded - original| (quaternions compared after canonicalisation)."""
    errs: dict[str, float] = {}
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        ref = original[key].detach().float().cpu()[order]
        if key == "shN":  # a reduced SH degree compares the degrees that were kept
            ref = ref[:, : decoded[key].shape[1], :]
        if key == "quats":
            ref = canonical_quats(ref)
        dec = decoded[key].detach().float().cpu()
        errs[key] = float((dec - ref).abs().max()) if ref.numel() else 0.0
    return errs


def compress_splats(
    ply_path: Path,
    out_dir: Path,
    cfg: CompressConfig | Mapping[str, Any] | None = None,
    *,
    decoded_ply: Path | None = None,
) -> dict[str, Any]:
    """Compress a 3DGS PLY into ``out_dir`` (built in a staging directory, swapped in whole).

    Args:
        ply_path: input PLY (3DGS layout).
        out_dir: output directory; replaced atomically.
        cfg: a :class:`CompressConfig` or the ``compress`` params mapping.
        decoded_ply: where to also write the decoded PLY (for evaluation), if given; keep it
            outside ``out_dir`` (the evaluate stage counts every file of that directory).

    Returns:
        Metrics: ``bytes`` (the format's files: planes + meta.json), ``megabytes`` (decimal),
        ``bits_per_gaussian``, ``ratio`` (PLY bytes / compressed bytes), ``encode_seconds``
        (encode + write), ``decode_seconds`` (verify + decode), ``num_gaussians``,
        ``max_abs_error`` per attribute, ``settings`` and encoder details.
    """
    config = _as_config(cfg)
    ply_path, out_dir = Path(ply_path), Path(out_dir)
    splats = read_ply(ply_path)
    t0 = time.perf_counter()
    enc = encode_splats(splats, config)
    with staging_dir(out_dir) as stage:
        write_encoded(enc, stage)
    encode_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    decoded = decompress(out_dir)
    decode_s = time.perf_counter() - t1
    # Storage is what the format owns (its planes and meta.json), measured on disk, so a decoded
    # PLY written beside (or, unwisely, inside) out_dir never counts.
    owned = [*enc.meta["files"], META_FILE]
    total = sum((out_dir / name).stat().st_size for name in owned)
    if decoded_ply is not None:
        write_ply(Path(decoded_ply), decoded)
    n = enc.meta["num_gaussians"]
    ply_bytes = ply_path.stat().st_size
    per_file = {name: info["bytes"] for name, info in enc.meta["files"].items()}
    shn = enc.meta["shN"]
    groups = [g["codebook_size"] for g in shn.get("groups", [shn])] if shn else []
    return {
        "codec": enc.meta["format"],
        "format_version": enc.meta["version"],
        "num_gaussians": n,
        "sh_degree": enc.meta["sh_degree"],
        "bytes": total,
        "megabytes": total / 1e6,
        "bits_per_gaussian": 8.0 * total / n if n else None,
        "ply_bytes": ply_bytes,
        "ratio": ply_bytes / total if total else None,
        "encode_seconds": encode_s,
        "encode_step_seconds": enc.seconds,
        "decode_seconds": decode_s,
        "grid": [enc.meta["grid"]["height"], enc.meta["grid"]["width"]],
        "shN_codebook_size": sum(groups),
        "shN_codebook_sizes": groups,
        "pruned_gaussians": enc.meta["encoder"].get("pruned", {}).get("removed", 0),
        "input_gaussians": check_input_count(splats),
        "file_bytes": per_file,
        "layout": enc.meta["encoder"]["layout"],
        "max_abs_error": max_abs_errors(splats, decoded, enc.order),
        "settings": config.to_dict(),
    }
