"""Guardrails of the purchase plan: budget, committed spend, approvals, spot shares and spot capacity.

Every expected number is worked out by hand in the comments from the tiny catalogs below.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from optimizer.inputs import PlanConfig, PlanningError
from optimizer.solve import make_plan
from optimizer.summary import summary
from tests.helpers import START, flat_forecast, make_catalog

# One 1-GPU instance type: on-demand 1.00 USD/h, reserved 0.60 USD/h (40% discount), spot 0.30 USD/h.
BASIC = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
    {"instance_type": "x.1", "purchase_option": "spot", "price": 0.3},
]
FLAT = flat_forecast([10.0] * 100)   # 10 GPUs for 100 hours: 1,000 GPU-hours, 1,000 USD all on-demand


def config(hours: int = 100, **kw) -> PlanConfig:
    kw.setdefault("options", ("reserved_1y_no_upfront",))
    return PlanConfig(start=START, hours=hours, **kw)


def test_a_budget_below_the_cheapest_plan_names_capacity_and_the_smallest_budget():
    # Cheapest plan without spot: 10 reserved x 0.6 USD x 100 h = 600 USD.
    with pytest.raises(PlanningError) as err:
        make_plan(FLAT, make_catalog(BASIC), config(allow_spot=False, budget_usd=500))
    msg = str(err.value)
    assert "\n" not in msg
    assert "budget of 500 USD" in msg and "capacity" in msg
    assert "smallest budget that works is 600 USD" in msg and "--budget 600" in msg


def test_a_budget_at_the_cheapest_cost_is_met_by_the_same_plan():
    plan = make_plan(FLAT, make_catalog(BASIC), config(allow_spot=False, budget_usd=600)).plan
    assert [c.count for c in plan.commitments] == [10]
    assert plan.expected.total_usd == pytest.approx(600.0)
    assert plan.assumptions["guardrails"]["budget_usd"] == 600


def test_budget_infeasibility_names_a_binding_spot_capacity():
    # With spot capped at 2 instances: 2 GPUs on spot (0.30 USD/h x (1 + rework)) and 8 reserved
    # (0.60 USD/h): 8 x 0.6 x 100 + 2 x 0.3 x 100 = 540 USD (+ a cent of on-demand for the rework).
    cfg = config(max_spot_share=1.0, spot_capacity=(("x.1", 2),), budget_usd=400)
    with pytest.raises(PlanningError) as err:
        make_plan(FLAT, make_catalog(BASIC), cfg)
    msg = str(err.value)
    assert "spot capacity (x.1 at most 2 instances)" in msg
    assert "max commitment" not in msg and "spot cap (" not in msg
    assert "smallest budget that works is 541 USD" in msg


def test_budget_infeasibility_names_a_binding_spot_share():
    # 30% of 1,000 GPU-hours on spot at most: best is 7 reserved (420 USD) + 3 GPUs on spot (~90 USD).
    with pytest.raises(PlanningError, match=r"spot cap \(max spot share 30%\)"):
        make_plan(FLAT, make_catalog(BASIC), config(max_spot_share=0.3, budget_usd=300))


ONE_OBLIGATION = 0.6 * 8760   # one 1-year reserved x.1: 0.60 USD/h for every hour of its term = 5,256 USD


def test_budget_infeasibility_names_a_binding_max_commitment():
    # A maximum commitment of 5 obligations (26,280 USD): 5 reserved (300 USD in the window) + 5 GPUs on-demand
    # (500 USD) = 800 USD.
    with pytest.raises(PlanningError) as err:
        make_plan(FLAT, make_catalog(BASIC), config(allow_spot=False, max_obligation_usd=5 * ONE_OBLIGATION,
                                                    budget_usd=700))
    assert "max commitment (26,280 USD)" in str(err.value) and "smallest budget that works is 800 USD" in str(err.value)


def test_maximum_commitment_caps_the_obligation_over_the_full_terms():
    # The cap is the obligation (upfront + every recurring hour of the term), not the window cost: 5.9 obligations
    # allow 5 instances, whatever the window's length.
    plan = make_plan(FLAT, make_catalog(BASIC), config(allow_spot=False, max_obligation_usd=5.9 * ONE_OBLIGATION)).plan
    assert [c.count for c in plan.commitments] == [5]
    assert plan.expected.obligation_total_usd == pytest.approx(5 * ONE_OBLIGATION)
    assert plan.expected.committed_usd == pytest.approx(300.0)
    assert plan.expected.total_usd == pytest.approx(800.0)
    assert "maximum commitment 31,010 USD (obligation over the full terms)" in summary(plan)


def test_max_committed_share_of_expected_cost():
    # n reserved: commitments 60n USD, total 60n + 100(10 - n) = 1000 - 40n; 60n <= 0.5 (1000 - 40n) -> n <= 6.25.
    plan = make_plan(FLAT, make_catalog(BASIC), config(allow_spot=False, max_commit_share=0.5)).plan
    assert [c.count for c in plan.commitments] == [6]
    assert plan.expected.committed_usd <= 0.5 * plan.expected.total_usd


LARGE = BASIC + [{"instance_type": "x.8", "purchase_option": "on_demand", "price": 8.0, "gpus": 8},
                 {"instance_type": "x.8", "purchase_option": "reserved_1y_no_upfront", "price": 4.4, "gpus": 8}]


def test_instance_types_needing_approval_are_left_out_until_approved():
    fc = flat_forecast([16.0] * 48)
    blocked = make_plan(fc, make_catalog(LARGE), config(48, allow_spot=False, needs_approval=("x.8",))).plan
    assert {c.instance_type: c.count for c in blocked.commitments} == {"x.1": 16}
    approved = make_plan(fc, make_catalog(LARGE), config(48, allow_spot=False, needs_approval=("x.8",),
                                                         approved=("x.8",))).plan
    assert {c.instance_type: c.count for c in approved.commitments} == {"x.8": 2}   # 0.55 < 0.60 USD per GPU


def test_when_every_type_needs_approval_the_error_says_which_to_approve():
    with pytest.raises(PlanningError, match=r"capacity: x.1 need approval; fix: --approve x.1"):
        make_plan(FLAT, make_catalog(BASIC), config(needs_approval=("x.1",)))


def test_spot_share_per_gpu_model_keeps_latency_bound_work_off_spot():
    rows = BASIC + [dict(r, instance_type="l.1", gpu_model="NVIDIA L4") for r in BASIC]
    fc = np.full(24, 10.0)
    forecast = pd.concat([flat_forecast(fc), flat_forecast(fc, gpu_model="NVIDIA L4", team="serve")])
    plan = make_plan(forecast, make_catalog(rows), config(24, max_spot_share=0.3,
                                                          spot_share_by_model=(("NVIDIA L4", 0.0),))).plan
    assert {s.gpu_model for s in plan.spot} == {"NVIDIA A100"}
    assert plan.assumptions["guardrails"]["spot_share_by_model"] == {"NVIDIA L4": 0.0}


def test_spot_capacity_caps_a_type_and_the_next_cheapest_spot_type_takes_the_rest():
    # x.1 spot 0.30 USD/h capped at 3 instances; y.1 spot 0.45 USD/h unlimited; reserved 0.60 USD/h.
    # Flat 10 GPUs, spot share 100%: 3 on x.1 spot, 7 on y.1 spot, nothing reserved.
    rows = BASIC + [{"instance_type": "y.1", "purchase_option": "on_demand", "price": 1.0},
                    {"instance_type": "y.1", "purchase_option": "spot", "price": 0.45}]
    plan = make_plan(FLAT, make_catalog(rows), config(max_spot_share=1.0, spot_capacity=(("x.1", 3),))).plan
    assert {s.instance_type: s.max_instances for s in plan.spot} == {"x.1": 3, "y.1": 8}
    assert plan.commitments == ()
    rework = plan.spot[0].rework_fraction
    x_cost = 3 / (1 + rework) * 100 * 0.3 * (1 + rework)   # the useful GPUs x.1 serves, at its useful rate
    y_cost = (10 - 3 / (1 + rework)) * 100 * 0.45 * (1 + rework)
    assert plan.expected.spot_usd == pytest.approx(x_cost + y_cost, rel=1e-9)
    assert plan.expected.on_demand_usd == pytest.approx(0.0, abs=1e-9)


def test_spot_capacity_zero_removes_the_type():
    plan = make_plan(FLAT, make_catalog(BASIC), config(max_spot_share=1.0, spot_capacity=(("x.1", 0),))).plan
    assert plan.spot == () and [c.count for c in plan.commitments] == [10]


@pytest.mark.parametrize("kw, match", [
    ({"spot_capacity": (("x.1", -1),)}, "spot capacity for x.1 must be a whole number"),
    ({"spot_share_by_model": (("NVIDIA A100", 1.5),)}, "spot share for NVIDIA A100 must be between 0 and 1"),
    ({"budget_usd": -1.0}, "budget must be >= 0"),
    ({"max_commit_share": 2.0}, "maximum committed share must be between 0 and 1"),
])
def test_bad_guardrail_settings_are_one_line_errors(kw, match):
    with pytest.raises(PlanningError, match=match):
        config(**kw)


def test_cli_budget_approval_and_spot_capacity_flags(tmp_path):
    from app.cli import app
    from tests.test_cli import HELIOS as helios

    runner = CliRunner()
    out = tmp_path / "plan.json"
    base = ["plan", "--usage", str(helios), "--start", "2020-05-24T16:00Z", "--hours", "48", "--out", str(out)]
    r = runner.invoke(app, [*base, "--budget", "1"])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith("  ")]   # minus ingest notes
    assert len(lines) == 1 and "no plan fits the budget of 1 USD" in lines[0] and "smallest budget" in lines[0]
    assert not out.exists()
    r = runner.invoke(app, [*base, "--max-commit-share", "1.5"])
    assert r.exit_code == 2 and "maximum committed share must be between 0 and 1" in r.output
    r = runner.invoke(app, [*base, "--spot-capacity", "p3.2xlarge"])
    assert r.exit_code == 2 and "is not TYPE=N" in r.output
    r = runner.invoke(app, [*base, "--needs-approval", "p3.2xlarge,p3.8xlarge,p3.16xlarge,p3dn.24xlarge"])
    assert r.exit_code == 2 and "need approval" in r.output and "--approve p3.16xlarge" in r.output
    r = runner.invoke(app, [*base, "--spot-capacity", "p3.2xlarge=2", "--max-obligation-usd", "500000",
                            "--needs-approval", "p3dn.24xlarge", "--approve", "p3dn.24xlarge"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    g = doc["assumptions"]["guardrails"]
    assert g["spot_capacity"] == {"p3.2xlarge": 2} and g["max_obligation_usd"] == 500000
    assert g["approved"] == ["p3dn.24xlarge"]
    obligation = sum(c["obligation_usd"] for c in doc["commitments"])
    assert 0 < obligation <= 500000 + 1e-6   # 3 p3dn.24xlarge at about 160k USD each
    assert doc["expected"]["obligation_total_usd"] == pytest.approx(obligation, abs=0.05)
    r = runner.invoke(app, [*base, "--max-commit-usd", "100"])   # the old flag capped window cost: refused
    assert r.exit_code == 2 and "--max-commit-usd was removed" in r.output and "--max-obligation-usd" in r.output
    assert all(s["max_instances"] <= 2 for s in doc["spot"] if s["instance_type"] == "p3.2xlarge")


def test_spot_share_is_billed_as_modelled_so_a_budget_sees_the_model_cost():
    # No commitments; spot 0.30 USD/h, on-demand 1.00 USD/h, at most 50% of GPU-hours on spot in every scenario.
    # p10: 10 GPUs in hour 0 only (spot <= 5 GPU-hours); p50 = p90: 4 GPUs in each of 4 hours (spot <= 8).
    # Model: p10 puts 5 GPUs on spot in hour 0, p50 8 of its 16 GPU-hours: 0.3 (5 x 0.3 + 5) + 0.7 (8 x 0.3 + 8)
    # = 9.23 USD. The serving rule gives spot up to its cap in every hour and then holds it to the share (p50: 4 GPUs
    # x 4 h = 16 spot GPU-hours cut to 8), so the bill is the same 9.23 USD (before the share was part of the
    # rule, the plan had to shrink spot to 2 instances and billed 9.86 USD). A 5-GPU cap needs a 6th instance:
    # each serves 1 / (1 + rework) useful GPU.
    fc = flat_forecast(np.full(4, 4.0), p10=np.array([10.0, 0, 0, 0]), p90=np.full(4, 4.0))
    cfg = PlanConfig(start=START, hours=4, options=(), max_spot_share=0.5, duration_bins=None)
    result = make_plan(fc, make_catalog(BASIC), cfg)
    assert result.lp_objective_usd == pytest.approx(9.23, abs=1e-3)
    assert round(result.plan.expected.total_usd, 2) == round(result.lp_objective_usd, 2)
    assert [(s.max_instances, s.max_spot_share) for s in result.plan.spot] == [(6, 0.5)]
    assert result.scenario_costs["p50"]["spot_gpus"] == pytest.approx(8.0)
    assert result.scenario_costs["p10"]["spot_gpus"] == pytest.approx(5.0)
    assert make_plan(fc, make_catalog(BASIC), replace(cfg, budget_usd=9.5)).plan.expected.total_usd <= 9.5
    with pytest.raises(PlanningError) as err:
        make_plan(fc, make_catalog(BASIC), replace(cfg, budget_usd=9.0))
    assert "smallest budget that works is 10 USD" in str(err.value)
    assert "spot cap (max spot share 50%)" in str(err.value)
