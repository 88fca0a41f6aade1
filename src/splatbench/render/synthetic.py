"""Seeded random Gaussian scenes for tests and benchmarks (shaped like a trained splat)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RandomScene:
    """Activated Gaussian parameters plus cameras, ready for :func:`splatbench.render.rasterize`.

    means [N, 3], quats [N, 4], scales [N, 3], opacities [N], colors [N, K, 3] (SH) or
    [N, 3] (RGB), viewmats [C, 4, 4], Ks [C, 3, 3].
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor
    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int
    sh_degree: int | None

    def tensors(self) -> dict[str, Tensor]:
        """The Gaussian parameters by name (means, quats, scales, opacities, colors)."""
        return {
            "means": self.means,
            "quats": self.quats,
            "scales": self.scales,
            "opacities": self.opacities,
            "colors": self.colors,
        }


def look_at_viewmat(eye: Tensor, target: Tensor) -> Tensor:
    """World-to-camera matrix [4, 4] (OpenCV axes: x right, y down, z forward)."""
    z = torch.nn.functional.normalize(target - eye, dim=0)
    up = torch.tensor([0.0, -1.0, 0.0], dtype=eye.dtype)
    x = torch.nn.functional.normalize(torch.linalg.cross(up, z), dim=0)
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
    view = torch.eye(4, dtype=eye.dtype)
    view[:3, :3] = R
    view[:3, 3] = -R @ eye
    return view


def random_scene(
    n: int,
    width: int,
    height: int,
    *,
    n_cameras: int = 1,
    sh_degree: int | None = 3,
    pixel_sigma: float = 2.0,
    depth_range: tuple[float, float] = (2.0, 6.0),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> RandomScene:
    """Gaussians filling the first camera's frustum, most of them a few pixels wide.

    Scales are log-normal around ``pixel_sigma`` pixels at each Gaussian's depth (anisotropic,
    randomly rotated), opacities spread over (0, 1) like a trained model's, SH DC terms give
    colours in [0, 1] and higher bands are small. Extra cameras orbit the scene centre by a few
    degrees. The focal length gives a ~60 degree horizontal field of view.
    """
    g = torch.Generator().manual_seed(seed)
    f = 0.87 * width  # tan(30 deg) ~ 0.577 -> half width / f
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    near, far = depth_range
    z = near + (far - near) * torch.rand(n, generator=g, dtype=dtype)
    u = (torch.rand(n, generator=g, dtype=dtype) * 1.1 - 0.05) * width
    v = (torch.rand(n, generator=g, dtype=dtype) * 1.1 - 0.05) * height
    means = torch.stack([(u - width / 2) * z / f, (v - height / 2) * z / f, z], dim=-1)
    world_per_px = z / f
    log_s = torch.log(pixel_sigma * world_per_px)[:, None] + 0.5 * torch.randn(
        n, 3, generator=g, dtype=dtype
    )
    scales = torch.exp(log_s)
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    opacities = torch.sigmoid(1.5 * torch.randn(n, generator=g, dtype=dtype))
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g, dtype=dtype)
    else:
        k = (sh_degree + 1) ** 2
        colors = (
            0.3
            * torch.randn(n, k, 3, generator=g, dtype=dtype)
            / torch.arange(1, k + 1, dtype=dtype).sqrt()[None, :, None]
        )
        colors[:, 0] = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) / 0.28209479177387814
    centre = torch.tensor([0.0, 0.0, sum(depth_range) / 2], dtype=dtype)
    views = []
    for i in range(n_cameras):
        if i == 0:
            views.append(torch.eye(4, dtype=dtype))
            continue
        angle = torch.tensor(0.08 * i * (-1) ** i, dtype=dtype)
        eye = centre + centre[2] * torch.stack(
            [torch.sin(angle), 0.05 * torch.cos(angle) * i, -torch.cos(angle)]
        )
        views.append(look_at_viewmat(eye, centre))
    return RandomScene(
        means=means,
        quats=quats,
        scales=scales,
        opacities=opacities,
        colors=colors,
        viewmats=torch.stack(views),
        Ks=K.expand(n_cameras, 3, 3).clone(),
        width=width,
        height=height,
        sh_degree=sh_degree,
    )
