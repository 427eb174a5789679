"""Rolling-origin backtests: metric arithmetic by hand, levels, and the gpuplan backtest command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from forecasting.backtest import BacktestConfig, _score_points, rolling_backtest
from forecasting.engine import ForecastConfig
from forecasting.models import BASELINES
from forecasting.samples import load_sample
from tests.test_cli import HELIOS
from usage import schema as S


def test_pinball_and_coverage_by_hand():
    points = pd.DataFrame({"actual": [10.0, 0.0], S.MEAN: [8.0, 1.0], S.P05: [5.0, 0.5], S.P10: [6.0, 0.6],
                           S.P50: [8.0, 1.0], S.P90: [12.0, 2.0], S.P95: [13.0, 3.0]})
    scored = _score_points(points)
    # row 0: diffs 5, 4, 2, -2, -3 at q .05 .1 .5 .9 .95 -> losses .25 .4 1 .2 .15 -> mean .4
    assert scored["pinball"].iloc[0] == pytest.approx(0.4)
    assert scored["abs_err"].tolist() == [2.0, 1.0]
    assert scored["in80"].tolist() == [True, False] and scored["in90"].tolist() == [True, False]


def weekly_long(weeks: int = 10) -> pd.DataFrame:
    hours = np.arange(weeks * 168)
    ds = pd.date_range("2025-01-06", periods=len(hours), freq="h")
    rows = []
    for team, gpu, base in (("a", "NVIDIA A100", 20.0), ("b", "NVIDIA A100", 5.0), ("b", "NVIDIA L4", 8.0)):
        y = base + 6 * ((hours % 168) // 24 < 5) + 3 * np.sin(2 * np.pi * hours / 24)
        rows.append(pd.DataFrame({S.UID: f"{team}|{gpu}", S.DS: ds, S.Y: y}))
    return pd.concat(rows, ignore_index=True)


def test_a_repeating_week_is_forecast_almost_perfectly_and_levels_add_up():
    long = weekly_long()
    result = rolling_backtest(long, ForecastConfig(cv_windows=4), BacktestConfig(horizon_hours=48, origins=2))
    summary = result.summary.set_index("level")
    assert summary.loc["series", "nodes"] == 3 and summary.loc["team", "nodes"] == 2
    assert summary.loc["gpu_type", "nodes"] == 2 and summary.loc["total", "nodes"] == 1
    assert summary.loc["series", "mase_selected"] < 0.05      # the week repeats exactly
    sel = result.per_level.set_index(["method", "level"])
    assert sel.loc[("SeasonalNaive168", "series"), "mean_mase"] < 1e-9
    pts = result.points[result.points["method"] == "selected"]
    total = pts[pts["level"] == "total"].set_index(["origin", S.DS])["actual"]
    summed = pts[pts["level"] == "series"].groupby(["origin", S.DS])["actual"].sum()
    pd.testing.assert_series_equal(total.sort_index(), summed.sort_index(), check_names=False)


def test_backtest_command_writes_scores_and_chart(tmp_path):
    out, chart = tmp_path / "bt.csv", tmp_path / "bt.html"
    r = CliRunner().invoke(app, ["backtest", "--usage", str(HELIOS), "--horizon-hours", "48", "--origins", "1",
                                 "--out", str(out), "--chart", str(chart)])
    assert r.exit_code == 0, r.output
    assert "MASE selected" in r.output
    scores = pd.read_csv(out)
    assert set(scores["level"]) >= {"series", "team", "gpu_type", "total", "series_detail"}
    assert (scores["coverage_80"].between(0, 1)).all()
    assert "vega" in chart.read_text()


def test_helios_last_two_weeks_no_worse_than_the_best_naive_forecast_in_gpus():
    """Real SenseTime Helios Earth May 2020, 16 teams, the last two weeks held out (2 origins x 168 h).

    These weeks are reporting data for the forecast benchmark (benchmarks/forecast_accuracy.py), so nothing was
    chosen on them. Measured with the robust selection (2026-12): total MAE 212.7 GPUs against Naive's 213.6
    (ratio 0.996), p10-p90 coverage 74.5%. The mean-MASE ratio is 1.12 against SeasonalNaive24, driven by one
    team (vcira, MASE 8.6 against 3.9). The intermittent-demand models that used to fit it left the default set,
    because on the tuning origins they lost where it counts in GPUs (docs/benchmarks.md). The old numbers
    were 0.960 and 82.8%, and were measured on these same weeks.
    """
    long = S.to_long(load_sample("helios"))
    result = rolling_backtest(long, ForecastConfig(), BacktestConfig(horizon_hours=168, origins=2))
    lv = result.per_level[result.per_level["level"] == "series"].set_index("method")
    best_naive = lv.loc[list(BASELINES), "mae"].min()
    assert lv.loc["selected", "mae"] <= best_naive
    assert 0.70 <= lv.loc["selected", "coverage_80"] <= 0.85
