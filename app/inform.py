"""The Overview page's numbers: spend and GPU-hours per team / project / GPU type, untagged share, idle GPU
cost and the week-over-week top movers, as pure functions of a usage frame and the price catalog.

Spend basis (the one of budgets and unit costs, :mod:`operate.costing`): a usage row's ``cost_usd`` when the
data has it (billing exports), else its GPU-hours at the on-demand list price of its GPU model: the cheapest
on-demand USD per GPU-hour in the region, the rate the planner bills on-demand at. GPU models the catalog has
no on-demand price for stay unpriced (their GPU-hours are counted, their spend is not).

Idle GPU cost: ``gpus x (1 - utilization) x on-demand rate`` over the rows that report utilisation (0-1).

Units: GPU-hours (a row's ``gpus`` is GPU-hours in its hour), USD, fractions for shares.
No streamlit here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from operate import costing
from operate.costing import Rates
from optimizer import catalog as C
from optimizer.inputs import PlanConfig, PlanningError, offers_for
from usage import schema as S

USD = "usd"
IDLE_USD = "idle_usd"
GPU_HOURS = "gpu_hours"
PERIOD = "period"
DIMENSIONS = {"team": S.TEAM, "project": S.PROJECT, "GPU type": S.GPU_TYPE}
NO_PROJECT = "(no project)"


def on_demand_rates(catalog: C.Catalog, gpu_models: set[str] | list[str], region: str = "us-east-1") -> Rates:
    """:func:`operate.costing.on_demand_rates` of the GPU models the region prices on demand (others are left
    out: their usage stays unpriced instead of failing the page)."""
    offered = catalog.gpu_models(region)
    priced_models = []
    for gpu in sorted(set(gpu_models) & offered):
        try:
            offers_for(catalog, gpu, PlanConfig(start=pd.Timestamp("2000-01-01"), hours=1, region=region))
        except PlanningError:
            continue
        priced_models.append(gpu)
    return costing.on_demand_rates(catalog, priced_models, region)


def priced_usage(usage: pd.DataFrame, rates: Rates) -> pd.DataFrame:
    """Usage rows with ``usd`` (spend, :func:`operate.costing.priced`; NaN for GPU models without a rate),
    ``idle_usd`` (NaN where utilisation is unknown) and the project filled."""
    out = usage[[S.TIMESTAMP, S.TEAM, S.GPU_TYPE, S.GPUS]].copy()
    out[S.PROJECT] = usage[S.PROJECT].fillna(NO_PROJECT) if S.PROJECT in usage else NO_PROJECT
    rate = usage[S.GPU_TYPE].map(rates.usd_per_gpu_hour).astype(float)
    known = rate.notna().to_numpy()
    out[USD] = np.nan
    if known.any():
        out.loc[known, USD] = costing.priced(usage[known], rates)[costing.COST].to_numpy()
    if S.UTILIZATION in usage:
        out[IDLE_USD] = usage[S.GPUS] * (1.0 - usage[S.UTILIZATION].clip(0.0, 1.0)) * rate
    else:
        out[IDLE_USD] = np.nan
    return out


@dataclass(frozen=True)
class Overview:
    """Everything the Overview page shows for one period (USD, GPU-hours, fractions).

    Attributes:
        over_time: ``period, <dimension>, usd, gpu_hours`` per day (or week) and group.
        totals: ``<dimension>, usd, gpu_hours, idle_usd`` per group over the period, by spend.
        movers: ``team, usd_last_week, usd_week_before, delta_usd, delta_pct`` (biggest |delta| first).
        spend_usd / gpu_hours / idle_usd: totals over the period (idle only over rows with utilisation).
        untagged_gpu_hours_share / untagged_spend_share: team ``unallocated`` share (0-1).
        utilization_known_share: share of GPU-hours that report utilisation (0-1).
        unpriced_gpu_types: GPU models without an on-demand price (spend not counted).
        start / end: first and last hour of the period (UTC).
        basis: spend basis (:func:`operate.costing.cost_basis`).
    """

    over_time: pd.DataFrame
    totals: pd.DataFrame
    movers: pd.DataFrame
    spend_usd: float
    gpu_hours: float
    idle_usd: float
    untagged_gpu_hours_share: float
    untagged_spend_share: float
    utilization_known_share: float
    unpriced_gpu_types: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    basis: str


def overview(usage: pd.DataFrame, rates: Rates, weeks: int, dimension: str = "team",
             freq: str = "D") -> Overview:
    """Spend and GPU-hours of the last ``weeks`` weeks of the data, grouped by ``dimension``.

    Args:
        usage: canonical usage frame.
        rates: on-demand USD per GPU-hour per GPU model (:func:`on_demand_rates`).
        weeks: length of the period, ending at the data's last hour.
        dimension: ``team``, ``project`` or ``GPU type``.
        freq: ``D`` (daily) or ``W`` (weekly) points in ``over_time``.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension '{dimension}' (fix: use one of {', '.join(DIMENSIONS)})")
    if weeks < 1:
        raise ValueError("the period must be at least one week")
    col = DIMENSIONS[dimension]
    end = pd.Timestamp(usage[S.TIMESTAMP].max())
    start = max(end - pd.Timedelta(weeks=weeks) + pd.Timedelta(hours=1), pd.Timestamp(usage[S.TIMESTAMP].min()))
    rows = priced_usage(usage[usage[S.TIMESTAMP] >= start], rates)
    rows[PERIOD] = rows[S.TIMESTAMP].dt.to_period(freq).dt.start_time
    over_time = (rows.groupby([PERIOD, col], as_index=False)
                 .agg(usd=(USD, "sum"), gpu_hours=(S.GPUS, "sum")))
    totals = (rows.groupby(col, as_index=False).agg(usd=(USD, "sum"), gpu_hours=(S.GPUS, "sum"))
              .sort_values(USD, ascending=False, kind="stable").reset_index(drop=True))
    idle = rows.groupby(col)[IDLE_USD].sum(min_count=1)  # NaN where no row of the group reports utilisation
    totals[IDLE_USD] = totals[col].map(idle).to_numpy()
    spend = float(rows[USD].sum())
    gpu_h = float(rows[S.GPUS].sum())
    untagged = rows[S.TEAM] == S.UNALLOCATED_TEAM
    known = rows[IDLE_USD].notna()
    return Overview(
        over_time=over_time, totals=totals, movers=top_movers(priced_usage(usage, rates), end),
        spend_usd=spend, gpu_hours=gpu_h, idle_usd=float(rows.loc[known, IDLE_USD].sum()),
        untagged_gpu_hours_share=float(rows.loc[untagged, S.GPUS].sum() / gpu_h) if gpu_h else 0.0,
        untagged_spend_share=float(rows.loc[untagged, USD].sum() / spend) if spend else 0.0,
        utilization_known_share=float(rows.loc[known, S.GPUS].sum() / gpu_h) if gpu_h else 0.0,
        unpriced_gpu_types=tuple(sorted(set(rows.loc[rows[USD].isna(), S.GPU_TYPE]))),
        start=start, end=end, basis=costing.cost_basis(usage, rates))


def top_movers(priced: pd.DataFrame, end: pd.Timestamp, n: int = 5) -> pd.DataFrame:
    """Teams whose spend changed most between the last 7 days and the 7 days before (USD, fraction)."""
    last = priced[priced[S.TIMESTAMP] > end - pd.Timedelta(days=7)]
    before = priced[(priced[S.TIMESTAMP] > end - pd.Timedelta(days=14))
                    & (priced[S.TIMESTAMP] <= end - pd.Timedelta(days=7))]
    a = last.groupby(S.TEAM)[USD].sum()
    b = before.groupby(S.TEAM)[USD].sum()
    teams = a.index.union(b.index)
    a, b = a.reindex(teams, fill_value=0.0), b.reindex(teams, fill_value=0.0)
    out = pd.DataFrame({S.TEAM: teams, "usd_last_week": a.to_numpy(), "usd_week_before": b.to_numpy()})
    out["delta_usd"] = out["usd_last_week"] - out["usd_week_before"]
    out["delta_pct"] = np.where(out["usd_week_before"] > 0, out["delta_usd"] / out["usd_week_before"].where(
        out["usd_week_before"] > 0, 1.0), np.nan)
    order = out["delta_usd"].abs().sort_values(ascending=False, kind="stable").index
    return out.loc[order].head(n).reset_index(drop=True)
