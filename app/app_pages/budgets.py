"""Budgets & chargeback page: forecast-based budget alerts, chargeback under the plan, unit economics,
guardrails, the cost review report and cost anomalies (on request: the search forecasts the window), with
downloads. The numbers are those of ``gpuplan alerts | chargeback | units | check | report | anomalies`` on the
same files (all computed in :mod:`app.operate_state`).

Data: the shared sidebar's data source (a sample or an upload), like every page. For the SYNTHETIC sample the
shipped budgets, units, policy and November 2025 plan are the defaults; any other source needs its own budgets,
units and policy uploads (the page says which are missing and their format). Chargeback runs either on the
realised usage under a plan file (shipped or uploaded) or on the current planner plan (What-if settings, else the
base scenario) over its window, on the demand it was planned for. An engineer (:mod:`app.roles`) sees the
organisation's totals (metrics) and only their teams' rows in every table, chart, note and download. Data costs
(storage and transfer lines: the shipped SYNTHETIC ones for the synthetic sample, else an upload) are included in
budgets, the chargeback of a plan file (own columns), unit costs and the review while "Include data costs" is on
(off by default: GPU costs only).
Units: USD, GPU-hours, percent where marked.
"""

from __future__ import annotations

import dataclasses
import json

import altair as alt
import pandas as pd
import streamlit as st

from app import charts, fmt, sidebar, store_ui, view
from app import operate_state as O
from app import state as A
from app.app_pages.whatif import UPLOAD, file_input
from operate.anomalies import to_csv_frame
from optimizer.billing import BillingError
from optimizer.catalog import CatalogError
from usage import schema as S

ERRORS = (S.UsageError, BillingError, CatalogError, ValueError)
THRESHOLD_KEY = "operate_threshold_pct"
POLICY_KEY = "operate_unused_policy"
PLAN_SOURCE_KEY = "operate_plan_source"
DATA_KEY = "operate_include_data"
ANOMALY_SENS_KEY, ANOMALY_FLOOR_KEY, ANOMALY_ON_KEY = ("operate_anomaly_threshold", "operate_anomaly_floor",
                                                      "operate_anomalies_on")
ANOMALY_EVENTS_KEY = "operate_anomaly_events"
EVENTS_NONE, EVENTS_SAMPLE_PLAN, EVENTS_UPLOAD = "No planned events", "The sample's plan", UPLOAD
HELP_ANOMALY_EVENTS = ("Planned runs, launches (ramp_up) and wind-downs, in the `gpuplan anomalies --events` format: "
                       "the search fits each week on the usage without them and expects each one, its start and its "
                       "end, so a planned run is not an anomaly.")
HELP_ANOMALIES = ("As `gpuplan anomalies`: each week of the window forecast from the usage before it, so seasonality "
                  "is expected; spikes and drops against the series' own hour-to-hour spread around that forecast, "
                  "level shifts and slow drifts against the engine's daily ranges and the forecast made before the "
                  "window. Every team x GPU type and every team's total, never netted across teams. Measured recall "
                  "and false alarms: docs/benchmarks.md.")
HELP_DATA = ("Storage and data-transfer lines: a canonical data-usage CSV (month, team, project, category, class, "
             "quantity, unit, cost_usd; e.g. gpuplan data-costs input) or a billing export (CUR, FOCUS). Their costs "
             "are added to budgets, chargeback and unit costs.")
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
        up = st.file_uploader("data lines (storage and transfer)", type=["csv", "parquet"],
                              key=f"operate_upload_data_{source}", help=HELP_DATA)
        files["data"] = O.InputFile(up.name, up.getvalue()) if up is not None else O.data_default(source)
        st.caption(fmt.plain(files["data"].name) if files["data"] is not None else
                   "no data lines: budgets, chargeback and unit costs are GPU costs only")
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


BUDGET_MARKS = {"Projected spend (expected)": "#c6dbef", "Actual to date": "#4c78a8",
                "Projected p10-p90": "#08519c", "Budget": "#d62728"}
"""The budget chart's marks, each a legend entry with its colour."""
STATUS = {"over_budget": "over budget", "projected_overspend": "projected overspend", "at_risk": "at risk",
          "ok": "on track"}


def _scope(frame: pd.DataFrame) -> pd.Series:
    """``team`` or ``team / project`` per budget row (a missing project is the team's budget)."""
    project = frame["project"].map(lambda p: f" / {p}" if isinstance(p, str) and p else "")
    return frame["team"].astype(str) + project


def _budget_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """One row per budget with its label (none dropped, one row step each) and a legend of every mark."""
    data = frame.assign(scope=_scope(frame))
    order = data.sort_values("projected_usd", ascending=False, kind="stable")["scope"].tolist()
    scale = alt.Scale(domain=list(BUDGET_MARKS), range=list(BUDGET_MARKS.values()))
    y = alt.Y("scope:N", sort=order, title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False))
    money = alt.Axis(format=",.0f")
    tips = [alt.Tooltip("scope:N", title="budget"), alt.Tooltip("budget_usd:Q", title="budget (USD)", format=",.0f"),
            alt.Tooltip("actual_to_date_usd:Q", title="actual to date (USD)", format=",.0f"),
            alt.Tooltip("projected_usd:Q", title="projected (USD)", format=",.0f"),
            alt.Tooltip("projected_p10_usd:Q", title="p10 (USD)", format=",.0f"),
            alt.Tooltip("projected_p90_usd:Q", title="p90 (USD)", format=",.0f"),
            alt.Tooltip("p_overspend:Q", title="P(overspend)", format=".0%")]

    base = alt.Chart(data).encode(y=y, tooltip=tips,
                                  color=alt.Color("mark:N", scale=scale, legend=charts.legend("top", None)))

    def layer(mark: alt.Chart, name: str) -> alt.Chart:  # every layer one legend entry of the shared scale
        return mark.transform_calculate(mark=json.dumps(name))

    bars = layer(base.mark_bar().encode(x=alt.X("projected_usd:Q", title="USD", axis=money)),
                 "Projected spend (expected)")
    actual = layer(base.mark_bar(size=6).encode(x="actual_to_date_usd:Q"), "Actual to date")
    band = layer(base.mark_rule(strokeWidth=2).encode(x="projected_p10_usd:Q", x2="projected_p90_usd:Q"),
                 "Projected p10-p90")
    budget = layer(base.mark_tick(thickness=3).encode(x="budget_usd:Q"), "Budget")
    return alt.layer(bars, actual, band, budget).properties(
        title="Projected spend (p10-p90) vs budget, per team budget", height=alt.Step(24))


def period_label(start: object, end: object) -> str:
    """``2025-12``, ``2025-Q4`` or ``2025`` for a calendar month, quarter or year (UTC), else ``start to end``
    (days, the end exclusive)."""
    a, b = pd.Timestamp(str(start)), pd.Timestamp(str(end))
    months = (b.year - a.year) * 12 + b.month - a.month
    if a == a.normalize() and b == b.normalize() and a.day == 1 and b.day == 1:
        if months == 1:
            return f"{a:%Y-%m}"
        if months == 3 and a.month % 3 == 1:
            return f"{a.year}-Q{(a.month - 1) // 3 + 1}"
        if months == 12 and a.month == 1:
            return f"{a.year}"
    return f"{a:%Y-%m-%d} to {b:%Y-%m-%d}"


def alerts_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The alerts frame as the page shows it: one row per budget, ranges and periods in one cell each (every
    figure of ``alerts.json`` that a reader needs; the download has them all)."""
    def day(text: object) -> str:
        return fmt.MISSING if not isinstance(text, str) or not text else text[:10]

    return pd.DataFrame({
        "Budget": _scope(frame),
        "Period": [period_label(a, b) for a, b in zip(frame["period_start"], frame["period_end"], strict=True)],
        "Budget (USD)": frame["budget_usd"], "Actual to date (USD)": frame["actual_to_date_usd"],
        "Burn (%)": frame["burn_pct"], "Period elapsed (%)": frame["elapsed_pct"],
        "Projected (USD)": frame["projected_usd"],
        "Projected p10-p90 (USD)": [f"{fmt.cell(a, 'usd')} - {fmt.cell(b, 'usd')}" for a, b in
                                    zip(frame["projected_p10_usd"], frame["projected_p90_usd"], strict=True)],
        "P(overspend) (%)": frame["p_overspend"],
        "Runs out (expected)": [day(t) if isinstance(t, str) else "not in the period" for t in frame["run_out_date"]],
        "Status": frame["status"].map(lambda v: STATUS.get(v, str(v))),
    })


def _budgets_tab(source: str, files: dict[str, O.InputFile | None], threshold: float,
                 data: O.InputFile | None = None, teams: frozenset[str] | None = None) -> None:
    if files["budgets"] is None:
        _missing("budgets", A.data_source_label(source))
        return
    with st.spinner("Forecasting the rest of the budget periods..."):
        report = _guard(lambda: O.alerts(source, files["budgets"], threshold, data))
    if report is None:
        return
    frame = report.frame()  # the organisation's totals: the same for every role
    c1, c2, c3 = st.columns(3)
    c1.metric("Budgets alerting", f"{len(report.fired)} of {len(report.alerts)}")
    c2.metric("Total budget (USD)", f"{frame['budget_usd'].sum():,.0f}")
    c3.metric("Projected spend (USD)", f"{frame.loc[frame['project'].isna(), 'projected_usd'].sum():,.0f}",
              help="Sum over team budgets (project budgets are part of their team's).")
    st.caption(fmt.plain(f"As of {report.as_of:%Y-%m-%d %H:%M} UTC. Costs: {report.cost_basis}. P(overspend) is the "
                         f"share of {report.n_paths} forecast sample paths above the budget."))
    if teams is not None:  # an engineer: their teams' budgets only (app.roles)
        report = O.alerts(source, files["budgets"], threshold, data, teams)
        frame = report.frame()
        st.caption("The figures above are the organisation's; the alerts, chart, table and download below are your "
                   "teams' budgets only.")
        if not report.alerts:
            st.info(fmt.plain(f"No budget of your teams ({', '.join(sorted(teams))}) in {files['budgets'].name}."))
            return
    for a in report.fired:
        st.error(fmt.plain(f"ALERT {a.message}"), icon=":material/warning:")
    st.altair_chart(_budget_chart(frame), width="stretch")
    view.table(alerts_table(frame), kinds={"Burn (%)": "pct100", "Period elapsed (%)": "pct100",
                                           "P(overspend) (%)": "pct"})
    st.download_button("Download alerts.json", json.dumps(report.to_dict(), indent=2), "alerts.json",
                       "application/json", key="dl_alerts")
    for note in report.notes:
        st.caption(note)


def _chargeback_tab(source: str, plan: O.InputFile | None, planned: A.PlannerSettings | None, what: str,
                    policy: str, data: O.InputFile | None = None, teams: frozenset[str] | None = None) -> None:
    if plan is None:
        return
    cb = _guard(lambda: O.chargeback(source, plan, policy, planned, data))
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
    if cb.data is not None:
        st.caption(fmt.plain(f"Total = GPU bill + data costs: the storage and transfer lines of the billing period "
                             f"({data.name if data else 'data lines'}; a month partly inside the period pro rata by "
                             "hours), in their own columns; untagged lines stay 'unallocated'."))
    elif data is not None and planned is not None:
        st.caption("Data costs are not in the projected chargeback of the current planner plan: data lines are past "
                   "months' bills. Choose a plan file for a past billing period to see them.")
    c1, c2, c3 = st.columns(3)
    lines = [rec[f"bill_{k}_usd"] for k in ("committed", "spot", "on_demand")]
    data_line = [rec["bill_data_usd"]] if "bill_data_usd" in rec else []
    c1.metric("Allocated (USD)", f"{rec['allocated_total_usd']:,.2f}",
              help="Sum of the chargeback rows: each purchase-option column is apportioned to teams in whole cents.")
    c2.metric("Bill (USD)", f"{round(sum(lines + data_line), 2):,.2f}",
              help="The bill's committed, spot and on-demand lines" + (" and data costs" if data_line else "")
                   + ", each in cents (" + ", ".join(f"{x:,.2f}" for x in lines + data_line)
                   + f"); unrounded total {rec['bill_total_usd']:,.2f}.")
    com = cb.commitment.set_index(S.GPU_TYPE).loc["all GPU models"]
    c3.metric("Commitment utilisation", f"{com['utilization']:.1%}", help=f"coverage {com['coverage']:.1%}")
    has_utilization = not cb.idle.empty
    if teams is not None:  # an engineer: their teams' rows under the organisation's totals above (app.roles)
        cb = O.chargeback(source, plan, policy, planned, data, teams)
        st.caption("The figures above are the organisation's; the rows and downloads below are your teams' only.")
    view.table(cb.table, kinds={c: "usd_cents" for c in cb.table.columns if c.endswith("_usd")},
               labels=CHARGEBACK_LABELS)
    st.download_button("Download chargeback.csv", O.csv_bytes(cb.table), "chargeback.csv", "text/csv",
                       key="dl_chargeback")
    st.subheader("Idle GPU cost per team")
    if cb.idle.empty:
        st.info("The usage has no utilization: idle GPU cost is unavailable." if not has_utilization else
                "Your teams' usage reports no utilisation: their idle GPU cost is unavailable.")
    else:
        view.table(cb.idle, kinds={"mean_utilization": "pct"}, labels=IDLE_LABELS)
        st.download_button("Download idle.csv", O.csv_bytes(cb.idle), "idle.csv", "text/csv", key="dl_idle")
    st.subheader("Commitment utilisation and coverage")
    view.table(cb.commitment, kinds={"utilization": "pct", "coverage": "pct"}, labels=COMMITMENT_LABELS,
               missing={"utilization": "no commitment", "coverage": "no demand"})
    for note in cb.notes:
        st.caption(note)


def _units_tab(source: str, files: dict[str, O.InputFile | None], data: O.InputFile | None = None,
               teams: frozenset[str] | None = None) -> None:
    if files["units"] is None:
        _missing("units", A.data_source_label(source))
        return
    costs = _guard(lambda: O.units(source, files["units"], data, teams))
    if costs is None:
        return
    if costs.empty:
        st.info("No unit counts for your teams in the units file.")
        return
    st.altair_chart(unit_cost_chart(costs), width="stretch")
    st.caption("Log scale: each gridline is ten times the one below, so a unit that costs cents and one that costs "
               "a hundred thousand USD are both readable on one axis.")
    if "data_usd" in costs.columns:
        st.caption("Cost = GPU cost + data costs (storage and transfer of the team or project in the period); the "
                   "data part is shown apart.")
    view.table(units_table(costs), kinds={"Units": "quantity", "GPU-hours": "gpu_hours", "Cost (USD)": "usd",
                                          **({"Data cost (USD)": "usd"} if "data_usd" in costs.columns else {}),
                                          "GPU-hours per unit": "number", "Change per unit (%)": "signed_pct100"},
               missing={"Change per unit (%)": "first period"})
    st.download_button("Download unit_costs.csv", O.csv_bytes(costs), "unit_costs.csv", "text/csv", key="dl_units")


def unit_cost_chart(costs: pd.DataFrame) -> alt.Chart:
    """Cost per unit by period, one line per team and unit, on a log scale (units cost from cents to 100k USD)."""
    data = costs.assign(series=costs["team"].astype(str) + ": " + costs["unit"].astype(str))
    domain = sorted(data["series"].unique().tolist())
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("period_start:T", title="Period start (UTC)"),
        y=alt.Y("usd_per_unit:Q", title="USD per unit (log scale)", scale=alt.Scale(type="log"),
                axis=alt.Axis(format=",~g")),
        color=charts.series_color("series", domain, title="Team: unit", orient="right"),
        tooltip=[alt.Tooltip("series:N", title="team: unit"),
                 alt.Tooltip("period_start:T", title="period", format="%Y-%m"),
                 alt.Tooltip("usd_per_unit:Q", title="USD per unit", format=",.4~g"),
                 alt.Tooltip("count:Q", title="units", format=",.0f")],
    ).properties(title="Cost per unit by period (USD per unit, log scale)", height=320)


def unit_cost_text(x: float | None) -> str:
    """A cost per unit: whole dollars from 100 USD, cents with two decimals below 1 USD (``1.79 cents``)."""
    if x is None or pd.isna(x):
        return fmt.MISSING
    return f"{fmt.cell(x, 'usd')} USD" if x >= 1 else f"{100.0 * x:.2f} cents"


def units_table(costs: pd.DataFrame) -> pd.DataFrame:
    """Unit costs as the page shows them: scope, period, units, GPU-hours, cost and cost per unit (with data costs:
    the data part of the cost and of the cost per unit apart)."""
    data = {"Data cost (USD)": costs["data_usd"],
            "Data cost per unit": costs["data_usd_per_unit"].map(unit_cost_text)} if "data_usd" in costs else {}
    return pd.DataFrame({
        "Team": costs["team"], "Project": costs["project"].map(lambda p: p if isinstance(p, str) and p else "all"),
        "Unit": costs["unit"],
        "Period": [period_label(a, b) for a, b in zip(costs["period_start"], costs["period_end"], strict=True)],
        "Units": costs["count"], "GPU-hours": costs["gpu_hours"], "Cost (USD)": costs["cost_usd"], **data,
        "Cost per unit": costs["usd_per_unit"].map(unit_cost_text),
        "GPU-hours per unit": costs["gpu_hours_per_unit"], "Change per unit (%)": costs["usd_per_unit_change_pct"]})


CHARGEBACK_LABELS = {"team": "Team", "gpu_hours": "GPU-hours", "committed_usd": "Committed (USD)",
                     "spot_usd": "Spot (USD)", "on_demand_usd": "On-demand (USD)",
                     "unused_commitment_usd": "Unused commitment (USD)", "storage_usd": "Storage (USD)",
                     "transfer_usd": "Transfer (USD)", "data_usd": "Data costs (USD)", "total_usd": "Total (USD)"}
IDLE_LABELS = {"team": "Team", "utilization_known_gpu_hours": "GPU-hours with utilisation",
               "idle_gpu_hours": "Idle GPU-hours", "idle_usd": "Idle cost (USD)",
               "mean_utilization": "Mean utilisation (%)"}
COMMITMENT_LABELS = {"gpu_type": "GPU type", "capacity_gpu_hours": "Committed GPU-hours",
                     "used_gpu_hours": "Used GPU-hours", "demand_gpu_hours": "Demand GPU-hours",
                     "committed_usd": "Committed (USD)", "utilization": "Utilisation (%)", "coverage": "Coverage (%)"}


def _checks_tab(source: str, files: dict[str, O.InputFile | None], plan: O.InputFile | None,
                teams: frozenset[str] | None = None) -> None:
    if files["policy"] is None:
        _missing("policy", A.data_source_label(source))
        return
    if plan is None:
        return
    result = _guard(lambda: O.checks(source, files["policy"], plan, teams))
    if result is None:
        return
    if teams is not None:
        st.caption("Findings about your teams and about the plan (GPU models, instance types); other teams' are "
                   "not shown.")
    if result.ok:
        st.success("No guardrail violations.")
    else:
        st.warning(f"{len(result.violations)} guardrail violation(s).")
        view.table(result.violations, labels={"check": "Check", "target": "Applies to", "scope": "Scope",
                                              "message": "Finding", "gpu_hours": "GPU-hours", "usd": "Cost (USD)"})
        st.download_button("Download violations.csv", O.csv_bytes(result.violations), "violations.csv", "text/csv",
                           key="dl_violations")
    if not result.idle.empty:
        st.subheader("Auto-shutdown recommendations")
        view.table(result.idle, kinds={"start": "datetime", "end": "datetime", "mean_gpus": "gpus",
                                       "mean_utilization": "pct"},
                   labels={"gpu_type": "GPU type", "start": "Start (UTC)", "end": "End (UTC)", "hours": "Hours",
                           "mean_gpus": "Mean GPUs", "mean_utilization": "Mean utilisation (%)",
                           "run_cost_usd": "Run cost (USD)", "saving_usd": "Saving if shut down (USD)"},
                   missing={"project": "no project"})
    for note in result.notes:
        st.caption(note)


def anomalies_table(table: pd.DataFrame) -> None:
    view.table(table, kinds={"kind": "option", "start": "datetime", "end": "datetime",
                             "expected_gpu_hours": "gpu_hours", "actual_gpu_hours": "gpu_hours",
                             "impact_usd": "signed_usd", "score": "number"},
               labels={"gpu_type": "GPU type", "kind": "Kind", "start": "Start (UTC)", "end": "End (UTC)",
                       "expected_gpu_hours": "Expected GPU-hours", "actual_gpu_hours": "Actual GPU-hours",
                       "impact_usd": "Impact (USD)", "score": "Score (1 = threshold)"})


def _planned_events_input(source: str) -> O.InputFile | None:
    """Where the planned events the anomaly search expects come from: none, the synthetic sample's own plan, or an
    uploaded events file (the ``--events`` format)."""
    shipped = O.plan_events_default(source)
    options = (EVENTS_NONE, EVENTS_SAMPLE_PLAN, EVENTS_UPLOAD) if shipped is not None else (EVENTS_NONE, EVENTS_UPLOAD)
    name, text = file_input("Planned events (expected, not anomalies)", options, ANOMALY_EVENTS_KEY,
                            f"{ANOMALY_EVENTS_KEY}_loaded",   # no scenario brings them: never set
                            ("Events file (.yaml, .yml, .csv)", ["yaml", "yml", "csv"],
                             f"{ANOMALY_EVENTS_KEY}_file_{source}"), HELP_ANOMALY_EVENTS, horizontal=True)
    if st.session_state.get(ANOMALY_EVENTS_KEY) == EVENTS_SAMPLE_PLAN:
        st.caption(fmt.plain(f"{shipped.name}: the SYNTHETIC sample's planned runs, wind-down and launches"))
        return shipped
    return O.InputFile(name, text.encode("utf-8")) if text else None


def _anomalies_tab(source: str, teams: frozenset[str] | None = None) -> None:
    st.caption("Spikes, drops, level shifts and slow drifts of GPU usage in the last weeks, with their impact at "
               "list rates.", help=HELP_ANOMALIES)
    c1, c2 = st.columns(2)
    sensitivity = c1.slider("Detection threshold (1 = the tuned level)", 0.5, 3.0, 1.0, step=0.25,
                            key=ANOMALY_SENS_KEY, help="2 reports only anomalies twice as strong.")
    floor = c2.number_input("Report only impacts of at least (USD)", min_value=0.0, value=0.0, step=50.0,
                            key=ANOMALY_FLOOR_KEY, help="An absolute floor for what is worth a look (0 = none).")
    events = _planned_events_input(source)
    if st.button("Find anomalies", key="anomalies_run", icon=":material/search:"):
        st.session_state[ANOMALY_ON_KEY] = True
    if not st.session_state.get(ANOMALY_ON_KEY):
        st.caption("The search forecasts the window week by week (a few seconds): press 'Find anomalies'.")
        return
    with st.spinner("Forecasting the window week by week..."):
        rep = _guard(lambda: O.anomalies(source, float(sensitivity), float(floor), events))
    if rep is None:
        return
    table = rep.table if teams is None else rep.table[rep.table["team"].isin(teams)]
    c1, c2 = st.columns(2)
    c1.metric("Anomalies", f"{len(table):,}")
    c2.metric("Impact at list rates (USD)", fmt.usd(float(table["impact_usd"].sum())) if len(table) else "0")
    st.caption(f"From {rep.window_start:%Y-%m-%d %H:%M} to {rep.as_of:%Y-%m-%d %H:%M} UTC, newest first."
               + ("" if teams is None else " Your teams' anomalies; other teams' are not shown."))
    if table.empty:
        st.success("No anomaly in the window.")
        return
    anomalies_table(table)
    st.download_button("Download anomalies.csv", O.csv_bytes(to_csv_frame(table)), "anomalies.csv", "text/csv",
                       key="dl_anomalies")


COMMITMENTS_UPLOAD_KEY = "operate_commitments_upload"
BELOW_KEY = "operate_commitments_below_pct"
LOOKBACK_KEY = "operate_commitments_days"
HELP_COMMITMENTS = ("A billing export with commitment rows: FOCUS (CommitmentDiscountId, CommitmentDiscountStatus) or "
                    "AWS CUR (RIFee, DiscountedUsage, SavingsPlanRecurringFee), as gpuplan commitments --billing "
                    "reads it. Its GPU usage rows name the teams that could move onto an under-used commitment.")
FINDING_LABELS = {"commitment_id": "Commitment", "type": "Type", "instance_type": "Instance type",
                  "gpu_model": "GPU model", "window_start": "From", "window_end": "To",
                  "utilization": "Utilisation (%)",
                  "unused_quantity": "Unused", "unit": "Unit", "unused_gpu_hours": "Unused GPU-hours",
                  "unused_usd": "Unused (USD)", "unused_usd_per_30_days": "Unused per 30 days (USD)",
                  "movable_teams": "Teams that could move onto it", "message": "Finding"}
INVENTORY_LABELS = {"commitment_id": "Commitment", "provider": "Provider", "type": "Type",
                    "instance_type": "Instance type", "gpu_model": "GPU model", "scope": "Covers", "count": "Count",
                    "option": "Option", "term_end": "Term end", "month": "Month", "used_quantity": "Used",
                    "unused_quantity": "Unused", "unit": "Unit", "utilization": "Utilisation (%)",
                    "used_usd": "Used (USD)", "unused_usd": "Unused (USD)"}
TEAM_COLUMNS = ("movable_teams", "message")
"""Finding columns that name teams: not shown to an engineer (a commitment is the organisation's, its finding
names every team that could use it)."""
FINDING_SHOWN = ["commitment_id", "type", "utilization", "unused_usd", "unused_usd_per_30_days", "movable_teams"]
INVENTORY_SHOWN = ["month", "commitment_id", "type", "scope", "option", "term_end", "utilization", "unused_usd"]
"""The columns on screen (the downloads carry every column and the full commitment ids)."""


def short_id(commitment_id: object) -> str:
    """A commitment's id for the screen: the last part of an ARN or resource path (``ri-p4d-0001``)."""
    return str(commitment_id).rstrip("/").split("/")[-1].split(":")[-1]


def _commitments_tab(source: str, fs: A.ForecastSettings, teams: frozenset[str] | None = None) -> None:
    """Owned commitments from a billing export: the under-used ones with the teams that could move onto them, the
    inventory by month, downloads, and the owned commitments handed to the planner (What-if's "Owned
    commitments"), as ``gpuplan commitments --existing-out`` writes them for ``gpuplan plan --existing``."""
    up = st.file_uploader("Billing export with commitments (.csv, .parquet)", type=["csv", "parquet"],
                          key=f"{COMMITMENTS_UPLOAD_KEY}_{source}", help=HELP_COMMITMENTS)
    f = O.InputFile(up.name, up.getvalue()) if up is not None else O.commitments_default(source)
    if f is None:
        st.info("Upload a billing export with commitment rows (FOCUS or AWS CUR) to see its reserved instances, "
                "savings plans, reservations and CUDs.", icon=":material/upload_file:")
        return
    st.caption(fmt.plain(f"{f.name}" + (" (a SYNTHETIC example CUR shipped with the sample)" if up is None else "")))
    c1, c2 = st.columns(2)
    below = c1.slider("Under-used below utilisation (%)", 10, 100, 80, step=5, key=BELOW_KEY) / 100.0
    days = int(c2.number_input("Over the last (days)", min_value=1, max_value=366, value=14, step=1,
                               key=LOOKBACK_KEY))
    rev = _guard(lambda: O.commitments(f, below, days))
    if rev is None:
        return
    for note in rev.notes:
        st.caption(fmt.plain(note))
    findings = rev.findings if teams is None else rev.findings.drop(columns=list(TEAM_COLUMNS))
    m1, m2, m3 = st.columns(3)
    m1.metric("Commitments", f"{rev.inventory['commitment_id'].nunique():,}")
    m2.metric(f"Under-used below {fmt.pct(below, 0)}", f"{len(findings):,}")
    m3.metric(f"Unused over the last {days} days (USD)", fmt.usd(float(findings["unused_usd"].sum())))
    st.subheader("Under-used commitments")
    if findings.empty:
        st.success(f"Every commitment was used at {fmt.pct(below, 0)} or more over the last {days} days.")
    else:
        view.table(findings.assign(commitment_id=findings["commitment_id"].map(short_id)),
                   kinds={"utilization": "pct", "unused_usd": "usd_cents", "unused_usd_per_30_days": "usd_cents"},
                   labels=FINDING_LABELS, columns=[c for c in FINDING_SHOWN if c in findings.columns])
        if teams is not None:
            st.caption("The teams that could move onto a commitment are shown to the finance and platform roles.")
        for message in findings.get("message", ()):
            st.caption(fmt.plain(message))
    st.subheader("Inventory by month")
    view.table(rev.inventory.assign(commitment_id=rev.inventory["commitment_id"].map(short_id)),
               kinds={"utilization": "pct", "unused_usd": "usd_cents"}, labels=INVENTORY_LABELS,
               columns=INVENTORY_SHOWN)
    d1, d2, d3 = st.columns(3)
    d1.download_button("Download inventory.csv", O.csv_bytes(rev.inventory), "inventory.csv", "text/csv",
                       key="dl_inventory")
    d2.download_button("Download under_used.csv", O.csv_bytes(findings), "under_used.csv", "text/csv",
                       key="dl_under_used")
    if rev.owned.empty:
        st.caption(fmt.plain("No commitment of this export can go to the planner: " + "; ".join(rev.owned_notes)))
        return
    d3.download_button("Download owned.csv", O.csv_bytes(rev.owned), "owned.csv", "text/csv", key="dl_owned",
                       help="The format of gpuplan plan --existing and of the What-if's 'Owned commitments'.")
    for note in rev.owned_notes:
        st.caption(fmt.plain(note))
    if st.button(f"Plan with these {len(rev.owned)} owned commitments", icon=":material/input:",
                 help="Sets the What-if's 'Owned commitments' to them: the plan uses them first, bills them in their "
                      "active hours and never buys them again."):
        current = st.session_state.get(A.WHATIF_KEY)
        base = current if isinstance(current, A.PlannerSettings) else sidebar.base_settings(fs)
        st.session_state[A.WHATIF_KEY] = dataclasses.replace(base, owned_name="owned.csv",
                                                             owned_text=rev.owned.to_csv(index=False))
        st.success("The What-if page now plans with them (Owned commitments: From the loaded scenario).")


def render() -> None:
    """Draw the Budgets & chargeback page."""
    st.title("Budgets & chargeback")
    fs = sidebar.data_settings()
    acc = sidebar.access()
    teams = acc.teams  # None = every team; an engineer: their teams' rows (app.roles)
    source = fs.sample
    label = A.data_source_label(source)
    if A.guarded(lambda: O.usage(source)) is None:
        return
    defaults = ("the shipped budgets, units, policy and November 2025 plan (data_samples/operate/)"
                if source == O.SAMPLE else "your uploaded budgets, units and policy")
    st.caption(fmt.plain(f"{label}, with {defaults}. Costs for budgets and units: {_guard(lambda: O.basis(source))}."))
    files = _inputs(source)
    files["budgets"] = store_ui.saved_budgets(source, files["budgets"], acc)
    c1, c2 = st.columns(2)
    threshold = c1.slider("Alert when P(overspend) reaches (%)", 5, 100, 50, step=5, key=THRESHOLD_KEY) / 100.0
    policy = c2.radio("Unused commitment cost", O.POLICIES, horizontal=True, key=POLICY_KEY,
                      help="proportional: to teams by their use of the commitment; central: to a central account.")
    include = st.toggle("Include data costs (storage and transfer)", value=False, key=DATA_KEY,
                        disabled=files["data"] is None,
                        help=HELP_DATA + " Off: GPU costs only (the basis the shipped budgets were sized on; with "
                                         "data costs more of them alert).")
    data = files["data"] if include else None
    if files["data"] is None:
        st.caption(fmt.plain(f"No data lines for {label}: budgets, chargeback and unit costs are GPU costs only "
                             "(upload storage and transfer lines under 'Files' to include them)."))
    plan, planned, what = _plan_input(source, files, fs)
    tabs = st.tabs(["Budgets & alerts", "Chargeback", "Unit economics", "Guardrails", "Cost review", "Anomalies",
                    "Commitments"])
    with tabs[0]:
        _budgets_tab(source, files, threshold, data, teams)
    with tabs[1]:
        _chargeback_tab(source, plan, planned, what, policy, data, teams)
    with tabs[2]:
        _units_tab(source, files, data, teams)
    with tabs[3]:
        _checks_tab(source, files, plan, teams)
    with tabs[4]:
        absent = [k for k in ("budgets", "units", "policy") if files[k] is None]
        if absent:
            st.info(fmt.plain(f"The cost review needs the {', '.join(absent)} file(s) of {label}: upload them under "
                              "'Files' above."), icon=":material/upload_file:")
        elif plan is not None:
            html = _guard(lambda: O.review_html(source, files["budgets"], files["units"], files["policy"], plan,
                                                policy, threshold, planned, data, teams))
            if html is not None:
                st.write("The recurring cost review as one self-contained HTML file (charts included), as "
                         "`gpuplan report` writes it.")
                st.download_button("Download report.html", html, "report.html", "text/html", key="dl_report")
    with tabs[5]:
        _anomalies_tab(source, teams)
    with tabs[6]:
        _commitments_tab(source, fs, teams)
