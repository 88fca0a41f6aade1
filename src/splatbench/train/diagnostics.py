"""Densification diagnostics: what every refine step did, a summary, and plain warnings.

A production run once reached a high training PSNR early, its 2D gradients stayed below
``grow_grad2d``, nothing was ever cloned or split, and nobody noticed until the models were
bad. :func:`summarize` turns the per-step records into warnings a report can show.
"""

from __future__ import annotations

from typing import Any

from splatbench.train.config import DefaultStrategyConfig, MCMCStrategyConfig, StrategyConfig

DIAGNOSTICS_SCHEMA_VERSION = 1


def summarize(
    events: list[dict[str, Any]],
    strategy: StrategyConfig,
    *,
    steps_run: int,
    num_initial: int,
    num_final: int,
    stopped_early: bool = False,
    max_gaussians: int | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Summary figures and warnings for a run's refine events.

    Args:
        events: ``RefineEvent.to_dict()`` rows in step order.
        steps_run: optimizer steps actually run (early stop may end before the refine window).
        stopped_early: the early-stop rule ended the run before ``train.max_steps``.
        max_gaussians: the run's Gaussian budget (``train.max_gaussians``); growth that stops
            because the budget is reached is not reported as a stall.
    """
    refines = [e for e in events if e["kind"] in ("refine", "mcmc")]
    resets = [e for e in events if e["kind"] == "reset"]
    grown = [e for e in refines if e["duplicated"] + e["split"] + e["added"] > 0]
    summary: dict[str, Any] = {
        "strategy": strategy.name,
        "refine_steps": len(refines),
        "duplicated": sum(e["duplicated"] for e in refines),
        "split": sum(e["split"] for e in refines),
        "pruned": sum(e["pruned"] for e in refines),
        "relocated": sum(e["relocated"] for e in refines),
        "added": sum(e["added"] for e in refines),
        "resets": len(resets),
        "reset_steps": [e["step"] for e in resets],
        "num_gaussians_initial": int(num_initial),
        "num_gaussians_final": int(num_final),
        "first_growth_step": grown[0]["step"] if grown else None,
        "last_growth_step": grown[-1]["step"] if grown else None,
        "densification_fired": bool(grown),
        "max_gaussians": max_gaussians,
        # Growth reached the budget (prunes in the same refine step may then lower the count).
        "budget_reached": bool(
            max_gaussians is not None
            and any(e["n_before"] + e["duplicated"] + e["split"] >= max_gaussians for e in refines)
        ),
        # Growth candidates above the gradient threshold that the budget refused, and in how
        # many refine steps (events recorded before this field existed count as none).
        "budget_dropped": sum(int(e.get("budget_dropped") or 0) for e in refines),
        "budget_limited_steps": sum(1 for e in refines if e.get("budget_dropped")),
    }
    warnings: list[str] = []
    start, stop = strategy.refine_start_iter, strategy.refine_stop_iter

    if not refines:
        if steps_run <= start + strategy.refine_every:
            warnings.append(
                f"densification never ran: training ended after {steps_run} steps, before the "
                f"first refine step (strategy.refine_start_iter={start}, refine_every="
                f"{strategy.refine_every}); lower refine_start_iter or train longer (check the "
                f"early stop did not end the run early)"
            )
        else:
            warnings.append(
                f"densification never ran in {steps_run} steps; check strategy.refine_every, "
                f"refine_start_iter={start} and refine_stop_iter={stop}"
            )
    elif not grown:
        if isinstance(strategy, DefaultStrategyConfig):
            max_grad = max((e["grad_max"] or 0.0) for e in refines)
            max_high = max(e["grad_high"] for e in refines)
            warnings.append(
                f"densification never fired: in {len(refines)} refine steps no Gaussian was "
                f"cloned or split (largest mean 2D gradient {max_grad:.3g}, threshold "
                f"strategy.grow_grad2d={strategy.grow_grad2d:g}, at most {max_high} above it); "
                f"lower strategy.grow_grad2d (e.g. 1e-5) or subsample the initial cloud "
                f"(train.init.num_points)"
            )
        elif isinstance(strategy, MCMCStrategyConfig):
            warnings.append(
                f"MCMC never added Gaussians: {num_initial} initial Gaussians already reach "
                f"strategy.cap_max={strategy.cap_max}; raise cap_max or subsample the initial "
                f"cloud (train.init.num_points)"
            )
    else:
        # Stalled: growth stopped in the first half of the refine steps that actually ran.
        half = refines[len(refines) // 2]["step"]
        last = summary["last_growth_step"]
        capped = (isinstance(strategy, MCMCStrategyConfig) and num_final >= strategy.cap_max) or (
            summary["budget_reached"]
        )
        if len(refines) >= 8 and last < half and not capped:
            warnings.append(
                f"densification stalled: the last clone/split was at step {last}, with "
                f"{len(refines)} refine steps up to step {refines[-1]['step']}; growth stopped "
                f"early (consider a lower strategy.grow_grad2d)"
            )
    budget = _budget_warning(refines, strategy, summary, max_gaussians, num_final)
    if budget:
        warnings.append(budget)
    if stopped_early and steps_run < stop:
        warnings.append(
            f"early stop fired before densification finished: it ended training at step "
            f"{steps_run}, inside the densification window (strategy.refine_stop_iter={stop}); "
            f"the model did not finish densifying. Raise early_stop.min_steps to at least "
            f"{stop} (or lower strategy.refine_stop_iter)"
        )
    summary["warnings"] = list(warnings)
    return summary, warnings


def _budget_warning(
    refines: list[dict[str, Any]],
    strategy: StrategyConfig,
    summary: dict[str, Any],
    max_gaussians: int | None,
    num_final: int,
) -> str | None:
    """The warning when the Gaussian budget, not the strategy's own growth rule, decided how
    much the model grew: a sweep over the growth threshold is then masked by the budget."""
    if max_gaussians is None:
        return None
    if isinstance(strategy, DefaultStrategyConfig):
        dropped = summary["budget_dropped"]
        if not dropped:
            return None
        limited = [e for e in refines if e.get("budget_dropped")]
        wanted = sum(e["grad_high"] for e in limited)
        return (
            f"the Gaussian budget, not the gradient threshold, decided growth: from step "
            f"{limited[0]['step']} train.max_gaussians={max_gaussians} refused {dropped:,} of "
            f"{wanted:,} growth candidates above strategy.grow_grad2d={strategy.grow_grad2d:g} "
            f"in {len(limited)} refine steps, so changes to grow_grad2d barely matter; raise "
            f"train.max_gaussians (or set it to null) to let the threshold decide"
        )
    if isinstance(strategy, MCMCStrategyConfig) and max_gaussians < strategy.cap_max:
        if num_final < max_gaussians and not any(e["n_after"] >= max_gaussians for e in refines):
            return None
        return (
            f"the Gaussian budget, not strategy.cap_max, decided growth: MCMC grew to "
            f"train.max_gaussians={max_gaussians}, below strategy.cap_max={strategy.cap_max}; "
            f"raise train.max_gaussians (or set it to null) to let cap_max decide"
        )
    return None


def diagnostics_document(
    events: list[dict[str, Any]], summary: dict[str, Any], strategy: StrategyConfig
) -> dict[str, Any]:
    """The content of ``diagnostics.json``."""
    from splatbench.train.config import config_dict

    return {
        "schema_version": DIAGNOSTICS_SCHEMA_VERSION,
        "strategy": config_dict(strategy),
        "summary": summary,
        "events": events,
    }
