"""Forecast engine: model choice by cross-validation, quantile sanity, awkward series, real Helios data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.backtest import holdout_accuracy
from forecasting.engine import (
    ForecastConfig,
    forecast,
    forecast_long,
    noise_scale,
    read_forecast_csv,
    write_forecast_csv,
)
from forecasting.samples import load_sample
from usage import schema as S

T0 = pd.Timestamp("2025-01-01")


def usage_of(series: dict[tuple[str, str], np.ndarray], start: pd.Timestamp = T0) -> pd.DataFrame:
    parts = [pd.DataFrame({S.TIMESTAMP: pd.date_range(start, periods=len(y), freq="h"), S.TEAM: team,
                           S.GPU_TYPE: gpu, S.GPUS: y}) for (team, gpu), y in series.items()]
    df, _ = S.validate_usage(pd.concat(parts, ignore_index=True), "test")
    return df


def test_weekly_pattern_is_recognised_and_quantiles_are_ordered_and_non_negative():
    hours = np.arange(24 * 7 * 6)
    weekday = pd.date_range(T0, periods=len(hours), freq="h").dayofweek < 5
    rng = np.random.default_rng(1)
    y = np.where(weekday, 40.0, 4.0) + 10 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, len(hours))
    usage = usage_of({("serve", "NVIDIA L4"): np.clip(y, 0, None)})
    result = forecast(usage, ForecastConfig(horizon_hours=168, history_hours=None))
    fc = result.forecast
    assert len(fc) == 168 and fc[S.TIMESTAMP].iloc[0] == usage[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    assert result.selection[S.MODEL].iloc[0] in ("SeasonalNaive168", "MSTL", "Ensemble")
    assert (fc[S.P10] >= 0).all() and (fc[S.P10] <= fc[S.P50]).all() and (fc[S.P50] <= fc[S.P90]).all()
    # The forecast keeps the weekday/weekend difference of the history.
    weekend = (fc[S.TIMESTAMP].dt.dayofweek >= 5).to_numpy()
    assert fc.loc[~weekend, S.MEAN].mean() > fc.loc[weekend, S.MEAN].mean() + 20


def test_awkward_series_get_a_forecast_not_a_crash():
    usage = usage_of({("zeros", "NVIDIA A100"): np.zeros(400), ("flat", "NVIDIA A100"): np.full(400, 8.0)})
    short = usage_of({("new", "NVIDIA A100"): np.array([3.0, 5.0, 4.0])}, start=T0 + pd.Timedelta(hours=397))
    result = forecast(pd.concat([usage, short], ignore_index=True), ForecastConfig(horizon_hours=48))
    fc = result.forecast.set_index(S.TEAM)
    assert np.allclose(fc.loc["zeros", [S.MEAN, S.P10, S.P90]], 0.0)
    assert np.allclose(fc.loc["flat", S.MEAN], 8.0)
    assert fc.loc["new", S.MODEL].iloc[0] == "Naive" and np.allclose(fc.loc["new", S.MEAN], 4.0)
    assert any("too short" in n for n in result.notes)


def test_a_series_that_stopped_reporting_is_forecast_from_zero():
    usage = pd.concat([usage_of({("active", "NVIDIA A100"): np.full(300, 5.0)}),
                       usage_of({("ended", "NVIDIA A100"): np.full(100, 9.0)})], ignore_index=True)
    result = forecast(usage, ForecastConfig(horizon_hours=24))
    ended = result.forecast[result.forecast[S.TEAM] == "ended"]
    assert ended[S.TIMESTAMP].iloc[0] == usage[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    assert np.allclose(ended[S.MEAN], 0.0) and any("padded" in n for n in result.notes)


def test_forecast_csv_round_trip(tmp_path):
    usage = usage_of({("a", "NVIDIA A100"): np.arange(200, dtype=float) % 24})
    fc = forecast(usage, ForecastConfig(horizon_hours=24)).forecast
    path = tmp_path / "forecast.csv"
    write_forecast_csv(fc, path)
    assert path.read_text().splitlines()[0] == ",".join(S.FORECAST_COLUMNS_FULL)
    back = read_forecast_csv(path)
    pd.testing.assert_frame_equal(back, fc[list(S.FORECAST_COLUMNS_FULL)], check_dtype=False)


def test_bad_forecast_file_is_one_line(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("team,gpu_type,timestamp,mean,p10,p50,p90\na,NVIDIA A100,2025-01-01T00:00Z,1,-1,1,2\n")
    with pytest.raises(S.UsageError, match=r"row 2, column 'p10'"):
        read_forecast_csv(path)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "lots"])
def test_forecast_file_with_non_finite_value_is_refused(tmp_path, value):
    path = tmp_path / "f.csv"
    path.write_text("team,gpu_type,timestamp,mean,p10,p50,p90\n"
                    f"a,NVIDIA A100,2025-01-01T00:00Z,1,0,1,2\na,NVIDIA A100,2025-01-01T01:00Z,{value},0,1,2\n")
    with pytest.raises(S.UsageError, match=r"row 3, column 'mean'.*(not a finite number|is empty)"):
        read_forecast_csv(path)


def test_helios_last_week_selected_forecast_beats_seasonal_naive():
    """Real SenseTime Helios Earth May 2020 (16 teams): hold out the last 168 hours."""
    result = holdout_accuracy(load_sample("helios"), holdout_hours=168, config=ForecastConfig(n_jobs=1))
    overall = result.overall.set_index("method")
    assert overall.loc["selected", "total_mae_gpus"] < overall.loc["SeasonalNaive24", "total_mae_gpus"]
    assert overall.loc["selected", "total_mae_gpus"] < overall.loc["SeasonalNaive168", "total_mae_gpus"]
    assert 0.6 <= overall.loc["selected", "coverage_p10_p90"] <= 0.95
    assert len(result.per_series) == 16


def simulated_long(seed: int, n: int = 12, hours: int = 8 * 168) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` hourly series: level and daily swing growing with i, plus Gaussian noise of sd i + 1 GPUs."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    ds = pd.date_range(T0, periods=hours, freq="h")
    sd = 1.0 + np.arange(n)
    parts = [pd.DataFrame({S.UID: f"t{i}|NVIDIA A100", S.DS: ds,
                           S.Y: np.clip(20 * (i + 1) * (1 + 0.25 * np.sin(2 * np.pi * t / 24))
                                        + rng.normal(0, sd[i], hours), 0, None)}) for i in range(n)]
    return pd.concat(parts, ignore_index=True), sd


@pytest.mark.parametrize("seed", [1, 2])
def test_ranges_of_series_with_known_noise_cover_about_80_percent(seed):
    """The error of repeating yesterday is the difference of two noise draws, N(0, 2 sd^2), so an honest
    p10-p90 band is 2 x 1.2816 x sqrt(2) x sd wide and holds 80% of fresh hours (measured: 0.80 / 0.78)."""
    long, sd = simulated_long(seed)
    cut = long[S.DS].max() - pd.Timedelta(hours=167)
    res = forecast_long(long[long[S.DS] < cut], ForecastConfig(horizon_hours=168))
    m = res.forecast.merge(long[long[S.DS] >= cut], on=[S.UID, S.DS])
    inside = (m[S.Y] >= m[S.P10]) & (m[S.Y] <= m[S.P90])
    assert 0.72 <= inside.mean() <= 0.88
    width = (m[S.P90] - m[S.P10]).groupby(m[S.UID]).mean()
    expected = pd.Series(2 * 1.2816 * np.sqrt(2) * sd, index=[f"t{i}|NVIDIA A100" for i in range(len(sd))])
    assert (width / expected.reindex(width.index)).mean() == pytest.approx(1.0, abs=0.1)


def test_a_series_without_cv_errors_borrows_scaled_ranges_from_the_others():
    long, _ = simulated_long(3, n=4, hours=4 * 168)
    end = long[S.DS].max()
    rng = np.random.default_rng(0)
    new = pd.DataFrame({S.UID: "new|NVIDIA L4", S.DS: pd.date_range(end - pd.Timedelta(hours=29), end, freq="h"),
                        S.Y: 10 + rng.normal(0, 2, 30)})
    both = pd.concat([long, new], ignore_index=True)
    # the calibrations on their own (30 hours is short against the 24-hour horizon: see tests/test_short_history.py)
    blend = forecast_long(both, ForecastConfig(horizon_hours=24, widen_short_history=False))
    own = forecast_long(both, ForecastConfig(horizon_hours=24, calibration="series", widen_short_history=False))
    b = blend.forecast[blend.forecast[S.UID] == "new|NVIDIA L4"]
    o = own.forecast[own.forecast[S.UID] == "new|NVIDIA L4"]
    assert np.allclose(o[S.P90], o[S.P10])
    widened = forecast_long(both, ForecastConfig(horizon_hours=24, calibration="series"))
    w = widened.forecast[widened.forecast[S.UID] == "new|NVIDIA L4"]
    assert ((w[S.P90] - w[S.P10]) > 0).all() and widened.short_history.series.index.tolist() == ["new|NVIDIA L4"]
    # the band is the others' pooled error quantiles times this series' own hour-to-hour noise scale
    scale = float(np.abs(np.diff(new[S.Y].to_numpy())).mean())
    assert 1.0 * scale < (b[S.P90] - b[S.P10]).mean() < 4.0 * scale
    assert any("scaled to their own hour-to-hour changes" in n for n in blend.notes)
    # series with CV errors keep half of their own quantiles: both calibrations give similar widths
    w = [r.forecast[r.forecast[S.UID] == "t3|NVIDIA A100"].eval("p90 - p10").mean() for r in (blend, own)]
    assert w[0] == pytest.approx(w[1], rel=0.25)


def test_noise_scale_by_hand():
    ds = pd.date_range(T0, periods=5, freq="h")
    long = pd.DataFrame({S.UID: ["a"] * 5 + ["b"] * 5, S.DS: list(ds) * 2,
                         S.Y: [0.0, 0.0, 4.0, 4.0, 0.0, 3.0, 3.0, 3.0, 3.0, 3.0]})
    scale = noise_scale(long)
    assert scale["a"] == pytest.approx(2.0)     # |0|, |4|, |0|, |-4| -> mean 2 GPUs
    assert np.isnan(scale["b"])                  # a constant series has no noise to scale by
    assert noise_scale(long, hours=2)["a"] == pytest.approx(4.0)   # last two hours only: 4 -> 0


def test_after_a_step_the_forecast_follows_the_new_level():
    """GPU demand moves in steps: 300 h at 10 GPUs, then 120 h at 30 (noise sd 1). SeasonalNaive168 would
    still repeat part of the old level; the selected forecast must not."""
    rng = np.random.default_rng(5)
    y = np.r_[np.full(300, 10.0), np.full(120, 30.0)] + rng.normal(0, 1, 420)
    res = forecast(usage_of({("train", "NVIDIA H100"): y}), ForecastConfig(horizon_hours=48))
    assert res.forecast[S.MEAN].mean() == pytest.approx(30.0, abs=1.5)
    assert "SES08" in set(res.cv_scores[S.MODEL])


def test_unknown_calibration_is_rejected():
    with pytest.raises(ValueError, match="unknown calibration 'magic'"):
        ForecastConfig(calibration="magic")


def test_a_short_history_still_gets_cv_windows_and_ranges():
    """240 hours of history and a 168-hour horizon leave SeasonalNaive168 no CV window (it needs 168 hours
    before the first origin). Keeping it meant no CV at all: no model choice and zero-width ranges. The engine
    drops it (Naive always stays) and cross-validates the rest: 240 - 168 - 24 x (3 - 1) = 24 hours, enough
    for SeasonalNaive24, so 3 windows."""
    rng = np.random.default_rng(2)
    hours = np.arange(240)
    y = 30 + 8 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 2, 240)
    res = forecast(usage_of({("new", "NVIDIA A100"): y}), ForecastConfig(horizon_hours=168))
    sel = res.selection.iloc[0]
    assert "SeasonalNaive168" not in set(res.cv_scores[S.MODEL]) and "SeasonalNaive24" in set(res.cv_scores[S.MODEL])
    assert np.isfinite(sel["cv_mae"])
    assert res.long.errors["window"].nunique() == 3
    assert ((res.forecast[S.P90] - res.forecast[S.P10]) > 1.0).all()
