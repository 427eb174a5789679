"""Replayed history as extra plan scenarios (optimizer.inputs.scenarios_with_history): layout, weights, growth,
alignment, and the commitment it leads to on a hand-checkable newsvendor LP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optimizer.inputs import PlanConfig, PlanningError, scenarios_from_forecast, scenarios_with_history
from optimizer.solve import make_plan
from tests.helpers import START, flat_forecast, make_catalog
from usage import schema as S

A100 = "NVIDIA A100"
# One 1-GPU instance type: on-demand 1.00 USD/h, reserved 0.60 USD/h (40% discount).
BASIC = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
]


def usage(values, end: pd.Timestamp = START, team: str = "t", gpu_model: str = A100) -> pd.DataFrame:
    """Hourly usage rows ending just before ``end`` (GPUs per hour)."""
    ts = pd.date_range(end=end - pd.Timedelta(hours=1), periods=len(values), freq="h")
    return pd.DataFrame({S.TIMESTAMP: ts, S.TEAM: team, S.GPU_TYPE: gpu_model, S.GPUS: np.asarray(values, float)})


def config(hours: int, **kw) -> PlanConfig:
    kw.setdefault("options", ("reserved_1y_no_upfront",))
    kw.setdefault("allow_spot", False)
    return PlanConfig(start=START, hours=hours, **kw)


def test_each_day_starts_one_wrapped_replay_and_the_weights_split_as_asked():
    cfg = config(30)
    base = scenarios_from_forecast(flat_forecast([5.0] * 30), cfg)
    sc = scenarios_with_history(base, usage(np.arange(48.0)), cfg, days=60, weight=0.4)
    assert sc.names == ("p10", "p50", "p90", "history0", "history1")
    d = sc.demand[A100]
    assert d.shape == (5, 30)
    np.testing.assert_array_equal(d[:3], 5.0)
    np.testing.assert_array_equal(d[3], np.arange(30.0))                                  # day 1, hours 0-29
    np.testing.assert_array_equal(d[4], np.concatenate([np.arange(24.0, 48.0), np.arange(6.0)]))  # wraps
    np.testing.assert_allclose(sc.weights, [0.18, 0.24, 0.18, 0.2, 0.2])
    assert sc.weights.sum() == pytest.approx(1.0)


def test_only_the_last_days_are_replayed_with_growth_per_team():
    cfg = config(24, growth=0.1, team_growth=(("a", 1.0),))
    base = scenarios_from_forecast(flat_forecast([0.0] * 24), cfg)
    hist = pd.concat([usage([3.0] * 24 + [1.0] * 48, team="a"), usage([2.0] * 72, team="b")])
    sc = scenarios_with_history(base, hist, cfg, days=2, weight=0.5)
    past = sc.demand[A100][3:]
    assert past.shape == (2, 24)                      # 2 of the 3 days: the oldest (3 GPUs for team a) is left out
    np.testing.assert_allclose(past, (1.0 * 1.1 * 2.0) + (2.0 * 1.1))


def test_a_gap_before_the_window_keeps_the_hour_of_day():
    cfg = config(24)
    base = scenarios_from_forecast(flat_forecast([0.0] * 24), cfg)
    # history ends 5 h before the window (last row at 18:00): the replay is the last whole day that ends
    # at midnight, so scenario hour 0 is midnight again; each row holds its hour of day as GPUs
    hist = usage(np.zeros(70), end=START - pd.Timedelta(hours=5))
    hist[S.GPUS] = hist[S.TIMESTAMP].dt.hour.astype(float) + 100.0 * (hist[S.TIMESTAMP] >= START - pd.Timedelta(days=1))
    sc = scenarios_with_history(base, hist, cfg, days=1, weight=1.0)
    np.testing.assert_array_equal(sc.demand[A100][3], np.arange(24.0))
    assert sc.weights[:3].sum() == 0.0 and sc.weights[3] == 1.0


def test_nothing_to_replay_returns_the_scenarios_and_bad_settings_are_errors():
    cfg = config(24)
    base = scenarios_from_forecast(flat_forecast([1.0] * 24), cfg)
    assert scenarios_with_history(base, usage([4.0] * 48), cfg, weight=0.0) is base
    assert scenarios_with_history(base, usage([4.0] * 20), cfg) is base        # less than a day
    assert scenarios_with_history(base, usage([]), cfg) is base
    with pytest.raises(PlanningError, match="between 0 and 1"):
        scenarios_with_history(base, usage([4.0] * 48), cfg, weight=1.2)
    with pytest.raises(PlanningError, match="at least 1 day"):
        scenarios_with_history(base, usage([4.0] * 48), cfg, days=0)


@pytest.mark.parametrize("weight, expected_count", [(0.3, 0), (0.5, 0), (0.7, 10)])
def test_the_commitment_follows_the_history_weight_by_the_newsvendor_rule(weight, expected_count):
    # The forecast says 0 GPUs, the history says 10 all the time. A reserved GPU (0.6 USD/h) pays off iff it is
    # busy with probability above 0.6, i.e. iff the history weighs more than 0.6.
    cfg = config(48)
    base = scenarios_from_forecast(flat_forecast([0.0] * 48), cfg)
    sc = scenarios_with_history(base, usage([10.0] * 24 * 7), cfg, days=7, weight=weight)
    result = make_plan(None, make_catalog(BASIC), cfg, scenarios=sc)
    assert sum(c.count for c in result.plan.commitments) == expected_count
    committed = expected_count * 0.6 * 48
    assert result.plan.expected.total_usd == pytest.approx(committed + weight * (10 - expected_count) * 48)
    assert result.plan.assumptions["scenarios"] == {"sample_paths": 3, "weight_each": pytest.approx(
        (1 - weight) / 3), "history_days": 7, "history_weight": pytest.approx(weight)}


def test_plan_purchases_replays_the_history_it_is_given():
    # The Python API plans as `gpuplan plan` does when it gets the usage: forecast paths plus 60 replayed days.
    from forecasting import ForecastConfig, forecast
    from optimizer import plan_purchases

    hours = pd.date_range("2026-01-01", periods=70 * 24, freq="h")
    rng = np.random.default_rng(0)
    usage = pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: "t", S.GPU_TYPE: "NVIDIA A100",
                          S.GPUS: 10.0 + rng.integers(0, 3, len(hours))})
    catalog = make_catalog([{"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
                            {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6}])
    fc = forecast(usage, ForecastConfig(horizon_hours=48))
    start = hours[-1] + pd.Timedelta(hours=1)
    with_history = plan_purchases(fc, start, 48, catalog=catalog, history=usage, allow_spot=False,
                                  options=("reserved_1y_no_upfront",))
    paths_only = plan_purchases(fc, start, 48, catalog=catalog, allow_spot=False, options=("reserved_1y_no_upfront",))
    assert with_history.plan.assumptions["scenarios"]["history_days"] == 60
    assert "history_days" not in paths_only.plan.assumptions["scenarios"]
    # demand never drops below 10 GPUs in the history or the forecast: both commit at least 10
    assert min(sum(c.gpus for c in r.plan.commitments) for r in (with_history, paths_only)) >= 10
