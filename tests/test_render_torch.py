"""The C++ tile rasterizer (backend "torch") against the dense autograd oracle, and its use."""

from __future__ import annotations

import pytest
import torch

from splatbench.render import rasterize
from splatbench.render.synthetic import random_scene

PARAMS = ("means", "quats", "scales", "opacities", "colors")


def render_with_grads(scene, backend, *, backgrounds=None, absgrad=False, seed=7):
    """Render, back-propagate a fixed random linear loss, return outputs and gradients."""
    p = {k: v.clone().requires_grad_(True) for k, v in scene.tensors().items()}
    bg = None if backgrounds is None else backgrounds.clone().requires_grad_(True)
    img, alpha, info = rasterize(
        p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], scene.viewmats,
        scene.Ks, scene.width, scene.height, sh_degree=scene.sh_degree, backgrounds=bg,
        absgrad=absgrad, backend=backend,
    )  # fmt: skip
    info["means2d"].retain_grad()
    gen = torch.Generator().manual_seed(seed)
    loss = (img * torch.randn(img.shape, generator=gen)).sum()
    loss = loss + (alpha * torch.randn(alpha.shape, generator=gen)).sum()
    loss.backward()
    grads = {k: p[k].grad for k in PARAMS}
    grads["means2d"] = info["means2d"].grad
    if bg is not None:
        grads["backgrounds"] = bg.grad
    return img.detach(), alpha.detach(), grads, info


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


CASES = [
    # (n, width, height, cameras, sh_degree, pixel_sigma, seed)
    (60, 40, 30, 1, None, 4.0, 0),
    (80, 37, 29, 2, 0, 3.0, 1),  # sizes not multiples of the tile size
    (80, 48, 32, 1, 1, 2.0, 2),
    (120, 40, 30, 3, 2, 3.0, 3),
    (150, 64, 40, 2, 3, 2.5, 4),
    (40, 20, 20, 1, 3, 8.0, 5),  # large, heavily overlapping Gaussians: transmittance stops
]


@pytest.mark.parametrize("n,w,h,cams,sh,sigma,seed", CASES)
def test_fast_matches_reference(n, w, h, cams, sh, sigma, seed):
    scene = random_scene(n, w, h, n_cameras=cams, sh_degree=sh, pixel_sigma=sigma, seed=seed)
    bg = torch.rand(cams, 3, generator=torch.Generator().manual_seed(seed)) if seed % 2 else None
    ref = render_with_grads(scene, "torch_reference", backgrounds=bg)
    fast = render_with_grads(scene, "torch", backgrounds=bg)
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(fast[1], ref[1], rtol=0, atol=1e-5)
    assert (fast[3]["radii"] == ref[3]["radii"]).all()
    for name, g_ref in ref[2].items():
        assert rel_err(fast[2][name], g_ref) < 1e-4, name


def test_stop_case_really_saturates():
    scene = random_scene(40, 20, 20, sh_degree=3, pixel_sigma=8.0, seed=5)
    _, alpha, _, _ = render_with_grads(scene, "torch")
    assert alpha.max().item() > 0.9998  # some pixels hit the 1e-4 transmittance stop


def test_tile_size_does_not_change_the_image():
    scene = random_scene(100, 40, 30, sh_degree=1, seed=8)
    a = render_with_grads(scene, "torch")
    args = (scene.means, scene.quats, scene.scales, scene.opacities, scene.colors,
            scene.viewmats, scene.Ks, 40, 30)  # fmt: skip
    img8, _, info8 = rasterize(*args, sh_degree=1, tile_size=8)
    torch.testing.assert_close(img8, a[0], rtol=0, atol=1e-6)
    assert info8["tile_width"] == 5


def test_means2d_grad_and_absgrad_are_populated():
    scene = random_scene(50, 32, 24, sh_degree=None, seed=9)
    _, _, grads, info = render_with_grads(scene, "torch", absgrad=True)
    g, absg = grads["means2d"], info["means2d"].absgrad
    assert g is not None and g.shape == (1, 50, 2)
    assert absg.shape == (1, 50, 2)
    visible = (info["radii"] > 0).all(-1)
    assert g[visible].abs().sum() > 0
    assert (absg >= g.abs() - 1e-6).all()  # sum of |per-pixel grads| >= |sum|
    assert (g[~visible] == 0).all()


def test_empty_scene_backward():
    scene = random_scene(0, 16, 16, sh_degree=None, seed=0)
    img, alpha, grads, info = render_with_grads(scene, "torch", backgrounds=torch.ones(1, 3))
    assert torch.all(img == 1.0) and torch.all(alpha == 0.0)
    assert grads["means"].shape == (0, 3)
    assert info["flatten_ids"].numel() == 0


def test_short_optimisation_reduces_the_loss():
    target_scene = random_scene(60, 32, 24, sh_degree=None, seed=11)
    with torch.no_grad():
        target, _, _ = rasterize(
            *target_scene.tensors().values(), target_scene.viewmats, target_scene.Ks, 32, 24
        )
    start = random_scene(60, 32, 24, sh_degree=None, seed=12)
    params = {
        "means": start.means.clone(),
        "log_scales": start.scales.log(),
        "quats": start.quats.clone(),
        "logit_opacities": torch.logit(start.opacities),
        "colors": start.colors.clone(),
    }
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(params.values(), lr=0.02)
    losses = []
    for _ in range(50):
        img, _, _ = rasterize(
            params["means"],
            params["quats"],
            params["log_scales"].exp(),
            torch.sigmoid(params["logit_opacities"]),
            params["colors"],
            start.viewmats,
            start.Ks,
            32,
            24,
        )
        loss = (img - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_default_strategy_consumes_info_unchanged():
    """gsplat's DefaultStrategy (CPU tensors) reads means2d.grad, radii, width, height..."""
    strategy_mod = pytest.importorskip("gsplat.strategy")
    scene = random_scene(80, 32, 24, n_cameras=2, sh_degree=1, seed=13)
    params = torch.nn.ParameterDict({
        "means": scene.means, "scales": scene.scales.log(), "quats": scene.quats,
        "opacities": torch.logit(scene.opacities), "sh0": scene.colors[:, :1],
        "shN": scene.colors[:, 1:],
    })  # fmt: skip
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    strategy = strategy_mod.DefaultStrategy(
        refine_start_iter=0, refine_every=2, grow_grad2d=0.0, prune_opa=0.0
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    n0 = len(params["means"])
    for step in range(3):
        colors = torch.cat([params["sh0"], params["shN"]], dim=1)
        img, _, info = rasterize(
            params["means"],
            params["quats"],
            params["scales"].exp(),
            torch.sigmoid(params["opacities"]),
            colors,
            scene.viewmats,
            scene.Ks,
            32,
            24,
            sh_degree=1,
        )
        strategy.step_pre_backward(params, optimizers, state, step, info)
        img.mean().backward()
        strategy.step_post_backward(params, optimizers, state, step, info)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad()
    # step 2 refined: every visible Gaussian had grad > 0 and was duplicated or split
    assert len(params["means"]) > n0
    assert state["grad2d"].shape == (len(params["means"]),)


def test_missing_compiler_gives_a_clear_error(tmp_path):
    """First-use build with a broken compiler fails with a message naming the compiler."""
    import os
    import subprocess
    import sys

    code = (
        "from splatbench.render._ext import load_extension\n"
        "from splatbench.render.errors import RenderBackendError\n"
        "try:\n    load_extension()\nexcept RenderBackendError as e:\n    print(e)\n"
    )
    env = {**os.environ, "CXX": "/nonexistent/g++", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert "C++ compiler '/nonexistent/g++' not found" in out.stdout, out.stdout + out.stderr
    assert "Fix:" in out.stdout
