"""Capacity Blocks for planned runs (optimizer/capacity_blocks.py): hand-checked money, the events sample end to end,
price files with one-line errors, and EC2 DescribeCapacityBlockOfferings through botocore Stubber (never the
internet)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.session
import numpy as np
import pandas as pd
import pytest
from botocore.stub import Stubber

from forecasting.events import Event
from optimizer import capacity_blocks as CB
from optimizer.catalog import load_catalog, rework_fraction
from optimizer.catalog_refresh import RefreshError
from optimizer.inputs import Scenarios
from optimizer.plan import Expected, OnDemandRate, Plan, SpotAllowance
from optimizer.summary import summary

ROOT = Path(__file__).resolve().parents[1]
H100 = "NVIDIA H100"
P5_OD, P5_SPOT, P5_CB = 55.04, 28.106467, 39.33   # shipped catalog (us-east-1, 2025-11-30) and CB price file
WINDOW = pd.Timestamp("2026-02-01 00:00")


def _plan(spot_share: float | None = 0.3) -> Plan:
    """A plan without commitments: H100 on-demand at p5.48xlarge's 55.04 / 8 USD per GPU-hour."""
    spot = (SpotAllowance("p5.48xlarge", 4, H100, 8.0, P5_SPOT, rework_fraction("5-10%"), "5-10%", spot_share),)
    return Plan(window_start=WINDOW, window_end=WINDOW + pd.Timedelta(days=14), region="us-east-1", commitments=(),
                spot=spot, on_demand=(OnDemandRate(H100, "p5.48xlarge", P5_OD / 8),),
                expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0),
                assumptions={"allow_spot": True, "max_spot_share": spot_share})


def _scenarios(plan: Plan, event: Event) -> Scenarios:
    """One scenario whose only H100 demand is the run (the run's GPUs in its hours)."""
    hours = pd.date_range(plan.window_start, plan.window_end, freq="h", inclusive="left")
    demand = CB._overlap_hours(hours, event.start, event.end) * event.gpus
    return Scenarios(hours=hours, gpu_models=(H100,), names=("s",), weights=np.array([1.0]),
                     demand={H100: demand[None, :]})


def _run(start: str, end: str, gpus: float = 16.0) -> Event:
    return Event(team="llm", kind="add", start=pd.Timestamp(start), end=pd.Timestamp(end), gpu_type=H100, gpus=gpus,
                 note="run", source="events.yaml", item=1)


def test_block_rules_follow_aws():
    # 1-14 days in 1-day steps, then 7-day steps to 182 days
    assert CB.allowed_days(3) == (3, 3)
    assert CB.allowed_days(15) == (21, 14)
    assert CB.allowed_days(90) == (91, 84)
    assert CB.allowed_days(183) == (None, 182)
    # blocks start at 11:30 UTC: the one at or before a start and the one at or after it
    assert CB.block_starts(pd.Timestamp("2026-02-01 00:00")) == (pd.Timestamp("2026-01-31 11:30"),
                                                                  pd.Timestamp("2026-02-01 11:30"))
    assert CB.block_starts(pd.Timestamp("2026-02-01 11:30")) == (pd.Timestamp("2026-02-01 11:30"),) * 2
    assert CB.split_blocks(100) == [50, 50] and CB.split_blocks(64) == [64] and CB.split_blocks(129) == [43, 43, 43]


def test_aligned_run_block_beats_on_demand_by_hand():
    cat, prices = load_catalog(), CB.load_prices()
    ev = _run("2026-02-02 11:30", "2026-02-05 11:30")           # 16 GPUs = 2 x p5.48xlarge for exactly 3 days
    plan = _plan()
    r = CB.assess_event(ev, plan, _scenarios(plan, ev), prices, cat, as_of=WINDOW)
    assert r["eligible"] and r["instance_type"] == "p5.48xlarge" and r["instance_count"] == 2
    assert (r["block_start"], r["days"], r["uncovered_gpu_hours"]) == ("2026-02-02T11:30:00Z", 3, 0.0)
    alt = r["alternatives"]
    fee = 2 * P5_CB * 72                                         # 5,663.52 USD
    assert alt["capacity_block"]["upfront_usd"] == pytest.approx(fee, abs=0.01)
    assert alt["capacity_block"]["usd"] == pytest.approx(fee, abs=0.01)   # covers every hour: nothing else billed
    assert alt["on_demand"]["usd"] == pytest.approx(2 * 72 * P5_OD, abs=0.01)           # 7,925.76
    rework = -math.log(1 - 0.10) / 730 * (1.0 / 2 + 0.25)      # 5-10% bucket, 1 h checkpoints, 15 min restart
    # the plan: 30% of the run's 1,152 GPU-hours on its spot allowance, the rest on-demand at 6.88 USD/GPU-h
    plan_usd = 0.3 * 1152 * P5_SPOT * (1 + rework) / 8 + 0.7 * 1152 * P5_OD / 8          # 1,214.33 + 5,548.03
    assert alt["plan"]["usd"] == pytest.approx(plan_usd, abs=0.01)
    assert alt["spot"]["usd"] == pytest.approx(2 * 72 * P5_SPOT * (1 + rework), abs=0.01)   # 4,047.77
    assert not alt["spot"]["feasible"] and "30%" in alt["spot"]["why"]
    assert r["recommended"] == "capacity_block" and r["next_best"] == "plan"
    assert r["saving_vs_next_best_usd"] == pytest.approx(plan_usd - fee, abs=0.01)         # 1,098.84
    # bookable 8 weeks ahead: from the plan's start on
    assert r["bookable_now"] and r["book_from"] == "2026-02-01T00:00:00Z"


def test_unaligned_run_takes_the_cheaper_placement_by_hand():
    cat, prices = load_catalog(), CB.load_prices()
    ev = _run("2026-02-03 00:00", "2026-02-06 00:00")
    plan = _plan()
    r = CB.assess_event(ev, plan, _scenarios(plan, ev), prices, cat, as_of=WINDOW)
    # before: 2026-02-02 11:30 for 4 days = 2 x 39.33 x 96 = 7,551.36 USD;
    # after: 2026-02-03 11:30 for 3 days = 5,663.52 USD + the first 11.5 h (184 GPU-hours) served by the plan:
    # 30% on spot at 28.106467 x (1 + rework) / 8, 70% on-demand at 6.88 USD/GPU-h = 193.96 + 886.14 USD
    assert (r["block_start"], r["days"]) == ("2026-02-03T11:30:00Z", 3)
    assert r["uncovered_gpu_hours"] == pytest.approx(16 * 11.5)
    rework = rework_fraction("5-10%")
    first = 0.3 * 184 * P5_SPOT * (1 + rework) / 8 + 0.7 * 184 * P5_OD / 8
    assert first == pytest.approx(1080.10, abs=0.005)
    assert r["alternatives"]["capacity_block"]["usd"] == pytest.approx(5663.52 + first, abs=0.01)


def test_whole_run_on_spot_is_feasible_only_without_a_share_cap():
    cat, prices = load_catalog(), CB.load_prices()
    ev = _run("2026-02-02 11:30", "2026-02-05 11:30")
    plan = _plan(spot_share=1.0)
    r = CB.assess_event(ev, plan, _scenarios(plan, ev), prices, cat, as_of=WINDOW)
    alt = r["alternatives"]
    assert alt["spot"]["feasible"] and alt["spot"]["usd"] < alt["capacity_block"]["usd"]
    # the plan's allowance (4 x 8 GPUs, no share cap) then serves the whole run on spot too: a tie goes to the plan
    assert alt["plan"]["usd"] == pytest.approx(alt["spot"]["usd"], abs=0.01) and r["recommended"] == "plan"
    capped = CB.assess_event(ev, _plan(), _scenarios(_plan(), ev), prices, cat, as_of=WINDOW)
    assert not capped["alternatives"]["spot"]["feasible"] and capped["recommended"] == "capacity_block"


def test_ineligible_runs_say_why():
    cat, prices, plan = load_catalog(), CB.load_prices(), _plan()
    cases = {
        "open-ended": Event(team="a", kind="add", start=pd.Timestamp("2026-02-03"), gpu_type=H100, gpus=8),
        "lasts 200.0 days": _run("2026-02-03", "2026-08-22"),
        "lasts 0.5 days": _run("2026-02-03 00:00", "2026-02-03 12:00"),
        "must be booked ahead": _run("2026-01-20", "2026-02-20"),
        "no Capacity Block price for NVIDIA L4": Event(team="a", kind="add", start=pd.Timestamp("2026-02-03"),
                                                       end=pd.Timestamp("2026-02-10"), gpu_type="NVIDIA L4", gpus=8),
    }
    for reason, ev in cases.items():
        r = CB.assess_event(ev, plan, None, prices, cat, as_of=WINDOW)
        assert not r["eligible"] and reason in r["reason"], (reason, r["reason"])


def test_block_and_summary_round_trip_through_plan_json(tmp_path):
    cat, prices = load_catalog(), CB.load_prices()
    ev = _run("2026-02-02 11:30", "2026-02-05 11:30")
    plan = _plan()
    block = CB.assess(plan, _scenarios(plan, ev), [ev], prices, cat)
    plan = CB.attach(plan, block)
    plan.write(tmp_path / "plan.json")
    back = Plan.read(tmp_path / "plan.json")
    assert back.capacity_blocks == json.loads((tmp_path / "plan.json").read_text())["capacity_blocks"]
    assert back.capacity_blocks["price_date"] == "2024-12-31"
    text = summary(back)
    assert ("Capacity Block for llm / NVIDIA H100: +16 GPUs from 2026-02-02 11:30 to 2026-02-05 11:30 UTC: "
            "2 x p5.48xlarge from 2026-02-02 11:30 UTC for 3 days, 5,664 USD upfront") in text
    assert "on-demand 7,926 USD" in text and "as of 2024-12-31" in text and "Recommended: Capacity Block" in text
    # a plan without events has no block and reads as before
    assert "capacity_blocks" not in _plan().to_dict()


def _gpuplan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_events_sample_pretraining_run_is_offered_a_block_by_hand(tmp_path):
    out = tmp_path / "plan.json"
    proc = _gpuplan("plan", "--usage", str(ROOT / "data_samples" / "synthetic_org.parquet"), "--month", "2025-12",
                    "--events", str(ROOT / "data_samples" / "events_sample.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    block = json.loads(out.read_text())["capacity_blocks"]
    run = next(r for r in block["events"] if r["team"] == "llm-pretrain")
    assert run["eligible"] and run["instance_type"] == "p5.48xlarge" and run["instance_count"] == 16
    hours = (pd.Timestamp("2026-05-01") - pd.Timestamp("2026-02-01")) / pd.Timedelta(hours=1)   # 2,136 h
    alt = run["alternatives"]
    assert alt["on_demand"]["usd"] == pytest.approx(16 * hours * P5_OD, abs=0.01)              # 1,881,047.04
    assert alt["spot"]["usd"] == pytest.approx(16 * hours * P5_SPOT * (1 + alt["spot"]["rework_fraction"]), abs=0.01)
    assert alt["spot"]["rework_fraction"] == pytest.approx(rework_fraction("5-10%"))
    assert alt["capacity_block"]["upfront_usd"] == pytest.approx(16 * P5_CB * run["days"] * 24, abs=0.01)
    # the block starts at the 11:30 UTC around the run's start; booking opens 8 weeks before it, after the plan's start
    assert run["block_start"] in ("2026-01-31T11:30:00Z", "2026-02-01T11:30:00Z") and run["days"] in (84, 91)
    book = pd.Timestamp(run["block_start"][:-1]) - pd.Timedelta(days=56)
    assert run["book_from"] == f"{book:%Y-%m-%dT%H:%M:%S}Z" and not run["bookable_now"]
    # the plan's own answer costs less than all on-demand, more than whole-run spot
    assert alt["spot"]["usd"] < alt["plan"]["usd"] < alt["on_demand"]["usd"]
    best = min((v["usd"], k) for k, v in alt.items() if v["feasible"])[1]
    assert run["recommended"] == best
    agents = next(r for r in block["events"] if r["team"] == "agents")
    assert not agents["eligible"] and "open-ended" in agents["reason"]
    line = next(x for x in proc.stdout.splitlines() if "Capacity Block for llm-pretrain" in x)
    assert "16 x p5.48xlarge from 2026-0" in line and "on-demand 1,881,047 USD" in line
    assert f"spot {alt['spot']['usd']:,.0f} USD" in line and "as of 2024-12-31" in proc.stdout


def test_price_file_mistakes_are_one_line(tmp_path):
    usage = str(ROOT / "data_samples" / "synthetic_org.parquet")
    events = str(ROOT / "data_samples" / "events_sample.yaml")
    cases = {
        "instance_type,region,usd_per_instance_hour,snapshot_date\np5.48xlarge,us-east-1,39.33,2026-01-01\n":
            "missing column 'source'",
        "instance_type,region,usd_per_instance_hour,snapshot_date,source\np5.48xlarge,us-east-1,abc,2026-01-01,x\n":
            "row 2, column 'usd_per_instance_hour'",
        "instance_type,region,usd_per_instance_hour,snapshot_date,source\np5.48xlarge,us-east-1,39,1/2/2026,x\n":
            "row 2, column 'snapshot_date'",
    }
    for k, (text, expect) in enumerate(cases.items()):
        path = tmp_path / f"cb{k}.csv"
        path.write_text(text)
        with pytest.raises(CB.CapacityBlockPriceError) as exc:
            CB.load_prices(path)
        assert str(path) in str(exc.value) and expect in str(exc.value) and "fix:" in str(exc.value)
    out = tmp_path / "plan.json"
    proc = _gpuplan("plan", "--usage", usage, "--hours", "24", "--out", str(out), "--capacity-block-prices",
                    str(tmp_path / "cb0.csv"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:") and "--events" in lines[0]
    proc = _gpuplan("plan", "--usage", usage, "--start", "2025-12-01", "--hours", "24", "--events", events,
                    "--out", str(out),
                    "--capacity-block-prices", str(tmp_path / "cb1.csv"))
    lines = [x for x in proc.stderr.strip().splitlines() if x.startswith("error:")]
    assert proc.returncode != 0 and len(lines) == 1 and "cb1.csv" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_user_price_file_sets_the_block_price(tmp_path):
    path = tmp_path / "cb.csv"
    path.write_text("instance_type,region,usd_per_instance_hour,snapshot_date,source\n"
                    "p5.48xlarge,us-east-1,30.00,2026-01-15,my quote\n"
                    "p5.48xlarge,us-east-1,20.00,2025-06-01,an older quote\n")
    prices = CB.load_prices(path)
    rate = prices.for_region("us-east-1")["p5.48xlarge"]
    assert (rate.usd_per_instance_hour, rate.snapshot_date, rate.source) == (30.0, "2026-01-15", "my quote")
    ev = _run("2026-02-02 11:30", "2026-02-05 11:30")
    plan = _plan()
    block = CB.assess(plan, _scenarios(plan, ev), [ev], prices, load_catalog())
    assert block["price_source"] == "my quote" and block["price_date"] == "2026-01-15"
    assert block["events"][0]["alternatives"]["capacity_block"]["upfront_usd"] == pytest.approx(2 * 30 * 72)


# --- EC2 DescribeCapacityBlockOfferings through Stubber ------------------------------------------------------------
NOW = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)


def _ec2():
    return botocore.session.Session().create_client("ec2", region_name="us-east-1",
                                                    aws_access_key_id="AKIAFAKEKEYID000TEST",
                                                    aws_secret_access_key="fake/secret/never/printed")


def _params(itype: str, token: str | None = None) -> dict:
    p = {"InstanceType": itype, "InstanceCount": 1, "CapacityDurationHours": 24, "StartDateRange": NOW,
         "EndDateRange": NOW + timedelta(days=56)}
    return {**p, "NextToken": token} if token else p


def _offering(itype: str, fee: str, start: datetime, hours: int = 24, count: int = 1) -> dict:
    return {"CapacityBlockOfferingId": "cb-0123456789abcdef0", "InstanceType": itype, "AvailabilityZone": "us-east-1a",
            "InstanceCount": count, "StartDate": start, "EndDate": start + timedelta(hours=hours),
            "CapacityBlockDurationHours": hours, "UpfrontFee": fee, "CurrencyCode": "USD", "Tenancy": "default"}


def test_refresh_reads_offerings_through_stubber(tmp_path):
    ec2 = _ec2()
    day = datetime(2025, 12, 3, 11, 30, tzinfo=UTC)
    with Stubber(ec2) as stub:
        stub.add_response("describe_capacity_block_offerings",
                          {"CapacityBlockOfferings": [_offering("p5.48xlarge", "755.52", day)], "NextToken": "t1"},
                          _params("p5.48xlarge"))
        stub.add_response("describe_capacity_block_offerings",
                          {"CapacityBlockOfferings": [_offering("p5.48xlarge", "1500.00", day + timedelta(days=1),
                                                                count=2)]},
                          _params("p5.48xlarge", "t1"))
        stub.add_client_error("describe_capacity_block_offerings", "InvalidParameterValue", "not offered here",
                              expected_params=_params("p4d.24xlarge"))
        rows, notes = CB.fetch_offerings(ec2, "us-east-1", ("p5.48xlarge", "p4d.24xlarge"), now=NOW)
        stub.assert_no_pending_responses()
    # 755.52 USD / (1 x 24 h) = 31.48 USD per instance-hour; 1,500 / (2 x 24) = 31.25
    assert rows["usd_per_instance_hour"].round(4).tolist() == [31.48, 31.25]
    assert set(rows["snapshot_date"]) == {"2025-12-01"} and set(rows["source"]) == {CB.OFFERINGS_SOURCE}
    assert rows["start_date"].tolist() == ["2025-12-03T11:30:00Z", "2025-12-04T11:30:00Z"]
    assert any("p4d.24xlarge" in n for n in notes)
    path = tmp_path / "cb.csv"
    rows.to_csv(path, index=False)
    assert CB.load_prices(path).for_region("us-east-1")["p5.48xlarge"].usd_per_instance_hour == pytest.approx(31.25)


def test_refresh_access_denied_is_one_line_without_secrets():
    ec2 = _ec2()
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_capacity_block_offerings", "UnauthorizedOperation", "denied",
                              expected_params=_params("p5.48xlarge"))
        with pytest.raises(RefreshError) as exc:
            CB.fetch_offerings(ec2, "us-east-1", ("p5.48xlarge",), now=NOW)
    text = str(exc.value)
    assert "UnauthorizedOperation" in text and "ec2:DescribeCapacityBlockOfferings" in text
    assert "\n" not in text and "fake/secret" not in text


def test_the_planner_app_prices_planned_runs_too():
    from app import state as A

    text = (ROOT / "data_samples" / "events_sample.yaml").read_text()
    settings = A.PlannerSettings("synthetic", 720, events_name="events_sample.yaml", events_text=text)
    plan = A.cached_plan(settings).plan
    run = next(r for r in plan.capacity_blocks["events"] if r["team"] == "llm-pretrain")
    assert run["eligible"] and run["instance_count"] == 16 and run["alternatives"]["on_demand"]["usd"] == \
        pytest.approx(16 * 2136 * P5_OD, abs=0.01)
    assert "Capacity Block for llm-pretrain" in summary(plan)


def test_a_block_never_starts_before_the_booking_date_and_a_failed_replan_falls_back():
    from optimizer.inputs import PlanningError

    cat, prices, plan = load_catalog(), CB.load_prices(), _plan()
    ev = _run("2026-02-01 12:00", "2026-02-03 11:30")
    # booked early, the block from the 11:30 before the run (2 days, 3,775.68 USD) beats the one from the next 11:30
    # (1 day, 1,887.84 USD, and 23.5 h x 16 GPUs served by the plan at about 5.87 USD/GPU-h)
    early = CB.assess_event(ev, plan, _scenarios(plan, ev), prices, cat, as_of=WINDOW)
    assert (early["block_start"], early["days"], early["uncovered_gpu_hours"]) == ("2026-02-01T11:30:00Z", 2, 0.0)
    # booked at 11:45, that 11:30 has passed: only the block from the next 11:30 remains
    late = pd.Timestamp("2026-02-01 11:45")
    r = CB.assess_event(ev, plan, _scenarios(plan, ev), prices, cat, as_of=late)
    assert (r["block_start"], r["days"]) == ("2026-02-02T11:30:00Z", 1)
    assert r["uncovered_gpu_hours"] == pytest.approx(16 * 23.5)

    def failing(_scenarios):
        raise PlanningError("budget 1 USD is below the cheapest plan")

    r = CB.assess_event(ev, plan, _scenarios(plan, ev), prices, cat, as_of=late, replan=failing)
    assert r["eligible"] and r["base"].startswith("the plan as bought (re-planning without the run failed: budget")


def test_app_table_of_planned_runs_by_hand():
    """The Plan page's table (app.state.capacity_blocks_frame): 16 H100 for 3 days on 2 x p5.48xlarge at 39.33
    USD/instance-h is 2 x 72 x 39.33 = 5,663.52 upfront; on-demand 16 x 72 x 55.04 / 8 = 7,925.76; spot is cheaper
    but capped at 30% of GPU-hours, so not feasible for a whole run; a 3.5-hour run gets no block, with the reason."""
    from app.plan_frames import capacity_blocks_frame

    plan = _plan(0.3)
    run = _run("2026-02-03 11:30", "2026-02-06 11:30")
    short = _run("2026-02-03 11:30", "2026-02-03 15:00")
    block = CB.assess(plan, _scenarios(plan, run), [run, short], CB.load_prices(), load_catalog())
    frame = capacity_blocks_frame(CB.attach(plan, block))
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["Capacity Block"].startswith("2 x p5.48xlarge for 3 days from 2026-02-03 11:30 UTC")
    assert first["Upfront (USD)"] == first["Capacity Block (USD)"] == pytest.approx(2 * 72 * P5_CB, abs=0.01)
    assert first["On-demand (USD)"] == pytest.approx(16 * 72 * P5_OD / 8, abs=0.01)
    assert first["Spot (USD)"] < first["Capacity Block (USD)"] and first["Not feasible"].startswith("Spot: ")
    assert first["Recommended"] == "Capacity Block"
    assert first["Saving vs next best (USD)"] == pytest.approx(first["Plan (USD)"] - first["Capacity Block (USD)"],
                                                                abs=0.01)
    assert second["Capacity Block"].startswith("none: lasts 0.1 days") and pd.isna(second["Plan (USD)"])
    assert capacity_blocks_frame(plan).empty
