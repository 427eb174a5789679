"""Cached calls and frames behind the Overview and Forecast pages (split from :mod:`app.state`, on which they sit).

The Overview page turns its widgets into an :class:`OverviewSettings` and calls :func:`cached_overview`
(:func:`app.inform.overview` on the data source's usage, per team set). The Forecast page turns its widgets into a
:class:`FanSettings` (the window's :class:`app.state.ForecastSettings`, a level of :data:`FAN_LEVELS` and one item
of it) and calls :func:`cached_fan`: the history, the forecast with the What-if's planned events applied
(:func:`app.state.planned_forecast`) and the events drawn. The frame builders (:func:`fan_items`,
:func:`level_fan_frames`, :func:`events_for`, :func:`accuracy_frame`) are pure.

Units: GPUs in use per hour (= GPU-hours per hour); USD on the Overview.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app.inform import on_demand_rates, overview
from app.state import (
    PLAN_REGION,
    ForecastSettings,
    cached_catalog,
    cached_events,
    cached_usage,
    data_source_label,
    planned_forecast,
    team_rows,
)
from forecasting.events import Event
from usage import schema as S

HISTORY_SHOWN_HOURS = 21 * 24
"""History drawn before the forecast in the fan chart: three weeks."""
ORG_TOTAL = "Organisation total (all teams, all GPU types)"
SERIES_SEP = " · "
LEVEL_ORG, LEVEL_GPU, LEVEL_TEAM, LEVEL_SERIES = "Organisation", "GPU type", "Team", "Team × GPU type"
FAN_LEVELS = (LEVEL_ORG, LEVEL_GPU, LEVEL_TEAM, LEVEL_SERIES)


def series_label(team: str, gpu_type: str) -> str:
    return f"{team}{SERIES_SEP}{gpu_type}"


@dataclass(frozen=True)
class OverviewSettings:
    """What the Overview page shows: data source, period in weeks (ending at the data's last hour) and grouping
    (``team``, ``project`` or ``GPU type``)."""

    sample: str
    weeks: int = 8
    dimension: str = "team"
    teams: frozenset[str] | None = None
    """Only these teams' usage (an engineer's view, :mod:`app.roles`); None = every team (organisation totals)."""


@dataclass(frozen=True)
class FanSettings:
    """One fan chart: data and window, the level (:data:`FAN_LEVELS`) and the team / GPU type / series drawn,
    with the planned events of the What-if (YAML/CSV text, "" = none) applied."""

    forecast: ForecastSettings
    level: str = LEVEL_ORG
    item: str = ""
    events_name: str = ""
    events_text: str = ""
    teams: frozenset[str] | None = None
    """GPU-type, team and series charts cover only these teams (an engineer's view, :mod:`app.roles`); None = every
    team. The organisation total is always every team's."""


@st.cache_data(show_spinner=False, max_entries=16)
def cached_overview(settings: OverviewSettings):
    """The Overview's frames and figures (:class:`app.inform.Overview`), once per settings (per team set)."""
    usage = cached_usage(settings.sample)
    rates = on_demand_rates(cached_catalog(), set(usage[S.GPU_TYPE].unique()), PLAN_REGION)
    if settings.teams is not None:
        mine = team_rows(usage, settings.teams)
        if mine.empty:
            raise ValueError(f"none of your teams ({', '.join(sorted(settings.teams))}) is in "
                             f"{data_source_label(settings.sample)} (fix: choose the data source of your teams)")
        # the organisation's period (ending at the data's last hour), also when these teams stopped earlier
        usage = mine[mine[S.TIMESTAMP] >= usage[S.TIMESTAMP].max() - pd.Timedelta(weeks=settings.weeks)]
        if usage.empty:
            raise ValueError(f"your teams ({', '.join(sorted(settings.teams))}) have no usage in the last "
                             f"{settings.weeks} weeks of {data_source_label(settings.sample)} (fix: choose a longer "
                             "period)")
    return overview(usage, rates, settings.weeks, settings.dimension)


def fan_items(fc: pd.DataFrame, level: str) -> list[str]:
    """Choices at a fan-chart level: GPU types, teams or ``team · GPU type`` series (the organisation: one)."""
    if level == LEVEL_GPU:
        return sorted(fc[S.GPU_TYPE].unique())
    if level == LEVEL_TEAM:
        return sorted(fc[S.TEAM].unique())
    if level == LEVEL_SERIES:
        pairs = fc[[S.TEAM, S.GPU_TYPE]].drop_duplicates().sort_values([S.TEAM, S.GPU_TYPE])
        return [series_label(t, g) for t, g in pairs.itertuples(index=False)]
    return [ORG_TOTAL]


def _rows_for(frame: pd.DataFrame, level: str, item: str) -> pd.DataFrame:
    if level == LEVEL_GPU:
        return frame[frame[S.GPU_TYPE] == item]
    if level == LEVEL_TEAM:
        return frame[frame[S.TEAM] == item]
    if level == LEVEL_SERIES:
        team, _, gpu = item.partition(SERIES_SEP)
        return frame[(frame[S.TEAM] == team) & (frame[S.GPU_TYPE] == gpu)]
    return frame


def level_fan_frames(usage: pd.DataFrame, fc: pd.DataFrame, level: str, item: str,
                     history_hours: int = HISTORY_SHOWN_HOURS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """History and forecast (p10, p50, p90 summed over the covered series) of one fan-chart choice, in GPUs."""
    first = fc[S.TIMESTAMP].min()
    hist = _rows_for(usage, level, item)
    hist = hist[(hist[S.TIMESTAMP] < first) & (hist[S.TIMESTAMP] >= first - pd.Timedelta(hours=history_hours))]
    hist = hist.groupby(S.TIMESTAMP, as_index=False)[S.GPUS].sum()
    fut = _rows_for(fc, level, item).groupby(S.TIMESTAMP, as_index=False)[[S.P10, S.P50, S.P90]].sum()
    return hist, fut


def events_for(fc: pd.DataFrame, events: tuple[Event, ...], level: str, item: str) -> pd.DataFrame:
    """The events that touch a fan-chart choice: ``start, end, label`` (ends clipped to the forecast)."""
    rows = []
    last = fc[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    gpus = set(fc[S.GPU_TYPE])
    for ev in events:
        if level == LEVEL_TEAM and ev.team != item:
            continue
        if level == LEVEL_GPU and ev.gpu_type is not None and ev.gpu_type != item:
            continue
        if level == LEVEL_GPU and ev.gpu_type is None and item not in gpus:
            continue
        if level == LEVEL_SERIES:
            team, _, gpu = item.partition(SERIES_SEP)
            if ev.team != team or (ev.gpu_type is not None and ev.gpu_type != gpu):
                continue
        what = {"add": f"+{ev.value:g} GPUs", "set": f"= {ev.value:g} GPUs", "scale": f"x {ev.value:g}",
                "wind_down": "wind down to 0", "ramp_up": f"ramp up to +{ev.value:g} GPUs"}[ev.kind]
        rows.append({"start": ev.start, "end": min(ev.end, last) if ev.end is not None else last,
                     "label": f"{ev.team} {ev.gpu_type or 'all GPU types'}: {what}" + (f" ({ev.note})" if ev.note
                                                                                      else "")})
    return pd.DataFrame(rows, columns=["start", "end", "label"])


@st.cache_data(show_spinner=False, max_entries=32)
def cached_fan(settings: FanSettings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """History, (event-adjusted) forecast and the events shown of one fan chart."""
    fc = planned_forecast(dataclasses.replace(settings.forecast, events_name=settings.events_name,
                                              events_text=settings.events_text))
    events = cached_events(settings.events_text, settings.events_name)
    usage = cached_usage(settings.forecast.sample)
    if settings.level != LEVEL_ORG:  # the organisation total is every team's, the same for every role
        usage, fc = team_rows(usage, settings.teams), team_rows(fc, settings.teams)
    events = tuple(ev for ev in events if settings.teams is None or ev.team in settings.teams)  # labels name teams
    hist, fut = level_fan_frames(usage, fc, settings.level, settings.item)
    return hist, fut, events_for(fc, events, settings.level, settings.item)


def accuracy_frame(selection: pd.DataFrame) -> pd.DataFrame:
    """Model choice and cross-validated accuracy per series, with display names carrying units."""
    return pd.DataFrame({"Team": selection[S.TEAM], "GPU type": selection[S.GPU_TYPE],
                         "Model": selection[S.MODEL], "CV MAE (GPUs)": selection["cv_mae"],
                         "CV MASE (1 = seasonal naive)": selection["cv_mase"],
                         "History (h)": selection["history_hours"]})
