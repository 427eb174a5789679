"""Cluster-wide outages: hours in which every series reports 0 GPUs at once, after the cluster had been busy.

Units: GPUs in use averaged over each hour (= GPU-hours per hour); timestamps are hourly, naive UTC.

A whole organisation dropping to zero for a few hours is a scheduler outage or a telemetry gap (usage
exports fill missing hours with 0 GPUs, see ``usage.schema.validate_usage``), not demand: on the Helios
trace every one of the 16 teams reports 0 GPUs from 2020-05-09T16:00Z to 2020-05-10T15:00Z (cluster mean
632 GPUs), and a forecast fitted on a history ending in that day projects zero demand. The engine treats such
hours as missing: :func:`outage_hours` finds them and :func:`fill_outages` replaces them, per series, by the
same hour of the nearest earlier day that is not an outage (the nearest later one when there is none), which
keeps the daily profile and the level the series had just before.

An hour counts as an outage only when the frame has at least :data:`MIN_SERIES` series, the hour comes after
the first hour with any usage, and all-zero hours are rare: at most :data:`MAX_OUTAGE_SHARE` of the hours
since the first busy hour. An organisation that is often completely idle (one team with bursty jobs, say)
really has zero demand in those hours, and they stay.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from usage import schema as S

MIN_SERIES = 2
"""Fewest series for all-zero hours to count as an outage (one series at zero is just that series' demand)."""
MAX_OUTAGE_SHARE = 0.1
"""All-zero hours above this share of the busy history are taken as real idle time, not outages."""


def outage_hours(long: pd.DataFrame, *, min_series: int = MIN_SERIES,
                 max_share: float = MAX_OUTAGE_SHARE) -> pd.DatetimeIndex:
    """Hours in which every series of ``long`` (``unique_id, ds, y``; GPUs) is at zero, after the first busy hour.

    Returns an empty index when the frame has fewer than ``min_series`` series or when such hours exceed
    ``max_share`` of the hours from the first busy hour on (the organisation is then genuinely idle at times).
    """
    if long.empty or long[S.UID].nunique() < min_series:
        return pd.DatetimeIndex([])
    total = long.groupby(S.DS)[S.Y].sum().sort_index()
    busy = total.to_numpy() > 0
    if not busy.any():
        return pd.DatetimeIndex([])
    since = total.index[int(np.argmax(busy))]
    span = total[total.index >= since]
    zero = span[span.to_numpy() <= 0].index
    if len(zero) > max_share * len(span):
        return pd.DatetimeIndex([])
    return pd.DatetimeIndex(zero)


def fill_outages(long: pd.DataFrame, hours: pd.DatetimeIndex) -> pd.DataFrame:
    """``long`` with each series' value in ``hours`` replaced by its value at the same hour of the nearest
    earlier day not in ``hours`` (the nearest later such day when there is none; 0 when the series has no
    other day). Rows, their order and the other hours are unchanged."""
    if len(hours) == 0:
        return long
    wide = long.pivot(index=S.DS, columns=S.UID, values=S.Y)
    wide = wide.reindex(pd.date_range(wide.index.min(), wide.index.max(), freq="h"))
    out_mask = wide.index.isin(hours)
    normal = wide.copy()
    normal.loc[out_mask] = np.nan
    todo = wide.loc[out_mask].notna().to_numpy()
    cur = np.zeros(todo.shape)
    days = -(-len(wide) // 24)
    for direction in (1, -1):
        for k in range(1, days + 1):
            if not todo.any():
                break
            src = normal.shift(direction * 24 * k).loc[out_mask].to_numpy()
            take = todo & ~np.isnan(src)
            cur[take] = src[take]
            todo &= ~take
    filled = wide.copy()
    filled.loc[out_mask] = cur
    values = filled.stack(future_stack=True).rename("filled")
    key = pd.MultiIndex.from_arrays([long[S.DS], long[S.UID]])
    new = values.reindex(key).to_numpy()
    out = long.copy()
    y = out[S.Y].to_numpy(dtype=float)
    replace = out[S.DS].isin(hours).to_numpy()
    out[S.Y] = np.where(replace, np.nan_to_num(new, nan=0.0), y)
    return out


def describe(hours: pd.DatetimeIndex) -> str:
    """One line for forecast notes: how many outage hours and their first and last hour."""
    first, last = hours.min(), hours.max()
    return (f"{len(hours)} cluster-wide all-zero hour(s) between {first:%Y-%m-%dT%H:%M}Z and {last:%Y-%m-%dT%H:%M}Z "
            "treated as an outage, not demand: filled with each series' value at the same hour of the nearest "
            "earlier normal day (ForecastConfig.fill_outages=False keeps them)")
