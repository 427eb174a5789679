"""Purchase optimizer: hand-checkable plans and properties that must hold for any demand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.billing import bill
from optimizer.catalog import load_catalog
from optimizer.inputs import PlanConfig, PlanningError
from optimizer.plan import Plan
from optimizer.solve import make_plan
from tests.helpers import START, flat_forecast, make_catalog
from usage import schema as S

# One 1-GPU instance type: on-demand 1.00 USD/h, reserved 0.60 USD/h (40% discount), spot 0.30 USD/h.
BASIC = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
    {"instance_type": "x.1", "purchase_option": "spot", "price": 0.3},
]


def config(hours: int, **kw) -> PlanConfig:
    kw.setdefault("options", ("reserved_1y_no_upfront",))
    return PlanConfig(start=START, hours=hours, **kw)


def test_flat_demand_above_break_even_buys_reserved_for_all_of_it():
    result = make_plan(flat_forecast([10.0] * 100), make_catalog(BASIC), config(100, allow_spot=False))
    plan = result.plan
    assert [(c.instance_type, c.purchase_option, c.count) for c in plan.commitments] == \
        [("x.1", "reserved_1y_no_upfront", 10)]
    assert plan.expected.total_usd == pytest.approx(10 * 0.6 * 100)
    assert plan.expected.all_on_demand_usd == pytest.approx(10 * 1.0 * 100)
    assert plan.expected.commitment_utilization == pytest.approx(1.0)


@pytest.mark.parametrize("busy_share, expected_count", [(0.7, 10), (0.5, 0)])
def test_newsvendor_rule_commit_only_when_busy_more_than_one_minus_discount(busy_share, expected_count):
    # 40% discount: a committed GPU costs 0.6 USD every hour and saves 1.0 USD in each busy hour, so it
    # pays off iff it is busy more than 60% of the hours (the commitment sits at the 40% quantile).
    hours = 100
    demand = np.where(np.arange(hours) < busy_share * hours, 10.0, 0.0)
    result = make_plan(flat_forecast(demand), make_catalog(BASIC), config(hours, allow_spot=False))
    assert sum(c.count for c in result.plan.commitments) == expected_count
    busy = busy_share * hours * 10
    expected = expected_count * 0.6 * hours + max(busy - expected_count * busy_share * hours, 0) * 1.0
    assert result.plan.expected.total_usd == pytest.approx(expected)


def test_staircase_commitment_sits_at_the_discount_quantile_of_demand():
    # Demand is k GPUs in 10% of the hours for each k = 1..10. With a 35% discount (0.65 USD/h) the k-th
    # committed GPU is busy (11 - k) / 10 of the hours and pays off iff that exceeds 0.65: k <= 4, the
    # 35th percentile of hourly demand.
    rows = [dict(r, price=0.65) if r["purchase_option"].startswith("reserved") else r for r in BASIC]
    demand = np.repeat(np.arange(1, 11, dtype=float), 10)
    result = make_plan(flat_forecast(demand), make_catalog(rows), config(100, allow_spot=False))
    assert sum(c.count for c in result.plan.commitments) == 4 == np.quantile(demand, 0.35, method="inverted_cdf")


def test_spot_cap_binds_at_the_configured_share():
    result = make_plan(flat_forecast([10.0] * 50 + [20.0] * 50), make_catalog(BASIC), config(100, max_spot_share=0.2))
    costs = result.scenario_costs[S.P50]
    share = costs["spot_gpus"] / costs["demand_gpus"]
    assert share <= 0.2 + 1e-9
    assert share == pytest.approx(0.2, abs=0.011)  # the cap binds (whole instances)
    assert result.plan.spot and result.plan.spot[0].instance_type == "x.1"


def test_no_spot_and_zero_share_mean_no_spot_in_the_plan():
    for cfg in (config(24, allow_spot=False), config(24, max_spot_share=0.0)):
        plan = make_plan(flat_forecast([5.0] * 24), make_catalog(BASIC), cfg).plan
        assert plan.spot == () and plan.expected.spot_usd == 0.0


def test_spot_rework_raises_the_effective_price():
    risky = [dict(r, bucket=">20%") for r in BASIC]
    plan = make_plan(flat_forecast([4.0] * 24), make_catalog(risky), config(24, max_spot_share=1.0)).plan
    s = plan.spot[0]
    assert s.rework_fraction > 0
    assert plan.expected.spot_usd == pytest.approx(4.0 * 24 * 0.3 * (1 + s.rework_fraction))


def test_bigger_instances_are_bought_only_when_cheaper_per_gpu():
    rows = BASIC + [{"instance_type": "x.8", "purchase_option": "on_demand", "price": 8.0, "gpus": 8},
                    {"instance_type": "x.8", "purchase_option": "reserved_1y_no_upfront", "price": 4.4, "gpus": 8}]
    plan = make_plan(flat_forecast([17.0] * 48), make_catalog(rows), config(48, allow_spot=False)).plan
    counts = {c.instance_type: c.count for c in plan.commitments}
    assert counts == {"x.8": 2, "x.1": 1}   # 0.55/GPU beats 0.60/GPU; the odd GPU on a 1-GPU instance


def test_commitment_prices_reproduce_the_catalog_effective_rate():
    cat = load_catalog()
    fc = flat_forecast([40.0] * 48, gpu_model="NVIDIA H100")
    for option in ("reserved_3y_all_upfront", "reserved_3y_partial_upfront", "convertible_1y_no_upfront"):
        plan = make_plan(fc, cat, config(48, allow_spot=False, options=(option,))).plan
        assert plan.commitments, option
        for c in plan.commitments:
            row = cat.offers("us-east-1", instance_types=(c.instance_type,), options=(c.purchase_option,)).iloc[0]
            assert c.hourly_usd_per_instance + c.upfront_usd_per_instance / c.term_hours == \
                pytest.approx(row["effective_hourly_usd"], rel=1e-9)


def test_plan_json_round_trips_and_bills_the_same():
    cat = load_catalog()
    fc = pd.concat([flat_forecast(np.linspace(10, 30, 72), gpu_model="NVIDIA A100"),
                    flat_forecast([6.0] * 72, gpu_model="NVIDIA L4", team="serve")])
    plan = make_plan(fc, cat, config(72, options=("reserved_1y_all_upfront",))).plan
    doc = json.loads(plan.to_json())
    assert doc["schema"] == "gpuplan.plan/v1"
    assert set(doc["expected"]) >= {"total_usd", "committed_usd", "spot_usd", "on_demand_usd", "all_on_demand_usd"}
    for c in doc["commitments"]:
        assert set(c) >= {"instance_type", "purchase_option", "count", "start", "hourly_usd_per_instance",
                          "upfront_usd_per_instance"}
    again = Plan.from_dict(doc)
    usage = fc.rename(columns={S.P50: S.GPUS})[[S.TIMESTAMP, S.GPU_TYPE, S.GPUS]]
    assert bill(again, usage).total_usd == pytest.approx(bill(plan, usage).total_usd)
    assert bill(plan, usage).total_usd == pytest.approx(make_plan(fc, cat, config(72, options=(
        "reserved_1y_all_upfront",))).scenario_costs[S.P50]["total_usd"])


def test_forecast_must_cover_the_window():
    with pytest.raises(PlanningError, match="covers 24 of the 48 window hours"):
        make_plan(flat_forecast([1.0] * 24), make_catalog(BASIC), config(48))


def test_gpu_model_without_capacity_in_the_region_names_the_blocking_constraint():
    with pytest.raises(PlanningError, match="capacity"):
        make_plan(flat_forecast([1.0] * 24, gpu_model="NVIDIA H100"), make_catalog(BASIC), config(24))


demand_arrays = st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=6, max_size=48)


@settings(max_examples=25, deadline=None)
@given(demand=demand_arrays, spread=st.floats(min_value=0, max_value=0.5), share=st.floats(0, 1))
def test_every_scenario_is_fully_served(demand, spread, share):
    d = np.asarray(demand)
    fc = flat_forecast(d, p10=d * (1 - spread), p90=d * (1 + spread))
    result = make_plan(fc, make_catalog(BASIC), config(len(d), max_spot_share=share))
    for costs in result.scenario_costs.values():
        served = costs["committed_used_gpus"] + costs["spot_gpus"] + costs["on_demand_gpus"]
        assert served == pytest.approx(costs["demand_gpus"], abs=1e-6)
        assert costs["spot_gpus"] <= share * costs["demand_gpus"] + 1e-6
    assert result.plan.expected.total_usd <= result.plan.expected.all_on_demand_usd + 1e-6


@settings(max_examples=20, deadline=None)
@given(demand=demand_arrays, extra=st.floats(min_value=0.01, max_value=20), hour=st.integers(0, 47))
def test_cost_never_falls_when_demand_rises(demand, extra, hour):
    d = np.asarray(demand)
    more = d.copy()
    more[hour % len(d)] += extra
    cat = make_catalog(BASIC)
    base = make_plan(flat_forecast(d), cat, config(len(d), allow_spot=False)).plan.expected.total_usd
    higher = make_plan(flat_forecast(more), cat, config(len(d), allow_spot=False)).plan.expected.total_usd
    assert higher >= base - 1e-6


def test_summary_states_purchases_savings_and_the_full_term_obligation():
    from optimizer.summary import commitment_obligation_usd, summary

    plan = make_plan(flat_forecast([10.0] * 100), make_catalog(BASIC), config(100, allow_spot=False)).plan
    text = summary(plan)
    assert "10 x x.1 reserved_1y_no_upfront" in text
    assert "the plan saves 400 USD (40.0%)" in text
    assert commitment_obligation_usd(plan) == pytest.approx(10 * 0.6 * 8760)
    assert "52,560 USD" in text


def test_a_time_limited_solve_says_so_and_costs_no_less_than_the_optimum():
    rng = np.random.default_rng(3)
    demand = rng.uniform(0, 300, 24 * 30)
    rows = BASIC + [{"instance_type": "x.8", "purchase_option": "on_demand", "price": 8.0, "gpus": 8},
                    {"instance_type": "x.8", "purchase_option": "reserved_1y_no_upfront", "price": 4.7, "gpus": 8}]
    fc, cat = flat_forecast(demand, p10=demand * 0.5, p90=demand * 1.5), make_catalog(rows)
    rushed = make_plan(fc, cat, config(len(demand), time_limit_s=1e-3))
    full = make_plan(fc, cat, config(len(demand)))
    assert rushed.status == "time limit reached (best plan found)" and full.status == "Optimal"
    assert rushed.plan.expected.total_usd >= full.plan.expected.total_usd - 1e-6


@settings(max_examples=30, deadline=None)
@given(demand=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=5, max_size=300),
       bins=st.integers(1, 120))
def test_duration_cells_keep_every_gpu_hour(demand, bins):
    from optimizer.problem import duration_cells

    d = np.asarray([demand, demand[::-1]])
    s_idx, _, level, hours = duration_cells(d, bins)
    for s in (0, 1):
        assert (level[s_idx == s] * hours[s_idx == s]).sum() == pytest.approx(d[s].sum(), rel=1e-9, abs=1e-9)
        assert hours[s_idx == s].sum() <= d.shape[1]
    if bins < d.shape[1]:
        assert (np.diff(level[s_idx == 0]) <= 1e-9).all()   # a load-duration curve: sorted high to low


def test_binned_plan_bills_like_the_hourly_plan_on_the_synthetic_org():
    from forecasting.engine import ForecastConfig, forecast
    from forecasting.samples import load_sample

    usage = load_sample("synthetic")
    usage = usage[usage[S.TIMESTAMP] >= usage[S.TIMESTAMP].max() - pd.Timedelta(hours=24 * 7 * 6)]
    fc = forecast(usage, ForecastConfig(horizon_hours=336, history_hours=None)).forecast
    start = fc[S.TIMESTAMP].min()
    cat = load_catalog()
    exact = make_plan(fc, cat, PlanConfig(start=start, hours=336, duration_bins=None))
    binned = make_plan(fc, cat, PlanConfig(start=start, hours=336, duration_bins=96))
    assert binned.plan.expected.total_usd == pytest.approx(exact.plan.expected.total_usd, rel=1e-3)
    assert binned.lp_objective_usd <= exact.lp_objective_usd + 1e-6   # bin means relax the hourly problem


def test_plans_over_joint_sample_paths_cover_every_path():
    from forecasting.engine import ForecastConfig, forecast
    from forecasting.samples import load_sample
    from optimizer.inputs import scenarios_from_paths

    usage = load_sample("helios")
    res = forecast(usage, ForecastConfig(horizon_hours=48, cv_windows=4))
    start = res.forecast[S.TIMESTAMP].min()
    config = PlanConfig(start=start, hours=48, growth=0.1)
    sc = scenarios_from_paths(res.long, config, n_paths=20)
    assert sc.demand["NVIDIA Tesla V100"].shape == (20, 48) and sc.weights.sum() == pytest.approx(1.0)
    # growth applies to every path; the paths' mean tracks the point forecast (errors are centred roughly)
    point = res.forecast.groupby(S.TIMESTAMP)[S.MEAN].sum().to_numpy() * 1.1
    assert np.all(sc.demand["NVIDIA Tesla V100"] >= 0)
    assert abs(sc.demand["NVIDIA Tesla V100"].mean() / point.mean() - 1) < 0.25
    result = make_plan(None, load_catalog(), config, scenarios=sc)
    for costs in result.scenario_costs.values():
        served = costs["committed_used_gpus"] + costs["spot_gpus"] + costs["on_demand_gpus"]
        assert served == pytest.approx(costs["demand_gpus"])
    e = result.plan.expected
    assert e.total_p10_usd <= e.total_usd <= e.total_p90_usd
    assert result.plan.assumptions["scenarios"] == {"sample_paths": 20, "weight_each": 0.05}


def test_readme_api_plans_over_paths_from_a_result_and_quantiles_from_a_frame():
    from forecasting import ForecastConfig, forecast
    from forecasting.samples import load_sample
    from optimizer import plan_purchases

    res = forecast(load_sample("helios"), ForecastConfig(horizon_hours=48, cv_windows=4))
    start = res.forecast[S.TIMESTAMP].min()
    from_result = plan_purchases(res, start=f"{start:%Y-%m-%dT%H:%M}Z", hours=48)
    from_frame = plan_purchases(res.forecast, start=start, hours=48)
    assert len(from_result.scenarios.names) == 50 and from_frame.scenarios.names == (S.P10, S.P50, S.P90)
    assert from_result.plan.window_start == from_frame.plan.window_start == start
