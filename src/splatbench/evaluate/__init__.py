"""Evaluate trained (and compressed) Gaussian models on a scene's held-out test views.

:func:`evaluate_scene` renders every test view of ``split.json`` with each model, computes
PSNR/SSIM/LPIPS under the configured :class:`~splatbench.metrics.MetricConvention`, times
rendering, and writes ground truth | render | error comparison strips.
"""

from splatbench.evaluate.comparisons import comparison_strip, error_map, pick_views
from splatbench.evaluate.config import RENDER_BACKENDS, EvalConfig, eval_config_from_params
from splatbench.evaluate.scene import (
    COMPARISONS_FILENAME,
    EVAL_SCHEMA_VERSION,
    EvaluateError,
    ModelInput,
    RenderTiming,
    evaluate_model,
    evaluate_scene,
    parse_model_arg,
    storage_bytes,
)

__all__ = [
    "COMPARISONS_FILENAME",
    "EVAL_SCHEMA_VERSION",
    "RENDER_BACKENDS",
    "EvalConfig",
    "EvaluateError",
    "ModelInput",
    "RenderTiming",
    "comparison_strip",
    "error_map",
    "eval_config_from_params",
    "evaluate_model",
    "evaluate_scene",
    "parse_model_arg",
    "pick_views",
    "storage_bytes",
]
