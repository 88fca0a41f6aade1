"""Parity of the CPU backend with gsplat.rasterization on CUDA (GPU machines only)."""

from __future__ import annotations

import pytest
import torch

from splatbench.render import gsplat_unavailable_reason, rasterize
from splatbench.render.synthetic import random_scene

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(gsplat_unavailable_reason() is not None, reason="needs CUDA and gsplat"),
]


@pytest.mark.parametrize("sh_degree", [None, 3])
def test_torch_backend_matches_gsplat(sh_degree):
    scene = random_scene(500, 96, 64, n_cameras=2, sh_degree=sh_degree, seed=21)
    bg = torch.tensor([[0.2, 0.3, 0.4], [0.9, 0.8, 0.7]])
    outs = {}
    for backend, device in (("torch", "cpu"), ("gsplat", "cuda")):
        p = {k: v.to(device).clone().requires_grad_(True) for k, v in scene.tensors().items()}
        img, alpha, info = rasterize(
            p["means"], p["quats"], p["scales"], p["opacities"], p["colors"],
            scene.viewmats.to(device), scene.Ks.to(device), 96, 64, sh_degree=sh_degree,
            backgrounds=bg.to(device), backend=backend,
        )  # fmt: skip
        info["means2d"].retain_grad()
        gen = torch.Generator().manual_seed(1)
        w = torch.randn(img.shape, generator=gen).to(device)
        (img * w).sum().backward()
        grads = {k: v.grad.cpu() for k, v in p.items()}
        grads["means2d"] = info["means2d"].grad.cpu()
        outs[backend] = (img.detach().cpu(), alpha.detach().cpu(), info["radii"].cpu(), grads)
    ours, ref = outs["torch"], outs["gsplat"]
    torch.testing.assert_close(ours[0], ref[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=1e-4)
    assert (ours[2] - ref[2]).abs().max() <= 1  # radii: float ceil may differ by one pixel
    for name, g in ref[3].items():
        rel = ((ours[3][name] - g).norm() / g.norm().clamp_min(1e-12)).item()
        assert rel < 1e-3, name
