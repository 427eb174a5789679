"""Plan page: what to buy and when (commitments table, laddering timeline), expected cost over time stacked by
committed / spot / on-demand, savings vs all on-demand (and vs the look-back recommender once
``optimizer.baselines`` has one), commitment utilisation and coverage, upfront cash, the p10-p90 risk range,
and the downloads: plan.json, CSV tables and a one-page HTML summary for finance.

The plan is the What-if page's current settings (a frozen :class:`app.state.PlannerSettings`), or the base
scenario when the What-if was never opened; :func:`app.state.cached_plan` computes it once per settings.
Units: USD, USD/h, GPUs, GPU-hours, percent where marked.
"""

from __future__ import annotations

import json

import streamlit as st

from app import charts, fmt, sidebar
from app import state as A
from optimizer.solve import PlanResult
from optimizer.summary import commitment_obligation_usd, commitments_table

HELP_EXPECTED = ("Expected cost of the plan over the window: the plan billed hour by hour on every demand "
                 "scenario (the forecast's joint sample paths, equally weighted). Commitments are charged at their "
                 "effective hourly rate (upfront amortised over the term) for every window hour.")
HELP_RANGE = "The plan's cost at the 10th and 90th percentile of the demand scenarios. " + fmt.term("p10_p90")
HELP_ALL_OD = "What the same expected demand would cost with on-demand instances only. " + fmt.term("on_demand")
HELP_SAVINGS = "All-on-demand cost minus the plan's expected cost; the delta is the saving in percent."
HELP_COVERAGE = fmt.term("coverage")
HELP_ROUTING = ("Rightsizing (optimizer.rightsizing, as `gpuplan plan --workloads`): every team's work, in A100-hours, "
                "goes to the GPU model minimising cost^(1 - w) x time^w among the models whose instance types fit its "
                "workload class; w is the What-if's speed priority.")
HELP_OBLIGATION = ("USD owed over the whole terms of the commitments (upfront plus every recurring hour), paid "
                   "whether used or not.")


def render() -> None:
    """Draw the Plan page."""
    st.title("Plan: what to buy and when")
    data = sidebar.window_data()
    if data is None:
        return
    fs = data[0]
    s = sidebar.plan_settings(fs)
    is_base = s == sidebar.base_settings(fs)
    st.session_state.pop(A.PLAN_SUMMARY_KEY, None)  # never leave a previous plan's figures behind an error
    with st.spinner("Planning purchases (commitments, spot, on-demand) with HiGHS..."):
        result = A.guarded(lambda: A.cached_plan(s))
    if result is None:
        return
    st.session_state[A.PLAN_SUMMARY_KEY] = A.plan_summary(result)
    st.caption(("Base scenario (change it on the What-if page). " if is_base else "What-if scenario. ")
               + "Assumptions: " + "; ".join(f"{k if k[:2].isupper() else k.lower()} {v}"
                                             for k, v in A.settings_lines(s).items() if k != "Data") + ".")
    figures(result, s)
    buy(result)
    routing(result, s)
    costs(result, s)
    downloads(result, s)


def figures(result: PlanResult, s: A.PlannerSettings) -> None:
    """Headline metrics: cost, range, savings, utilisation, coverage, upfront, obligation."""
    plan = result.plan
    e = plan.expected
    snap = ", ".join(plan.assumptions.get("catalog", {}).get("snapshot_dates", []))
    st.caption(f"{plan.region}, {plan.window_start:%Y-%m-%d %H:%M} to {plan.window_end:%Y-%m-%d %H:%M} UTC "
               f"({plan.hours:,} h); prices as of {snap or 'unknown'}; optimised in "
               f"{result.build_seconds + result.solve_seconds:.1f} s ({result.status}).")
    # three figures a row: USD amounts in the tens of millions still fit on a laptop screen
    c1, c2, c3 = st.columns(3)
    c1.metric("Expected cost (USD)", fmt.usd(e.total_usd), help=HELP_EXPECTED)
    c2.metric("Cost range p10-p90 (USD)", fmt.usd_range(e.total_p10_usd, e.total_p90_usd),
              help=f"{HELP_RANGE} Exactly: {fmt.usd(e.total_p10_usd)} to {fmt.usd(e.total_p90_usd)}.")
    c3.metric("All on-demand cost (USD)", fmt.usd(e.all_on_demand_usd), help=HELP_ALL_OD)
    c4, c5, c6 = st.columns(3)
    c4.metric("Savings vs all on-demand (USD)", fmt.usd(e.savings_usd), delta=f"{e.savings_pct:.1f}%",
              help=HELP_SAVINGS)
    util = "no commitments" if e.commitment_utilization is None else fmt.pct(e.commitment_utilization)
    c5.metric("Commitment utilisation (%)", util, help=fmt.term("utilisation"))
    c6.metric("Coverage by commitments (%)", fmt.pct(A.coverage(result)), help=HELP_COVERAGE)
    c7, c8, c9 = st.columns(3)
    c7.metric("Upfront cash (USD)", fmt.usd(e.upfront_usd), help=fmt.term("upfront"))
    c8.metric("Commitment obligation (USD)", fmt.usd(commitment_obligation_usd(plan)), help=HELP_OBLIGATION)
    c10, _, _ = st.columns(3)
    c9.metric("Break-even month (projected)" if e.break_even_projected else "Break-even month",
              e.break_even_month or "none within the terms",
              help=fmt.term("break_even") + " Here: the first month from which the plan's cumulative cash saving vs "
              "all on-demand stays positive, counting each commitment's upfront payment when it is bought. "
              "'Projected' = after the window, assuming the window's average hourly saving continues over the term.")
    c10.metric("CVaR90 cost (USD)", fmt.usd(e.cvar90_usd),
               help="Average cost over the worst 10% of demand scenarios: the risk the plan carries if demand comes "
                    "in high (the What-if's risk aversion weighs it).")
    lookback = A.guarded(lambda: A.cached_lookback(s))
    if lookback is not None:
        name, usd = lookback
        st.caption(f"Savings vs the {name}: {fmt.usd(usd - e.total_usd)} (its plan would cost {fmt.usd(usd)} on the "
                   "same demand scenarios).")
    else:
        st.caption("Savings vs a look-back recommender appear here once optimizer.baselines provides one.")


def buy(result: PlanResult) -> None:
    """Commitments table, laddering timeline, spot allowances and on-demand rates."""
    plan = result.plan
    st.subheader("What to buy: commitments", help=fmt.term("commitment", "break_even"))
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
        starts = {c.start for c in plan.commitments}
        if len(starts) > 1:
            st.altair_chart(charts.ladder_chart(commitments_table(plan), title="Laddering: commitment terms (UTC)"),
                            width="stretch")
        else:
            st.caption(f"All commitments start at {next(iter(starts)):%Y-%m-%d %H:%M} UTC (no laddering in this "
                       "plan); the window cost charges each commitment's effective hourly rate for the window's "
                       "hours only.")
    left, right = st.columns(2)
    with left:
        st.subheader("Spot allowances", help=fmt.term("spot", "rework"))
        spot = A.spot_frame(plan)
        if spot.empty:
            st.info("No spot in this plan: spot is switched off, capped at 0% or not cheaper here.")
        else:
            st.dataframe(spot, hide_index=True, width="stretch", column_config={
                "USD/h per instance": st.column_config.NumberColumn(format="%.3f"),
                "Rework (%)": st.column_config.NumberColumn(format="%.3f"),
                "USD per useful GPU-hour": st.column_config.NumberColumn(format="%.3f")})
    with right:
        st.subheader("On-demand for the rest", help=fmt.term("on_demand"))
        st.dataframe(A.on_demand_frame(plan), hide_index=True, width="stretch", column_config={
            "USD per GPU-hour": st.column_config.NumberColumn(format="%.3f")})


def routing(result: PlanResult, s: A.PlannerSettings) -> None:
    """Per-team rightsizing: where each team's work runs, at what cost per A100-hour, and why."""
    st.subheader("GPU model per team (rightsizing)", help=HELP_ROUTING)
    plan = result.plan
    if not plan.routing:
        st.caption("Planned on the GPU models the teams use today. Switch on 'Rightsize GPU models per team' on the "
                   "What-if page to route each team to the GPU model that serves it best (speed priority sets "
                   "cost vs time).")
        return
    st.caption(A.routing_caption(plan) + f" Workload classes: {A.workloads_label(s.sample)}. Work is in A100-hours "
               "(reference GPU = NVIDIA A100); USD per A100-hour is the stand-alone estimate used to route, the plan "
               "above then pools commitments across teams.")
    frame = A.routing_frame(plan)
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "Speed (x A100)": st.column_config.NumberColumn(format="%.2f"),
        "Work (A100-hours)": st.column_config.NumberColumn(format="localized"),
        "GPU-hours": st.column_config.NumberColumn(format="localized"),
        "USD per A100-hour": st.column_config.NumberColumn(format="%.2f"),
        "Reason": st.column_config.TextColumn(width="large")})
    st.download_button("Routing (CSV)", data=A.csv_bytes(frame), file_name="routing.csv", mime="text/csv",
                       on_click="ignore", icon=":material/download:",
                       help="One row per team and workload class: GPU models today, routed model, speed, work, "
                            "cost per A100-hour and the reason.")


def costs(result: PlanResult, s: A.PlannerSettings) -> None:
    """Stacked expected cost per day and per GPU model."""
    e = result.plan.expected
    st.subheader("Cost over time")
    st.caption(f"Expected: committed {fmt.usd(e.committed_usd)}, spot {fmt.usd(e.spot_usd)}, on-demand "
               f"{fmt.usd(e.on_demand_usd)} over the window.")
    daily, per_gpu = A.cached_cost_frames(s)
    left, right = st.columns([3, 2])
    left.altair_chart(charts.cost_breakdown_chart(daily, title="Expected cost per day (USD)"), width="stretch")
    right.altair_chart(charts.gpu_model_cost_chart(per_gpu, title="Expected cost per GPU model (USD)"),
                       width="stretch")


def downloads(result: PlanResult, s: A.PlannerSettings) -> None:
    """plan.json, CSV tables, the forecast and the one-page HTML summary."""
    st.subheader("Downloads")
    files = A.cached_plan_downloads(s)
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.download_button("plan.json", data=files["plan.json"], file_name="plan.json", mime="application/json",
                       on_click="ignore", icon=":material/download:", help="The plan (schema gpuplan.plan/v1).")
    c2.download_button("Commitments (CSV)", data=files["commitments.csv"], file_name="commitments.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:",
                       help="One row per commitment: count, instance type, option, GPUs, start, term (h), USD/h, "
                            "upfront USD, window cost USD.")
    c3.download_button("Hourly costs (CSV)", data=files["hourly_costs.csv"], file_name="hourly_costs.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:",
                       help="Expected USD per hour and GPU model: committed, spot, on-demand, total.")
    c4.download_button("Forecast (CSV)", data=A.cached_forecast_csv(s.forecast_settings), file_name="forecast.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:",
                       help="team, gpu_type, timestamp, mean, p10, p50, p90 (GPUs), model.")
    c5.download_button("Summary (HTML)", data=A.cached_summary_html(s), file_name="plan_summary.html",
                       mime="text/html", on_click="ignore", icon=":material/download:",
                       help="One self-contained page for finance: figures, what to buy, chart, assumptions.")
    with st.expander("All assumptions (plan.json)"):
        st.code(json.dumps(result.plan.assumptions, indent=2, default=str), language="json")


if __name__ == "__main__":
    render()
