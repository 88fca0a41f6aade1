"""The training loop on tiny synthetic scenes (32x24 images, ~120 Gaussians, tens of steps)."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_support import (
    initial_splats,
    make_views,
    params_equal,
    rasterize,
    write_sfm_scene,
)

from splatbench.gaussians import read_ply, scene_scale
from splatbench.train import (
    CheckpointError,
    DefaultStrategyConfig,
    EarlyStopOff,
    MCMCStrategyConfig,
    NonFiniteError,
    PlateauConfig,
    TargetConfig,
    TrainConfig,
    TrainingOOMError,
    train,
    train_scene,
)
from splatbench.train.checkpoint import list_checkpoints
from splatbench.train.config import ProgressiveConfig
from splatbench.train.loop import background_at, image_index, mean_psnr

NO_REFINE = DefaultStrategyConfig(refine_start_iter=10_000)


@pytest.fixture(scope="module")
def views():
    return make_views(6)


def _cfg(**kw) -> TrainConfig:
    base = dict(max_steps=30, backend="torch", sh_degree=1, sh_degree_interval=10, log_every=5)
    return TrainConfig(**{**base, **kw})


def _train(views, cfg=None, strategy=NO_REFINE, early=None, splats=None, **kw):
    return train(views, splats if splats is not None else initial_splats(), cfg or _cfg(),
                 strategy, early or EarlyStopOff(), scene_scale=scene_scale(views.camera_centers()),
                 rasterize_fn=kw.pop("rasterize_fn", rasterize), **kw)  # fmt: skip


class Crash(RuntimeError):
    pass


def crashing_after(calls: int):
    """A rasterizer that works ``calls`` times, then raises (a killed run)."""
    count = {"n": 0}

    def fn(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise Crash("simulated crash")
        return rasterize(*args, **kwargs)

    return fn


def test_training_improves_psnr(views):
    splats = initial_splats()
    cfg = _cfg(max_steps=40)
    before = mean_psnr(rasterize, splats, views, list(range(6)), cfg=cfg, backend="torch",
                       device=torch.device("cpu"))  # fmt: skip
    result = _train(views, cfg, splats=splats)
    after = mean_psnr(rasterize, result.splats, views, list(range(6)), cfg=cfg, backend="torch",
                      device=torch.device("cpu"))  # fmt: skip
    assert result.steps == 40 and result.stop_reason == "max_steps"
    assert after > before + 2.0, (before, after)
    assert not params_equal(splats, result.splats)  # the input is not modified in place...
    assert torch.equal(splats["means"], initial_splats()["means"])  # ...and stays as given


@pytest.mark.parametrize(
    "strategy",
    [
        DefaultStrategyConfig(
            refine_start_iter=4,
            refine_every=5,
            reset_every=12,
            refine_stop_iter=25,
            grow_grad2d=5e-4,
        ),
        MCMCStrategyConfig(refine_start_iter=4, refine_every=5, cap_max=150),
    ],
    ids=["default", "mcmc"],
)
def test_resume_after_crash_matches_uninterrupted_run(views, tmp_path, strategy):
    cfg = _cfg(max_steps=26, checkpoint_every=7, random_background=True,
               progressive=ProgressiveConfig(start_downscale=2, halve_every=8))  # fmt: skip
    early = PlateauConfig(min_steps=1000, eval_every=6, val_views=2)
    full = _train(views, cfg, strategy, early)

    ckpt = tmp_path / "ckpt"
    with pytest.raises(Crash):
        _train(views, cfg, strategy, early, checkpoint_dir=ckpt, rasterize_fn=crashing_after(19))
    saved = list_checkpoints(ckpt)
    assert [p.name for p in saved] == ["ckpt_00000007.pt", "ckpt_00000014.pt"]  # keep=2
    resumed = _train(views, cfg, strategy, early, checkpoint_dir=ckpt)

    assert resumed.resumed_from == 14 and resumed.steps == full.steps == 26
    assert params_equal(full.splats, resumed.splats)
    assert resumed.events == full.events and any(e["n_after"] != 120 for e in full.events)
    assert resumed.early_stop["history"] == full.early_stop["history"]


def test_finished_run_is_not_trained_again(views, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = _train(views, _cfg(max_steps=8), checkpoint_dir=ckpt)
    again = _train(views, _cfg(max_steps=8), checkpoint_dir=ckpt,
                   rasterize_fn=crashing_after(0))  # fmt: skip
    assert again.resumed_from == 8 and again.steps == 8
    assert params_equal(first.splats, again.splats)
    with pytest.raises(CheckpointError, match="another configuration"):
        _train(views, _cfg(max_steps=8, ssim_lambda=0.5), checkpoint_dir=ckpt)


def test_plateau_early_stop(views):
    # min_delta_db is unreachable, so evaluations after the first never improve.
    early = PlateauConfig(min_steps=0, eval_every=5, val_views=2, patience=2, min_delta_db=100.0)
    result = _train(views, _cfg(max_steps=100), early=early)
    assert (result.stop_reason, result.steps) == ("plateau", 15)
    assert [h["steps"] for h in result.early_stop["history"]] == [5, 10, 15]


def test_plateau_respects_min_steps(views):
    early = PlateauConfig(min_steps=20, eval_every=5, val_views=1, patience=1, min_delta_db=100.0)
    result = _train(views, _cfg(max_steps=100), early=early)
    assert (result.stop_reason, result.steps) == ("plateau", 20)


def test_an_early_stop_that_never_fires_says_so(views):
    early = TargetConfig(min_steps=10, eval_every=5, target_psnr_db=99.0, val_views=2)
    result = _train(views, _cfg(max_steps=20), early=early)
    assert (result.stop_reason, result.steps) == ("max_steps", 20)
    (warning,) = [w for w in result.warnings if "never fired" in w]
    assert "early stop (target) never fired" in warning and "target_psnr_db=99.0" in warning
    assert "train.max_steps=20" in warning and "4 validations" in warning


def test_target_early_stop(views):
    early = TargetConfig(min_steps=10, eval_every=5, target_psnr_db=1.0, val_views=3)
    result = _train(views, _cfg(max_steps=100), early=early)
    assert (result.stop_reason, result.steps) == ("target", 10)
    assert result.early_stop["best_psnr"] >= 1.0
    assert any("early stop fired before densification finished" in w for w in result.warnings)


def test_nan_loss_names_step_and_tensor(views):
    def nan_at_step_3(*args, **kwargs):
        colors, alphas, info = rasterize(*args, **kwargs)
        nan_at_step_3.calls += 1
        return (colors * float("nan") if nan_at_step_3.calls == 4 else colors), alphas, info

    nan_at_step_3.calls = 0
    with pytest.raises(NonFiniteError, match="step 3: loss is nan") as err:
        _train(views, rasterize_fn=nan_at_step_3)
    assert (err.value.step, err.value.tensor) == (3, "loss")


class _NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def test_nan_parameter_names_the_tensor(views):
    def nan_means_grad(means, *args, **kwargs):
        return rasterize(_NanGrad.apply(means), *args, **kwargs)

    with pytest.raises(NonFiniteError, match="parameter 'means'") as err:
        _train(views, rasterize_fn=nan_means_grad)
    assert (err.value.step, err.value.tensor) == (0, "means")


@pytest.mark.parametrize("strategy,knob", [(NO_REFINE, "grow_grad2d"),
                                           (MCMCStrategyConfig(), "cap_max")])  # fmt: skip
def test_out_of_memory_gives_count_and_knob(views, strategy, knob):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(TrainingOOMError, match="with 120 Gaussians") as err:
        _train(views, strategy=strategy, rasterize_fn=oom)
    assert knob in str(err.value) and err.value.num_gaussians == 120


def test_warns_when_densification_never_fires(views):
    never = DefaultStrategyConfig(refine_start_iter=2, refine_every=4, grow_grad2d=1.0,
                                  reset_every=1000)  # fmt: skip
    result = _train(views, _cfg(max_steps=13), never)
    assert result.summary["refine_steps"] == 3 and not result.summary["densification_fired"]
    assert any("densification never fired" in w and "grow_grad2d" in w for w in result.warnings)

    late = DefaultStrategyConfig(refine_start_iter=500)
    result = _train(views, _cfg(max_steps=5), late)
    assert any("densification never ran" in w for w in result.warnings)


def test_progressive_resolution_and_sh_schedule(views):
    seen = []

    def spy(*args, **kwargs):
        seen.append((args[7], args[8], kwargs["sh_degree"]))
        return rasterize(*args, **kwargs)

    cfg = _cfg(max_steps=12, progressive=ProgressiveConfig(start_downscale=4, halve_every=4),
               sh_degree_interval=5)  # fmt: skip
    _train(views, cfg, rasterize_fn=spy)
    assert [s[:2] for s in seen] == [(8, 6)] * 4 + [(16, 12)] * 4 + [(32, 24)] * 4
    assert [s[2] for s in seen] == [0] * 5 + [1] * 7


def test_image_order_and_background_are_seeded():
    order = [image_index(s, 5, seed=0) for s in range(10)]
    assert sorted(order[:5]) == sorted(order[5:]) == list(range(5))  # each epoch: every view once
    assert order != [image_index(s, 5, seed=1) for s in range(10)]
    cfg = TrainConfig(random_background=True)
    assert torch.equal(background_at(3, cfg), background_at(3, cfg))
    assert not torch.equal(background_at(3, cfg), background_at(4, cfg))
    assert torch.equal(background_at(3, TrainConfig(background=(0.0, 1.0, 0.0))),
                       torch.tensor([0.0, 1.0, 0.0]))  # fmt: skip


def test_train_scene_writes_outputs_and_metrics(tmp_path):
    sfm = write_sfm_scene(tmp_path / "sfm" / "toy", n_views=9)
    # Training must never read test views: make them undecodable.
    (sfm / "images" / "frame_000.png").write_bytes(b"not a png")
    (sfm / "images" / "frame_008.png").write_bytes(b"not a png")
    out, live = tmp_path / "splats" / "toy", tmp_path / "live"
    cfg = _cfg(max_steps=12, init={"num_points": 100}, log_every=4)
    strategy = DefaultStrategyConfig(refine_start_iter=3, refine_every=4, grow_grad2d=1e-4)
    early = PlateauConfig(min_steps=1000, eval_every=6, val_views=2)
    metrics = train_scene(sfm, out, TrainConfig.from_dict({**_asdict(cfg)}), strategy, early,
                          live_dir=live, device="cpu", rasterize_fn=rasterize)  # fmt: skip

    json.dumps(metrics, allow_nan=False)  # JSON-safe
    for key in ("steps", "stop_reason", "seconds", "peak_memory_mb", "num_gaussians",
                "backend", "device", "train_psnr", "warnings", "densification"):  # fmt: skip
        assert key in metrics, key
    assert (metrics["steps"], metrics["stop_reason"], metrics["backend"]) == (12, "max_steps",
                                                                             "torch")  # fmt: skip
    assert metrics["num_gaussians_initial"] == 100 and metrics["train_views"] == 7
    assert metrics["train_psnr"] > 5 and metrics["peak_memory_mb"] > 0
    ply = read_ply(out / "point_cloud.ply")
    assert len(ply["means"]) == metrics["num_gaussians"]
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["summary"]["refine_steps"] == 2 and len(diag["events"]) >= 2
    assert metrics["densification"]["refine_steps"] == 2
    # DVCLive curves: loss, PSNR, Gaussian count, learning rate, validation PSNR.
    plots = {p.stem for p in (live / "plots" / "metrics").rglob("*.tsv")}
    assert {"loss", "psnr", "num_gaussians", "lr_means"} <= plots
    assert (live / "plots" / "metrics" / "val" / "psnr.tsv").is_file()


def _asdict(cfg: TrainConfig) -> dict:
    from splatbench.train.config import config_dict

    return config_dict(cfg)
