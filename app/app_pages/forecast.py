"""Forecast page: fan chart (p10-p90 band, p50 line) for the organisation, a GPU type, a team or one team x GPU
series; the model chosen per series and its cross-validated accuracy; planned events marked when the What-if
uses an events file. An engineer (:mod:`app.roles`) sees the organisation total and their own teams' series only.

Widgets -> frozen :class:`app.forecast_state.FanSettings` -> :func:`app.forecast_state.cached_fan`. Units: GPUs in
use per hour (= GPU-hours per hour); errors in GPUs; MASE relative to the 24-hour seasonal naive forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import charts, fmt, sidebar, view
from app import forecast_state as FS
from app import roles as R
from app import state as A
from usage import schema as S

HELP_LEVEL = ("Which total to draw. Totals add the series' quantiles (teams taken as moving together), so their "
              "p10-p90 band is wider than the true range of the total; the plan uses joint sample paths instead.")
HELP_ITEM = "The GPU type, team or team x GPU type series to draw."
HELP_MASE = ("MASE: mean absolute error of the chosen model on rolling-origin cross-validation windows, divided by "
             "the error of repeating the value of 24 hours earlier. Below 1 = better than that naive forecast.")


def settings(fs: A.ForecastSettings, fc: pd.DataFrame, plan: A.PlannerSettings,
             acc: R.Access = R.LOCAL) -> FS.FanSettings:
    """The Forecast page's widgets as frozen settings; an engineer's choices list only their teams' series."""
    c1, c2 = st.columns([2, 3])
    level = c1.radio("Level", FS.FAN_LEVELS, key=A.FAN_LEVEL_KEY, horizontal=True, help=HELP_LEVEL)
    items = FS.fan_items(R.visible_rows(fc, acc), str(level)) if level != FS.LEVEL_ORG else FS.fan_items(fc, str(level))
    if not items:
        items = [FS.ORG_TOTAL]
    if st.session_state.get(A.FAN_ITEM_KEY) not in items:
        st.session_state[A.FAN_ITEM_KEY] = items[0]
    item = c2.selectbox("Show", items, key=A.FAN_ITEM_KEY, help=HELP_ITEM, disabled=level == FS.LEVEL_ORG)
    return FS.FanSettings(forecast=fs, level=str(level), item=str(item), events_name=plan.events_name,
                         events_text=plan.events_text, teams=acc.teams)


def render() -> None:
    """Draw the Forecast page."""
    st.title("Forecast: GPU demand with its range")
    data = sidebar.window_data()
    if data is None:
        return
    fs, usage, fres = data
    acc = sidebar.access()
    hidden = R.hidden_teams(fres.forecast[S.TEAM].unique(), acc)
    plan = sidebar.plan_settings(fs)
    s = settings(fs, fres.forecast, plan, acc)
    drawn = A.guarded(lambda: FS.cached_fan(s))
    if drawn is None:
        return
    hist, fut, events = drawn
    title = FS.ORG_TOTAL if s.level == FS.LEVEL_ORG else f"{s.level}: {s.item}"
    if acc.teams is not None and s.level != FS.LEVEL_ORG:
        st.caption(fmt.plain(f"Your teams only ({', '.join(sorted(acc.teams))}); the organisation total is every "
                             "team's."))
    st.altair_chart(charts.fan_chart_with_events(hist, fut, events, title=title), width="stretch")
    total_p50 = float(fut[S.P50].sum())
    st.caption(f"Last three weeks of actual usage, then the forecast median (p50) with its p10-p90 band, in GPUs in "
               f"use per hour (= GPU-hours per hour). Over the {fs.hours:,} h window: p50 "
               f"{fmt.gpu_hours(total_p50)}, p10-p90 {fmt.gpu_hours(float(fut[S.P10].sum()))} - "
               f"{fmt.gpu_hours(float(fut[S.P90].sum()))}; mean {fmt.gpus(total_p50 / max(len(fut), 1))} at p50.")
    if plan.events_text:
        if events.empty:
            st.info(fmt.plain(f"Planned events ({plan.events_name}) are in use but none touches this choice or the "
                              "window."))
        else:
            st.caption(fmt.plain(f"Green spans: planned events from {plan.events_name} (set on the What-if page), "
                                 "already applied to the forecast drawn here and to the plan."))
            view.table(events, kinds={"start": "datetime", "end": "datetime"},
                       labels={"start": "Start (UTC)", "end": "End (UTC)", "label": "Event"})
    for line in R.visible_lines(fres.notes, hidden):
        st.caption(line)

    st.subheader("Model choice and accuracy")
    sel = fres.selection if s.level == FS.LEVEL_ORG else R.visible_rows(fres.selection, acc)  # org: every series
    if s.level == FS.LEVEL_GPU:
        sel = sel[sel[S.GPU_TYPE] == s.item]
    elif s.level == FS.LEVEL_TEAM:
        sel = sel[sel[S.TEAM] == s.item]
    elif s.level == FS.LEVEL_SERIES:
        team, _, gpu = s.item.partition(FS.SERIES_SEP)
        sel = sel[(sel[S.TEAM] == team) & (sel[S.GPU_TYPE] == gpu)]
    mase = sel["cv_mase"].astype(float)
    c1, c2, c3 = st.columns(3)
    c1.metric("Series", f"{len(sel):,}", help="Team x GPU type series behind this choice.")
    c2.metric("Median CV MASE", "-" if mase.isna().all() else f"{np.nanmedian(mase):.2f}", help=HELP_MASE)
    top = sel[S.MODEL].value_counts()
    c3.metric("Most chosen model", "-" if top.empty else f"{top.index[0]} ({top.iloc[0]} of {len(sel)})",
              help="Each series gets the candidate with the lowest cross-validated MAE (seasonal naive and naive are "
                   "always candidates; 'Ensemble' is the median of the best candidates).")
    mine = R.visible_rows(sel, acc)
    view.table(FS.accuracy_frame(mine), kinds={"CV MAE (GPUs)": "number", "CV MASE (1 = seasonal naive)": "number",
                                             "History (h)": "hours"},
               missing={"CV MAE (GPUs)": "not scored", "CV MASE (1 = seasonal naive)": "not scored"})
    st.caption(f"Accuracy from rolling-origin cross-validation ({fres.config.cv_windows} windows of "
               f"{fres.config.cv_h} h, origins {fres.config.cv_step} h apart) on the last "
               f"{fres.config.history_hours or 'all'} hours of each series. `gpuplan backtest` scores whole "
               "forecasts on held-back data.")
    st.download_button("Download forecast (CSV)", data=A.cached_forecast_csv(fs, acc.teams),
                       file_name=f"forecast_{fs.sample.replace(':', '_')}_{fs.hours}h.csv", mime="text/csv",
                       on_click="ignore", icon=":material/download:")


if __name__ == "__main__":
    render()
