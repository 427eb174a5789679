"""Budgets & chargeback page: forecast-based budget alerts, chargeback under the plan, unit economics,
guardrails and the cost review report, with downloads. The numbers are those of ``gpuplan alerts | chargeback |
units | check | report`` on the same files (all computed in :mod:`app.operate_state`).

Data: the shared sidebar's data source (a sample or an upload), like every page. For the SYNTHETIC sample the
shipped budgets, units, policy and November 2025 plan are the defaults; any other source needs its own budgets,
units and policy uploads (the page says which are missing and their format). Chargeback runs either on the
realised usage under a plan file (shipped or uploaded) or on the current planner plan (What-if settings, else the
base scenario) over its window, on the demand it was planned for. Units: USD, GPU-hours, percent where marked.
"""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from app import fmt, sidebar
from app import operate_state as O
from app import state as A
from forecasting import schema as S
from optimizer.billing import BillingError
from optimizer.catalog import CatalogError

ERRORS = (S.UsageError, BillingError, CatalogError, ValueError)
THRESHOLD_KEY = "operate_threshold_pct"
POLICY_KEY = "operate_unused_policy"
PLAN_SOURCE_KEY = "operate_plan_source"
PLAN_CURRENT, PLAN_SHIPPED, PLAN_UPLOADED = ("Current planner plan (projected)", "Shipped plan file (November 2025)",
                                            "Uploaded plan.json")
HELP_PLAN_SOURCE = ("Which plan the chargeback, guardrail checks and report use. Current planner plan: the Plan "
                    "page's plan (What-if settings, else the base scenario) billed over its window on the expected "
                    "demand it was planned for (forecast mean with its growth, events and rightsizing): who will pay "
                    "what. A plan file: billed on the realised usage of its window (a past billing period).")
UPLOAD_TYPES = {"budgets": ["csv", "yaml", "yml"], "units": ["csv", "yaml", "yml"], "policy": ["yaml", "yml"],
                "plan": ["json"]}
HELP = {
    "budgets": "team, project (optional), period (2025-12, 2025-Q4, 2025) or period_start/period_end, budget_usd, "
               "owner (optional e-mail).",
    "units": "team, project (optional), period, unit (e.g. 'training run'), count.",
    "policy": "YAML: required_tags, approval_required, idle_gpu, max_commitment (see gpuplan check --help).",
    "plan": "plan.json written by gpuplan plan; its window is the billing period.",
}


def _inputs(source: str) -> dict[str, O.InputFile | None]:
    """Budgets, units, policy and plan.json files: uploads, else the data source's defaults (None = none yet).

    Uploaders are keyed by data source, so a file uploaded for one organisation never validates another's."""
    files: dict[str, O.InputFile | None] = {}
    missing = [k for k in O.SHIPPED if k != "plan" and O.defaults_for(source, k) is None
               and st.session_state.get(f"operate_upload_{k}_{source}") is None]
    title = ("Files (shipped samples unless you upload your own)" if source == O.SAMPLE
             else "Files: upload this organisation's budgets, units and policy")
    with st.expander(title, expanded=bool(missing)):
        cols = st.columns(4)
        for col, kind in zip(cols, O.SHIPPED, strict=True):
            up = col.file_uploader(kind, type=UPLOAD_TYPES[kind], key=f"operate_upload_{kind}_{source}",
                                   help=HELP[kind])
            files[kind] = O.InputFile(up.name, up.getvalue()) if up is not None else O.defaults_for(source, kind)
            col.caption(fmt.plain(files[kind].name) if files[kind] is not None else f"no {kind} file yet")
    return files


def _missing(kind: str, label: str) -> None:
    """Guidance when the data source has no file of a kind yet."""
    st.info(fmt.plain(f"No {kind} file for {label} yet: upload one under 'Files' above ({HELP[kind]}). The synthetic "
                      f"sample ships an example: data_samples/operate/{O.SHIPPED[kind]}."),
            icon=":material/upload_file:")


def _plan_input(source: str, files: dict[str, O.InputFile | None], fs: A.ForecastSettings
                ) -> tuple[O.InputFile | None, A.PlannerSettings | None, str]:
    """The plan the chargeback uses: ``(plan file, settings when it is the current planner plan, description)``."""
    options = [PLAN_CURRENT] + ([PLAN_SHIPPED] if source == O.SAMPLE else []) + (
        [PLAN_UPLOADED] if st.session_state.get(f"operate_upload_plan_{source}") is not None else [])
    if st.session_state.get(PLAN_SOURCE_KEY) not in options:
        st.session_state[PLAN_SOURCE_KEY] = PLAN_SHIPPED if PLAN_SHIPPED in options else PLAN_CURRENT
    choice = st.radio("Plan for chargeback and checks", options, horizontal=True, key=PLAN_SOURCE_KEY,
                      help=HELP_PLAN_SOURCE)
    if choice != PLAN_CURRENT:
        return files["plan"], None, f"{files['plan'].name if files['plan'] else 'plan file'} on realised usage"
    usage = sidebar.load_usage(fs)
    if usage is None or sidebar.load_forecast(fs, usage) is None:
        return None, None, ""
    settings = sidebar.plan_settings(fs)
    with st.spinner("Planning purchases (commitments, spot, on-demand) with HiGHS..."):
        plan = A.guarded(lambda: O.current_plan_file(settings))
    origin = "What-if settings" if isinstance(st.session_state.get(A.WHATIF_KEY), A.PlannerSettings) else \
        "base scenario"
    return plan, settings, f"current planner plan ({origin}) on its projected demand"


def _guard(fn):
    try:
        return fn()
    except ERRORS as exc:
        st.error(fmt.plain(str(exc)), icon=":material/error:")
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


def _budgets_tab(source: str, files: dict[str, O.InputFile | None], threshold: float) -> None:
    if files["budgets"] is None:
        _missing("budgets", A.data_source_label(source))
        return
    with st.spinner("Forecasting the rest of the budget periods..."):
        report = _guard(lambda: O.alerts(source, files["budgets"], threshold))
    if report is None:
        return
    frame = report.frame()
    c1, c2, c3 = st.columns(3)
    c1.metric("Budgets alerting", f"{len(report.fired)} of {len(report.alerts)}")
    c2.metric("Total budget (USD)", f"{frame['budget_usd'].sum():,.0f}")
    c3.metric("Projected spend (USD)", f"{frame.loc[frame['project'].isna(), 'projected_usd'].sum():,.0f}",
              help="Sum over team budgets (project budgets are part of their team's).")
    st.caption(fmt.plain(f"As of {report.as_of:%Y-%m-%d %H:%M} UTC. Costs: {report.cost_basis}. P(overspend) is the "
                         f"share of {report.n_paths} forecast sample paths above the budget."))
    for a in report.fired:
        st.error(fmt.plain(f"ALERT {a.message}"), icon=":material/warning:")
    st.altair_chart(_budget_chart(frame), width="stretch")
    st.dataframe(frame.drop(columns=["message"]), hide_index=True, width="stretch")
    st.download_button("Download alerts.json", json.dumps(report.to_dict(), indent=2), "alerts.json",
                       "application/json", key="dl_alerts")
    for note in report.notes:
        st.caption(note)


def _chargeback_tab(source: str, plan: O.InputFile | None, planned: A.PlannerSettings | None, what: str,
                    policy: str) -> None:
    if plan is None:
        return
    cb = _guard(lambda: O.chargeback(source, plan, policy, planned))
    if cb is None:
        return
    rec = cb.reconciliation()
    w = cb.bill.hourly[S.TIMESTAMP]
    if w.empty:
        st.warning(fmt.plain(f"The plan's window has no usage in {A.data_source_label(source)}: nothing to charge back "
                             "(fix: choose the current planner plan, or a plan whose window lies inside the data)."))
        return
    st.caption(f"Chargeback of the {what}. Billing period = plan window {w.min():%Y-%m-%d} to "
               f"{w.max() + pd.Timedelta(hours=1):%Y-%m-%d} UTC; serving rule: commitments first, then spot up to its "
               "cap, then on-demand." + (" Projected: the plan billed on the expected demand (forecast mean), so the "
                                         "total can differ from the Plan page's expected cost, which averages the "
                                         "cost over demand scenarios." if planned is not None else ""))
    c1, c2, c3 = st.columns(3)
    lines = [rec[f"bill_{k}_usd"] for k in ("committed", "spot", "on_demand")]
    c1.metric("Allocated (USD)", f"{rec['allocated_total_usd']:,.2f}",
              help="Sum of the chargeback rows: each purchase-option column is apportioned to teams in whole cents.")
    c2.metric("Bill (USD)", f"{round(sum(lines), 2):,.2f}",
              help="The bill's committed, spot and on-demand lines, each in cents ("
                   + ", ".join(f"{x:,.2f}" for x in lines) + f"); unrounded total {rec['bill_total_usd']:,.2f}.")
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


def _units_tab(source: str, files: dict[str, O.InputFile | None]) -> None:
    if files["units"] is None:
        _missing("units", A.data_source_label(source))
        return
    costs = _guard(lambda: O.units(source, files["units"]))
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


def _checks_tab(source: str, files: dict[str, O.InputFile | None], plan: O.InputFile | None) -> None:
    if files["policy"] is None:
        _missing("policy", A.data_source_label(source))
        return
    if plan is None:
        return
    result = _guard(lambda: O.checks(source, files["policy"], plan))
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
    fs = sidebar.data_settings()
    source = fs.sample
    label = A.data_source_label(source)
    if A.guarded(lambda: O.usage(source)) is None:
        return
    defaults = ("the shipped budgets, units, policy and November 2025 plan (data_samples/operate/)"
                if source == O.SAMPLE else "your uploaded budgets, units and policy")
    st.caption(fmt.plain(f"{label}, with {defaults}. Costs for budgets and units: {_guard(lambda: O.basis(source))}."))
    files = _inputs(source)
    c1, c2 = st.columns(2)
    threshold = c1.slider("Alert when P(overspend) reaches (%)", 5, 100, 50, step=5, key=THRESHOLD_KEY) / 100.0
    policy = c2.radio("Unused commitment cost", O.POLICIES, horizontal=True, key=POLICY_KEY,
                      help="proportional: to teams by their use of the commitment; central: to a central account.")
    plan, planned, what = _plan_input(source, files, fs)
    tabs = st.tabs(["Budgets & alerts", "Chargeback", "Unit economics", "Guardrails", "Cost review"])
    with tabs[0]:
        _budgets_tab(source, files, threshold)
    with tabs[1]:
        _chargeback_tab(source, plan, planned, what, policy)
    with tabs[2]:
        _units_tab(source, files)
    with tabs[3]:
        _checks_tab(source, files, plan)
    with tabs[4]:
        absent = [k for k in ("budgets", "units", "policy") if files[k] is None]
        if absent:
            st.info(fmt.plain(f"The cost review needs the {', '.join(absent)} file(s) of {label}: upload them under "
                              "'Files' above."), icon=":material/upload_file:")
        elif plan is not None:
            html = _guard(lambda: O.review_html(source, files["budgets"], files["units"], files["policy"], plan,
                                                policy, threshold, planned))
            if html is not None:
                st.write("The recurring cost review as one self-contained HTML file (charts included), as "
                         "`gpuplan report` writes it.")
                st.download_button("Download report.html", html, "report.html", "text/html", key="dl_report")
