"""One basis per figure (issue 15, items 1 and 4): with a plan the report's top spenders and idle cost are the plan's
bill, the same numbers as its chargeback; every section names its basis; the idle note tells a missing utilization
column from one without values in the billing period."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from operate.chargeback import allocate
from operate.costing import Rates, priced
from operate.report import build_review, write_review
from optimizer.plan import Expected, OnDemandRate, Plan
from usage import schema as S

A100 = "NVIDIA A100"
RATES = Rates({A100: 2.0}, "test rate 2 USD per GPU-hour")
T0 = pd.Timestamp("2025-10-01")
PLAN = Plan(pd.Timestamp("2025-11-01"), pd.Timestamp("2025-11-08"), "us-east-1", (), (),
            (OnDemandRate(A100, "p4d.24xlarge", 3.0),), Expected(0, 0, 0, 0, 0))


def usage() -> pd.DataFrame:
    """60 days from 2025-10-01: team big 10 GPUs at 80% utilisation, team small 1 GPU at 25%."""
    hours = pd.date_range(T0, periods=60 * 24, freq="h")
    return pd.concat([pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: "big", S.GPU_TYPE: A100, S.GPUS: 10.0,
                                    S.UTILIZATION: 0.8}),
                      pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: "small", S.GPU_TYPE: A100, S.GPUS: 1.0,
                                    S.UTILIZATION: 0.25})], ignore_index=True)


def test_report_leads_with_the_bill_and_matches_the_chargeback(tmp_path):
    use = usage()
    cb = allocate(use, PLAN)
    review = build_review(priced(use, RATES), cost_basis=RATES.basis, chargeback=cb)
    write_review(review, tmp_path / "rep")
    top = pd.read_csv(tmp_path / "rep" / "top_spenders.csv").set_index("team")
    charge = pd.read_csv(tmp_path / "rep" / "chargeback.csv").set_index("team")
    # billed at the plan's 3 USD per GPU-hour for its 7 days, not at the 2 USD list rate over 30 days
    assert top.loc["big", "cost_usd"] == charge.loc["big", "total_usd"] == 7 * 24 * 10 * 3.0
    assert top.loc["small", "cost_usd"] == charge.loc["small", "total_usd"] == 7 * 24 * 3.0
    idle = pd.read_csv(tmp_path / "rep" / "idle_by_team.csv").set_index("team")
    cb_idle = pd.read_csv(tmp_path / "rep" / "chargeback_idle.csv").set_index("team")
    assert idle.loc["big", "idle_usd"] == pytest.approx(cb_idle.loc["big", "idle_usd"])
    assert idle.loc["big", "idle_usd"] == pytest.approx(7 * 24 * 10 * 3.0 * 0.2)
    basis = "billed under the plan (proportional unused-commitment policy), 2025-11-01 to 2025-11-08"
    assert set(top["basis"]) == {basis} and set(idle["basis"]) == {basis}
    assert f"<h2>Top spenders, {basis}</h2>" in review.html and f"<h2>Idle resources, {basis}</h2>" in review.html
    assert "Chargeback, billed under the plan" in review.html


def test_report_without_a_plan_names_the_list_basis():
    review = build_review(priced(usage(), RATES), cost_basis=RATES.basis, lookback_days=30)
    basis = f"{RATES.basis}, last 30 days"
    assert f"<h2>Top spenders, {basis}</h2>" in review.html
    top = review.tables["top_spenders"].set_index("team")
    assert top.loc["big", "cost_usd"] == 30 * 24 * 20.0 and set(top["basis"]) == {basis}


def test_idle_note_tells_an_empty_utilization_column_from_a_missing_one():
    use = usage()
    use[S.UTILIZATION] = np.nan
    cb = allocate(use, PLAN)
    assert any("has a utilization column but no values in the billing period" in n for n in cb.notes)
    assert not any("no utilization column" in n for n in cb.notes)
    review = build_review(priced(use, RATES), cost_basis=RATES.basis, chargeback=cb)
    assert "no utilization values in this period" in review.html and "no utilization column" not in review.html
    cb = allocate(use.drop(columns=S.UTILIZATION), PLAN)
    assert any("the usage has no utilization column" in n for n in cb.notes)
