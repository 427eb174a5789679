"""Long-horizon forecasts: a year ahead on the synthetic org, hold-out accuracy vs a seasonal naive
baseline, the trend estimated from the history (synthetic org, hand-made 50%/year and flat series, short
history, trend off = the forecast before the trend existed), growth by hand, the hour-of-week profile on a
known pattern, load-duration-curve bookkeeping, planned events inside the long-term forecast."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from forecasting.events import DATE, DELTA_GPU_HOURS, load_events, parse_events
from forecasting.longterm import (
    GPU_TYPE_RATE,
    HOUR_OF_WEEK,
    HOURS,
    LEVEL_GPUS,
    MONTH,
    RATE,
    RATIO,
    SCENARIO,
    SERIES_RATE,
    WEEK,
    LongTermConfig,
    annual_growth,
    apply_growth,
    build_profile,
    forecast_longterm,
    holdout_longterm,
    hourly_from_daily,
    load_duration_curve,
    profile_summary,
)
from forecasting.samples import load_sample
from usage import schema as S

REPO = Path(__file__).resolve().parents[1]
QUANTS = ["p05", "p10", "p50", "p90", "p95"]
T0 = pd.Timestamp("2025-01-06")  # a Monday


def usage_of(series: dict[tuple[str, str], np.ndarray], start: pd.Timestamp = T0) -> pd.DataFrame:
    parts = [pd.DataFrame({S.TIMESTAMP: pd.date_range(start, periods=len(y), freq="h"), S.TEAM: team,
                           S.GPU_TYPE: gpu, S.GPUS: y}) for (team, gpu), y in series.items()]
    df, _ = S.validate_usage(pd.concat(parts, ignore_index=True), "test")
    return df


def growing(days: int, level: float, rate: float, seed: int, start: pd.Timestamp = T0) -> np.ndarray:
    """Hourly GPUs growing exactly ``rate`` a year (compounding, ``level`` on the first hour), with a 0.8
    weekend dip, a daily cycle and 10% hourly log-normal noise (seeded)."""
    ts = pd.date_range(start, periods=days * 24, freq="h")
    years = ((ts - start) / pd.Timedelta(days=365.25)).to_numpy(float)
    shape = np.where(ts.dayofweek.to_numpy() < 5, 1.0, 0.8) * (1 + 0.2 * np.cos(2 * np.pi * (ts.hour - 18) / 24))
    noise = np.exp(np.random.default_rng(seed).normal(0.0, 0.1, ts.size))
    return level * (1 + rate) ** years * shape * noise


def weekly_pattern(weeks: int, weekday: float = 40.0, weekend: float = 20.0) -> np.ndarray:
    """Hourly GPUs: a daily cosine (x1.5 at 18:00, x0.5 at 06:00 UTC) on a weekday/weekend level (2x)."""
    ts = pd.date_range(T0, periods=weeks * 168, freq="h")
    shape = 1 + 0.5 * np.cos(2 * np.pi * (ts.hour.to_numpy() - 18) / 24)
    return np.where(ts.dayofweek.to_numpy() < 5, weekday, weekend) * shape


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return load_sample("synthetic")


@pytest.fixture(scope="module")
def year(synthetic):
    t0 = time.perf_counter()
    result = forecast_longterm(synthetic, LongTermConfig(horizon_days=365))
    return result, time.perf_counter() - t0


def test_every_synthetic_series_gets_a_year_of_ordered_non_negative_daily_quantiles(synthetic, year):
    result, seconds = year
    daily = result.daily
    assert seconds < 120  # about 5 s on a laptop core
    assert result.start == pd.Timestamp("2025-12-01")
    counts = daily.groupby([S.TEAM, S.GPU_TYPE]).size()
    assert len(counts) == 30 and (counts == 365).all()
    assert daily[DATE].min() == pd.Timestamp("2025-12-01") and daily[DATE].max() == pd.Timestamp("2026-11-30")
    values = daily[[S.MEAN, *QUANTS]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (np.diff(daily[QUANTS].to_numpy(), axis=1) >= 0).all()
    assert daily[S.MODEL].notna().all() and len(result.selection) == 30
    assert (result.selection.loc[result.selection["history_days"] > 300, "cv_windows"] == 3).all()
    # No growth, no events: the only adjustments are the estimated trend, one per series (every rate is set).
    assert set(result.adjustments["kind"]) == {"trend"} and len(result.adjustments) == 30
    years = ((daily[DATE] - pd.Timestamp("2025-11-30")) / pd.Timedelta(days=365.25)).to_numpy()
    rate = daily.merge(result.trend, on=[S.TEAM, S.GPU_TYPE])[RATE].to_numpy()
    assert np.allclose(daily[S.MEAN], result.unadjusted[S.MEAN] * (1 + rate) ** years)
    assert np.allclose(daily["p50"], result.unadjusted["p50"] * (1 + rate) ** years)  # p50 is not widened
    # The bands widen with the horizon (sqrt growth beyond the CV window, plus the trend's own uncertainty).
    org = daily.groupby(DATE)[["p10", "p90"]].sum()
    assert (org["p90"] - org["p10"]).iloc[-1] > 1.5 * (org["p90"] - org["p10"]).iloc[0]
    # The expected value lies inside p10-p90 on every row.
    assert ((daily[S.MEAN] >= daily["p10"] - 1e-9) & (daily[S.MEAN] <= daily["p90"] + 1e-9)).all()
    # Level sanity: the org used ~720 GPUs in its last month; its first forecast month is close to that.
    first = daily[daily[DATE] < "2026-01-01"].groupby(DATE)[S.MEAN].sum().mean()
    assert 700 < first < 800  # measured 755


@pytest.mark.slow
def test_daily_models_beat_a_daily_seasonal_naive_on_the_last_90_days(synthetic):
    result = holdout_longterm(synthetic, holdout_days=90, baselines=("SeasonalNaive",))
    overall = result.overall.set_index("method")
    model, naive7 = overall.loc["selected", "abs_err_gpu_days"], overall.loc["SeasonalNaive", "abs_err_gpu_days"]
    # Measured: 9,313 vs 10,616 GPU-days (224k vs 255k GPU-hours) of absolute error over 30 series x 90 days
    # with the estimated trend (9,083 without it; the baseline has no trend).
    assert model < 0.92 * naive7
    assert 0.7 <= overall.loc["selected", "coverage_p10_p90"] <= 0.9  # measured 0.83
    assert 0.8 <= overall.loc["selected", "coverage_p05_p95"] <= 0.97  # measured 0.91
    assert result.holdout_start == pd.Timestamp("2025-09-02")


def test_growth_of_10_percent_a_year_raises_the_mean_a_year_ahead_by_about_10_percent():
    usage = usage_of({("a", "NVIDIA A100"): np.full(24 * 120, 100.0), ("b", "NVIDIA L4"): np.full(24 * 120, 10.0)})
    base = forecast_longterm(usage, LongTermConfig(horizon_days=365)).daily
    grown = forecast_longterm(usage, LongTermConfig(horizon_days=365, growth=0.10, team_growth=(("b", 0.5),)))
    a0, a1 = (f[f[S.TEAM] == "a"].set_index(DATE) for f in (base, grown.daily))
    assert np.allclose(a0[S.MEAN], 100.0)  # a flat history stays flat
    # by hand: day 365 is 364 days after the start -> 1.1 ** (364 / 365.25) = 1.09966
    assert a1[S.MEAN].iloc[-1] == pytest.approx(100 * 1.1 ** (364 / 365.25))
    assert a1[S.MEAN].iloc[0] == pytest.approx(100.0)
    month12 = a1[S.MEAN].iloc[-30:].mean() / a0[S.MEAN].iloc[-30:].mean()
    assert 1.09 < month12 < 1.10
    assert np.allclose(a1["p90"] / a0["p90"], a1[S.MEAN] / a0[S.MEAN])  # quantiles scale too
    b1 = grown.daily[grown.daily[S.TEAM] == "b"]
    assert b1[S.MEAN].iloc[-1] == pytest.approx(10 * 1.5 ** (364 / 365.25))  # team rate replaces org rate
    adj = grown.adjustments.set_index(S.TEAM)
    assert adj.loc["a", "kind"] == "growth" and adj.loc["a", "value"] == 0.10
    assert adj.loc["b", "source"] == "team_growth[b]" and adj.loc["a", "source"] == "growth (org-wide)"
    assert adj.loc["a", DELTA_GPU_HOURS] == pytest.approx(24 * (a1[S.MEAN] - a0[S.MEAN]).sum())
    assert grown.unadjusted[S.MEAN].equals(base[S.MEAN])


def test_growth_on_the_synthetic_year(year):
    result, _ = year
    grown, adj = apply_growth(result.unadjusted, 0.10, start=result.start)
    last = result.unadjusted[DATE].max()
    before = result.unadjusted[result.unadjusted[DATE] == last][S.MEAN].sum()
    after = grown[grown[DATE] == last][S.MEAN].sum()
    assert after / before == pytest.approx(1.1 ** (364 / 365.25))
    assert len(adj) == 30 and (adj[DELTA_GPU_HOURS] >= 0).all()


def test_the_profile_reproduces_a_known_daily_shape_and_the_hourly_view_a_2x_weekday_weekend_ratio():
    usage = usage_of({("serve", "NVIDIA L4"): weekly_pattern(8)})
    profile = build_profile(usage, weeks=8)
    assert len(profile) == 8 * 168 and sorted(profile[WEEK].unique()) == list(range(8))
    hour = profile[HOUR_OF_WEEK] % 24
    expected = 1 + 0.5 * np.cos(2 * np.pi * (hour - 18) / 24)  # ratio to the day's mean = the daily shape
    assert np.allclose(profile[RATIO], expected)

    result = forecast_longterm(usage, LongTermConfig(horizon_days=28, profile_weeks=8))
    daily = result.daily.set_index(DATE)[S.MEAN]
    weekday, weekend = daily[daily.index.dayofweek < 5], daily[daily.index.dayofweek >= 5]
    assert weekday.mean() / weekend.mean() == pytest.approx(2.0, rel=0.02)
    hourly = result.hourly()
    assert len(hourly) == 28 * 24
    ts = hourly[S.TIMESTAMP]
    assert hourly.loc[ts.dt.dayofweek < 5, S.MEAN].mean() / hourly.loc[ts.dt.dayofweek >= 5, S.MEAN].mean() \
        == pytest.approx(2.0, rel=0.02)
    by_hour = hourly.groupby(ts.dt.hour)[S.MEAN].mean()
    assert by_hour[18] / by_hour[6] == pytest.approx(3.0, rel=0.02)  # 1.5 / 0.5
    # GPU-hours of every day are kept exactly
    per_day = hourly.groupby(ts.dt.floor("D"))[S.MEAN].sum()
    assert np.allclose(per_day.to_numpy(), 24 * result.daily[S.MEAN].to_numpy())

    weekly = forecast_longterm(usage, LongTermConfig(horizon_days=28, granularity="weekly")).daily
    wd = weekly.set_index(DATE)[S.MEAN]
    assert wd[wd.index.dayofweek < 5].mean() / wd[wd.index.dayofweek >= 5].mean() == pytest.approx(2.0, rel=0.02)


def test_the_profile_keeps_the_within_hour_spread_of_failed_hours():
    y = np.full(4 * 168, 16.0)
    y[2 * 168 + 24 * 2 + 10: 2 * 168 + 24 * 2 + 14] = 0.0  # week 2, Wednesday 10:00-14:00: job down
    profile = build_profile(usage_of({("train", "NVIDIA A100"): y}), weeks=4)
    summary = profile_summary(profile).set_index(HOUR_OF_WEEK)
    wed = 2 * 24
    assert (summary.loc[wed + 10: wed + 13, "ratio_min"] == 0).all()
    assert summary.loc[wed + 10, "ratio"] == pytest.approx(0.75)  # 0 in one of 4 weeks
    assert summary.loc[wed + 9, "ratio_max"] == pytest.approx(24 / 20)  # that day's mean is 16 x 20 / 24
    day_means = profile.groupby([WEEK, profile[HOUR_OF_WEEK] // 24])[RATIO].mean()
    assert np.allclose(day_means, 1.0)


def test_load_duration_curve_hours_and_gpu_hours_add_up(year):
    result, _ = year
    ldc = result.load_duration_curve(bins=24)
    assert set(ldc[SCENARIO]) == {*QUANTS, S.MEAN} and ldc[MONTH].nunique() == 12
    daily = result.daily.assign(**{MONTH: result.daily[DATE].dt.to_period("M").dt.to_timestamp()})
    for (gpu, scen, month), g in ldc.groupby([S.GPU_TYPE, SCENARIO, MONTH]):
        assert g[HOURS].sum() == pytest.approx(month.days_in_month * 24)
        want = 24 * daily.loc[(daily[S.GPU_TYPE] == gpu) & (daily[MONTH] == month), scen].sum()
        assert (g[LEVEL_GPUS] * g[HOURS]).sum() == pytest.approx(want, rel=1e-9)
        assert g[LEVEL_GPUS].is_monotonic_increasing and len(g) == 24
        assert (g["min_gpus"] <= g[LEVEL_GPUS] + 1e-9).all() and (g[LEVEL_GPUS] <= g["max_gpus"] + 1e-9).all()


def test_load_duration_curve_from_hourly_samples_equals_the_daily_profile_path(year):
    result, _ = year
    daily = result.daily[result.daily[S.GPU_TYPE] == "NVIDIA A10G"]
    direct = load_duration_curve(daily, result.profile, bins=12, scenarios=["p10", "p90"])
    hourly = hourly_from_daily(daily, result.profile, samples=True, columns=["p10", "p90"])
    assert hourly.groupby(S.TIMESTAMP)[HOURS].sum().eq(daily[S.TEAM].nunique()).all()
    via_hours = load_duration_curve(hourly, bins=12, scenarios=["p10", "p90"])
    pd.testing.assert_frame_equal(direct, via_hours, check_exact=False, rtol=1e-9)
    # The hourly forecast contract (one row per hour, no weights) works too.
    plain = load_duration_curve(hourly_from_daily(daily, result.profile), bins=6, by=(S.TEAM, S.GPU_TYPE))
    assert plain.groupby([S.TEAM, SCENARIO, MONTH])[HOURS].sum().isin([28 * 24, 30 * 24, 31 * 24]).all()


def test_planned_events_are_applied_after_growth_and_listed(synthetic, year):
    result, _ = year
    events = load_events(REPO / "data_samples" / "events_sample.yaml")
    adjusted = forecast_longterm(synthetic, LongTermConfig(horizon_days=365, growth=0.05), events=events)
    adj = adjusted.adjustments
    assert list(adj["kind"].value_counts().sort_index().items()) == [
        ("add", 2), ("growth", 30), ("scale", 1), ("trend", 30), ("wind_down", 1)]
    assert list(dict.fromkeys(adj["kind"]))[:2] == ["trend", "growth"]  # listed in the order applied
    d = adjusted.daily
    agents = d[d[S.TEAM] == "agents"].set_index(DATE)[S.MEAN]
    assert len(agents) == 365 and (agents[:"2026-03-31"] == 0).all() and (agents["2026-04-01":] == 32).all()
    grown, _ = apply_growth(result.daily, 0.05, start=result.start)  # trend (the year fixture), then growth
    key = [S.TEAM, S.GPU_TYPE, DATE]
    both = d.merge(grown, on=key, suffixes=("", "_grown"))
    pre = both[(both[S.TEAM] == "llm-pretrain") & (both[S.GPU_TYPE] == "NVIDIA H100")].set_index(DATE)
    diff = pre[S.MEAN] - pre[f"{S.MEAN}_grown"]
    assert np.allclose(diff["2026-02-01":"2026-04-30"], 128) and np.allclose(diff.drop(diff["2026-02-01":
                                                                                              "2026-04-30"].index), 0)
    speech = both[(both[S.TEAM] == "speech") & (both[S.GPU_TYPE] == "NVIDIA A100")].set_index(DATE)
    assert (speech.loc["2026-06-01":, S.MEAN] == 0).all()
    h100 = adjusted.load_duration_curve(bins=8, scenarios=["p50"])
    assert h100[h100[S.GPU_TYPE] == "NVIDIA H100"][HOURS].sum() == pytest.approx(365 * 24)


@pytest.mark.parametrize("kwargs", [{"granularity": "monthly"}, {"models": ("Prophet",)}, {"growth": -1.0},
                                    {"quantiles": (0.1, 0.9)}, {"horizon_days": 0},
                                    {"models": ("SeasonalWindowAverage",), "granularity": "weekly"},
                                    {"trend": "linear"}, {"trend_min_days": 7}, {"trend_method": "ols"},
                                    {"trend_series_weight": 1.5}])
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        LongTermConfig(**kwargs)


# --- the estimated trend ---------------------------------------------------------------------------------
def test_the_synthetic_forecast_grows_like_each_gpu_models_history_and_the_org_like_their_mix(year):
    """The forecast's growth (first 365 days) vs the history's (last 365 days), both :func:`annual_growth`.

    Measured (2025-11-30 history): A100 -11.9% / -11.9%, A10G +1.6% / +1.4%, H100 +117.5% / +117.1%, L4 +82.5% /
    +82.6%. The organisation grew +37.8% but its forecast grows +56.7%: with H100 doubling and A100 shrinking the
    mix moves to the fast growers, so the total accelerates; each GPU model at its own history growth on
    today's mix implies +57.1%. No forecast can keep every GPU model's growth and the total's at once here.
    """
    result, _ = year
    check = result.growth_check().set_index("level")
    assert (check["history_days"] == 365).all() and (check["forecast_days"] == 365).all()
    h100 = check.loc["NVIDIA H100"]
    assert h100["history_growth"] == pytest.approx(1.175, abs=0.005)
    assert abs(h100["difference_pp"]) < 5
    gpus = check.drop(index="organisation")
    assert (gpus["difference_pp"].abs() < 5).all()
    org = check.loc["organisation"]
    assert org["history_growth"] == pytest.approx(0.378, abs=0.005)
    assert abs(org["mix_difference_pp"]) < 5
    assert 0.5 < org["forecast_growth"] < 0.65  # measured 0.567: the mix effect, not an error
    # the estimate is reported per GPU model and series, and listed as adjustments
    rates = result.trend.groupby(S.GPU_TYPE)[GPU_TYPE_RATE].first()
    assert rates["NVIDIA H100"] == pytest.approx(1.178, abs=0.01) and rates["NVIDIA A100"] == pytest.approx(
        -0.124, abs=0.01)
    pretrain = result.trend.set_index([S.TEAM, S.GPU_TYPE]).loc[("llm-pretrain", "NVIDIA A100")]
    assert pretrain[SERIES_RATE] == pytest.approx(-0.38, abs=0.05)  # generated at -40%/year
    assert pretrain[RATE] < pretrain[SERIES_RATE]  # shifted so the A100 total shrinks at the A100 rate


@pytest.fixture(scope="module")
def fifty():
    """Two A100 series growing exactly 50%/year for 400 days (forecast a year ahead)."""
    usage = usage_of({("a", "NVIDIA A100"): growing(400, 40.0, 0.5, seed=1),
                      ("b", "NVIDIA A100"): growing(400, 10.0, 0.5, seed=2)})
    return usage, forecast_longterm(usage, LongTermConfig(horizon_days=365))


def test_a_series_growing_50_percent_a_year_is_recovered_within_2_points(fifty):
    usage, result = fifty
    assert (result.trend[GPU_TYPE_RATE] - 0.5).abs().max() < 0.02
    assert (result.trend[SERIES_RATE] - 0.5).abs().max() < 0.02
    assert (result.trend[RATE] - 0.5).abs().max() < 0.02
    check = result.growth_check().set_index("level")
    assert abs(check.loc["NVIDIA A100", "history_growth"] - 0.5) < 0.02
    assert abs(check.loc["NVIDIA A100", "forecast_growth"] - 0.5) < 0.02
    # a year ahead the mean is about 1.5 x the last month's level
    daily = result.daily.groupby(DATE)[S.MEAN].sum()
    last = usage[usage[S.TIMESTAMP] >= usage[S.TIMESTAMP].max() - pd.Timedelta(days=28)][S.GPUS].sum() / (29 * 24)
    assert daily.iloc[-28:].mean() / last == pytest.approx(1.5, rel=0.04)
    assert ((result.daily[S.MEAN] >= result.daily["p10"]) & (result.daily[S.MEAN] <= result.daily["p90"])).all()


def test_the_trend_does_not_narrow_the_bands(fifty):
    usage, trended = fifty
    flat = forecast_longterm(usage, LongTermConfig(horizon_days=365, trend="none"))
    for result in (trended, flat):
        result.daily["width"] = (result.daily["p90"] - result.daily["p10"]) / result.daily[S.MEAN]
    t, f = (r.daily[r.daily[S.TEAM] == "a"].set_index(DATE)["width"] for r in (trended, flat))
    # relative width: the same at the start, wider a year out (the rate's own uncertainty is added)
    assert t.iloc[:7].mean() == pytest.approx(f.iloc[:7].mean(), rel=0.3)
    assert t.iloc[-7:].mean() >= f.iloc[-7:].mean()
    assert t.iloc[-7:].mean() > 1.3 * t.iloc[:7].mean()  # and they keep widening with the horizon


def test_a_flat_series_gets_no_trend():
    usage = usage_of({("a", "NVIDIA L4"): growing(300, 30.0, 0.0, seed=3)})
    result = forecast_longterm(usage, LongTermConfig(horizon_days=365))
    assert abs(result.trend[RATE].iloc[0]) < 0.01
    check = result.growth_check().set_index("level")
    assert abs(check.loc["NVIDIA L4", "forecast_growth"]) < 0.01
    assert abs(annual_growth(result.daily[S.MEAN])) < 0.01


def test_a_history_shorter_than_180_days_gets_no_trend_and_says_so():
    usage = usage_of({("a", "NVIDIA A100"): growing(120, 40.0, 0.5, seed=4)})
    result = forecast_longterm(usage, LongTermConfig(horizon_days=90))
    assert any(n.startswith("no trend: 120 days of history, a trend needs at least 180") for n in result.notes)
    assert (result.trend[RATE] == 0).all() and result.adjustments.empty
    pd.testing.assert_frame_equal(result.daily, result.unadjusted)
    assert result.growth_check()["history_growth"].isna().all()  # 120 days are not annualised either


def test_trend_off_reproduces_the_forecast_from_before_the_trend(synthetic):
    """Golden numbers of the synthetic year written by the code before the trend existed."""
    result = forecast_longterm(synthetic, LongTermConfig(horizon_days=365, trend="none"))
    assert result.adjustments.empty and (result.trend[RATE] == 0).all()
    pd.testing.assert_frame_equal(result.daily, result.unadjusted)
    d = result.daily
    k = ((d[DATE] - d[DATE].min()) / pd.Timedelta(days=1)).to_numpy()
    cols = [S.MEAN, *QUANTS]
    g = d.assign(**{f"{c}_k": d[c] * k for c in cols}).groupby([S.TEAM, S.GPU_TYPE])
    got = g[cols + [f"{c}_k" for c in cols]].sum()
    got.insert(0, S.MODEL, g[S.MODEL].first())
    got.insert(1, "days", g.size())
    want = pd.read_csv(REPO / "tests" / "fixtures" / "longterm" / "synthetic_365_no_trend.csv").set_index(
        [S.TEAM, S.GPU_TYPE])
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, check_dtype=False)


def test_planned_events_apply_after_the_trend_and_growth(fifty):
    usage, _ = fifty
    start = pd.Timestamp("2026-02-10")  # the day after the last history day
    events = parse_events([{"team": "a", "kind": "wind_down", "start": "2026-04-01", "end": "2026-06-01"}])
    result = forecast_longterm(usage, LongTermConfig(horizon_days=365, growth=0.1), events=events)
    assert result.start == start
    a = result.daily[result.daily[S.TEAM] == "a"].set_index(DATE)
    assert (a.loc["2026-06-01":, [S.MEAN, *QUANTS]] == 0).all().all()  # at 0 despite +50% trend and +10% growth
    assert a.loc["2026-03-31", S.MEAN] > a.loc["2026-02-10", S.MEAN]  # growing until the wind-down starts
    assert a.loc["2026-05-01", S.MEAN] == pytest.approx(a.loc["2026-03-31", S.MEAN] / 2, rel=0.1)
    b = result.daily[result.daily[S.TEAM] == "b"].set_index(DATE)[S.MEAN]
    assert b.iloc[-28:].mean() / b.iloc[:28].mean() == pytest.approx(1.5 * 1.1, rel=0.06)  # b keeps growing
    assert list(result.adjustments["kind"]) == ["trend", "trend", "growth", "growth", "wind_down"]


def test_cli_longterm_prints_the_trend_per_gpu_model_and_the_growth_check(tmp_path, fifty):
    usage, _ = fifty
    path, out = tmp_path / "usage.csv", tmp_path / "daily.csv"
    usage.to_csv(path, index=False)
    r = CliRunner().invoke(app, ["longterm", "--usage", str(path), "--days", "365", "--out", str(out)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    trend = [ln for ln in lines if re.match(r"  NVIDIA A100: [+-][\d.]+%/year", ln)]
    assert len(trend) == 1, r.output
    assert abs(float(re.search(r": ([+-][\d.]+)%/year", trend[0]).group(1)) - 50) < 2
    check = [ln for ln in lines if ln.startswith("  NVIDIA A100: history")]
    assert len(check) == 1, r.output
    growth = re.search(r"history ([+-][\d.]+)%, forecast ([+-][\d.]+)%", check[0])
    assert abs(float(growth.group(1)) - 50) < 2 and abs(float(growth.group(2)) - 50) < 2
    assert any(ln.startswith("  organisation: history") for ln in lines)
    assert pd.read_csv(out)[DATE].nunique() == 365
    bad = CliRunner().invoke(app, ["longterm", "--usage", str(path), "--trend", "linear", "--out", str(out)])
    assert bad.exit_code == 2
    assert [ln for ln in bad.output.splitlines() if ln.startswith("error")] == [
        "error: trend must be one of estimated, none"]
