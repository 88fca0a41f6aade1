"""Densification strategies: gsplat's DefaultStrategy (with its opacity reset fixed) and a torch
implementation of 3DGS-MCMC that runs on CPU and GPU alike.

Both follow gsplat's strategy protocol (``initialize_state``, ``check_sanity``,
``step_pre_backward``, ``step_post_backward``) and edit the parameter dict and the per-parameter
Adam optimizers in place. Unlike gsplat's, ``step_post_backward`` returns the list of
:class:`RefineEvent` it performed, which the trainer turns into ``diagnostics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import reset_opa
from torch import Tensor

from splatbench.train.config import DefaultStrategyConfig, MCMCStrategyConfig, StrategyConfig

Params = torch.nn.ParameterDict | dict[str, torch.nn.Parameter]
Optimizers = dict[str, torch.optim.Optimizer]

# 3DGS-MCMC relocates at most this many copies of one Gaussian per step (gsplat: n_max = 51).
RELOCATION_N_MAX = 51


@dataclass
class RefineEvent:
    """What one densification step did (one row of ``diagnostics.json``).

    ``kind`` is ``"refine"`` (DefaultStrategy grow + prune), ``"reset"`` (opacity reset) or
    ``"mcmc"`` (relocation + sample-add). Gradient figures are the mean 2D gradient norms
    accumulated since the last refine, over the Gaussians seen in that window (``None`` when
    none was seen); ``grad_high`` counts those above ``grow_grad2d``. ``budget_dropped``
    counts the growth candidates above the threshold that the Gaussian budget
    (``train.max_gaussians``) refused: when it is above zero the budget, not the gradient
    threshold, decided how much this step grew.
    """

    step: int
    kind: str
    n_before: int
    n_after: int
    grad_high: int = 0
    visible: int = 0
    grad_threshold: float | None = None
    grad_mean: float | None = None
    grad_p90: float | None = None
    grad_max: float | None = None
    duplicated: int = 0
    split: int = 0
    pruned: int = 0
    reset: int = 0
    relocated: int = 0
    added: int = 0
    budget_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# DefaultStrategy with a working opacity reset
# ---------------------------------------------------------------------------------------------


class FixedDefaultStrategy(DefaultStrategy):
    """gsplat's ``DefaultStrategy`` whose periodic opacity reset actually happens.

    gsplat 1.5.3 guards the reset with ``step % self.reset_every == 0 & step > 0``. ``&`` binds
    tighter than the comparisons, so this is the chain ``step % reset_every == (0 & step) > 0``,
    i.e. ``... and 0 > 0``: always false, and opacity is never reset. This subclass keeps
    gsplat's grow / prune code (``_update_state``, ``_grow_gs``, ``_prune_gs``) and its
    ``reset_opa`` op, and re-states ``step_post_backward`` with the intended condition
    ``step % reset_every == 0 and step > 0`` (inside the refine window, as gsplat intends and
    as the original 3DGS does). It also records what each step did.
    """

    #: Budget on the number of Gaussians (``train.max_gaussians``); None: unbounded, as gsplat.
    max_gaussians: int | None = None

    def step_post_backward(  # type: ignore[override]
        self,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        packed: bool = False,
    ) -> list[RefineEvent]:
        events: list[RefineEvent] = []
        if step >= self.refine_stop_iter:
            return events
        self._update_state(params, state, info, packed=packed)

        if (
            step > self.refine_start_iter
            and step % self.refine_every == 0
            and step % self.reset_every >= self.pause_refine_after_reset
        ):
            event = RefineEvent(step=step, kind="refine", n_before=len(params["means"]), n_after=0)
            _gradient_stats(event, state, self.grow_grad2d)
            if self.max_gaussians is not None:
                event.budget_dropped = _limit_growth(
                    state, len(params["means"]), self.max_gaussians, self.grow_grad2d
                )
            event.duplicated, event.split = self._grow_gs(params, optimizers, state, step)
            event.pruned = self._prune_gs(params, optimizers, state, step)
            event.n_after = len(params["means"])
            # Start a fresh gradient window, as gsplat does.
            state["grad2d"].zero_()
            state["count"].zero_()
            if self.refine_scale2d_stop_iter > 0:
                state["radii"].zero_()
            if params["means"].is_cuda:
                torch.cuda.empty_cache()  # as gsplat: resizing fragments the CUDA cache
            events.append(event)

        if step % self.reset_every == 0 and step > 0:
            value = self.prune_opa * 2.0
            n = len(params["means"])
            affected = int((torch.sigmoid(params["opacities"].detach()) > value).sum())
            reset_opa(params=params, optimizers=optimizers, state=state, value=value)
            events.append(RefineEvent(step=step, kind="reset", n_before=n, n_after=n,
                                      reset=affected))  # fmt: skip
        return events


@torch.no_grad()
def _limit_growth(state: dict[str, Any], n: int, budget: int, threshold: float) -> int:
    """Keep only the ``budget - n`` highest-gradient growth candidates.

    Each duplicate or split adds exactly one Gaussian, so letting through the top
    ``budget - n`` candidates (by mean screen-space gradient, as gsplat ranks them) keeps the
    count within the budget; the others' accumulated gradient is cleared, which is what the
    gradient window reset after refinement does anyway.

    Returns:
        How many candidates above ``threshold`` the budget refused (0: the threshold decided).
    """
    grads = state["grad2d"] / state["count"].clamp_min(1)
    candidates = torch.nonzero(grads > threshold).squeeze(-1)
    room = max(0, budget - n)
    if candidates.numel() <= room:
        return 0
    keep = candidates[torch.topk(grads[candidates], room).indices] if room else candidates[:0]
    drop = torch.ones_like(grads, dtype=torch.bool)
    drop[keep] = False
    state["grad2d"][drop] = 0.0
    return int(candidates.numel() - room)


@torch.no_grad()
def _gradient_stats(event: RefineEvent, state: dict[str, Any], threshold: float) -> None:
    """Fill the gradient figures of ``event`` from gsplat's running state."""
    count = state.get("count")
    grad2d = state.get("grad2d")
    event.grad_threshold = float(threshold)
    if count is None or grad2d is None:
        return
    grads = grad2d / count.clamp_min(1)
    event.grad_high = int((grads > threshold).sum())
    seen = grads[count > 0]
    event.visible = int(seen.numel())
    if seen.numel():
        k = max(1, math.ceil(0.9 * seen.numel()))
        event.grad_mean = float(seen.mean())
        event.grad_p90 = float(seen.kthvalue(k).values)
        event.grad_max = float(seen.max())


# ---------------------------------------------------------------------------------------------
# 3DGS-MCMC in torch
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _relocation_table(n_max: int) -> Tensor:
    """``[n_max + 1, n_max]`` float64 table ``T[n, j-1] = C(n, j) (-1)^(j-1) / sqrt(j)``.

    Eq. 9's denominator is ``sum_{i=1..n} sum_{k=0..i-1} C(i-1, k) (-1)^k a^(k+1) / sqrt(k+1)``.
    Summing ``C(i-1, k)`` over ``i`` first (hockey-stick identity: ``sum_{i=k+1..n} C(i-1, k)
    = C(n, k+1)``) leaves ``sum_{j=1..n} T[n, j-1] a^j``: one row lookup and one dot product.
    """
    table = torch.zeros((n_max + 1, n_max), dtype=torch.float64)
    for n in range(n_max + 1):
        for j in range(1, n + 1):
            table[n, j - 1] = math.comb(n, j) * (-1) ** (j - 1) / math.sqrt(j)
    return table


@torch.no_grad()
def relocation_opacity_scale(
    opacities: Tensor, scales: Tensor, ratios: Tensor, n_max: int = RELOCATION_N_MAX
) -> tuple[Tensor, Tensor]:
    """Eq. 9 of 3DGS-MCMC: opacity and scale of each of ``n`` copies of a Gaussian, so that the
    ``n`` co-located copies render like the original.

    ``new_opacity = 1 - (1 - o)^(1/n)`` and ``new_scale = scale * o / D`` with
    ``D = sum_{i=1..n} sum_{k=0..i-1} C(i-1, k) (-1)^k new_opacity^(k+1) / sqrt(k+1)``
    (the paper writes the covariance, ``Sigma_new = o^2 D^-2 Sigma``; scales are its square root).

    Args:
        opacities: ``[M]`` activated opacities in ``(0, 1)``.
        scales: ``[M, 3]`` activated scales (standard deviations).
        ratios: ``[M]`` number of copies ``n`` (the original included), clamped to ``[1, n_max]``.

    Returns:
        ``(new_opacities [M], new_scales [M, 3])`` in the input dtype. The alternating sum is
        evaluated in float64: in float32 it loses several digits for large ``n``.
    """
    n = ratios.long().clamp(1, n_max)
    o = opacities.double()
    a = 1.0 - (1.0 - o) ** (1.0 / n.double())
    table = _relocation_table(n_max).to(o.device)
    powers = a[:, None] ** torch.arange(1, n_max + 1, device=o.device, dtype=torch.float64)
    denom = (table[n] * powers).sum(dim=1)
    coeff = o / denom
    return a.to(opacities.dtype), (scales.double() * coeff[:, None]).to(scales.dtype)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """``[N, 3, 3]`` rotation matrices of ``[N, 4]`` quaternions ``(w, x, y, z)`` (normalised
    first, as the rasterizers do)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)  # fmt: skip


@torch.no_grad()
def edit_params(
    params: Params,
    optimizers: Optimizers,
    param_fn: Callable[[str, Tensor], Tensor],
    state_fn: Callable[[Tensor], Tensor],
) -> None:
    """Replace every parameter by ``param_fn(name, old)`` and remap its Adam moments with
    ``state_fn`` (the per-parameter scalar ``step`` is kept). The optimizer is re-pointed at the
    new ``Parameter`` object, which is how gsplat's strategies resize Gaussians too."""
    for name in list(params.keys()):
        old = params[name]
        new = torch.nn.Parameter(param_fn(name, old.data), requires_grad=old.requires_grad)
        params[name] = new
        opt = optimizers.get(name)
        if opt is None:
            continue
        st = opt.state.pop(old, {})
        for key, value in list(st.items()):
            if key != "step" and isinstance(value, Tensor) and value.dim() > 0:
                st[key] = state_fn(value)
        opt.param_groups[0]["params"] = [new]
        if st:
            opt.state[new] = st


def _zero_rows(v: Tensor, rows: Tensor) -> Tensor:
    v = v.clone()
    v[rows] = 0
    return v


@torch.no_grad()
def _sample_by_opacity(opacities: Tensor, candidates: Tensor, n: int) -> Tensor:
    """``n`` indices drawn with replacement from ``candidates``, weighted by opacity."""
    probs = opacities[candidates]
    if candidates.numel() > 2**24:
        # torch.multinomial is limited to 2^24 categories; sample via inverse CDF instead.
        cdf = probs.double().cumsum(0)
        u = torch.rand(n, dtype=torch.float64, device=probs.device) * cdf[-1]
        picks = torch.searchsorted(cdf, u).clamp_max(candidates.numel() - 1)
    else:
        picks = torch.multinomial(probs, n, replacement=True)
    return candidates[picks]


@torch.no_grad()
def _relocated_values(params: Params, sampled: Tensor, min_opacity: float) -> tuple[Tensor, Tensor]:
    """Logit opacities and log scales for the ``sampled`` sources, counting each source's copies
    (``ratio = times sampled + 1``, the source included)."""
    opac = torch.sigmoid(params["opacities"].detach())
    counts = torch.bincount(sampled, minlength=opac.numel())
    new_o, new_s = relocation_opacity_scale(
        opac[sampled], torch.exp(params["scales"].detach()[sampled]), counts[sampled] + 1
    )
    eps = torch.finfo(torch.float32).eps
    new_o = new_o.clamp(min=min_opacity, max=1.0 - eps)
    return torch.logit(new_o), torch.log(new_s)


@torch.no_grad()
def relocate_dead(params: Params, optimizers: Optimizers, dead: Tensor, min_opacity: float) -> int:
    """Move the ``dead`` (mask ``[N]``) Gaussians onto live ones sampled by opacity (3DGS-MCMC).

    Each sampled source and its new copies share Eq. 9's opacity and scale. Adam moments are
    zeroed for the sources *and* the relocated slots (gsplat zeroes only the sources, so a
    teleported Gaussian would inherit the momentum of the dead one it replaces).
    Returns the number of relocated Gaussians.
    """
    dead_idx = dead.nonzero(as_tuple=True)[0]
    alive_idx = (~dead).nonzero(as_tuple=True)[0]
    if dead_idx.numel() == 0 or alive_idx.numel() == 0:
        return 0
    opac = torch.sigmoid(params["opacities"].detach())
    sampled = _sample_by_opacity(opac, alive_idx, dead_idx.numel())
    logit_o, log_s = _relocated_values(params, sampled, min_opacity)
    touched = torch.cat([sampled, dead_idx])

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = p.clone()
        if name == "opacities":
            p[sampled] = logit_o.to(p.dtype)
        elif name == "scales":
            p[sampled] = log_s.to(p.dtype)
        p[dead_idx] = p[sampled]
        return p

    edit_params(params, optimizers, param_fn, lambda v: _zero_rows(v, touched))
    return int(dead_idx.numel())


@torch.no_grad()
def add_by_sampling(params: Params, optimizers: Optimizers, n: int, min_opacity: float) -> int:
    """Append ``n`` copies of Gaussians sampled by opacity, sharing Eq. 9's opacity and scale
    with their sources (3DGS-MCMC's growth). Returns ``n``."""
    if n <= 0:
        return 0
    opac = torch.sigmoid(params["opacities"].detach())
    all_idx = torch.arange(opac.numel(), device=opac.device)
    sampled = _sample_by_opacity(opac, all_idx, n)
    logit_o, log_s = _relocated_values(params, sampled, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = p.clone()
        if name == "opacities":
            p[sampled] = logit_o.to(p.dtype)
        elif name == "scales":
            p[sampled] = log_s.to(p.dtype)
        return torch.cat([p, p[sampled]])

    def state_fn(v: Tensor) -> Tensor:
        v = _zero_rows(v, sampled)
        return torch.cat([v, torch.zeros((n, *v.shape[1:]), dtype=v.dtype, device=v.device)])

    edit_params(params, optimizers, param_fn, state_fn)
    return n


def noise_gate(opacities: Tensor) -> Tensor:
    """3DGS-MCMC's opacity gate ``sigmoid(100 * ((1 - o) - 0.995))``: ~1 for nearly transparent
    Gaussians (o < 0.005), ~0 for the rest, so only low-opacity Gaussians wander."""
    return torch.sigmoid(100.0 * ((1.0 - opacities) - 0.995))


@torch.no_grad()
def inject_position_noise(params: Params, scaler: float) -> Tensor:
    """Add the SGLD exploration noise ``Sigma @ eps * gate(o) * scaler`` to the means in place,
    with ``Sigma = R S S R^T`` each Gaussian's covariance and ``eps ~ N(0, I)``.

    Returns the ``[N, 3]`` noise added (for tests and diagnostics).
    """
    opac = torch.sigmoid(params["opacities"].detach().flatten())
    scales = torch.exp(params["scales"].detach())
    R = quat_to_rotmat(params["quats"].detach())
    M = R * scales[:, None, :]
    cov = M @ M.transpose(1, 2)
    eps = torch.randn_like(params["means"])
    noise = torch.einsum("nij,nj->ni", cov, eps * noise_gate(opac)[:, None] * scaler)
    params["means"].data.add_(noise)
    return noise


@dataclass
class TorchMCMCStrategy:
    """3DGS-MCMC (Kheradmand et al. 2024) with gsplat 1.5.3's ``MCMCStrategy`` schedule, in torch.

    Every ``refine_every`` steps strictly between ``refine_start_iter`` and ``refine_stop_iter``:
    Gaussians with opacity <= ``min_opacity`` are relocated onto live ones, then
    ``min(cap_max, 1.05 N) - N`` Gaussians are added by sampling. Every step, the position
    noise ``lr * noise_lr`` (``lr``: the current means learning rate) is injected.
    """

    cap_max: int = 1_000_000
    noise_lr: float = 5e5
    refine_start_iter: int = 500
    refine_stop_iter: int = 25_000
    refine_every: int = 100
    min_opacity: float = 0.005

    def initialize_state(self) -> dict[str, Any]:
        return {}

    def check_sanity(self, params: Params, optimizers: Optimizers) -> None:
        for key in ("means", "scales", "quats", "opacities"):
            if key not in params:
                raise ValueError(f"{key} is required in params but missing")
        trainable = {k for k, p in params.items() if p.requires_grad}
        if trainable != set(optimizers):
            raise ValueError(f"trainable params {trainable} != optimizers {set(optimizers)}")

    def step_pre_backward(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: MCMC does not use the 2D gradients."""

    def step_post_backward(
        self,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        lr: float,
    ) -> list[RefineEvent]:
        events: list[RefineEvent] = []
        if self.refine_start_iter < step < self.refine_stop_iter and step % self.refine_every == 0:
            n_before = len(params["means"])
            dead = torch.sigmoid(params["opacities"].detach().flatten()) <= self.min_opacity
            relocated = relocate_dead(params, optimizers, dead, self.min_opacity)
            n = len(params["means"])
            target = min(self.cap_max, int(1.05 * n))
            added = add_by_sampling(params, optimizers, max(0, target - n), self.min_opacity)
            events.append(RefineEvent(step=step, kind="mcmc", n_before=n_before,
                                      n_after=len(params["means"]), relocated=relocated,
                                      added=added))  # fmt: skip
        inject_position_noise(params, lr * self.noise_lr)
        return events


Strategy = FixedDefaultStrategy | TorchMCMCStrategy


def build_strategy(cfg: StrategyConfig, max_gaussians: int | None = None) -> Strategy:
    """The strategy object for a config; every config field is passed on.

    ``max_gaussians`` (``train.max_gaussians``) bounds growth for either strategy: the default
    strategy grows only its highest-gradient candidates once near the budget, MCMC's cap
    becomes ``min(cap_max, max_gaussians)``.
    """
    fields = {k: v for k, v in asdict(cfg).items() if k != "name"}
    if isinstance(cfg, DefaultStrategyConfig):
        strategy = FixedDefaultStrategy(**fields)
        strategy.max_gaussians = max_gaussians
        return strategy
    if isinstance(cfg, MCMCStrategyConfig):
        if max_gaussians is not None:
            fields["cap_max"] = min(fields["cap_max"], max_gaussians)
        return TorchMCMCStrategy(**fields)
    raise TypeError(f"unknown strategy config {type(cfg).__name__}")
