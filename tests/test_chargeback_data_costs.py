"""Chargeback with data costs (issue 17 item 4): storage and transfer in their own columns, and the allocation still
reconciles with the bill (GPU bill + data lines) to the cent.

The bill is made by hand: a plan with a 2-GPU commitment over January 2026 (744 h x 2 USD = 1,488 USD), spot and
on-demand, GPU usage of teams a, b and untagged usage; and a hand-written CUR 2.0 export of January with GPU,
tax and request rows (not data) and data rows of a, b, c (data only) and untagged rows, plus a February row outside
the billing period. Every expected amount below is a sum a reader can redo.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operate.chargeback import COLUMNS, DATA_COLUMNS, allocate
from operate.data_costs import read_data_usage
from optimizer.billing import bill
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpotAllowance
from tests.test_operate_chargeback import random_bill
from usage import schema as S
from usage.ingest.data_lines import load_data_lines

A100 = "NVIDIA A100"
START = pd.Timestamp("2026-01-01")
ROOT = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-c", "from app.cli import main; main()")
CUR_HEADER = ["identity_line_item_id", "line_item_line_item_type", "line_item_usage_start_date",
              "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type", "line_item_usage_amount",
              "line_item_unblended_cost", "resource_tags"]
# (line item type, month, usage type, amount, cost, team)
CUR_ROWS = [
    ("Usage", "2026-01", "BoxUsage:p4d.24xlarge", 10, 327.73, "a"),          # GPU compute: not a data line
    ("Tax", "2026-01", "", 0, 25.00, None),
    ("Usage", "2026-01", "Requests-Tier1", 1000, 5.00, "a"),
    ("Usage", "2026-01", "TimedStorage-ByteHrs", 1000, 23.00, "a"),         # a: storage 23
    ("Usage", "2026-01", "DataTransfer-Out-Bytes", 100, 9.00, "a"),         # a: transfer 9
    ("Usage", "2026-01", "EBS:VolumeUsage.gp3", 800, 64.00, "b"),           # b: storage 64 + 1.333333
    ("Usage", "2026-01", "TimedStorage-GIR-ByteHrs", 333.333, 1.333333, "b"),
    ("Usage", "2026-01", "DataTransfer-Regional-Bytes", 3000, 30.00, "b"),  # b: transfer 30
    ("Usage", "2026-01", "EBS:SnapshotUsage", 300, 15.00, None),            # untagged: storage 15
    ("Usage", "2026-01", "NatGateway-Bytes", 200, 9.00, None),              # untagged: transfer 9
    ("Usage", "2026-01", "TimedStorage-SIA-ByteHrs", 2000, 25.00, "c"),     # c: data only, storage 25
    ("Usage", "2026-02", "TimedStorage-ByteHrs", 2000, 46.00, "a"),         # outside the billing period
]
DATA_IN_JANUARY = 23 + 9 + 64 + 1.333333 + 30 + 15 + 9 + 25                  # 176.333333 -> 176.33
GPU_BILL = 744 * 2.0 + 0.5 + 3.0                                            # 1,491.50


def write_cur(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CUR_HEADER)
        for i, (kind, month, utype, amount, cost, team) in enumerate(CUR_ROWS):
            w.writerow([f"li-{i}", kind, f"{month}-02T10:00:00Z", f"{month}-02T11:00:00Z", "AmazonS3", utype, amount,
                        cost, json.dumps({"user_team": team}) if team else ""])
    return path


def hand_bill() -> tuple[Plan, pd.DataFrame]:
    # 2 committed GPUs at 1 USD/GPU-h for all of January, spot cap 1 GPU at 0.5 USD/GPU-h, on-demand 3 USD/GPU-h.
    plan = Plan(window_start=START, window_end=START + pd.Timedelta(hours=744), region="us-east-1",
                commitments=(Commitment("inst", "reserved_1y_partial_upfront", 1, START, 1.0, 8760.0, A100, 2.0,
                                        8760),),
                spot=(SpotAllowance("spot-inst", 1, A100, 1.0, 0.5, 0.0),),
                on_demand=(OnDemandRate(A100, "x", 3.0),), expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0))
    # hour 0: a 2 + b 2 -> 2 committed, 1 spot (0.5 USD), 1 on-demand (3 USD); hour 1: a 1 + untagged 1 committed.
    rows = [(0, "a", 2.0), (0, "b", 2.0), (1, "a", 1.0), (1, S.UNALLOCATED_TEAM, 1.0)]
    use = pd.DataFrame({S.TIMESTAMP: [START + pd.Timedelta(hours=h) for h, _, _ in rows],
                        S.TEAM: [t for _, t, _ in rows], S.GPU_TYPE: A100, S.GPUS: [g for _, _, g in rows]})
    return plan, use


@pytest.fixture()
def data(tmp_path: Path) -> pd.DataFrame:
    frame, _ = load_data_lines(write_cur(tmp_path / "cur.csv"))
    return frame


def rows(table: pd.DataFrame) -> dict[str, dict]:
    return {r["team"]: {k: v for k, v in r.items() if k != "team"} for r in table.to_dict("records")}


def test_data_costs_get_their_own_columns_and_the_total_reconciles_to_the_cent(data: pd.DataFrame) -> None:
    plan, use = hand_bill()
    cb = allocate(use, plan, "proportional", data=data)
    assert list(cb.table.columns) == list(DATA_COLUMNS)
    got = rows(cb.table)
    # unused commitment 1,484 USD (1,488 - 4 used GPU-hours) by committed GPU-hours a 2 : b 1 : untagged 1
    assert got["a"] == {"gpu_hours": 3.0, "committed_usd": 2.0, "spot_usd": 0.25, "on_demand_usd": 1.5,
                        "unused_commitment_usd": 742.0, "storage_usd": 23.0, "transfer_usd": 9.0, "data_usd": 32.0,
                        "total_usd": 777.75}
    assert got["b"] == {"gpu_hours": 2.0, "committed_usd": 1.0, "spot_usd": 0.25, "on_demand_usd": 1.5,
                        "unused_commitment_usd": 371.0, "storage_usd": 65.33, "transfer_usd": 30.0,
                        "data_usd": 95.33, "total_usd": 469.08}
    assert got[S.UNALLOCATED_TEAM] == {"gpu_hours": 1.0, "committed_usd": 1.0, "spot_usd": 0.0, "on_demand_usd": 0.0,
                                       "unused_commitment_usd": 371.0, "storage_usd": 15.0, "transfer_usd": 9.0,
                                       "data_usd": 24.0, "total_usd": 396.0}
    assert got["c"] == {"gpu_hours": 0.0, "committed_usd": 0.0, "spot_usd": 0.0, "on_demand_usd": 0.0,
                        "unused_commitment_usd": 0.0, "storage_usd": 25.0, "transfer_usd": 0.0, "data_usd": 25.0,
                        "total_usd": 25.0}
    assert list(cb.table["team"]) == ["a", "b", "c", S.UNALLOCATED_TEAM]   # untagged last
    total_cents = int(round(cb.table["total_usd"].sum() * 100))
    assert total_cents == round((GPU_BILL + DATA_IN_JANUARY) * 100) == 166783   # 1,667.83 USD
    rec = cb.reconciliation()
    assert rec["bill_total_usd"] == rec["allocated_total_usd"] == 1667.83
    assert rec["bill_data_usd"] == rec["allocated_data_usd"] == 176.33 and rec["bill_gpu_usd"] == 1491.5
    assert set(cb.data["month"]) == {"2026-01"}


def test_shared_commitment_goes_central_and_the_bill_still_reconciles(data: pd.DataFrame) -> None:
    plan, use = hand_bill()
    cb = allocate(use, plan, "central", data=data)
    got = rows(cb.table)
    assert got["central"]["unused_commitment_usd"] == 1484.0 and got["central"]["data_usd"] == 0.0
    assert got["a"]["total_usd"] == 2.0 + 0.25 + 1.5 + 32.0
    assert round(cb.table["total_usd"].sum(), 2) == 1667.83
    assert list(cb.table["team"])[-2:] == [S.UNALLOCATED_TEAM, "central"]


def test_a_part_of_the_month_gets_the_data_lines_pro_rata_by_hours(data: pd.DataFrame) -> None:
    plan, use = hand_bill()
    first = allocate(use, plan, "proportional", "2026-01-01/2026-01-16", data=data)
    second = allocate(use, plan, "proportional", "2026-01-16/2026-02-01", data=data)
    # 360 of January's 744 hours: 176.333333 x 360 / 744 = 85.3226 -> 85.32; the rest 91.0108 -> 91.01
    assert first.reconciliation()["bill_data_usd"] == 85.32 and second.reconciliation()["bill_data_usd"] == 91.01
    assert rows(first.table)["c"]["storage_usd"] == round(25 * 360 / 744, 2) == 12.10
    for cb in (first, second):
        rec = cb.reconciliation()
        assert rec["bill_total_usd"] == rec["allocated_total_usd"]


def test_without_data_lines_the_gpu_chargeback_is_unchanged(data: pd.DataFrame) -> None:
    plan, use = hand_bill()
    gpu_only = allocate(use, plan, "proportional")
    with_data = allocate(use, plan, "proportional", data=data)
    assert list(gpu_only.table.columns) == list(COLUMNS) and gpu_only.data is None
    assert "bill_data_usd" not in gpu_only.reconciliation()
    merged = with_data.table.set_index("team").loc[gpu_only.table["team"], list(COLUMNS[1:-1])]
    pd.testing.assert_frame_equal(merged.reset_index(), gpu_only.table[list(COLUMNS[:-1])])
    assert round(gpu_only.table["total_usd"].sum(), 2) == GPU_BILL


def test_cli_chargeback_with_data_writes_the_columns_and_says_the_basis(tmp_path: Path, data: pd.DataFrame) -> None:
    from forecasting.sample_data_costs import write_data_lines

    plan, use = hand_bill()
    plan_path = tmp_path / "plan.json"
    plan.write(plan_path)
    usage_path = tmp_path / "usage.csv"
    use.assign(timestamp=use[S.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%MZ")).to_csv(usage_path, index=False)
    data_csv = write_data_lines(data, tmp_path / "data.csv")
    for data_file in (data_csv, tmp_path / "cur.csv"):        # canonical data-usage CSV or the billing export
        out = tmp_path / f"cb_{data_file.stem}.csv"
        proc = subprocess.run([*CLI, "chargeback", "--usage", str(usage_path), "--plan", str(plan_path), "--data",
                               str(data_file), "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        table = pd.read_csv(out)
        assert list(table.columns) == list(DATA_COLUMNS)
        assert round(table["total_usd"].sum(), 2) == 1667.83 and round(table["data_usd"].sum(), 2) == 176.33
        assert "data costs" in proc.stdout and "1,667.83" in proc.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("month,team,project,category,class,quantity,unit,cost_usd\n2026-01,a,p,transfer,inter-az,x,GB,1\n")
    proc = subprocess.run([*CLI, "chargeback", "--usage", str(usage_path), "--plan", str(plan_path), "--data",
                           str(bad), "--out", str(tmp_path / "cb.csv")], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr
    assert "bad.csv row 1, column 'quantity'" in errors[0] and not (tmp_path / "cb.csv").exists()
    assert read_data_usage(data_csv)["cost_usd"].sum() == pytest.approx(data["cost_usd"].sum(), abs=0.01)


@st.composite
def bill_with_data(draw):
    plan, use, policy = draw(random_bill())
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        month = draw(st.sampled_from(["2025-12", "2026-01", "2026-02"]))   # the plan window is in January 2026
        team = draw(st.sampled_from(["a", "b", "e", S.UNALLOCATED_TEAM]))
        cat, cls = draw(st.sampled_from([("object_storage", "s3-standard"), ("transfer", "inter-az"),
                                          ("snapshot", "ebs-snapshot"), ("transfer", "internet-egress")]))
        rows.append((month, team, "p", cat, cls, 1.0, "GB", draw(st.floats(0.0, 500.0, allow_nan=False))))
    data = pd.DataFrame(rows, columns=["month", "team", "project", "category", "class", "quantity", "unit",
                                       "cost_usd"])
    return plan, use, policy, data


@given(bill_with_data())
@settings(max_examples=60, deadline=None)
def test_chargeback_with_data_reconciles_to_the_cent(case) -> None:
    plan, use, policy, data = case
    cb = allocate(use, plan, policy, data=data)
    t = cb.table
    cents = {c: int(round(t[c].sum() * 100)) for c in DATA_COLUMNS[2:]}
    gpu_cents = sum(cents[c] for c in ("committed_usd", "unused_commitment_usd", "spot_usd", "on_demand_usd"))
    totals = bill(plan, use).totals()
    assert gpu_cents == sum(round(totals[c] * 100) for c in ("committed_usd", "spot_usd", "on_demand_usd"))
    # the data lines of the window's hours (January 2026 pro rata), to the cent, storage + transfer = data
    hours = (plan.window_end - plan.window_start) / pd.Timedelta(hours=1)
    expected = data.loc[data["month"] == "2026-01", "cost_usd"].sum() * hours / 744
    assert cents["data_usd"] == round(expected * 100) == cents["storage_usd"] + cents["transfer_usd"]
    assert cents["total_usd"] == gpu_cents + cents["data_usd"]
    assert np.allclose(t["total_usd"], t[list(DATA_COLUMNS[2:6]) + ["data_usd"]].sum(axis=1))
    assert np.allclose(t["data_usd"], t["storage_usd"] + t["transfer_usd"])
    assert (t[list(DATA_COLUMNS[2:-1])] >= 0).all().all()
    rec = cb.reconciliation()
    assert rec["allocated_data_usd"] == rec["bill_data_usd"] == cents["data_usd"] / 100
