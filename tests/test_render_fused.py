"""Fused C++ projection and SH kernels against the PyTorch implementation they replace.

Forward values and gradients w.r.t. every input are compared with autograd through
``projection.fully_fused_projection`` and ``sh.sh_to_rgb``, including degenerate Gaussians
(behind the camera, beyond far, far off-screen, tiny and huge scales, transparent ones) and
random upstream gradients on culled entries too.
"""

from __future__ import annotations

import pytest
import torch

from splatbench.render import rasterize
from splatbench.render.api import gaussian_colors
from splatbench.render.fused import fused_projection, fused_sh_colors
from splatbench.render.projection import fully_fused_projection
from splatbench.render.synthetic import random_scene

REL_TOL = 1e-4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def degenerate_scene(n: int, n_cameras: int, seed: int):
    """A random scene whose first Gaussians are edge cases for projection and culling."""
    sc = random_scene(n, 64, 48, n_cameras=n_cameras, sh_degree=3, seed=seed)
    means, scales, opac = sc.means.clone(), sc.scales.clone(), sc.opacities.clone()
    means[0, 2] = -1.0  # behind the camera
    means[1, 2] = 0.005  # in front of the camera but before the near plane
    means[2, 2] = 2e10  # beyond the far plane
    means[3, 0] = 40.0  # far off-screen to the right: the FOV clamp is active
    means[4, 1] = -30.0  # far off-screen above
    scales[5] = 1e-7  # tiny: the low-pass dominates
    scales[6] = 50.0  # huge: covers the whole image
    scales[7] = torch.tensor([1e-6, 1e-6, 5.0])  # needle
    opac[8] = 1e-3  # below 1/255: culled by opacity
    sc.means, sc.scales, sc.opacities = means, scales, opac
    sc.quats = sc.quats.clone()
    sc.quats[9] *= 1e-4  # small (but not degenerate) quaternion norm
    return sc


def projection_grads(fn, sc, upstream, requires_view: bool):
    """Run a projection, back-propagate fixed upstream gradients, return outputs and grads."""
    inputs = {
        "means": sc.means.clone().requires_grad_(True),
        "quats": sc.quats.clone().requires_grad_(True),
        "scales": sc.scales.clone().requires_grad_(True),
        "viewmats": sc.viewmats.clone().requires_grad_(requires_view),
    }
    proj = fn(
        inputs["means"], inputs["quats"], inputs["scales"], sc.opacities, inputs["viewmats"],
        sc.Ks, sc.width, sc.height,
    )  # fmt: skip
    loss = sum((out * g).sum() for out, g in zip(proj[1:], upstream, strict=True))
    loss.backward()
    grads = {k: v.grad for k, v in inputs.items() if v.requires_grad}
    return proj, grads


def random_upstream(proj, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(t.shape, generator=gen) for t in proj[1:]]


@pytest.mark.parametrize("n_cameras,seed", [(1, 0), (3, 1), (2, 2)])
def test_projection_matches_torch(n_cameras, seed):
    sc = degenerate_scene(200, n_cameras, seed)
    ref_proj = fully_fused_projection(
        sc.means, sc.quats, sc.scales, sc.opacities, sc.viewmats, sc.Ks, sc.width, sc.height
    )
    upstream = random_upstream(ref_proj, seed)
    ref, ref_g = projection_grads(fully_fused_projection, sc, upstream, requires_view=True)
    fast, fast_g = projection_grads(fused_projection, sc, upstream, requires_view=True)
    assert (fast.radii == ref.radii).all()
    assert (ref.radii[:, :10] == 0).all(-1).sum() >= 6 * n_cameras  # the edge cases are culled
    for name in ("means2d", "depths", "conics"):
        assert rel_err(getattr(fast, name), getattr(ref, name)) < REL_TOL, name
    for name, g in ref_g.items():
        assert rel_err(fast_g[name], g) < REL_TOL, name
        assert torch.isfinite(fast_g[name]).all(), name


def test_projection_gradients_only_from_visible_when_upstream_is_masked():
    """The rasterizer sends zero gradient to culled entries: they must contribute nothing."""
    sc = degenerate_scene(100, 2, 3)
    ref_proj = fully_fused_projection(
        sc.means, sc.quats, sc.scales, sc.opacities, sc.viewmats, sc.Ks, sc.width, sc.height
    )
    visible = (ref_proj.radii > 0).all(-1)
    upstream = [g * visible[..., None] if g.dim() == 3 else g * visible
                for g in random_upstream(ref_proj, 4)]  # fmt: skip
    _, ref_g = projection_grads(fully_fused_projection, sc, upstream, requires_view=False)
    _, fast_g = projection_grads(fused_projection, sc, upstream, requires_view=False)
    assert set(fast_g) == {"means", "quats", "scales"}
    for name, g in ref_g.items():
        assert rel_err(fast_g[name], g) < REL_TOL, name
        hidden = ~visible.any(0)
        assert (fast_g[name][hidden] == 0).all(), name


def sh_grads(fn, degree, means, coeffs, viewmats, upstream):
    leaves = [means.clone().requires_grad_(True), coeffs.clone().requires_grad_(True),
              viewmats.clone().requires_grad_(True)]  # fmt: skip
    rgb = fn(degree, *leaves)
    (rgb * upstream).sum().backward()
    return rgb, [t.grad for t in leaves]


def _torch_sh(degree, means, coeffs, viewmats):
    return gaussian_colors(means, coeffs, viewmats, degree)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("per_camera", [False, True])
def test_sh_matches_torch(degree, per_camera):
    sc = random_scene(150, 32, 24, n_cameras=3, sh_degree=3, seed=degree)
    gen = torch.Generator().manual_seed(10 + degree)
    # 16 stored coefficients whatever the degree (the extra ones are ignored), scaled up so that
    # some colours fall below zero and the clamp's gradient mask is exercised.
    coeffs = 2.0 * torch.randn(150, 16, 3, generator=gen)
    if per_camera:
        coeffs = coeffs[None].repeat(3, 1, 1, 1) + 0.1 * torch.randn(3, 150, 16, 3, generator=gen)
    upstream = torch.randn(3, 150, 3, generator=gen)
    ref, ref_g = sh_grads(_torch_sh, degree, sc.means, coeffs, sc.viewmats, upstream)
    fast, fast_g = sh_grads(fused_sh_colors, degree, sc.means, coeffs, sc.viewmats, upstream)
    assert (ref == 0).any()  # the clamp is active somewhere
    assert rel_err(fast, ref) < REL_TOL
    for name, g, f in zip(("means", "coeffs", "viewmats"), ref_g, fast_g, strict=True):
        if g is None:  # degree 0: no view dependence
            assert f is None or (f == 0).all(), name
            continue
        assert rel_err(f, g) < REL_TOL, name


def render_grads(sc, backend, **kw):
    p = {k: v.clone().requires_grad_(True) for k, v in sc.tensors().items()}
    view = sc.viewmats.clone().requires_grad_(True)
    img, alpha, info = rasterize(
        p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], view, sc.Ks,
        sc.width, sc.height, sh_degree=sc.sh_degree, backend=backend, **kw,
    )  # fmt: skip
    info["means2d"].retain_grad()
    gen = torch.Generator().manual_seed(0)
    ((img * torch.randn(img.shape, generator=gen)).sum() + alpha.sum()).backward()
    grads = {k: v.grad for k, v in p.items()}
    grads["viewmats"] = view.grad
    grads["means2d"] = info["means2d"].grad
    return img.detach(), grads, info


@pytest.mark.parametrize("sh_degree", [None, 0, 3])
def test_rasterize_with_degenerate_gaussians_matches_reference(sh_degree):
    sc = degenerate_scene(120, 2, 5)
    if sh_degree != 3:
        sc.colors = torch.rand(120, 3) if sh_degree is None else sc.colors[:, :1].clone()
        sc.sh_degree = sh_degree
    ref = render_grads(sc, "torch_reference")
    fast = render_grads(sc, "torch")
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-5)
    assert (fast[2]["radii"] == ref[2]["radii"]).all()
    for name, g in ref[1].items():
        assert rel_err(fast[1][name], g) < REL_TOL, name


def test_means2d_is_the_strategy_handle():
    """info['means2d'] is a non-leaf output whose .grad / .absgrad the strategy reads."""
    sc = random_scene(80, 32, 24, n_cameras=2, sh_degree=2, seed=6)
    p = {k: v.clone().requires_grad_(True) for k, v in sc.tensors().items()}
    img, _, info = rasterize(*p.values(), sc.viewmats, sc.Ks, 32, 24, sh_degree=2, absgrad=True)
    m2d = info["means2d"]
    assert not m2d.is_leaf and m2d.requires_grad
    m2d.retain_grad()
    img.sum().backward()
    assert m2d.grad is not None and m2d.grad.abs().sum() > 0
    assert m2d.absgrad.shape == m2d.shape
    assert (m2d.absgrad >= m2d.grad.abs() - 1e-6).all()


def test_fallbacks_for_ks_grad_and_sh_degree_4():
    """Ks needing a gradient, or SH degree 4, go through the PyTorch implementation."""
    sc = random_scene(60, 32, 24, sh_degree=None, seed=7)
    coeffs = 0.2 * torch.randn(60, 25, 3, generator=torch.Generator().manual_seed(0))
    Ks = sc.Ks.clone().requires_grad_(True)
    img, _, _ = rasterize(sc.means, sc.quats, sc.scales, sc.opacities, coeffs, sc.viewmats, Ks,
                          32, 24, sh_degree=4)  # fmt: skip
    img.sum().backward()
    assert Ks.grad is not None and Ks.grad.abs().sum() > 0
    ref, _, _ = rasterize(sc.means, sc.quats, sc.scales, sc.opacities, coeffs, sc.viewmats,
                          sc.Ks, 32, 24, sh_degree=4, backend="torch_reference")  # fmt: skip
    torch.testing.assert_close(img.detach(), ref, rtol=0, atol=1e-5)
