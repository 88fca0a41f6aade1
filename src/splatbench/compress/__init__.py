"""Compression of trained Gaussians: the self-organizing-grid codec (``splatbench-sog``).

Gaussians are laid out on a 2D grid (Morton order refined by PLAS-style parallel swaps) so that
neighbours are similar, quantised per attribute, the SH rest vector-quantised with k-means, and
stored as lossless PNG/WebP planes plus a checksummed ``meta.json``. Format:
``docs/compressed-format.md``.
"""

from splatbench.compress.api import compress_splats, decode_to_ply, decompress, max_abs_errors
from splatbench.compress.codec import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Encoded,
    decode_dir,
    encode_splats,
    read_meta,
    write_encoded,
)
from splatbench.compress.config import CompressConfig
from splatbench.compress.errors import CompressError, CorruptModelError
from splatbench.compress.kmeans import KMeansResult, kmeans, kmeans_tree
from splatbench.compress.sort import (
    grid_shape,
    morton_layout,
    neighbour_distance,
    plas_refine,
    sort_features,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CompressConfig",
    "CompressError",
    "CorruptModelError",
    "Encoded",
    "KMeansResult",
    "compress_splats",
    "decode_dir",
    "decode_to_ply",
    "decompress",
    "encode_splats",
    "grid_shape",
    "kmeans",
    "kmeans_tree",
    "max_abs_errors",
    "morton_layout",
    "neighbour_distance",
    "plas_refine",
    "read_meta",
    "sort_features",
    "write_encoded",
]
