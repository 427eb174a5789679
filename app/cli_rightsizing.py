"""``gpuplan pareto`` and the ``--workloads`` step of ``gpuplan plan``: rightsizing and cost versus speed.

Thin: routing is :mod:`optimizer.rightsizing`, the sweep :mod:`optimizer.pareto`. Work is in
reference-GPU-hours (NVIDIA A100 = 1.0), costs in USD, times in hours. Registered on the ``gpuplan`` app by
one import at the end of :mod:`app.cli`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from app.cli_common import (
    USER_ERRORS,
    CatalogOpt,
    EventsOpt,
    FormatOpt,
    HistoryOpt,
    TagKeyOpt,
    UserFacingError,
    app,
    apply_planned_events,
    events_file,
    fail,
    fit_usage,
    load_usage_file,
    out,
    parse_start,
    run_forecast,
    step,
)
from app.tables import OutputFormatOpt, emit
from optimizer.catalog import Catalog, load_catalog
from optimizer.inputs import PlanConfig
from optimizer.rightsizing import Routing
from usage import schema as S

WorkloadsOpt = Annotated[Path | None, typer.Option(help="workload classes per team (YAML, see "
                                                        "data_samples/workloads.yaml): rightsize GPU types")]
SpeedOpt = Annotated[float, typer.Option(help="rightsizing weight: 0 = cheapest per reference GPU-hour, "
                                              "1 = fastest", min=0.0, max=1.0)]
ThroughputOpt = Annotated[Path | None, typer.Option(help="relative-throughput CSV (default: "
                                                         "data_samples/gpu_throughput.csv)")]
FORECAST_VALUES = (S.MEAN, "p05", S.P10, S.P50, S.P90, "p95")


def route_for_plan(usage: pd.DataFrame, forecast: pd.DataFrame | None, cat: Catalog, config: PlanConfig,
                   workloads: Path, speed_priority: float, history_hours: int | None, events: Path | None,
                   throughput: Path | None = None, progress: Callable[[str], None] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame | None, PlanConfig, Routing]:
    """Route the plan's demand before the MILP (``gpuplan plan --workloads``).

    Without a forecast (and without events) the usage history is routed, so the forecast and its joint sample
    paths are made on the routed GPU models. With a forecast, or with planned events (which name today's GPU
    models), the forecast frame is routed after the events are applied. Routing costs are computed on the
    forecast mean, else on the last ``history_hours`` of usage before the window.

    Returns:
        (usage, forecast, config, routing): the inputs for :func:`app.cli.plan_from_usage` (events already
        applied when a forecast is returned) and the routing to attach to the plan.
    """
    from optimizer.rightsizing import load_throughput, route
    from optimizer.workloads import load_workloads

    wl = load_workloads(workloads, known_gpu_types=cat.gpu_models())
    thr = load_throughput(throughput)
    history = usage[usage[S.TIMESTAMP] < config.start]
    evs = events_file(events, cat)
    if forecast is None and events is not None:
        if history.empty:
            raise UserFacingError(f"no usage before --start {config.start:%Y-%m-%dT%H:%M}Z to forecast from "
                                  "(fix: choose a later start or pass --forecast)")
        horizon = int((config.end - history[S.TIMESTAMP].max()) / pd.Timedelta(hours=1)) - 1
        forecast = run_forecast(fit_usage(history, evs), horizon, history_hours, progress).forecast
    if forecast is not None:
        forecast = apply_planned_events(forecast, evs)
        window = forecast[(forecast[S.TIMESTAMP] >= config.start) & (forecast[S.TIMESTAMP] < config.end)]
        routing = route(window if not window.empty else forecast, wl, cat, config, speed_priority=speed_priority,
                        throughput=thr, value_column=S.MEAN)
        values = [c for c in FORECAST_VALUES if c in forecast.columns]
        forecast = routing.apply(forecast, values)
    else:
        if history.empty:
            raise UserFacingError(f"no usage before --start {config.start:%Y-%m-%dT%H:%M}Z to rightsize from "
                                  "(fix: choose a later start or pass --forecast)")
        recent = history
        if history_hours:
            recent = history[history[S.TIMESTAMP] > history[S.TIMESTAMP].max() - pd.Timedelta(hours=history_hours)]
        routing = route(recent, wl, cat, config, speed_priority=speed_priority, throughput=thr)
        usage = routing.apply(usage, [S.GPUS])
    return usage, forecast, routing.plan_config(config), routing


def routing_table(routing: Routing) -> Table:
    """Per team and workload class: where its work goes, at what cost per reference GPU-hour, and why."""
    from optimizer import rightsizing as R

    table = Table(title=f"Rightsizing (speed priority {routing.speed_priority:g}): reference GPU = "
                        f"{R.REFERENCE_GPU}, cost per reference GPU-hour is the stand-alone estimate")
    for col in ("team", "class", "today", "routed to", "x A100", "A100-h", "USD/A100-h", "spot", "runner-up"):
        table.add_column(col, justify="right" if col in ("x A100", "A100-h", "USD/A100-h", "spot") else "left",
                         overflow="fold")
    for _, r in routing.table.iterrows():
        today = ", ".join(R.short_name(g) for g in str(r[R.FROM]).split(" + "))
        table.add_row(r[R.TEAM], r[R.CLASS], today, R.short_name(r[R.GPU_MODEL]), f"{r[R.THROUGHPUT]:.2f}",
                      f"{r[R.REF_HOURS]:,.0f}", f"{r[R.USD_PER_REF]:.2f}", f"{r[R.SPOT_SHARE]:.0%}",
                      str(r[R.REASON]).split("; excluded")[0].split(" speed; ", 1)[-1])
    return table


@app.command()
def pareto(
    usage: Annotated[Path, typer.Option(help="usage file: canonical CSV/Parquet, FOCUS or CUR export")],
    workloads: Annotated[Path, typer.Option(help="workload classes per team (YAML, see "
                                                 "data_samples/workloads.yaml)")],
    hours: Annotated[int, typer.Option(help="backlog window in hours", min=1)] = 720,
    start: Annotated[str | None, typer.Option(help="window start, ISO 8601 (default: the hour after the usage "
                                                   "ends, with the last HOURS of usage as the backlog)")] = None,
    forecast_file: Annotated[Path | None, typer.Option("--forecast", help="take the backlog from this forecast "
                                                                          "CSV (mean) instead of usage")] = None,
    steps: Annotated[int, typer.Option(help="speed priorities swept from 0 to 1", min=2)] = 21,
    out_path: Annotated[Path | None, typer.Option("--out", help="CSV of every sweep point")] = None,
    chart: Annotated[Path | None, typer.Option(help="write the cost-vs-time chart as HTML")] = None,
    region: Annotated[str, typer.Option(help="catalog region")] = "us-east-1",
    no_spot: Annotated[bool, typer.Option("--no-spot", help="do not use spot capacity")] = False,
    max_spot_share: Annotated[float, typer.Option(help="max share of GPU-hours on spot (0-1)")] = 0.3,
    throughput: ThroughputOpt = None,
    events: EventsOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    history_hours: HistoryOpt = 1344,
    catalog: CatalogOpt = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """Cost versus completion time of the training backlog for speed priorities 0..1, and its Pareto frontier."""
    from app.chart_html import write_chart_html
    from app.charts import pareto_chart
    from forecasting.engine import read_forecast_csv
    from optimizer.pareto import COST, MAKESPAN, MIX, ON_FRONTIER, SPEED_PRIORITY, SPEED_PRIORITY_TO, TIME, sweep
    from optimizer.rightsizing import load_throughput
    from optimizer.workloads import load_workloads
    from usage.io import write_csv_atomic

    try:
        cat = load_catalog(catalog)
        cat.region(region)
        wl = load_workloads(workloads, known_gpu_types=cat.gpu_models())
        thr = load_throughput(throughput)
        usage_df = load_usage_file(usage, fmt, tag_key, cat)
        if start is None:
            first = usage_df[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
            config = PlanConfig(start=first, hours=hours, region=region, allow_spot=not no_spot,
                                max_spot_share=max_spot_share)
        else:
            config = PlanConfig(start=parse_start(start), hours=hours, region=region, allow_spot=not no_spot,
                                max_spot_share=max_spot_share)
        if forecast_file is not None or events is not None:
            evs = events_file(events, cat)
            if forecast_file is not None:
                fc = read_forecast_csv(forecast_file)
            else:
                history = usage_df[usage_df[S.TIMESTAMP] < config.start]
                if history.empty:
                    raise UserFacingError(f"no usage before --start {config.start:%Y-%m-%dT%H:%M}Z to forecast "
                                          "from (fix: choose a later --start)")
                horizon = int((config.end - history[S.TIMESTAMP].max()) / pd.Timedelta(hours=1)) - 1
                fit = fit_usage(history, evs)
                with step("forecasting") as say:
                    fc = run_forecast(fit, horizon, history_hours or None, say).forecast
            fc = apply_planned_events(fc, evs)
            demand = fc[(fc[S.TIMESTAMP] >= config.start) & (fc[S.TIMESTAMP] < config.end)]
            value, basis = S.MEAN, "forecast mean"
        else:
            if start is None:
                lo = usage_df[S.TIMESTAMP].max() - pd.Timedelta(hours=hours - 1)
                demand = usage_df[usage_df[S.TIMESTAMP] >= lo]
                basis = f"the last {hours} h of usage"
            else:
                demand = usage_df[(usage_df[S.TIMESTAMP] >= config.start) & (usage_df[S.TIMESTAMP] < config.end)]
                basis = f"usage of {config.start:%Y-%m-%d %H:%M} + {hours} h"
            value = S.GPUS
        if demand.empty:
            raise UserFacingError(f"no demand in the {hours}-hour backlog window starting {config.start:%Y-%m-%d %H:%M}"
                                  " (fix: choose --start inside the usage or pass --forecast covering it)")
        with step("sweeping speed priority") as say:
            say(f"{steps} speed priorities")
            result = sweep(demand, wl, cat, config, steps=steps, throughput=thr, value_column=value)
        if out_path is not None:
            write_csv_atomic(result.points, out_path)
        if chart is not None:
            write_chart_html(pareto_chart(result.points), chart)  # renders offline (vega inlined)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    total = result.backlog["reference_gpu_hours"].sum()
    table = Table(title=f"Cost vs speed: backlog of {total:,.0f} A100-hours ({basis}, {len(result.backlog)} batch "
                        f"units), each team keeping its current GPU count; * = Pareto frontier")
    for col in ("speed priority", "cost (USD)", "mean completion (h)", "makespan (h)", "GPU mix", "frontier"):
        table.add_column(col, justify="left" if col in ("GPU mix", "frontier") else "right")
    for _, r in result.points.iterrows():
        lo, hi = r[SPEED_PRIORITY], r[SPEED_PRIORITY_TO]
        table.add_row(f"{lo:.2f}" if hi <= lo else f"{lo:.2f}-{hi:.2f}", f"{r[COST]:,.0f}", f"{r[TIME]:,.0f}",
                      f"{r[MAKESPAN]:,.0f}", str(r[MIX]), "*" if r[ON_FRONTIER] else "")
    emit(table, output_format, out)
    merged = result.points[result.points[SPEED_PRIORITY_TO] > result.points[SPEED_PRIORITY]]
    if not merged.empty:
        out.print(f"{steps} speed priorities swept, {len(result.points)} distinct routings: a range such as "
                  f"{merged[SPEED_PRIORITY].iloc[-1]:.2f}-{merged[SPEED_PRIORITY_TO].iloc[-1]:.2f} gives one routing "
                  "(the same GPUs, cost and time), shown once")
    out.print(f"on today's GPUs the same backlog takes {result.window_hours} h per team")
    written = [str(p) for p in (out_path, chart) if p is not None]
    if written:
        out.print("wrote " + " and ".join(written))
