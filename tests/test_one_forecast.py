"""One forecast per series and hour (issue 15, item 2): the sample paths behind plans and budget alerts average to
the forecast's ``mean`` column, so ``gpuplan forecast``/``plan`` and ``gpuplan alerts`` state the same expected
demand for a team and period (before, an intermittent team forecast at 0 GPUs was projected at thousands of USD by
the alerts, because the replayed errors and level shifts were clipped at 0 GPUs and did not average to zero)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.engine import centre_on_mean, sample_paths
from operate.alerts import compute_alerts, forecast_for_budgets
from operate.budgets import Budget
from operate.costing import Rates
from usage import schema as S

H100 = "NVIDIA H100"
RATES = Rates({H100: 5.0}, "test: 5 USD per GPU-hour")
START = pd.Timestamp("2026-01-01")


def test_centred_paths_average_to_the_mean_hour_by_hour():
    mean = np.array([0.0, 5.0, 2.0, 10.0])
    rng = np.random.default_rng(3)
    noise = rng.normal(1.5, 4.0, size=(200, 4))     # biased (+1.5) and often below 0 GPUs once added
    raw = np.clip(mean + noise, 0.0, None)
    assert raw.mean(axis=0)[0] > 1.0                 # what clipping alone gives for a series forecast at 0
    paths = centre_on_mean(mean, noise)
    assert paths.min() >= 0.0
    np.testing.assert_allclose(paths.mean(axis=0), mean, atol=1e-9)
    assert (paths[:, 0] == 0.0).all()                # forecast 0 GPUs -> 0 in every path
    assert paths[:, 3].std() > 3.0                   # the spread is kept where the mean leaves room


def test_centring_without_noise_keeps_the_forecast():
    mean = np.array([3.0, 0.0, 7.5])
    np.testing.assert_allclose(centre_on_mean(mean, np.zeros((5, 3))), np.tile(mean, (5, 1)))


def intermittent_usage() -> pd.DataFrame:
    """28 days: team 'eval' idle except a 48-hour burst of 64 GPUs on days 10-11; team 'steady' at 8 GPUs with a
    daily swing of +-4."""
    hours = pd.date_range(START, periods=28 * 24, freq="h")
    i = np.arange(len(hours))
    burst = np.where((i >= 10 * 24) & (i < 12 * 24), 64.0, 0.0)
    steady = 8.0 + 4.0 * np.sin(2 * np.pi * i / 24)
    return pd.concat([pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: "eval", S.GPU_TYPE: H100, S.GPUS: burst}),
                      pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: "steady", S.GPU_TYPE: H100, S.GPUS: steady})],
                     ignore_index=True)


def test_alerts_project_the_forecast_table_mean():
    use = intermittent_usage()
    as_of = pd.Timestamp("2026-01-29")
    end = pd.Timestamp("2026-02-12")
    budgets = (Budget("eval", None, START, end, 50_000.0), Budget("steady", None, START, end, 50_000.0))
    long = forecast_for_budgets(use, budgets, as_of)
    report = compute_alerts(use, budgets, RATES, long=long, as_of=as_of, n_paths=100)
    fc = long.forecast
    for alert in report.alerts:
        rows = fc[fc[S.UID] == f"{alert.team}{S.UID_SEP}{H100}"]
        rows = rows[(pd.to_datetime(rows[S.DS]) >= as_of) & (pd.to_datetime(rows[S.DS]) < end)]
        assert len(rows) == 14 * 24
        table = alert.actual_to_date_usd + 5.0 * float(rows[S.MEAN].sum())
        assert alert.projected_usd == pytest.approx(table, rel=1e-6, abs=0.01), alert.team
    eval_alert = report.alerts[0]
    assert eval_alert.actual_to_date_usd == 64 * 48 * 5.0
    # the raw paths of the same forecast would have put thousands of USD on top of the table's mean
    paths = sample_paths(long, 100, 0)[f"eval{S.UID_SEP}{H100}"]
    assert paths.mean(axis=0).sum() == pytest.approx(float(fc.loc[fc[S.UID] == f"eval{S.UID_SEP}{H100}",
                                                                   S.MEAN].sum()), abs=1e-6)
