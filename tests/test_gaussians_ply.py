"""PLY write/read in the original 3DGS layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData

from splatbench.gaussians import (
    PlyFormatError,
    create_splats,
    knn_log_scales,
    read_ply,
    write_ply,
)


def _random_splats(n: int, sh_degree: int, seed: int = 0) -> torch.nn.ParameterDict:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn((n, 3), generator=g)
    splats = create_splats(means, torch.rand((n, 3), generator=g), knn_log_scales(means.numpy()),
                           sh_degree=sh_degree, init_opacity=0.3, generator=g)  # fmt: skip
    with torch.no_grad():  # non-trivial values everywhere, so a swapped column would show
        for key in splats:
            splats[key].add_(torch.randn(splats[key].shape, generator=g) * 0.1)
    return splats


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_round_trip_is_exact(tmp_path, sh_degree):
    splats = _random_splats(50, sh_degree)
    path = tmp_path / "out" / "point_cloud.ply"
    write_ply(path, splats)
    back = read_ply(path)
    assert set(back) == set(splats)
    for key in splats:
        assert back[key].shape == splats[key].shape, key
        assert torch.equal(back[key], splats[key].detach()), key
    # Atomic write: nothing but the final file in the directory.
    assert [p.name for p in path.parent.iterdir()] == ["point_cloud.ply"]


def test_layout_matches_original_3dgs(tmp_path):
    splats = _random_splats(7, sh_degree=1)
    path = tmp_path / "pc.ply"
    write_ply(path, splats)
    ply = PlyData.read(str(path))
    v = ply["vertex"]
    names = [p.name for p in v.properties]
    assert names == (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(9)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    assert all(p.val_dtype in ("f4", "<f4", "float", "float32") for p in v.properties)
    assert ply.byte_order == "<" and not ply.text
    shn = splats["shN"].detach().numpy()  # [N, 3 coeffs, 3 channels]
    # Channel-major: f_rest_0..2 are the red channel of coefficients 0..2, then green, blue.
    assert np.array_equal(v["f_rest_1"], shn[:, 1, 0])
    assert np.array_equal(v["f_rest_3"], shn[:, 0, 1])
    assert np.array_equal(v["f_rest_8"], shn[:, 2, 2])
    # Raw (pre-activation) values, quaternion w first.
    assert np.array_equal(v["opacity"], splats["opacities"].detach().numpy())
    assert np.array_equal(v["rot_0"], splats["quats"].detach().numpy()[:, 0])
    assert np.array_equal(v["scale_2"], splats["scales"].detach().numpy()[:, 2])


def test_read_rejects_non_3dgs_ply(tmp_path):
    path = tmp_path / "points.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")
    with pytest.raises(PlyFormatError, match="missing properties"):
        read_ply(path)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"not a ply at all")
    with pytest.raises(PlyFormatError, match=r"garbage\.ply"):
        read_ply(garbage)
