"""Issue 15 Done when: ``gpuplan report`` (report.html and its CSVs) and the planner's Budgets page give the same
number for the same team and month: llm-pretrain's November 2025 under the shipped plan, billed by the one serving
rule, in USD."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from app import view
from app.cli import app

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "data_samples" / "operate"
SAMPLE = ROOT / "data_samples" / "synthetic_org.parquet"
TEAM = "llm-pretrain"


def page() -> None:
    from app.app_pages import budgets

    budgets.render()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "rep"
    r = CliRunner().invoke(app, ["report", "--usage", str(SAMPLE), "--plan", str(OPS / "plan_2025-11.json"),
                                 "--out-dir", str(out)])
    assert r.exit_code in (0, 1), r.output
    return out


def test_report_and_budgets_page_give_one_number_for_a_team_and_month(report_dir: Path) -> None:
    top = pd.read_csv(report_dir / "top_spenders.csv").set_index("team")
    charge = pd.read_csv(report_dir / "chargeback.csv").set_index("team")
    reported = float(top.loc[TEAM, "cost_usd"])
    assert reported == pytest.approx(float(charge.loc[TEAM, "total_usd"]), abs=0.005)
    assert "2025-11-01" in str(top.loc[TEAM, "basis"])  # the plan's billing period: November 2025
    html = (report_dir / "report.html").read_text()
    assert f"{reported:,.0f}" in html or f"{reported:,.2f}" in html

    at = AppTest.from_function(page, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    frames = [f for f in (view.shown(t.value) for t in at.table) if "Team" in f.columns and "Total (USD)" in f.columns]
    assert frames, "no chargeback table on the Budgets page"
    row = frames[0][frames[0]["Team"] == TEAM]
    assert len(row) == 1
    on_page = float(row["Total (USD)"].iloc[0].replace(",", ""))
    assert on_page == pytest.approx(reported, abs=0.005)
