"""The Overview's data-cost section: storage and transfer costs per team beside GPU costs, over the Overview's
period (Streamlit side; the numbers come from :func:`operate.data_costs.beside_gpu`).

Data lines: the shipped SYNTHETIC ``data_samples/synthetic_org_data_costs.csv`` for the synthetic sample
(:func:`app.operate_state.data_default`), else an upload (a canonical data-usage CSV or a billing export); without
one the section says how to add them. A month partly inside the period counts pro rata by hours. Units: USD.
"""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from app import charts, fmt, view
from app import forecast_state as FS
from app import operate_state as O
from app import state as A
from operate.data_costs import beside_gpu

HELP_DATA = ("Storage and data-transfer lines: a canonical data-usage CSV (month, team, project, category, class, "
             "quantity, unit, cost_usd) or a billing export (AWS CUR, FOCUS, Google Cloud).")
PARTS = {"GPU": "gpu_usd", "Storage": "storage_usd", "Transfer": "transfer_usd"}
"""Bar segments of the chart: label -> column."""
LABELS = {"team": "Team", "gpu_usd": "GPU (USD)", "storage_usd": "Storage (USD)", "transfer_usd": "Transfer (USD)",
          "data_usd": "Data costs (USD)", "total_usd": "GPU + data (USD)", "data_share": "Data share (%)"}
TOP = 15


def upload_key(source: str) -> str:
    return f"overview_upload_data_{source}"


def data_chart(table: pd.DataFrame, title: str) -> alt.Chart:
    """Stacked horizontal bars per team: GPU, storage and transfer USD (the largest totals first)."""
    top = table.head(TOP)
    long = top.melt(id_vars=["team"], value_vars=list(PARTS.values()), var_name="part", value_name="usd")
    long["part"] = long["part"].map({v: k for k, v in PARTS.items()})
    order = top["team"].tolist()
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("team:N", sort=order, title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False)),
        x=alt.X("usd:Q", title="USD", stack="zero", axis=alt.Axis(format=",.0f")),
        color=charts.series_color("part", list(PARTS), title=None, orient="top"),
        order=alt.Order("part_order:Q"),
        tooltip=[alt.Tooltip("team:N", title="team"), alt.Tooltip("part:N", title="cost"),
                 alt.Tooltip("usd:Q", title="USD", format=",.0f")],
    ).transform_calculate(part_order="indexof(['GPU', 'Storage', 'Transfer'], datum.part)").properties(
        title=title, height=alt.Step(22))


def render(s: FS.OverviewSettings, ov, teams: frozenset[str] | None = None) -> None:
    """Draw the section under the Overview's GPU figures (``ov``: :func:`app.forecast_state.cached_overview` of
    ``s``).

    The metrics are the organisation's (the same for every role); with ``teams`` (an engineer's, :mod:`app.roles`)
    the chart and table hold only those teams' rows."""
    st.subheader("Data costs (storage and transfer) beside GPU costs")
    with st.expander("Data lines" + (" (shipped SYNTHETIC sample unless you upload your own)"
                                     if s.sample == O.SAMPLE else ": upload this organisation's"),
                     expanded=s.sample != O.SAMPLE):
        up = st.file_uploader("data lines (storage and transfer)", type=["csv", "parquet"],
                              key=upload_key(s.sample), help=HELP_DATA)
    f = O.InputFile(up.name, up.getvalue()) if up is not None else O.data_default(s.sample)
    if f is None:
        st.info(fmt.plain(f"No storage or transfer lines for {A.data_source_label(s.sample)}: upload them under "
                          f"'Data lines' above to see data costs per team beside GPU costs. {HELP_DATA}"),
                icon=":material/upload_file:")
        return
    frame = A.guarded(lambda: O.data_lines(f))
    if frame is None:
        return
    by_team = A.guarded(lambda: FS.cached_overview(replace(s, dimension="team", teams=None)))
    if by_team is None:
        return
    gpu = by_team.totals.set_index("team")["usd"].fillna(0.0)
    end = ov.end + pd.Timedelta(hours=1)
    table = beside_gpu(gpu, frame, ov.start, end)
    months = sorted(frame["month"].unique())
    if table["data_usd"].abs().sum() == 0:
        st.info(fmt.plain(f"{f.name} has no data lines in this period (its months: "
                          f"{months[0] if months else '-'} to {months[-1] if months else '-'})."))
        return
    data_usd, gpu_usd = float(table["data_usd"].sum()), float(table["gpu_usd"].sum())
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Data costs (USD)", fmt.usd(data_usd), help="Storage + transfer over the period.")
    c2.metric("Storage (USD)", fmt.usd(float(table["storage_usd"].sum())),
              help="Object storage, block volumes and snapshots (GB-months).")
    c3.metric("Transfer (USD)", fmt.usd(float(table["transfer_usd"].sum())),
              help="Internet egress, inter-region, inter-AZ and NAT processing (GB).")
    c4.metric("Data share of GPU + data (%)", fmt.pct(data_usd / (data_usd + gpu_usd) if data_usd + gpu_usd else 0.0))
    st.caption(fmt.plain(f"{f.name}, {ov.start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC: each month's lines pro "
                         f"rata by its hours in the period. GPU: {ov.basis}."
                         + (" The data lines are SYNTHETIC (made up from the sample's GPU work at illustrative list "
                            "prices)." if up is None and s.sample == O.SAMPLE else "")))
    if teams is not None:
        table = A.team_rows(table, teams).reset_index(drop=True)
        st.caption("The figures above are the organisation's; the chart and table below show only your teams' rows.")
        if table.empty:
            st.info("Your teams have no data or GPU costs in this period.")
            return
    st.altair_chart(data_chart(table, "GPU and data costs per team over the period (USD)"), width="stretch")
    view.table(table, kinds={"gpu_usd": "usd", "storage_usd": "usd", "transfer_usd": "usd", "data_usd": "usd",
                             "total_usd": "usd", "data_share": "pct"}, labels=LABELS,
               missing={"data_share": "no cost"})
