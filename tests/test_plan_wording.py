"""Plan wording and windows (issue 15, item 6): a negative saving reads 'costs ... more', `--month` plans a calendar
month, a budget that binds only the expected cost says so, `catalog show` lists every option the plan can buy and
`pareto` says which speed priorities each point stands for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.cli import UserFacingError, month_mismatch_note, plan_window
from optimizer.plan import Expected, OnDemandRate, Plan
from optimizer.summary import budget_p90_warning, summary
from usage import schema as S

ROOT = Path(__file__).resolve().parents[1]
A100 = "NVIDIA A100"


def gpuplan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def plan_with(total: float, on_demand: float, p90: float, budget: float | None) -> Plan:
    return Plan(pd.Timestamp("2025-12-01"), pd.Timestamp("2026-01-01"), "us-east-1", (), (),
                (OnDemandRate(A100, "p4d.24xlarge", 2.0),),
                Expected(total, 0.0, 0.0, total, on_demand, total_p10_usd=total * 0.9, total_p90_usd=p90),
                assumptions={"growth": 0.0, "options_considered": [], "guardrails": {"budget_usd": budget}})


def test_a_plan_dearer_than_on_demand_costs_more_and_never_saves_a_negative_amount():
    text = summary(plan_with(2_152_037.0, 2_000_000.0, 2_300_000.0, None))
    assert "the plan costs 152,037 USD more (7.6% more)" in text
    assert "saves -" not in text and "-7.6" not in text
    assert "the plan saves 400,000 USD (20.0%)" in summary(plan_with(1_600_000.0, 2_000_000.0, 1_700_000.0, None))


def test_budget_binding_only_the_expected_cost_is_warned():
    plan = plan_with(950_000.0, 1_200_000.0, 1_100_000.0, 1_000_000.0)
    warn = budget_p90_warning(plan)
    assert warn == ("the budget caps the expected cost only: the p90 cost 1,100,000 USD is above the budget "
                    "1,000,000 USD (1 window in 10 would exceed it)")
    assert warn in summary(plan)
    assert budget_p90_warning(plan_with(950_000.0, 1_200_000.0, 990_000.0, 1_000_000.0)) is None
    assert budget_p90_warning(plan_with(950_000.0, 1_200_000.0, 1_100_000.0, None)) is None


@pytest.mark.parametrize(("month", "start", "hours"), [("2025-12", "2025-12-01", 744), ("2026-02", "2026-02-01", 672),
                                                       ("2024-02", "2024-02-01", 696), ("2025-11", "2025-11-01", 720)])
def test_month_is_the_calendar_month(month, start, hours):
    assert plan_window(None, None, month) == (pd.Timestamp(start), hours)


@pytest.mark.parametrize(("args", "message"), [
    (("2025-12-01", 720, "2025-12"), "--month gives the whole window"),
    ((None, None, "2025-13"), "--month '2025-13' is not a calendar month (fix: YYYY-MM"),
    ((None, None, "Dec 2025"), "is not a calendar month"),
    ((None, 720, None), "no plan window (fix: --month YYYY-MM"),
])
def test_bad_windows_are_refused(args, message):
    with pytest.raises(UserFacingError, match=message.replace("(", r"\(").replace("+", r"\+")):
        plan_window(*args)


def test_plan_month_end_to_end_ends_at_the_month_end(tmp_path):
    hours = pd.date_range("2025-11-10", "2025-11-30 23:00", freq="h")
    pd.DataFrame({S.TIMESTAMP: hours.strftime("%Y-%m-%dT%H:%M:%SZ"), S.TEAM: "t", S.GPU_TYPE: A100,
                  S.GPUS: 8.0 + np.sin(np.arange(len(hours)))}).to_csv(tmp_path / "u.csv", index=False)
    out = tmp_path / "plan.json"
    proc = gpuplan("plan", "--usage", str(tmp_path / "u.csv"), "--month", "2025-12", "--window-only", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    window = json.loads(out.read_text())["window"]
    assert window == {"start": "2025-12-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    bad = gpuplan("plan", "--usage", str(tmp_path / "u.csv"), "--month", "2025-12", "--hours", "720", "--out",
                  str(tmp_path / "p2.json"))
    assert bad.returncode != 0 and bad.stderr.startswith("error: --month gives the whole window")
    assert "Traceback" not in bad.stderr and not (tmp_path / "p2.json").exists()


def test_catalog_show_lists_every_option_of_the_gpu_model():
    proc = gpuplan("catalog", "show", "--gpu-model", "NVIDIA H100")
    assert proc.returncode == 0, proc.stderr
    for option in ("on_demand", "spot", "convertible_1y_no_upfront", "convertible_1y_partial_upfront",
                   "convertible_1y_all_upfront", "reserved_3y_partial_upfront", "convertible_3y_all_upfront"):
        assert option in proc.stdout, option
    # p5.48xlarge convertible 1-year partial upfront: 41.28 USD per instance-hour = 5.16 per GPU-hour
    row = next(line for line in proc.stdout.splitlines()
               if "p5.48xlarge" in line and "convertible_1y_partial_upfront" in line)
    assert "41.28" in row and "5.16" in row and "180,806" in row


def test_a_plan_from_hours_of_history_is_refused_with_one_line(tmp_path):
    """Issue 15, item 15: a 2-hour upload planned a month with p10 = p90 and a break-even month."""
    pd.DataFrame({S.TIMESTAMP: ["2025-01-01T00:00Z", "2025-01-01T01:00Z"], S.TEAM: "a", S.GPU_TYPE: A100,
                  S.GPUS: 8.0}).to_csv(tmp_path / "u.csv", index=False)
    for extra in ((), ("--window-only",)):
        proc = gpuplan("plan", "--usage", str(tmp_path / "u.csv"), "--start", "2025-01-01T02:00Z", "--hours", "720",
                       *extra, "--out", str(tmp_path / "p.json"))
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith("error: ") and not (tmp_path / "p.json").exists()
    assert line == ("error: the usage history covers 2 h (2025-01-01 00:00 to 2025-01-01 01:00 UTC): too short to "
                    "forecast a plan from (fix: upload at least 24 hours of usage before the window, or plan from a "
                    "forecast file)")


def test_a_zero_wide_range_is_not_presented_as_certainty():
    text = summary(plan_with(6_461.0, 8_000.0, 6_461.0, None).__class__(
        **{**plan_with(6_461.0, 8_000.0, 6_461.0, None).__dict__,
           "expected": Expected(6_461.0, 0.0, 0.0, 6_461.0, 8_000.0, total_p10_usd=6_461.0, total_p90_usd=6_461.0)}))
    assert "p10 = p90 = 6,461 USD: every scenario costs the same" in text and "the real range is unknown" in text


def test_no_break_even_without_commitments():
    from optimizer.inputs import PlanConfig
    from optimizer.solve import make_plan
    from tests.helpers import START, flat_forecast, make_catalog

    cat = make_catalog([{"instance_type": "a1", "purchase_option": "on_demand", "price": 4.0},
                        {"instance_type": "a1", "purchase_option": "spot", "price": 2.0},
                        {"instance_type": "a1", "purchase_option": "reserved_1y_no_upfront", "price": 3.9}])
    demand = np.where(np.arange(48) % 2 == 0, 8.0, 0.0)   # half the hours: a 2.5% discount never pays
    plan = make_plan(flat_forecast(demand), cat, PlanConfig(start=START, hours=48, term_horizon=False)).plan
    assert not plan.commitments and plan.expected.spot_usd > 0   # spot saves, but nothing is paid back
    assert plan.expected.break_even_month is None and "Break-even" not in summary(plan)


def test_a_month_long_window_that_is_not_the_calendar_month_is_noted():
    note = month_mismatch_note(pd.Timestamp("2025-12-01"), 720)
    assert note == ("the window ends 2025-12-31 00:00 UTC, not at the end of December 2025 (744 h; fix: --month "
                    "2025-12 for the calendar month)")
    assert month_mismatch_note(pd.Timestamp("2025-12-01"), 744) is None
    assert month_mismatch_note(pd.Timestamp("2025-11-01"), 720) is None      # November has 720 h
    assert month_mismatch_note(pd.Timestamp("2025-12-03"), 720) is None      # not a month's start
    assert month_mismatch_note(pd.Timestamp("2025-12-01"), 168) is None      # a week, not about a month
