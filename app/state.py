"""App state: settings dataclasses, session-state keys, cached pipeline calls and the frames pages show.

Everything the Streamlit pages compute goes through here, so the pages stay thin: they turn widgets into
a frozen settings object, call the cached functions below and hand the frames to :mod:`app.charts`.

Caching: the forecast is cached per :class:`ForecastSettings` (sample, window hours) and the plan per
:class:`PlannerSettings`, so moving a planning slider only re-runs :func:`optimizer.solve.make_plan`.
Loaded samples and the catalog are read-only and cached as resources (no copy per rerun).

Units: demand in GPUs in use per hour (= GPU-hours per hour), money in USD, windows in hours, growth
and spot share as fractions in the settings (the widgets show percent).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from forecasting import schema as S
from forecasting.engine import ForecastConfig, ForecastResult, LongForecast, default_n_jobs, forecast
from forecasting.samples import SAMPLES, load_sample
from optimizer.billing import BillingError, cost_arrays, pricing_for
from optimizer.catalog import Catalog, CatalogError, load_catalog
from optimizer.inputs import PlanConfig, PlanningError, scenarios_from_paths
from optimizer.plan import Plan
from optimizer.solve import PlanResult, make_plan
from optimizer.summary import commitment_obligation_usd, commitments_table

log = logging.getLogger(__name__)

# --- session-state keys (one place) ---------------------------------------------------------------
SAMPLE_KEY = "sample"
HOURS_KEY = "window_hours"
GROWTH_KEY = "growth_pct"
SPOT_SHARE_KEY = "max_spot_share_pct"
ALLOW_SPOT_KEY = "allow_spot"
SERIES_KEY = "fan_series"
PLAN_SUMMARY_KEY = "plan_summary"
"""Written by the Planner page after each plan: the figures it shows (for tests and later pages)."""

# --- defaults and limits --------------------------------------------------------------------------
DEFAULT_SAMPLE_ENV = "GPUPLAN_DEFAULT_SAMPLE"
DEFAULT_HOURS_ENV = "GPUPLAN_DEFAULT_HOURS"
MIN_HOURS, MAX_HOURS, DEFAULT_HOURS = 168, 2160, 720
HISTORY_SHOWN_HOURS = 21 * 24
"""History drawn before the forecast in the fan chart: three weeks."""
ORG_TOTAL = "Organisation total (all teams, all GPU types)"
ALL_TEAMS = "All teams"
SERIES_SEP = " · "
COST_CATEGORIES = ("committed", "spot", "on-demand")
_COST_KEYS = {"committed": "committed_usd", "spot": "spot_usd", "on-demand": "on_demand_usd"}

USER_ERRORS = (PlanningError, CatalogError, BillingError, S.UsageError, ValueError)
"""Errors caused by settings or inputs: shown as one line, never as a traceback."""


def default_sample() -> str:
    """Sample selected on first load: ``$GPUPLAN_DEFAULT_SAMPLE`` if it names a shipped sample, else synthetic."""
    name = os.environ.get(DEFAULT_SAMPLE_ENV, "synthetic")
    return name if name in SAMPLES else "synthetic"


def default_hours() -> int:
    """Plan window on first load: ``$GPUPLAN_DEFAULT_HOURS`` clamped to 168..2160, else 720."""
    try:
        hours = int(os.environ.get(DEFAULT_HOURS_ENV, DEFAULT_HOURS))
    except ValueError:
        hours = DEFAULT_HOURS
    return min(max(hours, MIN_HOURS), MAX_HOURS)


# --- settings -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForecastSettings:
    """What the forecast depends on: the sample and the window (forecast horizon = window hours).

    Attributes:
        sample: shipped sample organisation (``synthetic`` or ``helios``).
        hours: plan window in hours, starting the hour after the sample's last hour.
    """

    sample: str
    hours: int


@dataclass(frozen=True)
class PlannerSettings:
    """Everything one plan depends on.

    Attributes:
        sample: shipped sample organisation.
        hours: plan window in hours after the sample's last hour.
        growth: demand growth applied to the forecast as a fraction (0.5 = +50%).
        max_spot_share: at most this fraction of each GPU model's GPU-hours on spot.
        allow_spot: whether spot may serve demand at all.
    """

    sample: str
    hours: int
    growth: float = 0.0
    max_spot_share: float = 0.3
    allow_spot: bool = True

    @property
    def forecast_settings(self) -> ForecastSettings:
        return ForecastSettings(self.sample, self.hours)

    def plan_config(self, start: pd.Timestamp) -> PlanConfig:
        """The optimizer's config for a window starting at ``start``."""
        return PlanConfig(start=start, hours=self.hours, growth=self.growth, max_spot_share=self.max_spot_share,
                          allow_spot=self.allow_spot)


# --- pure pipeline steps --------------------------------------------------------------------------
def window_start(usage: pd.DataFrame) -> pd.Timestamp:
    """First hour of the plan window: the hour after the last hour of usage."""
    return pd.Timestamp(usage[S.TIMESTAMP].max()) + pd.Timedelta(hours=1)


def forecast_usage(usage: pd.DataFrame, hours: int) -> ForecastResult:
    """Forecast every series ``hours`` ahead with the default settings (8 weeks of history)."""
    config = ForecastConfig(horizon_hours=hours, n_jobs=default_n_jobs())
    return forecast(usage, config)


def plan_forecast(fc: pd.DataFrame, catalog: Catalog, settings: PlannerSettings, start: pd.Timestamp,
                  long: LongForecast | None = None) -> PlanResult:
    """Plan the window under the settings: over the engine's joint sample paths when ``long`` (the forecast
    behind ``fc``) is given, as ``gpuplan plan`` does, else over the p10/p50/p90 scenarios of ``fc``."""
    config = settings.plan_config(start)
    if long is not None:
        return make_plan(fc, catalog, config, scenarios=scenarios_from_paths(long, config))
    return make_plan(fc, catalog, config)


# --- cached calls ---------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def cached_usage(sample: str) -> pd.DataFrame:
    """The shipped sample as a validated usage frame (shared, treat as read-only)."""
    return load_sample(sample)


@st.cache_resource(show_spinner=False)
def cached_catalog() -> Catalog:
    """The shipped price catalog (shared, read-only)."""
    return load_catalog()


@st.cache_data(show_spinner=False, max_entries=8)
def cached_forecast(settings: ForecastSettings) -> ForecastResult:
    """Forecast of a sample for its plan window (about a minute on the synthetic org, then cached)."""
    return forecast_usage(cached_usage(settings.sample), settings.hours)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_plan(settings: PlannerSettings) -> PlanResult:
    """Plan for the settings, reusing the cached forecast (only the optimizer runs on a slider move)."""
    fc = cached_forecast(settings.forecast_settings)
    return plan_forecast(fc.forecast, cached_catalog(), settings, window_start(cached_usage(settings.sample)),
                         long=fc.long)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_hourly_costs(settings: PlannerSettings) -> pd.DataFrame:
    """The cached plan billed hour by hour on each scenario (built once per plan, not on every rerun)."""
    return hourly_costs(cached_plan(settings))


@st.cache_data(show_spinner=False, max_entries=8)
def cached_forecast_csv(settings: ForecastSettings) -> bytes:
    """The cached forecast as the download CSV (built once per forecast, not on every rerun)."""
    return forecast_csv(cached_forecast(settings).forecast)


T = TypeVar("T")


def guarded(fn: Callable[[], T]) -> T | None:
    """Run ``fn``; on a user error show it as one ``st.error`` line and return None (never a traceback).

    Unexpected exceptions are logged with their traceback on the server and shown as one line too.
    """
    try:
        return fn()
    except USER_ERRORS as exc:
        st.error(f"error: {exc}", icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - the app must not show tracebacks
        log.exception("unexpected error in the planner")
        st.error(f"unexpected error ({exc.__class__.__name__}): {exc}", icon=":material/error:")
    return None


# --- frames for the pages -------------------------------------------------------------------------
def series_label(team: str, gpu_type: str) -> str:
    return f"{team}{SERIES_SEP}{gpu_type}"


def series_options(fc: pd.DataFrame) -> list[str]:
    """Fan-chart choices: the organisation total, per-GPU-model totals (if several), then each series."""
    gpus = sorted(fc[S.GPU_TYPE].unique())
    pairs = fc[[S.TEAM, S.GPU_TYPE]].drop_duplicates().sort_values([S.TEAM, S.GPU_TYPE])
    options = [ORG_TOTAL]
    if len(gpus) > 1:
        options += [series_label(ALL_TEAMS, g) for g in gpus]
    options += [series_label(t, g) for t, g in pairs.itertuples(index=False)]
    return options


def _select(frame: pd.DataFrame, option: str) -> pd.DataFrame:
    if option == ORG_TOTAL:
        return frame
    team, _, gpu = option.partition(SERIES_SEP)
    rows = frame[frame[S.GPU_TYPE] == gpu]
    return rows if team == ALL_TEAMS else rows[rows[S.TEAM] == team]


def fan_frames(usage: pd.DataFrame, fc: pd.DataFrame, option: str,
               history_hours: int = HISTORY_SHOWN_HOURS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """History and forecast of one fan-chart choice, summed over the series it covers.

    Totals add the series' quantiles, i.e. treat the teams as moving together: the band is wider than the
    organisation's true p10-p90 (the optimizer's scenarios make the same assumption).

    Returns:
        ``(history[timestamp, gpus], forecast[timestamp, p10, p50, p90])`` in GPUs per hour; history
        covers the last ``history_hours`` hours before the forecast.
    """
    hist = _select(usage, option)
    first = fc[S.TIMESTAMP].min()
    hist = hist[(hist[S.TIMESTAMP] < first) & (hist[S.TIMESTAMP] >= first - pd.Timedelta(hours=history_hours))]
    hist = hist.groupby(S.TIMESTAMP, as_index=False)[S.GPUS].sum()
    fut = _select(fc, option).groupby(S.TIMESTAMP, as_index=False)[[S.P10, S.P50, S.P90]].sum()
    return hist, fut


def series_model_note(selection: pd.DataFrame, option: str) -> str:
    """One line naming the model chosen for a single series (empty for totals)."""
    if option == ORG_TOTAL or option.startswith(ALL_TEAMS + SERIES_SEP):
        return ""
    team, _, gpu = option.partition(SERIES_SEP)
    row = selection[(selection[S.TEAM] == team) & (selection[S.GPU_TYPE] == gpu)]
    if row.empty:
        return ""
    r = row.iloc[0]
    cv = "" if pd.isna(r["cv_mae"]) else f", cross-validated MAE {r['cv_mae']:.1f} GPUs"
    return f"Model: {r[S.MODEL]}{cv}, fitted on {int(r['history_hours']):,} hours of history."


def forecast_csv(fc: pd.DataFrame) -> bytes:
    """The forecast contract CSV (``forecasting.schema.FORECAST_COLUMNS``, ISO 8601 UTC timestamps)."""
    out = fc[list(S.FORECAST_COLUMNS)].copy()
    out[S.TIMESTAMP] = S.format_timestamp(out[S.TIMESTAMP])
    return out.to_csv(index=False).encode("utf-8")


def hourly_costs(result: PlanResult) -> pd.DataFrame:
    """The plan billed on every demand scenario: ``scenario, timestamp, gpu_type, category, usd`` (USD per hour).

    Uses the one serving rule of :mod:`optimizer.billing`, so the totals match the plan's expected block.
    """
    sc = result.scenarios
    n_s, n_t = len(sc.names), len(sc.hours)
    frames = []
    for gpu in sc.gpu_models:
        arrays = cost_arrays(sc.demand[gpu], pricing_for(result.plan, gpu, sc.hours))
        for category, key in _COST_KEYS.items():
            frames.append(pd.DataFrame({"scenario": np.repeat(np.asarray(sc.names, dtype=object), n_t),
                                        S.TIMESTAMP: np.tile(sc.hours.to_numpy(), n_s), S.GPU_TYPE: gpu,
                                        "category": category, "usd": arrays[key].reshape(-1)}))
    return pd.concat(frames, ignore_index=True)


def daily_costs(hourly: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Expected (scenario-weighted) cost per UTC day and category: ``day, category, usd``."""
    rows = hourly.assign(usd=hourly["usd"] * hourly["scenario"].map(weights).astype(float),
                         day=hourly[S.TIMESTAMP].dt.floor("D"))
    out = rows.groupby(["day", "category"], as_index=False)["usd"].sum()
    return _order_categories(out)


def gpu_model_costs(hourly: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Expected (scenario-weighted) window cost per GPU model and category: ``gpu_type, category, usd``."""
    per = hourly.groupby(["scenario", S.GPU_TYPE, "category"], as_index=False)["usd"].sum()
    per["usd"] = per["usd"] * per["scenario"].map(weights).astype(float)
    out = per.groupby([S.GPU_TYPE, "category"], as_index=False)["usd"].sum()
    return _order_categories(out)


def _order_categories(frame: pd.DataFrame) -> pd.DataFrame:
    frame["category"] = pd.Categorical(frame["category"], categories=list(COST_CATEGORIES), ordered=True)
    keys = [c for c in ("day", S.GPU_TYPE) if c in frame.columns]
    return frame.sort_values([*keys, "category"]).reset_index(drop=True).astype({"category": str})


def commitments_frame(plan: Plan) -> pd.DataFrame:
    """What to buy, with display column names carrying their units."""
    t = commitments_table(plan)
    return pd.DataFrame({
        "Count": t["count"], "Instance type": t["instance_type"], "Option": t["purchase_option"],
        "GPU model": t["gpu_model"], "GPUs": t["gpus"], "USD/h per instance": t["usd_per_instance_hour"],
        "Upfront USD per instance": t["upfront_usd_per_instance"],
        "Effective USD/h per instance": t["effective_usd_per_instance_hour"],
        "Upfront USD total": t["count"] * t["upfront_usd_per_instance"],
        "Start (UTC)": t["start"], "Term (h)": t["term_hours"], "Window cost (USD)": t["window_cost_usd"],
    })


def spot_frame(plan: Plan) -> pd.DataFrame:
    """Spot allowances: at most N instances at once, with their price and rework."""
    return pd.DataFrame([{
        "GPU model": s.gpu_model, "Instance type": s.instance_type, "Max instances": s.max_instances,
        "Max GPUs": s.max_instances * s.gpus_per_instance, "USD/h per instance": s.usd_per_instance_hour,
        "Interruptions (monthly)": s.interruption_bucket or "unknown", "Rework (%)": 100.0 * s.rework_fraction,
        "USD per useful GPU-hour": s.usd_per_useful_gpu_hour} for s in plan.spot],
        columns=["GPU model", "Instance type", "Max instances", "Max GPUs", "USD/h per instance",
                 "Interruptions (monthly)", "Rework (%)", "USD per useful GPU-hour"])


def on_demand_frame(plan: Plan) -> pd.DataFrame:
    """On-demand rate per GPU model for the demand left after commitments and spot."""
    return pd.DataFrame([{"GPU model": o.gpu_model, "Instance type": o.instance_type,
                          "USD per GPU-hour": o.usd_per_gpu_hour} for o in plan.on_demand],
                        columns=["GPU model", "Instance type", "USD per GPU-hour"])


def plan_summary(result: PlanResult) -> dict[str, float | int | None]:
    """The figures the Planner shows, as plain numbers (USD, %, counts)."""
    e = result.plan.expected
    util = None if e.commitment_utilization is None else 100.0 * e.commitment_utilization
    return {"expected_usd": e.total_usd, "p10_usd": e.total_p10_usd, "p90_usd": e.total_p90_usd,
            "all_on_demand_usd": e.all_on_demand_usd, "savings_usd": e.savings_usd, "savings_pct": e.savings_pct,
            "commitment_utilization_pct": util, "upfront_usd": e.upfront_usd,
            "commitment_obligation_usd": commitment_obligation_usd(result.plan), "committed_usd": e.committed_usd,
            "spot_usd": e.spot_usd, "on_demand_usd": e.on_demand_usd,
            "commitments": sum(c.count for c in result.plan.commitments),
            "spot_allowances": len(result.plan.spot),
            "spot_max_instances": sum(s.max_instances for s in result.plan.spot),
            "solve_seconds": result.build_seconds + result.solve_seconds}


def scenario_weights(result: PlanResult) -> dict[str, float]:
    return {n: float(w) for n, w in zip(result.scenarios.names, np.asarray(result.scenarios.weights), strict=True)}
