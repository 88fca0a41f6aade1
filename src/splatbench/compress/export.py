"""Export a trained model to the viewer formats: PlayCanvas SOG and Niantic SPZ.

:func:`export_viewer_formats` writes ``<out_dir>/scene.sog`` and ``<out_dir>/scene.spz`` (the
shipped files, nothing else) and, for evaluation, their decodes as 3DGS PLYs under
``decoded_dir`` (``playcanvas_sog.ply``, ``spz.ply``), each decoded by our own readers. Both
directories are built aside and swapped in whole, so an interrupted export leaves the previous
one intact. Formats: ``docs/viewer-formats.md``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from splatbench.compress.api import max_abs_errors
from splatbench.compress.codec import reduce_model
from splatbench.compress.playcanvas_sog import SogConfig, decode_sog, encode_sog, write_sog
from splatbench.compress.spz import SpzConfig, decode_spz, encode_spz
from splatbench.errors import ConfigError, check_known_keys
from splatbench.fsutil import atomic_write_bytes, staging_dir
from splatbench.gaussians.ply import read_ply, write_ply

#: format key -> (model name in eval.json, shipped file name, decoded PLY name)
FORMATS: dict[str, tuple[str, str, str]] = {
    "sog": ("playcanvas_sog", "scene.sog", "playcanvas_sog.ply"),
    "spz": ("spz", "scene.spz", "spz.ply"),
}
FORMAT_TITLES = {"sog": "PlayCanvas SOG (meta.json v2, .sog ZIP)", "spz": "Niantic SPZ"}


@dataclass(frozen=True)
class ExportConfig:
    """The ``export`` params section."""

    formats: tuple[str, ...] = ("sog", "spz")
    prune_opacity: float = 0.0
    sog: SogConfig = field(default_factory=SogConfig)
    spz: SpzConfig = field(default_factory=SpzConfig)

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or len(set(self.formats)) != len(self.formats):
            raise ConfigError(
                f"export.formats={list(self.formats)} must be distinct names from {list(FORMATS)}",
                fix="set export.formats to e.g. [sog, spz]",
            )
        if not 0.0 <= self.prune_opacity < 1.0:
            raise ConfigError(f"export.prune_opacity={self.prune_opacity} must be in [0, 1)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ExportConfig:
        data = dict(data or {})
        check_known_keys(data, ("formats", "prune_opacity", "sog", "spz"), "export")
        formats = data.get("formats", cls.formats)
        if isinstance(formats, str) or not all(isinstance(f, str) for f in formats):
            raise ConfigError(f"export.formats={formats!r} must be a list of format names")
        try:
            prune = float(data.get("prune_opacity", 0.0))
        except (TypeError, ValueError):
            raise ConfigError(
                f"export.prune_opacity={data.get('prune_opacity')!r} must be a number"
            ) from None
        return cls(
            formats=tuple(formats),
            prune_opacity=prune,
            sog=SogConfig.from_dict(data.get("sog")),
            spz=SpzConfig.from_dict(data.get("spz")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "formats": list(self.formats),
            "prune_opacity": self.prune_opacity,
            "sog": self.sog.to_dict(),
            "spz": self.spz.to_dict(),
        }


def _format_metrics(
    original: Mapping[str, torch.Tensor],
    decoded: Mapping[str, torch.Tensor],
    order: torch.Tensor,
    size: int,
    ply_bytes: int,
    encode_s: float,
    decode_s: float,
) -> dict[str, Any]:
    n = int(decoded["means"].shape[0])
    return {
        "bytes": size,
        "megabytes": size / 1e6,
        "bits_per_gaussian": 8.0 * size / n if n else None,
        "ratio": ply_bytes / size if size else None,
        "num_gaussians": n,
        "sh_degree": {0: 0, 3: 1, 8: 2, 15: 3}.get(int(decoded["shN"].shape[1])),
        "encode_seconds": encode_s,
        "decode_seconds": decode_s,
        "max_abs_error": max_abs_errors(original, decoded, order),
    }


def export_viewer_formats(
    ply_path: Path,
    out_dir: Path,
    cfg: ExportConfig | Mapping[str, Any] | None = None,
    *,
    decoded_dir: Path | None = None,
) -> dict[str, Any]:
    """Write the configured viewer formats of ``ply_path`` into ``out_dir``.

    Args:
        ply_path: trained model (3DGS PLY).
        out_dir: receives ``scene.sog`` / ``scene.spz`` only (replaced as a whole).
        cfg: an :class:`ExportConfig` or the ``export`` params mapping.
        decoded_dir: where to write each format's decode (our reader) as a PLY, if given.

    Returns:
        Metrics: per format (keyed by eval model name) the file, ``bytes``, ``megabytes``,
        ``bits_per_gaussian``, ``ratio`` vs the PLY, encode/decode seconds, Gaussian count, SH
        degree, the format version and settings, and ``max_abs_error`` per attribute against the
        input (rotations after canonicalisation; opacity as logits).
    """
    config = cfg if isinstance(cfg, ExportConfig) else ExportConfig.from_dict(cfg)
    started = time.perf_counter()
    ply_path, out_dir = Path(ply_path), Path(out_dir)
    splats = {k: v.detach() for k, v in read_ply(ply_path).items()}
    ply_bytes = ply_path.stat().st_size
    reduced, kept, _ = reduce_model(splats, config.prune_opacity, -1)
    formats: dict[str, Any] = {}
    decoded_models: dict[str, dict[str, torch.Tensor]] = {}
    with staging_dir(out_dir) as stage:
        for fmt in config.formats:
            model, file_name, _ = FORMATS[fmt]
            t0 = time.perf_counter()
            if fmt == "sog":
                enc = encode_sog(reduced, config.sog)
                path = stage / (file_name if config.sog.bundle else "scene_sog")
                size = write_sog(enc, path, bundle=config.sog.bundle)
                encode_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                decoded = decode_sog(path)
                version: Any = enc.meta["version"]
                extra = {"palette_size": enc.palette_size, "meta_version": version}
            else:
                enc_spz = encode_spz(reduced, config.spz)
                path = stage / file_name
                atomic_write_bytes(path, enc_spz.data)
                size = len(enc_spz.data)
                encode_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                decoded = decode_spz(enc_spz.data, file_name)
                version = config.spz.version
                extra = {
                    "spz_version": version,
                    "fractional_bits": enc_spz.fractional_bits,
                    "stream_bytes": enc_spz.stream_bytes,
                }
            decode_s = time.perf_counter() - t1
            order = kept[enc.order if fmt == "sog" else enc_spz.order]
            formats[model] = {
                "format": fmt,
                "title": FORMAT_TITLES[fmt],
                "file": path.name,
                **_format_metrics(splats, decoded, order, size, ply_bytes, encode_s, decode_s),
                **extra,
                "settings": getattr(config, fmt).to_dict(),
            }
            decoded_models[model] = decoded
    if decoded_dir is not None:
        with staging_dir(Path(decoded_dir)) as dstage:
            for model, decoded in decoded_models.items():
                write_ply(dstage / FORMATS[_fmt_of(model)][2], decoded)
    return {
        "ply_bytes": ply_bytes,
        "input_gaussians": int(splats["means"].shape[0]),
        "pruned": int(splats["means"].shape[0] - kept.shape[0]),
        "prune_opacity": config.prune_opacity,
        "formats": formats,
        "seconds": time.perf_counter() - started,
        "coordinates": "as in the PLY (no axis conversion), as splat-transform and ply_to_spz",
    }


def _fmt_of(model: str) -> str:
    return next(f for f, (m, _, _) in FORMATS.items() if m == model)
