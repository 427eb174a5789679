"""Cached calls behind the Plan page's downloads, comparison, summary and cost charts, and the What-if's figures
(split from :mod:`app.state`, on which they sit: each starts from :func:`app.state.cached_plan` of a
:class:`app.state.PlannerSettings`, so it is computed once per plan).

- :func:`cached_plan_downloads`: plan.json, commitments.csv and the expected hourly costs;
- :func:`cached_lookback`: the 30-day look-back recommender's plan billed on the plan's own scenarios
  (:func:`optimizer.baselines.lookback_expected`), compared on :func:`lookback_basis_usd`;
- :func:`cached_summary_html`: the one-page HTML summary with the settings as :func:`settings_lines`;
- :func:`cached_cost_frames` and :func:`cached_figures`: the Plan page's charts and the What-if's figures.

Units: USD (expected per hour, per day, over the window or in present value over the terms, as each names).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import fmt
from app.plan_frames import (
    coverage,
    daily_costs,
    expected_hourly_frame,
    gpu_model_costs,
    payment_lines,
    plan_notes,
    scenario_weights,
)
from app.roles import visible_lines
from app.state import (
    USER_ERRORS,
    PlannerSettings,
    cached_catalog,
    cached_hourly_costs,
    cached_plan,
    cached_routing,
    cached_usage,
    csv_bytes,
    data_source_label,
    planning_config,
    window_start,
    workloads_label,
)
from app.summary_html import plan_summary_html
from app.whatif_model import plan_figures, with_spot_terms
from optimizer.baselines import lookback_expected
from optimizer.catalog import Catalog
from optimizer.inputs import PlanConfig
from optimizer.plan import Plan
from optimizer.solve import PlanResult
from optimizer.summary import commitments_table
from usage import schema as S


@st.cache_data(show_spinner=False, max_entries=16)
def cached_plan_downloads(settings: PlannerSettings) -> dict[str, bytes]:
    """plan.json, commitments.csv, hourly_costs.csv (expected USD per hour) for a cached plan."""
    result = cached_plan(settings)
    plan = result.plan
    hourly = expected_hourly_frame(cached_hourly_costs(settings), scenario_weights(result))
    return {"plan.json": plan.to_json().encode("utf-8"),
            "commitments.csv": csv_bytes(commitments_table(plan)),
            "hourly_costs.csv": csv_bytes(hourly)}


LOOKBACK_DAYS = 30
"""Look-back of the recommender the Plan page compares against (AWS's default recommendation window)."""


def lookback_baseline(result: PlanResult, usage: pd.DataFrame, catalog: Catalog, config: PlanConfig,
                      days: int = LOOKBACK_DAYS) -> tuple[str, float] | None:
    """Cost of the look-back recommender's plan billed on the plan's own demand scenarios: ``(name, USD)``
    (:func:`optimizer.baselines.lookback_expected`: in present value over the horizon for a plan judged over its
    terms, as :func:`lookback_basis_usd` compares it; over the window otherwise); None without usage before the
    window."""
    usd = lookback_expected(result, usage, catalog, config, (days,)).get(f"{days}d")
    return None if usd is None else (f"{days}-day look-back recommender", usd)


def lookback_basis_usd(plan: Plan) -> tuple[float, str]:
    """The plan's figure a look-back recommender is compared with, and its name: the present value over the
    horizon for a plan judged over its terms (what :func:`optimizer.baselines.lookback_expected` returns then),
    else the expected cost over the window."""
    e = plan.expected
    if plan.term is not None and e.present_value_usd is not None:
        return e.present_value_usd, f"in present value over the terms at {fmt.pct(plan.term.cost_of_capital, 0)}/year"
    return e.total_usd, "over the window"


@st.cache_data(show_spinner=False, max_entries=16)
def cached_lookback(settings: PlannerSettings) -> tuple[str, float] | None:
    """:func:`lookback_baseline` of the cached plan, with the same catalog, options, spot policy and horizon."""
    usage = cached_usage(settings.sample)
    catalog = with_spot_terms(cached_catalog(), settings.spot_discount, settings.interruption_bucket)
    routing = cached_routing(settings)
    config, _ = planning_config(settings, window_start(usage), usage, routing)
    if routing is not None:  # the recommender looks back at the same work on the routed GPU models
        usage = routing.apply(usage, [S.GPUS])
    return lookback_baseline(cached_plan(settings), usage, catalog, config)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_figures(settings: PlannerSettings) -> dict[str, float]:
    """The What-if's comparison figures of a cached plan (:func:`app.whatif_model.plan_figures`)."""
    return plan_figures(cached_plan(settings))


def settings_lines(settings: PlannerSettings) -> dict[str, str]:
    """The plan's what-if settings as label -> value with unit (for the summary page's assumptions)."""
    return {
        "Data": data_source_label(settings.sample),
        "Demand growth": fmt.signed_pct(settings.growth, 0) + (
            "; per team " + ", ".join(f"{t} {fmt.signed_pct(g, 0)}" for t, g in settings.team_growth)
            if settings.team_growth else ""),
        "Spot": (f"up to {fmt.pct(settings.max_spot_share, 0)} of each GPU model's GPU-hours"
                 if settings.allow_spot else "not allowed"),
        "Spot price": ("catalog snapshot" if settings.spot_discount is None
                       else f"{fmt.pct(settings.spot_discount, 0)} below on-demand"),
        "Spot interruptions": settings.interruption_bucket or "catalog bucket per instance type",
        "Commitment options considered": ", ".join(settings.options) or "none",
        "Maximum commitment": ("none" if settings.max_obligation_usd is None
                               else f"{fmt.usd(settings.max_obligation_usd)} obligation over the full terms"),
        "Cost of capital": f"{fmt.pct(settings.cost_of_capital, 1)}/year",
        "Budget": "none" if settings.budget_usd is None else f"{fmt.usd(settings.budget_usd)} for the window",
        "Planned events": settings.events_name or "none",
        "Owned commitments": settings.owned_name or "none",
        "Laddering": ("commitments may start in any month (after the first: tentative)" if settings.ladder
                      else "none"),
        "Kept off spot": ", ".join(settings.no_spot_models) or "none",
        "Risk weight (CVaR90)": f"{settings.cvar_weight:g}",
        "GPU models": (f"rightsized per team at speed priority {fmt.pct(settings.speed_priority, 0)} "
                       f"(workloads: {workloads_label(settings.sample)})" if settings.rightsize
                       else "the teams' current GPU models (no rightsizing)"),
    }


SETTINGS_LINE_OF = {
    "sample": "Data", "growth": "Demand growth", "team_growth": "Demand growth", "max_spot_share": "Spot",
    "allow_spot": "Spot", "spot_discount": "Spot price", "interruption_bucket": "Spot interruptions",
    "options": "Commitment options considered", "max_obligation_usd": "Maximum commitment",
    "cost_of_capital": "Cost of capital", "budget_usd": "Budget", "events_name": "Planned events",
    "events_text": "Planned events", "owned_name": "Owned commitments", "owned_text": "Owned commitments",
    "ladder": "Laddering", "no_spot_models": "Kept off spot", "cvar_weight": "Risk weight (CVaR90)",
    "speed_priority": "GPU models", "rightsize": "GPU models"}
"""Which line of :func:`settings_lines` shows each :class:`PlannerSettings` field (``hours`` is the window, shown
apart). A field missing here is shown as its own generic row (``app.app_pages.scenarios.settings_rows``)."""


@st.cache_data(show_spinner=False, max_entries=16)
def cached_summary_html(settings: PlannerSettings, hidden: frozenset[str] = frozenset()) -> bytes:
    """The one-page HTML summary of a cached plan (:func:`app.summary_html.plan_summary_html`), without the notes
    that name a ``hidden`` team (an engineer's download, :mod:`app.roles`)."""
    result = cached_plan(settings)
    daily, _ = cached_cost_frames(settings)
    extra = {"Coverage by commitments": (fmt.pct(coverage(result)), "share of GPU-hours served by commitments")}
    try:
        base = cached_lookback(settings)
    except USER_ERRORS:
        base = None
    term: dict[str, tuple[str, str]] = {}
    if base is not None:
        own, basis = lookback_basis_usd(result.plan)
        term[f"Saved vs the {base[0]}"] = (fmt.signed_usd(base[1] - own),
                                           f"negative: the plan costs more; its plan {fmt.usd(base[1])} {basis}")
    html = plan_summary_html(result.plan, data_label=data_source_label(settings.sample), daily=daily,
                             settings=settings_lines(settings), extra_figures=extra, term_figures=term,
                             payment=payment_lines(result.plan),
                             notes=list(visible_lines([t for _, t in plan_notes(result.plan)], hidden)))
    return html.encode("utf-8")


@st.cache_data(show_spinner=False, max_entries=16)
def cached_cost_frames(settings: PlannerSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expected cost per day and per GPU model of a cached plan (the Plan page's charts), built once per plan."""
    result = cached_plan(settings)
    hourly = cached_hourly_costs(settings)
    weights = scenario_weights(result)
    return daily_costs(hourly, weights), gpu_model_costs(hourly, weights)
