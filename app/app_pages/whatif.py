"""What-if page: the levers of a plan (demand growth for the organisation and per team, spot price, interruption
rate and share, commitment terms and payment options, maximum commitment (the obligation over the full terms),
cost of capital, budget, speed priority, planned events) and the plan's figures with their change against the base
scenario (cost inside the window, obligation after the window, total obligation, upfront cash, present value),
re-planned on every change.

Widgets -> one frozen :class:`app.state.PlannerSettings` (stored under ``WHATIF_KEY`` for the Plan and
Forecast pages) -> :func:`app.state.cached_plan`; the base scenario's plan is cached, so a change runs the
optimizer once. Units: USD, USD/h, GPUs, percent where marked.
"""

from __future__ import annotations

import streamlit as st

from app import charts, fmt, sidebar, view
from app import plan_frames as PF
from app import plan_state as PS
from app import roles as R
from app import state as A
from app.whatif_model import commitment_options, plan_deltas
from forecasting.samples import data_dir
from optimizer.catalog import INTERRUPTION_BUCKETS
from optimizer.inputs import DEFAULT_COST_OF_CAPITAL
from optimizer.options import PAYMENTS, TERMS
from optimizer.solve import PlanResult

CATALOG = "catalog"
SPOT_DISCOUNTS = (CATALOG, 40, 50, 60, 70, 80, 90)
INTERRUPTIONS = (CATALOG, *INTERRUPTION_BUCKETS)
UPLOAD, FROM_LOADED = "Upload a file", "From the loaded scenario"
"""The file inputs' (:func:`file_input`) choices of an upload and of the file a loaded scenario brought."""
EVENTS_NONE, EVENTS_EXAMPLE, EVENTS_UPLOAD = "No events", "Shipped example (synthetic sample)", UPLOAD
EVENTS_LOADED = FROM_LOADED
EXAMPLE_EVENTS = "events_sample.yaml"
OWNED_NONE, OWNED_UPLOAD, OWNED_LOADED = "No owned commitments", UPLOAD, FROM_LOADED
# upfront payment options as the multiselect's tags (its label says "upfront"; three short tags fit the column;
# no bare string here: Streamlit's magic would draw it on this file page)
PAYMENT_LABELS = {"no": "none", "partial": "partial", "all": "all"}
TERM_LABELS = {"1y": "1 year", "3y": "3 years"}

HELP_GROWTH = ("Demand growth applied to every team's forecast (each sample path is multiplied by 1 + growth) "
               "before planning. " + fmt.term("commitment"))
HELP_TEAMS = "Teams that grow (or shrink) on top of the organisation's growth."
HELP_TEAM_GROWTH = "Extra growth of the selected teams, on top of the organisation's growth (multiplied)."
HELP_ALLOW_SPOT = ("Let fault-tolerant, checkpointed training run on spot. Latency-bound inference should not; "
                   "switch off to plan with commitments and on-demand only. " + fmt.term("spot"))
HELP_SPOT = ("At most this share of each GPU model's GPU-hours may run on spot, in every demand scenario. "
             + fmt.term("rework"))
HELP_DISCOUNT = ("Spot price as a discount on the same instance's on-demand price (70 = 70% off). 'catalog' uses the "
                 "spot prices of the price snapshot.")
HELP_INTERRUPT = ("Monthly interruption rate of spot capacity (AWS's buckets). A higher rate means more rework, so "
                  "spot costs more per useful GPU-hour and work takes longer. 'catalog' uses each type's bucket.")
HELP_TERMS = "Commitment terms the plan may buy (none selected = no commitments). " + fmt.term("break_even")
HELP_PAYMENTS = "Payment options the plan may buy. " + fmt.term("upfront")
HELP_MAX_OBLIGATION = ("The maximum commitment: cap on what the new commitments owe over their full terms, upfront "
                       "plus every recurring hour, in USD (0 = no cap); the same meaning as `gpuplan plan "
                       "--max-obligation-usd` and policy.yaml's max_commitment. The plan buys at most this much; the "
                       "rest runs on spot and on-demand. " + fmt.term("obligation"))
HELP_COST_OF_CAPITAL = ("Your finance team's annual rate for money tied up (default 10%/year): every payment is "
                        "discounted to the window start at it, so it decides upfront vs no-upfront and 1-year vs "
                        "3-year (0% = cash now and later weigh the same: all-upfront wins; a high rate favours "
                        "paying later). " + fmt.term("cost_of_capital"))
HELP_BUDGET = ("Budget for the window's expected cost in USD (0 = none). The optimizer must stay within it; when no "
               "plan can, the page names the smallest budget that works.")
HELP_RIGHTSIZE = ("Route each team's work to the GPU model that serves it best before buying (as `gpuplan plan "
                  "--workloads`): only models whose instances fit the team's workload class (GPU memory, GPUs per "
                  "job, interconnect) are considered, work is converted by relative throughput (A100 = 1), and "
                  "latency-bound classes never run on spot. Off = plan on the GPU models the teams use today. The "
                  "Plan page lists each team's routing and the reason.")
HELP_SPEED = ("How much time-to-result matters when rightsizing: each team goes to the GPU model minimising "
              "cost^(1 - w) x time^w per A100-hour of work (time includes spot rework). 0% = cheapest feasible "
              "model, 100% = fastest. Needs 'Rightsize GPU models' on.")
HELP_NO_SPOT = ("GPU models whose work must not run on spot (e.g. the inference fleet: latency-bound serving "
                "cannot wait for capacity to come back). Their spot share is 0 whatever the maximum says.")
HELP_LADDER = ("Let the plan start commitments in any calendar month of the horizon (laddering) instead of buying "
               "everything at the window start: growing demand gets its commitments when it arrives. Only the first "
               "month's purchases are firm; later ones are tentative, re-decided on that month's forecast. "
               + fmt.term("firm"))
HELP_CVAR = ("How much the plan weighs bad outcomes: it minimises the expected present value + weight x CVaR90 (the "
             "average present value of the worst 10% of demand scenarios over the commitment terms). 0 = expected "
             "present value only; higher buys protection against high demand at some expected cost.")
HELP_EVENTS = ("Known future changes of demand (a new project, a launch, a wind-down) applied to every demand "
               "scenario before planning; see data_samples/events_sample.yaml for the format.")
HELP_OWNED = ("Reserved instances and savings plans you already own, in the format of `gpuplan plan --existing`: "
              "CSV or YAML with instance_type, option, count, start, expiry per reserved instance, and option, "
              "commitment_usd_per_hour, start, expiry (instance_family for an EC2 Instance SP) per savings plan. "
              "`gpuplan commitments --billing CUR --existing-out owned.csv` writes it from a billing export. The "
              "plan uses them first, bills them in their active hours and never buys them again.")


def _init(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def reset() -> None:
    """Back to the base scenario: drop every What-if widget value."""
    for key in A.WHATIF_KEYS:
        st.session_state.pop(key, None)
    st.session_state.pop(A.WHATIF_KEY, None)
    st.session_state.pop(A.EVENTS_LOADED_KEY, None)
    st.session_state.pop(A.OWNED_LOADED_KEY, None)


def apply_settings(s: A.PlannerSettings) -> None:
    """Move the widgets to settings made elsewhere (a scenario loaded on the Scenarios page)."""
    ss = st.session_state
    if s.sample in A.data_source_options():
        ss[A.DATA_SOURCE_KEY] = s.sample
    ss[A.HOURS_KEY] = min(max(int(s.hours), A.MIN_HOURS), A.MAX_HOURS)
    ss[A.GROWTH_KEY] = int(round(100 * s.growth))
    ss[A.TEAM_GROWTH_TEAMS_KEY] = [t for t, _ in s.team_growth]
    ss[A.TEAM_GROWTH_KEY] = int(round(100 * s.team_growth[0][1])) if s.team_growth else 0
    ss[A.ALLOW_SPOT_KEY] = bool(s.allow_spot)
    ss[A.SPOT_SHARE_KEY] = int(round(100 * s.max_spot_share))
    ss[A.SPOT_DISCOUNT_KEY] = (CATALOG if s.spot_discount is None
                               else min(SPOT_DISCOUNTS[1:], key=lambda d: abs(d - 100 * s.spot_discount)))
    ss[A.INTERRUPTION_KEY] = s.interruption_bucket or CATALOG
    ss[A.TERMS_KEY] = [t for t in TERMS if any(f"_{t}_" in o for o in s.options)]
    ss[A.PAYMENTS_KEY] = [p for p in PAYMENTS if any(f"_{p}_upfront" in o for o in s.options)]
    ss[A.MAX_OBLIGATION_KEY] = float(s.max_obligation_usd or 0.0)
    ss[A.COST_OF_CAPITAL_KEY] = round(100.0 * float(s.cost_of_capital), 4)
    ss[A.BUDGET_KEY] = float(s.budget_usd or 0.0)
    ss[A.SPEED_KEY] = int(round(100 * s.speed_priority))
    ss[A.RIGHTSIZE_KEY] = bool(s.rightsize)
    ss[A.LADDER_KEY] = bool(s.ladder)
    ss[A.NO_SPOT_MODELS_KEY] = list(s.no_spot_models)
    ss[A.CVAR_KEY] = round(float(s.cvar_weight), 1)
    if s.events_name == EXAMPLE_EVENTS:
        ss[A.EVENTS_SOURCE_KEY] = EVENTS_EXAMPLE
    elif s.events_text:
        ss[A.EVENTS_LOADED_KEY] = (s.events_name, s.events_text)
        ss[A.EVENTS_SOURCE_KEY] = EVENTS_LOADED
    else:
        ss[A.EVENTS_SOURCE_KEY] = EVENTS_NONE
    if s.owned_text:
        ss[A.OWNED_LOADED_KEY] = (s.owned_name, s.owned_text)
    ss[A.OWNED_SOURCE_KEY] = OWNED_LOADED if s.owned_text else OWNED_NONE


def events_input(source: str) -> tuple[str, str]:
    """The planned-events widgets: ``(file name, text)`` ("" = no events)."""
    options = (EVENTS_NONE, EVENTS_EXAMPLE, EVENTS_UPLOAD) if source == "synthetic" else (EVENTS_NONE, EVENTS_UPLOAD)
    name, text = file_input("Planned events", options, A.EVENTS_SOURCE_KEY, A.EVENTS_LOADED_KEY,
                            ("Events file (.yaml, .yml, .csv)", ["yaml", "yml", "csv"], A.EVENTS_FILE_KEY),
                            HELP_EVENTS)
    if st.session_state.get(A.EVENTS_SOURCE_KEY) == EVENTS_EXAMPLE:
        return EXAMPLE_EVENTS, (data_dir() / EXAMPLE_EVENTS).read_text(encoding="utf-8")
    return name, text


def owned_input() -> tuple[str, str]:
    """The owned-commitments widgets: ``(file name, text)`` ("" = none owned)."""
    return file_input("Owned commitments", (OWNED_NONE, OWNED_UPLOAD), A.OWNED_SOURCE_KEY, A.OWNED_LOADED_KEY,
                      ("Owned commitments file (.csv, .yaml, .yml)", ["csv", "yaml", "yml"], A.OWNED_FILE_KEY),
                      HELP_OWNED)


def file_input(label: str, options: tuple[str, ...], source_key: str, loaded_key: str,
               upload: tuple[str, list[str], str], help_text: str, *, horizontal: bool = False) -> tuple[str, str]:
    """A radio of where a settings file comes from (``options``, with "From the loaded scenario" when a loaded
    scenario brought one) and its uploader: ``(file name, text)`` of the upload or the loaded file, else
    ``("", "")``."""
    loaded = st.session_state.get(loaded_key)
    if loaded:
        options = (*options, FROM_LOADED)
    if st.session_state.get(source_key) not in options:
        st.session_state[source_key] = options[0]
    choice = st.radio(label, options, key=source_key, help=help_text, horizontal=horizontal)
    if choice == FROM_LOADED and loaded:
        st.caption(f"{label} of the loaded scenario: {fmt.plain(loaded[0])}")
        return loaded
    if choice == UPLOAD:
        upload_label, types, key = upload
        file = st.file_uploader(upload_label, type=types, key=key)
        if file is not None:
            return file.name, file.getvalue().decode("utf-8", errors="replace")
    return "", ""


def settings(fs: A.ForecastSettings, teams: list[str], gpu_types: list[str]) -> A.PlannerSettings:
    """The What-if widgets as one frozen settings object."""
    for key, value in ((A.GROWTH_KEY, 0), (A.TEAM_GROWTH_TEAMS_KEY, []), (A.TEAM_GROWTH_KEY, 0),
                       (A.ALLOW_SPOT_KEY, True), (A.SPOT_SHARE_KEY, 30), (A.SPOT_DISCOUNT_KEY, CATALOG),
                       (A.INTERRUPTION_KEY, CATALOG), (A.TERMS_KEY, ["1y"]), (A.PAYMENTS_KEY, list(PAYMENTS)),
                       (A.MAX_OBLIGATION_KEY, 0.0), (A.COST_OF_CAPITAL_KEY, 100.0 * DEFAULT_COST_OF_CAPITAL),
                       (A.BUDGET_KEY, 0.0), (A.SPEED_KEY, 0), (A.LADDER_KEY, False),
                       (A.NO_SPOT_MODELS_KEY, []), (A.CVAR_KEY, 0.0), (A.RIGHTSIZE_KEY, False)):
        _init(key, value)
    st.session_state[A.TEAM_GROWTH_TEAMS_KEY] = [t for t in st.session_state[A.TEAM_GROWTH_TEAMS_KEY] if t in teams]
    st.session_state[A.NO_SPOT_MODELS_KEY] = [g for g in st.session_state[A.NO_SPOT_MODELS_KEY] if g in gpu_types]

    st.subheader("Demand")
    growth = st.slider("Organisation demand growth (%)", -50, 100, step=5, key=A.GROWTH_KEY, format="%d%%",
                       help=HELP_GROWTH)
    picked = st.multiselect("Teams with their own growth", teams, key=A.TEAM_GROWTH_TEAMS_KEY, help=HELP_TEAMS)
    team_growth = st.slider("Extra growth of those teams (%)", -100, 300, step=10, key=A.TEAM_GROWTH_KEY,
                            format="%d%%", help=HELP_TEAM_GROWTH, disabled=not picked)
    events_name, events_text = events_input(fs.sample)
    for line in A.events_not_seen(fs.sample, events_name, events_text):   # a run dated before it began
        st.warning(fmt.plain(line.removeprefix("warning: ")))

    st.subheader("Spot")
    allow_spot = st.checkbox("Allow spot", key=A.ALLOW_SPOT_KEY, help=HELP_ALLOW_SPOT)
    spot = st.slider("Maximum spot share (%)", 0, 100, step=5, key=A.SPOT_SHARE_KEY, format="%d%%", help=HELP_SPOT,
                     disabled=not allow_spot)
    discount = st.select_slider("Spot discount vs on-demand (%)", SPOT_DISCOUNTS, key=A.SPOT_DISCOUNT_KEY,
                                help=HELP_DISCOUNT, disabled=not allow_spot)
    bucket = st.select_slider("Spot interruption rate (monthly)", INTERRUPTIONS, key=A.INTERRUPTION_KEY,
                              help=HELP_INTERRUPT, disabled=not allow_spot)
    no_spot = st.multiselect("GPU models kept off spot", gpu_types, key=A.NO_SPOT_MODELS_KEY, help=HELP_NO_SPOT,
                             disabled=not allow_spot)

    st.subheader("GPU models and speed")
    rightsize = st.checkbox("Rightsize GPU models per team", key=A.RIGHTSIZE_KEY, help=HELP_RIGHTSIZE)
    speed = st.slider("Speed priority (%)", 0, 100, step=10, key=A.SPEED_KEY, format="%d%%", help=HELP_SPEED,
                      disabled=not rightsize)
    if rightsize:
        st.caption(f"Workload classes: {A.workloads_label(fs.sample)}.")

    st.subheader("Commitments and money")
    terms = st.multiselect("Allowed terms", list(TERMS), key=A.TERMS_KEY, format_func=TERM_LABELS.get,
                           help=HELP_TERMS)
    payments = st.multiselect("Allowed upfront payment", list(PAYMENTS), key=A.PAYMENTS_KEY,
                              format_func=PAYMENT_LABELS.get, help=HELP_PAYMENTS)
    max_obligation = st.number_input("Maximum commitment (obligation over the full terms, USD)", min_value=0.0,
                                     step=100_000.0, key=A.MAX_OBLIGATION_KEY, help=HELP_MAX_OBLIGATION)
    cost_of_capital = st.number_input("Cost of capital (%/year)", min_value=0.0, max_value=99.0, step=1.0,
                                      key=A.COST_OF_CAPITAL_KEY, help=HELP_COST_OF_CAPITAL)
    budget = st.number_input("Budget for the window (USD)", min_value=0.0, step=10_000.0, key=A.BUDGET_KEY,
                             help=HELP_BUDGET)
    ladder = st.checkbox("Ladder commitments (monthly starts)", key=A.LADDER_KEY, help=HELP_LADDER)
    owned_name, owned_text = owned_input()
    cvar = st.slider("Risk aversion (CVaR90 weight)", 0.0, 1.0, step=0.1, key=A.CVAR_KEY, help=HELP_CVAR)
    st.button("Reset to the base scenario", on_click=reset, icon=":material/restart_alt:")
    return A.PlannerSettings(
        sample=fs.sample, hours=fs.hours, growth=growth / 100.0, max_spot_share=spot / 100.0,
        allow_spot=bool(allow_spot),
        team_growth=tuple((t, team_growth / 100.0) for t in sorted(picked)) if team_growth else (),
        options=commitment_options(tuple(terms), tuple(payments)),
        spot_discount=None if discount == CATALOG else float(discount) / 100.0,
        interruption_bucket=None if bucket == CATALOG else str(bucket),
        speed_priority=speed / 100.0 if rightsize else 0.0,
        max_obligation_usd=float(max_obligation) or None, cost_of_capital=float(cost_of_capital) / 100.0,
        budget_usd=float(budget) or None,
        events_name=events_name, events_text=events_text, ladder=bool(ladder), owned_name=owned_name,
        owned_text=owned_text,
        no_spot_models=tuple(sorted(no_spot)) if allow_spot else (), cvar_weight=float(cvar),
        rightsize=bool(rightsize))


def render() -> None:
    """Draw the What-if page."""
    st.title("What-if: change the assumptions, see the plan move")
    loaded = st.session_state.get(A.WHATIF_KEY)
    if isinstance(loaded, A.PlannerSettings) and loaded != st.session_state.get(A.WHATIF_OWN_KEY):
        apply_settings(loaded)  # before any widget is drawn: a scenario was loaded on the Scenarios page
    data = sidebar.window_data()
    if data is None:
        return
    fs = data[0]
    controls, results = st.columns([1, 2], gap="large")
    with controls:
        facts = A.cached_facts(fs.sample)
        teams = R.visible_teams(facts.teams, sidebar.access())  # an engineer sets growth for their own teams only
        s = A.guarded(lambda: settings(fs, teams, list(facts.gpu_types)))
    if s is None:
        return
    st.session_state[A.WHATIF_KEY] = st.session_state[A.WHATIF_OWN_KEY] = s
    base = sidebar.base_settings(fs)
    st.session_state.pop(A.PLAN_SUMMARY_KEY, None)
    with results:
        with st.spinner("Planning purchases (commitments, spot, on-demand) with HiGHS..."):
            figs = A.guarded(lambda: (PS.cached_figures(base), PS.cached_figures(s), A.cached_plan(s)))
        if figs is None:
            return
        base_figs, cur, result = figs
        st.session_state[A.PLAN_SUMMARY_KEY] = PF.plan_summary(result)
        show_results(s, base_figs, cur, result)


_delta = view.metric_delta


def show_results(s: A.PlannerSettings, base: dict[str, float | None], cur: dict[str, float | None],
                 result: PlanResult) -> None:
    """Figures with their deltas vs the base scenario (the cost inside the window, the obligation after the window
    and over the full terms, upfront cash, present value), the cost comparison and what to buy."""
    d = plan_deltas(base, cur)
    term = result.plan.term
    rate = fmt.pct(s.cost_of_capital, 0)
    vs_base = (" The delta is against the base scenario (no growth, spot up to 30%, 1-year options, catalog prices, "
               f"no events, cost of capital {fmt.pct(DEFAULT_COST_OF_CAPITAL, 0)}/year).")
    c1, c2 = st.columns(2)
    c1.metric("Expected cost in the window (USD)", fmt.usd(cur["expected_usd"]), **_delta(d["expected_usd"]),
              help="Expected cost of the what-if plan inside the plan window (commitments at their effective "
                   "hourly rate, spot and on-demand)." + vs_base + " " + fmt.term("horizon"))
    c2.metric("Cost range p10-p90 in the window (USD)", fmt.usd_range(cur["p10_usd"], cur["p90_usd"]),
              **_delta(d["p90_usd"], " at p90"),
              help=f"{fmt.term('p10_p90')} Exactly: {fmt.usd(cur['p10_usd'])} to {fmt.usd(cur['p90_usd'])}.")
    c3, c4 = st.columns(2)
    c3.metric("Obligation after the window (USD)", fmt.usd(cur["obligation_after_window_usd"]),
              **_delta(d["obligation_after_window_usd"]),
              help="What the new commitments still owe after the window, used or not: their full-term obligation "
                   "minus their cost inside the window." + vs_base + " " + fmt.term("obligation"))
    c4.metric("Total obligation over the terms (USD)", fmt.usd(cur["obligation_total_usd"]),
              **_delta(d["obligation_total_usd"]),
              help="Upfront plus every recurring hour of the new commitments over their full terms: the amount the "
                   "maximum commitment caps." + vs_base + " " + fmt.term("term"))
    c5, c6 = st.columns(2)
    c5.metric("Upfront cash (USD)", fmt.usd(cur["upfront_usd"]), **_delta(d["upfront_usd"]),
              help=fmt.term("upfront") + vs_base)
    pv_help = ("Every payment over the horizon discounted to the window start at this plan's cost of capital; what "
               "the optimizer minimises. The base scenario's present value is at its own rate, so a cost-of-capital "
               "change moves the delta by the rate as well as by the plan." + vs_base + " "
               + fmt.term("cost_of_capital"))
    if term is None:
        c6.metric(f"Present value at {rate}/year (USD)", "judged on the window alone", help=pv_help
                  + " No commitment options are allowed, so no term runs past the window.")
    else:
        c6.metric(f"Present value at {rate}/year (USD)", fmt.usd(cur["present_value_usd"]),
                  **_delta(d["present_value_usd"]),
                  help=pv_help + f" Horizon: to {term.horizon_end:%Y-%m-%d}.")
    c7, c8 = st.columns(2)
    c7.metric("Savings vs all on-demand in window (USD)", fmt.usd(cur["savings_usd"]),
              **_delta(d["savings_usd"], better="higher"),
              help="All-on-demand cost of the same demand minus the plan's expected cost, inside the window. "
                   + fmt.term("on_demand"))
    c8.metric("Committed GPUs", fmt.gpus(cur["committed_gpus"], 0),
              **_delta(d["committed_gpus"], unit=" GPUs", better="neither"),
              help=fmt.term("commitment", "firm"))
    c9, _ = st.columns(2)
    c9.metric("Spot time overhead (%)", fmt.pct(cur["spot_time_overhead"], 2),
              **_delta(None if d["spot_time_overhead"] is None else 100.0 * d["spot_time_overhead"], unit=" %",
                      decimals=2),
              help="Extra wall-clock work from spot interruptions: spot share of GPU-hours x rework. "
                   + fmt.term("rework"))
    if s.budget_usd is not None:
        over = cur["expected_usd"] - s.budget_usd
        text = (f"Expected cost in the window {fmt.usd(cur['expected_usd'])} is {fmt.usd(abs(over))} "
                f"{'over' if over > 0 else 'under'} the budget of {fmt.usd(s.budget_usd)}; at p90 "
                f"{fmt.usd(cur['p90_usd'])}.")
        (st.error if over > 0 else st.success)(text, icon=":material/account_balance_wallet:")
    pending = s.pending_fields()
    if pending:
        st.info("Not applied by the optimizer yet (kept in the settings and the saved scenario): "
                + ", ".join(p.replace("_", " ") for p in pending) + ".", icon=":material/info:")
    if result.plan.routing:
        st.caption(PF.routing_caption(result.plan) + " Per-team routing and reasons on the Plan page.")
    st.altair_chart(charts.whatif_chart(PF.category_compare(base, cur)), width="stretch")
    rows = PF.commitments_frame(result.plan)
    st.caption(f"What to buy: {len(rows)} commitment line(s), {fmt.gpus(cur['committed_gpus'], 0)} committed; "
               f"spot {fmt.usd(cur['spot_usd'])}, on-demand {fmt.usd(cur['on_demand_usd'])}, committed "
               f"{fmt.usd(cur['committed_usd'])} (expected). Full tables and downloads on the Plan page.")
    if not rows.empty:
        view.table(rows, kinds=view.COMMITMENT_KINDS,
                   columns=["Status", "Count", "Instance type", "Option", "GPU model", "GPUs", "Window cost (USD)",
                            "Obligation over the term (USD)"])
    assumptions = {
        "growth": fmt.signed_pct(s.growth, 0),
        "team growth": ", ".join(f"{t} {fmt.signed_pct(g, 0)}" for t, g in s.team_growth) or "none",
        "spot": (f"up to {fmt.pct(s.max_spot_share, 0)} of GPU-hours" if s.allow_spot else "not allowed"),
        "spot price": "catalog" if s.spot_discount is None else f"{fmt.pct(s.spot_discount, 0)} off on-demand",
        "interruptions": s.interruption_bucket or "catalog bucket per type",
        "options": ", ".join(s.options) or "no commitments",
        "maximum commitment": ("none" if s.max_obligation_usd is None
                               else f"{fmt.usd(s.max_obligation_usd)} obligation"),
        "cost of capital": f"{rate}/year",
        "events": s.events_name or "none",
        "laddering": "monthly" if s.ladder else "none",
        "kept off spot": ", ".join(s.no_spot_models) or "none",
        "risk weight": f"{s.cvar_weight:g}",
        "GPU models": (f"rightsized at speed priority {fmt.pct(s.speed_priority, 0)}" if s.rightsize
                       else "today's")}
    st.caption("Assumptions: " + fmt.plain("; ".join(f"{k} {v}" for k, v in assumptions.items()) + "."))

if __name__ == "__main__":
    render()
