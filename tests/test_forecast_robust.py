"""Robust model choice and ranges calibrated by lead time (issue: forecasts that hold on unseen data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.forecast_accuracy import HORIZONS, MIN_HISTORY, STEP, origins, series_type
from forecasting.engine import (
    OWN_SCALE_FLOOR,
    ForecastConfig,
    conformal_quantiles,
    forecast_long,
    lead_growth,
    pooling_scale,
    simplest_within_noise,
    stale_seasonal,
)
from forecasting.models import DEFAULT_MODELS, INTERMITTENT
from usage import schema as S


def _frame(values, uid: str = "t|gpu", start: str = "2025-01-01") -> pd.DataFrame:
    ds = pd.date_range(start, periods=len(values), freq="h")
    return pd.DataFrame({S.UID: uid, S.DS: ds, S.Y: np.asarray(values, dtype=float)})


def _daily(days: int, base: float, amp: float, rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    hours = np.arange(days * 24)
    return base + amp * np.sin(2 * np.pi * hours / 24) + rng.normal(0, noise, len(hours))


def test_a_step_down_in_the_last_hours_is_not_pulled_back_to_last_weeks_level():
    """The issue's case: an inference service sat at about 53 GPUs for three weeks, then stepped to 33. Its
    last value is 33; the ensemble of Naive, SeasonalNaive 24/168 and SES08 used to forecast about 53."""
    rng = np.random.default_rng(3)
    y = np.r_[np.full(24 * 21, 53.0), np.full(10, 33.0)] + rng.normal(0, 0.4, 24 * 21 + 10)
    long = _frame(y)
    res = forecast_long(long, ForecastConfig(horizon_hours=168))
    first_day = res.forecast[S.MEAN].to_numpy()[:24]
    assert np.abs(first_day - 33).max() < 3
    assert "SeasonalNaive168" not in res.forecast[S.MODEL].iloc[0]
    # without the step rule the seasonal naives drag the same forecast up towards the old level
    off = forecast_long(long, ForecastConfig(horizon_hours=168, step_quantile=None))
    assert off.forecast[S.MEAN].to_numpy()[:24].max() > first_day.max() + 5


def test_stale_seasonal_flags_a_recent_step_and_not_an_ordinary_seasonal_day():
    rng = np.random.default_rng(0)
    steady = _daily(28, 100, 30, rng)
    stepped = steady.copy()
    stepped[-8:] += 60   # a level shift in the last 8 hours, larger than any same-hour change before
    history = pd.concat([_frame(steady, "a|gpu"), _frame(stepped, "b|gpu")], ignore_index=True)
    stale = stale_seasonal(history, 0.9)
    assert stale.get("b|gpu") == {"SeasonalNaive24", "SeasonalNaive168"}
    assert "a|gpu" not in stale or len(stale["a|gpu"]) < 2


def test_simplest_within_noise_keeps_naive_unless_a_model_is_clearly_better():
    idx = pd.MultiIndex.from_product([["noisy", "clear"], range(6)], names=[S.UID, "cutoff"])
    rng = np.random.default_rng(1)
    naive = np.r_[10 + rng.normal(0, 2, 6), np.full(6, 10.0)]
    other = np.r_[naive[:6] - 0.3 + rng.normal(0, 2, 6), np.full(6, 6.0) + rng.normal(0, 0.1, 6)]
    window_mae = pd.DataFrame({"SES08": other, "Naive": naive}, index=idx)
    chosen = simplest_within_noise(window_mae, ["SES08", "Naive"], se=1.0)
    assert chosen["noisy"] == "Naive"     # 0.3 GPUs better on average with a spread of 2: noise
    assert chosen["clear"] == "SES08"     # 4 GPUs better every window
    assert simplest_within_noise(window_mae, ["SES08", "Naive"], se=0.0)["noisy"] == (
        "SES08" if other[:6].mean() < naive[:6].mean() else "Naive")


def test_lead_growth_is_about_a_half_for_a_random_walk_and_about_zero_for_white_noise():
    rng = np.random.default_rng(5)
    rows = []
    for w in range(40):
        walk = np.cumsum(rng.normal(0, 1, 336))
        rows.append(pd.DataFrame({S.UID: "walk", "window": w, "step": np.arange(336), "error": walk}))
        rows.append(pd.DataFrame({S.UID: "flat", "window": w, "step": np.arange(336),
                                  "error": rng.normal(0, 1, 336)}))
    errors = pd.concat(rows, ignore_index=True)
    assert lead_growth(errors[errors[S.UID] == "walk"]) == pytest.approx(0.5, abs=0.08)
    assert lead_growth(errors[errors[S.UID] == "flat"]) < 0.05
    assert lead_growth(errors.iloc[:0]) == 0.0


def test_a_growing_band_covers_each_lead_of_a_random_walk_as_it_should():
    """Conformal offsets on lead-normalised errors: a random walk's p10-p90 holds about 80% at every lead,
    where one flat band over-covers the first hours and under-covers the last ones."""
    rng = np.random.default_rng(11)
    n_windows, h = 300, 336
    errs = np.cumsum(rng.normal(0, 1, (n_windows, h)), axis=1)
    errors = pd.DataFrame({S.UID: "w", "window": np.repeat(np.arange(n_windows), h),
                           "step": np.tile(np.arange(h), n_windows), "error": errs.ravel()})
    point = pd.DataFrame({S.UID: "w", S.DS: pd.date_range("2025-01-01", periods=h, freq="h"), S.MEAN: 1000.0})
    b = lead_growth(errors)
    fresh = np.cumsum(rng.normal(0, 1, (400, h)), axis=1)
    for growth, expect_flat in ((b, True), (0.0, False)):
        q = conformal_quantiles(point, errors, growth=growth)
        lo, hi = q[S.P10].to_numpy() - 1000, q[S.P90].to_numpy() - 1000
        inside = (fresh >= lo) & (fresh <= hi)
        early, late = inside[:, :24].mean(), inside[:, -48:].mean()
        if expect_flat:
            assert 0.7 <= early <= 0.9 and 0.7 <= late <= 0.9
            assert (np.diff(hi - lo) >= -1e-9).all()          # never narrower further out
        else:
            assert early > 0.95 and late < 0.75


def test_the_range_keeps_widening_beyond_the_cv_window():
    rng = np.random.default_rng(2)
    y = 1000 + np.cumsum(rng.normal(0, 2, 24 * 100))
    # 100 days is short against 1,512 h, so the short-history walk would widen the range too: off here
    res = forecast_long(_frame(y), ForecastConfig(horizon_hours=1512, widen_short_history=False))
    width = (res.forecast[S.P90] - res.forecast[S.P10]).to_numpy()
    assert res.lead_growth > 0.1
    assert width[1511] > 1.2 * width[335] > 1.2 * 1.2 * width[23]
    flat = forecast_long(_frame(y), ForecastConfig(horizon_hours=1512, lead_growth=False,
                                                              widen_short_history=False))
    flat_width = (flat.forecast[S.P90] - flat.forecast[S.P10]).to_numpy()
    assert flat_width[1511] == pytest.approx(flat_width[23])


def test_intermittent_demand_models_are_not_default_candidates():
    assert not set(INTERMITTENT) & set(DEFAULT_MODELS)


def test_config_rejects_unknown_selection_and_bad_step_quantile():
    with pytest.raises(ValueError, match="selection"):
        ForecastConfig(selection="best")
    with pytest.raises(ValueError, match="step_quantile"):
        ForecastConfig(step_quantile=1.5)


@pytest.mark.parametrize("hours", [744, 815, 1771, 13152])
def test_benchmark_split_is_fixed_disjoint_and_tuning_comes_first(hours):
    for h in HORIZONS:
        tuning, reporting = origins(hours, h)
        picks = tuning + reporting
        assert len(set(picks)) == len(picks)
        assert all(o >= MIN_HISTORY and o + h <= hours for o in picks)
        if tuning:
            assert max(tuning) < min(reporting)
            assert np.all(np.diff(picks) == STEP[h])
    assert origins(744, 24) == origins(744, 24)


def test_series_types_of_hand_made_series():
    rng = np.random.default_rng(4)
    steps = np.repeat([10.0, 30.0, 20.0, 40.0], 24 * 5)
    seasonal = _daily(20, 100, 40, rng, noise=2.0)
    sparse = np.where(rng.random(24 * 20) < 0.5, 0.0, 8.0)
    smooth = 100 + np.cumsum(rng.normal(0, 1, 24 * 20))
    train = pd.concat([_frame(steps, "s|g"), _frame(seasonal, "d|g"), _frame(sparse, "i|g"), _frame(smooth, "m|g")])
    types = series_type(train.sort_values([S.UID, S.DS]))
    assert types.to_dict() == {"d|g": "seasonal", "i|g": "intermittent", "m|g": "smooth", "s|g": "step-like"}


def test_pooled_calibration_borrows_the_error_shape_not_the_hourly_noise():
    """A series whose hours swing (a daily cycle the seasonal naive repeats) but whose forecast errs little must
    not get a band sized by its swings; a drifting series with calm hours must not get one sized by its calm."""
    rng = np.random.default_rng(8)
    rows = []
    for uid, sd in (("cycle|g", 1.0), ("drift|g", 10.0)):
        for w in range(12):
            rows.append(pd.DataFrame({S.UID: uid, "window": w, "step": np.arange(168),
                                      "error": rng.normal(0, sd, 168)}))
    errors = pd.concat(rows, ignore_index=True)
    noise = pd.Series({"cycle|g": 3.0, "drift|g": 1.0})   # hour-to-hour change: the opposite of the errors
    point = pd.concat([pd.DataFrame({S.UID: u, S.DS: pd.date_range("2025-01-01", periods=24, freq="h"),
                                     S.MEAN: 500.0}) for u in noise.index], ignore_index=True)
    q = conformal_quantiles(point, errors, noise)
    width = (q[S.P90] - q[S.P10]).groupby(q[S.UID]).mean()
    own = errors.groupby(S.UID)["error"].quantile(0.9) - errors.groupby(S.UID)["error"].quantile(0.1)
    assert width["cycle|g"] == pytest.approx(own["cycle|g"], rel=0.25)
    assert width["drift|g"] == pytest.approx(own["drift|g"], rel=0.25)
    unit = pooling_scale(errors.assign(error=np.where(errors[S.UID] == "cycle|g", 0.0, errors["error"])), noise)
    assert unit["cycle|g"] == pytest.approx(OWN_SCALE_FLOOR * 3.0)   # exact CV windows: the floor holds
