"""Sample paths for the plan horizon: blended widths, level shifts beyond the CV window, joint draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.engine import ForecastConfig, forecast, sample_paths
from forecasting.paths import daily_levels, level_shifts, shift_origins, widening
from usage import schema as S

T0 = pd.Timestamp("2025-01-01")


def test_daily_levels_by_hand():
    ds = pd.date_range(T0, periods=48, freq="h")
    long = pd.DataFrame({S.UID: ["a"] * 48 + ["b"] * 24, S.DS: list(ds) + list(ds[24:]),
                         S.Y: [2.0] * 24 + [6.0] * 24 + [1.0] * 24})
    levels = daily_levels(long, None)
    assert levels.loc["a"].tolist() == [6.0, 2.0]           # column 0 = the last day before the origin
    assert levels.loc["b", 0] == 1.0 and np.isnan(levels.loc["b", 1])
    assert list(daily_levels(long, 24).columns) == [0]
    assert daily_levels(long, 23) is None


def test_widening_by_hand():
    """a: own errors +-1 (p10-p90 width 2), noise 1; b: +-4 (width 8), noise 2. Pooled errors / noise are
    +-1 and +-2, p10 -2 and p90 2 (width 4). Blended width = mean of own and pooled x noise:
    a (2 + 4) / 2 = 3 -> factor 1.5; b (8 + 8) / 2 = 8 -> factor 1."""
    errors = pd.DataFrame({S.UID: ["a"] * 20 + ["b"] * 20, "window": 0, "step": np.tile(np.arange(20), 2),
                           "error": [-1.0, 1.0] * 10 + [-4.0, 4.0] * 10})
    f = widening(errors, pd.Series({"a": 1.0, "b": 2.0}), min_errors=20)
    assert f["a"] == pytest.approx(1.5)
    assert f["b"] == pytest.approx(1.0)
    assert widening(errors, None, min_errors=20) == {}                    # series calibration: replay as it is
    assert widening(errors, pd.Series({"a": 1.0, "b": 2.0}), min_errors=41) == {}   # too few pooled errors


def ar1_levels(n: int, phi: float, mean: float, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = mean
    for t in range(1, n):
        x[t] = mean + phi * (x[t - 1] - mean) + rng.normal(0, sd)
    return x


def test_level_shifts_revert_from_a_high_level_and_stay_flat_at_the_usual_one():
    """Daily levels that revert to 100 GPUs (AR(1), phi 0.8): from 150 GPUs today the expected level 10 days
    on is about 100 + 50 x 0.8^10 = 105 (shift about -45); from 100 GPUs today the shift averages about 0."""
    history = ar1_levels(400, 0.8, 100.0, 5.0, seed=1)[::-1]       # row[k] = k days before the origin
    high, usual = history.copy(), history.copy()
    high[0], usual[0] = 150.0, 100.0
    origins = np.arange(20, 390)
    shift_high = level_shifts(high, origins, hours=24 * 14)
    shift_usual = level_shifts(usual, origins, hours=24 * 14)
    assert shift_high.shape == (len(origins), 336)
    day10 = slice(24 * 10, 24 * 11)
    assert shift_high[:, day10].mean() == pytest.approx(-45.0, abs=12.0)
    assert abs(shift_usual[:, day10].mean()) < 8.0
    assert shift_high[:, day10].std() > 5.0                         # residuals of the drawn days stay
    flat = np.full(400, 40.0)
    assert np.array_equal(level_shifts(flat, origins, hours=48), np.zeros((len(origins), 48)))


def test_shift_origins_are_stratified_and_need_enough_history():
    levels = pd.DataFrame(np.zeros((2, 100)))
    rng = np.random.default_rng(0)
    o = shift_origins(levels, hours=720, n_paths=10, rng=rng)
    assert len(o) == 10 and o.min() >= 31 and o.max() < 100
    # one draw in each tenth of the 69 usable days (6.9 days each), in random order
    for i, day in enumerate(sorted(o)):
        assert 31 + np.floor(6.9 * i) <= day <= 31 + np.floor(6.9 * (i + 1))
    assert shift_origins(levels, hours=24 * 95, n_paths=10, rng=rng) is None
    assert shift_origins(None, hours=24, n_paths=10, rng=rng) is None


def stepping_usage(days: int = 200, runs_until_day: int = 140) -> pd.DataFrame:
    """Two teams with the same H100 demand: 60 GPUs, plus 100-GPU training runs on for 10 days of every 25
    until ``runs_until_day``, calm after."""
    hours = np.arange(24 * days)
    rng = np.random.default_rng(3)
    day = hours // 24
    y = 60.0 + 100.0 * ((day % 25 < 10) & (day < runs_until_day)) + rng.normal(0, 2, len(hours))
    frames = [pd.DataFrame({S.TIMESTAMP: pd.date_range(T0, periods=len(y), freq="h"), S.TEAM: team,
                            S.GPU_TYPE: "NVIDIA H100", S.GPUS: np.clip(y, 0, None)}) for team in ("a", "b")]
    usage, _ = S.validate_usage(pd.concat(frames, ignore_index=True), "test")
    return usage


def test_paths_beyond_the_cv_window_carry_the_level_shifts_seen_in_history():
    """The last 60 days are calm (60 GPUs), so the CV errors are +-2 GPUs of noise; the year before had
    10-day 100-GPU runs. A 720-hour plan must see that runs can come back: without level history the window
    means of the paths stay within a few GPUs of 60, with it a tenth of the paths carry a run."""
    usage = stepping_usage()
    with_levels = forecast(usage, ForecastConfig(horizon_hours=720))
    without = forecast(usage, ForecastConfig(horizon_hours=720, path_history_hours=0))
    assert without.long.levels is None and with_levels.long.levels.shape == (2, 200)
    pa, pb = sample_paths(with_levels.long, 50), sample_paths(without.long, 50)
    uid = "a|NVIDIA H100"
    means_with, means_without = pa[uid].mean(axis=1), pb[uid].mean(axis=1)
    assert np.ptp(means_without) < 5.0
    assert np.percentile(means_with, 90) > 80.0
    assert means_with.std() > 5 * means_without.std()
    assert np.array_equal(pa["a|NVIDIA H100"], pa["b|NVIDIA H100"])     # one draw for all series: joint
    assert (pa[uid] >= 0).all()


def test_paths_within_the_cv_window_do_not_depend_on_level_history():
    usage = stepping_usage(days=120)
    a = forecast(usage, ForecastConfig(horizon_hours=168))
    b = forecast(usage, ForecastConfig(horizon_hours=168, path_history_hours=0))
    pa, pb = sample_paths(a.long, 30, seed=4), sample_paths(b.long, 30, seed=4)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_negative_path_history_is_rejected():
    with pytest.raises(ValueError, match="path_history_hours must be >= 0"):
        ForecastConfig(path_history_hours=-1)
