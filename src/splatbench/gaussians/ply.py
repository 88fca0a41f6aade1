"""PLY files in the layout of the original 3DGS code (read by every 3DGS viewer and tool).

One ``vertex`` element, binary little-endian float32 properties, in this order::

    x y z  nx ny nz  f_dc_0..2  f_rest_0..(3*(K-1)-1)  opacity  scale_0..2  rot_0..3

- ``f_dc_*``: the degree-0 SH coefficient per channel (r, g, b).
- ``f_rest_*``: higher SH coefficients **channel-major** (all red coefficients, then green, then
  blue), because the original code flattens ``features_rest`` transposed to ``[N, 3, K-1]``;
  our ``shN`` is ``[N, K-1, 3]``, so it is transposed on write and back on read.
- ``opacity`` is the logit, ``scale_*`` the log standard deviations, ``rot_*`` the quaternion
  ``(w, x, y, z)``: the raw parameters, not their activations. Normals are written as zeros.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement, PlyParseError

from splatbench.errors import SplatbenchError
from splatbench.fsutil import atomic_write_bytes
from splatbench.gaussians.params import check_splats, sh_degree_from_bases


class PlyFormatError(SplatbenchError):
    """A PLY file is not a 3DGS point cloud this reader understands."""


def ply_property_names(num_rest: int) -> list[str]:
    """Property names of the 3DGS layout with ``num_rest`` ``f_rest_*`` fields."""
    return [
        "x", "y", "z", "nx", "ny", "nz",
        *(f"f_dc_{i}" for i in range(3)),
        *(f"f_rest_{i}" for i in range(num_rest)),
        "opacity",
        *(f"scale_{i}" for i in range(3)),
        *(f"rot_{i}" for i in range(4)),
    ]  # fmt: skip


def splats_to_ply_bytes(splats: torch.nn.ParameterDict | dict[str, torch.Tensor]) -> bytes:
    """Serialise Gaussian parameters to the bytes of a binary 3DGS PLY file."""
    n = check_splats(splats)

    def host(key: str) -> np.ndarray:
        return splats[key].detach().float().cpu().numpy()

    shn = host("shN")  # [N, K-1, 3]
    f_rest = shn.transpose(0, 2, 1).reshape(n, -1)  # channel-major, as the original 3DGS
    columns = np.concatenate(
        [
            host("means"),
            np.zeros((n, 3), dtype=np.float32),
            host("sh0").reshape(n, 3),
            f_rest,
            host("opacities").reshape(n, 1),
            host("scales"),
            host("quats"),
        ],
        axis=1,
    ).astype(np.float32)
    names = ply_property_names(f_rest.shape[1])
    vertex = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        vertex[name] = columns[:, i]
    buf = io.BytesIO()
    PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<").write(buf)
    return buf.getvalue()


def write_ply(path: Path, splats: torch.nn.ParameterDict | dict[str, torch.Tensor]) -> None:
    """Write ``splats`` to ``path`` (3DGS layout) atomically: temp file, then rename."""
    atomic_write_bytes(Path(path), splats_to_ply_bytes(splats))


def read_ply(path: Path, device: torch.device | str = "cpu") -> torch.nn.ParameterDict:
    """Read a 3DGS PLY file into a parameter dict (see :mod:`splatbench.gaussians.params`).

    Raises:
        PlyFormatError: the file is unreadable, has no ``vertex`` element, or lacks a 3DGS
            property (the message names the file and what is missing).
    """
    path = Path(path)
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"]
    except (OSError, ValueError, KeyError, IndexError, PlyParseError) as exc:
        raise PlyFormatError(
            f"{path}: cannot read a PLY vertex element ({exc})",
            fix="check the file is a 3DGS point_cloud.ply (binary PLY with a 'vertex' element)",
        ) from exc
    names = [p.name for p in vertex.properties]
    num_rest = sum(1 for name in names if name.startswith("f_rest_"))
    wanted = ply_property_names(num_rest)
    missing = [name for name in wanted if name not in names and not name.startswith("n")]
    if missing:
        raise PlyFormatError(
            f"{path}: not a 3DGS point cloud, missing properties {missing[:8]}",
            fix="write it with splatbench or the original 3DGS code",
        )
    if num_rest % 3:
        raise PlyFormatError(f"{path}: {num_rest} f_rest_* properties is not a multiple of 3")
    try:
        sh_degree_from_bases(num_rest // 3 + 1)
    except ValueError as exc:
        raise PlyFormatError(f"{path}: {num_rest} f_rest_* properties: {exc}") from exc
    data = vertex.data
    n = len(data)

    def cols(*keys: str) -> np.ndarray:
        return np.stack([np.asarray(data[k], dtype=np.float32) for k in keys], axis=1)

    f_rest = cols(*(f"f_rest_{i}" for i in range(num_rest))) if num_rest else np.zeros((n, 0))
    shn = f_rest.reshape(n, 3, num_rest // 3).transpose(0, 2, 1)  # back to [N, K-1, 3]
    arrays = {
        "means": cols("x", "y", "z"),
        "scales": cols("scale_0", "scale_1", "scale_2"),
        "quats": cols("rot_0", "rot_1", "rot_2", "rot_3"),
        "opacities": np.asarray(data["opacity"], dtype=np.float32).reshape(n),
        "sh0": cols("f_dc_0", "f_dc_1", "f_dc_2").reshape(n, 1, 3),
        "shN": np.ascontiguousarray(shn, dtype=np.float32),
    }
    return torch.nn.ParameterDict(
        {
            k: torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(v)).float().to(device))
            for k, v in arrays.items()
        }
    )
