"""Early stopping on validation PSNR measured on a subset of the *training* views.

Test views are never looked at during training: choosing when to stop on them would leak the
test set into the result. The state is a plain dict so it goes into checkpoints as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from splatbench.train.config import EarlyStopConfig, EarlyStopOff, PlateauConfig, TargetConfig


def validation_indices(num_train: int, val_views: int) -> list[int]:
    """``min(val_views, num_train)`` training-view indices spread evenly over the (name-sorted)
    training views, deterministic: first and last included."""
    k = min(val_views, num_train)
    if k <= 1:
        return [0][:k]
    return sorted({round(i * (num_train - 1) / (k - 1)) for i in range(k)})


@dataclass
class EarlyStopper:
    """Decides after each evaluation whether to stop.

    Steps are counted as *completed* optimizer steps (1-based): an evaluation after step index
    ``s`` is at ``steps = s + 1``.
    """

    cfg: EarlyStopConfig
    best_psnr: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str | None = None

    @property
    def enabled(self) -> bool:
        return not isinstance(self.cfg, EarlyStopOff)

    def should_evaluate(self, steps: int) -> bool:
        return self.enabled and steps % self.cfg.eval_every == 0  # type: ignore[union-attr]

    def update(self, steps: int, psnr: float) -> bool:
        """Record a validation PSNR after ``steps`` completed steps; True means stop now."""
        self.history.append({"steps": steps, "psnr": float(psnr)})
        cfg = self.cfg
        if isinstance(cfg, PlateauConfig):
            if self.best_psnr is None or psnr > self.best_psnr + cfg.min_delta_db:
                self.bad_evals = 0
            else:
                self.bad_evals += 1
            if self.best_psnr is None or psnr > self.best_psnr:
                self.best_psnr, self.best_step = float(psnr), steps
            if steps >= cfg.min_steps and self.bad_evals >= cfg.patience:
                self.stop_reason = "plateau"
        elif isinstance(cfg, TargetConfig):
            if self.best_psnr is None or psnr > self.best_psnr:
                self.best_psnr, self.best_step = float(psnr), steps
            if steps >= cfg.min_steps and psnr >= cfg.target_psnr_db:
                self.stop_reason = "target"
        return self.stop_reason is not None

    def never_fired_warning(self, max_steps: int) -> str | None:
        """Why an enabled rule let training run to ``max_steps`` (None when it fired or is off):
        the run paid for its validations and saved nothing, which a sweep must not hide."""
        cfg = self.cfg
        if not self.enabled or self.stop_reason is not None:
            return None
        best = (
            f"best validation PSNR {self.best_psnr:.2f} dB at step {self.best_step}"
            if self.best_psnr is not None
            else "no validation ran"
        )
        if isinstance(cfg, PlateauConfig):
            why = (
                f"validation PSNR kept improving by more than early_stop.min_delta_db="
                f"{cfg.min_delta_db} within early_stop.patience={cfg.patience} evaluations"
            )
            fix = "raise min_delta_db or lower patience if the gains are too small to matter"
        elif isinstance(cfg, TargetConfig):
            why = f"validation PSNR stayed below early_stop.target_psnr_db={cfg.target_psnr_db}"
            fix = "lower target_psnr_db to a value this scene reaches"
        else:
            return None
        return (
            f"early stop ({cfg.name}) never fired: {why}, so training ran to train.max_steps="
            f"{max_steps} ({best}; {len(self.history)} validations cost time and saved none); "
            f"{fix}, or use early_stop=off"
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "history": list(self.history),
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_psnr = state["best_psnr"]
        self.best_step = state["best_step"]
        self.bad_evals = int(state["bad_evals"])
        self.history = list(state["history"])
        self.stop_reason = state["stop_reason"]
