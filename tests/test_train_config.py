"""Config dataclasses: every conf/ file parses, unknown keys fail by name, schedules."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
import yaml

from splatbench.errors import ConfigError
from splatbench.train import (
    DefaultStrategyConfig,
    MCMCStrategyConfig,
    PlateauConfig,
    TargetConfig,
    TrainConfig,
    build_strategy,
    configs_from_params,
    early_stop_config_from_dict,
    strategy_config_from_dict,
)
from splatbench.train.config import ProgressiveConfig, check_early_stop_can_fire
from splatbench.train.strategies import _limit_growth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from compose_params import compose


def test_every_conf_file_parses(repo_root, tmp_path):
    conf = repo_root / "conf"
    train = TrainConfig.from_dict(yaml.safe_load((conf / "train" / "default.yaml").read_text()))
    assert train.max_steps == 30_000 and train.lr.shN == pytest.approx(1.25e-4)
    for path in sorted((conf / "strategy").glob("*.yaml")):
        d = yaml.safe_load(path.read_text())
        cfg = strategy_config_from_dict(d)
        # Every key of the file lands in the config with its value (nothing ignored).
        for key, value in d.items():
            got = getattr(cfg, key)
            if isinstance(got, float):  # noise_lr: 5.0e5 is a string to PyYAML
                assert got == pytest.approx(float(value)), (path.name, key)
            else:
                assert got == value, (path.name, key)
    for path in sorted((conf / "early_stop").glob("*.yaml")):
        # Composed as DVC does: plateau/target take their schedule from the train protocol.
        out = tmp_path / f"early_stop_{path.stem}.yaml"
        compose(out, [f"early_stop={path.stem}"], root=repo_root)
        d = yaml.safe_load(out.read_text())["early_stop"]
        cfg = early_stop_config_from_dict(d)
        assert cfg.name == path.stem
        for key, value in d.items():
            assert getattr(cfg, key) == value


def test_composed_params_parse(repo_root):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    train, strategy, early = configs_from_params(params)
    assert isinstance(strategy, DefaultStrategyConfig)
    assert early.name == "off"
    assert train.background == (0.0, 0.0, 0.0)


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match="grow_grad_2d") as err:
        strategy_config_from_dict({"name": "default", "grow_grad_2d": 1e-4})
    assert "grow_grad2d" in str(err.value)  # the fix lists the known names
    with pytest.raises(ConfigError, match="means_lr"):
        TrainConfig.from_dict({"lr": {"means_lr": 1.0}})
    with pytest.raises(ConfigError, match="target_psnr_db"):
        early_stop_config_from_dict({"name": "plateau", "target_psnr_db": 30})
    with pytest.raises(ConfigError, match=r"strategy\.name='adc'"):
        strategy_config_from_dict({"name": "adc"})


def test_yaml_scalars_are_coerced():
    # PyYAML reads 1e-4 (no dot) as a string; Hydra overrides may give ints for floats.
    cfg = strategy_config_from_dict(yaml.safe_load("name: default\ngrow_grad2d: 1e-4\n"))
    assert cfg.grow_grad2d == pytest.approx(1e-4)
    assert TrainConfig.from_dict({"ssim_lambda": 0}).ssim_lambda == 0.0
    assert early_stop_config_from_dict({"name": False}).name == "off"  # YAML 1.1 `off`
    with pytest.raises(ConfigError, match=r"train\.max_steps"):
        TrainConfig.from_dict({"max_steps": "many"})
    with pytest.raises(ConfigError, match="absgrad"):
        strategy_config_from_dict({"absgrad": "yes"})


def test_validation_errors():
    with pytest.raises(ConfigError, match=r"train\.backend"):
        TrainConfig(backend="vulkan")
    with pytest.raises(ConfigError, match="background"):
        TrainConfig(background=(0.0, 2.0, 0.0))
    with pytest.raises(ConfigError):
        PlateauConfig(patience=0)
    with pytest.raises(ConfigError):
        TargetConfig(eval_every=0)


def test_means_lr_matches_gsplat_exponential_schedule():
    cfg = TrainConfig(max_steps=50)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=cfg.lr.means * 2.5)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.01 ** (1 / 50))
    for step in range(50):
        assert cfg.means_lr(step, 2.5) == pytest.approx(sched.get_last_lr()[0], rel=1e-9)
        opt.step()
        sched.step()
    assert cfg.means_lr(50, 2.5) == pytest.approx(cfg.lr.means * 2.5 * 0.01)


def test_progressive_schedule():
    p = ProgressiveConfig(start_downscale=4, halve_every=10)
    assert [p.downscale_at(s) for s in (0, 9, 10, 19, 20, 1000)] == [4, 4, 2, 2, 1, 1]
    assert ProgressiveConfig().downscale_at(0) == 1


def test_build_strategy_honours_every_field():
    d = DefaultStrategyConfig(prune_opa=0.01, grow_grad2d=3e-4, grow_scale3d=0.02,
                              grow_scale2d=0.06, prune_scale3d=0.2, prune_scale2d=0.3,
                              refine_scale2d_stop_iter=7, refine_start_iter=11,
                              refine_stop_iter=13, reset_every=17, refine_every=19,
                              pause_refine_after_reset=23, absgrad=True,
                              revised_opacity=True)  # fmt: skip
    m = MCMCStrategyConfig(cap_max=5, noise_lr=7.0, refine_start_iter=1, refine_stop_iter=2,
                           refine_every=3, min_opacity=0.02)  # fmt: skip
    for cfg in (d, m):
        strategy = build_strategy(cfg)
        for f in dataclasses.fields(cfg):
            if f.name != "name":
                assert getattr(strategy, f.name) == getattr(cfg, f.name), f.name


@pytest.mark.parametrize("rule", ["plateau", "target"])
def test_early_stop_that_can_never_fire_is_an_error(rule):
    train = {"max_steps": 3000}
    with pytest.raises(
        ConfigError, match=r"early_stop\.min_steps=7000 >= train\.max_steps=3000"
    ) as e:
        configs_from_params({"train": train, "early_stop": {"name": rule, "min_steps": 7000}})
    assert f"early_stop={rule} can never fire" in str(e.value)
    assert "early_stop.min_steps" in e.value.fix and "early_stop=off" in e.value.fix
    with pytest.raises(ConfigError, match=r"eval_every=5000 > train\.max_steps=3000"):
        configs_from_params({"train": train, "early_stop": {"name": rule, "min_steps": 10,
                                                           "eval_every": 5000}})  # fmt: skip
    # Equal: the only evaluation at min_steps is the last step; the run ends there anyway.
    with pytest.raises(ConfigError, match="can never fire"):
        check_early_stop_can_fire(PlateauConfig(min_steps=3000), TrainConfig(max_steps=3000))
    check_early_stop_can_fire(PlateauConfig(min_steps=2999, eval_every=3000),
                              TrainConfig(max_steps=3000))  # fmt: skip
    # Off never fires by design: no check.
    configs_from_params({"train": {"max_steps": 10}, "early_stop": {"name": "off"}})


@pytest.mark.parametrize("benchmark", ["synthetic", "mipnerf360", "tandt", "db"])
@pytest.mark.parametrize("rule", ["plateau", "target"])
def test_each_protocol_gets_an_early_stop_that_can_fire_after_densification(
    repo_root, tmp_path, benchmark, rule
):
    """`-S early_stop=plateau` composes, for every benchmark, a schedule that can fire; on
    the 30k protocols never before densification ends."""
    out = tmp_path / "params.yaml"
    compose(out, [f"benchmark={benchmark}", f"early_stop={rule}"], root=repo_root)
    params = yaml.safe_load(out.read_text())
    train, strategy, early = configs_from_params(params)  # raises if it could never fire
    assert early.name == rule
    assert early.min_steps + early.eval_every <= train.max_steps
    assert (train.max_steps - early.min_steps) // early.eval_every >= 3  # room for patience
    if train.max_steps >= strategy.refine_stop_iter:
        assert early.min_steps >= strategy.refine_stop_iter
    # The demo's 7000-step minimum on 3000 steps (the reported bug) is now an error.
    params["early_stop"]["min_steps"] = 7000
    if train.max_steps <= 7000:
        with pytest.raises(ConfigError, match="can never fire"):
            configs_from_params(params)


def test_budget_limit_reports_what_it_refused():
    grads = torch.tensor([5.0, 4.0, 3.0, 0.5, 2.0])
    state = {"grad2d": grads.clone(), "count": torch.ones(5)}
    # 4 candidates above 1.0, room for 2 (budget 12, 10 now): the 2 weakest are refused.
    assert _limit_growth(state, n=10, budget=12, threshold=1.0) == 2
    assert state["grad2d"].tolist() == [5.0, 4.0, 0.0, 0.0, 0.0]
    state = {"grad2d": grads.clone(), "count": torch.ones(5)}
    assert _limit_growth(state, n=10, budget=100, threshold=1.0) == 0  # the threshold decided
    assert state["grad2d"].tolist() == grads.tolist()
