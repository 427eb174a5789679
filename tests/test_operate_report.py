"""Cost review report: self-contained HTML (inline SVG, nothing fetched), CSVs, and numbers that match the inputs."""

from __future__ import annotations

import re
import xml.dom.minidom

import numpy as np
import pandas as pd
import pytest

from operate.alerts import compute_alerts, forecast_for_budgets
from operate.budgets import Budget
from operate.chargeback import allocate
from operate.costing import Rates, priced
from operate.policy import IdleRule, Policy, check_usage
from operate.report import build_review, idle_by_team, top_spenders, write_review
from operate.units import UnitCount, unit_costs
from optimizer.plan import Expected, OnDemandRate, Plan
from usage import schema as S

A100 = "NVIDIA A100"
RATES = Rates({A100: 2.0}, "test rate 2 USD per GPU-hour")
T0 = pd.Timestamp("2025-10-01")


def usage(with_util: bool = True) -> pd.DataFrame:
    """60 days: team big holds 10 GPUs at 80% utilisation, team small 1 GPU at 25% (idle at night: 5%)."""
    hours = pd.date_range(T0, periods=60 * 24, freq="h")
    night = np.asarray(hours.hour < 6)
    frames = [pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: "big", S.GPU_TYPE: A100, S.GPUS: 10.0, S.PROJECT: "p",
                            S.UTILIZATION: 0.8}),
              pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: "small", S.GPU_TYPE: A100, S.GPUS: 1.0, S.PROJECT: "q",
                            S.UTILIZATION: np.where(night, 0.05, 0.25)})]
    out = pd.concat(frames, ignore_index=True)
    return out if with_util else out.drop(columns=S.UTILIZATION)


def test_top_spenders_and_idle_by_team():
    costed = priced(usage(), RATES)
    top = top_spenders(costed, 30)
    assert list(top["team"]) == ["big", "small"]
    assert top.loc[0, "cost_usd"] == 30 * 24 * 20.0 and top.loc[0, "change_pct"] == 0.0
    assert top["share_pct"].sum() == pytest.approx(100.0)
    idle = idle_by_team(costed, 30).set_index("team")
    assert idle.loc["big", "idle_usd"] == pytest.approx(30 * 24 * 20.0 * 0.2)
    assert idle.loc["small", "mean_utilization"] == pytest.approx((6 * 0.05 + 18 * 0.25) / 24)
    assert idle_by_team(priced(usage(False), RATES)) is None


def test_full_report_is_self_contained_and_writes_csvs(tmp_path):
    use = usage()
    costed = priced(use, RATES)
    budgets = (Budget("big", None, pd.Timestamp("2025-11-01"), pd.Timestamp("2026-01-01"), 20_000.0),
               Budget("small", None, pd.Timestamp("2025-11-01"), pd.Timestamp("2026-01-01"), 5_000.0))
    as_of = use[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    alerts = compute_alerts(use, budgets, RATES, long=forecast_for_budgets(use, budgets, as_of), n_paths=20)
    plan = Plan(pd.Timestamp("2025-11-01"), pd.Timestamp("2025-11-08"), "us-east-1", (), (),
                (OnDemandRate(A100, "p4d.24xlarge", 3.0),), Expected(0, 0, 0, 0, 0))
    units = (UnitCount("big", None, "training run", pd.Timestamp("2025-10-01"), pd.Timestamp("2025-11-01"), 4),
             UnitCount("big", None, "training run", pd.Timestamp("2025-11-01"), pd.Timestamp("2025-11-30"), 5))
    checks = check_usage(costed, Policy(idle=IdleRule(0.1, 3, lookback_days=30)))
    review = build_review(costed, cost_basis=RATES.basis, alerts=alerts, chargeback=allocate(use, plan),
                          unit_costs=unit_costs(costed, units), checks=checks)
    html = review.html
    assert "<script" not in html and not re.search(r"(src|href)=", html)
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 5
    for s in svgs:
        xml.dom.minidom.parseString(s)
    for section in ("Top spenders", "Idle resources", "Unit-cost trends", "Commitment utilisation and coverage",
                    "Forecast vs budget", "Guardrail violations"):
        assert section in html
    # big: 20 USD/h x 61 days of Nov-Dec = 29,280 USD projected vs 20,000: it alerts and the report says so
    assert "big is projected to spend 29,280 USD" in html
    # small's idle nights: 30 runs of 6 h; 3 h after the grace x 2 USD each -> 180 USD at stake
    assert checks.violations.loc[0, "usd"] == 180.0
    paths = write_review(review, tmp_path / "rep")
    names = sorted(p.name for p in paths)
    assert names == sorted(["report.html", "top_spenders.csv", "idle_by_team.csv", "idle_runs.csv", "unit_costs.csv",
                            "commitment.csv", "chargeback.csv", "chargeback_idle.csv", "budget_vs_forecast.csv",
                            "violations.csv"])
    cb = pd.read_csv(tmp_path / "rep" / "chargeback.csv")
    assert cb["total_usd"].sum() == pytest.approx(7 * 24 * 11 * 3.0)


def test_report_without_utilization_says_idle_cost_is_unavailable():
    review = build_review(priced(usage(False), RATES), cost_basis="x")
    assert "idle GPU cost is unavailable" in review.html and "idle_by_team" not in review.tables
