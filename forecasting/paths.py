"""What makes the engine's sample paths honest for the plan horizon: calibrated widths, level shifts, short histories.

Units: GPUs in use averaged over each hour (= GPU-hours per hour); levels are daily means in GPUs; horizons
and histories in hours, level history in days; random-walk rates in GPUs^2 per hour, spreads in GPUs.

:func:`forecasting.engine.sample_paths` replays whole CV error trajectories of the chosen model (the
co-movement of teams and the hourly shape of errors). Three things were missing, the first two measured on the
plan backtest (``benchmarks/plan_backtest.py``), the third on ``benchmarks/short_history.py`` (docs/benchmarks.md):

* **Width.** Quantiles are calibrated with the ``blend`` of the series' own CV errors and the pooled,
  noise-scaled errors of all series (:func:`forecasting.engine.conformal_quantiles`); the paths replayed the
  raw own errors. :func:`widening` gives, per series, the factor that turns the p10-p90 width of its own
  errors into the blended width, so the replay's spread matches the calibrated band (applied beyond the CV
  window: synthetic org 8 x 720 h, plan ÷ hindsight 1.033 -> 1.029 without spot, 1.036 -> 1.034 with; on
  168 h plans it was mixed, so paths within the CV window keep the raw replay).
* **Level shifts beyond the CV window.** CV windows are at most 336 hours and come from the last few weeks,
  so a 720-hour plan saw paths whose window means varied by about ±5% while the realised H100 window mean
  of the synthetic organisation missed its forecast by 25% on average (training runs start and stop).
  :func:`level_shifts` adds, per path, the change in the series' daily level seen after a historical day
  (one day drawn per path for all series together, so teams keep moving together), from a year of daily
  levels (:func:`daily_levels`). The change is split into a predictable part and a residual: demand above
  its trailing :data:`ANCHOR_DAYS`-day mean tends to come back (a run ends), so the expected change
  ``beta_j * (level - trailing mean)`` is fitted per series and horizon day ``j`` (least squares, ``beta``
  in [-1, 0]) and applied to today's deviation, and the residual of the drawn day is added on top; a path's
  level never goes below the lowest daily level of the history. Shifts are added only when the horizon is
  longer than the CV window (within it the CV errors are horizon-matched).
* **Short history against the horizon.** Both of the above need history: CV errors need a few windows of the
  CV length, level shifts need many historical days a horizon apart. A series whose history spans fewer than
  :data:`SHORT_HISTORY_FACTOR` horizons, beyond the hours its own CV errors checked (or without any CV errors),
  is flagged by :func:`short_history`; its quantiles and paths get a Gaussian random walk on top from the hour
  after the checked ones, with variance :func:`walk_rate` x hours (GPUs^2; the spread grows like the square
  root of lead time, :func:`walk_sd`, :func:`widen_offsets`, :func:`walk_paths`), and a series without CV
  errors first gets its history's hourly standard deviation (:func:`spread_floor`). On the synthetic
  organisation a 720-hour total from 60 days of history fell inside its p10-p90 for 60-66% of the series
  without this and 74-76% with it (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from usage import schema as S

ANCHOR_DAYS = 120
"""Trailing days whose mean level demand is expected to return to. Plan ÷ hindsight, synthetic org, 720 h
windows without spot (8 / 12 origins): 30 days 1.037 / -, 60 days 1.034 / -, 120 days 1.033 / 1.031 (no
shifts: 1.044 / 1.063)."""
MIN_ANCHOR_DAYS = 7
"""Fewer days of level history than this (beyond the horizon) and no level shifts are drawn."""
MIN_OWN_WIDTH = 0.05
"""A series' own p10-p90 error width below this fraction of its pooled width is degenerate (mostly zero errors):
its replay is not rescaled."""
MAX_WIDEN = 5.0
"""Rescaling factors are kept within [1 / MAX_WIDEN, MAX_WIDEN]."""


def daily_levels(long: pd.DataFrame, hours: int | None) -> pd.DataFrame | None:
    """Mean GPUs of each series per whole day counted back from the data's last hour.

    Args:
        long: ``unique_id, ds, y`` (hourly, GPUs).
        hours: how far back (None = all the data).

    Returns:
        Index ``unique_id``; column ``k`` averages the 24 hours ending ``24 k`` hours before the hour after the
        last one (NaN where a series had no rows). None when ``hours`` is less than a day.
    """
    days = None if hours is None else hours // 24
    if days is not None and days < 1:
        return None
    end = long[S.DS].max()
    day = ((end - long[S.DS]) // pd.Timedelta(hours=1)).to_numpy() // 24
    keep = day < days if days is not None else np.ones(len(day), dtype=bool)
    frame = pd.DataFrame({S.UID: long[S.UID].to_numpy()[keep], "k": day[keep], S.Y: long[S.Y].to_numpy()[keep]})
    wide = frame.groupby([S.UID, "k"])[S.Y].mean().unstack("k")
    return wide.reindex(columns=range(int(wide.columns.max()) + 1))


def widening(errors: pd.DataFrame, noise: pd.Series | None, min_errors: int) -> dict[str, float]:
    """Per series, blended p10-p90 error width over the width of its own CV errors.

    Args:
        errors: CV errors ``unique_id, window, step, error`` (GPUs).
        noise: per-series noise scale (``forecasting.engine.noise_scale``), None without blend calibration.
        min_errors: fewest pooled scaled errors for a pooled quantile (as the quantile calibration).

    Returns:
        ``uid -> factor``; series left out (or without pooled errors) keep their replay as it is.
    """
    if noise is None or errors.empty:
        return {}
    s = noise.where(noise > 0)
    z = (errors["error"] / errors[S.UID].map(s)).to_numpy(dtype=float)
    z = z[np.isfinite(z)]
    if len(z) < min_errors:
        return {}
    z10, z90 = np.quantile(z, [0.1, 0.9])
    own = errors.groupby(S.UID)["error"].quantile([0.1, 0.9]).unstack()
    width = (own[0.9] - own[0.1]).to_numpy(dtype=float)
    pooled = (z90 - z10) * own.index.map(s).to_numpy(dtype=float)
    usable = np.isfinite(pooled) & (width > 1e-9) & (width > MIN_OWN_WIDTH * np.nan_to_num(pooled, nan=0.0))
    factor = np.where(usable, 0.5 * (width + np.nan_to_num(pooled)) / np.where(usable, width, 1.0), 1.0)
    return dict(zip(own.index, np.clip(factor, 1.0 / MAX_WIDEN, MAX_WIDEN), strict=True))


def shift_origins(levels: pd.DataFrame | None, hours: int, n_paths: int, rng: np.random.Generator
                  ) -> np.ndarray | None:
    """One historical day per path (column index of ``levels``) from which ``hours`` of level change can be
    read, or None when the level history is too short.

    The days are stratified (one uniform draw in each of ``n_paths`` equal slices of the usable history, in
    random order): with 50 paths that spreads the draws over the whole year instead of clustering them
    (synthetic org, 8 x 720 h without spot: plan ÷ hindsight 1.028 vs 1.030 with independent draws)."""
    if levels is None:
        return None
    days = -(-hours // 24)
    first = days + 1
    if levels.shape[1] - first < MIN_ANCHOR_DAYS:
        return None
    span = levels.shape[1] - first
    picks = first + np.floor((np.arange(n_paths) + rng.random(n_paths)) / n_paths * span).astype(int)
    return rng.permutation(picks)


def _trailing_mean(row: np.ndarray, span: int) -> np.ndarray:
    """``out[a]`` = mean of the finite values of ``row[a:a + span]`` (NaN when none or past the end)."""
    ok = np.isfinite(row)
    csum = np.r_[0.0, np.cumsum(np.where(ok, row, 0.0))]
    ccnt = np.r_[0, np.cumsum(ok)]
    out = np.full(len(row), np.nan)
    a = np.arange(len(row) - span + 1)
    cnt = ccnt[a + span] - ccnt[a]
    out[a] = np.where(cnt > 0, (csum[a + span] - csum[a]) / np.maximum(cnt, 1), np.nan)
    return out


def level_shifts(row: np.ndarray, origins: np.ndarray, hours: int, anchor_days: int = ANCHOR_DAYS) -> np.ndarray:
    """Level shift of one series per path and hour ahead, ``(len(origins), hours)`` GPUs.

    ``row[k]`` is the series' level ``k`` days before the forecast origin (:func:`daily_levels`); a path drawn
    at historical day ``a`` gets, on horizon day ``j``, ``beta_j * dev_now + (row[a - 1 - j] - row[a] -
    beta_j * dev[a])`` with ``dev`` the level minus its trailing mean over ``anchor_days`` (fewer when the
    history is short) and ``beta_j`` the least-squares slope of the level change on ``dev`` over all days,
    kept in [-1, 0]. Unknown levels give no shift.
    """
    days = -(-hours // 24)
    n = len(row)
    span = min(anchor_days, (n - days - 1) // 2)
    if span < 1:
        return np.zeros((len(origins), hours))
    dev = row - _trailing_mean(row, span)
    j = np.arange(days)
    at = np.arange(days + 1, n)
    change = row[at[:, None] - 1 - j[None, :]] - row[at][:, None]
    d = dev[at]
    ok = np.isfinite(d)[:, None] & np.isfinite(change)
    num = np.where(ok, d[:, None] * change, 0.0).sum(axis=0)
    den = np.where(ok, d[:, None] ** 2, 0.0).sum(axis=0)
    beta = np.clip(np.divide(num, den, out=np.zeros(days), where=den > 0), -1.0, 0.0)
    dev_now = dev[0] if np.isfinite(dev[0]) else 0.0
    drawn = row[origins[:, None] - 1 - j[None, :]] - row[origins][:, None]
    residual = drawn - beta[None, :] * np.nan_to_num(dev[origins], nan=0.0)[:, None]
    daily = np.nan_to_num(beta[None, :] * dev_now + residual, nan=0.0)
    if np.isfinite(row[0]) and np.isfinite(row).any():
        # never below the lowest daily level of the history: a run that ended in the drawn past cannot take
        # away demand that was never there
        daily = np.maximum(daily, np.nanmin(row) - row[0])
    return np.repeat(daily, 24, axis=1)[:, :hours]


# --- Short history against the horizon ---------------------------------------------------------------------------

SHORT_HISTORY_FACTOR = 4.0
"""A series' history is short against the horizon when it spans fewer than this many horizons (and the horizon
goes beyond the hours its own CV errors checked): a month ahead from 60 days of history has seen the month-on-month
change of its level about once. On the synthetic organisation's tuning origins (``benchmarks/short_history.py``,
docs/benchmarks.md) the unwidened 720-hour totals of a series fell inside their p10-p90 for 1% (1-14 days of
history: no CV, zero width), 45% (30 days), 66% (60), 71% (90), 78% (120) and 75% (180 days) of the series: from
four horizons on, as often as with the longer histories."""
WALK_NOISE_FACTOR = 0.3
"""Random-walk rate of a short series: ``(factor x noise)^2`` GPUs^2 per hour, so the walk's standard deviation
``u`` hours after the checked ones is ``factor x noise x sqrt(u)``, with ``noise`` the mean absolute hour-to-hour
change over the fitted history (GPUs). Chosen on the tuning origins from 0.2 / 0.3 / 0.4 / 0.5: mean |coverage -
0.8| of hourly p10-p90 and horizon totals over the short cells 0.064 / 0.063 / 0.070 / 0.086 (floor level share
0.5; 0.2 and 0.3 tie within Monte Carlo noise, 0.3 covers the month totals from 30-60 days better)."""
FLOOR_LEVEL_SHARE = 0.5
"""Share of a floor's variance (:func:`spread_floor`) that sample paths hold for the whole horizon (a level error:
without CV errors the point forecast's level itself is unsure); the rest is independent from hour to hour. Tuning
origins, factor 0.3: mean |coverage - 0.8| 0.078 / 0.063 / 0.066 with share 0 / 0.5 / 1 (with 0 a week's total from
1-7 days of history fell inside its p10-p90 for only 57-60% of the series)."""
WALK_CORRELATION = 0.5
"""Share of the walk's variance common to all series of a run (the rest is each series' own): teams' level changes
are partly joint (growth, holidays) and partly not (each team's training runs). Tuning origins: the
organisation's total per GPU model fell inside its p10-p90 65% / 83% / 86% of the time with 0 / 0.5 / 1."""


def short_history(history_hours: np.ndarray, checked_hours: np.ndarray, horizon_hours: int,
                  factor: float = SHORT_HISTORY_FACTOR, cross_validated: bool = True) -> np.ndarray:
    """Which series' history is short against the horizon (the rule behind the engine's widening).

    Args:
        history_hours: hours each series has been observed up to the forecast origin (before
            ``ForecastConfig.history_hours`` trims the fit).
        checked_hours: hours ahead its own cross-validation errors cover (the CV window length; 0 without CV
            errors).
        horizon_hours: hours forecast.
        factor: :data:`SHORT_HISTORY_FACTOR`.
        cross_validated: False when the run did not attempt CV (``ForecastConfig.cv_windows=0``): then a series
            without CV errors is short only by the history clause.

    Returns:
        Boolean array: True where the horizon goes beyond ``checked_hours`` and either nothing was checked
        (no CV errors although CV was attempted: the history was too short for a single window, and the range
        would otherwise be borrowed or zero-width at every lead time) or the history spans fewer than ``factor``
        horizons.
    """
    history = np.asarray(history_hours, dtype=float)
    checked = np.asarray(checked_hours, dtype=float)
    beyond = horizon_hours > checked
    return beyond & (((checked <= 0) & cross_validated) | (history < factor * horizon_hours))


def walk_rate(noise: np.ndarray, factor: float = WALK_NOISE_FACTOR) -> np.ndarray:
    """Random-walk variance per hour of each series, ``(factor x noise)^2`` (GPUs^2 per hour) from its mean
    absolute hour-to-hour change ``noise`` (GPUs); 0 where that is NaN or 0: a series without any change in its
    history gives no rate to measure."""
    s = np.nan_to_num(np.asarray(noise, dtype=float), nan=0.0)
    return (factor * np.clip(s, 0.0, None)) ** 2


def walk_sd(rate: np.ndarray, checked_hours: np.ndarray, lead_hours: np.ndarray) -> np.ndarray:
    """Standard deviation of the random walk at each lead time: ``sqrt(rate x max(lead - checked, 0))`` GPUs.

    Args:
        rate: GPUs^2 per hour (:func:`walk_rate`), broadcast against ``lead_hours``.
        checked_hours: hours ahead the CV errors cover; the walk starts after them.
        lead_hours: hours ahead (1 = the first forecast hour).

    Returns:
        GPUs, never smaller at a longer lead time; 0 up to ``checked_hours``.
    """
    u = np.clip(np.asarray(lead_hours, dtype=float) - np.asarray(checked_hours, dtype=float), 0.0, None)
    return np.sqrt(np.asarray(rate, dtype=float) * u)


def widen_offsets(offsets: np.ndarray, z: np.ndarray, sd: np.ndarray, lo: int, hi: int,
                  base: np.ndarray | None = None) -> np.ndarray:
    """Quantile offsets from the point forecast with a random walk added in quadrature.

    Args:
        offsets: ``(rows, quantiles)`` quantile minus point forecast (GPUs), from cross-validation (0 without).
        z: standard-normal quantile of each column (e.g. -1.2816 for p10, 0 for p50).
        sd: ``(rows,)`` walk standard deviation (:func:`walk_sd`, GPUs).
        lo, hi: columns of the p10 and p90 offsets.
        base: ``(rows,)`` standard deviation (GPUs) the band has at least before the walk is added: for series
            without CV errors, whose calibrated band is zero or borrowed (:func:`spread_floor`). None = 0.

    Returns:
        ``offsets + z x (sqrt(max(c, base)^2 + sd^2) - c)``, with ``c`` the standard deviation the calibrated
        p10-p90 width implies (width / (z_hi - z_lo)): the band keeps its shape and grows as if an independent
        Gaussian walk (and hourly noise of sd ``base``) were added to it. Rows with ``sd`` 0 and ``base`` at
        most ``c`` are returned unchanged; the spread is never narrower where ``sd`` is larger.
    """
    offsets = np.asarray(offsets, dtype=float)
    z = np.asarray(z, dtype=float)
    sd = np.asarray(sd, dtype=float)
    c = np.clip(offsets[:, hi] - offsets[:, lo], 0.0, None) / (z[hi] - z[lo])
    floor = c if base is None else np.maximum(c, np.asarray(base, dtype=float))
    extra = np.sqrt(floor**2 + sd**2) - c
    return np.where((extra > 0)[:, None], offsets + z[None, :] * extra[:, None], offsets)


def spread_floor(y: np.ndarray, uid: np.ndarray) -> pd.Series:
    """Standard deviation of each series' hourly values over its history (GPUs): the hour-to-hour spread a series
    without any CV error is given around its point forecast before the walk (a day of history holds the
    series' daily swing, a week its weekly one)."""
    return pd.Series(np.asarray(y, dtype=float)).groupby(np.asarray(uid)).std(ddof=0).fillna(0.0)


def walk_paths(shocks: np.ndarray, checked_hours: int, hours: int) -> np.ndarray:
    """Standard random walks starting after the checked hours, ``(n_paths, hours)`` in units of ``sqrt(hours)``.

    Args:
        shocks: ``(n_paths, >= hours)`` independent standard-normal hourly increments.
        checked_hours: hours ahead covered by CV errors: the walk is 0 up to and including that lead time.
        hours: hours ahead.

    Returns:
        ``W[:, t]`` = sum of the increments of lead times ``checked + 1 .. t + 1``: variance ``max(t + 1 -
        checked, 0)``, as :func:`walk_sd` with rate 1. Multiply by ``sqrt(rate)`` for GPUs.
    """
    lead = np.arange(1, hours + 1)
    steps = np.where((lead > checked_hours)[None, :], shocks[:, :hours], 0.0)
    return np.cumsum(steps, axis=1)
