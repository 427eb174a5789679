"""Chart builders: pure functions of frames that return Altair charts (no Streamlit, testable alone).

Units: demand in GPUs in use per hour (= GPU-hours per hour), costs in USD, time in UTC.
The frames come from :mod:`app.state` (``fan_frames``, ``daily_costs``, ``gpu_model_costs``).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from forecasting import schema as S

DEMAND_AXIS = "GPUs in use (GPU-hours per hour)"
TIME_AXIS = "Time (UTC)"
CATEGORY_COLORS = {"committed": "#4c78a8", "spot": "#f58518", "on-demand": "#e45756"}
HISTORY_LABEL = "history (actual)"
P50_LABEL = "forecast p50"
BAND_COLOR = "#9ecae9"


def fan_chart(history: pd.DataFrame, forecast: pd.DataFrame, title: str = "") -> alt.LayerChart:
    """History line, p10-p90 band and p50 line of one series (or a total).

    Args:
        history: ``timestamp, gpus`` (GPUs per hour) before the forecast.
        forecast: ``timestamp, p10, p50, p90`` (GPUs per hour).
        title: chart title.
    """
    lines = pd.concat([
        pd.DataFrame({S.TIMESTAMP: history[S.TIMESTAMP], "gpus": history[S.GPUS], "series": HISTORY_LABEL}),
        pd.DataFrame({S.TIMESTAMP: forecast[S.TIMESTAMP], "gpus": forecast[S.P50], "series": P50_LABEL}),
    ], ignore_index=True)
    x = alt.X(f"{S.TIMESTAMP}:T", title=TIME_AXIS)
    band = alt.Chart(forecast).mark_area(opacity=0.45, color=BAND_COLOR).encode(
        x=x,
        y=alt.Y(f"{S.P10}:Q", title=DEMAND_AXIS),
        y2=alt.Y2(f"{S.P90}:Q"),
        tooltip=[alt.Tooltip(f"{S.TIMESTAMP}:T", title="hour (UTC)", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip(f"{S.P10}:Q", title="p10 GPUs", format=",.1f"),
                 alt.Tooltip(f"{S.P50}:Q", title="p50 GPUs", format=",.1f"),
                 alt.Tooltip(f"{S.P90}:Q", title="p90 GPUs", format=",.1f")],
    )
    line = alt.Chart(lines).mark_line(strokeWidth=1.5).encode(
        x=x,
        y=alt.Y("gpus:Q", title=DEMAND_AXIS),
        color=alt.Color("series:N", title=None,
                        scale=alt.Scale(domain=[HISTORY_LABEL, P50_LABEL], range=["#555555", "#1f77b4"]),
                        legend=alt.Legend(orient="top")),
        tooltip=[alt.Tooltip(f"{S.TIMESTAMP}:T", title="hour (UTC)", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("series:N"), alt.Tooltip("gpus:Q", title="GPUs", format=",.1f")],
    )
    return alt.layer(band, line).properties(title=title, height=340).interactive(bind_y=False)


def cost_breakdown_chart(daily: pd.DataFrame, title: str = "") -> alt.Chart:
    """Stacked bars of cost per day: committed, spot, on-demand (USD per UTC day).

    Args:
        daily: ``day, category, usd``.
        title: chart title.
    """
    return alt.Chart(daily).mark_bar().encode(
        x=alt.X("day:T", title="Day (UTC)", timeUnit="yearmonthdate"),
        y=alt.Y("sum(usd):Q", title="Cost (USD per day)", stack="zero"),
        color=_category_color(),
        order=alt.Order("category_order:Q"),
        tooltip=[alt.Tooltip("day:T", title="day (UTC)", format="%Y-%m-%d"), alt.Tooltip("category:N"),
                 alt.Tooltip("sum(usd):Q", title="USD", format=",.0f")],
    ).transform_calculate(category_order=_order_expr()).properties(title=title, height=300)


def gpu_model_cost_chart(per_gpu: pd.DataFrame, title: str = "") -> alt.Chart:
    """Horizontal stacked bars of window cost per GPU model and category (USD).

    Args:
        per_gpu: ``gpu_type, category, usd``.
        title: chart title.
    """
    return alt.Chart(per_gpu).mark_bar().encode(
        y=alt.Y(f"{S.GPU_TYPE}:N", title="GPU model", sort="-x"),
        x=alt.X("sum(usd):Q", title="Cost over the window (USD)", stack="zero"),
        color=_category_color(),
        order=alt.Order("category_order:Q"),
        tooltip=[alt.Tooltip(f"{S.GPU_TYPE}:N", title="GPU model"), alt.Tooltip("category:N"),
                 alt.Tooltip("sum(usd):Q", title="USD", format=",.0f")],
    ).transform_calculate(category_order=_order_expr()).properties(title=title)


def _category_color() -> alt.Color:
    return alt.Color("category:N", title="Pricing", legend=alt.Legend(orient="top"),
                     scale=alt.Scale(domain=list(CATEGORY_COLORS), range=list(CATEGORY_COLORS.values())))


def _order_expr() -> str:
    cats = list(CATEGORY_COLORS)
    return " : ".join(f"datum.category === '{c}' ? {i}" for i, c in enumerate(cats)) + f" : {len(cats)}"


def backtest_chart(per_level: pd.DataFrame, title: str = "Rolling-origin backtest") -> alt.HConcatChart:
    """Mean MASE per level and method (lower is better) beside the selected forecasts' range coverage.

    Args:
        per_level: ``method, level, mean_mase, coverage_80, coverage_90`` (from ``BacktestResult.per_level``).
        title: chart title.
    """
    mase = alt.Chart(per_level).mark_bar().encode(
        x=alt.X("mean_mase:Q", title="mean MASE (1 = 24-hour seasonal naive in sample)"),
        y=alt.Y("method:N", title=None),
        color=alt.Color("method:N", legend=None),
        row=alt.Row("level:N", title=None),
        tooltip=["level", "method", alt.Tooltip("mean_mase:Q", format=".3f")],
    ).properties(width=320, title="Point accuracy")
    selected = per_level[per_level["method"] == "selected"].melt(
        id_vars=["level"], value_vars=["coverage_80", "coverage_90"], var_name="band", value_name="coverage")
    selected["target"] = selected["band"].map({"coverage_80": 0.8, "coverage_90": 0.9})
    cov = alt.Chart(selected).mark_bar().encode(
        x=alt.X("coverage:Q", title="share of hours inside the band", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("band:N", title=None),
        row=alt.Row("level:N", title=None),
        tooltip=["level", "band", alt.Tooltip("coverage:Q", format=".1%"), alt.Tooltip("target:Q", format=".0%")],
    ).properties(width=260, title="Range coverage (target 80% / 90%)")
    return alt.hconcat(mase, cov).properties(title=title)


def spend_over_time_chart(over_time: pd.DataFrame, group: str, value: str = "usd", title: str = "") -> alt.Chart:
    """Stacked bars per day (or week) and group: spend (``value='usd'``, USD) or ``gpu_hours`` (GPU-hours).

    Args:
        over_time: ``period, <group>, usd, gpu_hours``.
        group: the grouping column (team, project or gpu_type).
        value: ``usd`` or ``gpu_hours``.
        title: chart title.
    """
    unit = "USD" if value == "usd" else "GPU-hours"
    return alt.Chart(over_time).mark_bar().encode(
        x=alt.X("period:T", title="Day (UTC)"),
        y=alt.Y(f"sum({value}):Q", title=f"{'Spend' if value == 'usd' else 'GPU-hours'} ({unit} per day)",
                stack="zero"),
        color=alt.Color(f"{group}:N", title=group.replace("_", " "), legend=alt.Legend(orient="right")),
        tooltip=[alt.Tooltip("period:T", title="day (UTC)", format="%Y-%m-%d"), alt.Tooltip(f"{group}:N"),
                 alt.Tooltip(f"sum({value}):Q", title=unit, format=",.0f")],
    ).properties(title=title, height=320)


def event_marks(events: pd.DataFrame) -> alt.LayerChart:
    """Planned events as shaded spans with a rule at each start (``events``: start, end, label)."""
    span = alt.Chart(events).mark_rect(opacity=0.12, color="#2ca02c").encode(
        x="start:T", x2="end:T", tooltip=[alt.Tooltip("label:N", title="planned event"),
                                          alt.Tooltip("start:T", format="%Y-%m-%d"),
                                          alt.Tooltip("end:T", format="%Y-%m-%d")])
    rule = alt.Chart(events).mark_rule(color="#2ca02c", strokeDash=[4, 3]).encode(
        x="start:T", tooltip=[alt.Tooltip("label:N", title="planned event")])
    return alt.layer(span, rule)


def fan_chart_with_events(history: pd.DataFrame, forecast: pd.DataFrame, events: pd.DataFrame,
                          title: str = "") -> alt.LayerChart:
    """:func:`fan_chart` with planned events marked (green spans, dashed rule at each start)."""
    fan = fan_chart(history, forecast, title=title)
    if events.empty:
        return fan
    return alt.layer(fan, event_marks(events)).properties(title=title, height=340)


def ladder_chart(commitments: pd.DataFrame, title: str = "Commitment terms") -> alt.Chart:
    """One bar per commitment from its start to the end of its term (laddering timeline).

    Args:
        commitments: ``optimizer.summary.commitments_table`` rows (start, term_hours, count, instance_type,
            purchase_option, gpus).
        title: chart title.
    """
    frame = commitments.assign(
        end=commitments["start"] + pd.to_timedelta(commitments["term_hours"], unit="h"),
        what=commitments["count"].astype(str) + " x " + commitments["instance_type"] + " "
        + commitments["purchase_option"])
    return alt.Chart(frame).mark_bar(height=14).encode(
        x=alt.X("start:T", title="Time (UTC)"), x2="end:T",
        y=alt.Y("what:N", title=None, sort=alt.EncodingSortField("start")),
        color=alt.Color("purchase_option:N", title="Option"),
        tooltip=[alt.Tooltip("what:N", title="commitment"), alt.Tooltip("gpus:Q", title="GPUs", format=",.0f"),
                 alt.Tooltip("start:T", format="%Y-%m-%d"), alt.Tooltip("end:T", format="%Y-%m-%d")],
    ).properties(title=title)


def upfront_chart(upfront: pd.DataFrame, title: str = "Upfront cash by month (USD)") -> alt.Chart:
    """One bar per calendar month of purchase: the upfront cash the new commitments need then (USD).

    Args:
        upfront: ``month`` (``YYYY-MM``), ``usd`` (``app.state.upfront_frame``).
        title: chart title.
    """
    return alt.Chart(upfront).mark_bar(color=CATEGORY_COLORS["committed"]).encode(
        x=alt.X("month:O", title="Month of purchase (UTC)", sort=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("usd:Q", title="Upfront cash (USD)"),
        tooltip=[alt.Tooltip("month:O", title="month"), alt.Tooltip("usd:Q", title="USD", format=",.0f")],
    ).properties(title=title, height=220)


def whatif_chart(compare: pd.DataFrame, title: str = "Expected cost: base vs what-if (USD)") -> alt.Chart:
    """Stacked bars of expected cost per category for the base and the what-if plan.

    Args:
        compare: ``plan`` (base / what-if), ``category``, ``usd``.
        title: chart title.
    """
    return alt.Chart(compare).mark_bar().encode(
        y=alt.Y("plan:N", title=None, sort=["base", "what-if"]),
        x=alt.X("sum(usd):Q", title="Expected cost over the window (USD)", stack="zero"),
        color=_category_color(), order=alt.Order("category_order:Q"),
        tooltip=[alt.Tooltip("plan:N"), alt.Tooltip("category:N"), alt.Tooltip("sum(usd):Q", title="USD",
                                                                               format=",.0f")],
    ).transform_calculate(category_order=_order_expr()).properties(title=title, height=alt.Step(32))


def pareto_chart(points: pd.DataFrame, title: str = "Cost versus speed of the training backlog") -> alt.LayerChart:
    """Backlog cost (USD) against expected completion time (hours) per speed priority, frontier as a line.

    Args:
        points: ``speed_priority, cost_usd, completion_hours, makespan_hours, gpu_mix, on_frontier``
            (``optimizer.pareto.ParetoResult.points``).
        title: chart title.
    """
    data = points.assign(status=points["on_frontier"].map({True: "Pareto frontier", False: "dominated"}))
    x = alt.X("completion_hours:Q", title="Expected completion time (hours, backlog-weighted mean)",
              scale=alt.Scale(zero=False))
    y = alt.Y("cost_usd:Q", title="Cost of the backlog (USD)", scale=alt.Scale(zero=False))
    tooltip = [alt.Tooltip("speed_priority:Q", title="speed priority", format=".2f"),
               alt.Tooltip("cost_usd:Q", title="USD", format=",.0f"),
               alt.Tooltip("completion_hours:Q", title="mean completion (h)", format=",.0f"),
               alt.Tooltip("makespan_hours:Q", title="makespan (h)", format=",.0f"),
               alt.Tooltip("gpu_mix:N", title="GPU mix (share of work)")]
    dots = alt.Chart(data).mark_circle(size=90).encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("status:N", title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=["Pareto frontier", "dominated"], range=["#4c78a8", "#bbbbbb"])))
    line = alt.Chart(data[data["on_frontier"]]).mark_line(color="#4c78a8").encode(
        x=x, y=y, order=alt.Order("completion_hours:Q"))
    return alt.layer(line, dots).properties(title=title, height=340)
