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

from app import charts
from app import state as A
from forecasting import schema as S
from optimizer.catalog import load_catalog
from optimizer.plan import Plan

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
METRICS = ("Expected cost (USD)", "Cost range p10-p90 (USD)", "All on-demand cost (USD)",
           "Savings vs all on-demand (USD)", "Commitment utilisation (%)", "Upfront cash (USD)")


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
    assert metric_usd(at, "Expected cost (USD)") == pytest.approx(summary["expected_usd"], abs=1)
    assert summary["expected_usd"] <= summary["all_on_demand_usd"] + 1
    assert {"Expected cost per day (USD)", "Expected cost per GPU model (USD)"} <= set(vega_titles(at))
    assert len(at.get("download_button")) == 5  # plan.json, commitments, hourly costs, forecast, HTML summary
    assert len(at.dataframe) >= 2  # commitments / spot / on-demand tables


def test_growth_slider_raises_expected_cost(helios_env: None) -> None:
    at = open_page(WHATIF_PAGE)
    before = metric_usd(at, "Expected cost (USD)")
    at.slider(key=A.GROWTH_KEY).set_value(50)
    rerun(at)
    after = metric_usd(at, "Expected cost (USD)")
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
    assert at.radio(key=A.FAN_LEVEL_KEY).value == A.LEVEL_ORG
    assert vega_titles(at)[0] == A.ORG_TOTAL
    at.radio(key=A.FAN_LEVEL_KEY).set_value(A.LEVEL_SERIES)
    rerun(at)
    box = at.selectbox(key=A.FAN_ITEM_KEY)
    choice = box.options[1]
    box.set_value(choice)
    rerun(at)
    assert at.selectbox(key=A.FAN_ITEM_KEY).value == choice
    assert vega_titles(at)[0] == f"{A.LEVEL_SERIES}: {choice}"
    assert list(at.dataframe[0].value["Model"])  # the chosen model of that series


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
    assert [e.value for e in at.error] == ["error: no plan satisfies all constraints (spot cap)",
                                           "unexpected error (RuntimeError): kaput"]


@pytest.mark.slow
def test_app_on_synthetic_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped default (synthetic org, four GPU models) renders end to end; the forecast takes ~1 min."""
    monkeypatch.delenv(A.DEFAULT_SAMPLE_ENV, raising=False)
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    at = open_page(FORECAST_PAGE)
    assert at.selectbox(key=A.SAMPLE_KEY).value == "synthetic"
    at.radio(key=A.FAN_LEVEL_KEY).set_value(A.LEVEL_GPU)
    rerun(at)
    assert "NVIDIA H100" in at.selectbox(key=A.FAN_ITEM_KEY).options
    at.switch_page(PLAN_PAGE)
    assert rerun(at).session_state[A.PLAN_SUMMARY_KEY]["expected_usd"] > 0


# --- pure helpers ---------------------------------------------------------------------------------
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
    return A.plan_forecast(fc, load_catalog(), settings, fc[S.TIMESTAMP].min())


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
    options = A.series_options(fc)
    assert options == [A.ORG_TOTAL, "alpha · NVIDIA A100", "beta · NVIDIA A100"]  # one GPU model: no per-model total
    hist, fut = A.fan_frames(usage, fc, A.ORG_TOTAL)
    assert len(hist) == A.HISTORY_SHOWN_HOURS and hist[S.GPUS].eq(15.0).all()
    assert fut[S.P90].sum() == pytest.approx(fc[S.P90].sum())
    hist, fut = A.fan_frames(usage, fc, "beta · NVIDIA A100")
    assert hist[S.GPUS].eq(5.0).all()
    assert fut[S.P50].sum() == pytest.approx(fc.loc[fc[S.TEAM] == "beta", S.P50].sum())
    assert A.series_label(A.ALL_TEAMS, "NVIDIA A100") in A.series_options(
        pd.concat([fc, fc.assign(**{S.GPU_TYPE: "NVIDIA H100"})]))


def test_cost_frames_add_up_to_the_plan(toy_plan) -> None:
    hourly = A.hourly_costs(toy_plan)
    daily = A.daily_costs(hourly, A.scenario_weights(toy_plan))
    assert set(daily["category"]) == set(A.COST_CATEGORIES)
    assert daily["usd"].sum() == pytest.approx(toy_plan.plan.expected.total_usd)
    assert daily["day"].nunique() == 3
    per_gpu = A.gpu_model_costs(hourly, A.scenario_weights(toy_plan))
    assert per_gpu["usd"].sum() == pytest.approx(toy_plan.plan.expected.total_usd)


def test_plan_tables_and_downloads(toy_plan) -> None:
    plan = toy_plan.plan
    table = A.commitments_frame(plan)
    assert {"Count", "Instance type", "Option", "GPUs", "USD/h per instance", "Upfront USD per instance"} <= set(
        table.columns)
    assert len(table) == len(plan.commitments)
    assert list(A.on_demand_frame(plan)["GPU model"]) == ["NVIDIA A100"]
    assert len(A.spot_frame(plan)) == len(plan.spot)
    assert Plan.from_dict(json.loads(plan.to_json())).expected.total_usd == pytest.approx(plan.expected.total_usd,
                                                                                           abs=0.01)
    summary = A.plan_summary(toy_plan)
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
    hourly = A.hourly_costs(toy_plan)
    daily = charts.cost_breakdown_chart(A.daily_costs(hourly, A.scenario_weights(toy_plan)))
    per_gpu = charts.gpu_model_cost_chart(A.gpu_model_costs(hourly, A.scenario_weights(toy_plan)))
    for chart, unit in ((daily, "USD per day"), (per_gpu, "USD")):
        assert isinstance(chart, alt.Chart)
        text = json.dumps(chart.to_dict())
        assert unit in text and "committed" in text
