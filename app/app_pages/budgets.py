"""Budgets & chargeback page: forecast-based budget alerts, chargeback under the plan, unit economics,
guardrails and the cost review report, with downloads. The numbers are those of ``gpuplan alerts | chargeback |
units | check | report`` on the same files (all computed in :mod:`app.operate_state`).

Data: the SYNTHETIC sample organisation and its shipped budgets, units, policy and November 2025 plan; each
file can be replaced by an upload. Units: USD, GPU-hours, percent where marked.
"""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from app import operate_state as O
from forecasting import schema as S
from optimizer.billing import BillingError
from optimizer.catalog import CatalogError

ERRORS = (S.UsageError, BillingError, CatalogError, ValueError)
THRESHOLD_KEY = "operate_threshold_pct"
POLICY_KEY = "operate_unused_policy"
UPLOAD_TYPES = {"budgets": ["csv", "yaml", "yml"], "units": ["csv", "yaml", "yml"], "policy": ["yaml", "yml"],
                "plan": ["json"]}
HELP = {
    "budgets": "team, project (optional), period (2025-12, 2025-Q4, 2025) or period_start/period_end, budget_usd, "
               "owner (optional e-mail).",
    "units": "team, project (optional), period, unit (e.g. 'training run'), count.",
    "policy": "YAML: required_tags, approval_required, idle_gpu, max_commitment (see gpuplan check --help).",
    "plan": "plan.json written by gpuplan plan; its window is the billing period.",
}


def _inputs() -> dict[str, O.InputFile]:
    files = {}
    with st.expander("Files (shipped samples unless you upload your own)"):
        cols = st.columns(4)
        for col, kind in zip(cols, O.SHIPPED, strict=True):
            up = col.file_uploader(kind, type=UPLOAD_TYPES[kind], key=f"operate_upload_{kind}", help=HELP[kind])
            files[kind] = O.InputFile(up.name, up.getvalue()) if up is not None else O.shipped(kind)
            col.caption(files[kind].name)
    return files


def _guard(fn):
    try:
        return fn()
    except ERRORS as exc:
        st.error(f"{exc}", icon=":material/error:")
        return None


def _budget_chart(frame: pd.DataFrame) -> alt.LayerChart:
    data = frame.assign(scope=frame["team"] + frame["project"].map(lambda p: f" / {p}" if p else ""))
    base = alt.Chart(data).encode(y=alt.Y("scope:N", sort="-x", title=None))
    bars = base.mark_bar(color="#c6dbef").encode(x=alt.X("projected_usd:Q", title="USD"),
                                                  tooltip=["scope", "budget_usd", "actual_to_date_usd",
                                                           "projected_usd", "p_overspend", "run_out_date"])
    actual = base.mark_bar(color="#4c78a8", size=6).encode(x="actual_to_date_usd:Q")
    band = base.mark_rule(color="#08519c").encode(x="projected_p10_usd:Q", x2="projected_p90_usd:Q")
    budget = base.mark_tick(color="#d62728", thickness=3).encode(x="budget_usd:Q")
    return (bars + actual + band + budget).properties(title="Projected spend (p10-p90) vs budget (red tick)",
                                                      height=max(200, 22 * len(data)))


def _budgets_tab(files: dict[str, O.InputFile], threshold: float) -> None:
    with st.spinner("Forecasting the rest of the budget periods..."):
        report = _guard(lambda: O.alerts(files["budgets"], threshold))
    if report is None:
        return
    frame = report.frame()
    c1, c2, c3 = st.columns(3)
    c1.metric("Budgets alerting", f"{len(report.fired)} of {len(report.alerts)}")
    c2.metric("Total budget (USD)", f"{frame['budget_usd'].sum():,.0f}")
    c3.metric("Projected spend (USD)", f"{frame.loc[frame['project'].isna(), 'projected_usd'].sum():,.0f}",
              help="Sum over team budgets (project budgets are part of their team's).")
    st.caption(f"As of {report.as_of:%Y-%m-%d %H:%M} UTC. Costs: {report.cost_basis}. P(overspend) is the share of "
               f"{report.n_paths} forecast sample paths above the budget.")
    for a in report.fired:
        st.error(f"ALERT {a.message}", icon=":material/warning:")
    st.altair_chart(_budget_chart(frame), width="stretch")
    st.dataframe(frame.drop(columns=["message"]), hide_index=True, width="stretch")
    st.download_button("Download alerts.json", json.dumps(report.to_dict(), indent=2), "alerts.json",
                       "application/json", key="dl_alerts")


def _chargeback_tab(files: dict[str, O.InputFile], policy: str) -> None:
    cb = _guard(lambda: O.chargeback(files["plan"], policy))
    if cb is None:
        return
    rec = cb.reconciliation()
    w = cb.bill.hourly[S.TIMESTAMP]
    st.caption(f"Billing period = plan window {w.min():%Y-%m-%d} to {w.max() + pd.Timedelta(hours=1):%Y-%m-%d} UTC; "
               "serving rule: commitments first, then spot up to its cap, then on-demand.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Allocated (USD)", f"{rec['allocated_total_usd']:,.2f}")
    c2.metric("Bill (USD)", f"{rec['bill_total_usd']:,.2f}")
    com = cb.commitment.set_index(S.GPU_TYPE).loc["all GPU models"]
    c3.metric("Commitment utilisation", f"{com['utilization']:.1%}", help=f"coverage {com['coverage']:.1%}")
    st.dataframe(cb.table, hide_index=True, width="stretch")
    st.download_button("Download chargeback.csv", O.csv_bytes(cb.table), "chargeback.csv", "text/csv",
                       key="dl_chargeback")
    st.subheader("Idle GPU cost per team")
    if cb.idle.empty:
        st.info("The usage has no utilization: idle GPU cost is unavailable.")
    else:
        st.dataframe(cb.idle, hide_index=True, width="stretch")
        st.download_button("Download idle.csv", O.csv_bytes(cb.idle), "idle.csv", "text/csv", key="dl_idle")
    st.subheader("Commitment utilisation and coverage")
    st.dataframe(cb.commitment, hide_index=True, width="stretch")
    for note in cb.notes:
        st.caption(note)


def _units_tab(files: dict[str, O.InputFile]) -> None:
    costs = _guard(lambda: O.units(files["units"]))
    if costs is None:
        return
    data = costs.assign(series=costs["team"] + ": " + costs["unit"])
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("period_start:T", title=None), y=alt.Y("usd_per_unit:Q", title="USD per unit"),
        color=alt.Color("series:N", title=None), tooltip=["series", "period_start", "usd_per_unit", "count"]
    ).properties(title="Cost per unit by period", height=300)
    st.altair_chart(chart.resolve_scale(y="independent"), width="stretch")
    st.dataframe(costs, hide_index=True, width="stretch")
    st.download_button("Download unit_costs.csv", O.csv_bytes(costs), "unit_costs.csv", "text/csv", key="dl_units")


def _checks_tab(files: dict[str, O.InputFile]) -> None:
    result = _guard(lambda: O.checks(files["policy"], files["plan"]))
    if result is None:
        return
    if result.ok:
        st.success("No guardrail violations.")
    else:
        st.warning(f"{len(result.violations)} guardrail violation(s).")
        st.dataframe(result.violations, hide_index=True, width="stretch")
        st.download_button("Download violations.csv", O.csv_bytes(result.violations), "violations.csv", "text/csv",
                           key="dl_violations")
    if not result.idle.empty:
        st.subheader("Auto-shutdown recommendations")
        st.dataframe(result.idle, hide_index=True, width="stretch")
    for note in result.notes:
        st.caption(note)


def render() -> None:
    """Draw the Budgets & chargeback page."""
    st.title("Budgets & chargeback")
    st.caption("SYNTHETIC sample organisation (made up, seeded) with the shipped budgets, units, policy and "
               f"November 2025 plan. Costs for budgets and units: {O.basis()}.")
    files = _inputs()
    c1, c2 = st.columns(2)
    threshold = c1.slider("Alert when P(overspend) reaches (%)", 5, 100, 50, step=5, key=THRESHOLD_KEY) / 100.0
    policy = c2.radio("Unused commitment cost", O.POLICIES, horizontal=True, key=POLICY_KEY,
                      help="proportional: to teams by their use of the commitment; central: to a central account.")
    tabs = st.tabs(["Budgets & alerts", "Chargeback", "Unit economics", "Guardrails", "Cost review"])
    with tabs[0]:
        _budgets_tab(files, threshold)
    with tabs[1]:
        _chargeback_tab(files, policy)
    with tabs[2]:
        _units_tab(files)
    with tabs[3]:
        _checks_tab(files)
    with tabs[4]:
        html = _guard(lambda: O.review_html(files["budgets"], files["units"], files["policy"], files["plan"], policy,
                                            threshold))
        if html is not None:
            st.write("The recurring cost review as one self-contained HTML file (charts included), as "
                     "`gpuplan report` writes it.")
            st.download_button("Download report.html", html, "report.html", "text/html", key="dl_report")
