"""Planner page: a sample organisation's per-team forecast fan chart, the purchase plan and its costs.

The sidebar widgets become a frozen :class:`app.state.PlannerSettings`; the forecast is cached per
(sample, window hours) and the plan per settings, so moving the growth or spot slider only re-plans.
Units: GPUs in use per hour (= GPU-hours per hour), USD, hours, percent where marked.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app import charts
from app import state as A
from forecasting import schema as S
from forecasting.engine import ForecastResult
from forecasting.samples import SAMPLES
from optimizer.solve import PlanResult
from optimizer.summary import commitment_obligation_usd

SAMPLE_LABELS = {"synthetic": "Synthetic organisation (made up, 22 teams)",
                 "helios": "Helios cluster Earth (real, 16 teams, V100)"}

HELP_SAMPLE = ("Shipped sample organisation. " + " ".join(f"**{k}**: {v}" for k, v in SAMPLES.items()))
HELP_HOURS = ("Plan window in hours, starting the hour after the sample's last hour (168 h = 1 week, 720 h = "
              "30 days, 2160 h = 90 days). The forecast horizon equals the window, so changing it re-runs the "
              "forecast (about a minute on the synthetic organisation; cached afterwards).")
HELP_GROWTH = ("Demand growth applied to every team's forecast (p10, p50 and p90 are multiplied by 1 + growth) "
               "before planning. More steady demand makes more **commitments** (reserved instances / savings "
               "plans: a lower hourly rate paid for every hour of a 1-year term, used or not) pay off.")
HELP_SPOT = ("At most this share of each GPU model's GPU-hours may run on **spot** capacity, in every demand "
             "scenario. Spot is much cheaper but can be taken back; an interrupted job redoes the work since its "
             "last checkpoint (**spot rework**), which the plan adds to spot's price. 0% = no spot.")
HELP_ALLOW_SPOT = ("Let fault-tolerant, checkpointed training run on spot. Latency-bound inference should not; "
                   "switch off to plan with commitments and on-demand only.")
HELP_EXPECTED = ("Expected cost of the plan over the window: the plan billed on the p10, p50 and p90 demand "
                 "scenarios, weighted 0.3 / 0.4 / 0.3. Commitments are charged at their effective hourly rate "
                 "(upfront amortised over the term) for every window hour.")
HELP_RANGE = "The plan's cost if demand comes in at the forecast's p10 (low) or p90 (high) in every hour."
HELP_ALL_OD = "What the same expected demand would cost with on-demand instances only (list price, no commitment)."
HELP_SAVINGS = "All-on-demand cost minus the plan's expected cost; the delta is the saving in percent."
HELP_UTIL = ("Commitment utilisation: the share of committed GPU-hours that demand actually uses (expected over "
             "the scenarios). Idle committed GPUs are paid for anyway: unused commitment is waste.")
HELP_UPFRONT = ("Cash paid at purchase for all-upfront and partial-upfront commitments (whole 1-year term), "
                "on top of the hourly charges.")
HELP_SERIES = ("Team and GPU type to draw. Totals add the teams' quantiles (teams taken as moving together), "
               "so their p10-p90 band is wider than the organisation's true range.")


def _usd(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} USD"


def sidebar_settings() -> A.PlannerSettings:
    """The Planner's widgets (sidebar) as frozen settings."""
    sb = st.sidebar
    sb.header("Planner settings")
    samples = list(SAMPLES)
    default = A.default_sample()
    sample = sb.selectbox("Sample organisation", samples, index=samples.index(default), key=A.SAMPLE_KEY,
                          format_func=lambda s: SAMPLE_LABELS.get(s, s), help=HELP_SAMPLE)
    hours = sb.number_input("Plan window (hours)", min_value=A.MIN_HOURS, max_value=A.MAX_HOURS,
                            value=A.default_hours(), step=24, key=A.HOURS_KEY, help=HELP_HOURS)
    growth = sb.slider("Demand growth (%)", min_value=-50, max_value=100, value=0, step=5, key=A.GROWTH_KEY,
                       format="%d%%", help=HELP_GROWTH)
    allow_spot = sb.checkbox("Allow spot", value=True, key=A.ALLOW_SPOT_KEY, help=HELP_ALLOW_SPOT)
    spot = sb.slider("Maximum spot share (%)", min_value=0, max_value=100, value=30, step=5, key=A.SPOT_SHARE_KEY,
                     format="%d%%", help=HELP_SPOT, disabled=not allow_spot)
    return A.PlannerSettings(sample=sample, hours=int(hours), growth=growth / 100.0, max_spot_share=spot / 100.0,
                             allow_spot=bool(allow_spot))


def render() -> None:
    """Draw the Planner page."""
    st.title("GPU purchase planner")
    settings = sidebar_settings()
    usage = A.guarded(lambda: A.cached_usage(settings.sample))
    if usage is None:
        return
    start = A.window_start(usage)
    end = start + pd.Timedelta(hours=settings.hours)
    n_series = usage.groupby([S.TEAM, S.GPU_TYPE]).ngroups
    st.caption(f"{usage.attrs.get('note', settings.sample)} {usage[S.TEAM].nunique()} teams, {n_series} team x "
               f"GPU series, hourly usage {usage[S.TIMESTAMP].min():%Y-%m-%d} to "
               f"{usage[S.TIMESTAMP].max():%Y-%m-%d %H:%M} UTC. Plan window: the {settings.hours:,} hours from "
               f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC.")

    with st.spinner(f"Forecasting {n_series} team x GPU series {settings.hours:,} hours ahead with statsforecast "
                    "(the first run takes about a minute on the synthetic organisation; cached afterwards)..."):
        fres = A.guarded(lambda: A.cached_forecast(settings.forecast_settings))
    if fres is None:
        return
    forecast_section(usage, fres, settings)

    st.session_state.pop(A.PLAN_SUMMARY_KEY, None)  # never leave a previous plan's figures behind an error
    with st.spinner("Planning purchases (commitments, spot, on-demand) with HiGHS..."):
        result = A.guarded(lambda: A.cached_plan(settings))
    if result is None:
        return
    st.session_state[A.PLAN_SUMMARY_KEY] = A.plan_summary(result)
    plan_section(result, settings)


def forecast_section(usage: pd.DataFrame, fres: ForecastResult, settings: A.PlannerSettings) -> None:
    """Fan chart of one series or a total, and the forecast download."""
    st.header("Forecast")
    options = A.series_options(fres.forecast)
    if st.session_state.get(A.SERIES_KEY) not in options:
        st.session_state[A.SERIES_KEY] = options[0]
    choice = st.selectbox("Series (team · GPU type)", options, key=A.SERIES_KEY, help=HELP_SERIES)
    hist, fut = A.fan_frames(usage, fres.forecast, choice)
    st.altair_chart(charts.fan_chart(hist, fut, title=choice), width="stretch")
    note = A.series_model_note(fres.selection, choice)
    st.caption("Last three weeks of actual usage, then the forecast's median (p50) with its p10-p90 band, in GPUs "
               "in use per hour (= GPU-hours per hour). " + note)
    for line in fres.notes:
        st.caption(line)
    st.download_button("Download forecast (CSV)", data=A.cached_forecast_csv(settings.forecast_settings),
                       file_name=f"forecast_{settings.sample}_{settings.hours}h.csv", mime="text/csv",
                       on_click="ignore", icon=":material/download:")


def plan_section(result: PlanResult, settings: A.PlannerSettings) -> None:
    """Plan metrics, what to buy, spot and on-demand, and the cost breakdown charts."""
    plan = result.plan
    e = plan.expected
    st.header("Purchase plan")
    snap = ", ".join(plan.assumptions.get("catalog", {}).get("snapshot_dates", []))
    st.caption(f"{plan.region}, {plan.window_start:%Y-%m-%d %H:%M} to {plan.window_end:%Y-%m-%d %H:%M} UTC "
               f"({plan.hours:,} h); prices as of {snap or 'unknown'}; demand growth {settings.growth:+.0%}; "
               f"optimised in {result.build_seconds + result.solve_seconds:.1f} s ({result.status}).")

    c1, c2, c3 = st.columns(3)
    c1.metric("Expected cost (USD)", _usd(e.total_usd), help=HELP_EXPECTED)
    c2.metric("Cost range p10-p90 (USD)", f"{e.total_p10_usd or 0:,.0f} - {e.total_p90_usd or 0:,.0f} USD",
              help=HELP_RANGE)
    c3.metric("All on-demand cost (USD)", _usd(e.all_on_demand_usd), help=HELP_ALL_OD)
    c4, c5, c6 = st.columns(3)
    c4.metric("Savings vs all on-demand (USD)", _usd(e.savings_usd), delta=f"{e.savings_pct:.1f}%",
              help=HELP_SAVINGS)
    util = "no commitments" if e.commitment_utilization is None else f"{100 * e.commitment_utilization:.1f} %"
    c5.metric("Commitment utilisation (%)", util, help=HELP_UTIL)
    c6.metric("Upfront cash (USD)", _usd(e.upfront_usd), help=HELP_UPFRONT)

    st.subheader("What to buy: commitments")
    table = A.commitments_frame(plan)
    if table.empty:
        st.info("No commitments: demand is too uncertain or too low for a commitment to pay off.")
    else:
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "GPUs": st.column_config.NumberColumn(format="%g"),
            "USD/h per instance": st.column_config.NumberColumn(format="%.3f"),
            "Upfront USD per instance": st.column_config.NumberColumn(format="localized"),
            "Effective USD/h per instance": st.column_config.NumberColumn(format="%.3f"),
            "Upfront USD total": st.column_config.NumberColumn(format="localized"),
            "Start (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "Window cost (USD)": st.column_config.NumberColumn(format="localized"),
        })
        st.caption(f"Commitment obligation over the full terms: {_usd(commitment_obligation_usd(plan))}, paid "
                   "whether used or not (upfront plus every recurring hour of each term). The window cost charges "
                   "each commitment's effective hourly rate for the window's hours only.")

    left, right = st.columns(2)
    with left:
        st.subheader("Spot allowances")
        spot = A.spot_frame(plan)
        if spot.empty:
            why = ("spot is switched off" if not settings.allow_spot or settings.max_spot_share == 0
                   else "spot is not cheaper than commitments and on-demand here")
            st.info(f"No spot in this plan: {why}.")
        else:
            st.dataframe(spot, hide_index=True, width="stretch", column_config={
                "USD/h per instance": st.column_config.NumberColumn(format="%.3f"),
                "Rework (%)": st.column_config.NumberColumn(format="%.3f"),
                "USD per useful GPU-hour": st.column_config.NumberColumn(format="%.3f"),
            })
    with right:
        st.subheader("On-demand for the rest")
        st.dataframe(A.on_demand_frame(plan), hide_index=True, width="stretch", column_config={
            "USD per GPU-hour": st.column_config.NumberColumn(format="%.3f")})

    st.subheader("Cost breakdown")
    st.caption(f"Expected: committed {_usd(e.committed_usd)}, spot {_usd(e.spot_usd)}, on-demand "
               f"{_usd(e.on_demand_usd)}.")
    hourly = A.cached_hourly_costs(settings)
    left, right = st.columns([3, 2])
    left.altair_chart(charts.cost_breakdown_chart(A.daily_costs(hourly, A.scenario_weights(result)),
                                                      title="Expected cost per day (USD)"),
                      width="stretch")
    right.altair_chart(charts.gpu_model_cost_chart(A.gpu_model_costs(hourly, A.scenario_weights(result)),
                                                   title="Expected cost per GPU model (USD)"),
                       width="stretch")

    st.download_button("Download plan (plan.json)", data=plan.to_json(), file_name="plan.json",
                       mime="application/json", on_click="ignore", icon=":material/download:")
    with st.expander("Assumptions"):
        st.code(json.dumps(plan.assumptions, indent=2, default=str), language="json")
