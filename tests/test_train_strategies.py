"""Strategies: the fixed opacity reset of DefaultStrategy, refine diagnostics, 3DGS-MCMC math."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from gsplat.strategy import DefaultStrategy

from splatbench.gaussians import create_splats
from splatbench.train import MCMCStrategyConfig, build_strategy
from splatbench.train.strategies import (
    FixedDefaultStrategy,
    TorchMCMCStrategy,
    add_by_sampling,
    inject_position_noise,
    noise_gate,
    quat_to_rotmat,
    relocate_dead,
    relocation_opacity_scale,
)


def _splats(n: int, opacity: float = 0.5, log_scale: float = -3.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return create_splats(torch.randn((n, 3), generator=g), torch.rand((n, 3), generator=g),
                         torch.full((n, 3), log_scale), sh_degree=1, init_opacity=opacity,
                         generator=g)  # fmt: skip


def _optimizers(splats, step: bool = True):
    opts = {k: torch.optim.Adam([{"params": [splats[k]], "lr": 1e-3, "name": k}], eps=1e-15)
            for k in splats}  # fmt: skip
    if step:  # one step, so every Adam has non-zero moments to check
        loss = sum((p**2).sum() for p in splats.values())
        loss.backward()
        for o in opts.values():
            o.step()
            o.zero_grad()
    return opts


def _info(n: int, grads: torch.Tensor | None = None):
    means2d = torch.zeros((1, n, 2), requires_grad=True)
    means2d.grad = torch.zeros((1, n, 2)) if grads is None else grads.reshape(1, n, 2)
    return {"means2d": means2d, "radii": torch.ones((1, n, 2), dtype=torch.int32), "width": 2,
            "height": 2, "n_cameras": 1, "gaussian_ids": None}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# DefaultStrategy
# ---------------------------------------------------------------------------------------------


def test_gsplat_reset_condition_is_broken_upstream():
    """Documents the gsplat 1.5.3 bug our subclass works around (fails once upstream fixes it)."""
    src = inspect.getsource(DefaultStrategy.step_post_backward)
    assert "step % self.reset_every == 0 & step > 0" in src
    step, reset_every = 3000, 3000
    assert not (step % reset_every == 0 & step > 0)  # the bug, evaluated


def _run_resets(strategy_cls, steps: int, reset_every: int):
    splats = _splats(20, opacity=0.6)
    opts = _optimizers(splats)
    strategy = strategy_cls(refine_start_iter=10_000, refine_stop_iter=100,
                            reset_every=reset_every)  # fmt: skip
    state = strategy.initialize_state(scene_scale=1.0)
    reset_at = []
    for step in range(steps):
        with torch.no_grad():  # opaque again, so every reset shows
            splats["opacities"].fill_(math.log(0.6 / 0.4))
        before = splats["opacities"].detach().clone()
        strategy.step_post_backward(splats, opts, state, step, _info(20))
        if not torch.equal(before, splats["opacities"].detach()):
            reset_at.append(step)
    return splats, opts, reset_at


def test_fixed_strategy_resets_opacity_every_reset_every():
    splats, opts, reset_at = _run_resets(FixedDefaultStrategy, steps=21, reset_every=5)
    assert reset_at == [5, 10, 15, 20]
    # Reset value is 2 * prune_opa (gsplat's reset_opa clamps the opacity from above).
    assert torch.allclose(torch.sigmoid(splats["opacities"]), torch.tensor(0.01), atol=1e-6)
    st = opts["opacities"].state[splats["opacities"]]
    assert not st["exp_avg"].any() and not st["exp_avg_sq"].any()
    # Other parameters keep their Adam state.
    assert opts["means"].state[splats["means"]]["exp_avg"].any()


def test_stock_gsplat_strategy_never_resets():
    _, _, reset_at = _run_resets(DefaultStrategy, steps=21, reset_every=5)
    assert reset_at == []


def test_reset_stops_with_refine_window():
    splats = _splats(5, opacity=0.6)
    opts = _optimizers(splats)
    strategy = FixedDefaultStrategy(refine_start_iter=1000, refine_stop_iter=10, reset_every=5)
    state = strategy.initialize_state()
    events = strategy.step_post_backward(splats, opts, state, 10, _info(5))
    assert events == [] and torch.sigmoid(splats["opacities"]).min() > 0.5


def test_refine_event_counts_duplicates_splits_and_prunes():
    n = 40
    splats = _splats(n, opacity=0.5)
    with torch.no_grad():
        splats["scales"][:20] = -6.0  # exp(-6) = 0.0025 <= grow_scale3d: duplicated
        splats["scales"][20:] = -2.0  # exp(-2) = 0.135 > grow_scale3d: split
        splats["opacities"][35:] = -10.0  # below prune_opa: pruned
    opts = _optimizers(splats, step=False)
    grads = torch.zeros(n, 2)
    grads[:10, 0] = 1e-2  # 10 small Gaussians above threshold
    grads[20:26, 0] = 1e-2  # 6 large ones above threshold
    strategy = FixedDefaultStrategy(refine_start_iter=0, refine_every=1, grow_grad2d=1e-3,
                                    reset_every=1000)  # fmt: skip
    state = strategy.initialize_state(scene_scale=1.0)
    events = strategy.step_post_backward(splats, opts, state, 1, _info(n, grads))
    (ev,) = events
    assert (ev.kind, ev.grad_high, ev.duplicated, ev.split, ev.pruned) == ("refine", 16, 10, 6, 5)
    assert ev.n_before == n and ev.n_after == n + 10 + 6 - 5 == len(splats["means"])
    assert ev.visible == n and ev.grad_max == pytest.approx(1e-2)
    assert all(len(o.param_groups[0]["params"][0]) == ev.n_after for o in opts.values())
    assert not state["grad2d"].any()  # a fresh gradient window


def test_budget_grows_only_the_strongest_candidates():
    n = 40
    splats = _splats(n, opacity=0.5)
    with torch.no_grad():
        splats["scales"][:] = -6.0  # all small: every candidate is duplicated (+1 each)
    opts = _optimizers(splats, step=False)
    grads = torch.zeros(n, 2)
    grads[:16, 0] = torch.linspace(2e-3, 1e-2, 16)  # 16 candidates, rising gradients
    strategy = FixedDefaultStrategy(refine_start_iter=0, refine_every=1, grow_grad2d=1e-3,
                                    reset_every=1000, prune_opa=0.0)  # fmt: skip
    strategy.max_gaussians = n + 5
    state = strategy.initialize_state(scene_scale=1.0)
    (ev,) = strategy.step_post_backward(splats, opts, state, 1, _info(n, grads))
    assert ev.grad_high == 16  # diagnostics still report every candidate
    assert ev.duplicated == 5 and ev.n_after == n + 5 == len(splats["means"])
    # The five duplicated are the five strongest (the last five rows), copied to the end.
    torch.testing.assert_close(splats["means"][n:], splats["means"][11:16])
    # At the budget, nothing more grows.
    state = strategy.initialize_state(scene_scale=1.0)
    grads = torch.full((n + 5, 2), 1e-2)
    (ev,) = strategy.step_post_backward(splats, opts, state, 2, _info(n + 5, grads))
    assert ev.duplicated + ev.split == 0 and len(splats["means"]) == n + 5


def test_budget_caps_mcmc():
    from splatbench.train.config import MCMCStrategyConfig
    from splatbench.train.strategies import build_strategy

    assert build_strategy(MCMCStrategyConfig(cap_max=1000), max_gaussians=300).cap_max == 300
    assert build_strategy(MCMCStrategyConfig(cap_max=100), max_gaussians=300).cap_max == 100


# ---------------------------------------------------------------------------------------------
# 3DGS-MCMC
# ---------------------------------------------------------------------------------------------


def _eq9_direct(o: float, n: int) -> tuple[float, float]:
    """Eq. 9 of 3DGS-MCMC written out literally: new opacity and the scale coefficient."""
    a = 1.0 - (1.0 - o) ** (1.0 / n)
    denom = 0.0
    for i in range(1, n + 1):
        for k in range(i):
            denom += math.comb(i - 1, k) * (-1) ** k * a ** (k + 1) / math.sqrt(k + 1)
    return a, o / denom


def test_relocation_matches_direct_eq9():
    g = torch.Generator().manual_seed(0)
    o = torch.cat([torch.rand(200, generator=g) * 0.98 + 0.01, torch.tensor([0.999, 0.5, 0.05])])
    n = torch.cat([torch.randint(1, 52, (200,), generator=g), torch.tensor([51, 1, 2])])
    scales = torch.rand((len(o), 3), generator=g) + 0.1
    new_o, new_s = relocation_opacity_scale(o, scales, n)
    for j in range(len(o)):
        a, coeff = _eq9_direct(float(o[j]), int(n[j]))
        assert float(new_o[j]) == pytest.approx(a, rel=1e-5)
        assert new_s[j].tolist() == pytest.approx((scales[j] * coeff).tolist(), rel=1e-4)


def test_relocation_properties():
    o = torch.tensor([0.3, 0.7, 0.95])
    s = torch.ones(3, 3)
    # One copy: nothing changes.
    new_o, new_s = relocation_opacity_scale(o, s, torch.ones(3, dtype=torch.long))
    assert torch.allclose(new_o, o) and torch.allclose(new_s, s)
    # n co-located copies composite to the original opacity at the centre.
    for n in (2, 5, 30):
        new_o, new_s = relocation_opacity_scale(o, s, torch.full((3,), n))
        assert torch.allclose(1 - (1 - new_o) ** n, o, atol=1e-6)
        assert bool((new_o < o).all())
    # Counts above n_max are clamped, as gsplat does.
    a, _ = relocation_opacity_scale(o, s, torch.full((3,), 500))
    b, _ = relocation_opacity_scale(o, s, torch.full((3,), 51))
    assert torch.equal(a, b)


def test_relocate_dead_moves_dead_onto_live():
    torch.manual_seed(0)
    splats = _splats(50, opacity=0.5)
    with torch.no_grad():
        splats["opacities"][:10] = torch.logit(torch.tensor(0.001))
    opts = _optimizers(splats)
    alive_means = splats["means"].detach()[10:].clone()
    dead = torch.sigmoid(splats["opacities"].detach()) <= 0.005
    assert relocate_dead(splats, opts, dead, min_opacity=0.005) == 10
    assert len(splats["means"]) == 50
    assert torch.sigmoid(splats["opacities"]).min() > 0.005
    # Each relocated slot sits exactly on a live Gaussian.
    for m in splats["means"].detach()[:10]:
        assert (alive_means == m).all(dim=1).any()
    # Relocated slots start with fresh Adam moments; the optimizer follows the new tensor.
    st = opts["means"].state[splats["means"]]
    assert not st["exp_avg"][:10].any()
    assert opts["means"].param_groups[0]["params"][0] is splats["means"]


def test_add_by_sampling_and_cap():
    torch.manual_seed(0)
    splats = _splats(100)
    opts = _optimizers(splats)
    assert add_by_sampling(splats, opts, 7, min_opacity=0.005) == 7
    assert len(splats["means"]) == 107 and splats["shN"].shape[0] == 107
    assert opts["sh0"].state[splats["sh0"]]["exp_avg"].shape[0] == 107
    assert not opts["means"].state[splats["means"]]["exp_avg"][100:].any()

    strategy = build_strategy(MCMCStrategyConfig(cap_max=110, refine_start_iter=0,
                                                 refine_every=10, noise_lr=0.0))  # fmt: skip
    state = strategy.initialize_state()
    assert strategy.step_post_backward(splats, opts, state, 5, {}, lr=1e-3) == []
    assert len(splats["means"]) == 107  # not a refine step
    (ev,) = strategy.step_post_backward(splats, opts, state, 10, {}, lr=1e-3)
    assert (ev.kind, ev.added, ev.n_after) == ("mcmc", 3, 110)  # min(cap, 1.05 N)
    strategy.step_post_backward(splats, opts, state, 20, {}, lr=1e-3)
    assert len(splats["means"]) == 110


def test_position_noise_is_opacity_gated_and_scaled():
    splats = _splats(6, opacity=0.9, log_scale=-1.0)
    with torch.no_grad():
        splats["opacities"][:3] = torch.logit(torch.tensor(0.001))
    before = splats["means"].detach().clone()
    torch.manual_seed(3)
    noise = inject_position_noise(splats, scaler=2.0)
    moved = (splats["means"].detach() - before).norm(dim=1)
    assert bool((moved[:3] > 1e-3).all()) and bool((moved[3:] < 1e-12).all())
    # Direct computation: Sigma @ (eps * gate * scaler) with the same random draw.
    torch.manual_seed(3)
    eps = torch.randn(6, 3)
    R = quat_to_rotmat(splats["quats"].detach())
    S = torch.diag_embed(torch.exp(splats["scales"].detach()))
    cov = R @ S @ S @ R.transpose(1, 2)
    gate = noise_gate(torch.sigmoid(splats["opacities"].detach()))
    expected = (cov @ (eps * gate[:, None] * 2.0)[..., None])[..., 0]
    assert torch.allclose(noise, expected, atol=1e-6)


def test_mcmc_noise_uses_lr_times_noise_lr():
    splats = _splats(4, opacity=0.001)
    a = TorchMCMCStrategy(noise_lr=0.0, refine_start_iter=100)
    before = splats["means"].detach().clone()
    a.step_post_backward(splats, {}, {}, 1, {}, lr=1.0)
    assert torch.equal(before, splats["means"].detach())
    b = TorchMCMCStrategy(noise_lr=10.0, refine_start_iter=100)
    b.step_post_backward(splats, {}, {}, 1, {}, lr=1e-2)
    assert not torch.equal(before, splats["means"].detach())
