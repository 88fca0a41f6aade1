"""The Gaussian parameter container and its conventions.

A scene's Gaussians are a :class:`torch.nn.ParameterDict` with the keys and activations gsplat's
trainer and strategies use, so gsplat's ``DefaultStrategy`` and our strategies can edit it in
place (they replace entries with resized ``Parameter`` objects):

==========  =============  ==========================================================
key         shape          meaning
==========  =============  ==========================================================
means       ``[N, 3]``     world-space centres
scales      ``[N, 3]``     log of the per-axis standard deviations (``exp`` to use)
quats       ``[N, 4]``     rotation quaternions ``(w, x, y, z)``, not normalised
opacities   ``[N]``        logit of the opacity (``sigmoid`` to use)
sh0         ``[N, 1, 3]``  degree-0 spherical-harmonics coefficients (base colour)
shN         ``[N, K-1, 3]`` higher-degree SH coefficients, ``K = (sh_degree + 1) ** 2``
==========  =============  ==========================================================
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

PARAM_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")

# Y_0^0 = 1 / (2 sqrt(pi)): the constant degree-0 SH basis function.
SH_C0 = 0.28209479177387814


def num_sh_bases(sh_degree: int) -> int:
    """Number of SH coefficients per colour channel for a degree: ``(degree + 1) ** 2``."""
    if sh_degree < 0:
        raise ValueError(f"sh_degree must be >= 0, got {sh_degree}")
    return (sh_degree + 1) ** 2


def sh_degree_from_bases(k: int) -> int:
    """Inverse of :func:`num_sh_bases`; raises ``ValueError`` when ``k`` is not a square."""
    degree = math.isqrt(k) - 1
    if degree < 0 or (degree + 1) ** 2 != k:
        raise ValueError(f"{k} SH coefficients per channel is not (degree + 1)^2")
    return degree


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Degree-0 SH coefficient whose colour is ``rgb`` (renderers add 0.5 after the SH sum)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh0: Tensor) -> Tensor:
    """Colour of a degree-0 SH coefficient (inverse of :func:`rgb_to_sh`)."""
    return sh0 * SH_C0 + 0.5


def create_splats(
    means: Tensor,
    rgbs: Tensor,
    log_scales: Tensor,
    *,
    sh_degree: int,
    init_opacity: float,
    quats: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.nn.ParameterDict:
    """Build the parameter dict for ``N`` Gaussians.

    Args:
        means: ``[N, 3]`` centres.
        rgbs: ``[N, 3]`` colours in ``[0, 1]``, stored as the degree-0 SH coefficient.
        log_scales: ``[N, 3]`` log standard deviations.
        sh_degree: SH degree; ``shN`` gets ``(sh_degree + 1) ** 2 - 1`` zero coefficients.
        init_opacity: opacity in ``(0, 1)`` given to every Gaussian (stored as its logit).
        quats: ``[N, 4]`` rotations; default ``U[0, 1)^4`` from ``generator`` (gsplat's
            trainer draws random, unnormalised quaternions the same way).
        generator: random source for ``quats`` (seeded by the caller for reproducibility).

    Returns:
        A ``ParameterDict`` with the keys of :data:`PARAM_KEYS`, float32, on ``means.device``.
    """
    n = means.shape[0]
    if rgbs.shape != (n, 3) or log_scales.shape != (n, 3) or means.shape != (n, 3):
        raise ValueError(
            f"means {tuple(means.shape)}, rgbs {tuple(rgbs.shape)} and log_scales "
            f"{tuple(log_scales.shape)} must all be [N, 3]"
        )
    if not 0.0 < init_opacity < 1.0:
        raise ValueError(f"init_opacity must be in (0, 1), got {init_opacity}")
    device = means.device
    if quats is None:
        quats = torch.rand((n, 4), generator=generator, dtype=torch.float32).to(device)
    k = num_sh_bases(sh_degree)
    opacities = torch.logit(torch.full((n,), float(init_opacity), dtype=torch.float32))
    return torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(means.float().clone()),
            "scales": torch.nn.Parameter(log_scales.float().clone()),
            "quats": torch.nn.Parameter(quats.float().clone()),
            "opacities": torch.nn.Parameter(opacities.to(device)),
            "sh0": torch.nn.Parameter(rgb_to_sh(rgbs.float()).unsqueeze(1).clone()),
            "shN": torch.nn.Parameter(
                torch.zeros((n, k - 1, 3), dtype=torch.float32, device=device)
            ),
        }
    )


def check_splats(splats: torch.nn.ParameterDict | dict[str, Tensor]) -> int:
    """Validate keys and shapes; return ``N``. Raises ``ValueError`` naming the bad entry."""
    missing = [k for k in PARAM_KEYS if k not in splats]
    if missing:
        raise ValueError(f"Gaussian parameters lack {missing}")
    n = splats["means"].shape[0]
    expected = {
        "means": (n, 3),
        "scales": (n, 3),
        "quats": (n, 4),
        "opacities": (n,),
        "sh0": (n, 1, 3),
    }
    for key, shape in expected.items():
        if tuple(splats[key].shape) != shape:
            raise ValueError(f"{key} has shape {tuple(splats[key].shape)}, expected {shape}")
    shn = splats["shN"]
    if shn.dim() != 3 or shn.shape[0] != n or shn.shape[2] != 3:
        raise ValueError(f"shN has shape {tuple(shn.shape)}, expected [N, K-1, 3]")
    sh_degree_from_bases(shn.shape[1] + 1)
    return int(n)


def splats_sh_degree(splats: torch.nn.ParameterDict | dict[str, Tensor]) -> int:
    """The SH degree the parameters can represent (from the size of ``shN``)."""
    return sh_degree_from_bases(splats["shN"].shape[1] + 1)


def sh_colors(splats: torch.nn.ParameterDict | dict[str, Tensor]) -> Tensor:
    """``[N, K, 3]`` SH coefficients in the layout rasterizers take (``sh0`` then ``shN``)."""
    return torch.cat([splats["sh0"], splats["shN"]], dim=1)
