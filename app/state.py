"""App state: settings dataclasses, session-state keys and the cached pipeline calls every page shares (data
sources, forecast, scenarios, plan, routing).

Everything the Streamlit pages compute goes through here or the page modules' state on top of it (listed below), so
the pages stay thin: they turn widgets into a frozen settings object, call the cached functions and hand the frames
to :mod:`app.charts`.

Planning is the CLI's: :func:`plan_forecast` builds the scenarios with :func:`optimizer.term.plan_scenarios`
(the engine's joint sample paths plus the replayed recent history for the window's first hours, planned events on
every scenario, rightsizing's GPU map, then the long-term forecast to the end of the longest commitment term)
and plans with :func:`optimizer.solve.make_plan`, exactly as ``gpuplan plan`` does (``app.cli.plan_from_usage``).

Caching: the forecast is cached per :class:`ForecastSettings` (sample, window hours); the long-term forecast per
data source, horizon end and planned events (:func:`cached_longterm`); the scenarios per :func:`scenario_key`
(the settings they depend on: data, window, commitment options, events, per-team growth, routing), with the
organisation's growth applied afterwards as the one factor it is; and the plan per :class:`PlannerSettings`. So
moving a growth, spot, budget, maximum-commitment, cost-of-capital or risk control only re-runs
:func:`optimizer.solve.make_plan`. With rightsizing on (``PlannerSettings.rightsize``) the routing
(:func:`cached_routing`, the CLI's ``--workloads --speed-priority`` path) is cached per :func:`routing_key` and its
cost/time evaluation per key without the speed priority, so growth, budget or risk moves re-plan only and a speed
move re-ranks, re-builds the scenarios and re-plans. Loaded samples, the catalog, the long-term forecast, the
scenarios and the plans are read-only and cached as resources (no copy per rerun: a plan's scenarios run to the end
of the commitment terms, tens of MB).
One frozen settings object per page: :class:`app.forecast_state.OverviewSettings`,
:class:`app.forecast_state.FanSettings` (Forecast) and :class:`PlannerSettings` (Plan and What-if; the What-if's
current one is kept under :data:`WHATIF_KEY`); the shared sidebar (data source, window) is :mod:`app.sidebar`.
The Overview and Forecast pages' cached calls and frames are in :mod:`app.forecast_state`; the Plan page's
downloads, comparison, summary and cost charts (and the What-if's figures) in :mod:`app.plan_state`; what the
pages show of a plan, without streamlit, in :mod:`app.plan_frames`; the Budgets page's calls in
:mod:`app.operate_state`.

Units: demand in GPUs in use per hour (= GPU-hours per hour), money in USD, windows in hours, growth
and spot share as fractions in the settings (the widgets show percent).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from app import fmt
from app.plan_frames import (
    hourly_costs,
)
from app.store import settings_from_dict
from app.whatif_model import events_from_text, with_spot_terms
from forecasting.engine import ForecastConfig, ForecastResult, LongForecast, default_n_jobs, forecast
from forecasting.events import Event, apply_events, in_history, not_seen, without_events
from forecasting.longterm import LongTermForecast
from forecasting.samples import SAMPLES, data_dir, load_sample
from optimizer.billing import BillingError
from optimizer.catalog import Catalog, CatalogError, load_catalog
from optimizer.existing import parse_existing
from optimizer.inputs import DEFAULT_COST_OF_CAPITAL, PlanConfig, PlanningError, Scenarios
from optimizer.options import DEFAULT_COMMITMENT_OPTIONS, term_hours
from optimizer.rightsizing import Routing, Throughput, attach_routing, evaluate, load_throughput, route
from optimizer.solve import PlanResult, make_plan
from optimizer.term import NEAR_HOURS, multi_year_allowed, plan_scenarios, planner_longterm
from optimizer.workloads import Workloads, load_workloads
from usage import io
from usage import schema as S

log = logging.getLogger(__name__)

# --- session-state keys (one place) ---------------------------------------------------------------
SAMPLE_KEY = "sample"
HOURS_KEY = "window_hours"
GROWTH_KEY = "growth_pct"
SPOT_SHARE_KEY = "max_spot_share_pct"
ALLOW_SPOT_KEY = "allow_spot"
SERIES_KEY = "fan_series"
WHATIF_KEY = "whatif_settings"
TEAM_GROWTH_TEAMS_KEY = "team_growth_teams"
TEAM_GROWTH_KEY = "team_growth_pct"
SPOT_DISCOUNT_KEY = "spot_discount"
INTERRUPTION_KEY = "interruption_bucket"
TERMS_KEY = "commitment_terms"
PAYMENTS_KEY = "commitment_payments"
MAX_OBLIGATION_KEY = "max_obligation_usd"
COST_OF_CAPITAL_KEY = "cost_of_capital_pct"
BUDGET_KEY = "budget_usd"
SPEED_KEY = "speed_priority_pct"
LADDER_KEY = "ladder"
NO_SPOT_MODELS_KEY = "no_spot_models"
CVAR_KEY = "cvar_weight"
RIGHTSIZE_KEY = "rightsize"
EVENTS_SOURCE_KEY = "events_source"
EVENTS_FILE_KEY = "events_file"
OWNED_SOURCE_KEY = "owned_source"
OWNED_FILE_KEY = "owned_file"
WHATIF_KEYS = (GROWTH_KEY, TEAM_GROWTH_TEAMS_KEY, TEAM_GROWTH_KEY, ALLOW_SPOT_KEY, SPOT_SHARE_KEY, SPOT_DISCOUNT_KEY,
               INTERRUPTION_KEY, TERMS_KEY, PAYMENTS_KEY, MAX_OBLIGATION_KEY, COST_OF_CAPITAL_KEY, BUDGET_KEY,
               SPEED_KEY, EVENTS_SOURCE_KEY, LADDER_KEY, NO_SPOT_MODELS_KEY, CVAR_KEY, RIGHTSIZE_KEY, OWNED_SOURCE_KEY)
"""The What-if widgets' keys (kept across pages; cleared by its reset button)."""
WHATIF_OWN_KEY = "whatif_settings_drawn"
"""The settings the What-if widgets last produced: when :data:`WHATIF_KEY` differs (a scenario was loaded on
the Scenarios page), the What-if moves its widgets to the loaded settings."""
EVENTS_LOADED_KEY = "events_loaded"
"""``(file name, text)`` of planned events that came with a loaded scenario."""
OWNED_LOADED_KEY = "owned_loaded"
"""``(file name, text)`` of owned commitments that came with a loaded scenario."""
OVERVIEW_WEEKS_KEY = "overview_weeks"
OVERVIEW_DIM_KEY = "overview_dimension"
FAN_LEVEL_KEY = "fan_level"
FAN_ITEM_KEY = "fan_item"
PAGE_WIDGET_KEYS = (SAMPLE_KEY, HOURS_KEY, *WHATIF_KEYS, OVERVIEW_WEEKS_KEY, OVERVIEW_DIM_KEY, FAN_LEVEL_KEY,
                    FAN_ITEM_KEY)
"""Widget keys whose values every page keeps (see :func:`app.sidebar.keep`)."""
"""The What-if page's current :class:`PlannerSettings`; the Plan and Forecast pages use it (else the base)."""
PLAN_SUMMARY_KEY = "plan_summary"
"""Written by the Plan and What-if pages after each plan: the figures they show (for tests and other pages)."""
DATA_SOURCE_KEY = SAMPLE_KEY
"""The selected data source, used by every page: a sample name (``synthetic``, ``helios``) or an upload id
``upload:<sha256 prefix>`` (see :mod:`app.uploads`); ``PlannerSettings.sample`` carries it, so every cached
forecast and plan is keyed by the data's content hash. The widget keeps its historical key."""
UPLOADS_KEY = "uploaded_sources"
"""Upload ids this session has added, oldest first (offered after the samples)."""
UPLOAD_ERROR_KEY = "upload_error"
"""The last rejected upload's one-line error (file, row, column, fix), shown inline under the uploader."""

# --- defaults and limits --------------------------------------------------------------------------
DEFAULT_SAMPLE_ENV = "GPUPLAN_DEFAULT_SAMPLE"
DEFAULT_HOURS_ENV = "GPUPLAN_DEFAULT_HOURS"
MIN_HOURS, MAX_HOURS, DEFAULT_HOURS = 168, 2160, 720

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
    """What the forecast depends on: the sample, the window (forecast horizon = window hours) and the planned events
    that will be applied to it (a forecast they get is fitted on the usage without what they already did).

    Attributes:
        sample: dataset id: a shipped sample organisation (``synthetic`` or ``helios``) or an uploaded
            dataset (``upload:<content hash>``, see :func:`register_dataset`).
        hours: plan window in hours, starting the hour after the dataset's last hour.
        events_name / events_text: planned-events file name and its YAML/CSV text ("" = no events).
    """

    sample: str
    hours: int
    events_name: str = ""
    events_text: str = ""


@dataclass(frozen=True)
class PlannerSettings:
    """Everything one plan depends on.

    The What-if page sets every field; the Plan page plans with the What-if's current settings (or these
    defaults, the base scenario). Fields that are not plain :class:`PlanConfig` fields are mapped in
    :data:`PLAN_FIELDS` (one place); a field the optimizer lacks is reported by :meth:`pending_fields`.

    Attributes:
        sample: dataset id (see :class:`ForecastSettings`).
        hours: plan window in hours after the dataset's last hour.
        growth: demand growth applied to the forecast as a fraction (0.5 = +50%).
        max_spot_share: at most this fraction of each GPU model's GPU-hours on spot.
        allow_spot: whether spot may serve demand at all.
        team_growth: per-team growth (fractions) on top of ``growth``.
        options: allowed commitment purchase options (``optimizer.options`` names; empty = none).
        spot_discount: spot price as a discount on the same instance's on-demand price (0.7 = 70% off);
            None = the catalog's spot prices.
        interruption_bucket: monthly spot interruption bucket for every spot type (``<5%`` ... ``>20%``);
            None = the catalog's per-type buckets.
        speed_priority: 0..1, used when ``rightsize`` is on: each team's work goes to the GPU model minimising
            cost^(1 - w) x time^w (:mod:`optimizer.rightsizing`; 0 = cheapest feasible, 1 = fastest), as
            ``gpuplan plan --workloads --speed-priority`` does.
        max_obligation_usd: the maximum commitment: cap on the new commitments' obligation over their full terms
            (USD: upfront plus every recurring hour, paid whether used or not; ``PlanConfig.max_obligation_usd``,
            ``gpuplan plan --max-obligation-usd``); None = no cap.
        cost_of_capital: annual rate (0.1 = 10%/year) the plan discounts cash flows at (``PlanConfig``, ``gpuplan
            plan --cost-of-capital``): it decides upfront vs no-upfront and 1-year vs 3-year.
        budget_usd: budget for the window's expected cost (USD); None = no budget.
        events_name / events_text: planned-events file name and its YAML/CSV text ("" = no events).
        owned_name / owned_text: file name and CSV/YAML text of the commitments already owned (reserved instances
            and savings plans, the format of ``gpuplan plan --existing``; "" = none): used first, billed in their
            active hours, never bought again.
        ladder: let commitments start in any calendar month of the horizon (laddering), not only at the window
            start; those after the first month are tentative.
        no_spot_models: GPU models kept off spot (latency-bound inference), whatever ``max_spot_share`` says.
        cvar_weight: risk aversion; the optimizer minimises expected cost + weight x CVaR90 of scenario cost.
        rightsize: route each team's work to the GPU model that serves it best before the purchase MILP, with the
            workload classes of :func:`workloads_for` (the shipped ``workloads.yaml`` for the synthetic sample,
            the inferred default class otherwise); False = plan on the GPU models the teams use today.
    """

    sample: str
    hours: int
    growth: float = 0.0
    max_spot_share: float = 0.3
    allow_spot: bool = True
    team_growth: tuple[tuple[str, float], ...] = ()
    options: tuple[str, ...] = DEFAULT_COMMITMENT_OPTIONS
    spot_discount: float | None = None
    interruption_bucket: str | None = None
    speed_priority: float = 0.0
    max_obligation_usd: float | None = None
    cost_of_capital: float = DEFAULT_COST_OF_CAPITAL
    budget_usd: float | None = None
    events_name: str = ""
    events_text: str = ""
    ladder: bool = False
    owned_name: str = ""
    owned_text: str = ""
    no_spot_models: tuple[str, ...] = ()
    cvar_weight: float = 0.0
    rightsize: bool = False

    @property
    def forecast_settings(self) -> ForecastSettings:
        return ForecastSettings(self.sample, self.hours, self.events_name, self.events_text)

    def pending_fields(self) -> tuple[str, ...]:
        """Settings that are set but that :class:`PlanConfig` has no field for (shown as not applied)."""
        have = {f.name for f in dataclasses.fields(PlanConfig)}
        return tuple(name for name, (plan_field, _) in PLAN_FIELDS.items()
                     if getattr(self, name) is not None and plan_field not in have)

    def plan_config(self, start: pd.Timestamp) -> PlanConfig:
        """The optimizer's config for a window starting at ``start``."""
        have = {f.name for f in dataclasses.fields(PlanConfig)}
        extra = {plan_field: convert(self, getattr(self, name)) for name, (plan_field, convert) in PLAN_FIELDS.items()
                 if plan_field in have and getattr(self, name) is not None}
        if self.ladder and "ladder" in have:
            extra["ladder"] = True
        if self.no_spot_models and "spot_share_by_model" in have:
            extra["spot_share_by_model"] = tuple((g, 0.0) for g in self.no_spot_models)
        if self.cvar_weight and "cvar_weight" in have:
            extra["cvar_weight"] = self.cvar_weight
        return PlanConfig(start=start, hours=self.hours, growth=self.growth,
                          max_spot_share=self.max_spot_share, allow_spot=self.allow_spot,
                          team_growth=self.team_growth, options=self.options, **extra)


PLAN_FIELDS: dict[str, tuple[str, Callable[[PlannerSettings, float], float]]] = {
    "budget_usd": ("budget_usd", lambda s, usd: usd),
    "max_obligation_usd": ("max_obligation_usd", lambda s, usd: usd),
    "cost_of_capital": ("cost_of_capital", lambda s, rate: rate),
}
"""Settings field -> (the :class:`PlanConfig` field it becomes, how); all map one to one today."""

OLD_MAX_COMMIT_FIELD = "max_commitment_usd_per_hour"
"""The maximum commitment of scenarios saved before it became an obligation: a cap in effective USD per hour."""


def migrate_settings(data: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Stored planner settings (a saved scenario's JSON) brought to today's :class:`PlannerSettings` fields, with
    one plain-text note per change the user should know about. Never raises.

    An old hourly maximum commitment of X USD/h (effective rate of the new commitments) becomes an obligation cap
    of X x the term's hours when every allowed option has the same term (the same commitments fit under both);
    with 1- and 3-year options (or none) there is no single equivalent and it is dropped. A saved obligation cap
    wins over the old field.
    """
    out = dict(data)
    notes: list[str] = []
    if OLD_MAX_COMMIT_FIELD not in out:
        return out, ()
    old = out.pop(OLD_MAX_COMMIT_FIELD)
    try:
        per_hour = None if old is None else float(old)
    except (TypeError, ValueError):
        per_hour = float("nan")
    if per_hour is None or per_hour == 0.0:
        return out, ()
    what = f"maximum commitment of {old} USD/h (saved by an older planner, an hourly cap)"
    if out.get("max_obligation_usd") is not None:
        return out, (f"{what} dropped: the scenario also has a maximum commitment obligation, which is used",)
    try:
        options = out.get("options", DEFAULT_COMMITMENT_OPTIONS)
        terms = {term_hours(str(o)) for o in options}
    except (TypeError, ValueError):
        terms = set()
    valid = math.isfinite(per_hour) and per_hour > 0
    if not valid or len(terms) != 1:
        reason = ("it is not a positive amount" if not valid
                  else "its options have no single term length to turn it into an obligation")
        notes.append(f"{what} dropped: {reason} (set 'Maximum commitment' on the What-if page)")
        return out, tuple(notes)
    (term,) = terms
    out["max_obligation_usd"] = per_hour * term
    notes.append(f"{what} converted to a maximum commitment obligation of {fmt.usd(per_hour * term)} over the "
                 f"full terms ({fmt.usd_per_hour(per_hour)} x {term:,} h: the same commitments fit)")
    return out, tuple(notes)


def settings_from_saved(data: Mapping[str, Any]) -> tuple[PlannerSettings, tuple[str, ...]]:
    """A saved scenario's settings as :class:`PlannerSettings` (:func:`migrate_settings` first) and the notes of
    what was converted or dropped.

    Raises:
        StoreError: the saved settings lack a field without a default (one line with the fix).
    """
    migrated, notes = migrate_settings(data)
    return settings_from_dict(PlannerSettings, migrated), notes


# --- pure pipeline steps --------------------------------------------------------------------------
def window_start(usage: pd.DataFrame) -> pd.Timestamp:
    """First hour of the plan window: the hour after the last hour of usage."""
    return pd.Timestamp(usage[S.TIMESTAMP].max()) + pd.Timedelta(hours=1)


def forecast_usage(usage: pd.DataFrame, hours: int) -> ForecastResult:
    """Forecast every series ``hours`` ahead with the default settings (8 weeks of history)."""
    config = ForecastConfig(horizon_hours=hours, n_jobs=default_n_jobs())
    return forecast(usage, config)


def planning_config(settings: PlannerSettings, start: pd.Timestamp, history: pd.DataFrame,
                    routing: Routing | None = None) -> tuple[PlanConfig, str | None]:
    """The optimizer's config for a window from ``start``, as ``gpuplan plan`` builds it: the settings' fields,
    the routing's instance types, spot caps and checkpoints (rightsizing), and no 3-year options from under two
    weeks of history (:func:`optimizer.term.multi_year_allowed`, with its note; the app has no
    ``--allow-short-history``)."""
    config = settings.plan_config(start)
    if routing is not None:
        config = routing.plan_config(config)
    return multi_year_allowed(config, history)


def needs_longterm(config: PlanConfig) -> bool:
    """Whether the plan's scenarios need the long-term forecast: the horizon runs past the hours the hourly engine
    covers (:data:`optimizer.term.NEAR_HOURS`), as :func:`optimizer.term.plan_scenarios` decides."""
    near = min(config.hours, NEAR_HOURS) if config.term_horizon else config.hours
    return config.term_horizon and config.horizon_end > config.start + pd.Timedelta(hours=near)


def longterm_for(history: pd.DataFrame, horizon_end: pd.Timestamp, events: tuple[Event, ...] = ()
                 ) -> LongTermForecast:
    """The long-term forecast :func:`optimizer.term.plan_scenarios` fits for a horizon ending at ``horizon_end``
    (:func:`optimizer.term.planner_longterm`: the same settings and planned events), for passing as ``longterm=``."""
    return planner_longterm(history, horizon_end, events)


def planning_scenarios(config: PlanConfig, history: pd.DataFrame, events: tuple[Event, ...], *,
                       long: LongForecast | None = None, fc: pd.DataFrame | None = None,
                       routing: Routing | None = None, longterm: LongTermForecast | None = None,
                       note: str | None = None) -> Scenarios:
    """The scenarios ``gpuplan plan`` plans over (``app.cli.plan_from_usage``): :func:`optimizer.term.plan_scenarios`
    with the engine's joint sample paths (``long``; else the p10/p50/p90 of ``fc``), the replayed recent
    ``history``, planned events on every scenario, rightsizing's GPU map and the long-term forecast to the end of
    the longest term (``longterm`` when given, else fitted); ``note`` (the short-history note) goes first."""
    scenarios = plan_scenarios(config, history, long=long, forecast=fc, events=events,
                               gpu_map=dict(routing.assignment) if routing is not None else None,
                               longterm=longterm)
    if note:
        scenarios = dataclasses.replace(scenarios, notes=(note, *scenarios.notes))
    return scenarios


def with_growth(scenarios: Scenarios, growth: float) -> Scenarios:
    """Scenarios with the organisation's demand growth applied: every hour of every scenario, in the window and
    after it, times ``1 + growth`` (:func:`optimizer.term.carry_through` applies it as this one factor)."""
    if growth == 0.0:
        return scenarios
    f = 1.0 + growth
    return dataclasses.replace(scenarios, demand={g: v * f for g, v in scenarios.demand.items()},
                               tail={g: v * f for g, v in scenarios.tail.items()})


def plan_forecast(fc: pd.DataFrame, catalog: Catalog, settings: PlannerSettings, start: pd.Timestamp,
                  long: LongForecast | None = None, routing: Routing | None = None,
                  history: pd.DataFrame | None = None, longterm: LongTermForecast | None = None,
                  scenarios: Scenarios | None = None) -> PlanResult:
    """Plan the window under the settings exactly as ``gpuplan plan`` does, each commitment judged over its term.

    The scenarios are :func:`planning_scenarios` (unless given, e.g. cached): the engine's joint sample paths when
    ``long`` (the forecast behind ``fc``) is given, else the p10/p50/p90 of ``fc``, with the replayed recent
    ``history`` (the usage before the window), planned events and the long-term forecast of ``history`` to the end
    of the longest commitment term (``longterm`` when given, fitted otherwise).

    With ``routing`` (:func:`route_forecast`) the demand moves to the routed GPU models, the config gets the
    routing's instance types, per-model spot caps and checkpoints, and the plan carries the per-team routing
    (plan.json ``routing``), as ``gpuplan plan --workloads`` does.

    Raises:
        PlanningError: e.g. no usage history to forecast the commitment terms from.
    """
    history = _before(history, start)
    config, note = planning_config(settings, start, history, routing)
    if settings.owned_text:
        config = dataclasses.replace(config, existing=parse_existing(settings.owned_text,
                                                                     settings.owned_name or "owned.csv", catalog,
                                                                     config.region))
    if scenarios is None:
        events = cached_events(settings.events_text, settings.events_name)
        scenarios = planning_scenarios(config, history, events, long=long, fc=fc, routing=routing,
                                       longterm=longterm, note=note)
    catalog = with_spot_terms(catalog, settings.spot_discount, settings.interruption_bucket)
    result = make_plan(fc, catalog, config, scenarios=scenarios)
    if routing is not None:
        result = dataclasses.replace(result, plan=attach_routing(result.plan, routing))
    if settings.events_text:   # planned runs priced on Capacity Blocks, as gpuplan plan --events does
        from optimizer import capacity_blocks as CB

        block = CB.assess(result.plan, result.scenarios, cached_events(settings.events_text, settings.events_name),
                          CB.load_prices(), catalog,
                          replan=lambda sc: make_plan(None, catalog, config, scenarios=sc).plan)
        result = dataclasses.replace(result, plan=CB.attach(result.plan, block))
    return result


def _before(history: pd.DataFrame | None, start: pd.Timestamp) -> pd.DataFrame:
    if history is None:
        return pd.DataFrame({S.TIMESTAMP: pd.Series(dtype="datetime64[ns]"), S.TEAM: pd.Series(dtype=str),
                             S.GPU_TYPE: pd.Series(dtype=str), S.GPUS: pd.Series(dtype=float)})
    return history if history.empty or history[S.TIMESTAMP].max() < start else history[history[S.TIMESTAMP] < start]


def routing_key(settings: PlannerSettings) -> PlannerSettings | None:
    """The settings the routing depends on (None when the plan is not rightsized): data, window, events, spot
    policy and prices, commitment options and speed priority; not growth, budget, caps, cost of capital, laddering
    or risk (``gpuplan plan --workloads`` routes the forecast before growth and before the MILP's limits)."""
    if not settings.rightsize:
        return None
    return dataclasses.replace(settings, growth=0.0, team_growth=(), budget_usd=None, max_obligation_usd=None,
                               cost_of_capital=DEFAULT_COST_OF_CAPITAL, ladder=False, cvar_weight=0.0)


def route_forecast(fc: pd.DataFrame, workloads: Workloads, catalog: Catalog, settings: PlannerSettings,
                   start: pd.Timestamp, candidates: pd.DataFrame | None = None,
                   throughput: Throughput | None = None) -> Routing:
    """Route each (team, workload class) on the forecast mean over the window (``fc`` with the planned events
    applied, :func:`planned_forecast`), as :func:`app.cli_rightsizing.route_for_plan` does for ``gpuplan plan
    --workloads --forecast``."""
    config = settings.plan_config(start)
    catalog = with_spot_terms(catalog, settings.spot_discount, settings.interruption_bucket)
    window = routing_demand(fc, config)
    return route(window, workloads, catalog, config, speed_priority=settings.speed_priority, value_column=S.MEAN,
                 candidates=candidates, throughput=throughput)


def routing_demand(fc: pd.DataFrame, config: PlanConfig) -> pd.DataFrame:
    """The forecast rows (planned events applied, :func:`planned_forecast`) the routing is computed on: the
    window's hours."""
    window = fc[(fc[S.TIMESTAMP] >= config.start) & (fc[S.TIMESTAMP] < config.end)]
    return window if not window.empty else fc


def planned_forecast(settings: ForecastSettings) -> pd.DataFrame:
    """The cached forecast (:func:`cached_forecast`) with the settings' planned events applied: the expected demand
    that routing, the trade-off frontier, the budgets' projection, fan charts and the forecast download use."""
    fc = cached_forecast(settings).forecast
    events = cached_events(settings.events_text, settings.events_name)
    return apply_events(fc, events)[0] if events else fc


def events_not_seen(sample: str, name: str, text: str) -> tuple[str, ...]:
    """Warnings for the planned runs of an events file that start in the data but that the data does not show
    (:func:`forecasting.events.not_seen`)."""
    return not_seen(cached_events(text, name), cached_usage(sample)) if text else ()


@st.cache_data(show_spinner=False, max_entries=16)
def cached_events(text: str, name: str) -> tuple[Event, ...]:
    """Planned events parsed from a file's text ("" = no events); errors name the file, item and field."""
    return events_from_text(text, name or "events.yaml")


# --- cached calls ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadInfo:
    """A registered upload: its usage frame, selectbox label, provenance and ingestion report lines."""

    usage: pd.DataFrame
    label: str
    provenance: str
    report: tuple[str, ...]


@st.cache_resource(show_spinner=False)
def _uploads() -> dict[str, UploadInfo]:
    """Validated uploads by content-hash id, shared by the server's sessions (ids are content addresses)."""
    return {}


MAX_UPLOADS_KEPT = 16


def register_dataset(source: str, usage: pd.DataFrame, label: str, provenance: str, report: tuple[str, ...]) -> None:
    """Make a validated upload resolvable by :func:`cached_usage` (the oldest beyond 16 are dropped)."""
    registry = _uploads()
    registry.pop(source, None)
    registry[source] = UploadInfo(usage, label, provenance, tuple(report))
    while len(registry) > MAX_UPLOADS_KEPT:
        registry.pop(next(iter(registry)))


def upload_info(source: str) -> UploadInfo | None:
    return _uploads().get(source)


def data_source_options() -> list[str]:
    """Selectable data sources: the shipped samples, then this session's uploads still on the server."""
    uploads = [s for s in st.session_state.get(UPLOADS_KEY, []) if s in _uploads()]
    return [*SAMPLES, *uploads]


def data_source_label(source: str) -> str:
    info = upload_info(source)
    return info.label if info is not None else SAMPLE_LABELS.get(source, source)


def data_source_provenance(source: str) -> str:
    """What a saved scenario records: ``sample:<name>`` or ``upload:<file>#<sha256 prefix>``."""
    info = upload_info(source)
    return info.provenance if info is not None else f"sample:{source}"


SAMPLE_LABELS = {"synthetic": "Synthetic organisation (made up, 22 teams)",
                 "helios": "Helios cluster Earth (real, 16 teams, V100)"}


@st.cache_resource(show_spinner=False)
def cached_usage(sample: str) -> pd.DataFrame:
    """The data source as a validated usage frame (shared, treat as read-only): a shipped sample, or a
    registered upload when ``sample`` is an upload id."""
    if sample in SAMPLES:
        return load_sample(sample)
    info = upload_info(sample)
    if info is None:
        raise S.UsageError(sample, "this uploaded data is no longer on the server (the app was restarted)",
                           fix="upload the file again or pick a sample organisation")
    return info.usage


@st.cache_resource(show_spinner=False)
def cached_catalog() -> Catalog:
    """The shipped price catalog (shared, read-only)."""
    return load_catalog()


def cached_forecast(settings: ForecastSettings) -> ForecastResult:
    """Forecast of a sample for its plan window (about a minute on the synthetic org, then cached), fitted on the
    usage without what the settings' planned events already did to it (:func:`forecasting.events.without_events`;
    the events are applied to the forecast by its users). Events that start after the data change nothing of the
    fit, so the forecast is shared with the settings without them."""
    usage = cached_usage(settings.sample)
    past = in_history(cached_events(settings.events_text, settings.events_name), usage)
    return _cached_forecast(settings.sample, settings.hours, past)


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_forecast(sample: str, hours: int, past: tuple[Event, ...]) -> ForecastResult:
    return forecast_usage(without_events(cached_usage(sample), past), hours)


def scenario_key(settings: PlannerSettings) -> PlannerSettings:
    """The settings a plan's scenarios depend on: data, window, commitment options (they set the horizon's end),
    planned events, per-team growth and, when rightsized, what the routing depends on (:func:`routing_key`). Not
    the organisation's growth (applied afterwards, :func:`with_growth`), budget, maximum commitment, cost of
    capital, laddering, owned commitments or risk; without rightsizing not the spot settings either."""
    key = dataclasses.replace(settings, growth=0.0, budget_usd=None, max_obligation_usd=None,
                              cost_of_capital=DEFAULT_COST_OF_CAPITAL, ladder=False, cvar_weight=0.0, owned_name="",
                              owned_text="")
    if not settings.rightsize:
        neutral = PlannerSettings(sample=settings.sample, hours=settings.hours)
        key = dataclasses.replace(key, max_spot_share=neutral.max_spot_share, allow_spot=neutral.allow_spot,
                                  spot_discount=None, interruption_bucket=None, no_spot_models=(),
                                  speed_priority=0.0)
    return key


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_longterm(sample: str, horizon_end: pd.Timestamp, events_text: str, events_name: str) -> LongTermForecast:
    """The long-term forecast of a data source to ``horizon_end`` with the planned events (:func:`longterm_for`):
    fitted once per data source, horizon end and events, then passed to every plan as ``longterm=`` (a few
    seconds on the synthetic organisation; shared and read-only)."""
    return longterm_for(cached_usage(sample), horizon_end, cached_events(events_text, events_name))


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_scenarios(key: PlannerSettings) -> Scenarios:
    """The scenarios of a :func:`scenario_key` (growth 0): :func:`planning_scenarios` on the cached forecast's
    sample paths, the data's history, the cached routing and the cached long-term forecast (shared, read-only)."""
    usage = cached_usage(key.sample)
    fres = cached_forecast(key.forecast_settings)
    routing = cached_routing(key)
    config, note = planning_config(key, window_start(usage), usage, routing)
    longterm = (cached_longterm(key.sample, config.horizon_end, key.events_text, key.events_name)
                if needs_longterm(config) else None)
    return planning_scenarios(config, usage, cached_events(key.events_text, key.events_name), long=fres.long,
                              fc=fres.forecast, routing=routing, longterm=longterm, note=note)


@st.cache_resource(show_spinner=False, max_entries=12)
def cached_plan(settings: PlannerSettings) -> PlanResult:
    """Plan for the settings (shared, read-only), reusing the cached forecast, routing, long-term forecast and
    scenarios: a growth, spot, budget, maximum-commitment, cost-of-capital or risk move only runs the optimizer.
    A plan holds its scenarios (31 MB on the synthetic organisation over a 1-year term; shared with
    :func:`cached_scenarios` at zero growth), hence the 12 entries."""
    fc = cached_forecast(settings.forecast_settings)
    usage = cached_usage(settings.sample)
    scenarios = with_growth(cached_scenarios(scenario_key(settings)), settings.growth)
    return plan_forecast(fc.forecast, cached_region_catalog(PLAN_REGION), settings, window_start(usage),
                         long=fc.long, routing=cached_routing(settings), history=usage, scenarios=scenarios)


WORKLOADS_FILE = "workloads.yaml"
"""Shipped workload classes of the synthetic organisation (``data_samples/``)."""


@st.cache_resource(show_spinner=False)
def workloads_for(source: str) -> Workloads:
    """Workload classes for rightsizing a data source: the shipped ``workloads.yaml`` for the synthetic sample,
    else every team gets the inferred default class (today's GPU memory, one GPU per job, not on spot)."""
    if source == "synthetic" and (data_dir() / WORKLOADS_FILE).exists():
        return load_workloads(data_dir() / WORKLOADS_FILE, known_gpu_types=cached_catalog().gpu_models())
    return Workloads()


def workloads_label(source: str) -> str:
    """Where a data source's workload classes come from (one line for captions)."""
    wl = workloads_for(source)
    return (f"data_samples/{WORKLOADS_FILE}" if wl.classes else
            "inferred default class per team (today's GPU memory, 1 GPU per job, not on spot)")


@st.cache_data(show_spinner=False, max_entries=16)
def cached_candidates(key: PlannerSettings) -> pd.DataFrame:
    """Cost and time of every (team, workload class) x GPU model (:func:`optimizer.rightsizing.evaluate`) for a
    routing key with speed priority 0: a speed-priority move only re-ranks these (no re-evaluation)."""
    usage = cached_usage(key.sample)
    config = key.plan_config(window_start(usage))
    catalog = with_spot_terms(cached_region_catalog(PLAN_REGION), key.spot_discount, key.interruption_bucket)
    demand = routing_demand(planned_forecast(key.forecast_settings), config)
    return evaluate(demand, workloads_for(key.sample), catalog, config, cached_throughput(), value_column=S.MEAN)


@st.cache_resource(show_spinner=False)
def cached_throughput() -> Throughput:
    """The shipped relative-throughput table (:func:`optimizer.rightsizing.load_throughput`)."""
    return load_throughput()


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_routing(key: PlannerSettings) -> Routing:
    candidates = cached_candidates(dataclasses.replace(key, speed_priority=0.0))
    usage = cached_usage(key.sample)
    return route_forecast(planned_forecast(key.forecast_settings), workloads_for(key.sample),
                          cached_region_catalog(PLAN_REGION), key, window_start(usage), candidates=candidates,
                          throughput=cached_throughput())


def cached_routing(settings: PlannerSettings) -> Routing | None:
    """The plan's rightsizing (None when ``settings.rightsize`` is off), cached per :func:`routing_key`, so a
    growth, budget or risk move does not re-route and a speed-priority move only re-ranks."""
    key = routing_key(settings)
    return None if key is None else _cached_routing(key)


PLAN_REGION = PlanConfig.__dataclass_fields__["region"].default
"""Region the app plans in (the optimizer's default)."""


@st.cache_resource(show_spinner=False)
def cached_region_catalog(region: str) -> Catalog:
    """The shipped catalog restricted to one region (the optimizer looks up offers in it on every plan)."""
    catalog = cached_catalog()
    return Catalog(table=catalog.region(region).reset_index(drop=True), path=catalog.path)


@dataclass(frozen=True)
class DatasetFacts:
    """What pages say about a dataset on every rerun, computed once: teams, series count, first/last hour."""

    teams: tuple[str, ...]
    gpu_types: tuple[str, ...]
    series: int
    first: pd.Timestamp
    last: pd.Timestamp


@st.cache_resource(show_spinner=False)
def cached_facts(sample: str) -> DatasetFacts:
    """:class:`DatasetFacts` of a data source (one scan of the usage frame per server process)."""
    usage = cached_usage(sample)
    return DatasetFacts(teams=tuple(sorted(usage[S.TEAM].unique())),
                        gpu_types=tuple(sorted(usage[S.GPU_TYPE].unique())),
                        series=int(usage.groupby([S.TEAM, S.GPU_TYPE]).ngroups),
                        first=pd.Timestamp(usage[S.TIMESTAMP].min()), last=pd.Timestamp(usage[S.TIMESTAMP].max()))


@st.cache_data(show_spinner=False, max_entries=64)
def cached_hourly_costs(settings: PlannerSettings) -> pd.DataFrame:
    """The cached plan billed hour by hour on each scenario (built once per plan, not on every rerun)."""
    return hourly_costs(cached_plan(settings))


@st.cache_data(show_spinner=False, max_entries=8)
def cached_forecast_csv(settings: ForecastSettings, teams: frozenset[str] | None = None) -> bytes:
    """The cached forecast as the download CSV (built once per forecast and team set, not on every rerun), with the
    settings' planned events applied (as ``gpuplan forecast --events`` writes it); with ``teams``, only their series
    (an engineer's download, :mod:`app.roles`)."""
    return forecast_csv(team_rows(planned_forecast(settings), teams))


T = TypeVar("T")


def guarded(fn: Callable[[], T]) -> T | None:
    """Run ``fn``; on a user error show it as one ``st.error`` line and return None (never a traceback).

    Unexpected exceptions are logged with their traceback on the server and shown as one line too.
    """
    try:
        return fn()
    except USER_ERRORS as exc:  # messages quote user strings (names, files): shown as plain text
        st.error(fmt.plain(f"error: {exc}"), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - the app must not show tracebacks
        log.exception("unexpected error in the planner")
        st.error(fmt.plain(f"unexpected error ({exc.__class__.__name__}): {exc}"), icon=":material/error:")
    return None


def team_rows(frame: pd.DataFrame, teams: frozenset[str] | None) -> pd.DataFrame:
    """The rows of ``teams`` (None = all): the one filter the cached accessors apply for per-team views."""
    return frame if teams is None else frame[frame[S.TEAM].astype(str).isin(teams).to_numpy()]


# --- frames for the pages -------------------------------------------------------------------------
def forecast_csv(fc: pd.DataFrame) -> bytes:
    """The forecast contract CSV (``usage.schema.FORECAST_COLUMNS``, ISO 8601 UTC timestamps)."""
    out = fc[list(S.FORECAST_COLUMNS)].copy()
    out[S.TIMESTAMP] = S.format_timestamp(out[S.TIMESTAMP])
    return io.csv_bytes(out)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as UTF-8 CSV with ISO 8601 UTC timestamps and spreadsheet-safe text
    (:func:`usage.io.csv_bytes`)."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = S.format_timestamp(out[col])
    return io.csv_bytes(out)
