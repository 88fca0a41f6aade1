"""Densification summary and warnings, from synthetic refine records."""

from __future__ import annotations

from splatbench.train import DefaultStrategyConfig, MCMCStrategyConfig
from splatbench.train.diagnostics import summarize
from splatbench.train.strategies import RefineEvent


def _refine(step: int, grown: int = 0, n: int = 100, grad_max: float = 1e-5) -> dict:
    return RefineEvent(step=step, kind="refine", n_before=n, n_after=n + grown, split=grown,
                       grad_max=grad_max, grad_high=0).to_dict()  # fmt: skip


def test_summary_counts_and_no_warning_for_healthy_run():
    events = [_refine(s, grown=10) for s in range(600, 1500, 100)]
    events.append(RefineEvent(step=3000, kind="reset", n_before=1, n_after=1, reset=5).to_dict())
    summary, warnings = summarize(events, DefaultStrategyConfig(), steps_run=30_000,
                                  num_initial=100, num_final=190)  # fmt: skip
    assert summary["split"] == 90 and summary["refine_steps"] == 9
    assert summary["reset_steps"] == [3000] and summary["densification_fired"]
    assert warnings == []


def test_never_fired_names_threshold_and_gradient():
    events = [_refine(s, grad_max=3.2e-5) for s in range(600, 1500, 100)]
    _, warnings = summarize(events, DefaultStrategyConfig(grow_grad2d=2e-4), steps_run=1500,
                            num_initial=100, num_final=100)  # fmt: skip
    (w,) = warnings
    assert "never fired" in w and "3.2e-05" in w and "grow_grad2d=0.0002" in w


def test_stalled_growth_is_reported():
    events = [_refine(600, grown=50), _refine(700, grown=5)]
    events += [_refine(s) for s in range(800, 2000, 100)]
    _, warnings = summarize(events, DefaultStrategyConfig(), steps_run=30_000,
                            num_initial=100, num_final=155)  # fmt: skip
    assert any("stalled" in w and "step 700" in w for w in warnings)


def test_early_stop_inside_refine_window_and_mcmc_cap():
    events = [_refine(s, grown=1) for s in range(600, 1000, 100)]
    _, warnings = summarize(events, DefaultStrategyConfig(), steps_run=1000, num_initial=100,
                            num_final=104, stopped_early=True)  # fmt: skip
    assert any("inside the densification window" in w for w in warnings)
    mcmc = [RefineEvent(step=s, kind="mcmc", n_before=50, n_after=50).to_dict()
            for s in range(600, 1000, 100)]  # fmt: skip
    _, warnings = summarize(mcmc, MCMCStrategyConfig(cap_max=50), steps_run=30_000,
                            num_initial=50, num_final=50)  # fmt: skip
    assert any("cap_max=50" in w for w in warnings)


def test_growth_stopped_by_the_budget_is_not_a_stall():
    # Growth fills the budget at step 700 (100 + 50 split = 150), prunes bring it to 140 after;
    # later refine steps grow nothing because the budget is spent.
    events = [_refine(600, grown=40), _refine(700, grown=10, n=140)]
    events[-1]["n_after"] = 140  # 10 split, then 10 pruned
    events[-1]["pruned"] = 10
    events += [_refine(s, n=140) for s in range(800, 2000, 100)]
    summary, warnings = summarize(events, DefaultStrategyConfig(), steps_run=30_000,
                                  num_initial=100, num_final=140, max_gaussians=150)  # fmt: skip
    assert summary["budget_reached"] and summary["max_gaussians"] == 150
    assert not any("stalled" in w for w in warnings)
    # Without a budget the same history is a stall.
    _, warnings = summarize(events, DefaultStrategyConfig(), steps_run=30_000,
                            num_initial=100, num_final=140)  # fmt: skip
    assert any("stalled" in w for w in warnings)


def test_budget_that_decided_growth_is_a_warning():
    # From step 700 the budget refused most candidates above the threshold: the threshold
    # no longer decided how much the model grew.
    events = [_refine(600, grown=40)]
    events += [RefineEvent(step=s, kind="refine", n_before=140, n_after=150, split=10,
                           grad_high=400, budget_dropped=390).to_dict()
               for s in (700, 800)]  # fmt: skip
    strategy = DefaultStrategyConfig(grow_grad2d=2e-4)
    summary, warnings = summarize(events, strategy, steps_run=30_000, num_initial=100,
                                  num_final=150, max_gaussians=150)  # fmt: skip
    assert summary["budget_dropped"] == 780 and summary["budget_limited_steps"] == 2
    (w,) = warnings
    assert "the Gaussian budget, not the gradient threshold, decided growth" in w
    assert "from step 700" in w and "train.max_gaussians=150" in w
    assert "780 of 800 growth candidates" in w and "grow_grad2d=0.0002" in w
    # The budget was never hit: the threshold decided, no warning (old events lack the field).
    plain = [_refine(s, grown=10) for s in range(600, 1500, 100)]
    del plain[0]["budget_dropped"]
    summary, warnings = summarize(plain, strategy, steps_run=30_000, num_initial=100,
                                  num_final=190, max_gaussians=10_000)  # fmt: skip
    assert summary["budget_dropped"] == 0 and warnings == []


def test_mcmc_grown_to_the_budget_below_cap_max_is_a_warning():
    mcmc = [RefineEvent(step=s, kind="mcmc", n_before=80, n_after=100, added=20).to_dict()
            for s in range(600, 1000, 100)]  # fmt: skip
    _, warnings = summarize(mcmc, MCMCStrategyConfig(cap_max=1000), steps_run=30_000,
                            num_initial=50, num_final=100, max_gaussians=100)  # fmt: skip
    assert any("not strategy.cap_max, decided growth" in w and "cap_max=1000" in w
               for w in warnings)  # fmt: skip
    _, warnings = summarize(mcmc, MCMCStrategyConfig(cap_max=1000), steps_run=30_000,
                            num_initial=50, num_final=100, max_gaussians=5000)  # fmt: skip
    assert warnings == []


def test_early_stop_before_densification_finished_names_the_fix():
    events = [_refine(s, grown=1) for s in range(600, 1000, 100)]
    strategy = DefaultStrategyConfig(refine_stop_iter=15_000)
    _, warnings = summarize(events, strategy, steps_run=7000, num_initial=100, num_final=104,
                            stopped_early=True)  # fmt: skip
    (w,) = warnings
    assert "early stop fired before densification finished" in w and "step 7000" in w
    assert "refine_stop_iter=15000" in w and "early_stop.min_steps to at least 15000" in w
    # After the densification window, or without an early stop: no warning.
    for steps, early in ((15_000, True), (7000, False)):
        _, warnings = summarize(events, strategy, steps_run=steps, num_initial=100,
                                num_final=104, stopped_early=early)  # fmt: skip
        assert not any("early stop" in w for w in warnings)
