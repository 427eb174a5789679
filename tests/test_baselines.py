"""Baselines: all on-demand, the look-back recommender and the hindsight optimum, billed by the serving rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import catalog as C
from optimizer.backtest_plan import capped_cost
from optimizer.baselines import (
    all_on_demand_plan,
    choose_lookback,
    hindsight_plan,
    lookback_plan,
    max_spot_gpus,
)
from optimizer.billing import bill
from optimizer.inputs import PlanConfig, PlanningError, Scenarios, offers_for
from optimizer.solve import make_plan
from tests.helpers import START, make_catalog
from usage import schema as S

# One 1-GPU type: on-demand 1.00 USD/h, reserved 0.60 (40% off), convertible 0.70, spot 0.30 USD/h.
ROWS = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
    {"instance_type": "x.1", "purchase_option": "convertible_1y_no_upfront", "price": 0.7},
    {"instance_type": "x.1", "purchase_option": "spot", "price": 0.3},
]
CAT = make_catalog(ROWS)
OPTIONS = ("reserved_1y_no_upfront", "convertible_1y_no_upfront")
GPU = "NVIDIA A100"


def usage(values, start: pd.Timestamp, team: str = "t") -> pd.DataFrame:
    v = np.asarray(values, dtype=float)
    return pd.DataFrame({S.TIMESTAMP: pd.date_range(start, periods=len(v), freq="h"), S.TEAM: team,
                         S.GPU_TYPE: GPU, S.GPUS: v})


def config(hours: int, **kw) -> PlanConfig:
    kw.setdefault("options", OPTIONS)
    return PlanConfig(start=START, hours=hours, **kw)


def history(values) -> pd.DataFrame:
    """Usage ending the hour before START."""
    return usage(values, START - pd.Timedelta(hours=len(values)))


def commitments(plan) -> list[tuple[str, str, int]]:
    return [(c.instance_type, c.purchase_option, c.count) for c in plan.commitments]


def test_flat_usage_commits_to_the_flat_level_with_the_cheapest_option():
    hist = history([5.0] * (30 * 24))
    for days in (7, 30, 60):
        plan = lookback_plan(hist, CAT, config(24, allow_spot=False), days)
        assert commitments(plan) == [("x.1", "reserved_1y_no_upfront", 5)]
        assert plan.spot == ()
        assert plan.assumptions["lookback_hours_used"] == min(days, 30) * 24   # 60 days: all 30 there are
        # expected = its look-back cost scaled to the window: 5 GPUs x 0.60 USD x 24 h
        assert plan.expected.total_usd == pytest.approx(5 * 0.6 * 24)
    billed = bill(plan, usage([5.0] * 24, START)).totals()
    assert billed["total_usd"] == pytest.approx(72.0) and billed["commitment_utilization"] == pytest.approx(1.0)


def test_a_spike_inside_the_short_lookback_makes_it_over_commit():
    # Newsvendor with a 40% discount: the k-th committed GPU costs 0.6 USD every hour and saves 1.0 USD in each
    # hour demand reaches it, so it pays off iff demand reaches it in more than 60% of the look-back hours.
    # 4 GPUs for 27 days, then 12 GPUs for 3 days: GPUs 5..12 are busy 72 of 168 h (43%) in the 7-day look-back.
    hist = history([4.0] * (27 * 24) + [12.0] * (3 * 24))
    lb7 = lookback_plan(hist, CAT, config(24, allow_spot=False), 7)
    lb30 = lookback_plan(hist, CAT, config(24, allow_spot=False), 30)
    # 43% < 60%: even the 7-day look-back keeps them on demand.
    assert commitments(lb30) == [("x.1", "reserved_1y_no_upfront", 4)]
    assert commitments(lb7) == [("x.1", "reserved_1y_no_upfront", 4)]
    # A spike over 5 of the last 7 days (120 h = 71% of the 7-day look-back, 17% of 30 days) is different.
    hist = history([4.0] * (25 * 24) + [12.0] * (5 * 24))
    lb7 = lookback_plan(hist, CAT, config(24, allow_spot=False), 7)
    lb30 = lookback_plan(hist, CAT, config(24, allow_spot=False), 30)
    assert commitments(lb7) == [("x.1", "reserved_1y_no_upfront", 12)]
    assert commitments(lb30) == [("x.1", "reserved_1y_no_upfront", 4)]
    # The spike is over: the window runs at 4 GPUs. The 7-day plan pays 12 x 0.6 per hour, the 30-day 4 x 0.6.
    window = usage([4.0] * 24, START)
    assert bill(lb7, window).total_usd == pytest.approx(12 * 0.6 * 24)
    assert bill(lb30, window).total_usd == pytest.approx(4 * 0.6 * 24)
    assert bill(hindsight_plan(window, CAT, config(24, allow_spot=False)), window).total_usd == \
        pytest.approx(4 * 0.6 * 24)


def test_with_spot_the_lookback_fills_the_spot_share_and_commits_the_rest():
    # Flat 10 GPUs, spot cap 30%: 7 reserved and the other 3 GPUs on spot. Spot serves 1 / (1 + rework) useful
    # GPU per instance-hour (rework ~5e-5 for the <5% bucket), so 3 GPUs need a 4th instance, used pro rata;
    # spot then serves exactly 30%. 8 reserved + spot would cost 0.6 - 0.3 x (1 + rework) more per hour.
    hist = history([10.0] * (7 * 24))
    plan = lookback_plan(hist, CAT, config(24, max_spot_share=0.3), 7)
    assert commitments(plan) == [("x.1", "reserved_1y_no_upfront", 7)]
    assert [(s.instance_type, s.max_instances) for s in plan.spot] == [("x.1", 4)]
    rework = C.rework_fraction("<5%")
    billed = bill(plan, usage([10.0] * 24, START)).totals()
    assert billed["spot_gpus"] / billed["demand_gpus"] == pytest.approx(0.3)
    assert billed["total_usd"] == pytest.approx(24 * (7 * 0.6 + 3 * 0.3 * (1 + rework)))
    # A 25% cap: 7 reserved would leave 3 GPUs of which spot may take 2.5 (2 whole instances): 4.2 + 0.6 + 1.0
    # on demand = 5.8 USD/h. 8 reserved and the last 2 GPUs on spot (3 instances, 20%) cost 4.8 + 0.6 = 5.4.
    plan = lookback_plan(hist, CAT, config(24, max_spot_share=0.25), 7)
    assert commitments(plan) == [("x.1", "reserved_1y_no_upfront", 8)]
    assert [(s.instance_type, s.max_instances) for s in plan.spot] == [("x.1", 3)]
    assert plan.expected.total_usd == pytest.approx(24 * (8 * 0.6 + 2 * 0.3 * (1 + rework)))
    # Spot is offered only within the plan's own policy: without spot, 10 reserved.
    assert commitments(lookback_plan(hist, CAT, config(24, allow_spot=False), 7)) == [
        ("x.1", "reserved_1y_no_upfront", 10)]


def test_lookback_choice_tries_every_instance_size():
    # An 8-GPU type at 0.5 USD/GPU-h reserved is cheaper per GPU than the 1-GPU type at 0.6, but comes in
    # blocks of 8. Flat 12 GPUs: 12 x 1-GPU = 7.2 USD/h beats 1 x 8-GPU + 4 on demand = 8.0 and 2 x 8-GPU = 8.0
    # (a single flat commitment uses one offer). Flat 16 GPUs: 2 x 8-GPU = 8.0 USD/h beats 16 x 0.6 = 9.6.
    rows = ROWS + [{"instance_type": "x.8", "purchase_option": "on_demand", "price": 8.0, "gpus": 8},
                   {"instance_type": "x.8", "purchase_option": "reserved_1y_no_upfront", "price": 4.0, "gpus": 8}]
    cat = make_catalog(rows)
    off = offers_for(cat, GPU, config(24, allow_spot=False))
    pick = choose_lookback(np.full(168, 12.0), off)
    assert off.commitments.iloc[pick.offer_row][C.INSTANCE_TYPE] == "x.1" and pick.count == 12
    assert pick.lookback_cost_usd == pytest.approx(12 * 0.6 * 168)
    pick = choose_lookback(np.full(168, 16.0), off)
    assert off.commitments.iloc[pick.offer_row][C.INSTANCE_TYPE] == "x.8" and pick.count == 2


def test_all_on_demand_bills_every_gpu_hour_at_the_on_demand_rate():
    plan = all_on_demand_plan(CAT, config(24), (GPU,), history([3.0] * 48), lookback_days=1)
    assert plan.commitments == () and plan.spot == ()
    assert plan.expected.total_usd == pytest.approx(3.0 * 24)
    demand = np.arange(24, dtype=float)
    assert bill(plan, usage(demand, START)).total_usd == pytest.approx(demand.sum())


def test_max_spot_gpus_solves_the_share_equation():
    e = np.sort(np.array([0.0, 1.0, 2.0, 10.0]))
    # f(x) = sum min(e, x): f(2) = 0 + 1 + 2 + 2 = 5; f(4) = 3 + 4 = 7 -> x* for limit 7 is 4.
    assert max_spot_gpus(e, 7.0) == pytest.approx(4.0)
    # f(1) = 0 + 1 + 1 + 1 = 3 > 2; below 1, f(x) = 0 + 3x -> x* = 2/3.
    assert max_spot_gpus(e, 2.0) == pytest.approx(2 / 3)
    assert max_spot_gpus(e, 13.0) == np.inf


def test_capped_cost_reprices_spot_beyond_the_share_at_on_demand():
    # 3 spot instances on 10 GPUs of demand = 30% spot; with a 20% cap, 10% of 240 GPU-h goes back to 1.0 USD.
    plan = lookback_plan(history([10.0] * 168), CAT, config(24, max_spot_share=0.3), 7)
    billed = bill(plan, usage([10.0] * 24, START))
    t = billed.totals()
    spot_rate = t["spot_usd"] / t["spot_gpus"]
    over = t["spot_gpus"] - 0.2 * 240
    assert capped_cost(billed, config(24, max_spot_share=0.2)) == pytest.approx(
        billed.total_usd + over * (1.0 - spot_rate))
    assert capped_cost(billed, config(24, max_spot_share=0.3)) == pytest.approx(billed.total_usd)


def test_lookback_needs_history_before_the_window():
    with pytest.raises(PlanningError, match="no usage before"):
        lookback_plan(usage([1.0] * 48, START), CAT, config(24), 7)


# Two sizes and spot, for the property: 1-GPU and 4-GPU types with their own discounts, and spot on an 8-GPU
# type (cheapest per GPU, so whole 8-GPU spot instances serve demand of 0-30 GPUs).
PROP_ROWS = ROWS + [{"instance_type": "x.4", "purchase_option": "on_demand", "price": 4.0, "gpus": 4},
                    {"instance_type": "x.4", "purchase_option": "reserved_1y_no_upfront", "price": 2.2, "gpus": 4},
                    {"instance_type": "x.8", "purchase_option": "on_demand", "price": 8.0, "gpus": 8},
                    {"instance_type": "x.8", "purchase_option": "spot", "price": 2.2, "gpus": 8}]
PROP_CAT = make_catalog(PROP_ROWS)
MIP_SLACK = 2e-4


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hist=st.lists(st.floats(0, 30, allow_nan=False), min_size=72, max_size=72),
       window=st.lists(st.floats(0, 30, allow_nan=False), min_size=24, max_size=24),
       spot=st.booleans())
def test_hindsight_is_never_beaten_on_the_billed_window(hist, window, spot):
    # Hourly values are repeated to 6 days of history so the look-backs differ (1, 3 and 6 days).
    hist_frame = history(np.repeat(hist, 2))
    actual = usage(window, START)
    cfg = config(24, options=("reserved_1y_no_upfront",), allow_spot=spot, max_spot_share=0.3)
    best = bill(hindsight_plan(actual, PROP_CAT, cfg, (GPU,)), actual)
    contenders = [all_on_demand_plan(PROP_CAT, cfg, (GPU,))]
    contenders += [lookback_plan(hist_frame, PROP_CAT, cfg, d, (GPU,)) for d in (1, 3, 6)]
    # the optimizer's plan for a forecast that repeats the last day (a seasonal-naive forecast)
    naive = np.asarray(np.repeat(hist, 2)[-24:])
    scen = Scenarios(hours=pd.date_range(START, periods=24, freq="h"), gpu_models=(GPU,), names=("naive",),
                     weights=np.array([1.0]), demand={GPU: naive[None, :]})
    contenders.append(make_plan(None, PROP_CAT, cfg, scenarios=scen).plan)
    # The hindsight plan is the optimum on the window, with or without spot: every plan's spot allowance carries the
    # spot share, which the serving rule enforces as the MILP does, and hindsight rounds its spot up to whole
    # instances (never raising its bill). So only the MIP gap separates it from any other plan.
    if spot:
        assert [s.instance_type for s in contenders[-1].spot] in ([], ["x.8"])
    slack = MIP_SLACK * best.total_usd + 1e-6
    for plan in contenders:
        billed = bill(plan, actual)
        assert capped_cost(billed, cfg) == pytest.approx(billed.total_usd)
        assert best.total_usd <= billed.total_usd + slack, (plan.assumptions.get("baseline"), best.total_usd,
                                                              billed.total_usd)


def test_lookback_figures_next_to_a_plan_are_billed_on_the_plans_scenarios():
    # The last 7 days ran 10 GPUs flat, but the forecast says 6 GPUs for the next 48 h. The plan commits 6
    # (48 h x 6 x 0.60 = 172.80 USD); the 7-day look-back commits 10, billed on the same forecast: 10 x 0.60
    # x 48 = 288.00 USD. The summary states the difference.
    from optimizer.baselines import lookback_expected, with_lookback
    from optimizer.summary import summary
    from tests.helpers import flat_forecast

    cfg = config(48, allow_spot=False)
    result = make_plan(flat_forecast([6.0] * 48), CAT, cfg)
    assert result.plan.expected.total_usd == pytest.approx(172.80)
    hist = history([10.0] * (7 * 24))
    assert lookback_expected(result, hist, CAT, cfg, (7,)) == {"7d": pytest.approx(288.00)}
    text = summary(with_lookback(result, hist, CAT, cfg, (7,)).plan)
    assert "on the same scenarios, the window: 7d 288 USD, the plan saves 115 USD" in text
    # no usage before the window: nothing to compare, the plan is returned unchanged
    assert with_lookback(result, history([]), CAT, cfg).plan is result.plan


@pytest.mark.parametrize("allow_spot", [False, True])
def test_lookback_on_a_huge_peak_tries_only_the_counts_where_cost_turns(allow_spot):
    # A million-GPU spike in 168 hours used to try every count up to a million (hours of work). The
    # breakpoint search evaluates at most 2 x 168 + 2 counts per offer and, without spot, finds the same
    # choice as the exhaustive search (checked on a peak small enough to search exhaustively).
    off = offers_for(CAT, GPU, config(24, allow_spot=allow_spot))
    rng = np.random.default_rng(5)
    demand = np.round(rng.gamma(2.0, 400.0, 168), 1)
    exhaustive = choose_lookback(demand, off, exhaustive_up_to=10**6)
    fast = choose_lookback(demand, off, exhaustive_up_to=0)
    if not allow_spot:
        assert (fast.offer_row, fast.count) == (exhaustive.offer_row, exhaustive.count)
        assert fast.lookback_cost_usd == pytest.approx(exhaustive.lookback_cost_usd)
    else:
        assert fast.lookback_cost_usd <= exhaustive.lookback_cost_usd * 1.001
    spike = np.full(168, 10.0)
    spike[7] = 1e6
    pick = choose_lookback(spike, off)   # returns at once; the flat 10 is committed, the spike is not
    assert pick.count == 10 and off.commitments.iloc[pick.offer_row][C.INSTANCE_TYPE] == "x.1"
