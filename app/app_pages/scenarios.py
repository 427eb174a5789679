"""Scenarios page: save the current planner settings and plan under a name, compare two to four saved
scenarios side by side, and the cost-vs-speed view for leadership.

Scenarios live in the store of :mod:`app.store` (``$GPUPLAN_STORE``: a DuckDB file, default
``~/.gpuplan/scenarios.duckdb``, or a ``postgresql://`` server), so they survive restarts and page reloads.
"Current settings" are the What-if page's settings (:data:`app.state.WHATIF_KEY`) if it was visited, else the
base scenario, for the data source and window of the shared sidebar (:func:`app.sidebar.plan_settings`).
Roles (:mod:`app.roles`): only platform saves and deletes (each write passes ``actor`` to the store's audit log);
an engineer sees no scenario whose name or note names another team, no other team's settings rows, and no
plan.json or stored-inputs JSON (every team's routing and settings).
Units: USD, USD per hour, GPUs, hours, percent where marked.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from types import ModuleType

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app import charts, fmt, sidebar, view
from app import plan_frames as PF
from app import plan_state as PS
from app import roles as Ro
from app import state as A
from app import store as St
from app.whatif_model import spot_time_overhead
from optimizer import rightsizing as R
from optimizer.inputs import PlanningError
from optimizer.pareto import _unit_outcome
from optimizer.plan import Plan
from optimizer.solve import PlanResult
from usage import schema as S

log = logging.getLogger(__name__)

NAME_KEY = "scenario_name"
NOTE_KEY = "scenario_note"
REPLACE_KEY = "scenario_replace"
COMPARE_KEY = "scenario_compare"
DELETE_KEY = "scenario_delete"
APPLY_KEY = "scenario_apply"
SAVED_KEY = "scenario_saved"
"""Name of the scenario saved by the last click, for the confirmation line (and tests)."""
MAX_COMPARE = 4
SWEEP_STEPS = 11
"""Speed priorities swept (0, 0.1, ..., 1)."""

HELP_SAVE = ("Stores the settings (JSON), the plan (plan.json) and its summary under this name in the scenario "
             "database, so it can be compared with others and reloaded after the app restarts.")
HELP_COMPARE = "Pick two to four saved scenarios to compare their cost, risk, time-to-result and what they buy."
HELP_TTR = ("Time-to-result: mean hours until the plan window's training backlog completes (weighted by work), each "
            "team keeping its GPU count, on the GPU models the plan uses: the rightsized routing at the scenario's "
            "speed priority (optimizer.pareto's formula), or today's GPU models (the window's hours) when not "
            "rightsized; spot interruptions stretch it by their rework.")

SETTING_LABELS = {"sample": "Data source", "hours": "Plan window (h)", "growth": "Demand growth",
                  "max_spot_share": "Maximum spot share", "allow_spot": "Spot allowed",
                  "team_growth": "Per-team growth", "options": "Commitment options", "spot_discount": "Spot discount",
                  "interruption_bucket": "Interruption bucket", "speed_priority": "Speed priority",
                  "max_obligation_usd": "Maximum commitment (obligation over the full terms, USD)",
                  "cost_of_capital": "Cost of capital (per year)",
                  A.OLD_MAX_COMMIT_FIELD: "Maximum commitment (old hourly cap, USD/h)", "budget_usd": "Budget (USD)",
                  "events_name": "Planned events file", "events_text": "Planned events (content)",
                  "owned_name": "Owned commitments file", "owned_text": "Owned commitments (content)",
                  "ladder": "Laddering (monthly starts)", "no_spot_models": "GPU models kept off spot",
                  "cvar_weight": "Risk weight (CVaR90)", "rightsize": "Rightsize GPU models"}
"""Labels of stored settings shown field by field (old scenarios, and any field :data:`app.plan_state.SETTINGS_LINE_OF`
does not place); a field missing here is shown under its own name, so no setting is ever left out."""
_FRACTIONS = {"growth", "max_spot_share", "spot_discount", "speed_priority", "cost_of_capital"}
HIDDEN_SETTINGS = {"events_text", "owned_text"}
"""Stored but not shown row by row: the events and owned-commitments files' content (their names are shown)."""


def store() -> St.Store:
    return St.open_store()  # $GPUPLAN_STORE: a DuckDB file (default) or a postgresql:// server


def setting_text(name: str, value: object) -> str:
    """One stored setting for display, with its unit."""
    if value is None or value == "" or value == () or value == []:
        return "none"
    if name in _FRACTIONS and isinstance(value, int | float):
        return fmt.pct(float(value))
    if name == "team_growth":
        return ", ".join(f"{t} {fmt.signed_pct(float(g))}" for t, g in value)  # type: ignore[union-attr]
    if name == "options":
        return ", ".join(str(o) for o in value)  # type: ignore[union-attr]
    if name == "sample":
        return A.data_source_label(str(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        if name in ("budget_usd", "max_obligation_usd"):
            return fmt.usd(float(value))  # type: ignore[arg-type]
        if name == A.OLD_MAX_COMMIT_FIELD:
            return fmt.usd_per_hour(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass  # a damaged stored value is shown as stored
    return str(value)


def setting_label(name: str) -> str:
    """Display label of a stored settings field (its own name, readable, when no label is set)."""
    return SETTING_LABELS.get(name, name.replace("_", " ").capitalize())


CONVERTED_LABEL = "Converted from an older planner"
"""The settings row that says what :func:`app.state.migrate_settings` converted or dropped (old scenarios)."""


def settings_rows(settings: dict[str, object]) -> dict[str, str]:
    """Label -> display text of stored settings: the app's wording (:func:`app.plan_state.settings_lines`) plus the
    window, when they fit today's :class:`PlannerSettings` (older fields converted or dropped by
    :func:`app.state.settings_from_saved`, with a row saying so), and one generic row for every field no line covers
    (:data:`app.plan_state.SETTINGS_LINE_OF`), so a new settings field is always shown; else every field as stored
    (old scenarios)."""
    try:
        current, notes = A.settings_from_saved(settings)
    except (St.StoreError, ValueError):
        return {setting_label(k): setting_text(k, v) for k, v in settings.items() if k not in HIDDEN_SETTINGS}
    lines = PS.settings_lines(current)
    rows = {"Data": lines.pop("Data"), "Plan window": fmt.hours(current.hours), **lines}
    for f in dataclasses.fields(current):
        if f.name not in PS.SETTINGS_LINE_OF and f.name != "hours" and f.name not in HIDDEN_SETTINGS:
            rows[setting_label(f.name)] = setting_text(f.name, getattr(current, f.name))
    if notes:
        rows[CONVERTED_LABEL] = "; ".join(notes)
    return rows


def what_to_buy(plan: Plan) -> list[str]:
    """One line per commitment and spot allowance: ``8 x p4d.24xlarge, reserved_1y_no_upfront (64 NVIDIA A100)``."""
    lines = [f"{c.count} x {c.instance_type}, {c.purchase_option} ({c.gpus:g} {c.gpu_model}) from "
             f"{c.start:%Y-%m-%d}" for c in plan.commitments]
    lines += [f"spot up to {s.max_instances} x {s.instance_type} ({s.max_instances * s.gpus_per_instance:g} "
              f"{s.gpu_model})" for s in plan.spot if s.max_instances > 0]
    return lines or ["nothing committed, no spot: all on-demand"]


def present_value_text(plan: Plan) -> str:
    """``27,137,858 USD at 10 %/year to 2026-12-01``, or ``-`` for a plan judged on its window alone."""
    if plan.term is None or plan.expected.present_value_usd is None:
        return fmt.DASH
    return (f"{fmt.usd(plan.expected.present_value_usd)} at {fmt.pct(plan.term.cost_of_capital, 0)}/year to "
            f"{plan.term.horizon_end:%Y-%m-%d}")


def comparison_table(scenarios: list[St.Scenario]) -> pd.DataFrame:
    """Metric rows x scenario columns, formatted with units."""
    rows: dict[str, list[str]] = {}

    def add(label: str, values: list[str]) -> None:
        rows[label] = values

    sm = [s.summary for s in scenarios]
    add("Expected cost", [fmt.usd(x.expected_usd) for x in sm])
    add("Cost range p10-p90 (risk)", [f"{fmt.usd(x.p10_usd)} - {fmt.usd(x.p90_usd)}" for x in sm])
    add("Spread p90 - p10", [fmt.usd(None if x.p10_usd is None or x.p90_usd is None else x.p90_usd - x.p10_usd)
                             for x in sm])
    add("All on-demand cost", [fmt.usd(x.all_on_demand_usd) for x in sm])
    add("Savings vs all on-demand", [f"{fmt.usd(x.savings_usd)} ({x.savings_pct:.1f} %)" for x in sm])
    add("Upfront cash", [fmt.usd(x.upfront_usd) for x in sm])
    add("Obligation after the window", [fmt.usd(s.plan.expected.obligation_after_window_usd) for s in scenarios])
    add("Total obligation over the terms", [fmt.usd(PF.obligation_usd(s.plan)) for s in scenarios])
    add("Present value over the terms", [present_value_text(s.plan) for s in scenarios])
    add("Commitment utilisation", [fmt.pct(x.commitment_utilization) if x.commitments else "no commitments"
                                   for x in sm])
    add("Time-to-result", [fmt.hours(x.time_to_result_hours) for x in sm])
    add("Instances committed", [f"{x.commitments:,}" for x in sm])
    add("Plan window", [f"{s.plan.window_start:%Y-%m-%d %H:%M} to {s.plan.window_end:%Y-%m-%d %H:%M} UTC "
                        f"({s.plan.hours:,} h)" for s in scenarios])
    add("What to buy", ["; ".join(what_to_buy(s.plan)) for s in scenarios])
    inputs = [settings_rows(s.settings) for s in scenarios]
    labels: list[str] = []
    for rows_of in inputs:
        labels += [k for k in rows_of if k not in labels]
    for label in labels:
        add(f"Input: {label}", [rows_of.get(label, "-") for rows_of in inputs])
    add("Data source", [s.data_source for s in scenarios])
    add("Saved (UTC)", [f"{s.saved_at:%Y-%m-%d %H:%M}" for s in scenarios])
    frame = pd.DataFrame(rows, index=[s.name for s in scenarios]).T
    frame.index.name = "Figure"
    return frame


def cost_chart(scenarios: list[St.Scenario]) -> alt.LayerChart:
    """Expected cost per scenario (bar) with its p10-p90 range (rule), USD."""
    data = pd.DataFrame([{"scenario": s.name, "expected_usd": s.summary.expected_usd,
                          "p10_usd": s.summary.p10_usd if s.summary.p10_usd is not None else s.summary.expected_usd,
                          "p90_usd": s.summary.p90_usd if s.summary.p90_usd is not None else s.summary.expected_usd,
                          "all_on_demand_usd": s.summary.all_on_demand_usd} for s in scenarios])
    order = [s.name for s in scenarios]
    base = alt.Chart(data).encode(x=alt.X("scenario:N", sort=order, title=None,
                                          axis=alt.Axis(labelAngle=0, labelLimit=0)))  # names never cut
    bars = base.mark_bar(opacity=0.8).encode(
        y=alt.Y("expected_usd:Q", title="Expected cost (USD)"),
        tooltip=[alt.Tooltip("scenario:N"), alt.Tooltip("expected_usd:Q", title="expected (USD)", format=",.0f"),
                 alt.Tooltip("p10_usd:Q", title="p10 (USD)", format=",.0f"),
                 alt.Tooltip("p90_usd:Q", title="p90 (USD)", format=",.0f"),
                 alt.Tooltip("all_on_demand_usd:Q", title="all on-demand (USD)", format=",.0f")])
    rule = base.mark_rule(strokeWidth=2, color="black").encode(y="p10_usd:Q", y2="p90_usd:Q")
    return (bars + rule).properties(title="Expected cost with p10-p90 range (USD)", height=260)


def scenario_speed_chart(scenarios: list[St.Scenario]) -> alt.LayerChart | None:
    """Saved scenarios as points of cost (USD) vs time-to-result (h); None if fewer than two have a time."""
    rows = [{"scenario": s.name, "expected_usd": s.summary.expected_usd, "ttr_h": s.summary.time_to_result_hours}
            for s in scenarios if s.summary.time_to_result_hours is not None]
    if len(rows) < 2:
        return None
    frame = pd.DataFrame(rows)
    points = alt.Chart(frame).mark_point(filled=True, size=120).encode(
        x=alt.X("ttr_h:Q", title="Time-to-result (h)", scale=charts.quantity_scale(frame["ttr_h"]),
                axis=alt.Axis(format=",.0f", tickMinStep=1)),
        y=alt.Y("expected_usd:Q", title="Expected cost (USD)", scale=charts.quantity_scale(frame["expected_usd"]),
                axis=alt.Axis(format=",.0f")),
        tooltip=[alt.Tooltip("scenario:N"), alt.Tooltip("expected_usd:Q", title="expected cost (USD)", format=",.0f"),
                 alt.Tooltip("ttr_h:Q", title="time-to-result (h)", format=",.1f")],
    )
    labels = points.mark_text(align="left", dx=8, dy=-8).encode(text="scenario:N")
    return (points + labels).properties(title="Saved scenarios: cost vs time-to-result", height=300)


def pareto_module() -> ModuleType | None:
    """``optimizer.pareto`` (cost vs speed frontier, issue 4) if it exists in this installation."""
    try:
        return importlib.import_module("optimizer.pareto")
    except ImportError:
        return None


def sweep_key(settings: A.PlannerSettings) -> A.PlannerSettings:
    """The settings the sweep depends on (it routes at every speed priority itself; budget, caps, cost of capital,
    laddering, risk and whether the plan is rightsized do not enter)."""
    return dataclasses.replace(settings, speed_priority=0.0, budget_usd=None, max_obligation_usd=None,
                               cost_of_capital=A.DEFAULT_COST_OF_CAPITAL, rightsize=False, ladder=False,
                               cvar_weight=0.0)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_sweep(key: A.PlannerSettings, steps: int = SWEEP_STEPS):
    """Cost vs completion time of the window's training backlog for ``steps`` speed priorities (optimizer.pareto).

    The backlog is the cached forecast's mean over the plan window with the scenario's planned events and
    growth (organisation and per team) applied, in GPUs per hour; spot policy and commitment options come
    from the settings. Returns ``optimizer.pareto.ParetoResult`` or None when the module is not installed.
    """
    module = pareto_module()
    if module is None:
        return None
    usage = A.cached_usage(key.sample)
    fc = A.planned_forecast(key.forecast_settings)
    config = key.plan_config(A.window_start(usage))
    demand = fc[(fc[S.TIMESTAMP] >= config.start) & (fc[S.TIMESTAMP] < config.end)].copy()
    factor = (1.0 + key.growth) * demand[S.TEAM].map(dict(key.team_growth)).fillna(0.0).add(1.0)
    demand[S.MEAN] = demand[S.MEAN] * factor.to_numpy()
    catalog = A.cached_catalog()
    return module.sweep(demand, A.workloads_for(key.sample), catalog, config, steps=steps, value_column=S.MEAN)


def time_at(points: pd.DataFrame, speed_priority: float) -> float:
    """Mean completion time (h) of the sweep's routing at ``speed_priority``: the point with the largest
    swept priority not above it (each point is listed at the smallest priority that gives its routing)."""
    below = points[points["speed_priority"] <= speed_priority + 1e-9].sort_values("speed_priority")
    row = below.iloc[-1] if not below.empty else points.sort_values("speed_priority").iloc[0]
    return float(row["completion_hours"])


def time_to_result(settings: A.PlannerSettings, result: PlanResult) -> float:
    """A scenario's time-to-result (h) on the GPU models its plan uses.

    Rightsized: the backlog-weighted mean completion time of the plan's routing (``optimizer.pareto``'s formula:
    each batch unit keeps its GPU count, its work runs at the routed model's speed, stretched by spot rework), so
    it equals the cost-vs-speed sweep's point at the same speed priority. Not rightsized: the window's hours (the
    work on today's GPUs) stretched by the plan's spot rework (:func:`app.whatif_model.spot_time_overhead`).

    Raises:
        PlanningError: the rightsized demand has no batch work (every class is latency-bound).
    """
    routing = A.cached_routing(settings)
    if routing is None:
        return settings.hours * (1.0 + spot_time_overhead(result))
    table = routing.table
    batch = table[~table[R.LATENCY_BOUND].astype(bool) & (table[R.REF_HOURS] > 0) & (table[R.FLEET_GPUS] > 0)]
    if batch.empty:
        raise PlanningError("no batch work to time: every routed class is latency-bound")
    units = _unit_outcome(table, batch[[R.TEAM, R.CLASS]])
    return float(np.average(units["hours"], weights=units[R.REF_HOURS]))


# --- sections -------------------------------------------------------------------------------------
def save_section(db: St.Store, settings: A.PlannerSettings, acc: Ro.Access = Ro.LOCAL) -> None:
    st.header("Save the current plan")
    if not Ro.can_save(acc):
        st.caption(fmt.plain(f"Read-only for {acc.role}: saving and deleting scenarios is the platform team's "
                             "(roles file)."))
        return
    origin = "the What-if page" if isinstance(st.session_state.get(A.WHATIF_KEY), A.PlannerSettings) else \
        "the base scenario (open What-if to change it)"
    st.caption(f"Current settings, from {origin}, with the data and window of the sidebar:")
    shown = settings_rows(St.settings_dict(settings))
    view.table(pd.DataFrame({"Setting": list(shown), "Value": list(shown.values())}))
    with st.form("save_scenario", clear_on_submit=False, border=False):
        c1, c2 = st.columns([2, 3])
        name = c1.text_input("Scenario name", key=NAME_KEY, max_chars=St.MAX_NAME_LENGTH,
                             placeholder="e.g. base +20% growth", help=HELP_SAVE)
        note = c2.text_input("Note (optional)", key=NOTE_KEY, placeholder="why this scenario, who asked")
        replace = st.checkbox("Replace a scenario of the same name", key=REPLACE_KEY)
        submitted = st.form_submit_button("Save scenario", icon=":material/save:", type="primary")
    if not submitted:
        return
    with st.spinner("Planning the current settings (the forecast is cached after its first run)..."):
        result = A.guarded(lambda: A.cached_plan(settings))
    if result is None:
        return
    ttr = None
    try:
        ttr = time_to_result(settings, result)
    except A.USER_ERRORS as exc:  # e.g. no batch work to time: save without a time-to-result, and say why
        st.caption(fmt.plain(f"Saved without a time-to-result: {exc}"))
    except Exception as exc:  # noqa: BLE001 - the speed estimate must never block saving the plan
        log.exception("cost-vs-speed sweep failed")
        st.caption(fmt.plain(f"Saved without a time-to-result ({exc.__class__.__name__}: {exc})."))
    saved = A.guarded(lambda: db.save(name, settings, result.plan, data_source=A.data_source_provenance(
        settings.sample), note=note, overwrite=replace, time_to_result_hours=ttr, actor=acc.user))
    if saved is not None:
        st.session_state[SAVED_KEY] = saved.name
        st.success(fmt.plain(f"Saved scenario '{saved.name}': expected cost {fmt.usd(saved.summary.expected_usd)}, "
                             f"savings {fmt.usd(saved.summary.savings_usd)} vs all on-demand."),
                   icon=":material/check:")


def listing_table(listing: pd.DataFrame) -> pd.DataFrame:
    """The saved scenarios as the page lists them; a plan without commitments reads "no commitments" under
    utilisation (its utilisation is undefined, never "None")."""
    util = [fmt.pct(u).removesuffix(" %") if n and not pd.isna(u) else "no commitments"
            for u, n in zip(listing["commitment_utilization"], listing["commitments"], strict=True)]
    return pd.DataFrame({
        "Scenario": listing["name"], "Expected cost (USD)": listing["expected_usd"],
        "p10-p90 cost (USD)": [None if pd.isna(a) or pd.isna(b) else f"{fmt.cell(a, 'usd')} - {fmt.cell(b, 'usd')}"
                               for a, b in zip(listing["p10_usd"], listing["p90_usd"], strict=True)],
        "Savings (USD)": listing["savings_usd"], "Savings (%)": listing["savings_pct"],
        "Upfront cash (USD)": listing["upfront_usd"], "Utilisation (%)": util,
        "Time-to-result (h)": listing["time_to_result_hours"], "Instances committed": listing["commitments"],
        "Data source": listing["data_source"], "Saved (UTC)": listing["saved_at"], "Note": listing["note"]})


def list_section(db: St.Store, listing: pd.DataFrame, acc: Ro.Access = Ro.LOCAL) -> None:
    st.header("Saved scenarios")
    st.caption(fmt.plain(f"{len(listing)} saved in {db.location} ({db.kind}; set GPUPLAN_STORE to use another store)."))
    if listing.empty:
        st.info("No scenarios saved yet: save the current plan above, change settings on What-if, save again.")
        return
    view.table(listing_table(listing), kinds={
        "Expected cost (USD)": "usd", "Savings (USD)": "usd",
        "Savings (%)": "pct100", "Upfront cash (USD)": "usd", "Time-to-result (h)": "hours",
        "Instances committed": "count", "Saved (UTC)": "datetime"},
        missing={"Time-to-result (h)": "not timed", "Note": "", "p10-p90 cost (USD)": "not estimated"})
    names = listing["name"].tolist()
    c1, c2 = st.columns(2)
    with c1:
        pick = st.selectbox("Scenario", names, key=APPLY_KEY, help="Reload a saved scenario: its settings become "
                            "the What-if settings (and the Plan page's), its plan.json can be downloaded.")
        b1, b2 = st.columns(2)
        if b1.button("Load into What-if", icon=":material/upload:"):
            sc = A.guarded(lambda: db.load(pick))
            loaded = None if sc is None else A.guarded(lambda: A.settings_from_saved(sc.settings))
            if loaded is not None:
                settings, notes = loaded
                st.session_state[A.WHATIF_KEY] = settings
                st.success(f"Loaded '{fmt.plain(pick)}': What-if and Plan now use its settings.",
                           icon=":material/check:")
                for note in notes:
                    st.info(fmt.plain(f"Saved by an older planner: {note}."), icon=":material/info:")
        sc = A.guarded(lambda: db.load(pick)) if acc.teams is None else None  # every team's routing and settings
        if sc is not None:
            b2.download_button("Download its plan.json", data=sc.plan.to_json(), file_name=f"plan_{pick}.json",
                               mime="application/json", on_click="ignore", icon=":material/download:")
    if not Ro.can_save(acc):
        return
    with c2:
        doomed = st.selectbox("Delete a scenario", names, key=DELETE_KEY, index=None, placeholder="choose one")
        if st.button("Delete", icon=":material/delete:", disabled=doomed is None) and doomed is not None:
            if A.guarded(lambda: db.delete(doomed, actor=acc.user)):
                st.session_state.pop(DELETE_KEY, None)
                st.rerun()


def compare_section(db: St.Store, names: list[str], hidden: frozenset[str] = frozenset()) -> None:
    st.header("Compare side by side")
    if len(names) < 2:
        st.info("Save at least two scenarios to compare them.")
        return
    chosen = st.session_state.get(COMPARE_KEY)
    if chosen is None or any(n not in names for n in chosen):
        st.session_state[COMPARE_KEY] = [n for n in (chosen or []) if n in names] or names[:2][::-1]
    picked = st.multiselect("Scenarios (2 to 4)", names, key=COMPARE_KEY, max_selections=MAX_COMPARE,
                            help=HELP_COMPARE)
    if len(picked) < 2:
        st.info("Pick at least two scenarios.")
        return
    scenarios = [s for s in (A.guarded(lambda n=n: db.load(n)) for n in picked) if s is not None]
    if len(scenarios) < 2:
        return
    cols = st.columns(len(scenarios))
    base = scenarios[0].summary.expected_usd
    for col, s in zip(cols, scenarios, strict=True):
        with col, st.container(border=True):
            st.subheader(fmt.plain(s.name))
            # the sign leads (Streamlit colours the delta by it); the name is plain text
            delta = view.metric_delta(None if s is scenarios[0] else s.summary.expected_usd - base,
                                      f" vs {fmt.plain(scenarios[0].name)}")
            st.metric("Expected cost (USD)", fmt.usd(s.summary.expected_usd), **delta, help=fmt.term("p10_p90"))
            st.metric("Risk: p10-p90 (USD)", fmt.usd_range(s.summary.p10_usd, s.summary.p90_usd),
                      help=f"{fmt.term('p10_p90')} Exactly: {fmt.usd(s.summary.p10_usd)} to "
                           f"{fmt.usd(s.summary.p90_usd)}.")
            st.metric("Time-to-result (h)", fmt.hours(s.summary.time_to_result_hours), help=HELP_TTR)
            st.metric("Savings vs all on-demand (USD)", fmt.usd(s.summary.savings_usd),
                      delta=f"{s.summary.savings_pct:.1f} %")
            st.metric("Upfront cash (USD)", fmt.usd(s.summary.upfront_usd), help=fmt.term("upfront"))
            st.markdown("**What to buy**\n" + "\n".join(f"- {fmt.plain(line)}" for line in what_to_buy(s.plan)))
            if s.note:
                st.caption(fmt.plain(s.note))
    st.altair_chart(cost_chart(scenarios), width="stretch")
    compared = Ro.without_hidden(comparison_table(scenarios).reset_index(), hidden)  # e.g. other teams' growth
    view.table(compared, labels={c: str(c) for c in compared.columns})  # scenario names shown as saved
    st.caption("Risk is the plan's cost when demand comes in at the forecast's p10 (low) or p90 (high). Inputs are "
               "the settings each scenario was saved with; expected cost weights the demand scenarios equally.")


def pareto_section(settings: A.PlannerSettings, scenarios: list[St.Scenario]) -> None:
    st.header("Cost vs speed (leadership)")
    if pareto_module() is None:
        st.info("The cost-vs-speed Pareto frontier appears here once the optimizer's frontier (optimizer.pareto, "
                "purchase optimizer issue, item 5) is installed.")
    else:
        with st.spinner("Sweeping speed priority from cheapest to fastest GPU routing..."):
            result = A.guarded(lambda: cached_sweep(sweep_key(settings)))
        if result is not None:
            frontier_view(result, settings)
    chart = scenario_speed_chart(scenarios)
    if chart is not None:
        st.altair_chart(chart, width="stretch")
        st.caption("Each saved scenario's expected plan cost (all demand) against its backlog's time-to-result.")


def frontier_view(result, settings: A.PlannerSettings) -> None:
    """The sweep's chart, the frontier table and where the current speed priority sits."""
    points = result.points
    total = float(result.backlog["reference_gpu_hours"].sum())
    st.altair_chart(charts.pareto_chart(points), width="stretch")
    here = time_at(points, settings.speed_priority)
    row = points.loc[points["completion_hours"] == here].iloc[0]
    st.caption(f"What spending more buys: the training backlog of the plan window ({total:,.0f} A100-equivalent "
               f"GPU-hours from the forecast mean, {len(result.backlog)} team x workload units, each keeping its "
               f"current GPU count) routed to GPU types from cheapest (speed priority 0 %) to fastest (100 %). On "
               f"today's GPUs it takes {result.window_hours:,} h. "
               + (f"The current plan is rightsized at speed priority {fmt.pct(settings.speed_priority, 0)}: "
                  f"{fmt.usd(row['cost_usd'])}, mean completion {fmt.hours(row['completion_hours'])}, GPU mix "
                  f"{row['gpu_mix']}. " if settings.rightsize else
                  "The current plan keeps today's GPU models (switch on rightsizing on the What-if page to move "
                  "along this curve). ") + HELP_TTR)
    frontier = result.frontier
    view.table(pd.DataFrame({
        "Speed priority (%)": 100.0 * frontier["speed_priority"], "Backlog cost (USD)": frontier["cost_usd"],
        "Mean completion (h)": frontier["completion_hours"], "Makespan (h)": frontier["makespan_hours"],
        "GPU mix (share of work)": frontier["gpu_mix"]}), kinds={"Speed priority (%)": "count",
                                                                  "Mean completion (h)": "hours",
                                                                  "Makespan (h)": "hours"})


def render() -> None:
    """Draw the Scenarios page."""
    st.title("Scenarios")
    st.caption("Save plans under a name, compare them side by side, and see what spending more or less buys.")
    fs = sidebar.data_settings()
    acc = sidebar.access()
    settings = sidebar.plan_settings(fs)
    db = A.guarded(store)
    if db is None:
        return
    save_section(db, settings, acc)
    listing = A.guarded(db.list)
    if listing is None:
        return
    hidden = Ro.hidden_teams(A.cached_facts(fs.sample).teams, acc) if acc.teams is not None else frozenset()
    if hidden:  # an engineer: no scenario whose name or note names another team
        listing = Ro.without_hidden(listing, hidden).reset_index(drop=True)
    list_section(db, listing, acc)
    names = listing["name"].tolist()
    compare_section(db, names, hidden)
    picked = [n for n in st.session_state.get(COMPARE_KEY, []) if n in names] or names[:MAX_COMPARE]
    loaded = [s for s in (A.guarded(lambda n=n: db.load(n)) for n in picked) if s is not None]
    pareto_section(settings, loaded)
    if acc.teams is None:  # every team's settings (per-team growth, events)
        with st.expander("Stored inputs of the compared scenarios (JSON)"):
            st.code(json.dumps({s.name: s.settings for s in loaded}, indent=2), language="json")
