"""Settings of the report stage and of ``splatbench diff`` (the ``report`` params section)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from splatbench.errors import ConfigError, check_known_keys

#: Pipeline stages whose metrics file the report reads, in pipeline order, with that file's stem.
STAGE_FILES: dict[str, str] = {
    "ingest": "ingest",
    "sfm": "sfm",
    "train": "train",
    "compress": "compress",
    "export": "export",
    "evaluate": "eval",
}
WORSE = ("lower", "higher")


@dataclass(frozen=True)
class RegressionRule:
    """When a change of a metric counts as a regression.

    Attributes:
        name: label in the diff table (``psnr``, ``size``, ...).
        metric: glob over DVC's flattened metric key (``*.psnr``: ``trained.psnr`` ...).
        file: glob over the metrics file path (``*eval.json``).
        worse: ``lower`` (higher is better: PSNR) or ``higher`` (lower is better: LPIPS, size).
        abs: worsening (in the metric's unit) that must be exceeded; None: not checked.
        rel: worsening as a fraction of the old value that must be exceeded; None: not checked.
            With both, a change is a regression only when it exceeds both (``abs`` keeps a
            near-zero old value from turning noise into a huge relative change).
    """

    name: str
    metric: str
    file: str = "*"
    worse: str = "lower"
    abs: float | None = None
    rel: float | None = None

    def __post_init__(self) -> None:
        if self.worse not in WORSE:
            raise ConfigError(
                f"report.regression.{self.name}.worse={self.worse!r} must be lower or higher",
                fix="'lower' when higher values are better (PSNR), 'higher' otherwise",
            )
        if self.abs is None and self.rel is None:
            raise ConfigError(
                f"report.regression.{self.name} sets neither abs nor rel",
                fix="give abs (in the metric's unit) and/or rel (a fraction of the old value)",
            )
        for key in ("abs", "rel"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or value < 0):  # fmt: skip
                raise ConfigError(
                    f"report.regression.{self.name}.{key}={value!r} must be a number >= 0",
                    fix="thresholds are magnitudes; the direction is given by `worse`",
                )


# Mirrors conf/report/default.yaml (a test checks they agree); see its comment for the source.
DEFAULT_PRICES: dict[str, float] = {
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g4dn.4xlarge": 1.505,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.4xlarge": 2.03,
    "ml.g5.8xlarge": 3.06,
    "ml.p3.2xlarge": 3.825,
    "ml.m5.large": 0.115,
    "ml.c6i.2xlarge": 0.34,
    "ml.c6i.4xlarge": 0.68,
}
DEFAULT_STAGE_INSTANCES: dict[str, str] = {
    "ingest": "ml.c6i.2xlarge",
    "sfm": "ml.c6i.2xlarge",
    "train": "ml.g4dn.xlarge",
    "compress": "ml.c6i.4xlarge",
    "export": "ml.c6i.4xlarge",
    "evaluate": "ml.g4dn.xlarge",
}
DEFAULT_RULES: tuple[RegressionRule, ...] = (
    RegressionRule("psnr", "*.psnr", "*eval.json", "lower", abs=0.1),
    RegressionRule("ssim", "*.ssim", "*eval.json", "lower", abs=0.005),
    RegressionRule("lpips", "*.lpips", "*eval.json", "higher", abs=0.005),
    RegressionRule("size", "*megabytes", "*.json", "higher", rel=0.05),
    RegressionRule("train_time", "seconds", "*train.json", "higher", rel=0.25),
)


@dataclass(frozen=True)
class ReportConfig:
    """What the report reads besides the metrics files, and how it prices and judges runs.

    Attributes:
        curves_dir: where the trainer's DVCLive output for a scene lives; ``{scene}`` is filled.
        currency: label for prices.
        instance_prices: price per instance-hour by instance type.
        stage_instances: instance type each stage would run on in production.
        regression: thresholds for ``splatbench diff``.
    """

    curves_dir: str = "dvclive/{scene}"
    currency: str = "USD"
    instance_prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    stage_instances: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STAGE_INSTANCES))
    regression: tuple[RegressionRule, ...] = DEFAULT_RULES

    def __post_init__(self) -> None:
        unknown_stage = sorted(set(self.stage_instances) - set(STAGE_FILES))
        if unknown_stage:
            raise ConfigError(
                f"report.stage_instances names unknown stages {unknown_stage}",
                fix=f"use stage names {', '.join(STAGE_FILES)}",
            )
        unpriced = sorted(set(self.stage_instances.values()) - set(self.instance_prices))
        if unpriced:
            raise ConfigError(
                f"report.stage_instances uses instances without a price: {unpriced}",
                fix="add them to report.instance_prices (price per hour)",
            )
        for name, price in self.instance_prices.items():
            if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
                raise ConfigError(
                    f"report.instance_prices.{name}={price!r} must be a number >= 0",
                    fix="give the on-demand price per instance-hour",
                )


_KEYS = ("curves_dir", "currency", "instance_prices", "stage_instances", "regression")
_RULE_KEYS = ("metric", "file", "worse", "abs", "rel")


def report_config_from_dict(d: Mapping[str, Any] | None) -> ReportConfig:
    """Build from the ``report`` params section; missing keys take the defaults.

    Raises:
        ConfigError: unknown keys (with the closest known one) or bad values.
    """
    d = dict(d or {})
    check_known_keys(d, _KEYS, "report")
    kwargs: dict[str, Any] = {k: d[k] for k in ("curves_dir", "currency") if d.get(k) is not None}
    if d.get("instance_prices") is not None:
        kwargs["instance_prices"] = {str(k): v for k, v in dict(d["instance_prices"]).items()}
    if d.get("stage_instances") is not None:
        kwargs["stage_instances"] = {str(k): str(v) for k, v in dict(d["stage_instances"]).items()}
    if d.get("regression") is not None:
        rules = []
        for name, rule in dict(d["regression"]).items():
            if not isinstance(rule, Mapping) or "metric" not in rule:
                raise ConfigError(
                    f"report.regression.{name} must be a mapping with at least `metric`",
                    fix="e.g. psnr: {metric: '*.psnr', file: '*eval.json', worse: lower, abs: 0.1}",
                )
            check_known_keys(rule, _RULE_KEYS, f"report.regression.{name}")
            rules.append(RegressionRule(name=str(name), **dict(rule)))
        kwargs["regression"] = tuple(rules)
    return ReportConfig(**kwargs)
