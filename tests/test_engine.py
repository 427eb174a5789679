"""Forecast engine: model choice by cross-validation, quantile sanity, awkward series, real Helios data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import schema as S
from forecasting.backtest import holdout_accuracy
from forecasting.engine import ForecastConfig, forecast, read_forecast_csv, write_forecast_csv
from forecasting.samples import load_sample

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


def test_helios_last_week_selected_forecast_beats_seasonal_naive():
    """Real SenseTime Helios Earth May 2020 (16 teams): hold out the last 168 hours."""
    result = holdout_accuracy(load_sample("helios"), holdout_hours=168, config=ForecastConfig(n_jobs=1))
    overall = result.overall.set_index("method")
    assert overall.loc["selected", "total_mae_gpus"] < overall.loc["SeasonalNaive24", "total_mae_gpus"]
    assert overall.loc["selected", "total_mae_gpus"] < overall.loc["SeasonalNaive168", "total_mae_gpus"]
    assert 0.6 <= overall.loc["selected", "coverage_p10_p90"] <= 0.95
    assert len(result.per_series) == 16
