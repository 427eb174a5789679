"""Risk: the optional CVaR90 weight in the objective and the risk figures in plan.json.

Three scenarios p10/p50/p90 weighted 0.3/0.4/0.3; one 1-GPU type at 1.00 USD/h on-demand, 0.60 USD/h reserved.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.inputs import PlanConfig
from optimizer.solve import cvar, make_plan
from tests.helpers import START, flat_forecast, make_catalog

BASIC = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
]
# 0 GPUs in p10, 10 in p50, 20 in p90, for 100 hours.
SPREAD = flat_forecast(np.full(100, 10.0), p10=np.zeros(100), p90=np.full(100, 20.0))


def config(**kw) -> PlanConfig:
    return PlanConfig(start=START, hours=100, options=("reserved_1y_no_upfront",), allow_spot=False,
                      duration_bins=None, **kw)


@pytest.mark.parametrize("weight, count, expected, tail", [
    # GPUs 1-10 are busy in p50 and p90 (0.7 > 0.6): always bought. GPUs 11-20 are busy only in p90: each adds
    # 0.6 - 0.3 = +0.3 USD/h of expected cost and takes 1.0 - 0.6 = 0.4 USD/h off the p90 cost, which is the
    # CVaR90 (p90 holds 30% >= the worst 10% of weight). They pay off when weight x 0.4 > 0.3: weight > 0.75.
    (0.0, 10, 900.0, 1600.0),
    (0.5, 10, 900.0, 1600.0),
    (1.0, 20, 1200.0, 1200.0),
])
def test_cvar_weight_buys_the_hedge_exactly_past_the_hand_computed_threshold(weight, count, expected, tail):
    plan = make_plan(SPREAD, make_catalog(BASIC), config(cvar_weight=weight)).plan
    assert sum(c.count for c in plan.commitments) == count
    assert plan.expected.total_usd == pytest.approx(expected)
    assert plan.expected.cvar90_usd == pytest.approx(tail)
    doc = json.loads(plan.to_json())
    assert doc["expected"]["cvar90_usd"] == pytest.approx(tail)
    assert doc["expected"]["total_p10_usd"] <= doc["expected"]["total_usd"] <= doc["expected"]["total_p90_usd"]
    assert doc["assumptions"]["risk"] == {"cvar_weight": weight, "cvar_alpha": 0.9}


def test_a_budget_limits_how_much_risk_the_plan_buys_off():
    # With weight 1 each GPU past 10 adds 30 USD of expected cost over 100 h: 900 + 30 (n - 10) <= 1000 -> n = 13.
    plan = make_plan(SPREAD, make_catalog(BASIC), config(cvar_weight=1.0, budget_usd=1000)).plan
    assert sum(c.count for c in plan.commitments) == 13
    assert plan.expected.total_usd == pytest.approx(990.0)


def test_cvar_is_the_mean_of_the_worst_tenth_of_weight():
    assert cvar(np.arange(1.0, 21.0), np.full(20, 0.05)) == pytest.approx(19.5)
    assert cvar(np.array([600.0, 600.0, 1600.0]), np.array([0.3, 0.4, 0.3])) == pytest.approx(1600.0)
    # the tail straddles two values: 5% at 10 and 5% of the 20% at 5
    assert cvar(np.array([10.0, 5.0, 1.0]), np.array([0.05, 0.2, 0.75])) == pytest.approx(7.5)


@settings(max_examples=15, deadline=None)
@given(levels=st.lists(st.floats(min_value=0, max_value=40, allow_nan=False), min_size=12, max_size=12),
       spread=st.floats(min_value=0.0, max_value=0.9), weight=st.floats(min_value=0.05, max_value=3.0))
def test_a_risk_weight_never_raises_cvar_nor_lowers_expected_cost(levels, spread, weight):
    d = np.repeat(np.asarray(levels), 4)
    fc = flat_forecast(d, p10=d * (1 - spread), p90=d * (1 + 2 * spread))
    cfg = PlanConfig(start=START, hours=len(d), options=("reserved_1y_no_upfront",), allow_spot=False,
                     duration_bins=None)
    neutral = make_plan(fc, make_catalog(BASIC), cfg).plan.expected
    averse = make_plan(fc, make_catalog(BASIC), replace(cfg, cvar_weight=weight)).plan.expected
    tol = 1e-3 * max(neutral.total_usd, 1.0)   # the MIP stops within a 0.01% gap
    assert averse.cvar90_usd <= neutral.cvar90_usd + tol
    assert averse.total_usd >= neutral.total_usd - tol
