"""Cluster-wide outages: every series at 0 GPUs at once is treated as missing, not as demand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.engine import ForecastConfig, forecast
from forecasting.outages import fill_outages, outage_hours
from forecasting.samples import load_sample
from usage import schema as S

T0 = pd.Timestamp("2025-01-01")


def long_of(series: dict[str, np.ndarray], start: pd.Timestamp = T0) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({S.UID: uid, S.DS: pd.date_range(start, periods=len(y), freq="h"), S.Y: y})
                      for uid, y in series.items()], ignore_index=True)


def two_teams(days: int = 10) -> tuple[np.ndarray, np.ndarray]:
    hours = np.arange(24 * days)
    a = 10.0 + (hours % 24)          # 10..33 GPUs over the day
    b = np.full(len(hours), 5.0)
    return a, b


def test_hand_made_outage_is_found_and_filled_from_the_same_hour_of_the_previous_day():
    a, b = two_teams()
    a[200:206] = 0.0
    b[200:206] = 0.0
    b[100] = 0.0                      # one team alone at zero: its own demand, not an outage
    long = long_of({"a|H100": a, "b|H100": b})
    hours = outage_hours(long)
    assert list(hours) == list(pd.date_range(T0 + pd.Timedelta(hours=200), periods=6, freq="h"))
    filled = fill_outages(long, hours)
    fa = filled[filled[S.UID] == "a|H100"][S.Y].to_numpy()
    fb = filled[filled[S.UID] == "b|H100"][S.Y].to_numpy()
    # hour 200 is 08:00 on day 8; day 7's 08:00 (hour 176) had 10 + 8 = 18 GPUs
    assert fa[200:206].tolist() == [18.0, 19.0, 20.0, 21.0, 22.0, 23.0]
    assert fb[200:206].tolist() == [5.0] * 6
    assert fb[100] == 0.0
    np.testing.assert_array_equal(np.delete(fa, range(200, 206)), np.delete(a, range(200, 206)))


def test_outage_fill_uses_the_nearest_normal_day_earlier_or_else_later():
    a, b = two_teams(days=4)
    a[30:33] = 0.0
    b[30:33] = 0.0
    long = long_of({"a|L4": a, "b|L4": b})
    hours = outage_hours(long)
    assert len(hours) == 3
    filled = fill_outages(long, hours)
    # hours 30-32 (06:00-08:00 of day 1): the previous day's 06:00-08:00 are normal (16, 17, 18 GPUs)
    assert filled[filled[S.UID] == "a|L4"][S.Y].to_numpy()[30:33].tolist() == [16.0, 17.0, 18.0]
    c = np.r_[np.zeros(5), np.full(43, 7.0)]
    d = np.r_[np.zeros(5), np.full(43, 3.0)]
    c[10], d[10] = 0.0, 0.0
    long2 = long_of({"c|L4": c, "d|L4": d})
    assert list(outage_hours(long2)) == [T0 + pd.Timedelta(hours=10)]      # leading idle hours are not outages
    assert fill_outages(long2, outage_hours(long2))[S.Y].to_numpy()[10] == 7.0   # next day's 10:00


def test_often_idle_organisations_and_single_series_keep_their_zeros():
    rng = np.random.default_rng(0)
    busy = rng.random(24 * 10) < 0.7          # ~30% of hours with nobody running: real idle time
    a = np.where(busy, 8.0, 0.0)
    long = long_of({"a|A100": a, "b|A100": np.zeros(len(a))})
    assert len(outage_hours(long)) == 0
    one = np.full(240, 6.0)
    one[100:110] = 0.0
    assert len(outage_hours(long_of({"solo|A100": one}))) == 0


def test_forecast_after_an_outage_follows_the_level_before_it_and_says_so():
    a, b = two_teams(days=20)
    a[-24:] = 0.0
    b[-24:] = 0.0
    usage = pd.DataFrame({S.TIMESTAMP: list(pd.date_range(T0, periods=len(a), freq="h")) * 2,
                          S.TEAM: ["a"] * len(a) + ["b"] * len(b), S.GPU_TYPE: "NVIDIA H100",
                          S.GPUS: np.r_[a, b]})
    usage, _ = S.validate_usage(usage, "test")
    res = forecast(usage, ForecastConfig(horizon_hours=48))
    assert res.long.outage_hours == 24
    assert any("24 cluster-wide all-zero hour(s)" in n for n in res.notes)
    total = res.forecast.groupby(S.TIMESTAMP)[S.MEAN].sum().to_numpy()
    assert total.mean() == pytest.approx(21.5 + 5.0, abs=1.0)     # a's daily mean 21.5 GPUs + b's 5
    off = forecast(usage, ForecastConfig(horizon_hours=48, fill_outages=False))
    assert off.long.outage_hours == 0
    assert off.forecast[S.MEAN].sum() < 0.2 * res.forecast[S.MEAN].sum()


def test_helios_outage_before_2020_05_10_is_filled_and_the_forecast_keeps_the_cluster_level():
    """Helios: all 16 teams report 0 GPUs from 2020-05-09T16:00Z to 2020-05-10T15:00Z (cluster mean 632 GPUs).
    Before the fix the week-ahead forecast from 2020-05-10T16:00 summed to 0.3 GPUs per hour."""
    usage = load_sample("helios")
    history = usage[usage[S.TIMESTAMP] < pd.Timestamp("2020-05-10T16:00")]
    res = forecast(history, ForecastConfig(horizon_hours=168, history_hours=1344))
    assert res.long.outage_hours == 24
    per_hour = res.forecast.groupby(S.TIMESTAMP)[S.MEAN].sum()
    before = history[history[S.TIMESTAMP] < pd.Timestamp("2020-05-09T16:00")]
    last_week = before[before[S.TIMESTAMP] >= pd.Timestamp("2020-05-02T16:00")].groupby(S.TIMESTAMP)[S.GPUS].sum()
    assert per_hour.mean() == pytest.approx(last_week.mean(), rel=0.25)
    assert per_hour.mean() > 400
