"""The Dask engine (statsforecast through Fugue) gives the same forecasts as the local one.

A two-worker ``dask.distributed.LocalCluster`` (separate processes, so models and the backend really are
pickled to the workers) is started once for this module and closed at its end. The Ray engine is checked
only when ``GPUPLAN_TEST_RAY=1`` (Ray is an optional extra and its start-up takes tens of seconds).
"""

from __future__ import annotations

import os
import sys

import dask
import numpy as np
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

from forecasting import engine as E
from forecasting.samples import load_sample
from usage import schema as S

pytestmark = pytest.mark.slow
T0 = pd.Timestamp("2025-03-01")
NUMBERS = [S.MEAN, *E.QUANTILES]


@pytest.fixture(scope="module")
def dask_client():
    with dask.config.set(E.DASK_WORKER_CONFIG):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def assert_same_forecast(local: E.LongForecast, other: E.LongForecast) -> None:
    a, b = local.forecast, other.forecast
    assert list(a.columns) == list(b.columns) and (a.dtypes == b.dtypes).all()
    pd.testing.assert_frame_equal(a.drop(columns=NUMBERS), b.drop(columns=NUMBERS))
    np.testing.assert_allclose(b[NUMBERS].to_numpy(), a[NUMBERS].to_numpy(), rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(local.selection, other.selection, check_exact=False, rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(local.errors, other.errors, check_exact=False, rtol=0, atol=1e-6)
    assert local.notes == other.notes


def synthetic_long() -> pd.DataFrame:
    """Awkward hourly series: seasonal, intermittent, constant, too short to cross-validate, ended early,
    one missing value."""
    rng = np.random.default_rng(7)
    hours = np.arange(400)
    series = {
        "seasonal": 20 + 8 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, hours.size),
        "bursty": np.where(rng.random(hours.size) < 0.6, 0.0, rng.integers(1, 9, hours.size).astype(float)),
        "flat": np.full(hours.size, 8.0),
        "ended": 5 + rng.normal(0, 0.5, 300),
    }
    series["seasonal"][100] = np.nan
    parts = [pd.DataFrame({S.UID: uid, S.DS: pd.date_range(T0, periods=len(y), freq="h"), S.Y: y})
             for uid, y in series.items()]
    parts.append(pd.DataFrame({S.UID: "new", S.DS: pd.date_range(T0 + pd.Timedelta(hours=395), periods=5,
                                                                   freq="h"), S.Y: [3.0, 5.0, 4.0, 6.0, 5.0]}))
    return pd.concat(parts, ignore_index=True)


def test_helios_dask_forecast_equals_local(dask_client):
    """16 real hourly series (744 h), 48 h ahead, default models."""
    long = S.to_long(load_sample("helios"))
    local = E.forecast_long(long, E.ForecastConfig(horizon_hours=48))
    on_dask = E.forecast_long(long, E.ForecastConfig(horizon_hours=48, engine="dask"))
    assert on_dask.forecast[S.UID].nunique() == 16 and len(on_dask.forecast) == 16 * 48
    assert_same_forecast(local, on_dask)
    assert (local.selection[S.MODEL] == on_dask.selection[S.MODEL]).all()


def test_awkward_series_dask_forecast_equals_local(dask_client):
    long = synthetic_long()
    local = E.forecast_long(long, E.ForecastConfig(horizon_hours=24))
    on_dask = E.forecast_long(long, E.ForecastConfig(horizon_hours=24, engine="dask"))
    assert_same_forecast(local, on_dask)
    assert any("too short" in n for n in on_dask.notes) and any("padded" in n for n in on_dask.notes)


def test_dask_cross_validation_frame_matches_local_columns_and_dtypes(dask_client):
    """``cutoff``/``ds`` come back as the input's datetime64[ns], ``unique_id`` as a column, numbers float64."""
    long = synthetic_long().dropna()
    long = long[long[S.UID].isin(["seasonal", "bursty"])].reset_index(drop=True)
    models = ("Naive", "SeasonalNaive24", "CrostonOptimized")
    fc_local, cv_local = E._run_group(long, models, E.ForecastConfig(horizon_hours=24), windows=3)
    fc_dask, cv_dask = E._run_group(long, models, E.ForecastConfig(horizon_hours=24, engine="dask"), windows=3)
    pd.testing.assert_frame_equal(cv_local, cv_dask)
    pd.testing.assert_frame_equal(fc_local, fc_dask)


def test_missing_engine_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "fugue_ray", None)  # import fugue_ray now raises ImportError
    with pytest.raises(ValueError, match=r"^install ray to use --engine ray \(pip install"):
        E.forecast_long(synthetic_long(), E.ForecastConfig(horizon_hours=24, engine="ray"))


@pytest.mark.skipif(os.environ.get("GPUPLAN_TEST_RAY") != "1", reason="set GPUPLAN_TEST_RAY=1 to test Ray")
def test_ray_forecast_equals_local():
    ray = pytest.importorskip("ray")
    long = synthetic_long()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = E.forecast_long(long, E.ForecastConfig(horizon_hours=24, engine="ray"))
    finally:
        ray.shutdown()
    assert_same_forecast(E.forecast_long(long, E.ForecastConfig(horizon_hours=24)), on_ray)
