"""Streamlit planner: AppTest runs of the planner's behaviour (Plan, What-if and Forecast pages) plus the pure
helpers in app.state and app.charts (every page and widget: tests/test_app_pages.py).

AppTest runs use the real Helios sample (16 series, forecast in seconds) and a one-week window through
the environment knobs the app honours (GPUPLAN_DEFAULT_SAMPLE, GPUPLAN_DEFAULT_HOURS); nothing in the
core is patched. Streamlit's caches live for the whole test process, so the forecast is fitted once.
"""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import charts, fmt, view
from app import forecast_state as FS
from app import plan_frames as PF
from app import state as A
from optimizer.catalog import load_catalog
from optimizer.plan import Plan
from usage import schema as S

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
EXPECTED = "Expected cost in the window (USD)"
METRICS = (EXPECTED, "Cost range p10-p90 in the window (USD)", "All on-demand cost in the window (USD)",
           "Savings vs all on-demand in the window (USD)", "Commitment utilisation in the window (%)",
           "Upfront cash (USD)", "Obligation after the window (USD)", "Total obligation over the terms (USD)",
           "Expected cost over the horizon (USD)", "Present value at 10 %/year (USD)")


@pytest.fixture
def helios_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metric_usd(at: AppTest, label: str) -> float:
    """Parse a metric value such as ``'1,234,567 USD'``."""
    (metric,) = [m for m in at.metric if m.label == label]
    return float(metric.value.removesuffix(" USD").replace(",", ""))


def vega_titles(at: AppTest) -> list[str]:
    out = []
    for chart in at.get("vega_lite_chart"):
        title = json.loads(chart.proto.spec).get("title", "")
        out.append(title if isinstance(title, str) else title.get("text", ""))
    return out


# --- AppTest: the planner's behaviour, now on the Plan and What-if pages ---------------------------------
PLAN_PAGE, WHATIF_PAGE, FORECAST_PAGE = "app_pages/plan.py", "app_pages/whatif.py", "app_pages/forecast.py"


def open_page(page: str) -> AppTest:
    at = run_app()
    at.switch_page(page)
    return rerun(at)


def test_app_loads_and_shows_plan_metrics(helios_env: None) -> None:
    at = open_page(PLAN_PAGE)
    assert at.title[0].value == "Plan: what to buy and when"
    assert at.selectbox(key=A.SAMPLE_KEY).value == "helios"
    assert at.number_input(key=A.HOURS_KEY).value == 168
    assert set(METRICS) <= {m.label for m in at.metric}
    for label in METRICS:
        value = next(m.value for m in at.metric if m.label == label)
        assert value.endswith(("USD", "%", "no commitments")), (label, value)
    summary = at.session_state[A.PLAN_SUMMARY_KEY]
    assert summary["expected_usd"] > 0
    assert metric_usd(at, EXPECTED) == pytest.approx(summary["expected_usd"], abs=1)
    assert summary["expected_usd"] <= summary["all_on_demand_usd"] + 1
    assert {"Expected cost per day (USD)", "Expected cost per GPU model (USD)"} <= set(vega_titles(at))
    assert len(at.get("download_button")) == 5  # plan.json, commitments, hourly costs, forecast, HTML summary
    assert len(at.table) >= 2  # commitments / spot / on-demand tables


def test_growth_slider_raises_expected_cost(helios_env: None) -> None:
    at = open_page(WHATIF_PAGE)
    before = metric_usd(at, EXPECTED)
    at.slider(key=A.GROWTH_KEY).set_value(50)
    rerun(at)
    after = metric_usd(at, EXPECTED)
    assert after > before
    assert at.session_state[A.PLAN_SUMMARY_KEY]["expected_usd"] == pytest.approx(after, abs=1)


def test_zero_spot_share_leaves_no_spot(helios_env: None) -> None:
    at = open_page(WHATIF_PAGE)
    assert at.session_state[A.PLAN_SUMMARY_KEY]["spot_allowances"] > 0  # default 30% uses spot on Helios
    at.slider(key=A.SPOT_SHARE_KEY).set_value(0)
    rerun(at)
    at.switch_page(PLAN_PAGE)
    rerun(at)
    summary = at.session_state[A.PLAN_SUMMARY_KEY]
    assert summary["spot_allowances"] == 0
    assert summary["spot_usd"] == 0
    assert any("No spot in this plan" in i.value for i in at.info)


def test_allow_spot_off_leaves_no_spot(helios_env: None) -> None:
    at = open_page(WHATIF_PAGE)
    at.checkbox(key=A.ALLOW_SPOT_KEY).uncheck()
    rerun(at)
    assert at.session_state[A.PLAN_SUMMARY_KEY]["spot_allowances"] == 0
    assert at.slider(key=A.SPOT_SHARE_KEY).disabled


def test_fan_chart_series_selectbox_switches(helios_env: None) -> None:
    at = open_page(FORECAST_PAGE)
    assert at.radio(key=A.FAN_LEVEL_KEY).value == FS.LEVEL_ORG
    assert vega_titles(at)[0] == FS.ORG_TOTAL
    at.radio(key=A.FAN_LEVEL_KEY).set_value(FS.LEVEL_SERIES)
    rerun(at)
    box = at.selectbox(key=A.FAN_ITEM_KEY)
    choice = box.options[1]
    box.set_value(choice)
    rerun(at)
    assert at.selectbox(key=A.FAN_ITEM_KEY).value == choice
    assert vega_titles(at)[0] == f"{FS.LEVEL_SERIES}: {choice}"
    assert list(view.shown(at.table[0].value)["Model"])  # the chosen model of that series


def test_plan_page_shows_the_money_over_the_terms(helios_env: None) -> None:
    at = open_page(PLAN_PAGE)
    plan = A.cached_plan(A.PlannerSettings("helios", 168)).plan
    e = plan.expected
    assert plan.term is not None and plan.term.cost_of_capital == 0.10
    # the obligation after the window: what the 1-year commitments owe beyond the one-week window
    after = metric_usd(at, "Obligation after the window (USD)")
    assert after == pytest.approx(e.obligation_after_window_usd, abs=1)
    total = metric_usd(at, "Total obligation over the terms (USD)")
    assert total == pytest.approx(sum(c.obligation_usd for c in plan.commitments), abs=1)
    assert 0 < after < total and total - after == pytest.approx(sum(
        c.count * c.effective_hourly_usd * 168 for c in plan.commitments), abs=2)  # the window's part
    # present value at the stated cost of capital, below the undiscounted cost over the horizon
    pv = metric_usd(at, "Present value at 10 %/year (USD)")
    assert pv == pytest.approx(e.present_value_usd, abs=1)
    assert 0 < pv < metric_usd(at, "Expected cost over the horizon (USD)")
    assert any("cost of capital of 10 %/year" in c.value and f"{plan.term.horizon_end:%Y-%m-%d}" in c.value
               for c in at.caption)
    assert at.session_state[A.PLAN_SUMMARY_KEY]["present_value_usd"] == pytest.approx(e.present_value_usd)
    assert "Upfront cash by month (USD)" in vega_titles(at)
    # what to buy: firm, with its expected use over the term and its obligation
    tables = [view.shown(t.value) for t in at.table]
    (table,) = [f for f in tables if "Status" in f.columns]
    assert set(table["Status"]) == {"firm: buy now"}
    use = table["Expected use over its term (%)"].map(fmt.parse_number)
    assert ((use > 0) & (use <= 100)).all()
    # whole dollars per line: the total within half a dollar a line
    assert table["Obligation over the term (USD)"].map(fmt.parse_number).sum() == pytest.approx(
        total, abs=0.5 * len(table))
    # why this payment option: the next best, in present value at the plan's cost of capital
    (pay,) = [f for f in tables if "Next best option" in f.columns]
    assert len(pay) == len(plan.commitments)
    assert (pay["Next best costs more (USD, present value)"].map(fmt.parse_number) > 0).all()
    # Helios has a month of history against a one-year term: said as a warning, in plain text
    warnings = [fmt.unplain(w.value) for w in at.warning]
    assert any(w.startswith("history of 31.0 days is short against the 365-day commitment term") for w in warnings)
    assert any("long-term forecast" in fmt.unplain(i.value) for i in at.info)


def test_cost_of_capital_moves_the_payment_option(helios_env: None) -> None:
    at = open_page(WHATIF_PAGE)
    assert at.number_input(key=A.COST_OF_CAPITAL_KEY).value == 10.0
    assert any(m.label == "Present value at 10 %/year (USD)" for m in at.metric)
    at.number_input(key=A.COST_OF_CAPITAL_KEY).set_value(0.0)
    rerun(at)
    free = at.session_state[A.WHATIF_KEY]
    assert free.cost_of_capital == 0.0 and free.plan_config(pd.Timestamp("2020-01-01")).cost_of_capital == 0.0
    plan = A.cached_plan(free).plan
    # money now costs nothing extra: paying everything upfront buys the lowest rate
    assert plan.commitments and all(c.purchase_option.endswith("_all_upfront") for c in plan.commitments)
    assert any(m.label == "Present value at 0 %/year (USD)" for m in at.metric)
    at.number_input(key=A.COST_OF_CAPITAL_KEY).set_value(30.0)
    rerun(at)
    dear = A.cached_plan(at.session_state[A.WHATIF_KEY]).plan
    assert dear.commitments and all(c.purchase_option.endswith("_no_upfront") for c in dear.commitments)
    assert metric_usd(at, "Upfront cash (USD)") == 0
    delta = next(m.delta for m in at.metric if m.label == "Upfront cash (USD)")
    assert fmt.parse_usd(delta) == pytest.approx(-A.cached_plan(A.PlannerSettings("helios", 168)).plan.expected
                                                 .upfront_usd, abs=1)
    at.switch_page(PLAN_PAGE)
    rerun(at)
    assert any(m.label == "Present value at 30 %/year (USD)" for m in at.metric)
    assert any("cost of capital of 30 %/year" in c.value for c in at.caption)


def test_user_strings_on_the_plan_page_are_plain_text(helios_env: None) -> None:
    at = run_app()
    name = "<b>q1</b>_*launch*.yaml"
    events = "events:\n  - {team: vc3sl, gpu_type: NVIDIA Tesla V100, kind: add, gpus: 8, start: 2020-06-01}\n"
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=168, events_name=name,
                                                       events_text=events)
    at.switch_page(PLAN_PAGE)
    rerun(at)
    (caption,) = [c.value for c in at.caption if c.value.startswith("What-if scenario")]
    assert fmt.plain(name) in caption and "<b>" not in caption and "*launch*" not in caption
    assert f"planned events {name}" in fmt.unplain(caption)
    assert at.warning and all(fmt.plain(fmt.unplain(w.value)) == w.value for w in at.warning)  # notes escaped too


def test_app_plans_exactly_as_the_cli() -> None:
    """The base plan of the app equals ``gpuplan plan``'s (plan_from_usage) on the same data and window."""
    from app.cli import plan_from_usage

    settings = A.PlannerSettings("helios", 168)
    usage = A.cached_usage("helios")
    config = settings.plan_config(A.window_start(usage))
    cli, _ = plan_from_usage(usage, load_catalog(), config)
    app = A.cached_plan(settings)
    assert app.scenarios.names == cli.scenarios.names and app.scenarios.horizon_end == cli.scenarios.horizon_end
    for g in cli.scenarios.gpu_models:
        np.testing.assert_allclose(app.scenarios.demand[g], cli.scenarios.demand[g], rtol=1e-12)
        np.testing.assert_allclose(app.scenarios.tail[g], cli.scenarios.tail[g], rtol=1e-12)
    assert [(c.instance_type, c.purchase_option, c.count) for c in app.plan.commitments] == [
        (c.instance_type, c.purchase_option, c.count) for c in cli.plan.commitments]
    assert app.plan.expected.present_value_usd == pytest.approx(cli.plan.expected.present_value_usd, rel=1e-9)
    assert app.plan.assumptions["notes"] == cli.plan.assumptions["notes"]


def _error_script() -> None:
    from app import state
    from optimizer.inputs import PlanningError

    def blocked() -> None:
        raise PlanningError("no plan satisfies all constraints (spot cap)")

    def bug() -> None:
        raise RuntimeError("kaput")

    state.guarded(blocked)
    state.guarded(bug)


def test_errors_are_one_line_without_traceback() -> None:
    at = AppTest.from_function(_error_script, default_timeout=30)
    at.run()
    assert not at.exception
    assert [fmt.unplain(e.value) for e in at.error] == ["error: no plan satisfies all constraints (spot cap)",
                                           "unexpected error (RuntimeError): kaput"]


@pytest.mark.slow
def test_app_on_synthetic_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped default (synthetic org, four GPU models) renders end to end; the forecast takes ~1 min."""
    monkeypatch.delenv(A.DEFAULT_SAMPLE_ENV, raising=False)
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    at = open_page(FORECAST_PAGE)
    assert at.selectbox(key=A.SAMPLE_KEY).value == "synthetic"
    at.radio(key=A.FAN_LEVEL_KEY).set_value(FS.LEVEL_GPU)
    rerun(at)
    assert "NVIDIA H100" in at.selectbox(key=A.FAN_ITEM_KEY).options
    at.switch_page(PLAN_PAGE)
    assert rerun(at).session_state[A.PLAN_SUMMARY_KEY]["expected_usd"] > 0


# --- pure helpers ---------------------------------------------------------------------------------
def _toy_history(days: int = 28, start: str = "2026-01-01") -> pd.DataFrame:
    """Usage before the toy forecast: the same two teams' daily wave, ``days`` days back."""
    ts = pd.date_range(pd.Timestamp(start) - pd.Timedelta(days=days), pd.Timestamp(start), freq="h", inclusive="left")
    rows = []
    for team, level in (("alpha", 16.0), ("beta", 8.0)):
        wave = level * (1 + 0.3 * np.sin(np.arange(len(ts)) * 2 * np.pi / 24))
        rows.append(pd.DataFrame({S.TIMESTAMP: ts, S.TEAM: team, S.GPU_TYPE: "NVIDIA A100", S.GPUS: wave}))
    return pd.concat(rows, ignore_index=True)


def _toy_forecast(hours: int = 72) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=hours, freq="h")
    rows = []
    for team, level in (("alpha", 16.0), ("beta", 8.0)):
        wave = level * (1 + 0.3 * np.sin(np.arange(hours) * 2 * np.pi / 24))
        rows.append(pd.DataFrame({S.TEAM: team, S.GPU_TYPE: "NVIDIA A100", S.TIMESTAMP: ts, S.MEAN: wave,
                                  S.P10: 0.7 * wave, S.P50: wave, S.P90: 1.4 * wave, S.MODEL: "toy"}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def toy_plan():
    fc = _toy_forecast()
    settings = A.PlannerSettings(sample="toy", hours=72, growth=0.0, max_spot_share=0.3, allow_spot=True)
    return A.plan_forecast(fc, load_catalog(), settings, fc[S.TIMESTAMP].min(), history=_toy_history())


def test_settings_map_percent_widgets_to_plan_config() -> None:
    settings = A.PlannerSettings(sample="helios", hours=168, growth=0.5, max_spot_share=0.0, allow_spot=False)
    config = settings.plan_config(pd.Timestamp("2020-06-01"))
    assert (config.hours, config.growth, config.max_spot_share, config.allow_spot) == (168, 0.5, 0.0, False)
    assert config.end == pd.Timestamp("2020-06-08")
    assert settings.forecast_settings == A.ForecastSettings("helios", 168)
    assert hash(settings) == hash(A.PlannerSettings("helios", 168, 0.5, 0.0, False))


def test_defaults_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "nonexistent")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "99999")
    assert (A.default_sample(), A.default_hours()) == ("synthetic", A.MAX_HOURS)
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "not a number")
    assert (A.default_sample(), A.default_hours()) == ("helios", A.DEFAULT_HOURS)


def test_fan_frames_totals_and_single_series() -> None:
    fc = _toy_forecast()
    first = fc[S.TIMESTAMP].min()
    hist_ts = pd.date_range(first - pd.Timedelta(hours=1000), first - pd.Timedelta(hours=1), freq="h")
    usage = pd.concat([pd.DataFrame({S.TIMESTAMP: hist_ts, S.TEAM: t, S.GPU_TYPE: "NVIDIA A100", S.GPUS: g})
                       for t, g in (("alpha", 10.0), ("beta", 5.0))], ignore_index=True)
    assert FS.fan_items(fc, FS.LEVEL_ORG) == [FS.ORG_TOTAL]
    assert FS.fan_items(fc, FS.LEVEL_SERIES) == ["alpha · NVIDIA A100", "beta · NVIDIA A100"]
    assert FS.fan_items(pd.concat([fc, fc.assign(**{S.GPU_TYPE: "NVIDIA H100"})]), FS.LEVEL_GPU) == [
        "NVIDIA A100", "NVIDIA H100"]
    hist, fut = FS.level_fan_frames(usage, fc, FS.LEVEL_ORG, FS.ORG_TOTAL)
    assert len(hist) == FS.HISTORY_SHOWN_HOURS and hist[S.GPUS].eq(15.0).all()
    assert fut[S.P90].sum() == pytest.approx(fc[S.P90].sum())
    hist, fut = FS.level_fan_frames(usage, fc, FS.LEVEL_SERIES, "beta · NVIDIA A100")
    assert hist[S.GPUS].eq(5.0).all()
    assert fut[S.P50].sum() == pytest.approx(fc.loc[fc[S.TEAM] == "beta", S.P50].sum())
    hist, fut = FS.level_fan_frames(usage, fc, FS.LEVEL_TEAM, "alpha")
    assert hist[S.GPUS].eq(10.0).all()
    assert fut[S.P10].sum() == pytest.approx(fc.loc[fc[S.TEAM] == "alpha", S.P10].sum())


def test_cost_frames_add_up_to_the_plan(toy_plan) -> None:
    hourly = PF.hourly_costs(toy_plan)
    daily = PF.daily_costs(hourly, PF.scenario_weights(toy_plan))
    assert set(daily["category"]) == set(PF.COST_CATEGORIES)
    assert daily["usd"].sum() == pytest.approx(toy_plan.plan.expected.total_usd)
    assert daily["day"].nunique() == 3
    per_gpu = PF.gpu_model_costs(hourly, PF.scenario_weights(toy_plan))
    assert per_gpu["usd"].sum() == pytest.approx(toy_plan.plan.expected.total_usd)


def test_plan_tables_and_downloads(toy_plan) -> None:
    plan = toy_plan.plan
    table = PF.commitments_frame(plan)
    assert {"Count", "Instance type", "Option", "GPUs", "USD/h per instance", "Upfront USD per instance"} <= set(
        table.columns)
    assert len(table) == len(plan.commitments)
    assert list(PF.on_demand_frame(plan)["GPU model"]) == ["NVIDIA A100"]
    assert len(PF.spot_frame(plan)) == len(plan.spot)
    assert Plan.from_dict(json.loads(plan.to_json())).expected.total_usd == pytest.approx(plan.expected.total_usd,
                                                                                           abs=0.01)
    summary = PF.plan_summary(toy_plan)
    assert summary["expected_usd"] == plan.expected.total_usd
    assert summary["commitment_obligation_usd"] == pytest.approx(sum(
        c.count * c.effective_hourly_usd * c.term_hours for c in plan.commitments))
    csv = A.forecast_csv(_toy_forecast()).decode()
    assert csv.splitlines()[0] == ",".join(S.FORECAST_COLUMNS)
    assert csv.splitlines()[1].split(",")[2] == "2026-01-01T00:00:00Z"


def test_chart_builders_return_altair_specs(toy_plan) -> None:
    fc = _toy_forecast()
    hist = pd.DataFrame({S.TIMESTAMP: pd.date_range("2025-12-31", periods=24, freq="h"), S.GPUS: 20.0})
    fut = fc.groupby(S.TIMESTAMP, as_index=False)[[S.P10, S.P50, S.P90]].sum()
    fan = charts.fan_chart(hist, fut, title="total")
    assert isinstance(fan, alt.LayerChart)
    spec = fan.to_dict()
    assert charts.DEMAND_AXIS in json.dumps(spec)
    assert spec["title"] == "total"
    hourly = PF.hourly_costs(toy_plan)
    daily = charts.cost_breakdown_chart(PF.daily_costs(hourly, PF.scenario_weights(toy_plan)))
    per_gpu = charts.gpu_model_cost_chart(PF.gpu_model_costs(hourly, PF.scenario_weights(toy_plan)))
    upfront = charts.upfront_chart(PF.upfront_frame(toy_plan.plan))
    assert toy_plan.plan.expected.upfront_usd > 0 and "Upfront cash (USD)" in json.dumps(upfront.to_dict())
    assert PF.upfront_frame(toy_plan.plan)["usd"].sum() == pytest.approx(toy_plan.plan.expected.upfront_usd)
    for chart, unit in ((daily, "USD per day"), (per_gpu, "USD")):
        assert isinstance(chart, alt.Chart)
        text = json.dumps(chart.to_dict())
        assert unit in text and "committed" in text
