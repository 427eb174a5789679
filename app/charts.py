"""Chart builders: pure functions of frames that return Altair charts (no Streamlit, testable alone).

Units: demand in GPUs in use per hour (= GPU-hours per hour), costs in USD, time in UTC.
The frames come from :mod:`app.forecast_state` (``level_fan_frames``) and :mod:`app.plan_frames` (``daily_costs``,
``gpu_model_costs``).
"""

from __future__ import annotations

import json

import altair as alt
import pandas as pd

from usage import schema as S

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
                        legend=legend("top")),
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
    return alt.Color("category:N", title="Pricing", legend=legend("top", "Pricing"),
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


TOP_N = 9
"""Groups drawn with their own colour in a stacked chart; the rest are one "other" series (so no colour repeats
and the legend lists every series drawn)."""
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d"]
OTHER_COLOR = "#bab0ac"
PLURAL = {"team": "teams", "project": "projects", "gpu_type": "GPU types"}


def legend(orient: str = "right", title: str | None = None) -> alt.Legend:
    """A legend that lists every series (no symbol limit, labels never cut); charts with many series lump the
    smallest first (:func:`top_n_other`)."""
    return alt.Legend(orient=orient, title=title, symbolLimit=0, labelLimit=0)


def top_n_other(frame: pd.DataFrame, group: str, weight: str = "usd", n: int = TOP_N) -> tuple[pd.DataFrame, list[str]]:
    """The ``n`` groups with the largest total ``weight`` keep their name, the others become one
    ``other (k <groups>)`` group (their rows summed per remaining key columns).

    Returns:
        ``(frame, domain)``: the frame with ``group`` rewritten and summed, and the legend order (largest first,
        "other" last).
    """
    totals = frame.groupby(group)[weight].sum().sort_values(ascending=False, kind="stable")
    if len(totals) <= n + 1:  # one "other" series for a single group would hide a name for nothing
        return frame, [str(g) for g in totals.index]
    keep = [str(g) for g in totals.index[:n]]
    other = f"other ({len(totals) - n} {PLURAL.get(group, group.replace('_', ' ') + 's')})"
    lumped = frame.assign(**{group: frame[group].astype(str).where(frame[group].astype(str).isin(keep), other)})
    keys = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) or c == group]
    lumped = lumped.groupby(keys, as_index=False, sort=False).sum(numeric_only=True)
    return lumped, [*keep, other]


def series_color(field: str, domain: list[str], title: str | None = None, orient: str = "right") -> alt.Color:
    """Colour per series from a fixed domain: distinct palette colours, grey for an ``other (...)`` series."""
    colours = [OTHER_COLOR if d.startswith("other (") else PALETTE[i % len(PALETTE)] for i, d in enumerate(domain)]
    return alt.Color(f"{field}:N", title=title, scale=alt.Scale(domain=domain, range=colours),
                     legend=legend(orient, title), sort=domain)


def quantity_scale(values: pd.Series | list[float], share: float = 0.05) -> alt.Scale:
    """A linear scale that never reads as a wide range when the values are (nearly) equal: the domain is the
    values' span padded by ``share`` of their size (at least 1 unit), nice-rounded, so ``720.05333`` and
    ``720.05334`` sit side by side on a ``700 - 740`` axis instead of ``720.0533270 .. 720.0533370``."""
    v = pd.Series(values, dtype=float).dropna()
    if v.empty:
        return alt.Scale(zero=False)
    lo, hi = float(v.min()), float(v.max())
    pad = max((hi - lo) * 0.1, abs(hi) * share, 1.0)
    return alt.Scale(domain=[lo - pad, hi + pad], nice=True, zero=False)


def spend_over_time_chart(over_time: pd.DataFrame, group: str, value: str = "usd", title: str = "") -> alt.Chart:
    """Stacked bars per day (or week) and group: spend (``value='usd'``, USD) or ``gpu_hours`` (GPU-hours).

    The :data:`TOP_N` groups with the most spend keep their own colour, the rest are one "other (k ...)" series
    (the same lumping for spend and GPU-hours, so the two charts share their colours); the legend lists every
    series drawn.

    Args:
        over_time: ``period, <group>, usd, gpu_hours``.
        group: the grouping column (team, project or gpu_type).
        value: ``usd`` or ``gpu_hours``.
        title: chart title.
    """
    unit = "USD" if value == "usd" else "GPU-hours"
    data, domain = top_n_other(over_time, group, "usd")
    name = "GPU type" if group == "gpu_type" else group.replace("_", " ").capitalize()
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("period:T", title="Day (UTC)"),
        y=alt.Y(f"sum({value}):Q", title=f"{'Spend' if value == 'usd' else 'GPU-hours'} ({unit} per day)",
                stack="zero", axis=alt.Axis(format=",.0f")),
        color=series_color(group, domain, title=f"{name} (by spend)"),
        order=alt.Order("series_order:Q", sort="ascending"),
        tooltip=[alt.Tooltip("period:T", title="day (UTC)", format="%Y-%m-%d"), alt.Tooltip(f"{group}:N", title=name),
                 alt.Tooltip(f"sum({value}):Q", title=unit, format=",.0f")],
    ).transform_calculate(series_order=f"indexof({json.dumps(domain)}, datum[{json.dumps(group)}])").properties(
        title=title, height=320)


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
        upfront: ``month`` (``YYYY-MM``), ``usd`` (``app.plan_frames.upfront_frame``).
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
