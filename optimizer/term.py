"""The term horizon: every commitment judged over its whole term, each demand scenario carried through it.

A 1-year commitment is paid for 8,760 hours whether it is used or not; judged on a 720-hour window it is bought
for demand the organisation may not have after the window. A plan's horizon therefore runs from the window start
to the end of the longest term it considers (:attr:`optimizer.inputs.PlanConfig.horizon_end`, at most 36 months).

Units: demand in GPUs per hour (= GPU-hours per hour); times are UTC hours; money in USD; the cost of capital is an
annual rate (0.1 = 10% a year).

Scenario demand over the horizon, per (team, GPU type) series and scenario:

* **Near hours**: the first :data:`NEAR_HOURS` hours of the window (the whole window when it is shorter) come from
  the hourly engine as before: its joint sample paths, the replayed recent history (:func:`with_history`, the same
  replay as :func:`optimizer.inputs.scenarios_with_history`) and planned events applied to every scenario
  (:func:`with_events`).
* **After them** (the rest of a long window, then the tail up to the horizon's end), each scenario is carried on:
  - a sample path (or a p10/p50/p90 path) takes the long-term forecast (:mod:`forecasting.longterm`: daily quantiles
    with the trend estimated from the history, weekly seasonality and planned events with their wind-downs) at its
    own quantile level, spread over the hours with one of the recorded weeks of the series' hour-of-week profile (a
    different week per scenario and calendar week, so the within-day shape keeps its spread). Its quantile level is
    its rank among all scenarios by the series' mean demand over the last week of its near hours (weighted mid-rank
    in (0, 1); ties, e.g. a series that is 0 in every path, are broken by the scenario's organisation-wide rank): a
    path that ends high stays in the upper part of the long-term distribution, and teams keep the co-movement their
    joint paths had. Quantile levels between the forecast's p05...p95 are interpolated linearly; beyond them the
    p05-p10 (p90-p95) slope is extended, never below 0 GPUs.
  - a replayed-history scenario keeps replaying its span of the recent history (wrapped), grown by the series'
    estimated trend and with the planned events (:data:`REPLAY_TAIL`): the recent past stays part of the term's
    demand as it is of the window's. Only a full span (:data:`optimizer.inputs.HISTORY_DAYS` days) carries on:
    from a shorter history the replays take the long-term forecast at their rank like the paths.
  The planner's long-term forecast keeps the spread its cross-validation measured at every lead time, widened by
  the estimated trend's own uncertainty (:data:`LONGTERM_SETTINGS`). Because every scenario keeps its level through
  the horizon, the cost range of a longer horizon is never narrower than that of a shorter one.

Growth settings (``PlanConfig.growth``, ``team_growth``) multiply every hour of the horizon, and rightsizing's
``gpu_map`` moves each series to its routed GPU model (its GPUs times old / new throughput), as for the window.

Discounting (:func:`discount`): a cash flow ``t`` hours after the window start is worth
``(1 + cost_of_capital) ** (-t / 8760)`` of its amount at the start. The optimizer and the plan's present value
count upfront payments at their purchase hour and recurring charges, spot and on-demand at the middle of the period
(the window, or a calendar month after it) they accrue in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from optimizer.inputs import (
    HISTORY_DAYS,
    HISTORY_WEIGHT,
    PLAN_PATHS,
    SCENARIO_WEIGHTS,
    PlanConfig,
    PlanningError,
    Scenarios,
    replay_span,
)
from usage import schema as S

NEAR_HOURS = 720
"""Hours of the window planned on the hourly engine's sample paths and the replayed history: the longest window
those were tuned and backtested on (docs/benchmarks.md, 720 h origins of the synthetic org). Later hours come from
the long-term forecast."""
LONGTERM_SETTINGS: dict = {"spread_growth": 0.0}
""":class:`forecasting.longterm.LongTermConfig` settings of the planner's long-term forecast, chosen on the full-term
backtest's tuning origins (``benchmarks/plan_backtest_term.py``, docs/benchmarks.md): the quantiles keep the spread
the model's cross-validation measured at every lead time (plus the estimated trend's own uncertainty, which grows
with lead time) instead of extrapolating it like a random walk, which made plans sized too low (plan / hindsight over
the terms 1.0138 vs 1.0166 without spot, 1.0118 vs 1.0154 with spot, replays carried on in both)."""
REPLAY_TAIL = True
"""Replayed-history scenarios keep replaying their span after the near hours, grown by the estimated trend and with
planned events (:func:`carry_through`): the recent history stays a part of the term's demand, as it is of the
window's. Chosen on the full-term backtest's tuning origins (plan / hindsight 1.0166 vs 1.0302 without spot at the
long-term model's own spread; see :data:`LONGTERM_SETTINGS`)."""
LEVEL_HOURS = 168
"""Hours at the end of the near part whose mean demand ranks a scenario for the long term."""
HOURS_PER_YEAR = 8760.0
MIN_PLAN_HISTORY_HOURS = 24
"""A plan needs at least one daily cycle of usage history: from fewer hours the forecast cannot tell a level from a
time of day, and its range cannot be estimated (a 2-hour upload gave a month's plan with p10 = p90)."""
SHORT_HISTORY_DAYS = 14
"""A plan whose usage history is shorter than this many days considers no multi-year (3-year) commitment unless
asked to explicitly (``gpuplan plan --allow-short-history``)."""

Key = tuple[str, str]


def discount(hours_from_start: np.ndarray | float, rate: float) -> np.ndarray:
    """Present-value factor of cash ``hours_from_start`` hours after the window start at an annual ``rate``."""
    t = np.asarray(hours_from_start, dtype=float)
    if rate == 0.0:
        return np.ones_like(t)
    return np.power(1.0 + rate, -t / HOURS_PER_YEAR)


def hour_range(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Hour starts in [start, end) (empty when ``end <= start``; pandas returns ``[start]`` for start == end)."""
    if end <= start:
        return pd.DatetimeIndex([])
    return pd.date_range(start, end, freq="h", inclusive="left")


def month_discounts(hours: pd.DatetimeIndex, origin: pd.Timestamp, rate: float) -> np.ndarray:
    """Per hour, the present-value factor at the middle of its calendar month's part of ``hours`` (the month
    clipped to the hours given), counted from ``origin``: how the plan's present value counts recurring
    charges, spot and on-demand."""
    if len(hours) == 0:
        return np.zeros(0)
    t = ((hours - origin) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
    if rate == 0.0:
        return np.ones(len(hours))
    month = np.asarray(hours.year * 12 + hours.month)
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    ends = np.r_[starts[1:], len(hours)]
    mids = np.empty(len(hours))
    for a, b in zip(starts, ends, strict=True):
        mids[a:b] = (t[a] + t[b - 1] + 1.0) / 2.0
    return discount(mids, rate)


@dataclass(frozen=True)
class SeriesScenarios:
    """Hourly demand per (team, GPU type) series and scenario over the first hours of a plan window.

    Attributes:
        hours: the hours covered, from the window start.
        names: scenario names (``path0``..., ``history0``... or ``p10/p50/p90``).
        weights: scenario weights (sum 1).
        values: ``(team, gpu_type) -> (n_scenarios, len(hours))`` GPUs, never negative. Growth is not applied
            yet (:func:`carry_through` applies it).
    """

    hours: pd.DatetimeIndex
    names: tuple[str, ...]
    weights: np.ndarray
    values: dict[Key, np.ndarray]
    replay: dict[Key, np.ndarray] | None = None
    replay_start: np.ndarray | None = None
    events: tuple = ()
    """With replayed history (:func:`with_history`): each series' hourly demand over the replayed span, and per
    scenario the hour of the span its replay starts at (-1 for scenarios that are not replays)."""


def _key(uid: str) -> Key:
    team, gpu = S.split_key(uid)
    return team, gpu


def series_from_paths(long, start: pd.Timestamp, hours: int, n_paths: int = PLAN_PATHS,
                      seed: int = 0) -> SeriesScenarios:
    """The engine's joint sample paths (:func:`forecasting.engine.sample_paths`) per series on ``hours`` hours
    from ``start``, equally weighted.

    Raises:
        PlanningError: the forecast does not cover every hour.
    """
    from forecasting.engine import sample_paths

    grid = pd.date_range(start, periods=hours, freq="h")
    paths = sample_paths(long, n_paths, seed)
    values: dict[Key, np.ndarray] = {}
    covered = None
    for uid, rows in long.forecast.groupby(S.UID, sort=False):
        pos = pd.DatetimeIndex(rows[S.DS]).get_indexer(grid)
        covered = (pos >= 0) if covered is None else covered & (pos >= 0)
        values[_key(uid)] = np.where(pos >= 0, paths[uid][:, np.clip(pos, 0, None)], 0.0)
    if covered is None or not covered.all():
        n = 0 if covered is None else int(covered.sum())
        raise PlanningError(f"the forecast covers {n} of the {len(grid)} window hours "
                            "(fix: forecast with --horizon-hours at least the window length)")
    return SeriesScenarios(hours=grid, names=tuple(f"path{i}" for i in range(n_paths)),
                           weights=np.full(n_paths, 1.0 / n_paths), values=values)


def series_from_forecast(fc: pd.DataFrame, start: pd.Timestamp, hours: int) -> SeriesScenarios:
    """The forecast's p10/p50/p90 paths per series, weighted 0.3/0.4/0.3 (Swanson's rule, as
    :func:`optimizer.inputs.scenarios_from_forecast`).

    Raises:
        PlanningError: the forecast does not cover every hour.
    """
    grid = pd.date_range(start, periods=hours, freq="h")
    names = tuple(SCENARIO_WEIGHTS)
    inside = fc[(fc[S.TIMESTAMP] >= grid[0]) & (fc[S.TIMESTAMP] <= grid[-1])]
    covered = inside[S.TIMESTAMP].nunique()
    if covered < len(grid):
        raise PlanningError(f"the forecast covers {covered} of the {len(grid)} window hours "
                            "(fix: forecast with --horizon-hours at least the window length)")
    values = {}
    for (team, gpu), rows in inside.groupby([S.TEAM, S.GPU_TYPE], sort=True):
        per_hour = rows.groupby(S.TIMESTAMP)[list(names)].sum().reindex(grid, fill_value=0.0)
        values[(str(team), str(gpu))] = per_hour.to_numpy(dtype=float).T.copy()
    return SeriesScenarios(hours=grid, names=names, weights=np.array([SCENARIO_WEIGHTS[n] for n in names]),
                           values=values)


def with_history(series: SeriesScenarios, history: pd.DataFrame, days: int = HISTORY_DAYS,
                 weight: float = HISTORY_WEIGHT) -> SeriesScenarios:
    """The scenarios plus the last ``days`` days of realised demand of each series replayed as extra scenarios.

    The replay of :func:`optimizer.inputs.scenarios_with_history`, kept per series: each whole day of the replayed
    span starts one scenario of ``len(series.hours)`` hours, wrapping around the span's end; the span ends at the
    last whole day (same hour of day as the window start) before the history ends; hours without rows count as 0
    GPUs. The replays weigh ``weight`` together, the given scenarios keep ``1 - weight`` in their proportions.
    With ``weight`` 0, no history or less than a day of it, the scenarios come back unchanged.

    Raises:
        PlanningError: ``weight`` outside 0-1 or ``days`` below 1.
    """
    length = len(series.hours)
    span = replay_span(history, series.hours[0], days, weight)
    if span is None:
        return series
    n_days = len(span) // 24
    rows = history[(history[S.TIMESTAMP] >= span[0]) & (history[S.TIMESTAMP] <= span[-1])]
    idx = (np.arange(n_days)[:, None] * 24 + np.arange(length)[None, :]) % len(span)
    per = rows.groupby([S.TEAM, S.GPU_TYPE, S.TIMESTAMP])[S.GPUS].sum()
    replays: dict[Key, np.ndarray] = {}
    for (team, gpu), values in per.groupby(level=[0, 1], sort=True):
        hourly = values.droplevel([0, 1]).reindex(span, fill_value=0.0).to_numpy(dtype=float)
        replays[(str(team), str(gpu))] = hourly[idx]
    n_paths = len(series.names)
    out = {}
    for key in sorted(set(series.values) | set(replays)):
        ahead = series.values.get(key, np.zeros((n_paths, length)))
        past = replays.get(key, np.zeros((n_days, length)))
        out[key] = np.vstack([ahead, past])
    weights = np.concatenate([np.asarray(series.weights, dtype=float) * (1.0 - weight),
                              np.full(n_days, weight / n_days)])
    spans = {}
    for (team, gpu), values in per.groupby(level=[0, 1], sort=True):
        spans[(str(team), str(gpu))] = values.droplevel([0, 1]).reindex(span, fill_value=0.0).to_numpy(dtype=float)
    starts = np.r_[np.full(n_paths, -1), np.arange(n_days) * 24]
    return SeriesScenarios(hours=series.hours, names=series.names + tuple(f"history{i}" for i in range(n_days)),
                           weights=weights, values=out, replay=spans, replay_start=starts)


def event_effects(events: Sequence, keys: Sequence[Key], hours: pd.DatetimeIndex
                  ) -> dict[Key, tuple[np.ndarray, np.ndarray]]:
    """Planned events as an affine change of each series per hour: ``new = a * old + b`` (GPUs).

    Every event kind is affine in the demand it applies to (add: +gpus; set: the level; scale: x factor;
    wind_down: x the ramp; partial hours pro rata), so applying :func:`forecasting.events.apply_events` to a
    demand of 0 and of 1 GPU gives ``b`` and ``a + b``. Series the events create get ``a = 0``.
    """
    from forecasting.events import apply_events

    frame = pd.DataFrame({
        S.TEAM: np.repeat([k[0] for k in keys], len(hours)),
        S.GPU_TYPE: np.repeat([k[1] for k in keys], len(hours)),
        S.TIMESTAMP: np.tile(hours.to_numpy(), len(keys)),
        S.MEAN: 0.0, "p_zero": 0.0, "p_one": 1.0})
    after, _ = apply_events(frame, events, time_col=S.TIMESTAMP, quantile_cols=["p_zero", "p_one"],
                            period=pd.Timedelta(hours=1))
    out = {}
    for (team, gpu), rows in after.groupby([S.TEAM, S.GPU_TYPE], sort=True):
        rows = rows.set_index(S.TIMESTAMP).reindex(hours)
        zero, one = rows["p_zero"].to_numpy(dtype=float), rows["p_one"].to_numpy(dtype=float)
        a = one - zero if (team, gpu) in set(keys) else np.zeros(len(hours))
        out[(str(team), str(gpu))] = (a, zero)
    return out


def with_events(series: SeriesScenarios, events: Sequence) -> SeriesScenarios:
    """Planned events applied to every scenario of every series (as :func:`forecasting.events.apply_events` applies
    them to quantiles: ``add`` moves each scenario up, ``wind_down`` ramps each to 0, ...); series an event creates
    join with the event's demand in every scenario."""
    if not events:
        return series
    n = len(series.names)
    effects = event_effects(events, list(series.values), series.hours)
    values = {}
    for key, (a, b) in effects.items():
        base = series.values.get(key, np.zeros((n, len(series.hours))))
        values[key] = np.clip(base * a[None, :] + b[None, :], 0.0, None)
    return replace(series, values=values, events=tuple(series.events) + tuple(events))


def weighted_ranks(primary: np.ndarray, secondary: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mid-ranks in (0, 1): the share of weight below each scenario plus half its own, ordered by
    ``primary`` then ``secondary`` (ties) then position."""
    order = np.lexsort((np.arange(len(primary)), secondary, primary))
    w = np.asarray(weights, dtype=float)[order]
    mid = np.cumsum(w) - w / 2.0
    u = np.empty(len(primary))
    u[order] = mid / w.sum()
    return u


QUANTILE_LEVELS = (("p05", 0.05), ("p10", 0.10), ("p50", 0.50), ("p90", 0.90), ("p95", 0.95))


def quantile_weights(u: np.ndarray) -> np.ndarray:
    """(len(u), 5) weights that turn the p05, p10, p50, p90, p95 columns into the quantile at each level ``u``:
    linear between neighbouring levels, the end slopes extended outside p05...p95."""
    levels = np.array([q for _, q in QUANTILE_LEVELS])
    u = np.asarray(u, dtype=float)
    j = np.clip(np.searchsorted(levels, u, side="right") - 1, 0, len(levels) - 2)
    frac = (u - levels[j]) / (levels[j + 1] - levels[j])
    out = np.zeros((len(u), len(levels)))
    rows = np.arange(len(u))
    out[rows, j] = 1.0 - frac
    out[rows, j + 1] = frac
    return out


@dataclass(frozen=True)
class _LongTermView:
    """One series' daily quantiles and hour-of-week profile from a long-term forecast."""

    first_day: pd.Timestamp
    quantiles: np.ndarray     # (days, 5) GPUs: p05, p10, p50, p90, p95
    ratio: np.ndarray         # (profile weeks, 168)


def _longterm_views(longterm) -> dict[Key, _LongTermView]:
    from forecasting.events import DATE
    from forecasting.longterm import _ratio_table

    daily = longterm.daily.sort_values([S.TEAM, S.GPU_TYPE, DATE], kind="stable")
    keys = daily[[S.TEAM, S.GPU_TYPE]].drop_duplicates().reset_index(drop=True)
    table = _ratio_table(longterm.profile, keys)
    cols = [c for c, _ in QUANTILE_LEVELS]
    row_of = {(str(t), str(g)): j for j, (t, g) in enumerate(keys.itertuples(index=False))}
    out = {}
    for (team, gpu), rows in daily.groupby([S.TEAM, S.GPU_TYPE], sort=True):
        j = row_of[(str(team), str(gpu))]
        dates = pd.DatetimeIndex(rows[DATE])
        out[(str(team), str(gpu))] = _LongTermView(first_day=dates[0], quantiles=rows[cols].to_numpy(dtype=float),
                                                   ratio=table[j])
    return out


def _far_values(view: _LongTermView, u: np.ndarray, hours: pd.DatetimeIndex) -> np.ndarray:
    """(len(u), len(hours)) GPUs of one series: its daily quantile at each scenario's level times the profile ratio
    of one recorded week (scenario and calendar week pick it) at the hour of the week."""
    day = ((hours.floor("D") - view.first_day) // pd.Timedelta(days=1)).to_numpy()
    if len(day) and day.max() >= len(view.quantiles):
        raise PlanningError(f"the long-term forecast ends {view.first_day + pd.Timedelta(days=len(view.quantiles))} "
                            f"before the plan's horizon {hours[-1] + pd.Timedelta(hours=1)}")
    day = np.clip(day, 0, None)
    daily = np.clip(quantile_weights(u) @ view.quantiles.T, 0.0, None)      # (n_s, days)
    weeks = view.ratio.shape[0]
    how = (hours.dayofweek * 24 + hours.hour).to_numpy()
    week = (np.arange(len(u))[:, None] + (day // 7)[None, :]) % weeks
    return daily[:, day] * view.ratio[week, how[None, :]]


def _replay_far(series: SeriesScenarios, key: Key, far_hours: pd.DatetimeIndex, near: int, rate: float,
                start: pd.Timestamp, effect: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray | None:
    """The replay scenarios' hours after the near part: each replay carries on through its span (wrapped), grown
    by the series' estimated trend from the window start, planned events applied. None for a series without a
    replayed span."""
    if series.replay is None or series.replay_start is None:
        return None
    span = series.replay.get(key)
    if span is None or len(span) == 0:
        return None
    starts = series.replay_start[series.replay_start >= 0]
    idx = (starts[:, None] + near + np.arange(len(far_hours))[None, :]) % len(span)
    years = ((far_hours - start) / pd.Timedelta(days=365.25)).to_numpy(dtype=float)
    values = span[idx] * np.power(1.0 + rate, years)[None, :]
    if effect is not None:
        values = np.clip(values * effect[0][None, :] + effect[1][None, :], 0.0, None)
    return values


def carry_through(series: SeriesScenarios, config: PlanConfig, longterm=None,
                  gpu_map: Mapping[Key, tuple[str, float]] | None = None,
                  near_hours: int = NEAR_HOURS, replay_tail: bool | None = None) -> Scenarios:
    """Scenarios per GPU model over the plan's horizon (module docstring): the series' near hours as given, then
    the long-term forecast at each scenario's rank to the horizon's end, growth applied, routed by ``gpu_map``.

    Args:
        series: per-series scenarios over at least the first ``min(config.hours, near_hours)`` window hours.
        config: the window, growth settings and horizon (``config.horizon_end``).
        longterm: :class:`forecasting.longterm.LongTermForecast` covering the horizon (with the same planned
            events); None = no hours beyond ``series.hours`` (then they must cover the window and the horizon is
            the window).
        gpu_map: rightsizing's ``(team, gpu_type) -> (gpu_model, factor)``.
        near_hours: window hours taken from ``series`` when it covers more.
        replay_tail: replayed-history scenarios carry on replaying their span (with the trend and events) after
            the near hours instead of taking the long-term forecast at their rank (default :data:`REPLAY_TAIL`).

    Raises:
        PlanningError: the series do not cover the window and there is no long-term forecast.
    """
    window = pd.date_range(config.start, periods=config.hours, freq="h")
    if series.hours[0] != config.start:
        raise PlanningError(f"the scenarios start {series.hours[0]} but the window starts {config.start}")
    horizon_end = config.horizon_end if longterm is not None else config.end
    near = min(len(series.hours), config.hours, near_hours) if longterm is not None else config.hours
    if near > len(series.hours):
        raise PlanningError(f"the forecast covers {len(series.hours)} of the {config.hours} window hours "
                            "(fix: forecast with --horizon-hours at least the window length)")
    total = int((horizon_end - config.start) / pd.Timedelta(hours=1))
    far_hours = hour_range(config.start + pd.Timedelta(hours=near), horizon_end)
    tail_hours = hour_range(config.end, horizon_end)
    n = len(series.names)
    weights = np.asarray(series.weights, dtype=float)
    growth = dict(config.team_growth)
    views = _longterm_views(longterm) if longterm is not None and len(far_hours) else {}
    keys = sorted(set(series.values) | set(views))
    near_values = {k: series.values.get(k, np.zeros((n, len(series.hours))))[:, :near] for k in keys}
    span = min(LEVEL_HOURS, near)
    levels = {k: v[:, near - span:near].mean(axis=1) if near else np.zeros(n) for k, v in near_values.items()}
    scale = {k: max(float(np.abs(v).mean()), 1e-9) for k, v in levels.items()}
    org = sum((levels[k] / scale[k] for k in keys), np.zeros(n))
    demand: dict[str, np.ndarray] = {}
    notes: list[str] = []
    missing = []
    replay_tail = REPLAY_TAIL if replay_tail is None else replay_tail
    # a replay carries on only from a full replayed span: days of history stand for a year of demand only then
    full_span = series.replay is not None and any(len(v) >= 24 * HISTORY_DAYS for v in series.replay.values())
    is_replay = ((series.replay_start >= 0) if (replay_tail and full_span and series.replay_start is not None)
                 else np.zeros(n, bool))
    rates = {}
    if longterm is not None and getattr(longterm, "trend", None) is not None and not longterm.trend.empty:
        rates = {(str(t), str(g)): float(r) for t, g, r in zip(longterm.trend[S.TEAM], longterm.trend[S.GPU_TYPE],
                                                               longterm.trend["rate"], strict=True)}
    effects = (event_effects(series.events, keys, far_hours) if is_replay.any() and series.events
               and len(far_hours) else {})
    for key in keys:
        team, gpu = key
        mult = (1.0 + config.growth) * (1.0 + growth.get(team, 0.0))
        target = gpu
        if gpu_map is not None:
            target, factor = gpu_map.get(key, (gpu, 1.0))
            mult *= factor
        values = np.empty((n, total))
        values[:, :near] = near_values[key]
        if len(far_hours):
            view = views.get(key)
            if view is None:
                missing.append(f"{team} / {gpu}")
                values[:, near:] = levels[key][:, None]
            else:
                u = weighted_ranks(levels[key], org, weights)
                values[:, near:] = _far_values(view, u, far_hours)
            if is_replay.any():
                far = _replay_far(series, key, far_hours, near, rates.get(key, 0.0), config.start, effects.get(key))
                values[is_replay, near:] = far if far is not None else 0.0
        acc = demand.get(target)
        demand[target] = values * mult if acc is None else acc + values * mult
    if missing:
        notes.append(f"{len(missing)} series have no long-term forecast and keep their last week's level after the "
                     f"first {near} h: {', '.join(missing[:5])}")
    if len(far_hours):
        notes.append(f"demand after the first {near:,} h of the window comes from the long-term forecast, each "
                     f"scenario at its own quantile level, to {horizon_end:%Y-%m-%d}")
    models = tuple(sorted(demand))
    w_len = config.hours
    return Scenarios(hours=window, gpu_models=models, names=series.names, weights=weights,
                     demand={g: np.ascontiguousarray(demand[g][:, :w_len]) for g in models},
                     tail_hours=tail_hours,
                     tail={g: np.ascontiguousarray(demand[g][:, w_len:]) for g in models} if len(tail_hours) else {},
                     notes=tuple(notes))


def longterm_days(history: pd.DataFrame, horizon_end: pd.Timestamp | PlanConfig) -> int:
    """Days the long-term forecast must cover, from the day after the history's last complete UTC day to the
    horizon's end (a timestamp, or a :class:`PlanConfig`'s ``horizon_end``)."""
    from forecasting.longterm import last_full_day

    end = horizon_end.horizon_end if isinstance(horizon_end, PlanConfig) else pd.Timestamp(horizon_end)
    first = last_full_day(history[S.TIMESTAMP]) + pd.Timedelta(days=1)
    return max(int(math.ceil((end - first) / pd.Timedelta(days=1))), 1)


def planner_longterm(history: pd.DataFrame, horizon_end: pd.Timestamp | PlanConfig, events: Sequence = (),
                     **settings):
    """The long-term forecast a plan's horizon is carried through with (gpuplan plan, the planner app and the plan
    backtest alike): from the history to ``horizon_end`` (or a config's), with the planned events, at the planner's
    :data:`LONGTERM_SETTINGS` (``settings`` override them; for tuning)."""
    from forecasting.longterm import LongTermConfig, forecast_longterm

    return forecast_longterm(history, LongTermConfig(horizon_days=longterm_days(history, horizon_end),
                                                     **{**LONGTERM_SETTINGS, **settings}),
                             events=tuple(events) or None)


def history_days(history: pd.DataFrame) -> float:
    """Days of usage history (first to last hour, inclusive)."""
    if history.empty:
        return 0.0
    span = history[S.TIMESTAMP].max() - history[S.TIMESTAMP].min() + pd.Timedelta(hours=1)
    return span / pd.Timedelta(days=1)


def route_longterm(longterm, assignment: Mapping[Key, tuple[str, float]]):
    """The long-term forecast with each series moved to its routed GPU model (rightsizing): daily values times
    old / new throughput, summed per routed series; the profile of a routed series is that of its first source
    series. Series the assignment does not name stay as they are."""
    from forecasting.events import DATE
    from forecasting.longterm import WEEK

    if not assignment:
        return longterm
    daily = longterm.daily
    keys = list(zip(daily[S.TEAM], daily[S.GPU_TYPE], strict=True))
    target = [assignment.get(k, (k[1], 1.0)) for k in keys]
    cols = [S.MEAN, *[c for c, _ in QUANTILE_LEVELS]]
    moved = daily[[S.TEAM, DATE]].copy()
    moved[S.GPU_TYPE] = [t[0] for t in target]
    factor = np.array([t[1] for t in target], dtype=float)
    for col in cols:
        moved[col] = daily[col].to_numpy(dtype=float) * factor
    moved[S.MODEL] = daily[S.MODEL].to_numpy()
    moved = moved.groupby([S.TEAM, S.GPU_TYPE, DATE], as_index=False, sort=True).agg(
        {**{c: "sum" for c in cols}, S.MODEL: "first"})
    profile = longterm.profile.copy()
    pkeys = list(zip(profile[S.TEAM], profile[S.GPU_TYPE], strict=True))
    profile[S.GPU_TYPE] = [assignment.get(k, (k[1], 1.0))[0] for k in pkeys]
    profile = profile.drop_duplicates([S.TEAM, S.GPU_TYPE, WEEK, "hour_of_week"], keep="first")
    return replace(longterm, daily=moved[[S.TEAM, S.GPU_TYPE, DATE, *cols, S.MODEL]], profile=profile)


def multi_year_allowed(config: PlanConfig, history: pd.DataFrame, allow_short_history: bool = False
                       ) -> tuple[PlanConfig, str | None]:
    """The config without 3-year options when the history is shorter than :data:`SHORT_HISTORY_DAYS` days (a
    plan from a few days of usage does not sign a 3-year obligation unless asked), and a note saying so."""
    days = history_days(history)
    multi = tuple(o for o in config.options if term_hours_of(o) > HOURS_PER_YEAR)
    if allow_short_history or days >= SHORT_HISTORY_DAYS or not multi:
        return config, None
    kept = tuple(o for o in config.options if o not in multi)
    note = (f"history of {days:.1f} days is under {SHORT_HISTORY_DAYS}: 3-year options left out "
            f"({', '.join(multi)}; fix: --allow-short-history to consider them)")
    return replace(config, options=kept), note


def require_plan_history(history: pd.DataFrame) -> None:
    """Refuse a plan from under :data:`MIN_PLAN_HISTORY_HOURS` hours of usage history (none at all is allowed: a
    plan from a given forecast)."""
    if history.empty:
        return
    hours = history_days(history) * 24.0
    if hours < MIN_PLAN_HISTORY_HOURS:
        raise PlanningError(f"the usage history covers {hours:,.0f} h ({history[S.TIMESTAMP].min():%Y-%m-%d %H:%M} to "
                            f"{history[S.TIMESTAMP].max():%Y-%m-%d %H:%M} UTC): too short to forecast a plan from "
                            f"(fix: upload at least {MIN_PLAN_HISTORY_HOURS} hours of usage before the window, "
                            "or plan from a forecast file)")


def term_hours_of(option: str) -> int:
    from optimizer.options import term_hours

    return term_hours(option)


def history_note(history: pd.DataFrame, config: PlanConfig, horizon_end: pd.Timestamp) -> str | None:
    """One line when the usage history is short against the plan's window or horizon (ranges are widened)."""
    days = history_days(history)
    window_days = config.hours / 24.0
    horizon_days = (horizon_end - config.start) / pd.Timedelta(days=1)
    if days >= horizon_days:
        return None
    against = (f"the {window_days:,.0f}-day window" if days < window_days
               else f"the {horizon_days:,.0f}-day commitment term")
    return (f"history of {days:,.1f} days is short against {against}: ranges widen with lead time beyond what "
            "the history could check (the engine's sample paths, then the long-term model's random-walk spread)")


def plan_scenarios(config: PlanConfig, history: pd.DataFrame, *, long=None, forecast: pd.DataFrame | None = None,
                   events: Sequence = (), events_in_forecast: bool = False,
                   gpu_map: Mapping[Key, tuple[str, float]] | None = None,
                   longterm_routing: Mapping[Key, tuple[str, float]] | None = None, longterm=None,
                   n_paths: int = PLAN_PATHS, seed: int = 0, history_weight: float = HISTORY_WEIGHT,
                   replay_tail: bool | None = None, progress=None) -> Scenarios:
    """The scenarios a plan is made over: the one recipe of ``gpuplan plan``, the planner app and the plan backtest.

    Near hours: the engine's joint sample paths (``long``, a :class:`forecasting.engine.LongForecast`) with the
    replayed recent history, or the p10/p50/p90 of a forecast frame; planned events on every scenario. With
    ``config.term_horizon`` the scenarios are carried through to the end of the longest term with the long-term
    forecast of the history (:func:`carry_through`).

    Args:
        config: the plan's window, growth, options and horizon.
        history: usage before the window (``timestamp, team, gpu_type, gpus``).
        long: the forecast behind the window (sample paths; with events, fitted on the history without them,
            :func:`forecasting.events.without_events`, since they are applied to every scenario); else ``forecast``.
        forecast: forecast frame with p10/p50/p90 covering the near hours (used without ``long``).
        events: planned events (:mod:`forecasting.events`).
        events_in_forecast: ``forecast`` already has the events applied (they still shape the long term).
        gpu_map: rightsizing: route every series (paths and long term) to its GPU model.
        longterm_routing: rightsizing of a forecast frame that is already routed: route only the long term.
        longterm: a long-term forecast to use instead of fitting one.
        n_paths / seed: sample paths.
        history_weight: total weight of the replayed history (0 = none).
        progress: optional callback receiving one line per step.

    Raises:
        PlanningError: a forecast that does not cover the near hours, or too little history for the long term.
    """
    from forecasting.events import without_events

    say = progress or (lambda _m: None)
    require_plan_history(history)
    near = min(config.hours, NEAR_HOURS) if config.term_horizon else config.hours
    if long is not None:
        series = series_from_paths(long, config.start, near, n_paths, seed)
        # the replayed days get the events below, as the paths do: replay them without what the events did
        series = with_history(series, without_events(history, events), weight=history_weight)
    elif forecast is not None:
        series = series_from_forecast(forecast, config.start, near)
    else:
        raise PlanningError("no forecast to plan from (fix: give a forecast or usage history)")
    if not (events_in_forecast and long is None):
        series = with_events(series, events)
    lt = longterm
    needs_longterm = config.term_horizon and config.horizon_end > config.start + pd.Timedelta(hours=near)
    if needs_longterm and lt is None:
        if history.empty:
            raise PlanningError("no usage history to forecast the commitment term from (fix: plan from usage, or "
                                "judge commitments on the window alone with --window-only)")
        say(f"long-term forecast to {config.horizon_end:%Y-%m-%d} for the commitment terms")
        try:
            lt = planner_longterm(history, config, events)
        except S.UsageError as exc:
            raise PlanningError(f"{exc.message} (fix: plan from at least one "
                                "full UTC day of usage, or judge commitments on the window alone with "
                                "--window-only)") from None
    if lt is not None and longterm_routing:
        lt = route_longterm(lt, longterm_routing)
    scenarios = carry_through(series, config, lt if needs_longterm else None, gpu_map, replay_tail=replay_tail)
    notes = list(scenarios.notes)
    if lt is not None and needs_longterm:
        notes += [f"long-term forecast: {n}" for n in getattr(lt, "notes", ())]
    note = history_note(history, config, scenarios.horizon_end)
    if note:
        notes.insert(0, note)
    return replace(scenarios, notes=tuple(notes))
