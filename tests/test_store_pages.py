"""The shared store on the Budgets and Plan pages through AppTest (real sample data, a real DuckDB store in
tmp_path): save the budgets in use, use saved budgets, save the current plan; every save is audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import fmt
from app import state as A
from app import store as St

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
SHIPPED_BUDGETS = ROOT / "data_samples" / "operate" / "budgets.csv"


def _budgets_page() -> None:  # runs inside AppTest's script: imports must be local
    from app.app_pages import budgets

    budgets.render()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e for e in at.error if not fmt.unplain(e.value).startswith("ALERT")], [e.value for e in at.error]
    return at


def alerting(at: AppTest) -> str:
    (m,) = [m for m in at.metric if m.label == "Budgets alerting"]
    return m.value


def test_budgets_in_use_are_saved_and_saved_budgets_are_used(tmp_path, monkeypatch):
    path = tmp_path / "store.duckdb"
    monkeypatch.setenv(St.STORE_ENV, str(path))
    db = St.open_store()
    db.save_budgets("multimodal only", "team,period,budget_usd\nmultimodal,2025-Q4,1000\n", actor="fin@example.com")
    at = AppTest.from_function(_budgets_page, default_timeout=300)
    ok(at.run())
    assert alerting(at) == "1 of 22"  # the shipped budgets

    at.text_input(key="store_budgets_name_synthetic").set_value("FY25 Q4 shipped")
    next(b for b in at.get("button") if b.proto.label == "Save the budgets in use").click()
    ok(at.run())
    assert db.load_budgets("FY25 Q4 shipped").budgets_csv == SHIPPED_BUDGETS.read_text()
    assert any("Saved budgets 'FY25 Q4 shipped'" in fmt.unplain(s.value) for s in at.success)

    at.selectbox(key="store_budgets_pick_synthetic").set_value("multimodal only")
    ok(at.run())
    assert alerting(at) == "1 of 1"  # the saved file, one budget of 1,000 USD that multimodal overspends
    log = db.audit()
    assert log[["actor", "action", "object_kind", "object_name"]].values.tolist() == [
        ["local", "save", "budget", "FY25 Q4 shipped"], ["fin@example.com", "save", "budget", "multimodal only"]]


@pytest.fixture
def helios_env(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    path = tmp_path / "store.duckdb"
    monkeypatch.setenv(St.STORE_ENV, str(path))
    return path


def test_the_plan_page_saves_the_current_plan_and_offers_it_for_download(helios_env):
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    ok(at.switch_page("app_pages/plan.py").run())
    assert not helios_env.exists()  # showing the pages reads only: no store file until the first save
    at.text_input(key="store_plan_name").set_value("december buy")
    next(b for b in at.get("button") if b.proto.label == "Save this plan").click()
    ok(at.run())
    db = St.open_store()
    saved = db.load_plan("december buy")
    shown = at.session_state[A.PLAN_SUMMARY_KEY]  # the figures the page shows: the saved plan is that plan
    assert saved.data_source == "sample:helios" and saved.plan.expected.total_usd > 0
    assert saved.plan.expected.total_usd == pytest.approx(shown["expected_usd"])
    assert sum(c.count for c in saved.plan.commitments) == shown["commitments"]
    assert any(f"expected cost {fmt.usd(saved.plan.expected.total_usd)}" in fmt.unplain(s.value) for s in at.success)
    assert "Download its plan.json" in {b.proto.label for b in at.get("download_button")}
    assert db.audit()[["actor", "action", "object_kind", "object_name"]].values.tolist() == [
        ["local", "save", "plan", "december buy"]]
