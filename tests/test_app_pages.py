"""The Overview, Forecast, Plan and What-if pages: AppTest runs of the real app (every page, every widget on
them) plus the pure modules behind them (app.inform, app.whatif_model, app.summary_html, app.fmt).

AppTest runs use the real Helios sample (16 series, forecast in seconds) and a one-week window through the
environment knobs the app honours; nothing in the core is patched. Streamlit's caches live for the test
process, so the forecast is fitted once and the base plan solved once.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import fmt, view
from app import forecast_state as FS
from app import inform as I
from app import plan_frames as PF
from app import plan_state as PS
from app import state as A
from app import whatif_model as W
from app.summary_html import cost_svg, plan_summary_html
from forecasting.engine import ForecastConfig, forecast
from forecasting.events import parse_events
from forecasting.samples import load_sample
from operate.costing import Rates
from optimizer import catalog as C
from optimizer.catalog import load_catalog
from optimizer.inputs import PlanConfig
from optimizer.term import plan_scenarios
from tests.test_app import _toy_history
from usage import schema as S

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
PAGES = {"overview": "app_pages/overview.py", "forecast": "app_pages/forecast.py", "plan": "app_pages/plan.py",
         "whatif": "app_pages/whatif.py"}
UNITS = (" USD", " %", " GPU-hours", " GPUs", "no commitments", "not reported")
EXPECTED = "Expected cost in the window (USD)"


@pytest.fixture
def helios_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def open_page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    if name != "overview":
        ok(at.switch_page(PAGES[name]).run())
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def usd(at: AppTest, label: str) -> float:
    return fmt.parse_usd(metrics(at)[label])


def summary(at: AppTest) -> dict:
    return at.session_state[A.PLAN_SUMMARY_KEY]


def whatif_plan(at: AppTest):
    return A.cached_plan(at.session_state[A.WHATIF_KEY]).plan


# --- every page ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_with_units_and_help(helios_env: None, page: str) -> None:
    at = open_page(page)
    assert at.title[0].value.split(":")[0] in {"Overview", "Forecast", "Plan", "What-if"}
    assert at.metric, "every page shows figures"
    for m in at.metric:
        unitless = {"Series", "Median CV MASE", "Most chosen model", "Break-even month", "Break-even month (projected)"}
        assert m.value.endswith(UNITS) or m.label in unitless, (m.label, m.value)
        assert m.help, f"metric {m.label!r} has no help text"
    assert at.selectbox(key=A.DATA_SOURCE_KEY).value == "helios"
    assert at.number_input(key=A.HOURS_KEY).value == 168


def test_default_page_is_overview_and_sidebar_is_shared(helios_env: None) -> None:
    at = open_page("overview")
    assert at.title[0].value.startswith("Overview")
    at.number_input(key=A.HOURS_KEY).set_value(192)
    ok(at.run())
    ok(at.switch_page(PAGES["plan"]).run())
    assert at.number_input(key=A.HOURS_KEY).value == 192  # the window follows the user across pages
    assert any("192 h)" in c.value for c in at.caption)  # the plan covers the new window
    assert summary(at)["expected_usd"] > 0
    # a year's commitments do not pay back their upfront within 8 days: judged over their term, the break-even
    # month falls after the window, billed on the scenarios carried through the term (not projected)
    figures = metrics(at)
    assert "Break-even month (projected)" not in figures
    plan = A.cached_plan(A.PlannerSettings("helios", 192)).plan
    assert plan.commitments and plan.expected.upfront_usd > 0
    assert re.fullmatch(r"\d{4}-\d{2}", figures["Break-even month"])
    assert figures["Break-even month"] > f"{plan.window_end:%Y-%m}"


# --- Overview ------------------------------------------------------------------------------------------
def test_overview_spend_is_gpu_hours_at_list_price(helios_env: None) -> None:
    at = open_page("overview")
    rate = I.on_demand_rates(load_catalog(), {"NVIDIA Tesla V100"}).of("NVIDIA Tesla V100")
    gpu_hours = fmt.parse_usd(metrics(at)["GPU-hours"].replace(" GPU-hours", " USD"))
    assert usd(at, "Spend (USD)") == pytest.approx(gpu_hours * rate, rel=1e-5, abs=2)
    assert metrics(at)["Untagged share (%)"] == "0.0 %"  # Helios: every job has a virtual cluster
    assert metrics(at)["Idle GPU cost (USD)"] == "not reported"
    assert any("Spend basis: cheapest on-demand USD per GPU-hour in us-east-1" in fmt.unplain(c.value)
               for c in at.caption)
    eight = usd(at, "Spend (USD)")
    at.select_slider(key=A.OVERVIEW_WEEKS_KEY).set_value(2)
    ok(at.run())
    assert 0 < usd(at, "Spend (USD)") < eight
    at.radio(key=A.OVERVIEW_DIM_KEY).set_value("GPU type")
    ok(at.run())
    totals, movers = (view.shown(t.value) for t in at.table)
    assert "GPU type" in totals.columns
    assert list(totals["GPU type"]) == ["NVIDIA Tesla V100"]
    assert list(movers.columns[:3]) == ["Team", "Last 7 days (USD)", "7 days before (USD)"]
    change = movers["Change (USD)"].map(fmt.parse_number)
    assert (change.abs().diff().dropna() <= 0).all()  # biggest movers first


def _toy_usage() -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=24 * 14, freq="h")
    rows = []
    for team, g, util in (("alpha", 8.0, 0.75), (S.UNALLOCATED_TEAM, 2.0, np.nan), ("beta", 4.0, 0.5)):
        gpus = np.where(np.arange(len(ts)) >= 24 * 7, 2 * g, g) if team == "alpha" else np.full(len(ts), g)
        rows.append(pd.DataFrame({S.TIMESTAMP: ts, S.TEAM: team, S.GPU_TYPE: "NVIDIA A100", S.GPUS: gpus,
                                  S.PROJECT: f"{team}-p", S.UTILIZATION: util}))
    out = pd.concat(rows, ignore_index=True)
    out[S.COST_USD] = np.where(out[S.TEAM] == "beta", 10.0, np.nan)  # only beta's rows carry a billed cost
    return out


def test_inform_overview_by_hand() -> None:
    usage = _toy_usage()
    rates = Rates({"NVIDIA A100": 2.0}, "toy list price")
    ov = I.overview(usage, rates, weeks=2, dimension="team")
    hours = 24 * 14
    alpha_gh = 8.0 * hours / 2 + 16.0 * hours / 2
    spend = {"alpha": alpha_gh * 2.0, S.UNALLOCATED_TEAM: 2.0 * hours * 2.0, "beta": 10.0 * hours}  # beta: cost_usd
    assert ov.spend_usd == pytest.approx(sum(spend.values()))
    assert dict(zip(ov.totals[S.TEAM], ov.totals["usd"], strict=True)) == pytest.approx(spend)
    assert ov.gpu_hours == pytest.approx(alpha_gh + 2.0 * hours + 4.0 * hours)
    assert ov.untagged_gpu_hours_share == pytest.approx(2.0 * hours / ov.gpu_hours)
    idle = alpha_gh * 0.25 * 2.0 + 4.0 * hours * 0.5 * 2.0  # idle priced at list, only where utilisation is known
    assert ov.idle_usd == pytest.approx(idle)
    assert ov.utilization_known_share == pytest.approx((alpha_gh + 4.0 * hours) / ov.gpu_hours)
    top = ov.movers.iloc[0]
    assert (top[S.TEAM], top["usd_last_week"], top["usd_week_before"]) == ("alpha", 16.0 * 168 * 2, 8.0 * 168 * 2)
    assert top["delta_pct"] == pytest.approx(1.0)
    assert ov.basis == "billed cost_usd from the usage file (rows without it: toy list price)"
    by_gpu = I.overview(usage, Rates({}, "no prices"), weeks=1, dimension="GPU type")
    assert by_gpu.unpriced_gpu_types == ("NVIDIA A100",)  # no list price: GPU-hours counted, spend not
    with pytest.raises(ValueError, match="unknown dimension"):
        I.overview(usage, rates, 1, "region")
    real = I.on_demand_rates(load_catalog(), {"NVIDIA A100", "no such GPU"})
    assert set(real.usd_per_gpu_hour) == {"NVIDIA A100"}  # an unpriced model is left out, not an error


# --- Forecast ------------------------------------------------------------------------------------------
def test_forecast_levels_and_items(helios_env: None) -> None:
    at = open_page("forecast")
    assert at.radio(key=A.FAN_LEVEL_KEY).value == FS.LEVEL_ORG
    org_p50 = fmt.parse_usd(re.search(r"p50 ([\d,]+) GPU-hours", at.caption[1].value).group(1) + " USD")
    at.radio(key=A.FAN_LEVEL_KEY).set_value(FS.LEVEL_TEAM)
    ok(at.run())
    teams = at.selectbox(key=A.FAN_ITEM_KEY).options
    assert len(teams) == 16
    total = 0.0
    for team in teams[:3]:
        at.selectbox(key=A.FAN_ITEM_KEY).set_value(team)
        ok(at.run())
        assert f"Team: {team}" in at.get("vega_lite_chart")[0].proto.spec
        accuracy = view.shown(at.table[0].value)
        assert len(accuracy) == 1 and accuracy["Team"].iloc[0] == team
        total += fmt.parse_usd(re.search(r"p50 ([\d,]+) GPU-hours", at.caption[1].value).group(1) + " USD")
    assert 0 < total < org_p50
    at.radio(key=A.FAN_LEVEL_KEY).set_value(FS.LEVEL_SERIES)
    ok(at.run())
    assert FS.SERIES_SEP in at.selectbox(key=A.FAN_ITEM_KEY).value
    assert len(at.get("download_button")) == 1


# --- What-if: every widget ----------------------------------------------------------------------------
def test_growth_raises_cost_and_shows_delta(helios_env: None) -> None:
    at = open_page("whatif")
    base = usd(at, EXPECTED)
    at.slider(key=A.GROWTH_KEY).set_value(50)
    ok(at.run())
    grown = usd(at, EXPECTED)
    assert grown > base * 1.2
    delta = next(m.delta for m in at.metric if m.label == EXPECTED)
    assert fmt.parse_usd(delta) == pytest.approx(grown - base, abs=1)
    at.slider(key=A.GROWTH_KEY).set_value(-30)
    ok(at.run())
    assert usd(at, EXPECTED) < base


def test_team_growth_only_moves_the_chosen_team(helios_env: None) -> None:
    at = open_page("whatif")
    base = usd(at, EXPECTED)
    assert at.slider(key=A.TEAM_GROWTH_KEY).disabled  # no team picked yet
    at.multiselect(key=A.TEAM_GROWTH_TEAMS_KEY).set_value(["vc3sl"])
    ok(at.run())
    assert usd(at, EXPECTED) == pytest.approx(base, abs=1)  # picked, but 0% extra growth
    at.slider(key=A.TEAM_GROWTH_KEY).set_value(200)
    ok(at.run())
    assert at.session_state[A.WHATIF_KEY].team_growth == (("vc3sl", 2.0),)
    assert usd(at, EXPECTED) > base
    at.slider(key=A.TEAM_GROWTH_KEY).set_value(0)
    ok(at.run())
    assert usd(at, EXPECTED) == pytest.approx(base, abs=1)


def test_zero_spot_share_and_no_spot(helios_env: None) -> None:
    at = open_page("whatif")
    assert summary(at)["spot_allowances"] > 0 and summary(at)["spot_usd"] > 0  # default 30% uses spot on Helios
    at.slider(key=A.SPOT_SHARE_KEY).set_value(0)
    ok(at.run())
    assert summary(at)["spot_usd"] == 0 and summary(at)["spot_allowances"] == 0
    assert metrics(at)["Spot time overhead (%)"] == "0.00 %"
    at.slider(key=A.SPOT_SHARE_KEY).set_value(30)
    ok(at.run())
    # speed priority only routes GPU models, so it waits for rightsizing (tests/test_app_rightsizing.py)
    assert at.slider(key=A.SPEED_KEY).disabled and not at.checkbox(key=A.RIGHTSIZE_KEY).value
    at.checkbox(key=A.ALLOW_SPOT_KEY).uncheck()
    ok(at.run())
    assert summary(at)["spot_usd"] == 0
    assert at.slider(key=A.SPOT_SHARE_KEY).disabled and at.select_slider(key=A.SPOT_DISCOUNT_KEY).disabled


def test_spot_discount_and_interruption_rate(helios_env: None) -> None:
    at = open_page("whatif")
    base = usd(at, EXPECTED)
    at.select_slider(key=A.SPOT_DISCOUNT_KEY).set_value(90)
    ok(at.run())
    plan = whatif_plan(at)
    od = load_catalog().offers("us-east-1", options=("on_demand",)).set_index(C.INSTANCE_TYPE)[C.EFFECTIVE_HOURLY]
    for s in plan.spot:
        assert s.usd_per_instance_hour == pytest.approx(0.1 * od[s.instance_type])
    cheap = usd(at, EXPECTED)
    at.select_slider(key=A.SPOT_DISCOUNT_KEY).set_value(40)
    ok(at.run())
    assert all(s.usd_per_instance_hour == pytest.approx(0.6 * od[s.instance_type]) for s in whatif_plan(at).spot)
    assert usd(at, EXPECTED) >= cheap - 1  # dearer spot never makes the plan cheaper
    at.select_slider(key=A.SPOT_DISCOUNT_KEY).set_value("catalog")
    at.select_slider(key=A.INTERRUPTION_KEY).set_value(">20%")
    ok(at.run())
    rough = whatif_plan(at)
    assert all(s.interruption_bucket == ">20%" for s in rough.spot)
    calm_rework = C.rework_fraction("<5%")
    assert all(s.rework_fraction > calm_rework for s in rough.spot)
    assert usd(at, EXPECTED) >= base - 1  # more rework never makes the plan cheaper


def test_terms_and_payment_options(helios_env: None) -> None:
    at = open_page("whatif")
    assert summary(at)["commitments"] > 0
    at.multiselect(key=A.PAYMENTS_KEY).set_value(["no"])
    ok(at.run())
    plan = whatif_plan(at)
    assert plan.commitments and all(c.purchase_option.endswith("_no_upfront") for c in plan.commitments)
    assert usd(at, "Upfront cash (USD)") == 0
    at.multiselect(key=A.TERMS_KEY).set_value(["3y"])
    ok(at.run())
    assert all("_3y_" in c.purchase_option for c in whatif_plan(at).commitments)
    at.multiselect(key=A.TERMS_KEY).set_value([])
    ok(at.run())
    assert summary(at)["commitments"] == 0 and summary(at)["committed_usd"] == 0


def test_budget_and_max_commitment(helios_env: None) -> None:
    at = open_page("whatif")
    cost = usd(at, EXPECTED)
    at.number_input(key=A.BUDGET_KEY).set_value(round(cost * 2))
    ok(at.run())
    assert at.session_state[A.WHATIF_KEY].plan_config(pd.Timestamp("2020-01-01")).budget_usd == round(cost * 2)
    assert any("under the budget" in s.value for s in at.success)
    at.number_input(key=A.BUDGET_KEY).set_value(round(cost / 2))
    at.run()
    assert not at.exception
    (err,) = at.error  # no plan costs half the optimum: one line naming the smallest budget that works
    assert fmt.unplain(err.value).startswith("error: no plan fits the budget") and "smallest budget" in err.value
    at.number_input(key=A.BUDGET_KEY).set_value(0.0)
    ok(at.run())
    pv_label = "Present value at 10 %/year (USD)"
    pv = usd(at, pv_label)
    full = sum(c.obligation_usd for c in whatif_plan(at).commitments)
    assert full > 1_000_000 and usd(at, "Total obligation over the terms (USD)") == pytest.approx(full, abs=1)
    cap = float(round(full / 2))  # the maximum commitment: the obligation over the full terms, in USD
    at.number_input(key=A.MAX_OBLIGATION_KEY).set_value(cap)
    ok(at.run())
    plan = whatif_plan(at)
    assert at.session_state[A.WHATIF_KEY].plan_config(pd.Timestamp("2020-01-01")).max_obligation_usd == cap
    assert plan.commitments and sum(c.obligation_usd for c in plan.commitments) <= cap + 1e-6
    assert plan.assumptions["guardrails"]["max_obligation_usd"] == cap
    assert usd(at, "Total obligation over the terms (USD)") <= cap
    delta = next(m.delta for m in at.metric if m.label == "Total obligation over the terms (USD)")
    assert fmt.parse_usd(delta) < 0  # less than the base scenario's obligation
    assert usd(at, pv_label) >= pv * (1 - 1e-4)  # a tighter cap never makes the plan cheaper (what it minimises)
    assert not at.info or all("Not applied" not in i.value for i in at.info)


def test_a_run_dated_before_the_data_shows_it_is_a_warning_with_the_fix(helios_env: None) -> None:
    # Helios is May 2020: a +64 V100 project from January 2020 would be in it; vc3sl used fewer than 64 V100
    at = open_page("whatif")
    events = "events:\n  - {team: vc3sl, gpu_type: NVIDIA Tesla V100, kind: add, gpus: 64, start: 2020-01-01}\n"
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=168, events_name="early.yaml",
                                                       events_text=events)
    ok(at.run())
    (warning,) = [w.value for w in at.warning if "probably not running yet" in fmt.unplain(w.value)]
    assert "early.yaml item 1: vc3sl / NVIDIA Tesla V100" in fmt.unplain(warning)
    judged = int(re.search(r"of its (\d+) hours before the end of the data", fmt.unplain(warning)).group(1))
    assert 24 * 30 < judged <= 24 * 31   # judged on the data's 31 days, not from January
    assert "fix: start it at the end of the data, 2020-05-31T16:00Z, or later" in fmt.unplain(warning)


def test_loaded_scenario_moves_widgets_and_events_apply(helios_env: None) -> None:
    at = open_page("whatif")
    base = usd(at, EXPECTED)
    events = ("events:\n  - {team: vc3sl, gpu_type: NVIDIA Tesla V100, kind: add, gpus: 64, start: 2020-06-01,"
              " note: new project}\n")
    loaded = A.PlannerSettings(sample="helios", hours=168, growth=0.1, max_spot_share=0.2, options=(),
                               events_name="team_plans.yaml", events_text=events)
    at.session_state[A.WHATIF_KEY] = loaded  # what the Scenarios page does on "Load into What-if"
    ok(at.run())
    assert at.slider(key=A.GROWTH_KEY).value == 10 and at.slider(key=A.SPOT_SHARE_KEY).value == 20
    assert at.multiselect(key=A.TERMS_KEY).value == []
    assert at.radio(key=A.EVENTS_SOURCE_KEY).value == "From the loaded scenario"
    assert at.session_state[A.WHATIF_KEY] == loaded
    # +64 GPUs for the whole window at +10% growth, no commitments: far above the same settings without the event
    # (not the base plan: its 1-year commitments are sized for the term, so inside one week it is no cheaper)
    without = A.cached_plan(dataclasses.replace(loaded, events_name="", events_text="")).plan.expected.total_usd
    assert usd(at, EXPECTED) > without + 0.5 * 64 * 1.1 * 168 * 3.06
    ok(at.switch_page(PAGES["forecast"]).run())
    assert any("team_plans.yaml" in fmt.unplain(c.value) for c in at.caption)
    ok(at.switch_page(PAGES["whatif"]).run())
    next(b for b in at.button if "Reset" in b.label).click()
    ok(at.run())
    assert at.slider(key=A.GROWTH_KEY).value == 0 and at.radio(key=A.EVENTS_SOURCE_KEY).value == "No events"
    assert usd(at, EXPECTED) == pytest.approx(base, abs=1)


def test_plan_page_prices_a_planned_run_on_a_capacity_block(helios_env: None) -> None:
    """A planned run of 32 H100 for 3 days (loaded into the What-if) is priced on the Plan page as gpuplan plan
    --events does: 4 x p5.48xlarge at 39.33 USD/instance-h for 72 h = 11,327 USD upfront, against the plan, on-demand
    (32 x 72 x 55.04 / 8 = 15,852) and spot (capped at 30% of GPU-hours, so not feasible for a whole run)."""
    at = open_page("whatif")
    events = ("events:\n  - {team: vc3sl, gpu_type: NVIDIA H100, kind: add, gpus: 32, start: 2020-06-02 11:30,"
              " end: 2020-06-05 11:30, note: eval run}\n")
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=168, events_name="runs.yaml",
                                                       events_text=events)
    ok(at.run())
    ok(at.switch_page(PAGES["plan"]).run())
    assert any(h.value == "Planned runs: Capacity Block or not" for h in at.subheader)
    table = next(view.shown(t.value) for t in at.table if "Planned run" in view.shown(t.value).columns)
    (row,) = table.to_dict("records")
    assert row["Team"] == "vc3sl" and row["Capacity Block"].startswith("4 x p5.48xlarge for 3 days from 2020-06-02")
    assert row["Upfront (USD)"] == f"{4 * 72 * 39.33:,.0f}" and row["On-demand (USD)"] == f"{32 * 72 * 55.04 / 8:,.0f}"
    assert row["Not feasible"].startswith("Spot: ") and row["Recommended"] == "Capacity Block"
    # without planned runs the section is not there
    ok(at.switch_page(PAGES["whatif"]).run())
    next(b for b in at.button if "Reset" in b.label).click()
    ok(at.run())
    ok(at.switch_page(PAGES["plan"]).run())
    assert not any(h.value == "Planned runs: Capacity Block or not" for h in at.subheader)


def test_no_spot_models_and_risk_aversion(helios_env: None) -> None:
    at = open_page("whatif")
    base = A.cached_plan(at.session_state[A.WHATIF_KEY]).plan.expected
    assert base.spot_usd > 0
    at.multiselect(key=A.NO_SPOT_MODELS_KEY).set_value(["NVIDIA Tesla V100"])
    ok(at.run())
    assert summary(at)["spot_usd"] == 0  # the only GPU model is kept off spot
    at.multiselect(key=A.NO_SPOT_MODELS_KEY).set_value([])
    at.checkbox(key=A.ALLOW_SPOT_KEY).uncheck()  # without spot the billed costs follow the model exactly
    ok(at.run())
    neutral = whatif_plan(at).expected
    at.slider(key=A.CVAR_KEY).set_value(1.0)
    ok(at.run())
    assert at.session_state[A.WHATIF_KEY].plan_config(pd.Timestamp("2020-01-01")).cvar_weight == 1.0
    risky = whatif_plan(at).expected
    # the plan weighs the worst 10% of its objective, the scenarios' present values over the commitment terms:
    # weighing them never makes them worse, and never makes the expected present value lower
    risky_cvar, neutral_cvar = (horizon_cvar(A.cached_plan(s)) for s in (at.session_state[A.WHATIF_KEY],
                                                                          dataclasses.replace(
                                                                              at.session_state[A.WHATIF_KEY],
                                                                              cvar_weight=0.0)))
    assert risky_cvar <= neutral_cvar * (1 + 1e-4)
    assert risky.present_value_usd >= neutral.present_value_usd * (1 - 1e-4)


def horizon_cvar(result) -> float:
    """CVaR90 (USD) of the scenarios' present values over the horizon: the risk the plan's weight acts on."""
    from optimizer.solve import cvar

    pv = np.array([result.horizon_costs[n]["present_value_usd"] for n in result.scenarios.names])
    return cvar(pv, result.scenarios.weights)


def test_ladder_shows_commitment_timeline(helios_env: None) -> None:
    at = open_page("whatif")
    at.checkbox(key=A.LADDER_KEY).check()
    ok(at.run())
    assert at.session_state[A.WHATIF_KEY].ladder
    grow = "events:\n  - {team: vc3sl, gpu_type: NVIDIA Tesla V100, kind: add, gpus: 200, start: 2020-07-01}\n"
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=1440, ladder=True,
                                                       events_name="grow.yaml", events_text=grow)
    ok(at.run())
    assert at.number_input(key=A.HOURS_KEY).value == 1440 and at.checkbox(key=A.LADDER_KEY).value
    starts = {c.start for c in whatif_plan(at).commitments}
    assert pd.Timestamp("2020-07-01") in starts and len(starts) > 1  # more commitments when the new demand lands
    ok(at.switch_page(PAGES["plan"]).run())
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any("Laddering: commitment terms (UTC)" in sp for sp in specs)


def test_bad_events_file_is_one_line_error(helios_env: None) -> None:
    at = open_page("whatif")
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(
        sample="helios", hours=168, events_name="bad.yaml", events_text="events:\n  - {team: vc3sl, kind: add}\n")
    at.run()
    assert not at.exception
    (err,) = at.error
    assert fmt.unplain(err.value).startswith("error: bad.yaml, item 1") and "\n" not in err.value



OWNED = ("instance_type,option,count,start,expiry,commitment_usd_per_hour\n"
         "p3dn.24xlarge,reserved_1y_no_upfront,5,2020-01-01,2021-01-01,\n"
         ",compute_sp_1y_no_upfront,,2020-01-01,2021-01-01,200\n")


def test_owned_commitments_of_a_loaded_scenario_are_used_first(helios_env: None) -> None:
    # 5 reserved p3dn.24xlarge (40 V100) and a Compute SP of 200 USD/h owned through 2020: the plan lists them as
    # owned, and buys at least the 40 GPUs fewer (at most 40 + 200 / the SP's V100 rate fewer) than without them
    at = open_page("whatif")
    loaded = A.PlannerSettings(sample="helios", hours=168, owned_name="owned.csv", owned_text=OWNED)
    at.session_state[A.WHATIF_KEY] = loaded
    ok(at.run())
    assert at.radio(key=A.OWNED_SOURCE_KEY).value == "From the loaded scenario"
    assert any("Owned commitments of the loaded scenario: owned.csv" in fmt.unplain(c.value) for c in at.caption)
    plan = whatif_plan(at)
    owned = [c for c in plan.commitments if c.existing]
    assert [(c.purchase_option, c.count, c.commitment_usd_per_hour) for c in owned] == [
        ("reserved_1y_no_upfront", 5, None), ("compute_sp_1y_no_upfront", 1, 200.0)]
    without = A.cached_plan(dataclasses.replace(loaded, owned_name="", owned_text="")).plan

    def new_gpus(p) -> float:
        return sum(c.gpus for c in p.commitments if not c.existing)

    v100 = next(r.usd_per_gpu_hour for r in owned[1].sp_rates if r.gpu_model == "NVIDIA Tesla V100")
    assert 40 <= new_gpus(without) - new_gpus(plan) <= 40 + 200 / v100
    assert PS.settings_lines(loaded)["Owned commitments"] == "owned.csv"
    ok(at.switch_page(PAGES["plan"]).run())
    (table,) = [f for f in (view.shown(t.value) for t in at.table) if "Status" in f.columns]
    assert list(table["Status"]).count("owned") == 2
    ok(at.switch_page(PAGES["whatif"]).run())
    next(b for b in at.button if "Reset" in b.label).click()
    ok(at.run())
    assert at.radio(key=A.OWNED_SOURCE_KEY).value == "No owned commitments"
    assert not any(c.existing for c in whatif_plan(at).commitments)


def test_bad_owned_commitments_file_is_one_line_error(helios_env: None) -> None:
    at = open_page("whatif")
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(
        sample="helios", hours=168, owned_name="owned.csv",
        owned_text="instance_type,option,count,start,expiry\np3dn.24xlarge,reserved_1y_no_upfront,0,2020-01-01,2021\n")
    at.run()
    assert not at.exception
    (err,) = at.error
    assert fmt.unplain(err.value).startswith("error: owned.csv, row 2, column 'count'") and "\n" not in err.value

# --- Plan ----------------------------------------------------------------------------------------------
def test_plan_page_tables_downloads_and_whatif_link(helios_env: None) -> None:
    at = open_page("plan")
    base = usd(at, EXPECTED)
    assert any(c.value.startswith("Base scenario") for c in at.caption)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["plan.json", "Commitments (CSV)", "Hourly costs (CSV)", "Forecast (CSV)", "Summary (HTML)"]
    assert metrics(at)["Commitment utilisation in the window (%)"].endswith(" %")
    cov = float(metrics(at)["Coverage by commitments (%)"].removesuffix(" %"))
    assert 0 < cov <= 100
    (table,) = [f for f in (view.shown(t.value) for t in at.table) if "Status" in f.columns]
    assert len(table) == len(A.cached_plan(A.PlannerSettings("helios", 168)).plan.commitments)
    (lookback,) = [c.value for c in at.caption if "look-back recommender" in c.value]
    assert "in present value over the terms at 10 %/year" in lookback
    difference, its_cost, own = (fmt.parse_usd(x) for x in re.findall(r"([\d,]+ USD)", lookback))
    assert own == pytest.approx(usd(at, "Present value at 10 %/year (USD)"), abs=1)
    saving = difference if "the plan saves" in lookback else -difference
    assert saving == pytest.approx(its_cost - own, abs=1)  # same demand scenarios, both billed by one rule
    ok(at.switch_page(PAGES["whatif"]).run())
    at.slider(key=A.GROWTH_KEY).set_value(40)
    ok(at.run())
    ok(at.switch_page(PAGES["plan"]).run())
    assert usd(at, EXPECTED) > base  # the Plan page plans the What-if's settings
    assert any(c.value.startswith("What-if scenario") and "demand growth +40 %" in fmt.unplain(c.value)
               for c in at.caption)


def test_plan_downloads_content() -> None:
    fc = _toy_forecast()
    settings = A.PlannerSettings(sample="toy", hours=72)
    result = A.plan_forecast(fc, load_catalog(), settings, fc[S.TIMESTAMP].min(), history=_toy_history())
    hourly = PF.expected_hourly_frame(PF.hourly_costs(result), PF.scenario_weights(result))
    assert len(hourly) == 72 and hourly["total_usd"].sum() == pytest.approx(result.plan.expected.total_usd)
    back = pd.read_csv(io.BytesIO(A.csv_bytes(hourly)))
    assert back[S.TIMESTAMP].iloc[0] == "2026-01-01T00:00:00Z"
    assert list(back.columns) == [S.TIMESTAMP, S.GPU_TYPE, "committed_usd", "spot_usd", "on_demand_usd", "total_usd"]
    assert 0 < PF.coverage(result) <= 1


# --- pure: what-if model -------------------------------------------------------------------------------
def _toy_forecast(hours: int = 72) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=hours, freq="h")
    rows = []
    for team, level in (("alpha", 16.0), ("beta", 8.0)):
        wave = level * (1 + 0.3 * np.sin(np.arange(hours) * 2 * np.pi / 24))
        rows.append(pd.DataFrame({S.TEAM: team, S.GPU_TYPE: "NVIDIA A100", S.TIMESTAMP: ts, S.MEAN: wave,
                                  S.P10: 0.7 * wave, S.P50: wave, S.P90: 1.4 * wave, S.MODEL: "toy"}))
    return pd.concat(rows, ignore_index=True)


def test_commitment_options() -> None:
    assert W.commitment_options(("1y",), ("all",)) == ("reserved_1y_all_upfront", "convertible_1y_all_upfront")
    assert len(W.commitment_options(("1y", "3y"), ("no", "partial", "all"))) == 12
    assert W.commitment_options((), ("no",)) == ()
    with pytest.raises(ValueError, match="unknown term or payment option '5y'"):
        W.commitment_options(("5y",), ("no",))


def test_with_spot_terms() -> None:
    cat = load_catalog()
    assert W.with_spot_terms(cat) is cat
    cheap = W.with_spot_terms(cat, discount=0.8, interruption_bucket="15-20%")
    t, t0 = cheap.table, cat.table
    key = (t[C.REGION] == "us-east-1") & (t[C.INSTANCE_TYPE] == "p4d.24xlarge")
    od = float(t0.loc[key & (t0[C.PURCHASE_OPTION] == "on_demand"), C.EFFECTIVE_HOURLY].iloc[0])
    spot = t.loc[key & (t[C.PURCHASE_OPTION] == "spot")]
    assert float(spot[C.EFFECTIVE_HOURLY].iloc[0]) == pytest.approx(0.2 * od)
    assert (t.loc[t[C.PURCHASE_OPTION] == "spot", C.INTERRUPTION] == "15-20%").all()
    other = t[C.PURCHASE_OPTION] != "spot"
    pd.testing.assert_frame_equal(t[other], t0[other].astype({C.INTERRUPTION: t[C.INTERRUPTION].dtype}))
    with pytest.raises(ValueError, match="unknown interruption bucket"):
        W.with_spot_terms(cat, interruption_bucket="often")


@pytest.fixture(scope="module")
def helios_forecast():
    usage = load_sample("helios")
    return usage, forecast(usage, ForecastConfig(horizon_hours=48, cv_windows=3))


def test_events_reach_every_scenario_and_the_long_term(helios_forecast) -> None:
    """Planned events through the one recipe (optimizer.term.plan_scenarios, as gpuplan plan and the app plan):
    every sample path moves in the window, and the long-term forecast carries them to the end of the term."""
    usage, fres = helios_forecast
    start = A.window_start(usage)
    window = PlanConfig(start=start, hours=48, growth=0.5, term_horizon=False)

    def paths_only(events=()):
        return plan_scenarios(window, usage, long=fres.long, events=events, history_weight=0.0)

    base = paths_only()
    gpu = "NVIDIA Tesla V100"
    add = parse_events([{"team": "newteam", "gpu_type": gpu, "kind": "add", "gpus": 10,
                         "start": start + pd.Timedelta(hours=24)}])
    delta = paths_only(add).demand[gpu] - base.demand[gpu]
    np.testing.assert_allclose(delta[:, :24], 0.0, atol=1e-9)
    np.testing.assert_allclose(delta[:, 24:], 10 * 1.5, atol=1e-9)  # every path, growth applied to the event too
    team = "vc3sl"
    gone = paths_only(parse_events([{"team": team, "kind": "scale", "factor": 0, "start": start}]))
    paths = {k: v for k, v in _paths(fres).items() if k.startswith(team + S.UID_SEP)}
    expected = base.demand[gpu] - 1.5 * sum(paths.values())
    np.testing.assert_allclose(gone.demand[gpu], np.clip(expected, 0, None), atol=1e-6)
    # over the term (the app's planning_scenarios with its cached-style long-term forecast): the event stays
    term = PlanConfig(start=start, hours=48, growth=0.5)
    with_term = {name: A.planning_scenarios(term, usage, evs, long=fres.long, fc=fres.forecast,
                                            longterm=A.longterm_for(usage, term.horizon_end, evs))
                 for name, evs in (("base", ()), ("add", add))}
    assert with_term["add"].horizon_end == term.horizon_end == start + pd.Timedelta(hours=8760)
    tail = with_term["add"].tail[gpu] - with_term["base"].tail[gpu]
    assert float(with_term["add"].weights @ tail.mean(axis=1)) == pytest.approx(10 * 1.5, rel=0.05)


def _paths(fres):
    from forecasting.engine import sample_paths
    from optimizer.inputs import PLAN_PATHS

    return sample_paths(fres.long, PLAN_PATHS, 0)


def test_events_from_text_validates_like_the_cli() -> None:
    assert W.events_from_text("  ", "x.yaml") == ()
    (ev,) = W.events_from_text("team,kind,start,factor\nalpha,scale,2026-01-01,1.5\n", "e.csv")
    assert (ev.team, ev.kind, ev.factor) == ("alpha", "scale", 1.5)
    with pytest.raises(S.UsageError, match=r"e.csv, line 2, field 'factor'"):
        W.events_from_text("team,kind,start,factor\nalpha,scale,2026-01-01,-1\n", "e.csv")


# --- pure: summary page and formatting ----------------------------------------------------------------
def test_summary_html_is_self_contained_and_complete() -> None:
    fc = _toy_forecast()
    settings = A.PlannerSettings(sample="toy", hours=72)
    result = A.plan_forecast(fc, load_catalog(), settings, fc[S.TIMESTAMP].min(), history=_toy_history())
    plan = result.plan
    daily = PF.daily_costs(PF.hourly_costs(result), PF.scenario_weights(result))
    html = plan_summary_html(plan, data_label="Toy org", daily=daily, settings={"Demand growth": "+0 %"},
                             extra_figures={"Coverage by commitments": ("50.0 %", "share of GPU-hours")})
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert re.findall(r"(?:src|href)=", html) == []  # nothing fetched from anywhere
    assert "<svg" in html and html.count("<rect") >= 3 * 3  # 3 days x up to 3 categories + legend
    assert fmt.usd(plan.expected.total_usd) in html and fmt.usd(plan.expected.all_on_demand_usd) in html
    assert "Demand growth: +0 %" in html and "Toy org" in html and "Coverage by commitments" in html
    assert "the forecast&#x27;s p10 (weight 0.3), p50 (weight 0.4), p90 (weight 0.3)" in html  # escaped once
    assert "&amp;#x27;" not in html
    for c in plan.commitments:
        assert c.instance_type in html
    assert "USD per day" in cost_svg(daily)
    assert "No cost to draw" in cost_svg(daily.iloc[0:0])
    # a plan.json read from elsewhere may carry any region text: it is escaped like everything else
    from dataclasses import replace

    hostile = plan_summary_html(replace(plan, region="<img src=x onerror=alert(1)>"), data_label="Toy org",
                                notes=["team <b>x</b> & co"], payment=["1 x <script>"])
    assert "<img" not in hostile and "&lt;img src=x" in hostile
    assert "<b>x" not in hostile and "team &lt;b&gt;x&lt;/b&gt; &amp; co" in hostile and "<script" not in hostile


def test_summary_html_separates_the_window_and_the_terms() -> None:
    fc = _toy_forecast()
    result = A.plan_forecast(fc, load_catalog(), A.PlannerSettings(sample="toy", hours=72), fc[S.TIMESTAMP].min(),
                             history=_toy_history())
    plan = result.plan
    e = plan.expected
    assert plan.term is not None and plan.commitments
    html = plan_summary_html(plan, payment=PF.payment_lines(plan), notes=[t for _, t in PF.plan_notes(plan)])
    window_at, terms_at = html.index("<h2>Inside the window"), html.index("<h2>Over the commitment terms")
    assert window_at < html.index(fmt.usd(e.total_usd)) < terms_at  # the window's cost sits in the window block
    for label, value in (("Obligation after the window", e.obligation_after_window_usd),
                         ("Total obligation over the terms", e.obligation_total_usd),
                         ("Present value at 10 %/year", e.present_value_usd),
                         (f"Expected cost to {plan.term.horizon_end:%Y-%m-%d}", e.horizon_total_usd)):
        at = html.index(label)
        assert at > terms_at and fmt.usd(value) in html[at:at + 300], label
    assert f"p10 {fmt.usd(e.horizon_p10_usd)} - p90 {fmt.usd(e.horizon_p90_usd)}" in html
    month, upfront = next(iter(e.upfront_by_month.items()))
    assert "<h3>Upfront cash by month</h3>" in html
    assert f"<td>{month}</td><td class=\"n\">{fmt.usd(upfront)}</td>" in html
    assert "Why this payment option and term" in html and "than" in PF.payment_lines(plan)[0]
    assert "firm (buy now)" in html and fmt.pct(plan.commitments[0].expected_utilization) in html
    assert "<h2>Notes</h2>" in html and "cost of capital" in html.lower()


def test_formatting_helpers() -> None:
    assert fmt.usd(1234567.4) == "1,234,567 USD"
    assert fmt.signed_usd(-1500) == "-1,500 USD" and fmt.signed_usd(20) == "+20 USD"
    assert fmt.usd_per_hour(12.345) == "12.35 USD/h" and fmt.usd_per_gpu_hour(3.4) == "3.400 USD/GPU-h"
    assert fmt.gpu_hours(12345.6) == "12,346 GPU-hours" and fmt.gpus(3) == "3.0 GPUs"
    assert fmt.pct(0.253) == "25.3 %" and fmt.signed_pct(-0.05, 0) == "-5 %"
    assert fmt.usd(None) == fmt.pct(float("nan")) == "-"
    assert fmt.parse_usd(fmt.usd(98765.0)) == 98765.0
    assert [fmt.short(x) for x in (950, 12_345, 153_650, 4_153_699, 1.2e9)] == ["950", "12,345", "154k", "4.15M",
                                                                                "1.20B"]
    assert fmt.usd_range(153_650, 188_772) == "154k - 189k USD" and fmt.usd_range(None, 1) == "-"
    for name in ("commitment", "coverage", "utilisation", "rework", "spot", "upfront", "break_even"):
        assert fmt.GLOSSARY[name].startswith("**")
    assert fmt.term("spot", "rework").count("**") == 4


def test_loaded_scenario_sets_window_on_every_page(helios_env: None) -> None:
    at = open_page("plan")
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=336, growth=0.2)  # Scenarios "Load"
    ok(at.run())
    assert at.number_input(key=A.HOURS_KEY).value == 336
    assert any("336 h)" in c.value for c in at.caption)
    assert any("demand growth +20 %" in fmt.unplain(c.value) for c in at.caption)
    at.number_input(key=A.HOURS_KEY).set_value(168)  # the user may still change the window afterwards
    ok(at.run())
    assert at.number_input(key=A.HOURS_KEY).value == 168
