"""The Budgets & chargeback page through Streamlit's AppTest: it shows the CLI's numbers (overspending team,
chargeback equal to the bill), offers the downloads, and turns a bad uploaded file into one error line."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app import fmt, view
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
    alerts = [fmt.unplain(e.value) for e in at.error if fmt.unplain(e.value).startswith("ALERT")]
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
    frames = [f for f in (view.shown(t.value) for t in at.table) if "Unused commitment (USD)" in f.columns]
    assert frames and "central" in set(frames[0]["Team"])


def test_anomalies_tab_finds_what_the_cli_finds_on_request():
    """The Anomalies tab runs nothing until asked; then it lists gpuplan anomalies' rows on the same data (the last
    28 days of the SYNTHETIC sample at list rates), with a CSV download; a floor above every impact leaves none."""
    from operate.anomalies import AnomalyConfig, detect

    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    assert not at.exception
    assert not [b for b in at.get("download_button") if b.proto.label == "Download anomalies.csv"]
    next(b for b in at.button if b.label == "Find anomalies").click().run()
    assert not at.exception, [e.value for e in at.exception]
    usage = load_sample("synthetic")
    expected = detect(usage, O.rates(O.SAMPLE).of, None, AnomalyConfig(lookback_days=28)).table
    assert len(expected) > 0 and metric(at, "Anomalies") == f"{len(expected):,}"
    (shown,) = [f for f in (view.shown(t.value) for t in at.table) if "Impact (USD)" in f.columns]
    assert list(shown["Team"]) == list(expected["team"]) and list(shown["Kind"]) == [
        k.replace("_", " ") for k in expected["kind"]]
    assert "Download anomalies.csv" in {b.proto.label for b in at.get("download_button")}
    at.number_input(key="operate_anomaly_floor").set_value(float(expected["impact_usd"].abs().max()) + 1).run()
    assert not at.exception and metric(at, "Anomalies") == "0"
    assert any("No anomaly in the window" in s.value for s in at.success)


def test_anomalies_tab_expects_the_planned_events_it_is_given():
    """The tab's planned events: the synthetic sample offers its own plan (the --events file shipped with it), and
    the search with an events file expects what it plans: bio-ml's +20 A100 from 2025-11-27 15:00, a level shift
    without it, is no anomaly with it. A bad events file is one error line."""
    from forecasting.events import EventsError, load_events
    from forecasting.samples import PLAN_FILE, data_dir
    from operate.anomalies import AnomalyConfig, detect

    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    radio = at.radio(key="operate_anomaly_events")
    assert list(radio.options) == ["No planned events", "The sample's plan", "Upload a file"]
    radio.set_value("The sample's plan").run()
    next(b for b in at.button if b.label == "Find anomalies").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("synthetic_org_plan.yaml" in fmt.unplain(c.value) for c in at.caption)
    usage = load_sample("synthetic")
    planned = detect(usage, O.rates(O.SAMPLE).of, None, AnomalyConfig(lookback_days=28),
                     events=load_events(data_dir() / PLAN_FILE)).table
    assert metric(at, "Anomalies") == f"{len(planned):,}"

    def bio_ml_shifts(events: O.InputFile | None) -> int:
        table = O.anomalies(O.SAMPLE, 1.0, 0.0, events).table
        return int(((table["team"] == "bio-ml") & table["kind"].isin(["level_shift", "drift"])).sum())

    run = O.InputFile("planned.yaml", b"events:\n  - {team: bio-ml, gpu_type: NVIDIA A100, kind: add, gpus: 20, "
                                      b"start: '2025-11-27T15:00:00Z', note: docking sweep}\n")
    assert bio_ml_shifts(None) == 1 and bio_ml_shifts(run) == 0
    with pytest.raises(EventsError, match="planned.yaml, item 1, field 'gpus': missing gpus"):
        O.anomalies(O.SAMPLE, 1.0, 0.0, O.InputFile("planned.yaml", b"- {team: bio-ml, gpu_type: NVIDIA A100, "
                                                                    b"kind: add, start: 2025-11-27}\n"))


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
    errors = [fmt.unplain(e.value) for e in at.error]
    assert any("budgets.csv, row 2, column 'team': unknown team 'marketing'" in e for e in errors)


# --- the page follows the shared data source -----------------------------------------------------------
def _app_page() -> None:  # the page as st.navigation runs it: the shared uploader, then the page
    from app import uploads
    from app.app_pages import budgets

    uploads.sidebar_upload()
    budgets.render()


@pytest.fixture
def helios_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import state as A

    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")


def test_other_source_asks_for_files_and_charges_back_the_current_plan(helios_env) -> None:
    from app import state as A
    from app.app_pages import budgets as B

    at = AppTest.from_function(_app_page, default_timeout=300)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key=A.DATA_SOURCE_KEY).value == "helios"
    infos = " ".join(fmt.unplain(i.value) for i in at.info)
    for kind in ("budgets", "units", "policy"):
        assert f"No {kind} file for {A.SAMPLE_LABELS['helios']} yet: upload one" in infos
    assert "The cost review needs the budgets, units, policy file(s)" in infos
    assert at.radio(key=B.PLAN_SOURCE_KEY).options == [B.PLAN_CURRENT]  # no shipped plan for Helios
    # chargeback of the current planner plan (base scenario) on the demand it was planned for
    settings = A.PlannerSettings(sample="helios", hours=168)
    plan = A.cached_plan(settings).plan
    total = bill(plan, O.planned_demand(settings)).total_usd
    assert metric(at, "Allocated (USD)") == metric(at, "Bill (USD)")
    assert float(metric(at, "Bill (USD)").replace(",", "")) == pytest.approx(total, abs=0.011)  # per-category cents
    (table,) = [f for f in (view.shown(t.value) for t in at.table) if "Unused commitment (USD)" in f.columns]
    assert set(table["Team"]) == set(load_sample("helios")["team"])
    assert table["Total (USD)"].map(fmt.parse_number).sum() == pytest.approx(total, abs=0.01)  # cents
    # the planned demand is the forecast mean over the plan window
    demand = O.planned_demand(settings)
    assert demand["timestamp"].min() == plan.window_start and demand["timestamp"].nunique() == 168
    # upload a budgets file for this organisation: alerts follow
    at.file_uploader(key="operate_upload_budgets_helios").set_value(
        ("helios_budgets.csv", b"team,period,budget_usd\nvc6YE,2020-06,100000\nvc3sl,2020-06,900000\n", "text/csv"))
    at.run()
    assert not at.exception
    assert metric(at, "Budgets alerting") == "1 of 2"
    (alert,) = [fmt.unplain(e.value) for e in at.error]
    assert alert.startswith("ALERT vc6YE is projected to spend") and "runs out 2020-06-" in alert
    assert not any("No budgets file" in i.value for i in at.info)
    # a synthetic team is unknown here: one error line naming the file, row and column
    at.file_uploader(key="operate_upload_budgets_helios").set_value(
        ("helios_budgets.csv", b"team,period,budget_usd\nllm-pretrain,2020-06,100\n", "text/csv"))
    at.run()
    assert not at.exception
    assert any("helios_budgets.csv, row 2, column 'team': unknown team 'llm-pretrain'" in fmt.unplain(e.value)
               for e in at.error)


def test_synthetic_current_plan_chargeback(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import state as A
    from app.app_pages import budgets as B

    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    at = AppTest.from_function(_app_page, default_timeout=300)
    at.run()
    assert not at.exception
    assert at.radio(key=B.PLAN_SOURCE_KEY).value == B.PLAN_SHIPPED  # the real billing period by default
    at.radio(key=B.PLAN_SOURCE_KEY).set_value(B.PLAN_CURRENT).run()
    assert not at.exception
    settings = A.PlannerSettings(sample="synthetic", hours=168)
    total = bill(A.cached_plan(settings).plan, O.planned_demand(settings)).total_usd
    assert metric(at, "Allocated (USD)") == metric(at, "Bill (USD)")
    assert float(metric(at, "Bill (USD)").replace(",", "")) == pytest.approx(total, abs=0.011)  # per-category cents
    assert any(c.value.startswith("Chargeback of the current planner plan (base scenario)") for c in at.caption)


def test_alert_threshold_slider_changes_which_budgets_alert():
    # At the default 50% only multimodal (P(overspend) about 99%) alerts; at 5% every budget with a P(overspend)
    # of at least 5% alerts too (the projection does not depend on the threshold, so the count can only grow);
    # at 100% only budgets certain to overspend alert.
    from app.app_pages.budgets import THRESHOLD_KEY

    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    counts = {}
    for pct in (50, 5, 100):
        at.slider(key=THRESHOLD_KEY).set_value(pct).run()
        assert not at.exception, [e.value for e in at.exception]
        counts[pct] = int(metric(at, "Budgets alerting").split(" of ")[0])
    assert counts[50] == 1
    assert counts[5] > counts[50] >= counts[100]


def test_commitments_tab_shows_the_cli_numbers_and_hands_owned_commitments_to_the_planner():
    """The Commitments tab on the shipped example CUR (2 x p4d.24xlarge RI, a 10 USD/h Compute SP): the RI is used
    432 / 544 h over the last 14 days (under 80%), its unused 112 h x 14.49 USD = 1,622.88 USD, and team vision could
    move onto it; the button hands both commitments to the What-if as owned, in the --existing format."""
    from app import state as A
    from optimizer.catalog import load_catalog
    from optimizer.existing import parse_existing

    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "Commitments") == "2" and metric(at, "Under-used below 80 %") == "1"
    assert metric(at, "Unused over the last 14 days (USD)") == fmt.usd(112 * 14.49)
    (found,) = [f for f in (view.shown(t.value) for t in at.table) if "Teams that could move onto it" in f.columns]
    assert list(found["Teams that could move onto it"]) == ["vision (576.0 GPU-h)"]
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"Download inventory.csv", "Download under_used.csv", "Download owned.csv"} <= labels
    next(b for b in at.button if b.label == "Plan with these 2 owned commitments").click().run()
    assert not at.exception
    s = at.session_state[A.WHATIF_KEY]
    owned = parse_existing(s.owned_text, s.owned_name, load_catalog(), "us-east-1")
    assert [(c.purchase_option, c.count, c.commitment_usd_per_hour) for c in owned] == [
        ("reserved_1y_no_upfront", 2, None), ("compute_sp_1y_no_upfront", 1, 10.0)]
    # at 100% the savings plan (6,840 of 7,200 USD used in the month) is under-used too
    at.slider(key="operate_commitments_below_pct").set_value(100).run()
    assert not at.exception and metric(at, "Under-used below 100 %") == "2"


def test_commitments_tab_on_a_focus_export_says_why_nothing_goes_to_the_planner(monkeypatch):
    """The Azure FOCUS sample (a reservation and a savings plan, no term or payment in the export): its inventory is
    shown, and instead of the planner button one line says why none can go to the planner."""
    from pathlib import Path

    azure = Path(__file__).resolve().parents[1] / "data_samples" / "billing" / "azure_focus_gpu_commitments.csv"
    monkeypatch.setattr(O, "commitments_default", lambda _source: O.InputFile(azure.name, azure.read_bytes()))
    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "Commitments") == "2"
    assert not [b for b in at.button if b.label.startswith("Plan with these")]
    (why,) = [c for c in at.caption if fmt.unplain(c.value).startswith("No commitment of this export can go to the")]
    text = fmt.unplain(why.value)
    assert "sp-compute-01 is not written to the --existing file: the export does not say which savings plan" in text
    assert "res-h100-01 is not written to the --existing file: the export does not say its term and payment" in text
