"""AWS Savings Plans: catalog rows, the MILP's choice beside RIs, and the serving rule's order (issue 13 items 1-2)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer import catalog as C
from optimizer.billing import bill
from optimizer.inputs import PlanConfig
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpRate
from optimizer.solve import make_plan
from tests.helpers import START, flat_forecast, make_catalog
from usage import schema as S

ROOT = Path(__file__).resolve().parents[1]
A, B = "NVIDIA A100", "NVIDIA H100"
# Two 1-GPU types of two GPU models. Per GPU-hour: A on-demand 1.00, RI 0.60, Compute SP 0.70; B on-demand 2.00,
# RI 1.20, Compute SP 1.40 (an RI discounts 40%, a Compute SP 30%).
ROWS = [
    {"instance_type": "a.1", "purchase_option": "on_demand", "price": 1.0, "gpu_model": A},
    {"instance_type": "a.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6, "gpu_model": A},
    {"instance_type": "a.1", "purchase_option": "compute_sp_1y_no_upfront", "price": 0.7, "gpu_model": A},
    {"instance_type": "b.1", "purchase_option": "on_demand", "price": 2.0, "gpu_model": B},
    {"instance_type": "b.1", "purchase_option": "reserved_1y_no_upfront", "price": 1.2, "gpu_model": B},
    {"instance_type": "b.1", "purchase_option": "compute_sp_1y_no_upfront", "price": 1.4, "gpu_model": B},
]
BOTH = ("compute_sp_1y_no_upfront", "reserved_1y_no_upfront")


def _alternating(hours: int = 48, gpus: float = 8.0) -> pd.DataFrame:
    even = np.arange(hours) % 2 == 0
    return pd.concat([flat_forecast(np.where(even, gpus, 0.0), A), flat_forecast(np.where(even, 0.0, gpus), B)])


def _plan(fc: pd.DataFrame, hours: int, options: tuple[str, ...], rows: list[dict] = ROWS):
    return make_plan(fc, make_catalog(rows), PlanConfig(start=START, hours=hours, options=options, allow_spot=False))


def test_one_compute_sp_covers_alternating_gpu_models_more_cheaply_than_per_model_ris():
    # A needs 8 GPUs in even hours, B 8 GPUs in odd hours, over 48 h.
    # RIs: each model is busy half the hours, below the 60% an RI needs to pay off (0.6 of 1.0): all on-demand,
    #   24 h x 8 x 1.00 + 24 h x 8 x 2.00 = 192 + 384 = 576 USD.
    # Compute SP of c USD/h: up to 5.6 USD/h (8 A GPUs x 0.70) each USD/h covers 1/0.7 A GPU-h in even hours (saves
    #   1.43 USD) and 1/1.4 B GPU-h in odd hours (saves 1.43 USD): 24 x (1.43 + 1.43) = 68.6 USD saved for 48 USD.
    #   Above 5.6 it only covers B in odd hours: 24 x 1.43 = 34.3 USD saved for 48 USD. So c = 5.6 USD/h:
    #   5.6 x 48 + odd hours' 4 uncovered B GPUs on-demand 24 x 4 x 2.00 = 268.8 + 192 = 460.8 USD.
    fc = _alternating()
    ri_only = _plan(fc, 48, ("reserved_1y_no_upfront",)).plan
    assert ri_only.commitments == () and ri_only.expected.total_usd == pytest.approx(576.0)
    result = _plan(fc, 48, BOTH)
    plan = result.plan
    assert [(c.purchase_option, c.commitment_usd_per_hour) for c in plan.commitments] == \
        [("compute_sp_1y_no_upfront", pytest.approx(5.6))]
    assert plan.expected.total_usd == pytest.approx(460.8)
    assert result.lp_objective_usd == pytest.approx(460.8, rel=1e-4)      # every hour its own joint cell here
    sp = plan.commitments[0]
    assert sp.obligation_usd == pytest.approx(5.6 * 8760) and sp.expected_utilization == pytest.approx(1.0)
    d = json.loads(plan.to_json())["commitments"][0]
    assert (d["commitment_usd_per_hour"], d["upfront_usd"], d["term_hours"], d["instance_family"]) == \
        (5.6, 0.0, 8760, None)
    assert {r["gpu_model"]: r["usd_per_gpu_hour"] for r in d["sp_rates"]} == {A: 0.7, B: 1.4}



def test_laddering_buys_a_savings_plan_step_up_in_the_month_it_happens():
    # One model, on-demand 1.00 and a Compute SP at 0.60 per GPU-hour (the RI ladder test's numbers): 5 GPUs in
    # January (744 h), 10 in February (672 h). Laddered: 3.00 USD/h from January + 3.00 USD/h from February:
    # 3 x 1416 + 3 x 672 = 4,248 + 2,016 = 6,264 USD. Without laddering the extra 5 GPUs are busy 672/1416 = 47% of
    # the window, under the 60% break-even, so they stay on-demand: 4,248 + 5 x 672 = 7,608 USD.
    from optimizer.summary import summary

    rows = [ROWS[0], dict(ROWS[2], price=0.6)]
    demand = np.r_[np.full(744, 5.0), np.full(672, 10.0)]
    cfg = PlanConfig(start=START, hours=1416, options=("compute_sp_1y_no_upfront",), allow_spot=False, ladder=True)
    result = make_plan(flat_forecast(demand, A), make_catalog(rows), cfg)
    plan = result.plan
    assert [(c.commitment_usd_per_hour, c.start, c.firm) for c in plan.commitments] == [
        (pytest.approx(3.0), pd.Timestamp("2026-01-01"), True), (pytest.approx(3.0), pd.Timestamp("2026-02-01"), False)]
    assert plan.expected.total_usd == pytest.approx(6264.0) and result.lp_objective_usd == pytest.approx(6264.0)
    assert plan.expected.commitment_utilization == pytest.approx(1.0)
    text = summary(plan)
    assert "compute_sp_1y_no_upfront savings plan of 3.00 USD/h from 2026-02-01" in text.split("Tentative")[1]
    single = make_plan(flat_forecast(demand, A), make_catalog(rows), replace(cfg, ladder=False)).plan
    assert [c.commitment_usd_per_hour for c in single.commitments] == [pytest.approx(3.0)]
    assert single.expected.total_usd == pytest.approx(7608.0)


@settings(max_examples=8, deadline=None)
@given(levels=st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=2, max_size=2),
       seed=st.integers(0, 99))
def test_laddered_savings_plans_serve_every_scenario_and_never_cost_more(levels, seed):
    # Two GPU models over January and February with noisy month levels: laddering only adds purchase months, so its
    # plan costs at most the plan that buys at the start (up to the joint MILP's stopping gap, 0.05%), and every
    # scenario's demand is served.
    from optimizer.solve import JOINT_MIP_GAP

    noise = np.random.default_rng(seed).uniform(0, 3, (2, 1416))
    fc = pd.concat([flat_forecast(np.r_[np.full(744, levels[0]), np.full(672, levels[1])] + noise[0], A),
                    flat_forecast(np.r_[np.full(744, levels[1]), np.full(672, levels[0])] + noise[1], B)])
    cfg = PlanConfig(start=START, hours=1416, options=BOTH, allow_spot=False, ladder=True)
    laddered = make_plan(fc, make_catalog(ROWS), cfg)
    single = make_plan(fc, make_catalog(ROWS), replace(cfg, ladder=False))
    assert laddered.lp_objective_usd <= single.lp_objective_usd * (1 + JOINT_MIP_GAP) + 1e-6
    for costs in laddered.scenario_costs.values():
        served = costs["committed_used_gpus"] + costs["spot_gpus"] + costs["on_demand_gpus"]
        assert served == pytest.approx(costs["demand_gpus"], abs=1e-6)

def test_ec2_instance_sp_covers_only_its_family():
    # The same demand with EC2 Instance SPs (families a and b): each plan covers one model only, busy half the
    # hours at a 30% discount: not worth it (0.7 > 0.5), and the plan stays all on-demand.
    rows = [dict(r, purchase_option=r["purchase_option"].replace("compute_sp", "ec2_instance_sp")) for r in ROWS]
    plan = _plan(_alternating(), 48, ("ec2_instance_sp_1y_no_upfront",), rows).plan
    assert plan.commitments == () and plan.expected.total_usd == pytest.approx(576.0)
    # with A busy every hour an instance SP of family a pays off and covers A alone: 8 x 0.7 = 5.6 USD/h
    fc = pd.concat([flat_forecast([8.0] * 48, A), flat_forecast(np.where(np.arange(48) % 2, 8.0, 0.0), B)])
    plan = _plan(fc, 48, ("ec2_instance_sp_1y_no_upfront",), rows).plan
    assert [(c.instance_family, c.commitment_usd_per_hour) for c in plan.commitments] == [("a", pytest.approx(5.6))]
    assert plan.expected.total_usd == pytest.approx(5.6 * 48 + 24 * 8 * 2.0)


def _sp(option: str, usd: float, rates: list[tuple[str, float]], family: str | None = None) -> Commitment:
    return Commitment(instance_type="", purchase_option=option, count=1, start=START, hourly_usd_per_instance=usd,
                      upfront_usd_per_instance=0.0, gpu_model="any GPU model", gpus_per_instance=0.0,
                      term_hours=8760, commitment_usd_per_hour=usd, instance_family=family,
                      sp_rates=tuple(SpRate(g, "x", r) for g, r in rates))


def test_bill_follows_the_serving_rule_order_in_a_hand_computed_case():
    # On-demand: A 1.00, B 2.00 USD/GPU-h. Owned: an RI of 2 A GPUs (0.60 each); an EC2 Instance SP of family a at
    # 1.20 USD/h (A at 0.60/GPU-h); a Compute SP at 3.00 USD/h (A at 0.70: 30% off; B at 1.60: 20% off, so A first).
    # Hour 0, demand A 5, B 1: RI serves 2 A (3 left); instance SP 1.20 / 0.60 = 2 A (1 left); Compute SP: A first,
    #   1 x 0.70, then B 1 x 1.60; 0.70 USD unused (lost). Nothing on-demand. 1.20 + 1.20 + 3.00 = 5.40 USD.
    #   (Compute SP before the instance SP would spend 2.10 on 3 A, cover 0.5625 B and bill 0.4375 B on-demand.)
    # Hour 1, demand A 1, B 3: RI serves 1 A (1 RI GPU idle); instance SP: no A left, 1.20 USD lost; Compute SP:
    #   3.00 / 1.60 = 1.875 B; 1.125 B on-demand (2.25). 1.20 + 1.20 + 3.00 + 2.25 = 7.65 USD.
    # Hour 2, demand A 6, B 2: RI 2 A, instance SP 2 A (2 left); Compute SP: A first 2 x 0.70 = 1.40, then
    #   1.60 / 1.60 = 1 B; 1 B on-demand (2.00). 1.20 + 1.20 + 3.00 + 2.00 = 7.40 USD.
    #   (B first would cover 1.875 B and bill 2 A + 0.125 B on-demand: 2.25.)
    # Three hours: 20.45 USD; all on-demand 7 + 7 + 10 = 24 USD.
    ri = Commitment(instance_type="a.1", purchase_option="reserved_1y_no_upfront", count=2, start=START,
                    hourly_usd_per_instance=0.6, upfront_usd_per_instance=0.0, gpu_model=A, gpus_per_instance=1.0,
                    term_hours=8760)
    plan = Plan(window_start=START, window_end=START + pd.Timedelta(hours=3), region="us-east-1",
                commitments=(_sp("compute_sp_1y_no_upfront", 3.0, [(A, 0.7), (B, 1.6)]), ri,
                             _sp("ec2_instance_sp_1y_no_upfront", 1.2, [(A, 0.6)], family="a")),
                spot=(), on_demand=(OnDemandRate(A, "a.1", 1.0), OnDemandRate(B, "b.1", 2.0)),
                expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0))
    ts = [START + pd.Timedelta(hours=h) for h in range(3)]
    usage = pd.DataFrame({S.TIMESTAMP: ts * 2, S.GPU_TYPE: [A] * 3 + [B] * 3,
                          S.GPUS: [5.0, 1.0, 6.0, 1.0, 3.0, 2.0]})
    billed = bill(plan, usage)
    hourly = billed.hourly.set_index([S.GPU_TYPE, S.TIMESTAMP])
    cost = hourly[["committed_usd", "spot_usd", "on_demand_usd"]].sum(axis=1).groupby(level=1).sum()
    assert cost.tolist() == pytest.approx([5.4, 7.65, 7.4])
    assert hourly.xs(B, level=0)["on_demand_gpus"].tolist() == pytest.approx([0.0, 1.125, 1.0])
    assert hourly.xs(A, level=0)["on_demand_gpus"].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert hourly.xs(A, level=0)["sp_covered_gpus"].tolist() == pytest.approx([3.0, 0.0, 4.0])
    assert billed.totals()["all_on_demand_usd"] == pytest.approx(24.0)
    assert billed.total_usd == pytest.approx(20.45)
    # plan.json keeps everything the rule needs: the file bills the same
    again = Plan.from_dict(json.loads(plan.to_json()))
    assert bill(again, usage).total_usd == pytest.approx(20.45)


demand_pairs = st.lists(st.tuples(st.floats(0, 20, allow_nan=False), st.floats(0, 20, allow_nan=False)),
                        min_size=4, max_size=24)


@settings(max_examples=15, deadline=None)
@given(demand=demand_pairs)
def test_a_plan_with_savings_plans_serves_all_demand(demand):
    d = np.asarray(demand)
    fc = pd.concat([flat_forecast(d[:, 0], A), flat_forecast(d[:, 1], B)])
    result = _plan(fc, len(d), BOTH)
    for costs in result.scenario_costs.values():
        served = costs["committed_used_gpus"] + costs["spot_gpus"] + costs["on_demand_gpus"]
        assert served == pytest.approx(costs["demand_gpus"], abs=1e-6)
    assert result.plan.expected.total_usd <= result.plan.expected.all_on_demand_usd + 1e-6


@settings(max_examples=12, deadline=None)
@given(demand=demand_pairs, extra=st.floats(0.01, 20), hour=st.integers(0, 23), model=st.integers(0, 1))
def test_cost_never_falls_when_demand_rises_with_savings_plans(demand, extra, hour, model):
    d = np.asarray(demand)
    more = d.copy()
    more[hour % len(d), model] += extra

    def total(x: np.ndarray) -> float:
        fc = pd.concat([flat_forecast(x[:, 0], A), flat_forecast(x[:, 1], B)])
        return _plan(fc, len(x), BOTH).plan.expected.total_usd

    assert total(more) >= total(d) - 1e-4 * total(d) - 1e-6      # the MIP gap is 0.01%


def test_snapshot_savings_plan_rates_follow_the_ri_rule_and_are_flagged():
    table = C.load_catalog().table
    aws = table[(table["provider"] == "aws") & (table["region"] == "us-east-1")].set_index(
        ["instance_type", "purchase_option"])
    p4d = aws.loc["p4d.24xlarge"]
    # Compute SP ~ convertible RI, EC2 Instance SP ~ standard RI, same term and payment; no SP rate is published
    # in the snapshot's source files, so every one is an estimate
    assert p4d.loc["compute_sp_1y_no_upfront", "effective_hourly_usd"] == \
        p4d.loc["convertible_1y_no_upfront", "effective_hourly_usd"]
    assert p4d.loc["ec2_instance_sp_3y_all_upfront", "effective_hourly_usd"] == \
        p4d.loc["reserved_3y_all_upfront", "effective_hourly_usd"]
    sp = table["purchase_option"].str.contains("_sp_")
    assert table.loc[sp, "rate_is_estimate"].all() and not table.loc[~sp, "rate_is_estimate"].any()
    assert set(table.loc[sp, "provider"]) == {"aws"}


def test_a_catalog_written_before_savings_plans_still_loads(tmp_path):
    old = C.load_catalog().table.drop(columns=["rate_is_estimate"])
    old = old[~old["purchase_option"].str.contains("_sp_")]
    path = tmp_path / "old.csv"
    old.to_csv(path, index=False)
    loaded = C.load_catalog(path).table
    assert "rate_is_estimate" in loaded.columns and not loaded["rate_is_estimate"].any()


def test_plan_on_the_synthetic_org_buys_a_compute_sp_beside_ris(tmp_path):
    out = tmp_path / "plan.json"
    run = subprocess.run([sys.executable, "-m", "app.cli", "plan", "--usage",
                          str(ROOT / "data_samples" / "synthetic_org.parquet"), "--out", str(out), "--month", "2026-01",
                          "--options", "compute_sp_1y_no_upfront,reserved_1y_no_upfront"],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"},
                         timeout=600)
    assert run.returncode == 0, run.stderr
    plan = json.loads(out.read_text())
    sps = [c for c in plan["commitments"] if c["purchase_option"] == "compute_sp_1y_no_upfront"]
    assert len(sps) == 1 and sps[0]["commitment_usd_per_hour"] > 0 and sps[0]["rate_is_estimate"] is True
    assert any(c["purchase_option"] == "reserved_1y_no_upfront" for c in plan["commitments"])
    assert "Compute SP" in run.stdout and "estimated from RI rates" in run.stdout
    # the savings plan is bought where it beats RIs: H100 has no RI price in the snapshot, only the SP covers it
    assert "NVIDIA H100" in {r["gpu_model"] for r in sps[0]["sp_rates"]}
    assert "savings plans" in plan["serving_rule"].lower()


def test_an_owned_compute_sp_is_used_first_and_not_bought_again():
    # The alternating demand with a Compute SP of 5.6 USD/h already owned (the plan's own optimum above): the MILP
    # sees its dollars in every hour it is active, buys nothing more, and the bill charges it (460.8 USD as above).
    owned = replace(_sp("compute_sp_1y_no_upfront", 5.6, [(A, 0.7), (B, 1.4)]), existing=True,
                    end=START + pd.Timedelta(hours=8760))
    cfg = PlanConfig(start=START, hours=48, options=BOTH, allow_spot=False, existing=(owned,))
    plan = make_plan(_alternating(), make_catalog(ROWS), cfg).plan
    assert [c.existing for c in plan.commitments] == [True]
    assert plan.expected.total_usd == pytest.approx(460.8)
    # owned only for the first 24 hours: the plan buys a new one of the same size for the hours after them
    half = replace(owned, end=START + pd.Timedelta(hours=24))
    plan = make_plan(_alternating(), make_catalog(ROWS), replace(cfg, existing=(half,))).plan
    new = [c for c in plan.commitments if not c.existing]
    assert [(c.purchase_option, c.commitment_usd_per_hour) for c in new] == [("compute_sp_1y_no_upfront", 5.6)]


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.tuples(st.floats(0, 50, allow_nan=False), st.floats(0, 50, allow_nan=False)),
                       min_size=1, max_size=200), cells=st.integers(1, 40))
def test_joint_cells_keep_every_gpu_hour_of_every_model(values, cells):
    from optimizer.problem import split_cells

    x = np.asarray(values, dtype=float).T
    labels = split_cells(x, np.ones(x.shape[1]), cells)
    assert labels.max() + 1 <= max(cells, 1) and labels.min() >= 0
    mass = np.bincount(labels)
    for row in x:     # each cell's mean level x its hours gives back each model's GPU-hours
        level = np.bincount(labels, weights=row) / np.where(mass > 0, mass, 1)
        assert (level * mass).sum() == pytest.approx(row.sum(), rel=1e-9, abs=1e-9)


def test_joint_cells_separate_alternating_peaks_exactly():
    from optimizer.problem import split_cells

    even = np.arange(48) % 2 == 0
    x = np.vstack([np.where(even, 8.0, 0.0), np.where(even, 0.0, 16.0)])
    labels = split_cells(x, np.ones(48), 6)
    assert len(set(labels)) == 2 and len(set(labels[even])) == 1 and len(set(labels[~even])) == 1


def test_maximum_commitment_holds_the_savings_plan_obligation():
    # The alternating case's Compute SP is 5.6 USD/h x 8,760 h = 49,056 USD over its term; a maximum commitment of
    # half that buys a plan of 2.8 USD/h (every USD/h up to 5.6 saves 68.6 USD for 48 USD): 2.8 x 48 + the rest
    # on-demand: even hours 4 A x 1.00, odd hours 6 B x 2.00 -> 134.4 + 24 x 4 + 24 x 12 = 518.4 USD.
    cfg = PlanConfig(start=START, hours=48, options=BOTH, allow_spot=False, max_obligation_usd=5.6 * 8760 / 2)
    plan = make_plan(_alternating(), make_catalog(ROWS), cfg).plan
    assert [c.commitment_usd_per_hour for c in plan.commitments] == [pytest.approx(2.8)]
    assert plan.expected.obligation_total_usd == pytest.approx(2.8 * 8760)
    assert plan.expected.total_usd == pytest.approx(518.4)


SPOT_ROWS = ROWS + [{"instance_type": "a.1", "purchase_option": "spot", "price": 0.5, "gpu_model": A},
                    {"instance_type": "b.1", "purchase_option": "spot", "price": 1.0, "gpu_model": B}]


@settings(max_examples=10, deadline=None)
@given(demand=demand_pairs, share=st.floats(0, 1))
def test_with_spot_a_savings_plan_plan_serves_all_demand_within_the_spot_share(demand, share):
    d = np.asarray(demand)
    fc = pd.concat([flat_forecast(d[:, 0], A), flat_forecast(d[:, 1], B)])
    result = make_plan(fc, make_catalog(SPOT_ROWS), PlanConfig(start=START, hours=len(d), options=BOTH,
                                                              max_spot_share=share))
    for costs in result.scenario_costs.values():
        served = costs["committed_used_gpus"] + costs["spot_gpus"] + costs["on_demand_gpus"]
        assert served == pytest.approx(costs["demand_gpus"], abs=1e-6)
        assert costs["spot_gpus"] <= share * costs["demand_gpus"] + 1e-6
    assert result.plan.expected.total_usd <= result.plan.expected.all_on_demand_usd + 1e-6


def test_an_owned_savings_plan_line_from_the_catalog():
    from optimizer.savings_plans import savings_plan_commitment

    cat = C.load_catalog()
    c = savings_plan_commitment(cat, "us-east-1", "compute_sp_1y_partial_upfront", 100.0, START)
    assert (c.commitment_usd_per_hour, c.existing, c.term_hours) == (100.0, True, 8760)
    assert c.upfront_usd_per_instance == pytest.approx(100.0 * 0.5 * 8760) and c.hourly_usd_per_instance == 50.0
    assert c.obligation_usd == pytest.approx(100.0 * 8760) and c.rate_is_estimate
    rows = cat.table[(cat.table["region"] == "us-east-1") & (cat.table["gpu_model"] == B)
                     & (cat.table["purchase_option"] == "convertible_1y_partial_upfront")]
    h100 = next(r for r in c.sp_rates if r.gpu_model == B)       # the lowest rate per GPU, as a convertible RI
    assert h100.usd_per_gpu_hour == pytest.approx((rows["effective_hourly_usd"] / rows["gpu_count"]).min())
    p4d = savings_plan_commitment(cat, "us-east-1", "ec2_instance_sp_1y_no_upfront", 10.0, START, family="p4d")
    assert [r.gpu_model for r in p4d.sp_rates] == [A] and p4d.instance_family == "p4d"
    with pytest.raises(ValueError, match="instance family"):
        savings_plan_commitment(cat, "us-east-1", "ec2_instance_sp_1y_no_upfront", 10.0, START)


@pytest.mark.parametrize("cvar_weight", [0.0, 0.5])
def test_over_the_term_the_tail_cells_keep_the_alternation(cvar_weight):
    # The alternation carries on for the whole 1-year term (two equal scenarios, no cost of capital): the same
    # Compute SP of 5.6 USD/h is right over the term, which costs 5.6 x 8,760 + 4,380 odd hours x 4 B GPUs x 2.00
    # = 49,056 + 35,040 = 84,096 USD. Separate load-duration curves per model after the window would pair A's and
    # B's peaks and see 11.2 USD/h of coverage used in every hour.
    from optimizer.inputs import Scenarios

    hours = pd.date_range(START, periods=48, freq="h")
    tail_hours = pd.date_range(hours[-1] + pd.Timedelta(hours=1), periods=8760 - 48, freq="h")
    even = np.arange(8760) % 2 == 0
    a, b = np.where(even, 8.0, 0.0), np.where(even, 0.0, 8.0)
    sc = Scenarios(hours=hours, gpu_models=(A, B), names=("s0", "s1"), weights=np.array([0.5, 0.5]),
                   demand={A: np.vstack([a[:48]] * 2), B: np.vstack([b[:48]] * 2)}, tail_hours=tail_hours,
                   tail={A: np.vstack([a[48:]] * 2), B: np.vstack([b[48:]] * 2)})
    cfg = PlanConfig(start=START, hours=48, options=BOTH, allow_spot=False, cost_of_capital=0.0,
                     cvar_weight=cvar_weight)
    result = make_plan(None, make_catalog(ROWS), cfg, scenarios=sc)
    plan = result.plan
    assert [c.commitment_usd_per_hour for c in plan.commitments] == [pytest.approx(5.6)]
    assert plan.expected.horizon_total_usd == pytest.approx(84096.0)
    assert result.lp_present_value_usd == pytest.approx(84096.0, rel=1e-3)
