"""Overview page (Inform): spend and GPU-hours by team, project or GPU type over time, untagged share, idle
GPU cost where utilisation is known, the teams whose spend moved most week over week, and data costs (storage and
transfer) per team beside GPU costs (:mod:`app.data_overview`). An engineer (:mod:`app.roles`) sees the
organisation's figures and, below them, charts and tables of their own teams only.

Widgets -> frozen :class:`app.forecast_state.OverviewSettings` -> :func:`app.forecast_state.cached_overview`
(pure :func:`app.inform.overview`). Units: USD, GPU-hours, percent; spend basis stated on the page.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from app import charts, data_overview, fmt, sidebar, view
from app import forecast_state as FS
from app import inform as I
from app import state as A

WEEKS = (2, 4, 8, 13, 26, 52)
HELP_WEEKS = "Period shown, in weeks, ending at the data's last hour."
HELP_DIM = "Group spend and GPU-hours by team, project (the data's project tag) or GPU type."


def settings(source: str) -> FS.OverviewSettings:
    """The Overview's widgets as frozen settings (every team's: the organisation totals)."""
    c1, c2 = st.columns(2)
    if A.OVERVIEW_WEEKS_KEY not in st.session_state:
        st.session_state[A.OVERVIEW_WEEKS_KEY] = 8
    weeks = c1.select_slider("Period (weeks)", options=WEEKS, key=A.OVERVIEW_WEEKS_KEY, help=HELP_WEEKS)
    dim = c2.radio("Group by", tuple(I.DIMENSIONS), key=A.OVERVIEW_DIM_KEY, horizontal=True, help=HELP_DIM)
    return FS.OverviewSettings(sample=source, weeks=int(weeks), dimension=str(dim))


def render() -> None:
    """Draw the Overview page."""
    st.title("Overview: GPU spend and usage")
    fs = sidebar.data_settings()
    usage = sidebar.load_usage(fs)
    if usage is None:
        return
    acc = sidebar.access()
    s = settings(fs.sample)
    ov = A.guarded(lambda: FS.cached_overview(s))  # the organisation's figures: the same for every role
    if ov is None:
        return
    if acc.teams is not None:  # an engineer: charts and tables of their teams only (app.roles)
        mine = A.guarded(lambda: FS.cached_overview(dataclasses.replace(s, teams=acc.teams)))
        if mine is None:
            return
    st.caption(fmt.plain(f"{A.data_source_label(fs.sample)}: {ov.start:%Y-%m-%d %H:%M} to {ov.end:%Y-%m-%d %H:%M} UTC "
                         f"({s.weeks} weeks). Spend basis: {ov.basis} (GPU-hours x rate where the data has no cost)."))
    c1, c2, c3 = st.columns(3)
    c1.metric("Spend (USD)", fmt.usd(ov.spend_usd), help=f"Spend over the period. Basis: {ov.basis}.")
    c2.metric("GPU-hours", fmt.gpu_hours(ov.gpu_hours),
              help="GPUs in use summed over the period's hours (1 GPU busy for 1 hour = 1 GPU-hour).")
    c3.metric("Untagged share (%)", fmt.pct(ov.untagged_gpu_hours_share),
              help=fmt.term("untagged") + " Share of GPU-hours.")
    c4, c5, c6 = st.columns(3)
    idle = (fmt.usd(ov.idle_usd) if ov.utilization_known_share > 0 else "not reported")
    c4.metric("Idle GPU cost (USD)", idle,
              help=fmt.term("idle") + f" Utilisation is known for {fmt.pct(ov.utilization_known_share)} of the "
              "GPU-hours; the rest count neither as idle nor as used.")
    c5.metric("Utilisation known (%)", fmt.pct(ov.utilization_known_share),
              help="Share of GPU-hours whose rows report utilisation (0-1 busy share of the GPU); idle cost is "
                   "only counted there.")
    c6.metric("Untagged spend (%)", fmt.pct(ov.untagged_spend_share),
              help=fmt.term("untagged") + " Share of spend on the same basis as the spend figure.")
    if ov.unpriced_gpu_types:
        st.warning(fmt.plain(f"No on-demand price in the catalog for {', '.join(ov.unpriced_gpu_types)}: their "
                             "GPU-hours are counted, their spend is not."), icon=":material/warning:")

    if acc.teams is not None:
        st.subheader(fmt.plain(f"Your teams: {', '.join(sorted(acc.teams))}"))
        st.caption("The figures above are the organisation's (every team); the charts and tables below show only "
                   "your teams' rows.")
        m1, m2, m3 = st.columns(3)
        m1.metric("Your teams' spend (USD)", fmt.usd(mine.spend_usd))
        m2.metric("Your teams' GPU-hours", fmt.gpu_hours(mine.gpu_hours))
        m3.metric("Your teams' idle GPU cost (USD)",
                  fmt.usd(mine.idle_usd) if mine.utilization_known_share > 0 else "not reported")
        ov = mine
    group = I.DIMENSIONS[s.dimension]
    left, right = st.columns(2)
    left.altair_chart(charts.spend_over_time_chart(ov.over_time, group, "usd",
                                                   title=f"Spend per day by {s.dimension} (USD)"), width="stretch")
    right.altair_chart(charts.spend_over_time_chart(ov.over_time, group, "gpu_hours",
                                                    title=f"GPU-hours per day by {s.dimension}"), width="stretch")

    left, right = st.columns([1, 1])
    with left:
        st.subheader(f"By {s.dimension}")
        name = s.dimension[0].upper() + s.dimension[1:]
        totals = ov.totals
        if totals["idle_usd"].isna().all():
            totals = totals.drop(columns="idle_usd")  # no utilisation in the data: nothing to show
        view.table(totals, kinds={"usd": "usd", "gpu_hours": "gpu_hours", **(
            {"idle_usd": "usd"} if "idle_usd" in totals else {})},
                   labels={group: name, "usd": "Spend (USD)", "gpu_hours": "GPU-hours", "idle_usd": "Idle cost (USD)"},
                   missing={"idle_usd": "not reported"})
    with right:
        st.subheader("Top movers, week over week")
        view.table(ov.movers, kinds={"usd_last_week": "usd", "usd_week_before": "usd", "delta_usd": "signed_usd",
                                     "delta_pct": "signed_pct"},
                   labels={"team": "Team", "usd_last_week": "Last 7 days (USD)",
                           "usd_week_before": "7 days before (USD)", "delta_usd": "Change (USD)",
                           "delta_pct": "Change (%)"}, missing={"delta_pct": "new"})
        st.caption(f"Teams with the largest change in spend between the last 7 days of the data (to "
                   f"{ov.end:%Y-%m-%d %H:%M} UTC) and the 7 days before, on the same spend basis.")

    data_overview.render(s, ov, acc.teams)


if __name__ == "__main__":
    render()
