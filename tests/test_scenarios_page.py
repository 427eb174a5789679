"""Scenarios page through AppTest on the real Helios sample (one-week window): save two scenarios, compare them,
reopen the store in a fresh session (a restarted app), load one back and delete one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import fmt, view
from app import plan_frames as PF
from app import state as A
from app import store as St
from app import whatif_model as W
from app.app_pages import scenarios as P


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Path:
    path = tmp_path / "scenarios.duckdb"
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    monkeypatch.setenv(St.STORE_ENV, str(path))
    return path


def open_page() -> AppTest:
    """The Scenarios page as a user opens it: the shared sidebar uploader and the page (pages are callables
    in st.navigation, so the page function runs as its own AppTest script)."""
    at = AppTest.from_function(_page, default_timeout=300)
    ok(at.run())
    return at


def _page() -> None:  # runs inside AppTest's script: imports must be local
    from app import uploads
    from app.app_pages import scenarios

    uploads.sidebar_upload()
    scenarios.render()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def save(at: AppTest, name: str, note: str = "") -> AppTest:
    at.text_input(key=P.NAME_KEY).set_value(name)
    at.text_input(key=P.NOTE_KEY).set_value(note)
    next(b for b in at.get("button") if b.proto.label == "Save scenario").click()  # the form's submit button
    return ok(at.run())


def test_save_compare_reload_delete(env: Path) -> None:
    at = open_page()
    assert at.title[0].value == "Scenarios"
    assert any("No scenarios saved yet" in i.value for i in at.info)

    save(at, "base", note="as forecast")
    assert at.session_state[P.SAVED_KEY] == "base"
    base = St.ScenarioStore(env).load("base")
    assert base.settings["sample"] == "helios" and base.settings["hours"] == 168
    assert base.data_source == "sample:helios"
    assert base.summary.expected_usd > 0
    assert base.summary.expected_usd <= base.summary.all_on_demand_usd + 1
    assert any(f"expected cost {fmt.usd(base.summary.expected_usd)}" in fmt.unplain(s.value) for s in at.success)

    # What-if settings (as the What-if page stores them): +50% demand and no spot
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=168, growth=0.5, allow_spot=False)
    save(at, "growth +50%, no spot")
    grown = St.ScenarioStore(env).load("growth +50%, no spot")
    assert grown.settings["growth"] == 0.5 and grown.settings["allow_spot"] is False
    assert grown.summary.expected_usd > base.summary.expected_usd  # more demand costs more
    assert grown.plan.spot == () or all(s.max_instances == 0 for s in grown.plan.spot)

    # the same name again is refused with one line, the store is unchanged
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=168, growth=-0.3)
    at.text_input(key=P.NAME_KEY).set_value("base")
    next(b for b in at.get("button") if b.proto.label == "Save scenario").click()
    at.run()
    assert [fmt.unplain(e.value) for e in at.error] == ["error: scenario 'base' already exists (fix: choose another "
                                                       "name, or replace it)"]
    assert St.ScenarioStore(env).load("base").summary.expected_usd == pytest.approx(base.summary.expected_usd)

    # a fresh session on the same file (the app restarted, the page reloaded)
    at = open_page()
    compare = at.multiselect(key=P.COMPARE_KEY)
    assert sorted(compare.value) == ["base", "growth +50%, no spot"]
    compare.set_value(["base", "growth +50%, no spot"])
    ok(at.run())
    metrics = [m for m in at.metric if m.label == "Expected cost (USD)"]
    assert [m.value for m in metrics] == [fmt.usd(base.summary.expected_usd), fmt.usd(grown.summary.expected_usd)]
    assert metrics[1].delta == f"{fmt.signed_usd(grown.summary.expected_usd - base.summary.expected_usd)} vs base"
    (table,) = [f.set_index("Figure") for f in (view.shown(t.value) for t in at.table)
                if list(f.columns) == ["Figure", "base", "growth +50%, no spot"]]
    assert table.loc["Input: Demand growth", "growth +50%, no spot"] == "+50 %"
    assert table.loc["Input: Demand growth", "base"] == "+0 %"
    assert table.loc["Input: Spot", "growth +50%, no spot"] == "not allowed"
    assert table.loc["Input: Plan window", "base"] == "168 h"
    assert table.loc["Expected cost", "base"] == fmt.usd(base.summary.expected_usd)
    assert any("Cost vs speed" in h.value for h in at.header)
    # not rightsized: time-to-result is the window on today's GPUs stretched by the plan's spot rework
    settings = A.PlannerSettings(sample="helios", hours=168)
    overhead = W.spot_time_overhead(A.cached_plan(settings))
    assert overhead > 0
    assert base.summary.time_to_result_hours == pytest.approx(168 * (1 + overhead))
    assert grown.summary.time_to_result_hours == pytest.approx(168.0)  # no spot: no rework
    sweep = P.cached_sweep(P.sweep_key(settings))
    assert table.loc["Time-to-result", "base"] == fmt.hours(base.summary.time_to_result_hours)
    (shown,) = [f for f in (view.shown(t.value) for t in at.table) if "Mean completion (h)" in f.columns]
    frontier = shown.drop(columns="GPU mix (share of work)").map(fmt.parse_number)
    assert len(frontier) == int(sweep.points["on_frontier"].sum()) >= 1
    assert frontier["Backlog cost (USD)"].is_monotonic_decreasing or len(frontier) == 1  # faster costs more
    assert frontier["Mean completion (h)"].is_monotonic_increasing

    # load a scenario back: its settings become the What-if settings
    at.selectbox(key=P.APPLY_KEY).set_value("growth +50%, no spot")
    next(b for b in at.button if b.label == "Load into What-if").click()
    ok(at.run())
    assert at.session_state[A.WHATIF_KEY] == A.PlannerSettings(sample="helios", hours=168, growth=0.5,
                                                               allow_spot=False)

    at.selectbox(key=P.DELETE_KEY).set_value("base")
    ok(at.run())  # choosing enables the button
    next(b for b in at.button if b.label == "Delete").click()
    ok(at.run())
    assert St.ScenarioStore(env).names() == ["growth +50%, no spot"]
    assert any("Save at least two scenarios" in i.value for i in at.info)

    # "replace" saves the current settings (loaded above: +50%, no spot) with -30% growth under the same name
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=168, growth=-0.3, allow_spot=False)
    at.text_input(key=P.NAME_KEY).set_value("growth +50%, no spot")
    at.checkbox(key=P.REPLACE_KEY).check()
    next(b for b in at.get("button") if b.proto.label == "Save scenario").click()
    ok(at.run())
    replaced = St.ScenarioStore(env).load("growth +50%, no spot")
    assert replaced.settings["growth"] == pytest.approx(-0.3)
    assert replaced.summary.expected_usd < grown.summary.expected_usd  # less demand costs less
    assert St.ScenarioStore(env).names() == ["growth +50%, no spot"]


def test_time_at_picks_the_routing_in_force() -> None:
    points = pd.DataFrame({"speed_priority": [0.0, 0.2, 0.5], "completion_hours": [300.0, 200.0, 120.0]})
    assert P.time_at(points, 0.0) == 300.0
    assert P.time_at(points, 0.1) == 300.0  # 0.1 still routes as 0.0 did
    assert P.time_at(points, 0.2) == 200.0
    assert P.time_at(points, 0.9) == 120.0


def test_what_to_buy_lines_and_setting_texts() -> None:
    from tests.test_store import flat_plan

    plan = flat_plan(gpus=10.0, hours=100)
    assert P.what_to_buy(plan) == ["10 x x.1, reserved_1y_no_upfront (10 NVIDIA A100) from 2026-01-01"]
    assert P.setting_text("growth", 0.25) == "25.0 %"
    assert P.setting_text("team_growth", (("nlp", 0.1),)) == "nlp +10.0 %"
    assert P.setting_text("budget_usd", 12345.0) == "12,345 USD"
    assert P.setting_text("allow_spot", False) == "no"


# --- scenarios saved before the maximum commitment became an obligation ------------------------------------
def _old_settings(**changes) -> dict:
    """Settings JSON as an older planner saved it: an hourly maximum commitment, no obligation, no cost of capital."""
    old = St.settings_dict(A.PlannerSettings(sample="helios", hours=168))
    old.pop("max_obligation_usd")
    old.pop("cost_of_capital")
    return {**old, A.OLD_MAX_COMMIT_FIELD: 100.0, **changes}


def test_old_hourly_cap_converts_or_drops_with_a_note() -> None:
    settings, notes = A.settings_from_saved(_old_settings())  # 1-year options only: X USD/h x 8,760 h
    assert settings.max_obligation_usd == 100.0 * 8760 and settings.cost_of_capital == 0.10
    (note,) = notes
    assert "converted to a maximum commitment obligation of 876,000 USD" in note and "100.00 USD/h x 8,760 h" in note
    mixed, notes = A.settings_from_saved(_old_settings(options=["reserved_1y_no_upfront", "reserved_3y_no_upfront"]))
    assert mixed.max_obligation_usd is None and "dropped" in notes[0] and "single term" in notes[0]
    for damaged in ("a lot", -5.0, float("inf"), [1, 2]):
        kept, notes = A.settings_from_saved(_old_settings(**{A.OLD_MAX_COMMIT_FIELD: damaged}))
        assert kept.max_obligation_usd is None and "dropped" in notes[0]
    assert A.settings_from_saved(_old_settings(**{A.OLD_MAX_COMMIT_FIELD: None})) == (
        A.PlannerSettings(sample="helios", hours=168), ())
    both, notes = A.settings_from_saved(_old_settings(max_obligation_usd=5e6))
    assert both.max_obligation_usd == 5e6 and "dropped" in notes[0]
    rows = P.settings_rows(_old_settings())
    assert rows["Maximum commitment"] == "876,000 USD obligation over the full terms"
    assert "converted" in rows[P.CONVERTED_LABEL]


def test_old_scenarios_load_compare_and_reload_with_a_note(env: Path) -> None:
    db = St.ScenarioStore(env)
    plan = A.cached_plan(A.PlannerSettings(sample="helios", hours=168)).plan
    db.save("old hourly cap", _old_settings(), plan, data_source="sample:helios")
    db.save("old mixed terms", _old_settings(options=["reserved_1y_no_upfront", "reserved_3y_no_upfront"]), plan,
            data_source="sample:helios")
    at = open_page()
    at.multiselect(key=P.COMPARE_KEY).set_value(["old hourly cap", "old mixed terms"])
    ok(at.run())
    (table,) = [f.set_index("Figure") for f in (view.shown(t.value) for t in at.table)
                if list(f.columns) == ["Figure", "old hourly cap", "old mixed terms"]]
    assert table.loc["Input: Maximum commitment", "old hourly cap"] == "876,000 USD obligation over the full terms"
    assert table.loc["Input: Maximum commitment", "old mixed terms"] == "none"
    assert "dropped" in table.loc[f"Input: {P.CONVERTED_LABEL}", "old mixed terms"]
    assert table.loc["Total obligation over the terms", "old hourly cap"] == fmt.usd(PF.obligation_usd(plan))
    assert table.loc["Present value over the terms", "old hourly cap"].endswith("at 10 %/year to 2021-05-31")
    at.selectbox(key=P.APPLY_KEY).set_value("old hourly cap")
    next(b for b in at.button if b.label == "Load into What-if").click()
    ok(at.run())
    assert at.session_state[A.WHATIF_KEY].max_obligation_usd == 876_000.0
    infos = [fmt.unplain(i.value) for i in at.info]
    assert any(i.startswith("Saved by an older planner: maximum commitment of 100.0 USD/h") and "876,000 USD" in i
               for i in infos), infos
    at.selectbox(key=P.APPLY_KEY).set_value("old mixed terms")
    next(b for b in at.button if b.label == "Load into What-if").click()
    ok(at.run())
    assert at.session_state[A.WHATIF_KEY].max_obligation_usd is None
    assert any("dropped" in fmt.unplain(i.value) for i in at.info)
