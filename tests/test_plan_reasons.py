"""Reasons a plan states are the real ones (issue 15, item 5): a GPU model without commitment prices in the catalog
is said to have none, instead of 'demand is too uncertain or too low'."""

from __future__ import annotations

import numpy as np

from optimizer.inputs import PlanConfig
from optimizer.solve import make_plan
from optimizer.summary import summary
from tests.helpers import START, flat_forecast, make_catalog

B200 = "NVIDIA B200"
A100 = "NVIDIA A100"
ROWS = [{"instance_type": "b1", "purchase_option": "on_demand", "price": 10.0, "gpu_model": B200},
        {"instance_type": "b1", "purchase_option": "spot", "price": 6.0, "gpu_model": B200},
        {"instance_type": "a1", "purchase_option": "on_demand", "price": 4.0, "gpu_model": A100},
        {"instance_type": "a1", "purchase_option": "reserved_1y_no_upfront", "price": 2.4, "gpu_model": A100}]


def config(**kw) -> PlanConfig:
    return PlanConfig(start=START, hours=48, allow_spot=False, term_horizon=False, **kw)


def test_a_gpu_model_without_commitment_prices_is_named_as_the_reason():
    cat = make_catalog(ROWS)
    plan = make_plan(flat_forecast(np.full(48, 8.0), B200), cat, config()).plan
    assert not plan.commitments
    reason = plan.assumptions["no_commitment_reason"]
    assert reason == "the catalog has no commitment price for NVIDIA B200 in us-east-1 under the options considered"
    text = summary(plan)
    assert f"no commitments now: {reason}" in text and "too uncertain" not in text


def test_steady_demand_with_prices_is_committed_and_the_priceless_model_gets_a_note():
    cat = make_catalog(ROWS)
    fc = flat_forecast(np.full(48, 8.0), B200)
    fc = fc._append(flat_forecast(np.full(48, 4.0), A100), ignore_index=True)
    plan = make_plan(fc, cat, config()).plan
    assert {c.gpu_model for c in plan.commitments} == {A100}
    assert "no_commitment_reason" not in plan.assumptions
    assert ("the catalog has no commitment price for NVIDIA B200 in us-east-1 under the options considered: "
            "NVIDIA B200 is served by spot and on-demand only") in plan.assumptions["notes"]


def test_idle_demand_keeps_the_demand_reason():
    cat = make_catalog(ROWS)
    plan = make_plan(flat_forecast(np.zeros(48), A100), cat, config()).plan
    assert not plan.commitments and "no_commitment_reason" not in plan.assumptions
    assert "demand is too uncertain or too low" in summary(plan)
