"""Commitments judged over their whole term: the horizon, the tail, renewals, laddered tentative purchases, owned
commitments that expire, the cost of capital, and the money as finance sees it.

Every expected number is worked out by hand in the comments from the tiny catalogs below (1-GPU instance type,
on-demand 1.00 USD/h).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.billing import bill_term
from optimizer.inputs import PlanConfig, Scenarios
from optimizer.plan import Commitment, Plan
from optimizer.solve import make_plan, weighted_quantiles
from optimizer.summary import summary
from optimizer.term import discount, month_discounts
from tests.helpers import START, make_catalog

GPU = "NVIDIA A100"
OD = {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0}
RES_1Y = {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6}
YEAR = 8760


def scenarios(window: np.ndarray, tail: np.ndarray, hours: int, weights: np.ndarray | None = None) -> Scenarios:
    """Scenarios over a window of ``hours`` from START and a tail to START + hours + tail length."""
    window, tail = np.atleast_2d(window).astype(float), np.atleast_2d(tail).astype(float)
    n = window.shape[0]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float)
    return Scenarios(hours=pd.date_range(START, periods=hours, freq="h"), gpu_models=(GPU,),
                     names=tuple(f"s{i}" for i in range(n)), weights=w, demand={GPU: window},
                     tail_hours=pd.date_range(START + pd.Timedelta(hours=hours), periods=tail.shape[1], freq="h"),
                     tail={GPU: tail})


def flat(window_gpus: float, tail_gpus: float, hours: int = 720, total: int = YEAR) -> Scenarios:
    return scenarios(np.full((1, hours), window_gpus), np.full((1, total - hours), tail_gpus), hours)


def config(hours: int = 720, **kw) -> PlanConfig:
    kw.setdefault("options", ("reserved_1y_no_upfront",))
    kw.setdefault("allow_spot", False)
    kw.setdefault("cost_of_capital", 0.0)
    return PlanConfig(start=START, hours=hours, **kw)


def test_the_horizon_runs_to_the_end_of_the_longest_term_considered():
    assert config().horizon_end == START + pd.Timedelta(hours=YEAR)
    assert config(options=("reserved_3y_no_upfront", "reserved_1y_no_upfront")).horizon_hours == 3 * YEAR
    assert config(term_horizon=False).horizon_end == config().end
    assert config(options=()).horizon_end == config().end            # nothing to commit: the window alone


def test_flat_demand_over_the_whole_term_above_break_even_buys_reserved():
    # 10 GPUs every hour of the year: each reserved GPU costs 0.60 and saves 1.00 USD every hour.
    result = make_plan(None, make_catalog([OD, RES_1Y]), config(), scenarios=flat(10, 10))
    plan = result.plan
    assert [(c.count, c.firm) for c in plan.commitments] == [(10, True)]
    e = plan.expected
    assert e.total_usd == pytest.approx(10 * 0.6 * 720)                    # inside the window
    assert e.horizon_total_usd == pytest.approx(10 * 0.6 * YEAR)           # the whole term
    assert e.obligation_total_usd == pytest.approx(10 * 0.6 * YEAR)
    assert e.obligation_after_window_usd == pytest.approx(10 * 0.6 * (YEAR - 720))
    assert plan.commitments[0].expected_utilization == pytest.approx(1.0)
    assert plan.term is not None and plan.term.horizon_end == START + pd.Timedelta(hours=YEAR)


def test_a_wind_down_after_the_window_buys_no_commitment_that_the_window_alone_would_buy():
    # 10 GPUs in the 720-hour window, 0 after it. Judged on the window (taken as the term) 10 reserved pay off;
    # over the term a reserved GPU is used 720 of 8,760 hours (8%), far below the 60% it needs.
    cat = make_catalog([OD, RES_1Y])
    window_only = make_plan(None, cat, config(term_horizon=False),
                            scenarios=scenarios(np.full((1, 720), 10.0), np.zeros((1, 0)), 720)).plan
    assert [c.count for c in window_only.commitments] == [10]
    term = make_plan(None, cat, config(), scenarios=flat(10, 0)).plan
    assert term.commitments == ()
    assert term.expected.total_usd == pytest.approx(10 * 720)              # on-demand in the window
    assert term.expected.obligation_total_usd == 0.0


def test_the_newsvendor_rule_holds_over_the_term_not_the_window():
    # 10 GPUs in the window, 4 after it. GPU k (k <= 4) is busy all year; GPU 5-10 only 720 of 8,760 hours.
    result = make_plan(None, make_catalog([OD, RES_1Y]), config(), scenarios=flat(10, 4))
    assert [c.count for c in result.plan.commitments] == [4]
    # 4 reserved over the year + 6 GPUs on-demand in the window
    assert result.plan.expected.horizon_total_usd == pytest.approx(4 * 0.6 * YEAR + 6 * 720)


def test_three_years_beat_one_only_when_demand_lasts_three_years():
    # Reserved 3y 0.45 USD/h vs 1y 0.60 USD/h (renewed at each year's end: purchase periods at 8,760 and 17,520 h).
    rows = [OD, RES_1Y, {"instance_type": "x.1", "purchase_option": "reserved_3y_no_upfront", "price": 0.45}]
    opts = ("reserved_1y_no_upfront", "reserved_3y_no_upfront")
    cat = make_catalog(rows)
    lasting = make_plan(None, cat, config(options=opts), scenarios=flat(10, 10, total=3 * YEAR)).plan
    assert [(c.count, c.purchase_option) for c in lasting.commitments] == [(10, "reserved_3y_no_upfront")]
    # 10 GPUs for the first year only: 3y costs 0.45 x 26,280 = 11,826 per GPU, 1y 0.60 x 8,760 = 5,256
    first_year = scenarios(np.full((1, 720), 10.0), np.r_[np.full(YEAR - 720, 10.0), np.zeros(2 * YEAR)][None, :],
                           720)
    short = make_plan(None, cat, config(options=opts), scenarios=first_year).plan
    assert [(c.count, c.purchase_option) for c in short.commitments] == [(10, "reserved_1y_no_upfront")]
    # 1y bought now and renewed twice for three years of 10 GPUs when 3y is dearer (0.62 > 0.60): the renewals are
    # tentative purchases at the end of each year
    dear = make_catalog([OD, RES_1Y, {"instance_type": "x.1", "purchase_option": "reserved_3y_no_upfront",
                                      "price": 0.62}])
    renewed = make_plan(None, dear, config(options=opts), scenarios=flat(10, 10, total=3 * YEAR)).plan
    assert [(c.count, c.purchase_option, c.start, c.firm) for c in renewed.commitments] == [
        (10, "reserved_1y_no_upfront", START, True),
        (10, "reserved_1y_no_upfront", START + pd.Timedelta(hours=YEAR), False),
        (10, "reserved_1y_no_upfront", START + pd.Timedelta(hours=2 * YEAR), False)]


def test_cost_of_capital_makes_upfront_a_real_trade_off():
    # All upfront: 5,256 USD now (0.60 USD/h effective); no upfront: 0.62 USD/h paid over the year.
    # At 0%: all upfront (5,256 < 0.62 x 8,760 = 5,431). At 10%/year the no-upfront payments are worth
    # 0.62 x 8,760 x about 0.954 (the year's average discount factor (1 - 1.1^-1) / ln 1.1) = about 5,182 USD
    # today < 5,256: no upfront.
    rows = [OD, {"instance_type": "x.1", "purchase_option": "reserved_1y_all_upfront", "price": 0.6,
                 "upfront": 0.6 * YEAR},
            {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.62}]
    opts = ("reserved_1y_no_upfront", "reserved_1y_all_upfront")
    cat = make_catalog(rows)
    free = make_plan(None, cat, config(options=opts, cost_of_capital=0.0), scenarios=flat(10, 10)).plan
    assert [(c.count, c.purchase_option) for c in free.commitments] == [(10, "reserved_1y_all_upfront")]
    costly = make_plan(None, cat, config(options=opts, cost_of_capital=0.10), scenarios=flat(10, 10)).plan
    assert [(c.count, c.purchase_option) for c in costly.commitments] == [(10, "reserved_1y_no_upfront")]
    # the summary says why, in money: the no-upfront line's present value against all upfront
    hours = pd.date_range(START, periods=YEAR, freq="h")
    pv_no = 10 * 0.62 * month_discounts(hours, START, 0.10).sum()
    (choice,) = costly.assumptions["payment_choice"]
    assert choice["next_best_option"] == "reserved_1y_all_upfront"
    assert choice["next_best_more_usd"] == pytest.approx(10 * 0.6 * YEAR - pv_no, abs=0.05)
    assert 700 < choice["next_best_more_usd"] < 800        # about 10 x (5,256 - 5,182)
    assert "less in present value at 10%/year than reserved_1y_all_upfront, the next best" in summary(costly)
    assert costly.expected.present_value_usd == pytest.approx(pv_no)
    assert free.expected.upfront_by_month == {"2026-01": pytest.approx(10 * 0.6 * YEAR)}
    assert costly.expected.upfront_by_month == {}


def test_discounting_by_hand():
    assert discount(8760.0, 0.1) == pytest.approx(1 / 1.1)
    assert discount(0.0, 0.1) == 1.0
    df = month_discounts(pd.date_range("2026-01-01", periods=24 * 59, freq="h"), pd.Timestamp("2026-01-01"), 0.1)
    assert df[0] == pytest.approx(1.1 ** (-(31 * 24 / 2) / 8760))          # January at its middle
    assert df[-1] == pytest.approx(1.1 ** (-(31 * 24 + 28 * 24 / 2) / 8760))


def test_laddered_step_up_after_the_window_is_a_tentative_purchase_in_its_month():
    # 5 GPUs until the end of March, 10 from April to the year's end. The 5 extra GPUs run 9 of 12 months (75% >
    # 60%) but cost the same bought now or in April; laddered, they start in April (tentative); 5 start now (firm).
    hours = pd.date_range(START, periods=YEAR, freq="h")
    demand = np.where(hours < pd.Timestamp("2026-04-01"), 5.0, 10.0)
    sc = scenarios(demand[None, :720], demand[None, 720:], 720)
    plan = make_plan(None, make_catalog([OD, RES_1Y]), config(ladder=True), scenarios=sc).plan
    got = [(c.count, f"{c.start:%Y-%m-%d}", c.firm) for c in plan.commitments]
    assert got == [(5, "2026-01-01", True), (5, "2026-04-01", False)]
    text = summary(plan)
    assert "What to buy now:" in text and "Tentative" in text
    assert plan.expected.horizon_total_usd == pytest.approx(0.6 * demand.sum())


def test_owned_commitments_expiring_inside_the_horizon_are_honoured():
    # 4 GPUs owned until 1 July, 10 GPUs of demand all year. New: 6 for the year; after July the 4 freed GPUs
    # are needed for half a year only (50% < 60%), so they stay on-demand unless laddered (then bought in July).
    owned = Commitment("x.1", "reserved_1y_no_upfront", 4, pd.Timestamp("2025-07-01"), 0.6, 0.0, GPU, 1.0, YEAR,
                       end=pd.Timestamp("2026-07-01"), existing=True)
    cat = make_catalog([OD, RES_1Y])
    plan = make_plan(None, cat, config(existing=(owned,)), scenarios=flat(10, 10)).plan
    assert [c.count for c in plan.commitments if not c.existing] == [6]
    laddered = make_plan(None, cat, config(existing=(owned,), ladder=True), scenarios=flat(10, 10)).plan
    assert [(c.count, f"{c.start:%Y-%m}") for c in laddered.commitments if not c.existing] == [(6, "2026-01"),
                                                                                                 (4, "2026-07")]


def test_spot_after_the_window_is_held_to_the_share_of_each_month():
    # No commitments; spot 0.30 USD/h at most 50% of each month's GPU-hours, on-demand 1.00 USD/h; 2 GPUs flat.
    rows = [OD, {"instance_type": "x.1", "purchase_option": "spot", "price": 0.3}]
    sc = flat(2, 2, hours=24, total=24 + 24 * 31)
    plan = make_plan(None, make_catalog(rows), config(24, allow_spot=True, max_spot_share=0.5), scenarios=sc).plan
    assert plan.term is not None and [t.max_spot_share for t in plan.term.spot] == [0.5]
    usage = pd.DataFrame({"timestamp": sc.tail_hours, "gpu_type": GPU, "gpus": 2.0})
    billed = bill_term(plan, usage).totals()
    tail_hours = len(sc.tail_hours)
    rework = plan.term.spot[0].rework_fraction
    # per month: half the GPU-hours on spot (at 0.30 x (1 + rework)), half on-demand
    assert billed["spot_gpus"] == pytest.approx(tail_hours * 1.0)
    assert billed["on_demand_usd"] == pytest.approx(tail_hours * 1.0)
    assert billed["spot_usd"] == pytest.approx(tail_hours * 0.3 * (1 + rework))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=40),
       raw=st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=40, max_size=40))
def test_the_expected_value_always_lies_inside_the_weighted_range(values, raw):
    # weighted quantiles are ordered, reach the sample's extremes, and the weighted mean lies between them
    v = np.asarray(values)
    w = np.asarray(raw[:len(v)])
    p0, p10, p90, p100 = weighted_quantiles(v, w, (0.0, 0.1, 0.9, 1.0))
    mean = float((v * w).sum() / w.sum())
    assert p0 - 1e-9 <= p10 <= p90 <= p100 + 1e-9
    assert v.min() - 1e-9 <= mean <= v.max() + 1e-9
    assert p0 == pytest.approx(v.min()) and p100 == pytest.approx(v.max())


def test_window_range_never_narrower_for_a_longer_window_inside_the_same_scenarios():
    # Two scenarios that drift apart: cost p10-p90 over a longer window contains the shorter one's spread.
    hours = 24 * 90
    t = np.arange(hours)
    low, high = 10 + 0 * t, 10 + t / 100
    cat = make_catalog([OD, RES_1Y])
    widths = []
    for h in (24 * 30, 24 * 60, 24 * 90):
        sc = scenarios(np.vstack([low[:h], high[:h]]), np.zeros((2, 0)), h)
        e = make_plan(None, cat, config(h, term_horizon=False), scenarios=sc).plan.expected
        widths.append(e.total_p90_usd - e.total_p10_usd)
        assert e.total_p10_usd <= e.total_usd <= e.total_p90_usd
    assert widths[0] < widths[1] < widths[2]


def test_plan_json_round_trips_the_term_and_the_finance_fields(tmp_path):
    plan = make_plan(None, make_catalog([OD, RES_1Y]), config(), scenarios=flat(10, 4)).plan
    back = Plan.read(plan.write(tmp_path / "plan.json"))
    assert back.term == plan.term
    assert back.expected.obligation_after_window_usd == pytest.approx(plan.expected.obligation_after_window_usd)
    assert back.commitments[0].firm is True
    assert math.isclose(back.commitments[0].expected_utilization, plan.commitments[0].expected_utilization,
                        rel_tol=1e-9)
    doc = (tmp_path / "plan.json").read_text()
    assert '"horizon_end": "2027-01-01T00:00:00Z"' in doc and '"tail_rule"' in doc
