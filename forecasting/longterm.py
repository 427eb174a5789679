"""Long-horizon demand for 1- and 3-year commitments: daily (or weekly) models 12-36 months ahead, a
trend estimated from the history, an hour-of-week profile that rebuilds the hourly distribution,
load-duration curves for the optimizer, growth assumptions and planned events as listed adjustments.

Units
-----
* Daily frame: ``mean``/``pNN`` are GPUs in use averaged over the UTC day ``date`` (= GPU-hours of the
  day / 24), so a row's GPU-hours are ``value x 24``. ``date`` is the day's 00:00 UTC (naive
  ``datetime64``). Values are >= 0 and ``p05 <= p10 <= p50 <= p90 <= p95`` on every row.
* Weekly granularity fits weekly means (GPU-hours of the 7-day block / 168) but still returns the daily
  frame: each week is spread over its days with the series' day-of-week factors from the profile
  weeks (their mean is 1, so GPU-hours are kept).
* Profile: ``ratio`` is hourly GPUs / the mean GPUs of the same UTC day (dimensionless); the 24 ratios of
  every (series, week, day) average exactly 1.
* Load-duration curve: ``level_gpus`` in GPUs, ``hours`` in hours (see the contract below).
* Trend and growth: annual rates, compounding (0.3 = +30%/year); ``delta_gpu_hours`` of adjustments in
  GPU-hours.

Models
------
History: hourly usage -> daily means per (team, gpu_type); a trailing incomplete UTC day is dropped and
series that stopped reporting are padded with zeros to the last day (as in the hourly engine). The
candidates (see :data:`CANDIDATES`; default :data:`DEFAULT_DAILY_MODELS`: Naive, SeasonalNaive (7 days),
SeasonalWindowAverage (mean of the last 4 same weekdays), AutoTheta (season 7), DampedMSTL (STL weekly
cycle + damped-trend ETS) and Ensemble (mean of SeasonalNaive, AutoTheta and DampedMSTL)) are fitted with
statsforecast on an integer period index, on the detrended history (see Trend); each series gets the
candidate with the lowest mean absolute error over ``cv_windows`` rolling-origin windows of
``cv_horizon_days`` (default min(horizon, 91) days); a series too short for that gets shorter windows (at
least 7 periods), and a series too short for any window gets ``Naive`` with its own intervals.
``RandomWalkWithDrift`` is available but not a default: on step-shaped training series it wins short CV
windows and then runs away (270-day hold-out: 2x the seasonal naive error on the largest series).
``AutoETS`` with a 7-day season is available but about 3x slower than all defaults together.

Trend
-----
Growth is defined once, by :func:`annual_growth`: ``exp(365.25 x b) - 1`` with ``b`` the least-squares
slope of ``ln(daily GPUs)`` per day. :func:`growth_check` applies it to the last 365 days of history and
the first 365 forecast days, per GPU model and for the organisation.

With ``trend="estimated"`` (the default) :func:`estimate_trend` works on the last ``min(365, history)``
days: per GPU model, its teams' daily GPUs are summed (a team that starts late or winds down counts), cut
into 7-day blocks back from the last day, and the slope of ``ln(weekly mean)`` is fitted by Theil-Sen
(robust to a few weeks of large jobs; its 95% interval gives the standard error ``se``). A series with at
least ``trend_min_days`` of positive weekly means gets its own rate the same way; others take the GPU
model's. The series' log-rates of a GPU model are then shifted by one constant so that the model's total
(each series at its last-28-day level) grows by the GPU model's rate over a year: how fast a GPU model
grows comes from its total, how that growth splits across its teams from their own trends. The models
are fitted (and cross-validated) on the history divided by ``(1 + own rate) ** years`` before the last day,
so a model with its own drift does not count the trend twice and the CV residuals are those of the
series' own dynamics; the forecast is multiplied by ``(1 + rate) ** years`` after the last day with the
shifted rate. ``unadjusted`` is the detrended models' output; :attr:`LongTermForecast.trend` holds every
rate and ``adjustments`` lists one ``trend`` row per series. The rate's uncertainty is added to the
quantiles (:func:`widen_for_trend`: ``sd = se x years`` on the log scale, in quadrature with the
conformal distance from p50; ``mean`` and ``p50`` unchanged). The rate is extrapolated unchanged over the
whole horizon (no damping: 18 months of history cannot tell how long a growth rate lasts); the ``growth``
and ``team_growth`` settings, negative ones included, temper or raise it.

A history shorter than ``trend_min_days`` (180) gets no trend and says so in ``notes``. Measured on the
synthetic org (weekly origins Aug 2024 - Jun 2025): four more weeks of data move a GPU model's estimated
log-rate by 0.39 on average with 90-120 days of history, 0.18 with 120-150, 0.07 with 150-180 and 0.03
beyond 180, so a rate from less than half a year still swings a 1-year forecast by 10-40% month to month.
(A trend from 98-158 days would have helped the 90-day ``short`` hold-outs, 0.916 vs 0.972 x the seasonal
naive error; that horizon cannot show what an unstable rate does to a 1- to 3-year term.)

Measured on the synthetic org (``benchmarks/longterm_accuracy.py``, docs/benchmarks.md): history to
2025-11-30, rates A100 -12.4%, A10G +2.1%, H100 +117.8%, L4 +83.2% a year; the forecast's growth matches
each GPU model's history within 0.5 points (A100 -11.9% / -11.9%, A10G +1.6% / +1.4%, H100 +117.5% /
+117.1%, L4 +82.5% / +82.6%). The organisation grew +37.8% and its forecast grows +56.7%: with H100 doubling
and A100 shrinking the mix shifts to the fast growers (each GPU model at its own history growth implies
+57.1% on today's mix), so no forecast keeps both every GPU model's growth and the total's here. Hold-outs
(absolute error of daily means over all series and days, ÷ SeasonalNaive(7) fitted on the same days):
tuning (five 90/180-day hold-outs ending by 2025-06-03) 1.000 with the trend vs 0.996 without, p10-p90
coverage 0.767 vs 0.733, mean |bias| per GPU model 7.9% vs 9.6%; reporting (the last 90, 180 and 365 days)
0.754 vs 0.886, coverage 0.859 vs 0.792, bias 5.2% vs 11.0%. Without the trend: last 90 days 9,083 vs 10,616
GPU-days (-14%), 180 days 23,349 vs 26,113 (-11%), coverage 83% / 79%.

Quantiles are conformal, from the chosen model's CV residuals ``r = y - forecast`` of that series:
``p_q(k) = mean(k) + median(r) + (Q_q(r) - median(r)) * sqrt(max(k, H/2) / (H/2))`` for step ``k`` and
CV window length ``H``: the pooled residuals of steps 1..H stand for the average step H/2, and the
spread grows like a random walk's beyond it (an assumption, stated here because 12-36 months ahead
cannot be cross-validated on 18 months of history). Quantiles are sorted and clipped at 0. Weekly
granularity calibrates the bands on weekly means, so they are too narrow for single days. The trend
multiplies every quantile by the same factor, so it keeps the bands' width relative to the level and
adds its own uncertainty on top (small: on every hold-out it moves coverage by at most 0.2 points; a year
ahead of 2025-11-30 the H100 band is 181-1,551 GPUs around a mean of 625, three years ahead its p10 drops
from 352 to 219). The mean lies outside p10-p90 only where a series' CV residuals are one-sided on more
than 90% of CV days (a ramping series without a trend: ``code-assist`` L4 with ``trend="none"``, 42 of
365 days) or where usage is intermittent (mean above p90 when usage happens on fewer than 10% of days);
with the default trend it lies inside on every row of the synthetic year and of the 38,560 rows of the
tuning, short and reporting hold-outs.

Adjustments (applied after the model, in this order, and listed in ``LongTermForecast.adjustments``):

1. Trend (kind ``trend``): every value of a series is multiplied by ``(1 + rate) ** years`` with
   ``years = (date - last history day) / 365.25 days`` (see Trend).
2. Growth: every value of a series is multiplied by ``(1 + rate) ** (years since the forecast start)``,
   ``years = (date - start) / 365.25 days``; ``rate`` is ``team_growth``'s rate for the team, else the
   org-wide ``growth``. It comes on top of the estimated trend (0 = trust the trend).
3. Planned events (:mod:`forecasting.events`): absolute GPU changes, not scaled by trend or growth; a
   ``wind_down`` takes the series to 0 whatever the trend.

Load-duration-curve contract (consumed by the optimizer)
---------------------------------------------------------
:func:`load_duration_curve` returns one row per (``by`` columns, ``scenario``, ``month``, ``bin``):

* ``scenario``: the forecast column the demand level comes from (``p05`` ... ``p95`` or ``mean``);
  with several teams in a group the scenario is the sum of the teams' same-named columns (comonotone,
  as in ``optimizer/inputs.py``).
* ``month``: first day (00:00 UTC) of the calendar month; only hours covered by the forecast count, so
  a partial first or last month has fewer hours.
* ``bin``: 0 = lowest demand. Bins hold (nearly) equal hours of the month's sorted hourly demand.
* ``level_gpus``: the bin's hours-weighted mean demand (GPUs); ``min_gpus``/``max_gpus`` its range.
* ``hours``: hours in the bin. Per (group, scenario, month): ``sum(hours)`` = the month's forecast
  hours and ``sum(level_gpus * hours)`` = the month's GPU-hours of that scenario (exact, up to float).

The hourly demand inside a day is rebuilt from the profile: for each of the ``profile_weeks`` recorded
weeks ``w``, hour ``t`` of day ``d`` has demand ``sum over the group's series of daily[d] x
ratio[series, w, hour_of_week(t)]``, each with weight ``1 / W`` hours. Using the same week ``w`` for all
teams keeps their hour-to-hour correlation; the ``W`` samples carry the within-hour spread (e.g. a
training job that fails for a few hours). Day-to-day noise beyond the scenario path is not added.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats
from statsforecast import StatsForecast
from statsforecast.models import (
    MSTL,
    AutoCES,
    AutoETS,
    AutoTheta,
    DynamicOptimizedTheta,
    Naive,
    OptimizedTheta,
    RandomWalkWithDrift,
    SeasonalNaive,
    SeasonalWindowAverage,
    WindowAverage,
)

from forecasting.events import (
    ADJUSTMENT_COLUMNS,
    DATE,
    DELTA_GPU_HOURS,
    END,
    KIND,
    NOTE,
    SOURCE,
    START,
    VALUE,
    Event,
    apply_events,
    empty_adjustments,
    infer_period,
    value_columns,
    without_events,
)
from usage import schema as S

Progress = Callable[[str], None]

HOUR_OF_WEEK = "hour_of_week"
"""Monday 00:00-01:00 UTC = 0 ... Sunday 23:00 UTC = 167."""
WEEK = "week"
RATIO = "ratio"
HOURS = "hours"
SAMPLE = "sample"
SCENARIO = "scenario"
MONTH = "month"
BIN = "bin"
LEVEL_GPUS = "level_gpus"
MIN_GPUS = "min_gpus"
MAX_GPUS = "max_gpus"
PROFILE_COLUMNS = (S.TEAM, S.GPU_TYPE, HOUR_OF_WEEK, WEEK, RATIO)
LDC_COLUMNS = (SCENARIO, MONTH, BIN, LEVEL_GPUS, HOURS, MIN_GPUS, MAX_GPUS)

DEFAULT_QUANTILES = (0.05, 0.10, 0.50, 0.90, 0.95)
GRANULARITIES = ("daily", "weekly")
DAYS_PER_YEAR = 365.25
TRENDS = ("estimated", "none")
TREND_METHODS = ("theil_sen", "least_squares")


def quantile_column(q: float) -> str:
    """0.05 -> ``p05``."""
    return f"p{round(q * 100):02d}"


# --- candidates -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LongCandidate:
    """A statsforecast model for daily or weekly series.

    Attributes:
        name: name used in configs and in the ``model`` column.
        min_daily: shortest daily history (days) it can be fitted on.
        min_weekly: shortest weekly history (weeks); ``None`` = not offered for weekly series.
        intervals: statsforecast gives it native prediction intervals (used without CV).
    """

    name: str
    min_daily: int
    min_weekly: int | None
    intervals: bool = True

    def min_history(self, granularity: str) -> int | None:
        return self.min_daily if granularity == "daily" else self.min_weekly

    def build(self, granularity: str):
        daily = granularity == "daily"
        season = 7 if daily else 1
        if self.name == "Naive":
            return Naive()
        if self.name == "SeasonalNaive":
            return SeasonalNaive(season_length=7 if daily else 52, alias=self.name)
        if self.name == "RandomWalkWithDrift":
            return RandomWalkWithDrift(alias=self.name)
        if self.name == "AutoETS":
            return AutoETS(season_length=season, alias=self.name)
        if self.name == "DampedETS":
            # Trend allowed but damped: long horizons flatten instead of extrapolating a line forever.
            return AutoETS(season_length=season, damped=True, alias=self.name)
        if self.name == "AutoTheta":
            return AutoTheta(season_length=season, alias=self.name)
        if self.name == "OptimizedTheta":
            return OptimizedTheta(season_length=season, alias=self.name)
        if self.name == "DynamicOptimizedTheta":
            return DynamicOptimizedTheta(season_length=season, alias=self.name)
        if self.name == "AutoCES":
            return AutoCES(season_length=season, alias=self.name)
        if self.name == "MSTL":
            # STL removes the weekly cycle; a non-seasonal ETS (trend chosen by AICc) forecasts the rest.
            if not daily:
                return AutoETS(model="ZZN", alias=self.name)
            return MSTL(season_length=7, trend_forecaster=AutoETS(model="ZZN"), alias=self.name)
        if self.name == "DampedMSTL":
            if not daily:
                return AutoETS(model="ZZN", damped=True, alias=self.name)
            return MSTL(season_length=7, trend_forecaster=AutoETS(model="ZZN", damped=True), alias=self.name)
        if self.name == "WindowAverage":
            return WindowAverage(window_size=28 if daily else 4, alias=self.name)
        if self.name == "SeasonalWindowAverage":
            return SeasonalWindowAverage(season_length=7, window_size=4, alias=self.name)
        raise ValueError(f"'{self.name}' is not a single statsforecast model")

    def members(self, granularity: str) -> tuple[str, ...]:
        """The models whose point forecasts an ensemble averages (empty for single models)."""
        if self.name != ENSEMBLE:
            return ()
        return ENSEMBLE_DAILY if granularity == "daily" else ENSEMBLE_WEEKLY


ENSEMBLE = "Ensemble"
ENSEMBLE_DAILY = ("SeasonalNaive", "AutoTheta", "DampedMSTL")
ENSEMBLE_WEEKLY = ("Naive", "AutoTheta", "DampedMSTL")
"""Members of the ``Ensemble`` candidate: the equal-weight mean of their point forecasts."""


CANDIDATES: dict[str, LongCandidate] = {c.name: c for c in (
    LongCandidate("Naive", 1, 1),
    LongCandidate("SeasonalNaive", 7, 52),
    LongCandidate("RandomWalkWithDrift", 2, 2),
    LongCandidate("AutoETS", 28, 8),
    LongCandidate("DampedETS", 28, 8),
    LongCandidate("AutoTheta", 28, 8),
    LongCandidate("OptimizedTheta", 28, 8),
    LongCandidate("DynamicOptimizedTheta", 28, 8),
    LongCandidate("AutoCES", 28, 8),
    LongCandidate("MSTL", 28, 8),
    LongCandidate("DampedMSTL", 28, 8),
    LongCandidate("WindowAverage", 28, 4, intervals=False),
    LongCandidate("SeasonalWindowAverage", 28, None, intervals=False),
    LongCandidate(ENSEMBLE, 28, 8, intervals=False),
)}
DEFAULT_DAILY_MODELS = ("Naive", "SeasonalNaive", "SeasonalWindowAverage", "AutoTheta", "DampedMSTL", ENSEMBLE)
DEFAULT_WEEKLY_MODELS = ("Naive", "WindowAverage", "AutoTheta", "DampedMSTL", ENSEMBLE)
"""Default candidates; why ``RandomWalkWithDrift`` and ``AutoETS`` are left out: see the module docstring."""
FALLBACK_MODEL = "Naive"


# --- config and result ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LongTermConfig:
    """Settings of one long-horizon forecast.

    Attributes:
        horizon_days: days to forecast after the last complete observed day (365 = 1 year, 1095 = 3).
        granularity: ``daily`` or ``weekly`` model resolution (the output is daily either way).
        models: candidate names (:data:`CANDIDATES`); ``None`` = the granularity's default set.
        cv_windows: rolling-origin windows used to choose a model and calibrate the quantiles.
        cv_horizon_days: length of each CV window in days (default min(horizon, 91)).
        history_days: fit on at most this many most recent days (``None`` = all).
        growth: org-wide annual growth on top of the estimated trend (0.1 = +10%/year, compounding).
        team_growth: ``(team, rate)`` pairs that replace ``growth`` for those teams.
        profile_weeks: recent weeks the hour-of-week profile is built from.
        quantiles: quantile levels of the output (columns ``pNN``); must include 0.1, 0.5 and 0.9.
        n_jobs: processes statsforecast may use.
        trend: ``estimated`` (default: a growth rate per GPU model and series estimated from the
            history, see :func:`estimate_trend`) or ``none`` (the models' output as is, the forecast
            from before the trend existed).
        trend_window_days: the trend is estimated on at most this many most recent days.
        trend_min_days: shortest history (days) a trend is estimated from; shorter = no trend.
        trend_method: slope of the log weekly means by ``theil_sen`` or ``least_squares``.
        trend_series_weight: weight of a series' own log-rate against its GPU model's (0 = every series
            gets its GPU model's rate).
        trend_calibrate: shift the series' rates so each GPU model's total grows at the GPU model's rate.
        widen_short_history: series too short to cross-validate get a random-walk range from their
            hour-to-hour changes (the hourly engine's short-history rule) instead of their model's own intervals.
        spread_growth: exponent of the quantiles' growth beyond half the CV window (spread x (step / (H/2)) **
            spread_growth; 0.5 = a random walk's, 0 = the CV window's spread at every lead time).
            The last four are tuning knobs; their defaults were chosen on the tuning hold-outs of
            ``benchmarks/longterm_accuracy.py``.
    """

    horizon_days: int = 365
    granularity: str = "daily"
    models: tuple[str, ...] | None = None
    cv_windows: int = 3
    cv_horizon_days: int | None = None
    history_days: int | None = None
    growth: float = 0.0
    team_growth: tuple[tuple[str, float], ...] = ()
    profile_weeks: int = 8
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    n_jobs: int = 1
    trend: str = "estimated"
    trend_window_days: int = 365
    trend_min_days: int = 180
    trend_method: str = "theil_sen"
    trend_series_weight: float = 1.0
    trend_calibrate: bool = True
    spread_growth: float = 0.5
    widen_short_history: bool = True

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ValueError("horizon_days must be at least 1")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
        for name in self.candidate_names:
            if name not in CANDIDATES:
                raise ValueError(f"unknown model '{name}'; choose from {', '.join(CANDIDATES)}")
            if CANDIDATES[name].min_history(self.granularity) is None:
                raise ValueError(f"model '{name}' is not available for {self.granularity} series")
        if self.cv_windows < 0:
            raise ValueError("cv_windows must be >= 0")
        if self.cv_horizon_days is not None and self.cv_horizon_days < 7:
            raise ValueError("cv_horizon_days must be at least 7")
        if self.history_days is not None and self.history_days < 7:
            raise ValueError("history_days must be at least 7")
        for label, rate in (("growth", self.growth), *((f"team_growth[{t}]", r) for t, r in self.team_growth)):
            if not (math.isfinite(rate) and rate > -1):
                raise ValueError(f"{label} must be a number > -1 (an annual rate, 0.1 = +10%/year)")
        if self.profile_weeks < 1:
            raise ValueError("profile_weeks must be at least 1")
        qs = tuple(self.quantiles)
        if any(not 0 < q < 1 for q in qs) or list(qs) != sorted(set(qs)):
            raise ValueError("quantiles must be increasing and between 0 and 1")
        if not {0.1, 0.5, 0.9} <= set(qs):
            raise ValueError("quantiles must include 0.1, 0.5 and 0.9 (the forecast contract)")
        if self.trend not in TRENDS:
            raise ValueError(f"trend must be one of {', '.join(TRENDS)}")
        if self.trend_method not in TREND_METHODS:
            raise ValueError(f"trend_method must be one of {', '.join(TREND_METHODS)}")
        if self.trend_min_days < 28 or self.trend_window_days < self.trend_min_days:
            raise ValueError("trend_min_days must be at least 28 and trend_window_days at least trend_min_days")
        if not (math.isfinite(self.spread_growth) and 0 <= self.spread_growth <= 1):
            raise ValueError("spread_growth must be between 0 and 1 (0.5 = random walk)")
        if not 0 <= self.trend_series_weight <= 1:
            raise ValueError("trend_series_weight must be between 0 and 1")

    @property
    def candidate_names(self) -> tuple[str, ...]:
        if self.models is not None:
            return tuple(self.models)
        return DEFAULT_DAILY_MODELS if self.granularity == "daily" else DEFAULT_WEEKLY_MODELS

    @property
    def period_days(self) -> int:
        return 1 if self.granularity == "daily" else 7

    @property
    def horizon_periods(self) -> int:
        return -(-self.horizon_days // self.period_days)

    @property
    def cv_periods(self) -> int:
        days = self.cv_horizon_days or min(self.horizon_days, 91)
        return max(1, days // self.period_days)

    @property
    def quantile_columns(self) -> tuple[str, ...]:
        return tuple(quantile_column(q) for q in self.quantiles)


@dataclass(frozen=True)
class LongTermForecast:
    """A long-horizon forecast, its model choice, adjustments and hourly profile.

    Attributes:
        daily: ``team, gpu_type, date, mean, p05, p10, p50, p90, p95, model`` (GPUs averaged over the
            UTC day; trend, growth and events applied).
        unadjusted: the same frame straight from the models fitted on the detrended history (before
            trend, growth and events; equal to ``daily`` without any adjustment).
        selection: one row per series: ``team, gpu_type, model, cv_mae, seasonal_naive_mae,
            cv_windows, cv_horizon_days, history_days`` (MAE in GPUs of daily means; NaN without CV).
        cv_scores: CV MAE of every candidate per series (``team, gpu_type, model, cv_mae``).
        adjustments: trend, growth and event adjustments (:data:`forecasting.events.ADJUSTMENT_COLUMNS`).
        profile: hour-of-week ratios (:data:`PROFILE_COLUMNS`), see :func:`build_profile`.
        start: first forecast day (00:00 UTC).
        config: the settings used.
        trend: the estimated trend, one row per series (:data:`TREND_COLUMNS`, see :func:`estimate_trend`);
            every rate 0 with ``trend="none"`` or a history too short.
        history: the daily history the models were fitted on (``team, gpu_type, date, gpus``, GPUs
            averaged over the UTC day, before detrending).
        notes: what was dropped, padded or simplified.
    """

    daily: pd.DataFrame
    unadjusted: pd.DataFrame
    selection: pd.DataFrame
    cv_scores: pd.DataFrame
    adjustments: pd.DataFrame
    profile: pd.DataFrame
    start: pd.Timestamp
    config: LongTermConfig
    trend: pd.DataFrame
    history: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)

    def hourly(self, *, samples: bool = False) -> pd.DataFrame:
        """The daily forecast spread over hours with the profile (see :func:`hourly_from_daily`)."""
        return hourly_from_daily(self.daily, self.profile, samples=samples)

    def load_duration_curve(self, *, bins: int = 24, by: Sequence[str] = (S.GPU_TYPE,),
                            scenarios: Sequence[str] | None = None) -> pd.DataFrame:
        """Monthly load-duration curves of the adjusted forecast (see :func:`load_duration_curve`)."""
        return load_duration_curve(self.daily, self.profile, bins=bins, by=by, scenarios=scenarios)

    def growth_check(self, days: int = 365) -> pd.DataFrame:
        """The history's growth vs the forecast's per GPU model and for the organisation (:func:`growth_check`)."""
        return growth_check(self, days)


# --- history --------------------------------------------------------------------------------------
def last_full_day(timestamps: pd.Series) -> pd.Timestamp:
    """00:00 of the last UTC day whose final hour (23:00) is in the data."""
    last = pd.Timestamp(timestamps.max())
    return (last + pd.Timedelta(hours=1)).floor("D") - pd.Timedelta(days=1)


def to_daily(usage: pd.DataFrame, *, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Hourly usage -> daily means per series.

    Args:
        usage: canonical usage frame (hourly, validated).
        end: last day to keep (default :func:`last_full_day`); later hours are dropped.

    Returns:
        ``team, gpu_type, date, gpus, hours``: ``gpus`` = GPU-hours of the UTC day / hours present
        (= GPU-hours / 24 for complete days), ``hours`` = hours present. Series that stop before ``end``
        are padded with 0-GPU days (``hours`` 0).
    """
    end = last_full_day(usage[S.TIMESTAMP]) if end is None else pd.Timestamp(end)
    day = usage[S.TIMESTAMP].dt.floor("D")
    keep = day <= end
    daily = (usage.loc[keep, [S.TEAM, S.GPU_TYPE, S.GPUS]].assign(**{DATE: day[keep]})
             .groupby([S.TEAM, S.GPU_TYPE, DATE], sort=True)[S.GPUS].agg(["mean", "size"]).reset_index()
             .rename(columns={"mean": S.GPUS, "size": HOURS}))
    last = daily.groupby([S.TEAM, S.GPU_TYPE])[DATE].max()
    pads = [pd.DataFrame({S.TEAM: team, S.GPU_TYPE: gpu, DATE: pd.date_range(ts + pd.Timedelta(days=1), end),
                          S.GPUS: 0.0, HOURS: 0})
            for (team, gpu), ts in last[last < end].items()]
    if pads:
        daily = pd.concat([daily, *pads], ignore_index=True)
    daily[DATE] = daily[DATE].astype("datetime64[ns]")
    return daily.sort_values([S.TEAM, S.GPU_TYPE, DATE], kind="stable").reset_index(drop=True)


# --- profile --------------------------------------------------------------------------------------
def build_profile(usage: pd.DataFrame, weeks: int = 8, *, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Hour-of-week profile of each series from its last ``weeks`` weeks of hourly usage.

    The window is the ``weeks x 7`` complete UTC days ending at ``end`` (default
    :func:`last_full_day`), cut into 7-day blocks (``week`` 0 = oldest). For every hour,
    ``ratio = gpus / mean gpus of the same UTC day`` (1 for every hour of a day with 0 GPUs), so the 24
    ratios of each (series, week, day) average exactly 1. Days a series has no complete data for (late
    starts) take the mean ratio of its other weeks at that hour of the week, or 1.

    Args:
        usage: canonical hourly usage frame.
        weeks: number of recent weeks (each one sample of the within-day shape).
        end: last day of the window.

    Returns:
        ``team, gpu_type, hour_of_week, week, ratio`` (``hour_of_week`` 0 = Monday 00:00 UTC).
    """
    end = last_full_day(usage[S.TIMESTAMP]) if end is None else pd.Timestamp(end)
    first = end - pd.Timedelta(days=7 * weeks - 1)
    ts = usage[S.TIMESTAMP]
    win = usage[(ts >= first) & (ts < end + pd.Timedelta(days=1))]
    keys = usage[[S.TEAM, S.GPU_TYPE]].drop_duplicates().sort_values([S.TEAM, S.GPU_TYPE]).reset_index(drop=True)
    n = len(keys)
    arr = np.full((n, weeks, 7, 24), np.nan)
    if not win.empty:
        sid = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(win[[S.TEAM, S.GPU_TYPE]]))
        t = win[S.TIMESTAMP]
        day_off = ((t.dt.floor("D") - first) // pd.Timedelta(days=1)).to_numpy()
        arr[sid, day_off // 7, t.dt.dayofweek.to_numpy(), t.dt.hour.to_numpy()] = win[S.GPUS].to_numpy(float)
    complete = ~np.isnan(arr).any(axis=3, keepdims=True)  # (n, W, 7, 1)
    day_mean = np.where(complete, np.nanmean(np.where(complete, arr, 0.0), axis=3, keepdims=True), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(day_mean > 0, arr / day_mean, 1.0)
    ratio = np.where(complete, ratio, np.nan)
    have = complete.any(axis=1, keepdims=True)  # (n, 1, 7, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fill = np.where(have, np.nanmean(ratio, axis=1, keepdims=True), 1.0)
    ratio = np.where(np.isnan(ratio), np.broadcast_to(fill, ratio.shape), ratio)
    ratio = ratio / ratio.mean(axis=3, keepdims=True)  # exact normalisation after filling
    how = (np.arange(7)[:, None] * 24 + np.arange(24)[None, :]).ravel()
    flat = ratio.reshape(n, weeks, 168)
    out = pd.DataFrame({
        S.TEAM: np.repeat(keys[S.TEAM].to_numpy(), weeks * 168),
        S.GPU_TYPE: np.repeat(keys[S.GPU_TYPE].to_numpy(), weeks * 168),
        HOUR_OF_WEEK: np.tile(how, n * weeks),
        WEEK: np.tile(np.repeat(np.arange(weeks), 168), n),
        RATIO: flat.ravel(),
    })
    return out.sort_values([S.TEAM, S.GPU_TYPE, WEEK, HOUR_OF_WEEK], kind="stable").reset_index(drop=True)


def profile_summary(profile: pd.DataFrame) -> pd.DataFrame:
    """Per (series, hour of week): mean ratio and its spread over the profile weeks (for charts).

    Returns:
        ``team, gpu_type, hour_of_week, ratio, ratio_min, ratio_p10, ratio_p90, ratio_max``.
    """
    g = profile.groupby([S.TEAM, S.GPU_TYPE, HOUR_OF_WEEK])[RATIO]
    out = g.agg(ratio="mean", ratio_min="min", ratio_max="max")
    out["ratio_p10"] = g.quantile(0.1)
    out["ratio_p90"] = g.quantile(0.9)
    return out[["ratio", "ratio_min", "ratio_p10", "ratio_p90", "ratio_max"]].reset_index()


def _ratio_table(profile: pd.DataFrame | None, keys: pd.DataFrame) -> np.ndarray:
    """Ratios as an array (len(keys), W, 168); series without a profile get a flat profile (all 1)."""
    if profile is None or profile.empty:
        return np.ones((len(keys), 1, 168))
    weeks = int(profile[WEEK].max()) + 1
    pkeys = profile[[S.TEAM, S.GPU_TYPE]].drop_duplicates()
    table = np.ones((len(keys), weeks, 168))
    idx = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(pkeys))
    src = profile.set_index([S.TEAM, S.GPU_TYPE])
    for (team, gpu), i in zip(pkeys.itertuples(index=False), idx, strict=True):
        if i < 0:
            continue
        part = src.loc[(team, gpu)]
        table[i, part[WEEK].to_numpy(), part[HOUR_OF_WEEK].to_numpy()] = part[RATIO].to_numpy(float)
    return table


def _day_of_week_factors(daily: pd.DataFrame, keys: pd.DataFrame, end: pd.Timestamp, weeks: int) -> np.ndarray:
    """(len(keys), 7) factors daily mean / weekly mean over the last ``weeks`` 7-day blocks (mean 1)."""
    first = end - pd.Timedelta(days=7 * weeks - 1)
    win = daily[(daily[DATE] >= first) & (daily[DATE] <= end) & (daily[HOURS] > 0)]
    out = np.ones((len(keys), 7))
    if win.empty:
        return out
    arr = np.full((len(keys), weeks, 7), np.nan)
    sid = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(win[[S.TEAM, S.GPU_TYPE]]))
    off = ((win[DATE] - first) // pd.Timedelta(days=1)).to_numpy()
    arr[sid, off // 7, win[DATE].dt.dayofweek.to_numpy()] = win[S.GPUS].to_numpy(float)
    complete = ~np.isnan(arr).any(axis=2, keepdims=True)
    wk = np.where(complete, np.nanmean(np.where(complete, arr, 0.0), axis=2, keepdims=True), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = np.where(complete & (wk > 0), arr / wk, np.nan)
        f = np.nanmean(f, axis=1)
    f = np.where(np.isnan(f).any(axis=1, keepdims=True), 1.0, f)
    return f / f.mean(axis=1, keepdims=True)


# --- fitting ----------------------------------------------------------------------------------------
def _usable(length: int, names: tuple[str, ...], granularity: str) -> tuple[str, ...]:
    usable = tuple(n for n in names if (CANDIDATES[n].min_history(granularity) or 10**9) <= length)
    return usable or (FALLBACK_MODEL,)


def _cv_plan(length: int, models: tuple[str, ...], granularity: str, windows: int, h: int) -> tuple[int, int]:
    """(windows, window length) that a series of ``length`` periods supports; (0, 0) = no CV."""
    need = max(max(CANDIDATES[m].min_history(granularity) or 1 for m in models), 2)
    min_h = 7 if granularity == "daily" else 2
    while windows > 0:
        hh = min(h, (length - need) // windows)
        if hh >= min_h:
            return windows, hh
        windows -= 1
    return 0, 0


def _conformal(point: np.ndarray, steps: np.ndarray, resid: np.ndarray, quantiles: tuple[float, ...],
               h_cv: int, growth: float = 0.5) -> np.ndarray:
    """(len(point), len(quantiles)) conformal quantiles; the spread grows like ``step ** growth`` beyond
    ``h_cv / 2`` (0.5: like a random walk's)."""
    resid = resid[np.isfinite(resid)]
    if resid.size == 0:
        return np.repeat(point[:, None], len(quantiles), axis=1)
    med = float(np.median(resid))
    spread = np.quantile(resid, quantiles) - med
    ref = h_cv / 2.0  # pooled residuals of steps 1..H stand for the average step, H / 2
    grow = np.power(np.maximum(steps, ref) / ref, growth)
    return point[:, None] + med + grow[:, None] * spread[None, :]


def _native_levels(quantiles: tuple[float, ...]) -> list[int]:
    return sorted({round(abs(1 - 2 * q) * 100) for q in quantiles if abs(q - 0.5) > 1e-9})


def _native(fc: pd.DataFrame, name: str, quantiles: tuple[float, ...]) -> np.ndarray:
    cols = []
    for q in quantiles:
        if abs(q - 0.5) < 1e-9:
            cols.append(fc[name].to_numpy(float))
            continue
        level = round(abs(1 - 2 * q) * 100)
        cols.append(fc[f"{name}-{'lo' if q < 0.5 else 'hi'}-{level}"].to_numpy(float))
    return np.column_stack(cols)


def _fit_predict(long: pd.DataFrame, config: LongTermConfig, say: Progress,
                 notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Choose, fit and predict every series of ``long`` (``unique_id, ds`` int periods, ``y``).

    Returns:
        (forecast ``unique_id, step, model, mean, <quantile columns>``, selection, cv scores).
    """
    gran, qcols = config.granularity, config.quantile_columns
    h = config.horizon_periods
    lengths = long.groupby(S.UID).size()
    groups: dict[tuple[tuple[str, ...], int, int], list[str]] = {}
    for uid, n in lengths.items():
        models = _usable(int(n), config.candidate_names, gran)
        windows, hh = _cv_plan(int(n), models, gran, config.cv_windows, config.cv_periods)
        groups.setdefault((models, windows, hh), []).append(uid)
    fc_parts, sel_parts, score_parts = [], [], []
    for i, ((models, windows, hh), uids) in enumerate(sorted(groups.items(), key=lambda kv: -len(kv[1])), 1):
        say(f"{gran} models: {len(uids)} series, {', '.join(models)}, {windows} CV windows of {hh} "
            f"[{i}/{len(groups)}]")
        part = long[long[S.UID].isin(uids)]
        if windows == 0:
            only = models[0] if len(models) == 1 or FALLBACK_MODEL not in models else FALLBACK_MODEL
            if config.cv_windows > 0:
                notes.append(f"{len(uids)} series too short to cross-validate; used {only} with its own intervals")
            fc_parts.append(_predict(part, only, h, config, None, 0))
            sel_parts.append(pd.DataFrame({S.UID: uids, S.MODEL: only, "cv_mae": np.nan,
                                           "seasonal_naive_mae": np.nan, "cv_windows": 0, "cv_periods": 0}))
            continue
        if models != config.candidate_names:
            dropped = [m for m in config.candidate_names if m not in models]
            notes.append(f"{len(uids)} series too short for {', '.join(dropped)}")
        sf = StatsForecast(models=[CANDIDATES[m].build(gran) for m in _fitted(models, gran)], freq=1,
                           n_jobs=config.n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cv = sf.cross_validation(df=part, h=hh, n_windows=windows, step_size=hh)
        cv = cv.reset_index(drop=True) if S.UID in cv.columns else cv.reset_index()
        if ENSEMBLE in models:
            cv[ENSEMBLE] = cv[list(CANDIDATES[ENSEMBLE].members(gran))].mean(axis=1)
        err = cv[list(models)].sub(cv[S.Y], axis=0).abs()
        err[S.UID] = cv[S.UID].to_numpy()
        mae = err.groupby(S.UID)[list(models)].mean()
        score_parts.append(mae.reset_index().melt(id_vars=S.UID, var_name=S.MODEL, value_name="cv_mae"))
        best = mae.idxmin(axis=1).reindex(uids).fillna(FALLBACK_MODEL)
        sn = mae["SeasonalNaive"] if "SeasonalNaive" in mae.columns else pd.Series(np.nan, index=mae.index)
        sel_parts.append(pd.DataFrame({S.UID: uids, S.MODEL: best.to_numpy(),
                                       "cv_mae": [mae.loc[u, best[u]] if u in mae.index else np.nan for u in uids],
                                       "seasonal_naive_mae": sn.reindex(uids).to_numpy(),
                                       "cv_windows": windows, "cv_periods": hh}))
        chosen_pred = np.choose(pd.Categorical(cv[S.UID].map(best), categories=list(models)).codes,
                                [cv[m].to_numpy(float) for m in models])
        resid = pd.Series(cv[S.Y].to_numpy(float) - chosen_pred, index=cv[S.UID].to_numpy())
        for model in dict.fromkeys(best.to_numpy()):
            ids = best.index[best == model]
            fc_parts.append(_predict(part[part[S.UID].isin(ids)], model, h, config, resid, hh))
    fc = pd.concat(fc_parts, ignore_index=True)
    values = fc[list(qcols)].to_numpy(float)
    fc[list(qcols)] = np.clip(np.sort(np.nan_to_num(values, nan=0.0), axis=1), 0.0, None)
    fc[S.MEAN] = np.clip(np.nan_to_num(fc[S.MEAN].to_numpy(float), nan=0.0), 0.0, None)
    scores = (pd.concat(score_parts, ignore_index=True) if score_parts
              else pd.DataFrame(columns=[S.UID, S.MODEL, "cv_mae"]))
    return fc, pd.concat(sel_parts, ignore_index=True), scores


def _walk_uncrossvalidated(fc: pd.DataFrame, selection: pd.DataFrame, usage: pd.DataFrame, config: LongTermConfig,
                           notes: list[str]) -> pd.DataFrame:
    """Series too short to cross-validate get the engine's short-history range instead of their model's own
    intervals (zero-width from a few days): around the point forecast, a normal band of standard deviation
    ``sqrt(floor^2 + rate x hours ahead)`` GPUs, with ``floor`` the history's hourly standard deviation and
    ``rate`` the random walk of :func:`forecasting.paths.walk_rate` (from the mean absolute hour-to-hour change
    over the last week), as :mod:`forecasting.engine` widens short hourly forecasts. Never narrower further ahead."""
    from scipy import stats

    from forecasting.engine import noise_scale
    from forecasting.paths import spread_floor, walk_rate

    short = selection.loc[selection["cv_windows"] == 0, S.UID]
    if short.empty:
        return fc
    hourly = S.to_long(usage)
    hourly = hourly[hourly[S.UID].isin(set(short))]
    noise = noise_scale(hourly).reindex(short).to_numpy(float)
    floor = spread_floor(hourly[S.Y].to_numpy(float), hourly[S.UID].to_numpy()).reindex(short).fillna(0.0)
    rate = dict(zip(short, walk_rate(noise), strict=True))
    base = dict(zip(short, floor.to_numpy(float), strict=True))
    rows = fc[S.UID].isin(set(short)).to_numpy()
    uid = fc.loc[rows, S.UID].to_numpy()
    hours_ahead = fc.loc[rows, "step"].to_numpy(float) * 24.0 * config.period_days
    sd = np.sqrt(np.array([base[u] for u in uid]) ** 2 + np.array([rate[u] for u in uid]) * hours_ahead)
    z = stats.norm.ppf(np.asarray(config.quantiles, dtype=float))
    point = fc.loc[rows, S.MEAN].to_numpy(float)
    fc.loc[rows, list(config.quantile_columns)] = np.clip(point[:, None] + sd[:, None] * z[None, :], 0.0, None)
    flat = sorted(S.series_label(str(u)) for u in short if rate[u] == 0 and base[u] == 0)
    notes.append(f"{len(short)} series too short to cross-validate: their range is a random walk from their "
                 "hour-to-hour changes, growing with lead time (as the hourly engine widens short histories)"
                 + (f"; no range could be estimated for {', '.join(flat[:5])} (no change in their history)"
                    if flat else ""))
    return fc


def _fitted(models: Sequence[str], granularity: str) -> list[str]:
    """The statsforecast models to fit for ``models``: ensembles are replaced by their members."""
    out: list[str] = []
    for m in models:
        for name in CANDIDATES[m].members(granularity) or (m,):
            if name not in out:
                out.append(name)
    return out


def _predict(part: pd.DataFrame, model: str, h: int, config: LongTermConfig, resid: pd.Series | None,
             h_cv: int) -> pd.DataFrame:
    """Forecast ``part`` with one model; conformal quantiles from ``resid`` (per uid) or native ones."""
    qs, qcols = tuple(config.quantiles), config.quantile_columns
    cand = CANDIDATES[model]
    fitted = _fitted((model,), config.granularity)
    sf = StatsForecast(models=[CANDIDATES[m].build(config.granularity) for m in fitted], freq=1,
                       n_jobs=config.n_jobs)
    native = resid is None and cand.intervals
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=part, h=h, level=_native_levels(qs) if native else None)
    fc = fc.reset_index(drop=True) if S.UID in fc.columns else fc.reset_index()
    steps = (fc.groupby(S.UID).cumcount() + 1).to_numpy()
    point = fc[fitted].to_numpy(float).mean(axis=1)
    if native:
        quant = _native(fc, model, qs)
    elif resid is None:
        quant = np.repeat(point[:, None], len(qs), axis=1)
    else:
        quant = np.empty((len(fc), len(qs)))
        uid_arr = fc[S.UID].to_numpy()
        for uid in pd.unique(uid_arr):
            rows = uid_arr == uid
            r = resid.loc[[uid]].to_numpy(float) if uid in resid.index else np.array([])
            quant[rows] = _conformal(point[rows], steps[rows], r, qs, h_cv, config.spread_growth)
    out = pd.DataFrame({S.UID: fc[S.UID].to_numpy(), "step": steps, S.MODEL: model, S.MEAN: point})
    for j, col in enumerate(qcols):
        out[col] = quant[:, j]
    return out


# --- growth ------------------------------------------------------------------------------------------
def apply_growth(frame: pd.DataFrame, growth: float = 0.0, team_growth: Sequence[tuple[str, float]] = (), *,
                 start: pd.Timestamp | None = None, time_col: str | None = None,
                 period: pd.Timedelta | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Multiply each series by ``(1 + rate) ** ((t - start) / 365.25 days)``.

    Works on the daily frame and on the hourly forecast contract.

    Args:
        frame: forecast frame (``mean`` and ``pNN`` columns are scaled).
        growth: org-wide annual rate (0.1 = +10%/year, compounding).
        team_growth: ``(team, rate)`` pairs that replace ``growth`` for those teams.
        start: instant with factor 1 (default: the frame's first time).
        time_col: ``date`` or ``timestamp`` (default: whichever the frame has).
        period: length of one row, for ``delta_gpu_hours`` (default: inferred).

    Returns:
        ``(adjusted frame, adjustments)`` with one ``growth`` adjustment per series whose rate is not 0.
    """
    time_col = time_col or (DATE if DATE in frame.columns else S.TIMESTAMP)
    out = frame.copy()
    if out.empty:
        return out, empty_adjustments()
    t = pd.to_datetime(out[time_col])
    start = pd.Timestamp(start) if start is not None else t.min()
    period = period if period is not None else infer_period(t, time_col)
    per_team = dict(team_growth)
    rate = out[S.TEAM].map(per_team).fillna(growth).to_numpy(float)
    years = ((t - start) / pd.Timedelta(days=DAYS_PER_YEAR)).to_numpy(float)
    factor = np.power(1.0 + rate, years)
    cols = value_columns(out, None)
    before = out[S.MEAN].to_numpy(float).copy()
    out[cols] = out[cols].to_numpy(float) * factor[:, None]
    delta = (out[S.MEAN].to_numpy(float) - before) * (period / pd.Timedelta(hours=1))
    rows = []
    end = t.max() + period
    info = pd.DataFrame({S.TEAM: out[S.TEAM], S.GPU_TYPE: out[S.GPU_TYPE], "rate": rate, "delta": delta})
    for (team, gpu), g in info.groupby([S.TEAM, S.GPU_TYPE], sort=True):
        r = float(g["rate"].iloc[0])
        if r == 0:
            continue
        src = f"team_growth[{team}]" if team in per_team else "growth (org-wide)"
        rows.append({S.TEAM: team, S.GPU_TYPE: gpu, START: start, END: end, KIND: "growth", VALUE: r,
                     DELTA_GPU_HOURS: float(g["delta"].sum()), SOURCE: src,
                     NOTE: f"{r:+.1%}/year compounding from {start:%Y-%m-%d}, on top of the model's trend"})
    adj = pd.DataFrame(rows, columns=list(ADJUSTMENT_COLUMNS)) if rows else empty_adjustments()
    return out, adj


# --- trend --------------------------------------------------------------------------------------------
RATE = "rate"
SERIES_RATE = "series_rate"
GPU_TYPE_RATE = "gpu_type_rate"
GPU_TYPE_RATE_SE = "gpu_type_rate_se"
WINDOW_START = "window_start"
WINDOW_END = "window_end"
FIT_RATE = "fit_rate"
TREND_COLUMNS = (S.TEAM, S.GPU_TYPE, RATE, FIT_RATE, SERIES_RATE, GPU_TYPE_RATE, GPU_TYPE_RATE_SE, WINDOW_START,
                 WINDOW_END)
"""Columns of :attr:`LongTermForecast.trend`: annual rates (0.3 = +30%/year, compounding): ``rate`` put on
the forecast, ``fit_rate`` the history was detrended with, ``series_rate`` the series' own estimate (NaN
when it has none), ``gpu_type_rate`` its GPU model's; ``gpu_type_rate_se`` is the standard error of the GPU
model's log-rate per year; the window holds the days the GPU model's rate was estimated on (from its first
day of usage in the last ``trend_window_days``; NaT: no trend)."""
LEVEL_DAYS = 28
"""Days of a series' recent level used to weight its rate when the GPU model's total is calibrated."""


def annual_growth(values: Sequence[float] | np.ndarray) -> float:
    """Growth of consecutive daily values as an annual rate: THE definition used to check the trend.

    ``exp(365.25 x b) - 1`` where ``b`` is the least-squares slope of ``ln(value)`` on the day number
    (values in GPUs averaged over the day, i.e. GPU-hours / 24; days <= 0 or NaN are left out). The same
    function measures the last 365 days of history and the first 365 days of a forecast
    (:func:`growth_check`).

    Returns:
        The annual rate (0.3 = +30%/year), NaN with fewer than 2 usable days.
    """
    v = np.asarray(values, dtype=float)
    day = np.arange(v.size, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.expm1(np.polyfit(day[ok], np.log(v[ok]), 1)[0] * DAYS_PER_YEAR))


def _log_rate(values: np.ndarray, method: str) -> tuple[float, float]:
    """(log-rate per year, its standard error) of consecutive daily values ending on the anchor day.

    The values are averaged over 7-day blocks counted back from the last day (an incomplete oldest block
    is dropped); the slope of ``ln(weekly mean)`` on time is fitted by Theil-Sen (robust to a few weeks of
    large jobs) or least squares. NaN without 8 blocks or with a block of 0 GPUs (intermittent series).
    """
    n = values.size // 7
    if n < 8:
        return float("nan"), float("nan")
    weekly = values[values.size - 7 * n:].reshape(n, 7)
    if np.isnan(weekly).any():
        return float("nan"), float("nan")
    wk = weekly.mean(axis=1)
    if (wk <= 0).any():
        return float("nan"), float("nan")
    x = 7.0 * np.arange(n, dtype=float) / DAYS_PER_YEAR  # years
    y = np.log(wk)
    if method == "theil_sen":
        slope, _, lo, hi = stats.theilslopes(y, x, alpha=0.95)
        return float(slope), float((hi - lo) / (2 * 1.96))
    coef, cov = np.polyfit(x, y, 1, cov=True)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))


def estimate_trend(history: pd.DataFrame, config: LongTermConfig, *,
                   end: pd.Timestamp | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Annual growth rate per series, estimated per GPU model from the recent history.

    1. Window: the last ``min(trend_window_days, history length)`` days up to ``end``; a history shorter
       than ``trend_min_days`` gets no trend (every rate 0, said in the notes).
    2. GPU model: its teams' daily GPUs are summed (a team that starts late adds 0 before its start) and
       :func:`_log_rate` fits the log-rate of the weekly means from its first day of usage in the window,
       if that leaves ``trend_min_days`` and no week without usage (else no trend for it, in the notes).
    3. Series: a series present for ``trend_min_days`` of the window with usage in every week gets its
       own rate the same way; its log-rate is ``w x own + (1 - w) x GPU model's``
       (``w = trend_series_weight``); the others (young or intermittent series) take the GPU model's.
       This is ``fit_rate``, the rate the series' history is detrended with before the models are fitted.
    4. With ``trend_calibrate`` the series' log-rates of each GPU model are shifted by one constant so that
       the model's total, with each series at its level of the last :data:`LEVEL_DAYS` days, grows by the
       GPU model's rate over a year. This is ``rate``, the one put on the forecast.

    Args:
        history: daily history ``team, gpu_type, date, gpus`` (as from :func:`to_daily`).
        config: the forecast settings (``trend_*``).
        end: the anchor (last history day); default the last date.

    Returns:
        ``(trend frame with`` :data:`TREND_COLUMNS` ``, notes)``.
    """
    keys = history[[S.TEAM, S.GPU_TYPE]].drop_duplicates().sort_values([S.TEAM, S.GPU_TYPE]).reset_index(drop=True)
    end = pd.Timestamp(history[DATE].max() if end is None else end)
    span = int((end - pd.Timestamp(history[DATE].min())) // pd.Timedelta(days=1)) + 1
    out = keys.assign(**{RATE: 0.0, FIT_RATE: 0.0, SERIES_RATE: np.nan, GPU_TYPE_RATE: 0.0, GPU_TYPE_RATE_SE: np.nan,
                         WINDOW_START: pd.NaT, WINDOW_END: pd.NaT})
    notes: list[str] = []
    if config.trend == "none":
        return out, notes
    if span < config.trend_min_days:
        notes.append(f"no trend: {span} days of history, a trend needs at least {config.trend_min_days}")
        return out, notes
    days = min(config.trend_window_days, span)
    first = end - pd.Timedelta(days=days - 1)
    win = history[(history[DATE] >= first) & (history[DATE] <= end)]
    sid = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(win[[S.TEAM, S.GPU_TYPE]]))
    grid = np.full((len(keys), days), np.nan)
    grid[sid, ((win[DATE] - first) // pd.Timedelta(days=1)).to_numpy()] = win[S.GPUS].to_numpy(float)
    level = np.nan_to_num(grid[:, -LEVEL_DAYS:]).mean(axis=1)
    own = np.full(len(keys), np.nan)
    for i in range(len(keys)):
        row = grid[i]
        present = np.flatnonzero(~np.isnan(row))
        if present.size and days - present[0] >= config.trend_min_days:
            own[i] = _log_rate(row[present[0]:], config.trend_method)[0]
    rho = np.zeros(len(keys))
    fit = np.zeros(len(keys))
    w = config.trend_series_weight
    short: list[str] = []
    for gpu, idx in keys.groupby(S.GPU_TYPE).indices.items():
        total = np.nansum(grid[idx], axis=0)
        used = np.flatnonzero(total > 0)
        g_rho, g_se = (_log_rate(total[used[0]:], config.trend_method) if used.size
                       and days - used[0] >= config.trend_min_days else (float("nan"), float("nan")))
        if not np.isfinite(g_rho):
            short.append(str(gpu))
            continue
        r = np.where(np.isfinite(own[idx]), w * own[idx] + (1 - w) * g_rho, g_rho)
        fit[idx] = r
        if config.trend_calibrate and level[idx].sum() > 0:
            r = r + (np.log(level[idx].sum()) + g_rho - np.log((level[idx] * np.exp(r)).sum()))
        rho[idx] = r
        out.loc[idx, GPU_TYPE_RATE] = float(np.expm1(g_rho))
        out.loc[idx, GPU_TYPE_RATE_SE] = g_se
        out.loc[idx, WINDOW_START] = first + pd.Timedelta(days=int(used[0]))
        out.loc[idx, WINDOW_END] = end
    if short:
        notes.append(f"no trend for {', '.join(short)}: less than {config.trend_min_days} days of usage "
                     "(or weeks without any)")
    out[RATE] = np.expm1(rho)
    out[FIT_RATE] = np.expm1(fit)
    out[SERIES_RATE] = np.expm1(own)
    return out, notes


def _trend_factor(frame: pd.DataFrame, trend: pd.DataFrame, anchor: pd.Timestamp, column: str = RATE) -> np.ndarray:
    """Per row: ``(1 + rate of its series) ** ((date - anchor) / 365.25 days)`` (1 for unknown series)."""
    rate = frame[[S.TEAM, S.GPU_TYPE]].merge(trend[[S.TEAM, S.GPU_TYPE, column]], how="left",
                                              on=[S.TEAM, S.GPU_TYPE])[column].fillna(0.0).to_numpy(float)
    years = ((pd.to_datetime(frame[DATE]) - anchor) / pd.Timedelta(days=DAYS_PER_YEAR)).to_numpy(float)
    return np.power(1.0 + rate, years)


def apply_trend(frame: pd.DataFrame, trend: pd.DataFrame, anchor: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Re-trend a (detrended) daily forecast: every value of a series times ``(1 + rate) ** years``.

    Args:
        frame: daily forecast frame (``mean`` and ``pNN`` columns are scaled).
        trend: :attr:`LongTermForecast.trend` (``team, gpu_type, rate``).
        anchor: the last history day (factor 1); ``years = (date - anchor) / 365.25 days``.

    Returns:
        ``(trended frame, adjustments)`` with one ``trend`` adjustment per series whose rate is not 0.
    """
    out = frame.copy()
    if out.empty:
        return out, empty_adjustments()
    factor = _trend_factor(out, trend, anchor)
    cols = value_columns(out, None)
    before = out[S.MEAN].to_numpy(float).copy()
    out[cols] = out[cols].to_numpy(float) * factor[:, None]
    delta = pd.Series((out[S.MEAN].to_numpy(float) - before) * 24.0)  # GPUs over a day -> GPU-hours
    delta = delta.groupby([out[S.TEAM].to_numpy(), out[S.GPU_TYPE].to_numpy()]).sum()
    start = pd.Timestamp(out[DATE].min())
    end = pd.Timestamp(out[DATE].max()) + pd.Timedelta(days=1)
    rows = []
    for t in trend[trend[RATE] != 0].itertuples(index=False):
        team, gpu, rate = getattr(t, S.TEAM), getattr(t, S.GPU_TYPE), float(getattr(t, RATE))
        if (team, gpu) not in delta.index:
            continue
        own = getattr(t, SERIES_RATE)
        how = (f"GPU model {getattr(t, GPU_TYPE_RATE):+.1%}" +
               ("" if not np.isfinite(own) else f", series {own:+.1%}"))
        rows.append({S.TEAM: team, S.GPU_TYPE: gpu, START: start, END: end, KIND: "trend", VALUE: rate,
                     DELTA_GPU_HOURS: float(delta[(team, gpu)]), SOURCE: "trend (estimated)",
                     NOTE: f"{rate:+.1%}/year compounding from {anchor:%Y-%m-%d}, estimated on "
                           f"{getattr(t, WINDOW_START):%Y-%m-%d}..{getattr(t, WINDOW_END):%Y-%m-%d} ({how})"})
    adj = pd.DataFrame(rows, columns=list(ADJUSTMENT_COLUMNS)) if rows else empty_adjustments()
    return out, adj


def widen_for_trend(frame: pd.DataFrame, trend: pd.DataFrame, anchor: pd.Timestamp,
                    quantiles: Sequence[float]) -> pd.DataFrame:
    """Add the uncertainty of the estimated rate to the quantiles of a trended daily forecast.

    The GPU model's log-rate has standard error ``se`` (:data:`GPU_TYPE_RATE_SE`), so ``y`` years ahead the
    trend factor is uncertain by ``sd = se x y`` on the log scale. Each quantile's distance from ``p50``
    is combined in quadrature with ``mean x |exp(z_q x sd) - 1|`` (``z_q`` the normal quantile):
    ``p_q = p50 + sign(z_q) x sqrt(d_q^2 + t_q^2)``. ``p50`` and ``mean`` are unchanged; quantiles are
    sorted and clipped at 0 afterwards.
    """
    out = frame.copy()
    qs = [q for q in quantiles if abs(q - 0.5) > 1e-9]
    if out.empty or not qs or 0.5 not in quantiles:
        return out
    se = out[[S.TEAM, S.GPU_TYPE]].merge(trend[[S.TEAM, S.GPU_TYPE, GPU_TYPE_RATE_SE]], how="left",
                                          on=[S.TEAM, S.GPU_TYPE])[GPU_TYPE_RATE_SE].fillna(0.0).to_numpy(float)
    years = np.maximum(((pd.to_datetime(out[DATE]) - anchor) / pd.Timedelta(days=DAYS_PER_YEAR)).to_numpy(float), 0)
    sd = se * years
    if not (sd > 0).any():
        return out
    mean, p50 = out[S.MEAN].to_numpy(float), out[quantile_column(0.5)].to_numpy(float)
    cols = [quantile_column(q) for q in quantiles]
    values = out[cols].to_numpy(float)
    for j, q in enumerate(quantiles):
        if abs(q - 0.5) < 1e-9:
            continue
        z = float(stats.norm.ppf(q))
        extra = mean * np.abs(np.expm1(z * sd))
        values[:, j] = p50 + np.sign(z) * np.hypot(values[:, j] - p50, extra)
    out[cols] = np.clip(np.sort(values, axis=1), 0.0, None)
    return out


def growth_check(result: LongTermForecast, days: int = 365) -> pd.DataFrame:
    """The history's growth vs the forecast's, for the organisation and each GPU model.

    Both sides use :func:`annual_growth` on daily totals (GPUs averaged over the day, summed over teams):
    the last ``days`` days of :attr:`LongTermForecast.history` and the first ``days`` days of
    :attr:`LongTermForecast.daily` (as delivered: trend, growth and events applied).

    ``mix_growth`` is what the history implies for the forecast when each GPU model keeps its own history
    growth: for a GPU model it is its ``history_growth``; for the organisation it is the growth of
    ``sum over GPU models of level x (1 + history_growth) ** years`` over the forecast days (``level`` = the
    model's mean of the last 28 history days; a GPU model without a history growth counts as 0). It differs
    from the organisation's own history growth when the GPU models grow at different rates: the faster
    ones gain share, so the total accelerates.

    A side shorter than the config's ``trend_min_days`` (days with usage / forecast days) is not annualised
    (NaN): a month's growth raised to a yearly rate means nothing.

    Returns:
        ``level`` (``organisation`` or the GPU model), ``history_growth``, ``forecast_growth``, ``mix_growth``,
        ``difference_pp`` (forecast - history, percentage points), ``mix_difference_pp`` (forecast - mix),
        ``history_days`` (days with usage), ``forecast_days``.
    """
    min_days = result.config.trend_min_days

    def growth(values: pd.Series) -> float:
        return annual_growth(values.to_numpy()) if int((values > 0).sum()) >= min_days else float("nan")

    hist, fc = result.history, result.daily
    end = pd.Timestamp(hist[DATE].max())
    grid = pd.date_range(end - pd.Timedelta(days=days - 1), end)
    hist = hist[hist[DATE] >= grid[0]]
    fc = fc[fc[DATE] < result.start + pd.Timedelta(days=days)]
    gpus = sorted(set(hist[S.GPU_TYPE]) | set(fc[S.GPU_TYPE]))
    h_tot = hist.pivot_table(index=DATE, columns=S.GPU_TYPE, values=S.GPUS, aggfunc="sum").reindex(
        index=grid, columns=gpus).fillna(0.0)
    f_tot = fc.pivot_table(index=DATE, columns=S.GPU_TYPE, values=S.MEAN, aggfunc="sum").reindex(
        columns=gpus).fillna(0.0)
    h_growth = {g: growth(h_tot[g]) for g in gpus}
    level = h_tot.iloc[-LEVEL_DAYS:].mean()
    years = ((f_tot.index - end) / pd.Timedelta(days=DAYS_PER_YEAR)).to_numpy(float)
    implied = pd.Series(sum(level[g] * np.power(1.0 + np.nan_to_num(h_growth[g]), years) for g in gpus),
                        index=f_tot.index)
    rows = []
    for name, h, f, mix in [("organisation", h_tot.sum(axis=1), f_tot.sum(axis=1), growth(implied)),
                            *((g, h_tot[g], f_tot[g], h_growth[g]) for g in gpus)]:
        hg, fg = growth(h), growth(f)
        rows.append({"level": name, "history_growth": hg, "forecast_growth": fg, "mix_growth": mix,
                     "difference_pp": 100 * (fg - hg), "mix_difference_pp": 100 * (fg - mix),
                     "history_days": int((h > 0).sum()), "forecast_days": len(f)})
    return pd.DataFrame(rows)


# --- the long-term forecast ----------------------------------------------------------------------------
def forecast_longterm(usage: pd.DataFrame, config: LongTermConfig | None = None, *,
                      events: Sequence[Event] | None = None, progress: Progress | None = None) -> LongTermForecast:
    """Forecast every (team, gpu_type) series 12-36 months ahead at daily resolution.

    Args:
        usage: canonical hourly usage frame (see ``usage.schema.validate_usage``).
        config: settings; default one year ahead with daily models, the estimated trend and no growth.
        events: planned events (:func:`forecasting.events.load_events`) applied after trend and growth; the
            models are fitted on the usage without what they already did (:func:`forecasting.events.without_events`:
            a run or wind-down in progress is not counted twice).
        progress: optional callback receiving one line per step.

    Returns:
        A :class:`LongTermForecast` whose daily frame starts the day after the last complete UTC day.

    Raises:
        UsageError: the usage holds no complete UTC day.
    """
    config = config or LongTermConfig()
    say = progress or (lambda _msg: None)
    notes: list[str] = []
    usage = without_events(usage, events or ())
    end = last_full_day(usage[S.TIMESTAMP])
    if usage[S.TIMESTAMP].max() > end + pd.Timedelta(hours=23):
        notes.append(f"dropped the incomplete last day {end + pd.Timedelta(days=1):%Y-%m-%d}")
    daily = to_daily(usage, end=end)
    if daily.empty:
        raise S.UsageError(str(usage.attrs.get("sample", "usage")), "no complete UTC day of usage",
                           fix="a long-term forecast needs at least one full day (24 hours) of history")
    ended = int(daily.groupby([S.TEAM, S.GPU_TYPE])[HOURS].apply(lambda s: s.iloc[-1] == 0).sum())
    if ended:
        notes.append(f"{ended} series ended before the last day of the data; padded with 0 GPUs to the end")
    if config.history_days is not None:
        daily = daily[daily[DATE] > end - pd.Timedelta(days=config.history_days)]
    keys = daily[[S.TEAM, S.GPU_TYPE]].drop_duplicates().reset_index(drop=True)
    say(f"hour-of-week profile from the last {config.profile_weeks} weeks")
    profile = build_profile(usage, config.profile_weeks, end=end)

    history = daily[[S.TEAM, S.GPU_TYPE, DATE, S.GPUS]].reset_index(drop=True)
    trend, trend_notes = estimate_trend(history, config, end=end)
    notes.extend(trend_notes)
    if config.trend != "none":
        say("trend per GPU model: " + ", ".join(
            f"{g} {r:+.1%}/year" for g, r in trend.groupby(S.GPU_TYPE)[GPU_TYPE_RATE].first().items()))
    # The models see the detrended history (level of the last day kept), so a model with its own drift
    # does not add to the estimated trend; the trend is put back on the forecast below.
    y = daily[S.GPUS].to_numpy(float) / _trend_factor(daily, trend, end, FIT_RATE)
    uid = S.series_id(daily[S.TEAM], daily[S.GPU_TYPE])
    offset = ((end - daily[DATE]) // pd.Timedelta(days=1)).to_numpy()  # 0 = last day
    if config.granularity == "daily":
        long = pd.DataFrame({S.UID: uid.to_numpy(), S.DS: -offset, S.Y: y})
    else:
        block = offset // 7
        long = (pd.DataFrame({S.UID: uid.to_numpy(), S.DS: -block, S.Y: y})
                .groupby([S.UID, S.DS], as_index=False)[S.Y].mean())
    long = long.sort_values([S.UID, S.DS], kind="stable").reset_index(drop=True)
    fc, selection, scores = _fit_predict(long, config, say, notes)
    if config.widen_short_history:
        fc = _walk_uncrossvalidated(fc, selection, usage, config, notes)

    # periods -> days
    qcols = list(config.quantile_columns)
    vcols = [S.MEAN, *qcols]
    start = end + pd.Timedelta(days=1)
    if config.granularity == "daily":
        fc[DATE] = start + pd.to_timedelta(fc["step"] - 1, unit="D")
    else:
        fc = fc.loc[fc.index.repeat(7)].reset_index(drop=True)
        fc[DATE] = start + pd.to_timedelta((fc["step"] - 1) * 7 + fc.groupby([S.UID, "step"]).cumcount(), unit="D")
        dow_f = _day_of_week_factors(daily, keys, end, config.profile_weeks)
        team, gpu = S.split_uid(fc[S.UID])
        sid = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_arrays([team, gpu]))
        f = dow_f[sid, fc[DATE].dt.dayofweek.to_numpy()]
        fc[vcols] = fc[vcols].to_numpy(float) * f[:, None]
    fc = fc[fc[DATE] < start + pd.Timedelta(days=config.horizon_days)]
    team, gpu = S.split_uid(fc[S.UID])
    unadjusted = pd.DataFrame({S.TEAM: team.to_numpy(), S.GPU_TYPE: gpu.to_numpy(),
                               DATE: fc[DATE].to_numpy(dtype="datetime64[ns]")})
    for col in vcols:
        unadjusted[col] = fc[col].to_numpy(float)
    unadjusted[S.MODEL] = fc[S.MODEL].to_numpy()
    unadjusted = unadjusted.sort_values([S.TEAM, S.GPU_TYPE, DATE], kind="stable").reset_index(drop=True)

    trended, adj_trend = apply_trend(unadjusted, trend, end)
    trended = widen_for_trend(trended, trend, end, config.quantiles)
    adjusted, adj_growth = apply_growth(trended, config.growth, config.team_growth, start=start, time_col=DATE,
                                        period=pd.Timedelta(days=1))
    adj_parts = [adj_trend, adj_growth]
    if events:
        say(f"applying {len(events)} planned events")
        adjusted, adj_events = apply_events(adjusted, events, time_col=DATE, quantile_cols=qcols,
                                            period=pd.Timedelta(days=1))
        adj_parts.append(adj_events)
    adjustments = pd.concat([a for a in adj_parts if not a.empty], ignore_index=True) if any(
        not a.empty for a in adj_parts) else empty_adjustments()

    team, gpu = S.split_uid(selection[S.UID])
    hist = daily.groupby([S.TEAM, S.GPU_TYPE]).size()
    sel = pd.DataFrame({S.TEAM: team.to_numpy(), S.GPU_TYPE: gpu.to_numpy(), S.MODEL: selection[S.MODEL].to_numpy(),
                        "cv_mae": selection["cv_mae"].to_numpy(float),
                        "seasonal_naive_mae": selection["seasonal_naive_mae"].to_numpy(float),
                        "cv_windows": selection["cv_windows"].to_numpy(int),
                        "cv_horizon_days": selection["cv_periods"].to_numpy(int) * config.period_days})
    sel["history_days"] = [int(hist.get((t, g), 0)) for t, g in zip(sel[S.TEAM], sel[S.GPU_TYPE], strict=True)]
    sel = sel.sort_values([S.TEAM, S.GPU_TYPE]).reset_index(drop=True)
    if scores.empty:
        cv_scores = pd.DataFrame(columns=[S.TEAM, S.GPU_TYPE, S.MODEL, "cv_mae"])
    else:
        st, sg = S.split_uid(scores[S.UID])
        cv_scores = pd.DataFrame({S.TEAM: st.to_numpy(), S.GPU_TYPE: sg.to_numpy(),
                                  S.MODEL: scores[S.MODEL].to_numpy(), "cv_mae": scores["cv_mae"].to_numpy(float)})
    return LongTermForecast(daily=adjusted, unadjusted=unadjusted, selection=sel, cv_scores=cv_scores,
                            adjustments=adjustments, profile=profile, start=start, config=config, trend=trend,
                            history=history, notes=tuple(notes))


# --- hourly view and load-duration curves ---------------------------------------------------------------
def _scenario_columns(frame: pd.DataFrame, scenarios: Sequence[str] | None) -> list[str]:
    if scenarios is None:
        scenarios = [c for c in frame.columns if len(c) == 3 and c[0] == "p" and c[1:].isdigit()] + [S.MEAN]
    missing = [c for c in scenarios if c not in frame.columns]
    if missing:
        raise ValueError(f"frame has no column '{missing[0]}'")
    return list(scenarios)


def hourly_from_daily(daily: pd.DataFrame, profile: pd.DataFrame | None, *, samples: bool = False,
                      columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Rebuild hourly demand from a daily frame and an hour-of-week profile.

    Each daily value is spread over its 24 hours as ``daily x ratio`` with the series' mean ratio at that
    hour of the week (or, with ``samples``, once per profile week). Series without a profile are flat.

    Args:
        daily: ``team, gpu_type, date`` + value columns (GPUs averaged over the day).
        profile: from :func:`build_profile` (``None`` = flat).
        samples: return one row per (hour, profile week) with ``sample`` and ``hours`` = 1/W (the
            weight of the row in hours) instead of one row per hour with the mean ratio.
        columns: value columns to spread (default ``mean`` and every ``pNN`` column).

    Returns:
        The hourly forecast contract ``team, gpu_type, timestamp, mean, pNN..., model`` (GPUs per hour;
        the GPU-hours of every day equal ``daily x 24``), plus ``sample, hours`` with ``samples``.
    """
    cols = _scenario_columns(daily, columns)
    keys = daily[[S.TEAM, S.GPU_TYPE]].drop_duplicates().reset_index(drop=True)
    table = _ratio_table(profile, keys)  # (n, W, 168)
    if not samples:
        table = table.mean(axis=1, keepdims=True)
    weeks = table.shape[1]
    sid = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(daily[[S.TEAM, S.GPU_TYPE]]))
    dates = pd.to_datetime(daily[DATE]).to_numpy(dtype="datetime64[ns]")
    n = len(daily)
    # layout: for each daily row, for each week sample, 24 hours
    rep = np.repeat(np.arange(n), 24 * weeks)
    week = np.tile(np.repeat(np.arange(weeks), 24), n)
    hour = np.tile(np.arange(24), n * weeks)
    dow = pd.DatetimeIndex(dates).dayofweek.to_numpy()
    how = dow[rep] * 24 + hour
    ratio = table[sid[rep], week, how]
    out = pd.DataFrame({S.TEAM: daily[S.TEAM].to_numpy()[rep], S.GPU_TYPE: daily[S.GPU_TYPE].to_numpy()[rep],
                        S.TIMESTAMP: dates[rep] + hour.astype("timedelta64[h]").astype("timedelta64[ns]")})
    for col in cols:
        out[col] = daily[col].to_numpy(float)[rep] * ratio
    if S.MODEL in daily.columns:
        out[S.MODEL] = daily[S.MODEL].to_numpy()[rep]
    if samples:
        out[SAMPLE] = week
        out[HOURS] = 1.0 / weeks
        return out.sort_values([S.TEAM, S.GPU_TYPE, S.TIMESTAMP, SAMPLE], kind="stable").reset_index(drop=True)
    return out


def _bins(values: np.ndarray, weights: np.ndarray, bins: int) -> pd.DataFrame:
    """Equal-hours bins of a weighted sample: level (weighted mean), hours, min, max."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    total = cum[-1]
    b = np.minimum((((cum - w / 2) / total) * bins).astype(int), bins - 1)
    hours = np.bincount(b, weights=w, minlength=bins)
    gpu_hours = np.bincount(b, weights=w * v, minlength=bins)
    keep = hours > 0
    lo = np.full(bins, np.nan)
    hi = np.full(bins, np.nan)
    first = np.searchsorted(b, np.arange(bins), side="left")
    last = np.searchsorted(b, np.arange(bins), side="right") - 1
    lo[keep], hi[keep] = v[first[keep]], v[last[keep]]
    idx = np.flatnonzero(keep)
    return pd.DataFrame({BIN: np.arange(len(idx)), LEVEL_GPUS: gpu_hours[idx] / hours[idx], HOURS: hours[idx],
                         MIN_GPUS: lo[idx], MAX_GPUS: hi[idx]})


def load_duration_curve(demand: pd.DataFrame, profile: pd.DataFrame | None = None, *, bins: int = 24,
                        by: Sequence[str] = (S.GPU_TYPE,), scenarios: Sequence[str] | None = None) -> pd.DataFrame:
    """Monthly load-duration curves: how many hours each demand level occurs (contract in the module docstring).

    Args:
        demand: a daily frame (``date``; needs ``profile`` or is treated as flat within the day) or an
            hourly frame (``timestamp``; optional ``hours`` weights and ``sample`` column as returned by
            ``hourly_from_daily(..., samples=True)``).
        profile: hour-of-week profile used to rebuild the hours of a daily frame.
        bins: bins per (group, scenario, month).
        by: grouping columns, e.g. ``("gpu_type",)`` for the optimizer or ``("team", "gpu_type")`` per series.
        scenarios: value columns to use (default every ``pNN`` column and ``mean``).

    Returns:
        ``*by, scenario, month, bin, level_gpus, hours, min_gpus, max_gpus`` sorted by group, scenario,
        month and bin (bin 0 = lowest demand).
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    by = list(by)
    scen = _scenario_columns(demand, scenarios)
    parts = []
    if DATE in demand.columns:
        keys = demand[[S.TEAM, S.GPU_TYPE]].drop_duplicates().sort_values([S.TEAM, S.GPU_TYPE]).reset_index(drop=True)
        table = _ratio_table(profile, keys)  # (n, W, 168)
        weeks = table.shape[1]
        dates = pd.DatetimeIndex(pd.to_datetime(pd.unique(demand[DATE]))).sort_values()
        how = dates.dayofweek.to_numpy()[:, None] * 24 + np.arange(24)[None, :]  # (D, 24)
        months = dates.to_period("M").to_timestamp()
        sid = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(demand[[S.TEAM, S.GPU_TYPE]]))
        did = dates.get_indexer(pd.to_datetime(demand[DATE]))
        for group, gkeys in keys.groupby(by, sort=True):
            members = gkeys.index.to_numpy()
            r = table[members][:, :, how]  # (m, W, D, 24)
            rows = np.isin(sid, members)
            local = pd.Index(members).get_indexer(sid[rows])
            for col in scen:
                level = np.zeros((len(members), len(dates)))
                np.add.at(level, (local, did[rows]), demand.loc[rows, col].to_numpy(float))
                hourly = np.einsum("md,mwdh->wdh", level, r)  # (W, D, 24)
                for month in pd.unique(months):
                    days = months == month
                    vals = hourly[:, days, :].ravel()
                    part = _bins(vals, np.full(vals.size, 1.0 / weeks), bins)
                    part.insert(0, MONTH, month)
                    part.insert(0, SCENARIO, col)
                    for k, key in enumerate(by):
                        part.insert(k, key, group[k] if isinstance(group, tuple) else group)
                    parts.append(part)
    else:
        frame = demand.copy()
        if HOURS not in frame.columns:
            frame[HOURS] = 1.0
        if SAMPLE not in frame.columns:
            frame[SAMPLE] = 0
        frame[MONTH] = pd.to_datetime(frame[S.TIMESTAMP]).dt.to_period("M").dt.to_timestamp()
        summed = frame.groupby([*by, MONTH, S.TIMESTAMP, SAMPLE], sort=True).agg(
            **{c: (c, "sum") for c in scen}, **{HOURS: (HOURS, "first")}).reset_index()
        for (*group, month), g in summed.groupby([*by, MONTH], sort=True):
            for col in scen:
                part = _bins(g[col].to_numpy(float), g[HOURS].to_numpy(float), bins)
                part.insert(0, MONTH, month)
                part.insert(0, SCENARIO, col)
                for k, key in enumerate(by):
                    part.insert(k, key, group[k])
                parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*by, *LDC_COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    out[MONTH] = pd.to_datetime(out[MONTH])
    return out.sort_values([*by, SCENARIO, MONTH, BIN], kind="stable").reset_index(drop=True)


# --- hold-out ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LongTermHoldout:
    """Hold-out scores of the long-term models on daily means.

    Attributes:
        per_series: team, gpu_type, model, abs_err (sum over held-out days of |actual - mean|, GPU-days),
            abs_err_<baseline> per baseline, coverage_p10_p90, coverage_p05_p95 (share of days inside).
        overall: one row per method (``selected`` and each baseline): total absolute error in GPU-days and
            GPU-hours (x 24), and the band coverages for ``selected``.
        holdout_start: first held-out day.
        seconds: wall time of the selected model's fit.
        forecast: the forecast that was scored (fitted on the days before ``holdout_start``).
        actual: the held-out days ``team, gpu_type, date, gpus`` (GPUs averaged over the day).
    """

    per_series: pd.DataFrame
    overall: pd.DataFrame
    holdout_start: pd.Timestamp
    seconds: float
    forecast: LongTermForecast | None = None
    actual: pd.DataFrame | None = None


def holdout_longterm(usage: pd.DataFrame, holdout_days: int = 90, config: LongTermConfig | None = None,
                     baselines: Sequence[str] = ("SeasonalNaive", "Naive")) -> LongTermHoldout:
    """Fit on all but the last ``holdout_days`` complete days and score the daily forecasts of those days.

    Each baseline is the single candidate fitted on the same training days (no trend, no growth, no events).
    """
    config = replace(config or LongTermConfig(), horizon_days=holdout_days, growth=0.0, team_growth=())
    end = last_full_day(usage[S.TIMESTAMP])
    cut = end - pd.Timedelta(days=holdout_days - 1)
    train = usage[usage[S.TIMESTAMP] < cut]
    actual = to_daily(usage, end=end)
    actual = actual[actual[DATE] >= cut][[S.TEAM, S.GPU_TYPE, DATE, S.GPUS]]
    keys = [S.TEAM, S.GPU_TYPE, DATE]
    t0 = time.perf_counter()
    sel = forecast_longterm(train, config)
    seconds = time.perf_counter() - t0
    m = actual.merge(sel.daily, on=keys, how="inner")
    m["abs_err"] = (m[S.GPUS] - m[S.MEAN]).abs()
    m["in80"] = (m[S.GPUS] >= m["p10"]) & (m[S.GPUS] <= m["p90"])
    in90 = ("p05" in m.columns) and ("p95" in m.columns)
    m["in90"] = (m[S.GPUS] >= m["p05"]) & (m[S.GPUS] <= m["p95"]) if in90 else np.nan
    per = m.groupby([S.TEAM, S.GPU_TYPE]).agg(model=(S.MODEL, "first"), abs_err=("abs_err", "sum"),
                                              coverage_p10_p90=("in80", "mean"), coverage_p05_p95=("in90", "mean"))
    rows = [{"method": "selected", "abs_err_gpu_days": per["abs_err"].sum(),
             "abs_err_gpu_hours": 24 * per["abs_err"].sum(), "coverage_p10_p90": m["in80"].mean(),
             "coverage_p05_p95": m["in90"].mean() if in90 else np.nan}]
    for base in baselines:
        bfc = forecast_longterm(train, replace(config, models=(base,), cv_windows=0, trend="none")).daily
        b = actual.merge(bfc, on=keys, how="inner")
        per[f"abs_err_{base}"] = (b[S.GPUS] - b[S.MEAN]).abs().groupby([b[S.TEAM], b[S.GPU_TYPE]]).sum()
        rows.append({"method": base, "abs_err_gpu_days": per[f"abs_err_{base}"].sum(),
                     "abs_err_gpu_hours": 24 * per[f"abs_err_{base}"].sum(),
                     "coverage_p10_p90": np.nan, "coverage_p05_p95": np.nan})
    return LongTermHoldout(per_series=per.reset_index(), overall=pd.DataFrame(rows), holdout_start=cut,
                           seconds=seconds, forecast=sel, actual=actual.reset_index(drop=True))
