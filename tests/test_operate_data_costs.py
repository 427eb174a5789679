"""Data costs beside GPU costs (issue 17 item 4): budgets, unit economics and the cost review report include the
storage and transfer lines when they are given, shown apart, and stay GPU-only without them. Hand-checked
amounts: team a runs 10 A100 at 2 USD per GPU-hour (November 14,400 USD, December 29,760 USD) and has data lines
of 300 USD in November and 620 USD in December (December 2025 has 744 hours: 620 / 744 USD per hour)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from operate.alerts import compute_alerts
from operate.budgets import Budget
from operate.costing import Rates, priced
from operate.data_costs import hourly_cost, in_period, per_team, summary_line
from operate.report import build_review
from operate.units import COLUMNS, COLUMNS_WITH_DATA, load_units, unit_costs
from usage import schema as S

A100 = "NVIDIA A100"
RATES = Rates({A100: 2.0}, "test: 2 USD per GPU-hour")
ROOT = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-c", "from app.cli import main; main()")


def usage() -> pd.DataFrame:
    """November: team a 10 GPUs (project x); December: 20 GPUs, half of the hours on project y."""
    nov = pd.date_range("2025-11-01", "2025-12-01", freq="h", inclusive="left")
    dec = pd.date_range("2025-12-01", "2026-01-01", freq="h", inclusive="left")
    return pd.concat([
        pd.DataFrame({S.TIMESTAMP: nov, S.TEAM: "a", S.GPU_TYPE: A100, S.GPUS: 10.0, S.PROJECT: "x"}),
        pd.DataFrame({S.TIMESTAMP: dec, S.TEAM: "a", S.GPU_TYPE: A100, S.GPUS: 20.0,
                      S.PROJECT: ["x", "y"] * (len(dec) // 2)})], ignore_index=True)


def data_lines() -> pd.DataFrame:
    rows = [("2025-11", "a", "x", "object_storage", "s3-standard", 10000.0, "GB-month", 230.0),
            ("2025-11", "a", "x", "transfer", "inter-az", 7000.0, "GB", 70.0),
            ("2025-12", "a", "x", "object_storage", "s3-standard", 20000.0, "GB-month", 460.0),
            ("2025-12", "a", "y", "transfer", "internet-egress", 1000.0, "GB", 90.0),
            ("2025-12", "a", "y", "transfer", "inter-az", 7000.0, "GB", 70.0),
            ("2025-12", "unallocated", "unallocated", "snapshot", "ebs-snapshot", 100.0, "GB-month", 5.0)]
    return pd.DataFrame(rows, columns=["month", "team", "project", "category", "class", "quantity", "unit",
                                       "cost_usd"])


def test_period_shares_and_per_team_sums() -> None:
    d = data_lines()
    # December 1-11 is 240 of December's 744 hours
    part = in_period(d, pd.Timestamp("2025-12-01"), pd.Timestamp("2025-12-11"))
    assert set(part["month"]) == {"2025-12"}
    assert part["cost_usd"].sum() == pytest.approx((460 + 90 + 70 + 5) * 240 / 744)
    t = per_team(d, ["a", "b"]).set_index("team")
    assert t.loc["a"].to_dict() == {"storage_usd": 690.0, "transfer_usd": 230.0, "data_usd": 920.0}
    assert t.loc["b", "data_usd"] == 0.0
    assert summary_line(d) == ("data costs: 925.00 USD over 2025-11..2025-12 (storage 695.00, transfer 230.00; "
                               "2 teams)")


def test_hourly_cost_spreads_each_month_and_carries_the_last_month_forward() -> None:
    d = data_lines()
    hours = pd.DatetimeIndex(["2025-10-31 23:00", "2025-11-05 00:00", "2025-12-31 23:00", "2026-02-10 00:00"])
    got = hourly_cost(d, "a", None, hours)
    assert got == pytest.approx([0.0, 300 / 720, 620 / 744, 620 / 744])
    assert hourly_cost(d, "a", "y", hours) == pytest.approx([0.0, 0.0, 160 / 744, 160 / 744])
    assert hourly_cost(d, "nobody", None, hours).tolist() == [0.0] * 4


def test_budget_spend_is_gpu_plus_data_cost_when_data_lines_are_given() -> None:
    u = usage()
    budgets = (Budget("a", None, pd.Timestamp("2025-12-01"), pd.Timestamp("2026-01-01"), 30_000.0),
               Budget("a", "y", pd.Timestamp("2025-12-01"), pd.Timestamp("2026-01-01"), 15_000.0))
    as_of = pd.Timestamp("2026-01-01")   # both periods have ended: actuals only
    gpu = compute_alerts(u, budgets, RATES, long=None, as_of=as_of)
    both = compute_alerts(u, budgets, RATES, long=None, as_of=as_of, data=data_lines())
    # GPU: 744 h x 20 GPUs x 2 USD = 29,760 (team); project y half of it = 14,880
    assert [a.actual_to_date_usd for a in gpu.alerts] == [29_760.0, 14_880.0]
    assert [a.fired for a in gpu.alerts] == [False, False]
    # + data: team 620 USD in December -> 30,380 > 30,000; project y 160 USD -> 15,040 > 15,000
    assert [a.actual_to_date_usd for a in both.alerts] == [30_380.0, 15_040.0]
    assert [a.status for a in both.alerts] == ["over_budget", "over_budget"]
    assert "data costs" in both.cost_basis and "data costs" not in gpu.cost_basis
    assert any("carry its hourly cost forward" in n for n in both.notes)


def test_unit_cost_includes_data_costs_shown_apart(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("team,project,period,unit,count\na,,2025-11,training run,4\na,,2025-12,training run,10\n"
                    "a,y,2025-12,1k inferences,372\n")
    rows = load_units(path, {"a"})
    costed = priced(usage(), RATES)
    gpu_only = unit_costs(costed, rows)
    assert list(gpu_only.columns) == list(COLUMNS)
    costs = unit_costs(costed, rows, data_lines())
    assert list(costs.columns) == list(COLUMNS_WITH_DATA)
    nov, dec = costs[costs["unit"] == "training run"].to_dict("records")
    assert (nov["gpu_cost_usd"], nov["data_usd"], nov["cost_usd"]) == (14_400.0, 300.0, 14_700.0)
    assert nov["usd_per_unit"] == 3675.0 and nov["data_usd_per_unit"] == 75.0
    assert (dec["gpu_cost_usd"], dec["data_usd"], dec["cost_usd"]) == (29_760.0, 620.0, 30_380.0)
    assert dec["usd_per_unit"] == 3038.0 and dec["data_usd_per_unit"] == 62.0
    assert dec["usd_per_unit_change_pct"] == pytest.approx(100 * (3038 / 3675 - 1))
    (inf,) = costs[costs["unit"] == "1k inferences"].to_dict("records")
    # project y: half of December's GPU cost (14,880) + its 160 USD of egress and inter-AZ
    assert inf["cost_usd"] == 15_040.0 and inf["usd_per_unit"] == pytest.approx(15_040 / 372)


def test_report_has_a_data_costs_section_per_team_and_class_with_the_trend() -> None:
    review = build_review(priced(usage(), RATES), cost_basis=RATES.basis, data=data_lines())
    assert "Data costs (storage and transfer), 2025-11 to 2025-12" in review.html
    assert "2025-12: 625.00 USD (storage 465.00, transfer and egress 160.00); +325.00 USD (+108.3%) vs 2025-11" \
        in review.html
    by_class = review.tables["data_costs_by_class"]
    dec = by_class[by_class["month"] == "2025-12"].set_index(["team", "class"])
    assert dec.loc[("a", "s3-standard"), "cost_usd"] == 460.0 and dec.loc[("a", "s3-standard"), "change_usd"] == 230.0
    assert dec.loc[("a", "s3-standard"), "change_pct"] == pytest.approx(1.0)
    assert dec.loc[("a", "inter-az"), "change_usd"] == 0.0
    assert dec.loc[("a", "internet-egress"), "change_usd"] == 90.0 and np.isnan(dec.loc[("a", "internet-egress"),
                                                                                         "change_pct"])
    per_month = review.tables["data_costs"].set_index(["month", "team"])
    assert per_month.loc[("2025-12", "a"), "total_usd"] == 620.0
    assert per_month.loc[("2025-12", "a"), "total_change_usd"] == 320.0
    without = build_review(priced(usage(), RATES), cost_basis=RATES.basis)
    assert "Data costs" not in without.html and "data_costs" not in without.tables


def test_cli_alerts_units_and_report_take_data(tmp_path: Path) -> None:
    use = usage().assign(timestamp=lambda f: f[S.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%MZ"))
    use.to_csv(tmp_path / "usage.csv", index=False)
    data_lines().to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "budgets.csv").write_text("team,period,budget_usd\na,2025-12,30000\n")
    (tmp_path / "units.csv").write_text("team,period,unit,count\na,2025-12,training run,10\n")
    common = ["--usage", str(tmp_path / "usage.csv"), "--data", str(tmp_path / "data.csv")]
    # the catalog prices the A100 by its own on-demand rate: compare with and without --data
    results = {}
    for with_data in (False, True):
        args = common if with_data else common[:2]
        tag = "d" if with_data else "g"
        a = subprocess.run([*CLI, "alerts", *args, "--budgets", str(tmp_path / "budgets.csv"), "--as-of",
                            "2026-01-01T00:00Z", "--out", str(tmp_path / f"alerts_{tag}.json")],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert a.returncode in (0, 1), a.stderr
        u = subprocess.run([*CLI, "units", *args, "--units", str(tmp_path / "units.csv"), "--out",
                            str(tmp_path / f"units_{tag}.csv")], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert u.returncode == 0, u.stderr
        results[with_data] = (json.loads((tmp_path / f"alerts_{tag}.json").read_text()),
                              pd.read_csv(tmp_path / f"units_{tag}.csv"), a.stdout, u.stdout)
    (ag, ug, _, _), (ad, ud, a_out, u_out) = results[False], results[True]
    assert ad["alerts"][0]["actual_to_date_usd"] == pytest.approx(ag["alerts"][0]["actual_to_date_usd"] + 620.0)
    assert "data costs" in ad["cost_basis"] and "data costs" in a_out
    assert ud.loc[0, "data_usd"] == 620.0 and ud.loc[0, "cost_usd"] == pytest.approx(ug.loc[0, "cost_usd"] + 620.0)
    assert "of which data" in u_out and "data costs" in u_out
    r = subprocess.run([*CLI, "report", *common, "--out-dir", str(tmp_path / "rep")], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Data costs (storage and transfer)" in (tmp_path / "rep" / "report.html").read_text()
    assert pd.read_csv(tmp_path / "rep" / "data_costs_by_class.csv")["cost_usd"].sum() == pytest.approx(925.0)
