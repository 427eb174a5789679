"""The shared sidebar: data source (sample or upload) and plan window, the same on every page.

Every page calls :func:`data_settings` first, so all pages forecast and plan the same data over the same
window. Streamlit gives a widget on another page another identity, so a page switch would reset it;
:func:`keep` re-assigns the shared keys before the widgets are drawn, which carries their values across
pages (the documented way to keep widget state between pages). Units: window in hours.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from app import fmt
from app import roles as R
from app import state as A
from forecasting.engine import ForecastResult

HELP_SOURCE = ("Data every page uses: a shipped sample organisation, or a usage/billing file uploaded below "
               "(canonical usage, FOCUS or CUR). Forecasts and plans are cached per data content, so switching "
               "back is instant.")
HELP_HOURS = ("Plan window in hours, starting the hour after the data's last hour (168 h = 1 week, 720 h = 30 days, "
              "2160 h = 90 days). The forecast horizon equals the window, so changing it re-runs the forecast "
              "(cached afterwards).")


def keep(*keys: str) -> None:
    """Carry widget values of ``keys`` across pages (and reruns that do not draw them)."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


SOURCE_NAME_CHARS = 24
"""The data-source box shows this many characters at most (the sidebar's width); the caption under it the rest."""


def source_name(source: str) -> str:
    """A data source's name as the sidebar box shows it: its label before any bracket (``Synthetic
    organisation``), an upload's file name shortened in the middle to fit (``Upload: my_very...usage.csv``)."""
    name = A.data_source_label(source).split(" (")[0]
    if len(name) <= SOURCE_NAME_CHARS:
        return name
    keep = SOURCE_NAME_CHARS - 3
    return name[: keep - keep // 2] + "..." + name[-(keep // 2):]


def access() -> R.Access:
    """The session's :class:`app.roles.Access` (roles file under sign-in; full access with sign-in off). A signed-in
    user without a role (or a missing or wrong roles file) gets the one-line reason and the page stops: no data."""
    from app.auth import current_identity  # the one place that reads st.user
    acc, problem = R.resolve(current_identity())
    if problem is not None:
        st.error(fmt.plain(problem), icon=":material/lock:")
        st.stop()
    return acc


def access_caption(acc: R.Access) -> str:
    """Who is signed in and what they see, for the sidebar."""
    if acc == R.LOCAL:
        return "Local use (sign-in off): every team, saving allowed."
    what = ("every team" if acc.teams is None else "teams " + ", ".join(sorted(acc.teams))) + (
        ", saving allowed" if R.can_save(acc) else ", read-only")
    return f"Access of {acc.user}: {acc.role}, {what}."


def data_settings() -> A.ForecastSettings:
    """Draw the shared sidebar (data source, window) and return what the forecast depends on.

    The upload section (:func:`app.uploads.sidebar_upload`) is drawn by the entry point on every page. The
    session's access is checked first (:func:`access`): a page without a role stops here.
    """
    acc = access()
    keep(*A.PAGE_WIDGET_KEYS)
    follow_loaded_scenario()
    sb = st.sidebar
    sb.caption(fmt.plain(access_caption(acc)))
    sb.header("Data and window")
    options = A.data_source_options()
    if st.session_state.get(A.DATA_SOURCE_KEY) not in options:
        st.session_state[A.DATA_SOURCE_KEY] = A.default_sample()
    source = sb.selectbox("Data source", options, key=A.DATA_SOURCE_KEY, format_func=source_name,
                          help=HELP_SOURCE)
    sb.caption(fmt.plain(A.data_source_label(str(source))))  # the full label: the box has room for the name
    if A.HOURS_KEY not in st.session_state:
        st.session_state[A.HOURS_KEY] = A.default_hours()
    hours = sb.number_input("Plan window (hours)", min_value=A.MIN_HOURS, max_value=A.MAX_HOURS, step=24,
                            key=A.HOURS_KEY, help=HELP_HOURS)
    return A.ForecastSettings(sample=str(source), hours=int(hours))


def follow_loaded_scenario() -> None:
    """Once per scenario loaded on the Scenarios page: select its data source (if still available) and window,
    so every page (not only the What-if) plans the loaded scenario on its own data."""
    loaded = st.session_state.get(A.WHATIF_KEY)
    if (not isinstance(loaded, A.PlannerSettings) or loaded == st.session_state.get(A.WHATIF_OWN_KEY)
            or loaded == st.session_state.get(SIDEBAR_FOLLOWED_KEY)):
        return
    st.session_state[SIDEBAR_FOLLOWED_KEY] = loaded
    if loaded.sample in A.data_source_options():
        st.session_state[A.DATA_SOURCE_KEY] = loaded.sample
    st.session_state[A.HOURS_KEY] = min(max(int(loaded.hours), A.MIN_HOURS), A.MAX_HOURS)


SIDEBAR_FOLLOWED_KEY = "sidebar_followed_scenario"
"""The loaded scenario whose data source and window the sidebar last took over."""


def load_usage(fs: A.ForecastSettings) -> pd.DataFrame | None:
    """The selected data, or None after showing the one-line error."""
    return A.guarded(lambda: A.cached_usage(fs.sample))


def load_forecast(fs: A.ForecastSettings, usage: pd.DataFrame) -> ForecastResult | None:
    """The cached forecast of the data for the window (fitted on first use), or None after an error."""
    n_series = A.cached_facts(fs.sample).series
    with st.spinner(f"Forecasting {n_series} team x GPU series {fs.hours:,} hours ahead with statsforecast "
                    "(first run only; cached afterwards)..."):
        return A.guarded(lambda: A.cached_forecast(fs))


def window_data() -> tuple[A.ForecastSettings, pd.DataFrame, ForecastResult] | None:
    """The sidebar's data and window, their caption, and the cached forecast: what the Forecast, Plan and
    What-if pages start from. None after the one-line error of the step that failed."""
    fs = data_settings()
    usage = load_usage(fs)
    if usage is None:
        return None
    st.caption(window_caption(usage, fs))
    fres = load_forecast(fs, usage)
    return None if fres is None else (fs, usage, fres)


def plan_settings(fs: A.ForecastSettings) -> A.PlannerSettings:
    """The What-if's current settings for this data and window, or the base scenario when it was never set. An
    engineer's settings keep only their own teams' growth (a scenario loaded from another team names theirs)."""
    current = st.session_state.get(A.WHATIF_KEY)
    if not isinstance(current, A.PlannerSettings):
        return base_settings(fs)
    teams = access().teams
    growth = tuple((t, g) for t, g in current.team_growth if teams is None or t in teams)  # an engineer's own teams
    return dataclasses.replace(current, sample=fs.sample, hours=fs.hours, team_growth=growth)


def base_settings(fs: A.ForecastSettings) -> A.PlannerSettings:
    """The base scenario: the planner's defaults (no growth, spot up to 30%, 1-year options, no events)."""
    return A.PlannerSettings(sample=fs.sample, hours=fs.hours)


def window_caption(usage: pd.DataFrame, fs: A.ForecastSettings) -> str:
    """One line: what the data holds and which hours the plan window covers (UTC)."""
    facts = A.cached_facts(fs.sample)
    start = facts.last + pd.Timedelta(hours=1)
    end = start + pd.Timedelta(hours=fs.hours)
    return (f"{A.data_source_label(fs.sample)}: {len(facts.teams)} teams, {facts.series} team x GPU series, hourly "
            f"usage {facts.first:%Y-%m-%d} to {facts.last:%Y-%m-%d %H:%M} UTC. Plan window: "
            f"{fs.hours:,} h from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC.")
