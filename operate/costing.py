"""Price usage for budgets, unit economics and guardrails (USD per GPU-hour per GPU model).

Budgets are set in list-price terms unless the usage carries its billed cost: a row's cost is its
``cost_usd`` when the usage file has that column (billing exports), otherwise ``gpus x rate`` where the
rate is the cheapest on-demand price per GPU-hour of the GPU model in the catalog region (the rate the
plan's serving rule bills leftover demand at). Chargeback under a purchase plan does not use this
module: it bills with :mod:`optimizer.billing`.

Units: ``gpus`` GPU-hours per hour; rates USD per GPU-hour; costs USD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.catalog import Catalog
from optimizer.inputs import PlanConfig, offers_for
from usage import schema as S

COST = "cost_usd"
PERIOD_START = "period_start"
PERIOD_END = "period_end"


@dataclass(frozen=True)
class Rates:
    """USD per GPU-hour per GPU model and where they came from."""

    usd_per_gpu_hour: dict[str, float]
    basis: str

    def of(self, gpu_model: str) -> float:
        if gpu_model not in self.usd_per_gpu_hour:
            raise ValueError(f"no price for GPU model '{gpu_model}' ({self.basis}) "
                             "(fix: use a catalog region that offers it)")
        return self.usd_per_gpu_hour[gpu_model]


def on_demand_rates(catalog: Catalog, gpu_models: set[str] | list[str], region: str = "us-east-1") -> Rates:
    """The cheapest on-demand USD per GPU-hour of each GPU model in ``region`` (same rule as the planner)."""
    config = PlanConfig(start=pd.Timestamp("2000-01-01"), hours=1, region=region)
    rates = {g: offers_for(catalog, g, config).on_demand_usd_per_gpu_hour for g in sorted(gpu_models)}
    dates = ", ".join(catalog.snapshot_dates(region))
    return Rates(rates, f"cheapest on-demand USD per GPU-hour in {region}, prices as of {dates}")


def priced(usage: pd.DataFrame, rates: Rates) -> pd.DataFrame:
    """Usage with a ``cost_usd`` column: billed cost where the file has it, else ``gpus x rate``."""
    out = usage.copy()
    rate = out[S.GPU_TYPE].map(lambda g: rates.of(g)).to_numpy(dtype=float)
    list_cost = out[S.GPUS].to_numpy(dtype=float) * rate
    if S.COST_USD in out.columns:
        billed = pd.to_numeric(out[S.COST_USD], errors="coerce").to_numpy(dtype=float)
        out[COST] = np.where(np.isnan(billed), list_cost, billed)
    else:
        out[COST] = list_cost
    return out


def cost_basis(usage: pd.DataFrame, rates: Rates) -> str:
    """One line saying how :func:`priced` costs this usage."""
    if S.COST_USD in usage.columns and usage[S.COST_USD].notna().any():
        return f"billed cost_usd from the usage file (rows without it: {rates.basis})"
    return rates.basis
