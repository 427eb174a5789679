"""Plan page: what to buy and when (commitments table with firm / tentative status, expected use over each term
and obligation, laddering timeline), the money inside the window (expected cost with its p10-p90 range, savings vs
all on-demand and the look-back recommender, utilisation, coverage), the money over the commitment terms as
finance sees it (obligation after the window, total obligation, upfront cash by month, expected cost over the
horizon with its range and vs all on-demand, present value at the stated cost of capital), why each payment option
and term beat the next best, planned runs of the events file priced on a Capacity Block against the plan,
on-demand and spot, the plan's notes, expected cost over time, and the downloads: plan.json, CSV tables and a
one-page HTML summary for finance.

The plan is the What-if page's current settings (a frozen :class:`app.state.PlannerSettings`), or the base
scenario when the What-if was never opened; :func:`app.state.cached_plan` computes it once per settings, exactly as
``gpuplan plan`` plans. Text from data or plans (notes, team and file names) is shown as plain text. The plan is
the organisation's (the same for every role); an engineer (:mod:`app.roles`) sees only their teams' routing rows,
forecast download, notes and planned runs.
Units: USD, USD/h, GPUs, GPU-hours, percent where marked.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app import charts, fmt, sidebar, store_ui, view
from app import plan_frames as PF
from app import plan_state as PS
from app import roles as R
from app import state as A
from optimizer.solve import PlanResult
from optimizer.summary import commitments_table

HELP_EXPECTED = ("Expected cost of the plan inside the window: the plan billed hour by hour on every demand "
                 "scenario (the forecast's joint sample paths and the replayed recent history). Commitments are "
                 "charged at their effective hourly rate (upfront amortised over the term) for every window hour. "
                 + fmt.term("horizon"))
HELP_RANGE = "The plan's cost at the 10th and 90th percentile of the demand scenarios. " + fmt.term("p10_p90")
HELP_ALL_OD = "What the same expected demand would cost with on-demand instances only. " + fmt.term("on_demand")
HELP_SAVINGS = "All-on-demand cost minus the plan's expected cost; the delta is the saving in percent."
HELP_COVERAGE = fmt.term("coverage")
HELP_ROUTING = ("Rightsizing (optimizer.rightsizing, as `gpuplan plan --workloads`): every team's work, in A100-hours, "
                "goes to the GPU model minimising cost^(1 - w) x time^w among the models whose instance types fit its "
                "workload class; w is the What-if's speed priority.")
HELP_AFTER = ("The new commitments' obligation that falls after the window: their full-term obligation minus what "
              "they cost inside the window. It is owed whether or not demand is there. " + fmt.term("obligation"))
HELP_OBLIGATION = ("USD owed over the whole terms of the new commitments (upfront plus every recurring hour), paid "
                   "whether used or not; the What-if's maximum commitment caps it. " + fmt.term("term"))
HELP_HORIZON = ("Expected cost from the window start to the end of the longest commitment term: commitments, spot "
                "and on-demand, billed on every demand scenario carried through the horizon. " + fmt.term("horizon"))
HELP_HORIZON_RANGE = ("The horizon's cost at the 10th and 90th percentile of the scenarios: wide, because the "
                      "long-term forecast's range grows with lead time. " + fmt.term("p10_p90"))
HELP_PV = ("Every payment over the horizon (upfront when paid, the rest month by month) discounted to the window "
           "start at the stated cost of capital; what the plan minimises. " + fmt.term("cost_of_capital"))
HELP_UPFRONT = fmt.term("upfront") + " The chart below gives it by month of purchase."
HELP_CB = ("A planned run of the events file (an 'add' with an end) priced four ways, as `gpuplan plan --events` "
           "does: on an EC2 Capacity Block (reserved GPU instances for 1-182 days, paid upfront, booked up to 8 weeks "
           "ahead), with the plan's own commitments, spot and on-demand, on on-demand alone, and on spot alone. Each "
           "is the expected cost of serving the run's GPU-hours from the plan made without the run.")


def render() -> None:
    """Draw the Plan page."""
    st.title("Plan: what to buy and when")
    data = sidebar.window_data()
    if data is None:
        return
    fs = data[0]
    acc = sidebar.access()
    hidden = R.hidden_teams(A.cached_facts(fs.sample).teams, acc)
    s = sidebar.plan_settings(fs)
    is_base = s == sidebar.base_settings(fs)
    st.session_state.pop(A.PLAN_SUMMARY_KEY, None)  # never leave a previous plan's figures behind an error
    with st.spinner("Planning purchases over the commitment terms (commitments, spot, on-demand) with HiGHS..."):
        result = A.guarded(lambda: A.cached_plan(s))
    if result is None:
        return
    st.session_state[A.PLAN_SUMMARY_KEY] = PF.plan_summary(result)
    st.caption(("Base scenario (change it on the What-if page). " if is_base else "What-if scenario. ")
               + "Assumptions: " + fmt.plain("; ".join(f"{k if k[:2].isupper() else k.lower()} {v}"
                                                       for k, v in PS.settings_lines(s).items() if k != "Data") + "."))
    notes(result, "warning", hidden)
    figures(result, s)
    term_figures(result, s, hidden)
    buy(result)
    capacity_blocks(result, acc)
    routing(result, s, acc)
    costs(result, s)
    downloads(result, s, acc, hidden)
    store_ui.saved_plans(result.plan, A.data_source_provenance(s.sample), acc)


def notes(result: PlanResult, level: str, hidden: frozenset[str] = frozenset()) -> None:
    """The plan's notes of one level as plain-text lines: ``warning`` (a short history: ranges widened, 3-year
    options left out) at the top of the page, ``info`` (where the demand after the window comes from) with the
    figures over the commitment terms."""
    for lvl, text in PF.plan_notes(result.plan):
        if lvl == level and not R.names_hidden(text, hidden):
            (st.warning if lvl == "warning" else st.info)(
                fmt.plain(text), icon=":material/warning:" if lvl == "warning" else ":material/info:")


def figures(result: PlanResult, s: A.PlannerSettings) -> None:
    """Inside the window: cost, range, savings, utilisation, coverage, risk, and vs the look-back recommender."""
    plan = result.plan
    e = plan.expected
    snap = ", ".join(plan.assumptions.get("catalog", {}).get("snapshot_dates", []))
    st.subheader(f"Inside the window: {plan.window_start:%Y-%m-%d} to {plan.window_end:%Y-%m-%d}",
                 help=fmt.term("horizon"))
    st.caption(f"{plan.region}, {plan.window_start:%Y-%m-%d %H:%M} to {plan.window_end:%Y-%m-%d %H:%M} UTC "
               f"({plan.hours:,} h); prices as of {snap or 'unknown'}; optimised in "
               f"{result.build_seconds + result.solve_seconds:.1f} s ({result.status}).")
    # three figures a row: USD amounts in the tens of millions still fit on a laptop screen
    c1, c2, c3 = st.columns(3)
    c1.metric("Expected cost in the window (USD)", fmt.usd(e.total_usd), help=HELP_EXPECTED)
    c2.metric("Cost range p10-p90 in the window (USD)", fmt.usd_range(e.total_p10_usd, e.total_p90_usd),
              help=f"{HELP_RANGE} Exactly: {fmt.usd(e.total_p10_usd)} to {fmt.usd(e.total_p90_usd)}.")
    c3.metric("All on-demand cost in the window (USD)", fmt.usd(e.all_on_demand_usd), help=HELP_ALL_OD)
    c4, c5, c6 = st.columns(3)
    c4.metric("Savings vs all on-demand in the window (USD)", fmt.usd(e.savings_usd), delta=f"{e.savings_pct:.1f}%",
              help=HELP_SAVINGS)
    util = "no commitments" if e.commitment_utilization is None else fmt.pct(e.commitment_utilization)
    c5.metric("Commitment utilisation in the window (%)", util, help=fmt.term("utilisation"))
    c6.metric("Coverage by commitments (%)", fmt.pct(PF.coverage(result)), help=HELP_COVERAGE)
    c7, _, _ = st.columns(3)
    c7.metric("CVaR90 cost in the window (USD)", fmt.usd(e.cvar90_usd),
              help="Average cost inside the window over the worst 10% of demand scenarios: the risk the plan carries "
                   "if demand comes in high. The What-if's risk aversion weighs the same measure of the scenarios' "
                   "present values over the commitment terms.")
    if plan.term is None:
        lookback(result, s)


def lookback(result: PlanResult, s: A.PlannerSettings) -> None:
    """The plan against the console's look-back recommender on the same scenarios (present value over the terms
    for a plan judged over them, else the window's cost)."""
    found = A.guarded(lambda: PS.cached_lookback(s))
    if found is not None:
        name, usd = found
        own, basis = PS.lookback_basis_usd(result.plan)
        verdict = (f"the plan saves {fmt.usd(usd - own)}" if usd >= own
                   else f"the plan costs {fmt.usd(own - usd)} more")
        st.caption(f"Against the {name} {basis}: {verdict} (its plan would cost {fmt.usd(usd)} on the same demand "
                   f"scenarios, this plan {fmt.usd(own)}).")
    else:
        st.caption("Savings vs a look-back recommender appear here when there is usage before the window.")


def term_figures(result: PlanResult, s: A.PlannerSettings, hidden: frozenset[str] = frozenset()) -> None:
    """Over the commitment terms: obligation after the window, total obligation, upfront cash by month, expected
    cost over the horizon with its range and vs all on-demand, present value at the stated cost of capital, and
    why each payment option and term beat the next best."""
    plan = result.plan
    e = plan.expected
    term = plan.term
    if term is None:
        st.subheader("Over the commitment terms", help=fmt.term("term"))
        notes(result, "info", hidden)
        st.info("This plan is judged on its window alone: no commitment options are allowed (What-if page), so no "
                "term runs past the window.", icon=":material/info:")
        c1, c2, _ = st.columns(3)
        c1.metric("Total obligation over the terms (USD)", fmt.usd(PF.obligation_usd(plan)), help=HELP_OBLIGATION)
        c2.metric("Upfront cash (USD)", fmt.usd(e.upfront_usd), help=HELP_UPFRONT)
        return
    rate = fmt.pct(term.cost_of_capital, 0)
    horizon_hours = int((term.horizon_end - plan.window_start) / pd.Timedelta(hours=1))
    st.subheader(f"Over the commitment terms: to {term.horizon_end:%Y-%m-%d}", help=fmt.term("term", "horizon"))
    st.caption(f"Each commitment is judged over its whole term: the horizon runs {horizon_hours:,} h from "
               f"{plan.window_start:%Y-%m-%d} to {term.horizon_end:%Y-%m-%d} (the end of the longest term "
               f"considered); cash flows are discounted at a cost of capital of {rate}/year.")
    notes(result, "info", hidden)
    c1, c2, c3 = st.columns(3)
    c1.metric("Obligation after the window (USD)", fmt.usd(e.obligation_after_window_usd), help=HELP_AFTER)
    c2.metric("Total obligation over the terms (USD)", fmt.usd(PF.obligation_usd(plan)), help=HELP_OBLIGATION)
    c3.metric("Upfront cash (USD)", fmt.usd(e.upfront_usd), help=HELP_UPFRONT)
    c4, c5, c6 = st.columns(3)
    c4.metric("Expected cost over the horizon (USD)", fmt.usd(e.horizon_total_usd), help=HELP_HORIZON)
    c5.metric("Cost range p10-p90 over the horizon (USD)", fmt.usd_range(e.horizon_p10_usd, e.horizon_p90_usd),
              help=f"{HELP_HORIZON_RANGE} Exactly: {fmt.usd(e.horizon_p10_usd)} to {fmt.usd(e.horizon_p90_usd)}.")
    od = e.horizon_all_on_demand_usd
    save = None if od is None or e.horizon_total_usd is None else od - e.horizon_total_usd
    c6.metric("All on-demand over the horizon (USD)", fmt.usd(od),
              **view.metric_delta(save, " saved by the plan", better="higher"),
              help="What the same demand would cost on on-demand only over the horizon; the delta is what the plan "
                   "saves against it. " + fmt.term("on_demand"))
    c7, c8, c9 = st.columns(3)
    pv_od = e.present_value_all_on_demand_usd
    c7.metric(f"Present value at {rate}/year (USD)", fmt.usd(e.present_value_usd),
              **view.metric_delta(None if pv_od is None or e.present_value_usd is None
                                  else e.present_value_usd - pv_od, " vs all on-demand"),
              help=f"{HELP_PV} Cost of capital: {rate}/year. All on-demand: {fmt.usd(pv_od)}.")
    hutil = e.horizon_commitment_utilization
    c8.metric("Commitment utilisation over the terms (%)", "no commitments" if hutil is None else fmt.pct(hutil),
              help=fmt.term("utilisation") + " Here over the commitments' hours inside the horizon.")
    c9.metric("Break-even month (projected)" if e.break_even_projected else "Break-even month",
              e.break_even_month or "none within the terms",
              help=fmt.term("break_even") + " Here: the first month from which the plan's cumulative cash saving vs "
              "all on-demand stays positive, counting each commitment's upfront payment when it is bought. "
              "'Projected' = after the scenarios' hours, assuming the window's average hourly saving continues.")
    lookback(result, s)
    upfront = PF.upfront_frame(plan)
    left, right = st.columns([2, 3])
    with left:
        if upfront.empty:
            st.caption("No upfront cash: the plan buys no all- or partial-upfront commitments.")
        else:
            st.altair_chart(charts.upfront_chart(upfront), width="stretch")
            st.caption("Upfront cash by month of purchase: " + ", ".join(
                f"{m} {fmt.usd(v)}" for m, v in zip(upfront["month"], upfront["usd"], strict=True)) + ".")
    with right:
        st.markdown("**Why this payment option and term**",
                    help="For each commitment line, every other option the plan considered for the same instance "
                         "type (another payment option, kind or term) priced in its place; the cheapest is the next "
                         "best. " + fmt.term("cost_of_capital"))
        pay = PF.payment_frame(plan)
        if pay.empty:
            st.caption("No commitment lines to explain.")
        else:
            view.table(pay, kinds={"Chosen option": "option", "Next best option": "option",
                                   "Next best costs more (USD, present value)": "usd"},
                       missing={"Next best costs more (USD, present value)": "not priced"})
            st.caption(f"Present values at {rate}/year over the horizon: a positive amount is what the chosen option "
                       "saves against the next best.")


def buy(result: PlanResult) -> None:
    """Commitments table, laddering timeline, spot allowances and on-demand rates."""
    plan = result.plan
    st.subheader("What to buy: commitments", help=fmt.term("commitment", "firm", "break_even"))
    table = PF.commitments_frame(plan)
    if table.empty:
        reason = plan.assumptions.get("no_commitment_reason") or (
            "demand is too uncertain or too low over the terms for a commitment to pay off")
        st.info(fmt.plain(f"No commitments: {reason}."))
    else:
        firm = int((table["Status"] == PF.COMMITMENT_STATUS[True]).sum())
        tentative = int((table["Status"] == PF.COMMITMENT_STATUS[False]).sum())
        if tentative:
            st.caption(f"{firm} line(s) to buy now, {tentative} tentative: laddered purchases in later months, "
                       "bought then only if that month's forecast still supports them.")
        # per-instance prices are in commitments.csv; the page keeps the columns a buyer acts on
        view.table(table, kinds=view.COMMITMENT_KINDS, missing={"Expected use over its term (%)": "not estimated"},
                   columns=[c for c in table.columns if c not in ("USD/h per instance", "Upfront USD per instance")])
        starts = {c.start for c in plan.commitments}
        if len(starts) > 1:
            st.altair_chart(charts.ladder_chart(commitments_table(plan), title="Laddering: commitment terms (UTC)"),
                            width="stretch")
        else:
            st.caption(f"All commitments start at {next(iter(starts)):%Y-%m-%d %H:%M} UTC (no laddering in this "
                       "plan); the window cost charges each commitment's effective hourly rate for the window's "
                       "hours only, the obligation its whole term.")
    # one table a row: spot's eight columns need the page's width
    st.subheader("Spot allowances", help=fmt.term("spot", "rework"))
    spot = PF.spot_frame(plan)
    if spot.empty:
        st.info("No spot in this plan: spot is switched off, capped at 0% or not cheaper here.")
    else:
        view.table(spot, kinds={"Max instances": "count", "Max GPUs": "gpus", "USD/h per instance": "usd_rate",
                                "Rework (%)": "pct100", "USD per useful GPU-hour": "usd_rate"})
    st.subheader("On-demand for the rest", help=fmt.term("on_demand"))
    view.table(PF.on_demand_frame(plan), kinds={"USD per GPU-hour": "usd_rate"})


def capacity_blocks(result: PlanResult, acc: R.Access = R.LOCAL) -> None:
    """Planned runs (``add`` events) priced on a Capacity Block, with the plan, on-demand and spot (an engineer: their
    teams' runs). Nothing without planned runs."""
    block = result.plan.capacity_blocks
    if not block:
        return
    st.subheader("Planned runs: Capacity Block or not", help=HELP_CB)
    st.caption(fmt.plain(f"Capacity Block prices: {block.get('price_source')}, as of {block.get('price_date')}. "
                         f"Rule: {block.get('rule')}."))
    frame = R.visible_rows(PF.capacity_blocks_frame(result.plan), acc, team_col="Team")
    if frame.empty:
        st.caption("No planned run of your teams.")
        return
    view.table(frame, kinds={"Upfront (USD)": "usd", "Capacity Block (USD)": "usd", "Plan (USD)": "usd",
                             "On-demand (USD)": "usd", "Spot (USD)": "usd", "Saving vs next best (USD)": "usd"},
               missing={"Upfront (USD)": "n/a", "Capacity Block (USD)": "n/a", "Plan (USD)": "n/a",
                        "On-demand (USD)": "n/a", "Spot (USD)": "not offered", "Not feasible": "-",
                        "Recommended": "n/a", "Saving vs next best (USD)": "n/a", "Book by (UTC)": "n/a"})


def routing(result: PlanResult, s: A.PlannerSettings, acc: R.Access = R.LOCAL) -> None:
    """Per-team rightsizing: where each team's work runs, at what cost per A100-hour, and why (an engineer: their
    teams' rows; the caption's counts are the organisation's)."""
    st.subheader("GPU model per team (rightsizing)", help=HELP_ROUTING)
    plan = result.plan
    if not plan.routing:
        st.caption("Planned on the GPU models the teams use today. Switch on 'Rightsize GPU models per team' on the "
                   "What-if page to route each team to the GPU model that serves it best (speed priority sets "
                   "cost vs time).")
        return
    st.caption(PF.routing_caption(plan) + f" Workload classes: {A.workloads_label(s.sample)}. Work is in A100-hours "
               "(reference GPU = NVIDIA A100); USD per A100-hour is the stand-alone estimate used to route, the plan "
               "above then pools commitments across teams.")
    frame = R.visible_rows(PF.routing_frame(plan), acc, team_col="Team")
    # the class's source and the instance types are in routing.csv; the page keeps what a team lead reads
    view.table(frame, kinds={"Moved": "bool", "Speed (x A100)": "number", "Work (A100-hours)": "gpu_hours",
                             "GPU-hours": "gpu_hours", "USD per A100-hour": "usd_rate", "Spot allowed": "bool"},
               columns=[c for c in frame.columns if c not in ("Class from", "Instance types")])
    st.download_button("Routing (CSV)", data=A.csv_bytes(frame), file_name="routing.csv", mime="text/csv",
                       on_click="ignore", icon=":material/download:",
                       help="One row per team and workload class: GPU models today, routed model, speed, work, "
                            "cost per A100-hour and the reason.")


def costs(result: PlanResult, s: A.PlannerSettings) -> None:
    """Stacked expected cost per day and per GPU model."""
    e = result.plan.expected
    st.subheader("Cost over time in the window")
    st.caption(f"Expected: committed {fmt.usd(e.committed_usd)}, spot {fmt.usd(e.spot_usd)}, on-demand "
               f"{fmt.usd(e.on_demand_usd)} over the window.")
    daily, per_gpu = PS.cached_cost_frames(s)
    left, right = st.columns([3, 2])
    left.altair_chart(charts.cost_breakdown_chart(daily, title="Expected cost per day (USD)"), width="stretch")
    right.altair_chart(charts.gpu_model_cost_chart(per_gpu, title="Expected cost per GPU model (USD)"),
                       width="stretch")


def downloads(result: PlanResult, s: A.PlannerSettings, acc: R.Access = R.LOCAL,
              hidden: frozenset[str] = frozenset()) -> None:
    """plan.json, CSV tables, the forecast and the one-page HTML summary. An engineer gets the organisation's
    commitments and costs, their teams' forecast and the summary without other teams' notes; plan.json and its
    assumptions (the purchase file, with every team's routing and settings) are for every-team roles."""
    st.subheader("Downloads")
    files = PS.cached_plan_downloads(s)
    c1, c2, c3, c4, c5 = st.columns(5)
    if acc.teams is None:
        c1.download_button("plan.json", data=files["plan.json"], file_name="plan.json", mime="application/json",
                           on_click="ignore", icon=":material/download:", help="The plan (schema gpuplan.plan/v1).")
    else:
        c1.caption("plan.json (every team's routing and settings): finance, platform and leadership.")
    c2.download_button("Commitments (CSV)", data=files["commitments.csv"], file_name="commitments.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:",
                       help="One row per commitment: count, instance type, option, GPUs, start, term (h), USD/h, "
                            "upfront USD, window cost USD.")
    c3.download_button("Hourly costs (CSV)", data=files["hourly_costs.csv"], file_name="hourly_costs.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:",
                       help="Expected USD per hour and GPU model: committed, spot, on-demand, total.")
    c4.download_button("Forecast (CSV)", data=A.cached_forecast_csv(s.forecast_settings, acc.teams),
                       file_name="forecast.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:",
                       help="team, gpu_type, timestamp, mean, p10, p50, p90 (GPUs), model.")
    c5.download_button("Summary (HTML)", data=PS.cached_summary_html(s, hidden), file_name="plan_summary.html",
                       mime="text/html", on_click="ignore", icon=":material/download:",
                       help="One self-contained page for finance: the money inside the window and over the "
                            "commitment terms, what to buy, why each payment option, chart, assumptions.")
    if acc.teams is None:
        with st.expander("All assumptions (plan.json)"):
            st.code(json.dumps(result.plan.assumptions, indent=2, default=str), language="json")


if __name__ == "__main__":
    render()
