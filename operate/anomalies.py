"""Cost anomalies: spikes, drops, level shifts and slow drifts of GPU usage against the forecast's own ranges.

How it works. The look-back window is the ``lookback_days`` before ``as_of``. The forecast engine
(:func:`forecasting.engine.forecast_long`) forecasts it week by week (:data:`REFIT_DAYS`), each week fitted on the
usage before that week, with its calibrated quantiles: daily and weekly seasonality, the usual hour-to-hour noise
and a change that has already lasted a week are expected, not anomalous. (A single fit before the window, whose
ranges must cover four weeks of level wander, alarmed on 30-60% of the untouched series of the benchmark.)
Planned events (:mod:`forecasting.events`) can be applied to that forecast, so a planned launch is not an
anomaly either, nor the end of a planned run: each week is fitted on the usage without the events, and every event
is applied to its forecast, wherever its start and end fall.

Series: every team x GPU type, and every team's total when the team uses more than one GPU type (a team that
moves work from A100 to H100 does not net out inside one series, and a change spread thinly over its GPU
types still adds up). Nothing is ever summed across teams, so one team up and another down are two anomalies. A
team total's anomaly that one of its GPU types already reports (the same kind over overlapping hours, carrying at
least :data:`TOTAL_SHARE` of the total's change the same way) is not reported a second time: one change, one message.

Per series and hour ``t`` of the window, the hour score (:func:`hour_departures`) is the residual against the
forecast, ``y_t - p50_t``, minus its centred running median over :data:`LOCAL_HOURS` and minus its usual value at
that hour of day, over its robust spread at that hour of day across the window (never below
:data:`MIN_SCALE_SHARE` of the expected level or :data:`MIN_SCALE_GPUS`). The forecast band alone is not enough:
it must cover where the level will be days ahead (a training team's jobs of a few days make it wide), which hides
a burst of a few hours that the series' own hour-to-hour spread shows plainly. A burst longer than half of
:data:`LOCAL_HOURS` has no score in its middle (its level is the burst), so a run of more than that many hours
whose z against the band, ``(y_t - p50_t) / s_t`` (``s_t`` the half-width of the p10-p90 band over 1.2816),
reaches :data:`BAND_Z` counts too.

* spike / drop: a run of hours with ``|score| >= HOUR_Z x sensitivity`` (or such a long run of
  ``|z| >= BAND_Z x sensitivity``; gaps of up to :data:`RUN_GAP_HOURS` merged) of at most
  :data:`SPIKE_MAX_HOURS`, after which usage returns to its level: the next day's median score stays below
  :data:`RETURN_Z`, and against the forecast made before the window the next day keeps less than
  :data:`RETURN_SHARE` of the run's rise over the day before it (a step that a weekly refit took in looks like a
  burst that went back against the refit's forecast; it is a level shift). Score: the larger of the run's largest
  ``|score|`` / ``HOUR_Z`` and ``|z|`` / ``BAND_Z``.
* level shift / drift: spike hours are replaced by the forecast, the rest is averaged per day and the day's mean
  residual divided by the day's scale (the forecast's CV errors averaged over whole days: their spread is the
  engine's own calibrated daily range; it widens with lead time as the band does). A two-sided CUSUM of those
  daily z values with slack :data:`CUSUM_K` raises an anomaly when it exceeds ``CUSUM_H x sensitivity``; it
  starts on the first day of the excursion. Its shape is the best least-squares fit of a ramp
  ``c x clip((t - onset) / L, 0, 1)`` to the hourly residuals from a day before (:func:`_shape`): a level shift
  when the best ``L`` is under :data:`DRIFT_MIN_HOURS` (a step), else a drift (cumulative change built up over
  days that no single hour shows). Changes of less than :data:`MIN_CHANGE` of the expected GPU-hours of their days
  are not reported (a long CUSUM excursion of a big series can be immaterial), nor a change no longer there on
  the window's last day (less than :data:`END_SHARE` of its size against the forecast made before the window: a
  job of a few days that ran and stopped is a series' usual churn), nor one that is not also a change against that
  forecast on most days since it started (the held-change statistic below at its first day under
  :data:`CONFIRM_T`: a refit that carried a job forward, or jobs that lift the mean of the days but not their
  median). Since it is still there on the last day, it is reported to the window's end (the CUSUM's excursion ends
  where a refit took it in). Score: the CUSUM peak / ``CUSUM_H``.
* held change: the weekly refits take a change in after a week, and a series with jobs of a few days in its
  history has a wide daily scale, so a moderate change can stay under that CUSUM. A robust change-point test
  (:func:`_held`) of the daily median residuals against the single forecast made before the window reports a
  level shift or drift held for at least :data:`HELD_MIN_DAYS` to the end of the window that the first did not
  (decision level :data:`HELD_T`, at least :data:`HELD_MIN_SHARE` of the expected level).

Rules that hold for every series (each measured on the benchmark's tuning set, ``docs/benchmarks.md``):

* a series is scored only from the first weekly refit with :data:`MIN_HISTORY_DAYS` of its own usage before it
  (the forecast of a series that has just started is a guess);
* an intermittent series (0 GPUs in at least :data:`INTERMITTENT_ZERO_SHARE` of its hours before the window)
  works in bursts from zero: only an upward anomaly whose peak hour exceeds the series' largest hour before the
  window is reported, never a drop (a burst the forecast repeated that did not come);
* a drop a day or a week after a spike (or a spike after a drop) that mirrors it is the seasonal forecast
  repeating the first one (:data:`ECHO_LAGS`), not a second anomaly;
* a level shift or drift that started less than :data:`HELD_MIN_DAYS` before the window's end, or a spike or
  drop of more than half of :data:`LOCAL_HOURS`, is reported only when its usage goes above the series' largest
  hour before the window (a spike; never a long drop): a training team's jobs of a day to a few days look like
  them (:func:`_usual_job`); a change that has lasted, a short burst, or one beyond anything the series did is
  reported;
* a spike or drop must move at least :data:`MIN_SPIKE_SHARE` of the series' usual weekly GPU-hours, against its
  forecast or against the series' level then, whichever is larger (materiality: a one-hour blip of a few GPUs in
  a large series costs nothing worth a message).

Scores are in units of the detection threshold: 1.0 is the tuned threshold (``benchmarks/anomaly_detection.py``
chose the constants on its tuning set); ``sensitivity`` scales every threshold (2 = only anomalies twice as
strong). Impact: (actual - expected) GPU-hours x the on-demand USD per GPU-hour of the GPU model (list rates,
:func:`operate.costing.on_demand_rates`), summed over a team's GPU types for a team total.

Units: GPUs per hour (= GPU-hours per hour), GPU-hours, USD; times naive UTC hour starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.engine import ForecastConfig, forecast_long
from forecasting.events import Event, apply_events, remove_events
from usage import schema as S

ALL_GPUS = "all"
"""``gpu_type`` of a team's total over its GPU types."""
KINDS = ("spike", "drop", "level_shift", "drift")
COLUMNS = ("team", "gpu_type", "kind", "start", "end", "expected_gpu_hours", "actual_gpu_hours", "impact_usd",
           "score")
Z90 = 1.2815515655446004
HOUR_Z = 12.0
"""Hour score at which a spike or drop starts (tuned, see the module docstring)."""
BAND_Z = 8.0
"""Hourly z against the forecast band (``(y - p50) / s_t``) at which a run of more than half of :data:`LOCAL_HOURS`
hours is a spike or drop too: such a burst has no hour score in its middle, its level is the burst."""
LOCAL_HOURS = 25
"""Hours of the centred running median a spike's residual is measured from (a spike is short against it)."""
CUSUM_K = 1.5
"""CUSUM slack per day in daily-z units (one daily standard deviation)."""
CUSUM_H = 5.0
"""CUSUM decision level in daily-z units."""
HELD_T = 5.0
"""Decision level of the held-change test (its change-point statistic, in standard errors)."""
HELD_MIN_DAYS = 5
"""A held change has lasted at least this many whole days at the end of the window."""
HELD_BEFORE_DAYS = 2
"""Whole days of the window before a held change that it is measured from, at least."""
HELD_MIN_SHARE = 0.2
"""A held change moves the series by at least this share of its expected level."""
HELD_LAST_SHARE = 0.5
"""Its size on the last two days of the window is at least this share of its size (it is still held)."""
CONFIRM_T = 3.0
"""A rolling-CUSUM level shift or drift must also reach this statistic of the held-change test at its start."""
END_SHARE = 0.25
"""A level shift or drift must still be there on the last day of the window, at this share of its mean size."""
RETURN_Z = 2.0
"""Median hour score over the day after a spike below which usage counts as back to its level."""
RETURN_SHARE = 0.5
"""A spike's usage over the day after it must come back below this share of its rise (else it is a step)."""
SPIKE_MAX_HOURS = 24
MIN_SPIKE_SHARE = 0.01
"""A spike or drop must move at least this share of the series' usual weekly GPU-hours (168 x its mean median)."""
RUN_GAP_HOURS = 2
RAMPS = (1, 12, 24, 48, 72, 96, 120, 168)
"""Ramp lengths (hours) fitted to a change; 1 is a step."""
DRIFT_MIN_HOURS = 48
"""A change whose best-fitting ramp takes at least this long is a drift, otherwise a level shift."""
ONSET_SEARCH_HOURS = 72
MIN_CHANGE = 0.1
"""A level shift or drift must move the GPU-hours of its days by at least this share of the expected ones."""
MIN_SCALE_SHARE = 0.02
MIN_SCALE_GPUS = 0.05
MIN_HISTORY_DAYS = 14
REFIT_DAYS = 7
"""Days each rolling forecast covers before the engine is refitted on the usage up to there."""
INTERMITTENT_ZERO_SHARE = 0.5
"""A series at 0 GPUs in at least this share of its hours before the window is intermittent (bursts from zero)."""
ECHO_LAGS = (24, 168)
"""Hours after a spike at which a seasonal forecast repeats it (a day, a week)."""
DEFAULT_LOOKBACK_DAYS = 28


@dataclass(frozen=True)
class AnomalyConfig:
    """Settings of one anomaly run.

    Attributes:
        lookback_days: days before ``as_of`` searched for anomalies (the forecast is fitted before them).
        sensitivity: multiplies every detection threshold (1 = the tuned thresholds; scores are relative to it).
        history_hours: hours of usage before the window the forecast is fitted on.
        hour_z, cusum_k, cusum_h: the detection constants (see the module docstring).
        held_t: the held-change test's decision level; None turns the test off.
        end_share: share of a level shift's or drift's size still there on the last day; None: not required.
        return_share: a spike's usage the day after it keeps less than this share of its rise (else it is a step);
            None: not required.
        min_impact_usd: anomalies whose impact (USD at the rates given) is smaller in size are not reported (an
            absolute floor for what is worth a message; the detector's own materiality rule is relative to each
            series, so on a nearly idle series a blip of a few GPU-hours is an anomaly). 0: no floor.
    """

    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    sensitivity: float = 1.0
    history_hours: int = 24 * 7 * 8
    hour_z: float = HOUR_Z
    cusum_k: float = CUSUM_K
    cusum_h: float = CUSUM_H
    held_t: float | None = HELD_T
    end_share: float | None = END_SHARE
    return_share: float | None = RETURN_SHARE
    min_impact_usd: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.lookback_days <= 366:
            raise ValueError(f"lookback_days {self.lookback_days} is outside 1..366 (fix: e.g. --lookback-days 28)")
        if not self.sensitivity > 0:
            raise ValueError(f"threshold {self.sensitivity} must be positive (fix: e.g. --threshold 1)")
        if not self.min_impact_usd >= 0:
            raise ValueError(f"min_impact_usd {self.min_impact_usd} must be 0 or more (fix: e.g. --min-impact-usd 100)")


@dataclass(frozen=True)
class AnomalyReport:
    """Anomalies found (``table``: :data:`COLUMNS`, newest first) and what the run could not do (``notes``)."""

    table: pd.DataFrame
    as_of: pd.Timestamp
    window_start: pd.Timestamp
    notes: tuple[str, ...]

    def above(self, threshold: float = 1.0) -> pd.DataFrame:
        return self.table[self.table["score"] >= threshold]


def team_uid(team: str) -> str:
    return f"{S.escape_key(team)}{S.UID_SEP}{ALL_GPUS}"


def series_frame(usage: pd.DataFrame, events: Sequence[Event] = ()) -> pd.DataFrame:
    """Long frame (``unique_id, ds, y``) of every team x GPU type plus the totals of multi-GPU teams (without what
    the planned ``events`` did, :func:`forecasting.events.remove_events`, when given)."""
    hourly = remove_events(usage.groupby([S.TEAM, S.GPU_TYPE, S.TIMESTAMP], as_index=False)[S.GPUS].sum(), events)
    long = S.to_long(hourly)
    multi = hourly.groupby(S.TEAM)[S.GPU_TYPE].nunique()
    multi = multi[multi > 1].index
    if len(multi):
        tot = hourly[hourly[S.TEAM].isin(multi)].groupby([S.TEAM, S.TIMESTAMP], as_index=False)[S.GPUS].sum()
        long = pd.concat([long, pd.DataFrame({S.UID: tot[S.TEAM].map(team_uid).to_numpy(),
                                              S.DS: tot[S.TIMESTAMP].to_numpy(), S.Y: tot[S.GPUS].to_numpy()})],
                         ignore_index=True)
    return long


def _daily_scale(errors: pd.DataFrame) -> pd.Series:
    """Per series: the root mean square of CV errors averaged over whole days (GPUs; a bias counts)."""
    if errors.empty:
        return pd.Series(dtype=float)
    e = errors.assign(day=errors["step"] // 24)
    counts = e.groupby([S.UID, "window", "day"])["error"].transform("size")
    day = e[counts == 24].groupby([S.UID, "window", "day"])["error"].mean().reset_index()

    def rms(x: pd.Series) -> float:
        return float(np.sqrt(np.mean(np.square(x)))) if len(x) >= 3 else np.nan

    return day.groupby(S.UID)["error"].agg(rms)


def _runs(mask: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """``[start, end]`` index pairs (inclusive) of runs of True, merging runs separated by at most ``gap``."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    runs = [[idx[0], idx[0]]]
    for i in idx[1:]:
        if i - runs[-1][1] <= gap + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [(int(a), int(b)) for a, b in runs]


def _cusum(z: np.ndarray, k: float, h: float) -> list[tuple[int, int, int, float]]:
    """Two-sided CUSUM: ``(sign, first day, peak day, peak)`` of every excursion whose peak reaches ``h`` (the
    peak day is the last day that moved the sum on)."""
    out = []
    for sign in (1, -1):
        c, start, peak, peak_day = 0.0, None, 0.0, 0
        for d, v in enumerate(sign * z):
            c = max(0.0, c + v - k) if np.isfinite(v) else c
            if c > 0 and start is None:
                start, peak = d, 0.0
            if c > peak:
                peak, peak_day = c, d
            if c == 0 and start is not None:
                if peak >= h:
                    out.append((sign, start, peak_day, peak))
                start = None
        if start is not None and peak >= h:
            out.append((sign, start, peak_day, peak))
    return out


@dataclass(frozen=True)
class _Found:
    uid: str
    kind: str
    start: int
    end: int
    score: float


def hour_departures(y: np.ndarray, p50: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per hour, how far usage departs from both its forecast and its own level of the hours around it: the
    numerator and the denominator (GPUs) of the hour score.

    The residual against the forecast (``y - p50``: seasonality and planned events removed) minus its centred
    running median over :data:`LOCAL_HOURS` (the level the series is at those days: a job that runs for days, a
    level the forecast has not caught up with), less its median at the same hour of day across the window (a daily
    shape the forecast misses the same way every day is the series' shape), over the robust spread at that hour
    (1.4826 x the median absolute deviation: hours the forecast misses by varying amounts are wider than the
    others), floored at :data:`MIN_SCALE_SHARE` of the expected level and :data:`MIN_SCALE_GPUS`. A burst of a few
    hours scores its size over that spread; a step that lasts scores about 0 after a few hours.
    """
    r = y - p50
    dev = r - pd.Series(r).rolling(LOCAL_HOURS, center=True, min_periods=1).median().to_numpy()
    n = len(dev) // 24 * 24
    floor = max(MIN_SCALE_SHARE * float(np.mean(np.abs(p50))) if len(p50) else 0.0, MIN_SCALE_GPUS)
    if not n:
        return dev, np.full(len(dev), floor)
    days = dev[len(dev) - n:].reshape(-1, 24)   # whole days ending at as_of; hour h of day is column h
    usual = np.median(days, axis=0)
    spread = 1.4826 * np.median(np.abs(days - usual), axis=0)

    def per_hour(x: np.ndarray) -> np.ndarray:   # the window's first hours continue the daily cycle
        return np.resize(np.roll(x, len(dev) - n), len(dev))

    return dev - per_hour(usual), np.maximum(per_hour(spread), floor)


def detect_series(y: np.ndarray, p50: np.ndarray, band: np.ndarray, day_scale: np.ndarray, config: AnomalyConfig,
                  shape_base: np.ndarray | None = None) -> list[_Found]:
    """Anomalies of one series over the window (hour indexes; see the module docstring).

    Args:
        y: actual GPUs per hour.
        p50: the forecast median per hour.
        band: the forecast scale per hour (``s_t``, GPUs).
        day_scale: the daily-mean residual scale per day of the window (GPUs).
        config: settings.
        shape_base: the expectation the shape of a change is judged against (default ``p50``).
    """
    s = config.sensitivity
    departure, scale = hour_departures(y, p50)
    base_resid = y - (p50 if shape_base is None else shape_base)   # against the forecast made before the window
    z = departure / scale
    zb = (y - p50) / band
    found: list[_Found] = []
    spike_hours = np.zeros(len(y), dtype=bool)
    for sign in (1, -1):
        # the band finds the bursts too long for the hour score (over half of LOCAL_HOURS); shorter ones are the
        # hour score's to judge
        long = [(a, b) for a, b in _runs(sign * zb >= BAND_Z * s, RUN_GAP_HOURS) if b - a + 1 > LOCAL_HOURS // 2]
        hits = sign * z >= config.hour_z * s
        for a, b in long:
            hits[a:b + 1] = True
        for a, b in _runs(hits, RUN_GAP_HOURS):
            after = sign * z[b + 1:b + 25]
            if b - a + 1 > SPIKE_MAX_HOURS or (len(after) >= 6 and np.median(after) >= RETURN_Z):
                continue
            if config.return_share is not None and _stays(sign * base_resid, a, b, config.return_share):
                continue
            spike_hours[a:b + 1] = True
            found.append(_Found("", "spike" if sign > 0 else "drop", a, b,
                                max(float(np.max(sign * z[a:b + 1])) / config.hour_z,
                                    float(np.max(sign * zb[a:b + 1])) / BAND_Z)))
    # a seasonal forecast repeats a spike a day or a week later: the drop it then shows (or the spike after a
    # drop) is the forecast's echo, not a second anomaly
    found = [f for f in found if not any(g.kind != f.kind and g.start + lag <= f.end and f.start <= g.end + lag
                                         for g in found for lag in ECHO_LAGS)]
    resid = np.where(spike_hours, 0.0, y - p50)
    shape_resid = np.where(spike_hours, 0.0, base_resid)
    days = len(y) // 24
    start0 = len(y) - days * 24   # whole days ending at as_of
    daily = resid[start0:].reshape(days, 24).mean(axis=1) if days else np.zeros(0)
    zd = daily / day_scale[-days:] if days else daily
    robust = _daily_medians(shape_resid, start0, days, p50) if shape_base is not None and days >= 4 else None
    for sign, d0, d1, peak in _cusum(zd, config.cusum_k, config.cusum_h * s):
        a = start0 + 24 * d0
        e = len(y) - 1 if d1 == days - 1 else start0 + 24 * d1 + 23
        lead = min(a, 24)
        onset, ramp = _shape(sign * shape_resid[a - lead:e + 1])
        kind = "drift" if ramp >= DRIFT_MIN_HOURS else "level_shift"
        first = max(a - lead + onset, 0)
        if abs(float(resid[first:e + 1].sum())) < MIN_CHANGE * max(float(np.abs(p50[first:e + 1]).sum()), 1e-9):
            continue
        if config.end_share is not None and shape_base is not None:
            # still there on the last day (against the forecast made before the window): a step of a few days
            # that has ended is the series' usual churn (a job that ran and stopped), not a level shift
            size = sign * float(shape_resid[first:e + 1].mean())
            if not (size > 0 and sign * float(shape_resid[-24:].mean()) >= config.end_share * size):
                continue
        if robust is not None:
            # a change against the weekly refits must be one against the forecast made before the window too (a
            # refit that carried a job of a few days forward is that forecast's error, not the series' change)
            c = min(max((first - start0) // 24, 1), days - 1)
            if sign * _change_stat(*robust, c)[0] < CONFIRM_T * s:
                continue
        # a persistent change whose hourly z hovers about the threshold breaks into short runs that look like
        # spikes or drops: runs of its sign inside it are part of it
        inside = [f for f in found if f.kind == ("spike" if sign > 0 else "drop") and first <= f.start <= e]
        found = [f for f in found if f not in inside]
        # still there on the last day (the rule above): it lasts to the window's end, though the weekly refits
        # took it in and the CUSUM's excursion ended there
        held = config.end_share is not None and shape_base is not None
        found.append(_Found("", kind, first, len(y) - 1 if held else e, float(peak / config.cusum_h)))
    if config.held_t is not None and robust is not None and days > HELD_BEFORE_DAYS + HELD_MIN_DAYS:
        found += _held(shape_resid, start0, robust, found, p50, config)
    week = 168.0 * float(np.mean(np.abs(p50)))   # the series' usual weekly GPU-hours
    forecast_resid = y - p50
    return [f for f in found if f.kind not in ("spike", "drop")
            or _spike_gpu_hours(forecast_resid, departure, f) >= MIN_SPIKE_SHARE * week]


def _stays(r: np.ndarray, a: int, b: int, share: float) -> bool:
    """Whether the run ``[a, b]`` of residuals ``r`` (against the forecast made before the window, its sign upwards)
    is a step that stays: over the day after it the residual keeps at least ``share`` (:data:`RETURN_SHARE`) of the
    run's rise above the day before it (a job that starts and runs on, not a burst; the hour score cannot tell, since
    its running median follows the new level). Near the window's edges (fewer than 6 hours before or after) it is
    not judged."""
    before, after = r[max(a - 24, 0):a], r[b + 1:b + 25]
    if len(before) < 6 or len(after) < 6:
        return False
    base = float(np.median(before))
    rise = float(np.median(r[a:b + 1])) - base
    return rise > 0 and float(np.median(after)) - base >= share * rise


def _spike_gpu_hours(resid: np.ndarray, departure: np.ndarray, f: _Found) -> float:
    """GPU-hours a spike or drop moved: against the forecast or the series' level then, whichever is larger (a
    forecast off by a few GPUs that day must not shrink a clear burst)."""
    sl = slice(f.start, f.end + 1)
    return max(abs(float(resid[sl].sum())), abs(float(departure[sl].sum())))


def _held(r: np.ndarray, start0: int, robust: tuple[np.ndarray, np.ndarray, float], found: list[_Found],
          p50: np.ndarray, config: AnomalyConfig) -> list[_Found]:
    """A level shift or drift still held at the end of the window, against the single forecast made before it.

    The weekly refits take a change in after a week, and a series whose history has jobs of a few days has a wide
    daily CV scale, so a moderate change can stay under the rolling CUSUM; against the forecast made before the
    window it stays. The test is robust to that churn: per day the median residual (a spike or a few hours'
    outage do not move it); for each day ``c`` with at least :data:`HELD_BEFORE_DAYS` before it and
    :data:`HELD_MIN_DAYS` after it, the change is the median of the days from ``c`` against the median hour
    before ``c``, and it must be a change against the forecast too (the same sign, and the smaller of the two: a
    job that ran at the start of the window and ended is not a drop of the days after it). Its statistic is
    ``sqrt(c (D - c) / D) x change / sigma`` (``sigma``: the spread of the daily medians from their day-to-day
    differences, robustly, so a single change point does not widen it). The largest ``|statistic|`` is reported
    when it reaches ``held_t``, the change is at least :data:`HELD_MIN_SHARE` of the expected level, and the last
    two days still carry :data:`HELD_LAST_SHARE` of it. Its shape (step or ramp) is fitted as for the others.

    Args:
        r: hourly residuals against the first fit's median (spike hours 0).
        start0: first hour of the whole days.
        robust: :func:`_daily_medians` of ``r`` (its whole days, their medians, their spread).
        found: anomalies found so far (a change they cover is not repeated).
        p50: the rolling median (the expected level).
        config: ``held_t`` is the decision level.
    """
    hours, daily, sigma = robust
    days = len(daily)
    best = (0.0, 0, 0.0)   # statistic, day, change
    for c in range(HELD_BEFORE_DAYS, days - HELD_MIN_DAYS + 1):
        stat, change = _change_stat(hours, daily, sigma, c)
        if abs(stat) > abs(best[0]):
            best = (stat, c, change)
    stat, c, change = best
    sign = 1 if stat > 0 else -1
    if abs(stat) < config.held_t * config.sensitivity or abs(change) < HELD_MIN_SHARE * float(np.mean(np.abs(p50))):
        return []
    if sign * (float(np.median(daily[-2:])) - (float(np.median(daily[c:])) - change)) < HELD_LAST_SHARE * abs(change):
        return []
    a = start0 + 24 * c
    e = len(r) - 1
    lead = min(a, 48)
    onset, ramp = _shape(sign * r[a - lead:e + 1])
    first = max(a - lead + onset, 0)
    if any(f.kind in ("level_shift", "drift") and f.start <= e and first <= f.end for f in found):
        return []
    return [_Found("", "drift" if ramp >= DRIFT_MIN_HOURS else "level_shift", first, e,
                   float(abs(stat) / config.held_t))]


def _daily_medians(r: np.ndarray, start0: int, days: int, p50: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The whole days of hourly residuals ``r`` (days x 24), their daily medians, and the spread of a daily median
    from the day-to-day differences (1.4826 x their median absolute deviation / sqrt 2: a single change point
    does not widen it), never below :data:`MIN_SCALE_SHARE` of the expected level (``p50``)."""
    hours = r[start0:].reshape(days, 24)
    daily = np.median(hours, axis=1)
    step = np.diff(daily)
    level = max(float(np.mean(np.abs(p50))), 1e-9)
    return hours, daily, max(1.4826 * float(np.median(np.abs(step - np.median(step)))) / np.sqrt(2),
                             MIN_SCALE_SHARE * level)


def _change_stat(hours: np.ndarray, daily: np.ndarray, sigma: float, c: int) -> tuple[float, float]:
    """``(statistic, change)`` of a change at day ``c`` (see :func:`_held`): the median of the days from ``c`` against
    the median hour before it, and against the forecast (0), the smaller of the two and 0 when their signs differ;
    the statistic is ``sqrt(c (D - c) / D) x change / sigma``."""
    days = len(daily)
    after = float(np.median(daily[c:]))
    change = after - float(np.median(hours[:c]))
    change = 0.0 if np.sign(after) != np.sign(change) else float(np.sign(change)) * min(abs(change), abs(after))
    return float(np.sqrt(c * (days - c) / days) * change / sigma), change


def ramp_shapes(n: int, onsets: np.ndarray, ramp: int) -> np.ndarray:
    """Rows ``clip((t - onset) / ramp, 0, 1)`` over ``n`` hours, one per onset; ramp 1 is a step (1 from the onset
    hour on)."""
    t = np.arange(n, dtype=float)
    return np.clip((t[None, :] - onsets[:, None]) / ramp + (1.0 if ramp == 1 else 0.0), 0.0, 1.0)


def _shape(r: np.ndarray) -> tuple[int, int]:
    """The change in ``r`` (hourly residuals, the change upwards): ``(onset hour, ramp hours)`` of the best least-
    squares fit of ``c x clip((t - onset) / ramp, 0, 1)`` over onsets in the first :data:`ONSET_SEARCH_HOURS` and the
    ramps of :data:`RAMPS` (1 = a step)."""
    best = (np.inf, 0, 1)
    onsets = np.arange(min(ONSET_SEARCH_HOURS, len(r)), dtype=float)
    for ramp in RAMPS:
        m = ramp_shapes(len(r), onsets, ramp)
        m = m - m.mean(axis=1, keepdims=True)   # with an intercept: the forecast may be off by a constant
        rm = m @ (r - r.mean())
        mm = (m * m).sum(axis=1)
        sse = -np.where((mm > 0) & (rm > 0), rm * rm / np.maximum(mm, 1e-12), 0.0)   # SSE minus a constant
        i = int(np.argmin(sse))
        if sse[i] < best[0]:
            best = (float(sse[i]), int(onsets[i]), ramp)
    return best[1], best[2]


@dataclass(frozen=True)
class Window:
    """The look-back window and its rolling forecast: each week of it forecast from the usage before that week.

    Attributes:
        start, as_of: the window ``[start, as_of)``.
        grid: its hours.
        forecast: the engine's long forecast of every series over the window (``unique_id, ds, mean, p05..p95``).
        day_scale: per day of the window (rows) and series (columns), the daily-mean CV error scale of the fit
            that forecast that day (GPUs; :func:`_daily_scale`).
        shape_base: the median forecast of the first fit (before the window) over the whole window (index: the
            grid; columns: series ids): rolling refits absorb a change within a week, so the shape of a change
            (step or ramp) is judged against this one.
        notes: the forecasts' notes.
        history: per series (index: series ids) of the usage before the window: ``first`` (first hour),
            ``zero_share`` (share of hours at 0 GPUs) and ``peak`` (largest GPUs in an hour).
    """

    start: pd.Timestamp
    as_of: pd.Timestamp
    grid: pd.DatetimeIndex
    forecast: pd.DataFrame
    day_scale: pd.DataFrame
    shape_base: pd.DataFrame
    notes: tuple[str, ...]
    history: pd.DataFrame | None = None

    def observe(self, usage: pd.DataFrame) -> pd.DataFrame:
        """Actual GPUs per hour of every series in the window (index: the grid; columns: series ids)."""
        inside = usage[(usage[S.TIMESTAMP] >= self.start) & (usage[S.TIMESTAMP] < self.as_of)]
        long = series_frame(inside) if not inside.empty else pd.DataFrame(columns=[S.UID, S.DS, S.Y])
        actual = long.pivot_table(index=S.DS, columns=S.UID, values=S.Y, aggfunc="sum")
        return actual.reindex(self.grid).fillna(0.0)


def fit_window(usage: pd.DataFrame, as_of: pd.Timestamp | None = None, config: AnomalyConfig | None = None, *,
               events: Sequence[Event] = (), progress: Callable[[str], None] | None = None) -> Window:
    """Forecast the look-back window week by week, each week from the usage before it (see the module docstring).

    With planned ``events``, each week is fitted on the usage without what they did
    (:func:`forecasting.events.remove_events`) and its forecast gets every event over its hours: a planned run
    that started before the week and ends in it is expected to end, and a refit does not carry it forward."""
    config = config or AnomalyConfig()
    as_of = pd.Timestamp(usage[S.TIMESTAMP].max()) + pd.Timedelta(hours=1) if as_of is None else as_of
    start = as_of - pd.Timedelta(days=config.lookback_days)
    first = usage[S.TIMESTAMP].min()
    if (start - first) < pd.Timedelta(days=MIN_HISTORY_DAYS):
        raise ValueError(f"anomalies need at least {MIN_HISTORY_DAYS} days of usage before the look-back window "
                         f"(it starts {start:%Y-%m-%d}, the usage {first:%Y-%m-%d}; fix: a shorter --lookback-days "
                         "or a later --as-of)")
    long = series_frame(usage[usage[S.TIMESTAMP] < as_of], events)   # what the forecasts are fitted on
    grid = pd.date_range(start, as_of, freq="h", inclusive="left")
    days = (as_of - start) // pd.Timedelta(days=1)
    day_index = start + pd.to_timedelta(np.arange(days), unit="D") + (as_of - start - pd.Timedelta(days=days))
    forecasts, scales, notes = [], [], []
    origin = start
    while origin < as_of:
        stop = min(origin + pd.Timedelta(days=REFIT_DAYS), as_of)
        history = long[long[S.DS] < origin]
        lag = int((origin - (history[S.DS].max() + pd.Timedelta(hours=1))) / pd.Timedelta(hours=1))
        hours = int(((as_of if origin == start else stop) - origin) / pd.Timedelta(hours=1))
        fit = forecast_long(history, ForecastConfig(horizon_hours=hours + lag, history_hours=config.history_hours),
                            progress=progress)
        if origin == start:   # the first fit forecasts the whole window: the shape of a change is judged on it
            whole = _with_events(fit.forecast[fit.forecast[S.DS] >= start], events)
            shape_base = whole.pivot_table(index=S.DS, columns=S.UID, values=S.P50).reindex(grid)
        forecasts.append(_with_events(fit.forecast[(fit.forecast[S.DS] >= origin) & (fit.forecast[S.DS] < stop)],
                                      events))
        scale = _daily_scale(fit.errors)
        in_fit = day_index[(day_index >= origin) & (day_index < stop)]
        scales.append(pd.DataFrame([scale.to_dict()] * len(in_fit), index=in_fit))
        notes.extend(fit.notes)
        origin = stop
    fc = pd.concat(forecasts, ignore_index=True)
    day_scale = pd.concat(scales).reindex(day_index) if scales else pd.DataFrame(index=day_index)
    seen = series_frame(usage[usage[S.TIMESTAMP] < start]) if events else long[long[S.DS] < start]
    return Window(start, as_of, grid, fc, day_scale, shape_base, tuple(dict.fromkeys(notes)), _history_stats(seen))


def _history_stats(long: pd.DataFrame) -> pd.DataFrame:
    """Per series of a long frame: first hour, share of hours at 0 GPUs, largest hour (see :class:`Window`)."""
    by = long.groupby(S.UID)
    return pd.DataFrame({"first": by[S.DS].min(), "zero_share": by[S.Y].apply(lambda y: float((y <= 0).mean())),
                         "peak": by[S.Y].max()})


def detect(usage: pd.DataFrame, rates: Callable[[str], float], as_of: pd.Timestamp | None = None,
           config: AnomalyConfig | None = None, *, events: Sequence[Event] = (),
           progress: Callable[[str], None] | None = None) -> AnomalyReport:
    """Find the anomalies of the ``lookback_days`` before ``as_of`` (see the module docstring).

    Args:
        usage: validated canonical usage.
        rates: USD per GPU-hour of a GPU model (list rates).
        as_of: first hour not searched (default: the hour after the last usage hour).
        config: settings.
        events: planned events (:mod:`forecasting.events`): expected changes, not anomalies.
        progress: receives one line per step.
    """
    config = config or AnomalyConfig()
    window = fit_window(usage, as_of, config, events=events, progress=progress)
    return find(window, window.observe(usage), rates, config)


def find(window: Window, actual: pd.DataFrame, rates: Callable[[str], float],
         config: AnomalyConfig | None = None) -> AnomalyReport:
    """Score the observed window ``actual`` (:meth:`Window.observe`) against its forecast."""
    config = config or AnomalyConfig()
    grid, fc = window.grid, window.forecast
    rows = []
    for uid, part in fc.groupby(S.UID, sort=True):
        part = part.set_index(S.DS).reindex(grid)
        p50 = part[S.P50].to_numpy(dtype=float)
        mean = part[S.MEAN].to_numpy(dtype=float)
        level = np.nanmean(np.abs(mean)) if np.isfinite(mean).any() else 0.0
        floor = max(MIN_SCALE_GPUS, MIN_SCALE_SHARE * level)
        band = np.maximum((part[S.P90].to_numpy(dtype=float) - part[S.P10].to_numpy(dtype=float)) / (2 * Z90), floor)
        band = np.where(np.isfinite(band), band, floor)
        p50 = np.where(np.isfinite(p50), p50, 0.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        y = actual[uid].to_numpy(dtype=float) if uid in actual.columns else np.zeros(len(grid))
        days = len(grid) // 24
        daily_band = band[len(grid) - days * 24:].reshape(days, 24).mean(axis=1) if days else np.zeros(0)
        base = (window.day_scale[uid].to_numpy(dtype=float) if uid in window.day_scale.columns
                else np.full(days, np.nan))
        base = np.where(np.isfinite(base) & (base > 0), base, daily_band)
        shape = (window.shape_base[uid].to_numpy(dtype=float) if uid in window.shape_base.columns else p50)
        first = _scored_from(window, uid, y)
        if first >= len(grid):
            continue
        early = np.arange(len(grid)) < first   # too little history yet: the forecast is a guess
        y = np.where(early, p50, y)
        shape = np.where(early | ~np.isfinite(shape), p50, shape)
        found = detect_series(y, p50, band, np.maximum(base, floor / 2), config, shape)
        hist = window.history.loc[uid] if window.history is not None and uid in window.history.index else None
        if hist is not None and hist["zero_share"] >= INTERMITTENT_ZERO_SHARE:
            # bursts from zero are its normal work: only a burst larger than any before it is an anomaly, and
            # usage at 0 (a burst the forecast repeated that did not come) never is
            found = [f for f in found if f.kind in ("spike", "level_shift", "drift")
                     and float(np.max(y[f.start:f.end + 1] - p50[f.start:f.end + 1])) > 0
                     and float(np.max(y[f.start:f.end + 1])) > hist["peak"]]
        found = [f for f in found if not _usual_job(f, y, len(grid), hist)]
        team, gpu = S.split_key(uid)
        for f in found:
            sl = slice(f.start, f.end + 1)
            rows.append({"team": team, "gpu_type": gpu, "kind": f.kind, "start": grid[f.start],
                         "end": grid[f.end] + pd.Timedelta(hours=1), "expected_gpu_hours": float(mean[sl].sum()),
                         "actual_gpu_hours": float(y[sl].sum()), "score": f.score, "_sl": sl})
    table = _with_impact(pd.DataFrame(_without_echoed_totals(rows)), fc, actual, grid, rates)
    if config.min_impact_usd > 0:
        table = table[table["impact_usd"].abs() >= config.min_impact_usd].reset_index(drop=True)
    return AnomalyReport(table, window.as_of, window.start, window.notes)


TOTAL_SHARE = 0.5
"""A team total's anomaly is not reported when one of the team's GPU types has an anomaly of the same kind over
overlapping hours that moved at least this share of the total's GPU-hours, the same way."""


def _without_echoed_totals(rows: list[dict]) -> list[dict]:
    """The rows without a team total's anomaly that one of its GPU types already reports (the same kind, overlapping
    hours, at least :data:`TOTAL_SHARE` of the total's change in GPU-hours, the same sign): one change, one message.
    A total whose change is spread over its GPU types (none of them carries that share) stays."""
    def change(r: dict) -> float:
        return r["actual_gpu_hours"] - r["expected_gpu_hours"]

    parts = [r for r in rows if r["gpu_type"] != ALL_GPUS]
    return [r for r in rows if r["gpu_type"] != ALL_GPUS or not any(
        p["team"] == r["team"] and p["kind"] == r["kind"] and p["start"] < r["end"] and r["start"] < p["end"]
        and change(p) * change(r) > 0 and abs(change(p)) >= TOTAL_SHARE * abs(change(r)) for p in parts)]


def _usual_job(f: _Found, y: np.ndarray, hours: int, hist: pd.Series | None) -> bool:
    """Whether a finding may be a job of the kind the series runs, not reported unless it goes beyond its history.

    A training team's jobs last a day to a few days. A level shift or drift that started less than
    :data:`HELD_MIN_DAYS` before the window's end may be such a job still running: it waits until it has lasted.
    A spike or drop longer than half of :data:`LOCAL_HOURS` may be a day-long job or pause. Either is reported
    only when its usage goes above the series' largest hour before the window (a spike; never a long drop).
    """
    above = hist is None or float(np.max(y[f.start:f.end + 1])) > float(hist["peak"])
    if f.kind in ("level_shift", "drift"):
        return hours - f.start < 24 * HELD_MIN_DAYS and not above
    return f.end - f.start + 1 > LOCAL_HOURS // 2 and not (f.kind == "spike" and above)


def _scored_from(window: Window, uid: str, y: np.ndarray) -> int:
    """First hour of the window a series is scored from: the first refit origin with at least
    :data:`MIN_HISTORY_DAYS` of the series' usage before it (the forecast of a series that has just started is a
    guess; ``len(grid)`` when no origin has). A series absent before the window starts at its first used hour."""
    hist = window.history
    if hist is None:
        return 0
    if uid in hist.index:
        first = pd.Timestamp(hist.at[uid, "first"])
    else:
        used = np.flatnonzero(y > 0)
        if not len(used):
            return len(window.grid)
        first = window.grid[int(used[0])]
    ready = first + pd.Timedelta(days=MIN_HISTORY_DAYS)
    origin = window.start
    while origin < ready and origin < window.as_of:
        origin += pd.Timedelta(days=REFIT_DAYS)
    return min(int((origin - window.start) / pd.Timedelta(hours=1)), len(window.grid))


def _with_events(fc: pd.DataFrame, events: Sequence[Event]) -> pd.DataFrame:
    """The forecast of the usage without the events (:func:`forecasting.events.remove_events`) with every event
    applied over its hours: a planned run's start and its end, wherever they fall."""
    if not events:
        return fc
    return _adjusted(fc, lambda frame: apply_events(frame, events, strict=False)[0])


def _adjusted(fc: pd.DataFrame, adjust: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """Apply an adjustment written for the team/gpu_type forecast contract to the engine's long forecast."""
    team, gpu = S.split_uid(fc[S.UID])
    frame = pd.DataFrame({S.TEAM: team.to_numpy(), S.GPU_TYPE: gpu.to_numpy(), S.TIMESTAMP: fc[S.DS].to_numpy()})
    cols = [S.MEAN, S.P05, S.P10, S.P50, S.P90, S.P95]
    for c in cols:
        frame[c] = fc[c].to_numpy()
    frame[S.MODEL] = "engine"
    out = adjust(frame)
    out = out[out[S.GPU_TYPE] != ALL_GPUS]
    per_series = pd.DataFrame({S.UID: S.series_id(out[S.TEAM], out[S.GPU_TYPE]).to_numpy(),
                               S.DS: out[S.TIMESTAMP].to_numpy(), **{c: out[c].to_numpy() for c in cols}})
    team_rows = fc[fc[S.UID].str.endswith(S.UID_SEP + ALL_GPUS)]
    if not team_rows.empty:   # a team total moves by the sum of its series' adjustments
        base = pd.DataFrame({S.UID: S.series_id(frame[S.TEAM], frame[S.GPU_TYPE]).to_numpy(), S.DS: frame[S.TIMESTAMP],
                             "before": frame[S.MEAN].to_numpy()})
        delta = per_series.merge(base, on=[S.UID, S.DS], how="left")
        delta["d"] = delta[S.MEAN] - delta["before"].fillna(0.0)
        delta["team_uid"] = S.split_uid(delta[S.UID])[0].map(team_uid)
        shift = delta.groupby(["team_uid", S.DS])["d"].sum()
        team_rows = team_rows.copy()
        add = pd.Series(list(zip(team_rows[S.UID], team_rows[S.DS], strict=True))).map(shift).fillna(0.0).to_numpy()
        for c in cols:
            team_rows[c] = team_rows[c].to_numpy() + add
        per_series = pd.concat([per_series, team_rows[[S.UID, S.DS, *cols]]], ignore_index=True)
    return per_series


def _with_impact(found: pd.DataFrame, fc: pd.DataFrame, actual: pd.DataFrame, grid: pd.DatetimeIndex,
                 rates: Callable[[str], float]) -> pd.DataFrame:
    if found.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("team", "gpu_type", "kind") else float)
                             for c in COLUMNS}).astype({"start": "datetime64[ns]", "end": "datetime64[ns]"})
    mean = fc.pivot_table(index=S.DS, columns=S.UID, values=S.MEAN, aggfunc="sum").reindex(grid).fillna(0.0)
    impacts = []
    for _, r in found.iterrows():
        if r["gpu_type"] != ALL_GPUS:
            impacts.append((r["actual_gpu_hours"] - r["expected_gpu_hours"]) * rates(r["gpu_type"]))
            continue
        prefix = f"{S.escape_key(r['team'])}{S.UID_SEP}"
        total = 0.0
        for uid in mean.columns:
            if uid.startswith(prefix) and not uid.endswith(S.UID_SEP + ALL_GPUS):
                act = actual[uid].to_numpy()[r["_sl"]].sum() if uid in actual.columns else 0.0
                total += (act - mean[uid].to_numpy()[r["_sl"]].sum()) * rates(S.split_key(uid)[1])
        impacts.append(total)
    out = found.assign(impact_usd=impacts)
    out = out.sort_values(["end", "start", "score"], ascending=[False, False, False], kind="stable")
    out = out[list(COLUMNS)].reset_index(drop=True)
    for c in ("expected_gpu_hours", "actual_gpu_hours", "impact_usd"):
        out[c] = out[c].astype(float).round(2)
    out["score"] = out["score"].astype(float).round(3)
    return out


def to_csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table as written to CSV: ISO 8601 ``Z`` times."""
    out = table.copy()
    for c in ("start", "end"):
        out[c] = S.format_timestamp(pd.to_datetime(out[c]))
    return out


def describe(row: pd.Series | dict) -> str:
    """One line about an anomaly for people (notifications, the console)."""
    scope = row["team"] + ("" if row["gpu_type"] == ALL_GPUS else f" / {row['gpu_type']}")
    start = pd.Timestamp(row["start"])
    end = pd.Timestamp(row["end"])
    word = {"spike": "spike", "drop": "drop", "level_shift": "level shift", "drift": "slow drift"}[row["kind"]]
    return (f"{scope}: {word} {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, {row['actual_gpu_hours']:,.0f} "
            f"GPU-hours vs {row['expected_gpu_hours']:,.0f} expected, {row['impact_usd']:+,.0f} USD at list rates "
            f"(score {row['score']:.2f})")

