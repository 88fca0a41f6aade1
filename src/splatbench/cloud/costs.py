"""The cost guard of ``splatbench remote run``: a worst-case bill, shown before anything starts.

SageMaker bills each job for at most ``MaxRuntimeInSeconds`` of instance time (a job is stopped
there), so ``jobs x max runtime x price per hour`` bounds the bill for compute. Prices come from
the report's table (``report.instance_prices`` in ``conf/report/default.yaml``: on-demand
training prices); managed spot is billed below on-demand, but by how much varies, so spot jobs
are priced at on-demand as an upper bound. Storage, data transfer and S3 requests are not
included (small next to GPU hours for this pipeline); the table says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from splatbench.errors import ConfigError


@dataclass(frozen=True)
class CostLine:
    """The worst-case compute cost of one job."""

    job: str
    instance_type: str
    instance_count: int
    price_per_hour: float
    max_runtime_s: int
    spot: bool

    @property
    def max_usd(self) -> float:
        return self.instance_count * self.price_per_hour * self.max_runtime_s / 3600.0


def price_for(
    instance_type: str, prices: Mapping[str, float], override: float | None = None
) -> float:
    """On-demand price per hour of ``instance_type``.

    Raises:
        ConfigError: the instance has no price (the guard cannot bound the bill).
    """
    if override is not None:
        if override < 0:
            raise ConfigError("--price-per-hour must be >= 0", fix="give the on-demand price")
        return float(override)
    if instance_type not in prices:
        known = ", ".join(sorted(prices)) or "none"
        raise ConfigError(
            f"no price for {instance_type} in report.instance_prices (known: {known})",
            fix=f"add `{instance_type}: <USD per hour>` under instance_prices in "
            "conf/report/default.yaml, or pass --price-per-hour",
        )
    return float(prices[instance_type])


def check_budget(lines: Sequence[CostLine], max_usd: float | None) -> float:
    """The total worst case; refuses when above ``max_usd``.

    Raises:
        ConfigError: over budget, with the numbers and how to get under it.
    """
    total = sum(line.max_usd for line in lines)
    if max_usd is not None and total > max_usd + 1e-9:
        raise ConfigError(
            f"worst-case cost ${total:,.2f} for {len(lines)} job(s) is above --max-usd "
            f"${max_usd:,.2f}",
            fix="lower --max-runtime, run fewer sweep points, pick a cheaper --instance, or "
            "raise --max-usd",
        )
    return total


def cost_rows(lines: Sequence[CostLine]) -> list[list[str]]:
    """Table rows (job, instance, price/h, max runtime, worst case) plus a total row."""
    from splatbench.cloud.sagemaker import format_duration

    rows = [
        [
            line.job,
            line.instance_type + (" spot" if line.spot else ""),
            f"${line.price_per_hour:,.3f}",
            format_duration(line.max_runtime_s),
            f"${line.max_usd:,.2f}",
        ]
        for line in lines
    ]
    total = sum(line.max_usd for line in lines)
    rows.append(["total", f"{len(lines)} job(s)", "", "", f"${total:,.2f}"])
    return rows
