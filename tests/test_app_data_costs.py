"""Data costs in the planner (issue 17 item 4), through Streamlit's AppTest: the Overview shows storage and transfer
costs per team beside GPU costs (the shipped SYNTHETIC lines for the synthetic sample; an upload or a clear message
for another source), and the Budgets & chargeback page, with "Include data costs" on, gives the chargeback its data
columns, reconciled with GPU bill + data lines, on the same basis as ``gpuplan report --data``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from app import fmt, view
from app import forecast_state as FS
from app import state as A
from app.cli import app
from forecasting.sample_data_costs import load_sample_data_costs
from forecasting.samples import load_sample
from operate.data_costs import beside_gpu
from optimizer.billing import bill
from optimizer.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
OPS = ROOT / "data_samples" / "operate"
DATA = ROOT / "data_samples" / "synthetic_org_data_costs.csv"


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_data_costs_per_team_beside_gpu_costs_for_the_sample() -> None:
    at = ok(AppTest.from_file(APP, default_timeout=300).run())
    assert at.selectbox(key=A.DATA_SOURCE_KEY).value == "synthetic"
    ov = FS.cached_overview(FS.OverviewSettings("synthetic", 8, "team"))
    expected = beside_gpu(ov.totals.set_index("team")["usd"], load_sample_data_costs(), ov.start,
                          ov.end + pd.Timedelta(hours=1))
    # 8 weeks to 2025-11-30 23:00: October 6-31 (624 of 744 hours) and all of November
    assert ov.start == pd.Timestamp("2025-10-06 00:00")
    nov = load_sample_data_costs().query("month == '2025-11'")["cost_usd"].sum()
    octo = load_sample_data_costs().query("month == '2025-10'")["cost_usd"].sum()
    assert expected["data_usd"].sum() == pytest.approx(nov + octo * 624 / 744)
    assert metrics(at)["Data costs (USD)"] == fmt.usd(expected["data_usd"].sum())
    (table,) = [t for t in (view.shown(t.value) for t in at.table) if "Data costs (USD)" in t.columns]
    assert list(table.columns) == ["Team", "GPU (USD)", "Storage (USD)", "Transfer (USD)", "Data costs (USD)",
                                   "GPU + data (USD)", "Data share (%)"]
    assert len(table) == 22 and table["Team"].iloc[0] == "llm-pretrain"   # the largest total first
    row = table.set_index("Team").loc["llm-inference"]
    want = expected.set_index("team").loc["llm-inference"]
    assert fmt.parse_number(row["Transfer (USD)"]) == pytest.approx(want["transfer_usd"], abs=0.5)
    assert fmt.parse_number(row["GPU (USD)"]) == pytest.approx(want["gpu_usd"], abs=0.5)
    assert any("SYNTHETIC" in fmt.unplain(c.value) for c in at.caption)
    charts = [c for c in at.get("vega_lite_chart") if "GPU and data costs per team" in c.proto.spec]
    assert len(charts) == 1


def test_overview_of_another_source_asks_for_data_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    at = ok(AppTest.from_file(APP, default_timeout=300).run())
    infos = " ".join(fmt.unplain(i.value) for i in at.info)
    assert "No storage or transfer lines for" in infos and "upload them under 'Data lines'" in infos
    assert "Data costs (USD)" not in metrics(at)
    # an uploaded data-usage CSV for a Helios team shows up beside its GPU cost
    team = sorted(load_sample("helios")["team"].unique())[0]
    csv = (f"month,team,project,category,class,quantity,unit,cost_usd\n2020-05,{team},p,object_storage,s3-standard,"
           "1000,GB-month,23.00\n2020-05,,,transfer,inter-az,500,GB,5.00\n")
    at.file_uploader(key="overview_upload_data_helios").set_value(("helios_data.csv", csv.encode(), "text/csv"))
    ok(at.run())
    (table,) = [t for t in (view.shown(t.value) for t in at.table) if "Data costs (USD)" in t.columns]
    rows = table.set_index("Team")
    # the sample ends 2020-05-31 15:00 UTC: 736 of May's 744 hours are in the period, so May's lines count pro rata
    assert rows.loc[team, "Storage (USD)"] == f"{23 * 736 / 744:.2f}" == "22.75"
    assert rows.loc["unallocated", "Transfer (USD)"] == f"{5 * 736 / 744:.2f}" == "4.95"
    assert metrics(at)["Data costs (USD)"] == "28 USD"


def page() -> None:
    from app.app_pages import budgets

    budgets.render()


def test_budgets_page_with_data_costs_reconciles_and_matches_the_report(tmp_path: Path) -> None:
    from app.app_pages import budgets as B

    at = AppTest.from_function(page, default_timeout=600).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key=B.DATA_KEY).value is False   # GPU costs only by default (the shipped budgets' basis)
    at.toggle(key=B.DATA_KEY).set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [t for t in (view.shown(t.value) for t in at.table) if "Unused commitment (USD)" in t.columns]
    assert {"Storage (USD)", "Transfer (USD)", "Data costs (USD)"} <= set(table.columns)
    gpu = bill(Plan.read(OPS / "plan_2025-11.json"), load_sample("synthetic")).total_usd
    nov = load_sample_data_costs().query("month == '2025-11'")["cost_usd"].sum()   # the plan window is November
    m = {x.label: x.value for x in at.metric}
    assert m["Allocated (USD)"] == m["Bill (USD)"]
    assert fmt.parse_number(m["Bill (USD)"]) == pytest.approx(gpu + nov, abs=0.02)
    assert table["Total (USD)"].map(fmt.parse_number).sum() == pytest.approx(gpu + nov, abs=0.02)
    assert table["Data costs (USD)"].map(fmt.parse_number).sum() == pytest.approx(nov, abs=0.005)
    # the same basis as gpuplan report --data: one number for llm-pretrain's November, GPU + data
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["report", "--usage", str(ROOT / "data_samples" / "synthetic_org.parquet"), "--plan",
                                 str(OPS / "plan_2025-11.json"), "--data", str(DATA), "--out-dir", str(out)])
    assert r.exit_code in (0, 1), r.output
    top = pd.read_csv(out / "top_spenders.csv").set_index("team")
    row = table.set_index("Team").loc["llm-pretrain"]
    assert fmt.parse_number(row["Total (USD)"]) == pytest.approx(top.loc["llm-pretrain", "cost_usd"], abs=0.005)
    assert fmt.parse_number(row["Data costs (USD)"]) == pytest.approx(top.loc["llm-pretrain", "data_usd"], abs=0.005)
    assert top.loc["llm-pretrain", "cost_usd"] == 478_930.51 and top.loc["llm-pretrain", "data_usd"] == 41_009.33
    # budgets and unit costs follow the toggle
    assert any("data costs" in fmt.unplain(c.value) for c in at.caption if c.value.startswith("As of"))
    (units,) = [t for t in (view.shown(t.value) for t in at.table) if "Cost per unit" in t.columns]
    assert "Data cost (USD)" in units.columns and "Data cost per unit" in units.columns
