"""The Budgets & chargeback page through Streamlit's AppTest: it shows the CLI's numbers (overspending team,
chargeback equal to the bill), offers the downloads, and turns a bad uploaded file into one error line."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app import operate_state as O
from forecasting.samples import load_sample
from optimizer.billing import bill
from optimizer.plan import Plan


def page() -> None:
    from app.app_pages import budgets

    budgets.render()


@pytest.fixture(scope="module")
def app_run() -> AppTest:
    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    (m,) = [m for m in at.metric if m.label == label]
    return m.value


def test_page_shows_alerts_and_chargeback_equal_to_the_bill(app_run):
    at = app_run
    assert not at.error or all("ALERT" in e.value for e in at.error)
    alerts = [e.value for e in at.error if e.value.startswith("ALERT")]
    assert len(alerts) == 1 and "multimodal" in alerts[0] and "runs out 2025-12-" in alerts[0]
    assert metric(at, "Budgets alerting") == "1 of 22"
    total = bill(Plan.read("data_samples/operate/plan_2025-11.json"), load_sample("synthetic")).total_usd
    assert metric(at, "Allocated (USD)") == metric(at, "Bill (USD)") == f"{total:,.2f}"
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"Download alerts.json", "Download chargeback.csv", "Download unit_costs.csv", "Download violations.csv",
            "Download report.html"} <= labels
    assert any("guardrail violation" in w.value for w in at.warning)


def test_central_policy_adds_the_central_row(app_run):
    at = app_run
    at.radio(key="operate_unused_policy").set_value("central").run()
    assert not at.exception
    frames = [d.value for d in at.dataframe if "unused_commitment_usd" in d.value.columns]
    assert frames and "central" in set(frames[0]["team"])


def test_bad_budgets_file_is_one_error_line(monkeypatch):
    original = O.shipped

    def bad(kind: str) -> O.InputFile:
        if kind == "budgets":
            return O.InputFile("budgets.csv", b"team,period,budget_usd\nmarketing,2025-Q4,10\n")
        return original(kind)

    monkeypatch.setattr(O, "shipped", bad)
    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("budgets.csv, row 2, column 'team': unknown team 'marketing'" in e for e in errors)
