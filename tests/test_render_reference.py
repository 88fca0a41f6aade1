"""Semantics of splatbench.render on hand-computable scenes, checked on both CPU backends."""

from __future__ import annotations

import math

import pytest
import torch

from splatbench.render import RenderBackendError, rasterize, resolve_backend
from splatbench.render.projection import fully_fused_projection
from splatbench.render.sh import SH_C0, sh_bases

CPU_BACKENDS = ["torch_reference", "torch"]
W, H = 21, 15  # odd sizes: the centre pixel's centre is exactly on the principal point


def camera(f: float = 20.0, n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity poses and a pinhole K whose principal point is the centre pixel's centre."""
    K = torch.tensor([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])
    return torch.eye(4).expand(n, 4, 4).clone(), K.expand(n, 3, 3).clone()


def gaussians(means, scale, opacities, colors) -> dict[str, torch.Tensor]:
    means = torch.tensor(means, dtype=torch.float32).reshape(-1, 3)
    n = means.shape[0]
    return {
        "means": means,
        "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(n, 4).clone(),
        "scales": torch.full((n, 3), scale),
        "opacities": torch.tensor(opacities, dtype=torch.float32).reshape(n),
        "colors": torch.tensor(colors, dtype=torch.float32).reshape(n, 3),
    }


def render(g, backend, **kw):
    viewmats, Ks = kw.pop("cams", camera())
    return rasterize(
        g["means"],
        g["quats"],
        g["scales"],
        g["opacities"],
        g["colors"],
        viewmats,
        Ks,
        W,
        H,
        backend=backend,
        **kw,
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_single_isotropic_gaussian_matches_closed_form(backend):
    f, z, s, op = 20.0, 2.0, 0.1, 0.8
    g = gaussians([0.0, 0.0, z], s, [op], [0.2, 0.5, 0.9])
    img, alpha, info = render(g, backend)
    cx, cy = W // 2, H // 2
    # centre pixel: delta = 0, so alpha = opacity
    assert alpha[0, cy, cx, 0].item() == pytest.approx(op, rel=1e-6)
    assert img[0, cy, cx].tolist() == pytest.approx([op * 0.2, op * 0.5, op * 0.9], rel=1e-6)
    # one pixel to the right: variance (f s / z)^2 + eps2d (J has no cross term at the axis)
    var = (f * s / z) ** 2 + 0.3
    expect = op * math.exp(-0.5 / var)
    assert alpha[0, cy, cx + 1, 0].item() == pytest.approx(expect, rel=1e-5)
    assert alpha[0, cy + 1, cx + 1, 0].item() == pytest.approx(op * math.exp(-1 / var), rel=1e-5)
    # gsplat's opacity-aware radius: ceil(min(3.33, sqrt(2 ln(255 op))) * sigma)
    radius = math.ceil(min(3.33, math.sqrt(2 * math.log(255 * op))) * math.sqrt(var))
    assert info["radii"][0, 0].tolist() == [radius, radius]
    assert info["means2d"][0, 0].tolist() == pytest.approx([W / 2, H / 2])
    assert info["depths"][0, 0].item() == pytest.approx(z)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_culling_behind_camera_beyond_far_and_off_screen(backend):
    g = gaussians(
        [[0.0, 0.0, -2.0], [0.0, 0.0, 0.005], [0.0, 0.0, 50.0], [40.0, 0.0, 2.0], [0, 0, 2.0]],
        0.1, [0.9, 0.9, 0.9, 0.9, 0.001], [[1.0, 1.0, 1.0]] * 5,
    )  # fmt: skip
    img, alpha, info = render(g, backend, far_plane=10.0)
    assert info["radii"].shape == (1, 5, 2)
    # behind, nearer than near_plane, beyond far_plane, off-screen, opacity < 1/255
    assert (info["radii"] == 0).all()
    assert img.abs().max().item() == 0.0
    assert alpha.abs().max().item() == 0.0
    assert info["tiles_per_gauss"].sum().item() == 0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_background_is_added_with_final_transmittance(backend):
    bg = torch.tensor([[0.1, 0.4, 0.7]])
    g = gaussians([0.0, 0.0, 2.0], 0.1, [0.6], [1.0, 0.0, 0.0])
    img, alpha, _ = render(g, backend, backgrounds=bg)
    cx, cy = W // 2, H // 2
    expect = [0.6 + 0.4 * 0.1, 0.4 * 0.4, 0.4 * 0.7]
    assert img[0, cy, cx].tolist() == pytest.approx(expect, rel=1e-6)
    # far corner: nothing there, so the background shows through unchanged
    assert img[0, 0, 0].tolist() == pytest.approx(bg[0].tolist())
    assert alpha[0, 0, 0, 0].item() == 0.0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_transmittance_stop_is_exclusive(backend):
    # opacity 0.95: T = 0.05, 0.0025, 1.25e-4 (> 1e-4, kept), then 6.25e-6 (<= 1e-4: stop)
    cols = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    g = gaussians([[0.0, 0.0, 2.0 + 0.1 * i] for i in range(5)], 0.05, [0.95] * 5, cols)
    img, alpha, _ = render(g, backend)
    cx, cy = W // 2, H // 2
    w = [0.95, 0.05 * 0.95, 0.0025 * 0.95]
    assert img[0, cy, cx].tolist() == pytest.approx(w, rel=1e-5)
    assert alpha[0, cy, cx, 0].item() == pytest.approx(1 - 1.25e-4, rel=1e-6)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_front_to_back_order_uses_depth_not_index(backend):
    g = gaussians(
        [[0.0, 0.0, 3.0], [0.0, 0.0, 2.0]], 0.1, [0.5, 0.5], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    )
    img, _, _ = render(g, backend)
    # the second Gaussian is nearer: it is composited first
    assert img[0, H // 2, W // 2].tolist() == pytest.approx([0.25, 0.5, 0.0], rel=1e-6)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_scene(backend):
    g = gaussians(torch.zeros(0, 3).tolist(), 0.1, [], torch.zeros(0, 3).tolist())
    bg = torch.tensor([[0.3, 0.2, 0.1]])
    img, alpha, info = render(g, backend, backgrounds=bg)
    assert img.shape == (1, H, W, 3) and alpha.shape == (1, H, W, 1)
    assert torch.allclose(img, bg.view(1, 1, 1, 3).expand_as(img))
    assert alpha.abs().max().item() == 0.0
    assert info["radii"].shape == (1, 0, 2) and info["means2d"].shape == (1, 0, 2)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sh_degree_zero_is_dc_plus_half(backend):
    g = gaussians([0.0, 0.0, 2.0], 0.1, [0.5], [0.0, 0.0, 0.0])
    sh = torch.tensor([[[0.4, -0.2, -3.0]]])  # [N, 1, 3]; last channel clamps at 0
    img, _, _ = render({**g, "colors": sh}, backend, sh_degree=0)
    rgb = [0.4 * SH_C0 + 0.5, -0.2 * SH_C0 + 0.5, 0.0]
    assert img[0, H // 2, W // 2].tolist() == pytest.approx([0.5 * c for c in rgb], rel=1e-6)


def test_sh_direction_is_camera_to_mean():
    """Degree 1: the y-band coefficient multiplies -C1 * y of the unit view direction."""
    g = gaussians([0.0, 0.0, 2.0], 0.1, [0.5], [0.0, 0.0, 0.0])
    sh = torch.zeros(1, 4, 3)
    sh[0, 2] = 1.0  # the z band: +C1 * z, and z = 1 straight ahead
    viewmats, Ks = camera()
    img, _, _ = rasterize(
        g["means"],
        g["quats"],
        g["scales"],
        g["opacities"],
        sh,
        viewmats,
        Ks,
        W,
        H,
        sh_degree=1,
        backend="torch_reference",
    )
    c1 = 0.48860251190292
    assert img[0, H // 2, W // 2, 0].item() == pytest.approx(0.5 * (c1 + 0.5), rel=1e-6)


def test_projection_and_sh_match_gsplat_torch_impl():
    """gsplat's own pure-torch projection and SH run on CPU: compare conventions directly."""
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    from splatbench.render.synthetic import random_scene

    sc = random_scene(300, 64, 48, n_cameras=3, sh_degree=3, seed=4)
    ours = fully_fused_projection(
        sc.means, sc.quats, sc.scales, sc.opacities, sc.viewmats, sc.Ks, 64, 48
    )
    covars, _ = impl._quat_scale_to_covar_preci(sc.quats, sc.scales, compute_preci=False)
    radii, means2d, depths, conics, _ = impl._fully_fused_projection(
        sc.means, covars, sc.viewmats, sc.Ks, 64, 48
    )
    ok = (ours.radii > 0).all(-1)
    assert ok.sum() > 100
    assert ((radii > 0).all(-1) | ~ok).all()  # ours culls at least what gsplat's torch impl does
    torch.testing.assert_close(ours.means2d[ok], means2d[ok], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.depths[ok], depths[ok])
    torch.testing.assert_close(ours.conics[ok], conics[ok], rtol=1e-4, atol=1e-6)
    dirs = torch.randn(50, 3)
    coeffs = torch.randn(50, 16, 3)
    for degree in range(4):
        expect = impl._spherical_harmonics(degree, dirs, coeffs)
        ours_sh = (sh_bases(degree, torch.nn.functional.normalize(dirs, dim=-1))[..., None]
                   * coeffs[:, : (degree + 1) ** 2]).sum(-2)  # fmt: skip
        torch.testing.assert_close(ours_sh, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_info_fields_and_shapes(backend):
    from splatbench.render.synthetic import random_scene

    sc = random_scene(40, 33, 20, n_cameras=2, sh_degree=2, seed=2)
    img, alpha, info = rasterize(
        sc.means,
        sc.quats,
        sc.scales,
        sc.opacities,
        sc.colors,
        sc.viewmats,
        sc.Ks,
        33,
        20,
        sh_degree=2,
        backend=backend,
    )
    assert img.shape == (2, 20, 33, 3) and alpha.shape == (2, 20, 33, 1)
    assert info["means2d"].shape == (2, 40, 2)
    assert info["radii"].shape == (2, 40, 2) and info["radii"].dtype == torch.int32
    assert info["depths"].shape == (2, 40) and info["conics"].shape == (2, 40, 3)
    assert info["opacities"].shape == (2, 40)
    assert info["tiles_per_gauss"].shape == (2, 40)
    assert info["gaussian_ids"] is None and info["camera_ids"] is None
    assert (info["width"], info["height"], info["n_cameras"]) == (33, 20, 2)
    assert (info["tile_width"], info["tile_height"], info["tile_size"]) == (3, 2, 16)
    assert info["backend"] == backend
    if backend == "torch":
        n = int(info["tiles_per_gauss"].sum())
        assert info["flatten_ids"].shape == (n,) and info["isect_ids"].shape == (n,)
        assert info["isect_offsets"].shape == (2, 2, 3)
        # isect ids are sorted (image, tile, depth), as gsplat's radix sort leaves them
        assert (info["isect_ids"][1:] >= info["isect_ids"][:-1]).all()


def test_bad_inputs_name_the_argument():
    viewmats, Ks = camera()
    g = gaussians([0.0, 0.0, 2.0], 0.1, [0.5], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="quats"):
        rasterize(
            g["means"],
            g["quats"][:, :3],
            g["scales"],
            g["opacities"],
            g["colors"],
            viewmats,
            Ks,
            W,
            H,
        )
    with pytest.raises(ValueError, match="sh_degree=2"):
        rasterize(
            g["means"],
            g["quats"],
            g["scales"],
            g["opacities"],
            torch.zeros(1, 4, 3),
            viewmats,
            Ks,
            W,
            H,
            sh_degree=2,
        )
    with pytest.raises(ValueError, match="unknown render backend"):
        rasterize(
            g["means"],
            g["quats"],
            g["scales"],
            g["opacities"],
            g["colors"],
            viewmats,
            Ks,
            W,
            H,
            backend="vulkan",
        )  # type: ignore[arg-type]


def test_gsplat_backend_without_cuda_says_how_to_install():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the gsplat backend may work here")
    viewmats, Ks = camera()
    g = gaussians([0.0, 0.0, 2.0], 0.1, [0.5], [1.0, 1.0, 1.0])
    with pytest.raises(RenderBackendError, match="CUDA is not available") as err:
        rasterize(
            g["means"],
            g["quats"],
            g["scales"],
            g["opacities"],
            g["colors"],
            viewmats,
            Ks,
            W,
            H,
            backend="gsplat",
        )
    assert "pip install gsplat" in str(err.value)
    assert resolve_backend("auto") == "torch"
