"""What makes the engine's sample paths honest for the plan horizon: calibrated widths and level shifts.

Units: GPUs in use averaged over each hour (= GPU-hours per hour); levels are daily means in GPUs; horizons
and histories in hours, level history in days.

:func:`forecasting.engine.sample_paths` replays whole CV error trajectories of the chosen model (the
co-movement of teams and the hourly shape of errors). Two things were missing, measured on the plan
backtest (``benchmarks/plan_backtest.py``, docs/benchmarks.md):

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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting import schema as S

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
