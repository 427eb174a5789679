"""``gpuplan``: the command line of GPU Cost Planner (thin: it only calls forecasting/ and optimizer/).

This module holds the entry point and the planning commands (``forecast``, ``plan``, ``ingest``, ``catalog``,
``longterm``, ``backtest``, ``demo``, ``app``), and imports every other command module (``app/cli_*.py``) so that
they register on the one Typer app of :mod:`app.cli_common`, which holds what they share: the one-line errors
(every user mistake ends with one ``error:`` line and exit status 2, never a traceback), the guard around each
command (inputs protected, outputs checked up front, files written atomically) and the option types.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from app.cli_common import (
    USER_ERRORS,
    CatalogOpt,
    EngineOpt,
    EventsOpt,
    FormatOpt,
    HistoryOpt,
    ModelsOpt,
    TagKeyOpt,
    UsageOpt,
    UserFacingError,
    app,
    apply_planned_events,
    catalog_app,
    err,
    events_file,
    fail,
    fit_usage,
    forecast_config,
    guard_all_commands,
    load_usage_file,
    out,
    parse_start,
    run_forecast,
    say_fitted_without,
    split_list,
    step,
)
from app.tables import OutputFormatOpt, emit
from optimizer.catalog import Catalog, load_catalog
from optimizer.inputs import DEFAULT_COST_OF_CAPITAL, PlanConfig, PlanningError
from usage import schema as S

ROOT = Path(__file__).resolve().parents[1]


def plan_window(start: str | None, hours: int | None, month: str | None) -> tuple[pd.Timestamp, int]:
    """The plan window from ``--start``/``--hours`` or from ``--month YYYY-MM`` (the whole calendar month, UTC)."""
    if month is not None:
        if start is not None or hours is not None:
            raise UserFacingError("--month gives the whole window: drop --start and --hours (or drop --month)")
        m = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
        if not m or not 1 <= int(m[2]) <= 12:
            raise UserFacingError(f"--month {month!r} is not a calendar month (fix: YYYY-MM, e.g. 2025-12)")
        first = pd.Timestamp(year=int(m[1]), month=int(m[2]), day=1)
        return first, int((first + pd.DateOffset(months=1) - first) / pd.Timedelta(hours=1))
    if start is None or hours is None:
        raise UserFacingError("no plan window (fix: --month YYYY-MM for a calendar month, or --start and --hours)")
    return parse_start(start), hours


def month_mismatch_note(start: pd.Timestamp, hours: int) -> str | None:
    """A note when a window starting on the 1st at 00:00 lasts about a month but not the calendar month."""
    month_hours = int((start + pd.DateOffset(months=1) - start) / pd.Timedelta(hours=1))
    if start != start.normalize() or start.day != 1 or hours == month_hours or abs(hours - month_hours) > 72:
        return None
    end = start + pd.Timedelta(hours=hours)
    return (f"the window ends {end:%Y-%m-%d %H:%M} UTC, not at the end of {start:%B %Y} ({month_hours} h; fix: "
            f"--month {start:%Y-%m} for the calendar month)")


def _spot_capacity(values: list[str]) -> tuple[tuple[str, int], ...]:
    out = []
    for v in values:
        name, sep, count = v.partition("=")
        if not sep or not name.strip() or not count.strip().isdigit():
            raise UserFacingError(f"--spot-capacity {v!r} is not TYPE=N (fix: e.g. --spot-capacity p5.48xlarge=4)")
        out.append((name.strip(), int(count)))
    return tuple(out)


def forecast_table(fc: pd.DataFrame, selection: pd.DataFrame) -> Table:
    """Per-series forecast overview: average GPUs over the horizon with the p10-p90 range."""
    agg = fc.groupby([S.TEAM, S.GPU_TYPE]).agg(mean=(S.MEAN, "mean"), p10=(S.P10, "mean"), p90=(S.P90, "mean"),
                                               peak_p90=(S.P90, "max"))
    agg = agg.join(selection.set_index([S.TEAM, S.GPU_TYPE])[["cv_mae"]]).join(
        fc.groupby([S.TEAM, S.GPU_TYPE])[S.MODEL].first())
    table = Table(title=f"Forecast: average GPUs in use per hour, {fc[S.TIMESTAMP].min():%Y-%m-%d %H:%M} to "
                        f"{fc[S.TIMESTAMP].max():%Y-%m-%d %H:%M} UTC")
    for col in ("team", "GPU type", "model", "CV MAE (GPUs)", "p10", "mean", "p90", "peak p90"):
        table.add_column(col, justify="left" if col in ("team", "GPU type", "model") else "right")
    for (team, gpu), r in agg.iterrows():
        cv = "-" if pd.isna(r["cv_mae"]) else f"{r['cv_mae']:.1f}"
        table.add_row(team, gpu, r[S.MODEL], cv, f"{r['p10']:.1f}", f"{r['mean']:.1f}", f"{r['p90']:.1f}",
                      f"{r['peak_p90']:.1f}")
    return table


@app.command()
def forecast(
    usage: UsageOpt,
    horizon_hours: Annotated[int, typer.Option(help="hours to forecast after the last hour of usage", min=1)],
    out_path: Annotated[Path, typer.Option("--out", help="forecast CSV to write")],
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    history_hours: HistoryOpt = 1344,
    models: ModelsOpt = "default",
    engine: EngineOpt = "local",
    events: EventsOpt = None,
    catalog: CatalogOpt = None,
    levels_out: Annotated[Path | None, typer.Option(
        "--levels-out", help="also write coherent forecasts of every level (organisation, GPU type, team, team x "
                             "GPU type) to this CSV: each total equals the sum of its parts")] = None,
    reconcile: Annotated[str, typer.Option(
        help="how --levels-out reconciles: wls_var, wls_var_total (keeps the organisation total), mint_shrink, "
             "wls_struct, ols, bottom_up")] = "wls_var",
    output_format: OutputFormatOpt = "table",
) -> None:
    """Forecast hourly GPU demand per team and GPU type, with p05/p10/p50/p90/p95."""
    from forecasting.engine import write_forecast_csv

    levels = None
    try:
        cat = load_catalog(catalog)
        hconfig = hierarchy_config(reconcile) if levels_out is not None else None
        usage_df = load_usage_file(usage, fmt, tag_key, cat)
        evs = events_file(events, cat)
        fit = fit_usage(usage_df, evs)
        with step("forecasting") as say:
            result = run_forecast(fit, horizon_hours, history_hours or None, say, models=models, engine=engine)
        fc = apply_planned_events(result.forecast, evs)
        if hconfig is not None:
            with step("forecasting and reconciling every level") as say:
                levels = reconciled_levels(fit, result.forecast, fc, hconfig,
                                           forecast_config(horizon_hours, history_hours or None, models, engine), say)
        write_forecast_csv(fc, out_path)
        if levels is not None:
            from forecasting.hierarchy import write_levels_csv

            write_levels_csv(levels.forecast, levels_out)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    emit(forecast_table(fc, result.selection), output_format, out)
    if result.long is not None and result.long.short_history is not None:
        err.print(f"  note: {result.long.short_history.note}", markup=False, highlight=False)
    out.print(f"wrote {len(fc):,} rows to {out_path}")
    if levels is not None:
        emit(levels_table(levels.forecast, levels.method), output_format, out)
        for note in levels.notes:
            err.print(f"  note: {note}", markup=False, highlight=False)
        out.print(f"wrote {len(levels.forecast):,} rows to {levels_out}")


def hierarchy_config(method: str):
    """The reconciliation settings for ``--reconcile`` (HierarchyConfig checks the method; the message names
    the option)."""
    from forecasting.hierarchy import HierarchyConfig

    try:
        return HierarchyConfig(method=method)
    except ValueError as exc:
        raise UserFacingError(f"--reconcile: {exc}") from None


def reconciled_levels(usage: pd.DataFrame, bottom: pd.DataFrame, adjusted: pd.DataFrame, hconfig, config,
                      progress: Callable[[str], None] | None = None):
    """Forecast and reconcile every level of the usage; planned events applied to the bottom forecast
    (``adjusted`` against ``bottom``) are added to every node that contains the adjusted series."""
    from forecasting.hierarchy import add_adjustments, reconcile_usage

    rec = reconcile_usage(usage, config, hconfig, progress=progress)
    return dataclasses.replace(rec, forecast=add_adjustments(rec.forecast, bottom, adjusted))


def levels_table(levels: pd.DataFrame, method: str) -> Table:
    """Average GPUs per hour over the horizon for the organisation and each GPU type and team (p10-p90)."""
    from forecasting.hierarchy import KEY, LEVEL, LEVEL_BOTTOM

    agg = (levels[levels[LEVEL] != LEVEL_BOTTOM].groupby([LEVEL, KEY], sort=False)
           .agg(p10=(S.P10, "mean"), mean=(S.MEAN, "mean"), p90=(S.P90, "mean")))
    table = Table(title=f"Every level, reconciled ({method}): average GPUs in use per hour")
    for col in ("level", "node", "p10", "mean", "p90"):
        table.add_column(col, justify="left" if col in ("level", "node") else "right")
    for (level, key), r in agg.iterrows():
        table.add_row(str(level), str(key), f"{r['p10']:.1f}", f"{r['mean']:.1f}", f"{r['p90']:.1f}")
    return table


def plan_from_usage(usage: pd.DataFrame, cat: Catalog, config: PlanConfig, *, history_hours: int | None = 1344,
                    forecast_frame: pd.DataFrame | None = None, progress: Callable[[str], None] | None = None,
                    events: Path | None = None, events_in_forecast: bool = False, routing=None,
                    allow_short_history: bool = False):
    """Forecast from the history before the window (unless a forecast is given) and plan the window, each
    commitment judged over its whole term (:func:`optimizer.term.plan_scenarios`) unless ``config.term_horizon``
    is off.

    Args:
        usage: canonical usage (the rows before ``config.start`` are the history).
        cat: price catalog.
        config: the plan settings.
        history_hours: hours of history the hourly forecast fits on.
        forecast_frame: a forecast to plan the window's first hours from (p10/p50/p90) instead of the engine's
            sample paths.
        progress: optional callback receiving one line per step.
        events: planned-events file (applied to every scenario and to the long-term forecast).
        events_in_forecast: ``forecast_frame`` already has the events applied.
        routing: rightsizing whose routed forecast frame is given (:func:`app.cli_rightsizing.route_for_plan`):
            the long-term forecast is routed the same way.
        allow_short_history: consider 3-year options even from under two weeks of history.
    """
    from optimizer.solve import make_plan
    from optimizer.term import NEAR_HOURS, multi_year_allowed, plan_scenarios

    history = usage[usage[S.TIMESTAMP] < config.start]
    config, short_note = multi_year_allowed(config, history, allow_short_history)
    evs = events_file(events, cat)
    result = None
    long = None
    if forecast_frame is None:
        if history.empty:
            raise PlanningError(f"no usage before --start {config.start:%Y-%m-%dT%H:%M}Z to forecast from "
                                "(fix: choose a later start or pass --forecast)")
        last = history[S.TIMESTAMP].max()
        near = min(config.hours, NEAR_HOURS) if config.term_horizon else config.hours
        horizon = int((config.start + pd.Timedelta(hours=near) - last) / pd.Timedelta(hours=1)) - 1
        result = run_forecast(fit_usage(history, evs), horizon, history_hours, progress)
        forecast_frame, long = result.forecast, result.long
    elif evs and not events_in_forecast:
        from forecasting.events import in_history

        past = in_history(evs, history)
        if past:   # a forecast made elsewhere was fitted on usage that may carry them already
            err.print(f"  note: {len(past)} planned event{'s' if len(past) > 1 else ''} started before the window; "
                      "the --forecast file may have learnt them from the usage it was fitted on, and then they are "
                      "counted twice (fix: leave out --forecast, so the plan fits its forecast without them)",
                      markup=False, highlight=False)
        forecast_frame = apply_planned_events(forecast_frame, evs)
        events_in_forecast = True
    if evs and long is not None:
        apply_planned_events(forecast_frame, evs)   # lists each event's change of the forecast (printed)
    scenarios = plan_scenarios(config, history, long=long, forecast=forecast_frame, events=evs,
                               events_in_forecast=events_in_forecast,
                               longterm_routing=dict(routing.assignment) if routing is not None else None,
                               progress=progress)
    if short_note:
        scenarios = dataclasses.replace(scenarios, notes=(short_note, *scenarios.notes))
    return make_plan(forecast_frame, cat, config, scenarios=scenarios, progress=progress), result


def with_capacity_blocks(result, events: Path, prices, cat: Catalog, config: PlanConfig | None = None):
    """The plan result with its ``capacity_blocks`` block: each planned ``add`` run priced on a Capacity Block,
    on-demand, spot and the plan (:mod:`optimizer.capacity_blocks`), each against the plan ``config`` makes without
    the run (one more solve per run; None: against the plan as bought)."""
    from optimizer import capacity_blocks as CB
    from optimizer.solve import make_plan

    block = CB.assess(result.plan, result.scenarios, events_file(events, cat),
                      prices, cat,
                      replan=(lambda sc: make_plan(None, cat, config, scenarios=sc).plan) if config else None)
    return dataclasses.replace(result, plan=CB.attach(result.plan, block))


def print_notes(plan) -> None:
    """The plan's notes (short history, where the long-term demand comes from), one line each on stderr."""
    for note in plan.assumptions.get("notes", []) or []:
        err.print(f"  note: {note}", markup=False, highlight=False)


@app.command()
def plan(
    usage: UsageOpt,
    out_path: Annotated[Path, typer.Option("--out", help="plan.json to write")],
    start: Annotated[str | None, typer.Option(help="first hour of the plan window, ISO 8601 (UTC if no zone)")] = None,
    hours: Annotated[int | None, typer.Option(help="window length in hours", min=1)] = None,
    month: Annotated[str | None, typer.Option(help="plan one calendar month, YYYY-MM (UTC): instead of --start and "
                                                   "--hours")] = None,
    region: Annotated[str | None, typer.Option(help="catalog region (default: from the usage's instance types or "
                                                    "provider/region columns, one plan per provider and region; "
                                                    "us-east-1 when the usage names no cloud)")] = None,
    instance_types: Annotated[str | None, typer.Option(help="comma-separated allowed instance types")] = None,
    options: Annotated[str | None, typer.Option(help="comma-separated commitment options, savings plans included "
                                                     "(compute_sp_1y_no_upfront, ec2_instance_sp_3y_all_upfront, ...; "
                                                     "default: the 1-year reserved and convertible ones)")] = None,
    no_spot: Annotated[bool, typer.Option("--no-spot", help="do not use spot capacity")] = False,
    max_spot_share: Annotated[float, typer.Option(help="max share of GPU-hours on spot (0-1)")] = 0.3,
    growth: Annotated[float, typer.Option(help="demand growth applied to the forecast, e.g. 0.1 = +10%")] = 0.0,
    forecast_file: Annotated[Path | None, typer.Option("--forecast", help="use this forecast CSV")] = None,
    events: EventsOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    history_hours: HistoryOpt = 1344,
    catalog: CatalogOpt = None,
    budget: Annotated[float | None, typer.Option(help="cap on expected cost over the window (USD)")] = None,
    max_obligation_usd: Annotated[float | None, typer.Option(
        help="maximum commitment: cap on the new commitments' obligation over their full terms (USD: upfront plus "
             "every recurring hour, paid whether used or not)")] = None,
    max_commit_usd: Annotated[float | None, typer.Option(hidden=True, help="removed: see --max-obligation-usd")] = None,
    max_commit_share: Annotated[float | None, typer.Option(
        help="cap on new commitments' cost over the horizon as a share (0-1) of the plan's cost (present "
             "values)")] = None,
    cost_of_capital: Annotated[float, typer.Option(
        help="annual cost of capital that discounts cash flows (0.1 = 10%/year; 0 = cash now and later weigh the "
             "same): it makes upfront vs no-upfront and 1-year vs 3-year real trade-offs")] = DEFAULT_COST_OF_CAPITAL,
    window_only: Annotated[bool, typer.Option("--window-only", help="judge commitments on the window alone (taken "
                                                                    "as representative of the term), as look-back "
                                                                    "recommenders do")] = False,
    allow_short_history: Annotated[bool, typer.Option("--allow-short-history", help="consider 3-year options even "
                                                                                    "from under 14 days of "
                                                                                    "history")] = False,
    needs_approval: Annotated[str | None, typer.Option(help="comma-separated instance types that need "
                                                            "approval (left out unless --approve)")] = None,
    approve: Annotated[list[str] | None, typer.Option(help="approved instance type (repeatable)")] = None,
    spot_capacity: Annotated[list[str] | None, typer.Option(help="TYPE=N: at most N spot instances of TYPE "
                                                                 "(repeatable)")] = None,
    existing: Annotated[Path | None, typer.Option(help="owned commitments (CSV/YAML: instance_type, option, "
                                                       "count, start, expiry; a savings plan: option, "
                                                       "commitment_usd_per_hour, start, expiry, and instance_family "
                                                       "for an EC2 Instance SP)")] = None,
    ladder: Annotated[bool, typer.Option("--ladder", help="allow new commitments to start in each month")] = False,
    cvar_weight: Annotated[float, typer.Option(help="risk weight on CVaR90 of scenario cost (0 = none)")] = 0.0,
    workloads: Annotated[Path | None, typer.Option(help="workload classes per team (YAML): rightsize GPU types "
                                                        "before planning")] = None,
    speed_priority: Annotated[float, typer.Option(help="with --workloads: 0 = cheapest per reference GPU-hour, "
                                                       "1 = fastest", min=0.0, max=1.0)] = 0.0,
    output_format: OutputFormatOpt = "table",
    capacity_block_prices: Annotated[Path | None, typer.Option(
        help="Capacity Block rates (CSV: instance_type, region, usd_per_instance_hour, snapshot_date, source) for "
             "the planned add events of --events (default: the shipped AWS rates)")] = None,
) -> None:
    """Plan purchases for [start, start + hours): commitments, spot allowance, on-demand."""
    from forecasting.engine import read_forecast_csv
    from optimizer.baselines import with_lookback
    from optimizer.options import DEFAULT_COMMITMENT_OPTIONS, validate_options
    from optimizer.summary import budget_p90_warning, summary

    try:
        if max_commit_usd is not None:
            raise UserFacingError("--max-commit-usd was removed: a maximum commitment is now the obligation over the "
                                  "full terms, in USD, everywhere (fix: --max-obligation-usd AMOUNT)")
        cat = load_catalog(catalog)
        opts = validate_options(split_list(options)) if options else DEFAULT_COMMITMENT_OPTIONS
        from optimizer.existing import load_existing
        from optimizer.inputs import place_usage

        stray = [t for t in (approve or ()) if t not in (split_list(needs_approval) or ())]
        if stray:  # a typo here would silently leave the intended type blocked
            raise UserFacingError(f"--approve {stray[0]!r} is not among --needs-approval (fix: approve one of "
                                  f"{', '.join(split_list(needs_approval) or ()) or '(none listed)'}, or drop it)")
        if capacity_block_prices is not None and events is None:
            raise UserFacingError("--capacity-block-prices prices the planned runs of --events (fix: add --events "
                                  "FILE, or drop --capacity-block-prices)")
        if events is not None:  # read before planning, so a mistake in it costs no solve
            from optimizer.capacity_blocks import load_prices

            block_prices = load_prices(capacity_block_prices)
        window_start, window_hours = plan_window(start, hours, month)
        mismatch = month_mismatch_note(window_start, window_hours)
        if mismatch:
            err.print(f"  note: {mismatch}", markup=False, highlight=False)
        if region is not None:
            cat.region(region)
        usage_all = load_usage_file(usage, fmt, tag_key, cat)
        # one plan per provider and region of the usage: never one cloud's usage at another cloud's prices
        placements = place_usage(usage_all, cat, region)
        several = len(placements) > 1
        if several and (existing is not None or events is not None):
            flag = "--existing" if existing is not None else "--events"
            raise UserFacingError(f"{flag} with usage on {len(placements)} providers/regions "
                                  f"({', '.join(f'{p.provider} {p.region}' for p in placements)}) cannot tell which "
                                  "plan it belongs to (fix: plan each provider's usage on its own, e.g. with "
                                  "instance_type filtered, and --region)")
        done = []
        for place in placements:
            if several or (region is None and place.provider != "aws") or (region not in (None, place.region)):
                teams = sorted(str(t) for t in place.usage[S.TEAM].unique())
                err.print(f"  note: {place.provider} usage (teams {', '.join(teams[:5])}{', ...' * (len(teams) > 5)}) "
                          f"is planned at {place.provider} prices in {place.region} ({place.reason})", markup=False,
                          highlight=False)
            place_region = place.region
            path = (out_path.with_name(f"{out_path.stem}.{place.provider}-{place_region}{out_path.suffix}")
                    if several else out_path)
            owned = load_existing(existing, cat, place_region) if existing else ()
            config = PlanConfig(start=window_start, hours=window_hours, region=place_region,
                                instance_types=split_list(instance_types), options=opts, allow_spot=not no_spot,
                                max_spot_share=max_spot_share, growth=growth, budget_usd=budget,
                                max_obligation_usd=max_obligation_usd, max_commit_share=max_commit_share,
                                cost_of_capital=cost_of_capital, term_horizon=not window_only,
                                needs_approval=split_list(needs_approval) or (),
                                approved=tuple(approve or ()), spot_capacity=_spot_capacity(spot_capacity or []),
                                existing=owned, ladder=ladder, cvar_weight=cvar_weight)
            cat.region(place_region)
            for type_name, _ in config.spot_capacity:  # a typo would silently leave the intended type uncapped
                if cat.offers(place_region, instance_types=(type_name,)).empty:
                    raise UserFacingError(f"--spot-capacity {type_name!r}: no such instance type in the catalog for "
                                          f"{place_region} (fix: use a type from gpuplan catalog show)")
            usage_df = place.usage
            fc = read_forecast_csv(forecast_file) if forecast_file else None
            routing = None
            if workloads is not None:  # rightsizing (app/cli_rightsizing.py); events are applied there
                from app.cli_rightsizing import route_for_plan

                with step("rightsizing") as say:
                    usage_df, fc, config, routing = route_for_plan(usage_df, fc, cat, config, workloads,
                                                                   speed_priority, history_hours or None, events,
                                                                   progress=say)
            with step("planning") as say:
                result, _ = plan_from_usage(usage_df, cat, config, history_hours=history_hours or None,
                                            forecast_frame=fc, progress=say, events=events,
                                            events_in_forecast=routing is not None and fc is not None,
                                            routing=routing if fc is not None else None,
                                            allow_short_history=allow_short_history)
            if routing is not None:
                from optimizer.rightsizing import attach_routing

                result = dataclasses.replace(result, plan=attach_routing(result.plan, routing))
            result = with_lookback(result, usage_df, cat, config)
            if events is not None:
                with step("pricing planned runs on Capacity Blocks"):
                    result = with_capacity_blocks(result, events, block_prices, cat, config)
            placed = {"provider": place.provider, "region": place_region, "region_from": place.reason,
                      "teams": sorted(str(t) for t in place.usage[S.TEAM].unique())}
            result = dataclasses.replace(result, plan=dataclasses.replace(
                result.plan, assumptions={**result.plan.assumptions, "placement": placed}))
            result.plan.write(path)
            done.append((place, result, routing, path))
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    for place, result, routing, path in done:
        if several:
            out.print(f"\n== {place.provider} {place.region} ==", markup=False, highlight=False)
        print_notes(result.plan)
        warn = budget_p90_warning(result.plan)
        if warn:
            err.print(f"warning: {warn}", markup=False, highlight=False)
        out.print(summary(result.plan), markup=False, highlight=False)
        if routing is not None:
            from app.cli_rightsizing import routing_table

            emit(routing_table(routing), output_format, out)
        out.print(f"\nwrote {path}")


@app.command()
def ingest(
    file: Annotated[Path | None, typer.Argument(help="billing export or usage file")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="canonical usage CSV to write")] = Path("usage.csv"),
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    cost_explorer: Annotated[bool, typer.Option("--cost-explorer", help="pull from AWS Cost Explorer")] = False,
    start: Annotated[str | None, typer.Option(help="Cost Explorer start date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="Cost Explorer end date, exclusive (YYYY-MM-DD)")] = None,
    granularity: Annotated[str, typer.Option(help="Cost Explorer granularity: HOURLY or DAILY")] = "HOURLY",
    catalog: CatalogOpt = None,
) -> None:
    """Convert a FOCUS/CUR export (or Cost Explorer data) to canonical hourly usage."""
    from usage.ingest import fetch_cost_explorer
    from usage.io import write_csv_atomic

    try:
        cat = load_catalog(catalog)
        if cost_explorer:
            if not start or not end:
                raise UserFacingError("--cost-explorer needs --start and --end (fix: e.g. --start 2025-11-01 "
                                      "--end 2025-12-01)")
            with step("querying Cost Explorer") as say:
                usage_df, report = fetch_cost_explorer(start, end, tag_key=tag_key, granularity=granularity.upper(),
                                                       instance_gpus=cat.instance_gpus(), progress=say)
            for line in report.lines():
                err.print(f"  {line}", markup=False, highlight=False)
        else:
            if file is None:
                raise UserFacingError("give a FILE to ingest or --cost-explorer (see gpuplan ingest --help)")
            usage_df = load_usage_file(file, fmt, tag_key, cat)
        table = usage_df.copy()
        table[S.TIMESTAMP] = S.format_timestamp(table[S.TIMESTAMP])
        write_csv_atomic(table, out_path)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    out.print(f"wrote {len(usage_df):,} canonical rows to {out_path}")


@catalog_app.command("show")
def catalog_show(
    region: Annotated[str, typer.Option(help="region")] = "us-east-1",
    gpu_model: Annotated[str | None, typer.Option(help="GPU model, e.g. 'NVIDIA H100'")] = None,
    catalog: Annotated[Path | None, typer.Option(help="catalog CSV (default: shipped snapshot)")] = None,
    output_format: OutputFormatOpt = "table",
    missing: Annotated[bool, typer.Option("--missing", help="list the GPU instance types of the specs that the "
                                                            "catalog has no price for, with the reason")] = False,
) -> None:
    """Print on-demand, spot and commitment prices per instance type."""
    from optimizer import catalog as C

    try:
        cat = load_catalog(catalog)
        if missing:
            absent = C.missing_instance_types(cat.table)
        else:
            rows = cat.offers(region, gpu_model)
    except USER_ERRORS as exc:
        fail(exc)
    if missing:
        table = Table(title=f"GPU instance types without a price in {cat.path}")
        for c in ("provider", "instance type", "GPU model", "GPUs", "reason"):
            table.add_column(c, justify="right" if c == "GPUs" else "left")
        for _, r in absent.iterrows():
            table.add_row(r["provider"], r["instance_type"], str(r["gpu_model"]), f"{r['gpu_count']:g}", r["reason"])
        emit(table, output_format, out)
        out.print(f"{len(absent)} GPU instance types of the specs have no price in the catalog")
        return
    from optimizer.options import ALL_OPTIONS

    # One row per instance type and purchase option: every option the catalog prices (the plan's included) fits
    # the width, where a column per option (14 of them) would be cut.
    order = {o: k for k, o in enumerate(ALL_OPTIONS)}
    rows = rows.assign(_order=rows[C.PURCHASE_OPTION].map(order).fillna(len(order))).sort_values(
        [C.GPU_MODEL, C.GPU_COUNT, C.INSTANCE_TYPE, "_order"])
    table = Table(title=f"{region}: effective USD per instance-hour and per GPU-hour ({cat.path}, "
                        f"prices as of {', '.join(cat.snapshot_dates(region))})")
    for c in ("GPU model", "instance type", "GPUs", "purchase option", "USD/instance-h", "USD/GPU-h",
              "upfront USD"):
        table.add_column(c, justify="right" if c.startswith(("GPUs", "USD", "upfront")) else "left")
    for _, r in rows.iterrows():
        n = float(r[C.GPU_COUNT])
        table.add_row(str(r[C.GPU_MODEL]), str(r[C.INSTANCE_TYPE]), f"{n:g}", str(r[C.PURCHASE_OPTION]),
                      f"{r[C.EFFECTIVE_HOURLY]:,.2f}", f"{r[C.EFFECTIVE_HOURLY] / n:,.2f}" if n else "-",
                      f"{r[C.UPFRONT]:,.0f}" if r[C.UPFRONT] else "-")
    emit(table, output_format, out)


@catalog_app.command("refresh")
def catalog_refresh(
    out_path: Annotated[Path, typer.Option("--out", help="catalog CSV to write")],
    region: Annotated[str, typer.Option(help="region to price")] = "us-east-1",
    instance_types: Annotated[str | None, typer.Option(help="comma-separated instance types "
                                                            "(default: every GPU type of the region)")] = None,
    catalog: Annotated[Path | None, typer.Option(help="base catalog for specs (default: shipped snapshot)")] = None,
    capacity_blocks_out: Annotated[Path | None, typer.Option(
        "--capacity-blocks-out", help="also write Capacity Block offerings of the region (EC2 "
                                      "DescribeCapacityBlockOfferings) to this CSV, for gpuplan plan "
                                      "--capacity-block-prices")] = None,
) -> None:
    """Pull current prices with boto3 (Price List API, EC2 spot price history); the snapshot stays the default."""
    from optimizer.catalog import merge_catalog, write_atomic_csv
    from optimizer.catalog_refresh import RefreshConfig, RefreshError, refresh_catalog

    try:
        base = load_catalog(catalog)
        with step("pulling prices from AWS") as say:
            result = refresh_catalog(RefreshConfig(region=region, instance_types=split_list(instance_types)),
                                     base=base, progress=say)
        merged = merge_catalog(base.table, result.catalog)
        cb_notes: list[str] = []
        if capacity_blocks_out is not None:
            from optimizer.capacity_blocks import refresh_prices
            from usage.io import write_csv_atomic

            with step("pulling Capacity Block offerings from AWS") as say:
                offerings, cb_notes = refresh_prices(region, split_list(instance_types), progress=say)
            write_csv_atomic(offerings, capacity_blocks_out)
        write_atomic_csv(merged, out_path)
    except (*USER_ERRORS, RefreshError) as exc:
        fail(exc)
    for note in [*result.notes, *cb_notes]:
        err.print(f"  {note}", markup=False, highlight=False)
    out.print(f"refreshed {result.rows:,} price rows for {result.instance_types} instance types in {region}; wrote "
              f"{len(merged):,} rows (other regions and providers kept from {base.path}) to {out_path}; "
              f"use it with --catalog {out_path}")


@app.command()
def longterm(
    usage: UsageOpt,
    out_path: Annotated[Path, typer.Option("--out", help="daily (or weekly) forecast CSV to write")],
    days: Annotated[int, typer.Option(help="days to forecast (365 = 1-year, 1095 = 3-year terms)", min=1)] = 365,
    granularity: Annotated[str, typer.Option(help="daily or weekly models")] = "daily",
    trend: Annotated[str, typer.Option(help="estimated (growth rate per GPU model from the last year of history) "
                                            "or none")] = "estimated",
    growth: Annotated[float, typer.Option(help="annual demand growth on top of the estimated trend, 0.1 = +10%")] = 0.0,
    events: EventsOpt = None,
    ldc_out: Annotated[Path | None, typer.Option(help="also write monthly load-duration curves per GPU type")] = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """Forecast 12-36 months ahead (daily/weekly models) for commitment terms, with the trend estimated from the
    history, growth and planned events."""
    from forecasting.longterm import LongTermConfig, forecast_longterm
    from usage.io import write_csv_atomic

    try:
        config = LongTermConfig(horizon_days=days, granularity=granularity, growth=growth, trend=trend)
        cat = load_catalog(catalog)
        usage_df = load_usage_file(usage, fmt, tag_key, cat)
        evs = events_file(events, cat) or None
        say_fitted_without(usage_df, evs or ())   # forecast_longterm fits without them itself
        with step("forecasting long term") as say:
            result = forecast_longterm(usage_df, config, events=evs, progress=say)
        write_csv_atomic(result.daily, out_path)
        if ldc_out is not None:
            write_csv_atomic(result.load_duration_curve(), ldc_out)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    for note in result.notes:
        err.print(f"  note: {note}", markup=False, highlight=False)
    for _, a in result.adjustments[result.adjustments["kind"] != "trend"].iterrows():
        err.print(f"  adjustment {a['kind']} {a['team']} / {a['gpu_type']}: {a['delta_gpu_hours']:+,.0f} GPU-hours",
                  markup=False, highlight=False)
    per_day = result.daily.groupby(["date", S.GPU_TYPE], as_index=False)[S.MEAN].sum()
    monthly = per_day.assign(month=pd.to_datetime(per_day["date"]).dt.to_period("M")).groupby(
        ["month", S.GPU_TYPE])[S.MEAN].mean().unstack()
    table = Table(title=f"Organisation: mean GPUs in use per month, all teams ({granularity} models, "
                        f"trend {trend}, growth {growth:+.0%}, events applied)")
    table.add_column("month")
    for g in monthly.columns:
        table.add_column(g, justify="right")
    for month, r in monthly.iterrows():
        table.add_row(str(month), *(f"{v:,.1f}" for v in r))
    emit(table, output_format, out)
    for line in _longterm_trend_lines(result):
        out.print(line, markup=False, highlight=False)
    out.print(f"wrote {out_path}" + (f" and {ldc_out}" if ldc_out else ""))


def _longterm_trend_lines(result) -> list[str]:
    """The estimated trend (one line per GPU model) and the history-vs-forecast growth check."""
    from forecasting.longterm import GPU_TYPE_RATE, GPU_TYPE_RATE_SE, WINDOW_END, WINDOW_START

    trend = result.trend
    lines = []
    if result.config.trend == "none":
        lines.append("Trend: none (--trend none): the models' output as is")
    elif trend[WINDOW_START].isna().all():
        lines.append("Trend: none estimated (see the note above)")
    else:
        start, end = trend[WINDOW_START].min(), trend[WINDOW_END].max()
        method = result.config.trend_method.replace("_", "-").replace("theil-sen", "Theil-Sen")
        lines.append(f"Trend per GPU model (annual, compounding; {method} slope of the log of weekly means, "
                     f"{start:%Y-%m-%d}..{end:%Y-%m-%d}):")
        adj = result.adjustments[result.adjustments["kind"] == "trend"]
        delta = adj.groupby(S.GPU_TYPE)["delta_gpu_hours"].sum()
        for gpu, g in trend.groupby(S.GPU_TYPE, sort=True):
            row = g.iloc[0]
            if pd.isna(row[WINDOW_START]):
                lines.append(f"  {gpu}: none (too little usage to estimate one)")
                continue
            lo, hi = (math.expm1(math.log1p(row[GPU_TYPE_RATE]) + z * row[GPU_TYPE_RATE_SE]) for z in (-1.2816, 1.2816))
            since = f", from {row[WINDOW_START]:%Y-%m-%d}" if row[WINDOW_START] > start else ""
            lines.append(f"  {gpu}: {row[GPU_TYPE_RATE]:+.1%}/year (80% interval {lo:+.1%} to {hi:+.1%}{since}), "
                         f"{len(g)} series, {delta.get(gpu, 0.0):+,.0f} GPU-hours over the forecast")
    check = result.growth_check()
    if check["history_growth"].isna().all() or check["forecast_growth"].isna().all():
        lines.append(f"Growth check: skipped (history or forecast shorter than {result.config.trend_min_days} days, "
                     "too short to annualise)")
        return lines
    lines.append(f"Growth check (least-squares slope of log daily GPU-hours, annualised; last "
                 f"{check['history_days'].max()} days of history vs the first {check['forecast_days'].max()} "
                 "forecast days):")
    for _, c in check.iterrows():
        line = (f"  {c['level']}: history {c['history_growth']:+.1%}, forecast {c['forecast_growth']:+.1%} "
                f"({c['difference_pp']:+.1f} pts)")
        if c["level"] == "organisation":
            line += (f"; each GPU model at its own history growth implies {c['mix_growth']:+.1%} on today's mix "
                     f"({c['mix_difference_pp']:+.1f} pts)")
        lines.append(line)
    return lines


@app.command()
def backtest(
    usage: UsageOpt,
    out_path: Annotated[Path, typer.Option("--out", help="CSV of scores per method, level and node")],
    horizon_hours: Annotated[int, typer.Option(help="hours forecast from each origin", min=1)] = 168,
    origins: Annotated[int, typer.Option(help="number of forecast origins", min=1)] = 2,
    step_hours: Annotated[int | None, typer.Option(help="hours between origins (default: the horizon)")] = None,
    chart: Annotated[Path | None, typer.Option(help="write the accuracy chart as HTML")] = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    history_hours: HistoryOpt = 1344,
    models: ModelsOpt = "default",
    engine: EngineOpt = "local",
    catalog: CatalogOpt = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """Rolling-origin accuracy per series and per level (MASE, pinball loss, range coverage) vs naive baselines."""
    from app.chart_html import write_chart_html
    from app.charts import backtest_chart
    from forecasting.backtest import BacktestConfig, rolling_backtest
    from usage.io import write_csv_atomic

    try:
        cat = load_catalog(catalog)
        usage_df = load_usage_file(usage, fmt, tag_key, cat)
        config = forecast_config(horizon_hours, history_hours or None, models, engine)
        with step("backtesting") as say:
            result = rolling_backtest(S.to_long(usage_df), config,
                                      BacktestConfig(horizon_hours=horizon_hours, origins=origins,
                                                     step_hours=step_hours), progress=say)
        scores = pd.concat([result.per_level.assign(key="(all)"),
                            result.per_series.rename(columns={S.UID: "key"}).assign(level="series_detail")],
                           ignore_index=True)
        write_csv_atomic(scores, out_path)
        if chart is not None:
            write_chart_html(backtest_chart(result.per_level), chart)  # renders offline (vega inlined)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    table = Table(title=f"Backtest: {origins} origin(s) x {horizon_hours} h; MASE vs the best naive baseline")
    for col in ("level", "nodes", "MASE selected", "best baseline", "its MASE", "ratio", "p10-p90 cover",
                "p05-p95 cover", "pinball (GPUs)"):
        table.add_column(col, justify="left" if col in ("level", "best baseline") else "right")
    for _, r in result.summary.iterrows():
        table.add_row(r["level"], f"{r['nodes']}", f"{r['mase_selected']:.3f}", str(r["best_baseline"]),
                      f"{r['mase_best_baseline']:.3f}", f"{r['mase_ratio']:.3f}", f"{r['coverage_80']:.1%}",
                      f"{r['coverage_90']:.1%}", f"{r['pinball_selected']:.2f}")
    emit(table, output_format, out)
    out.print(f"wrote {out_path}" + (f" and {chart}" if chart else ""))


@app.command()
def demo(
    sample: Annotated[str, typer.Option(help="shipped sample organisation: synthetic or helios")] = "synthetic",
    hours: Annotated[int, typer.Option(help="plan window in hours after the sample's last hour", min=1)] = 720,
    out_dir: Annotated[Path, typer.Option(help="folder for forecast.csv and plan.json")] = Path("out/demo"),
    output_format: OutputFormatOpt = "table",
) -> None:
    """Run the whole pipeline on a shipped sample organisation and print the plan."""
    from forecasting.engine import write_forecast_csv
    from forecasting.samples import SAMPLES, load_sample
    from optimizer.baselines import with_lookback
    from optimizer.summary import budget_p90_warning, summary

    t0 = time.perf_counter()
    try:
        if sample not in SAMPLES:
            raise UserFacingError(f"unknown sample '{sample}' (fix: choose one of {', '.join(SAMPLES)})")
        cat = load_catalog(None)
        usage_df = load_sample(sample)
        out.print(f"Sample organisation '{sample}': {SAMPLES[sample]}")
        out.print(f"  {usage_df[S.TEAM].nunique()} teams, {usage_df.groupby([S.TEAM, S.GPU_TYPE]).ngroups} series, "
                  f"{usage_df[S.TIMESTAMP].min():%Y-%m-%d} to {usage_df[S.TIMESTAMP].max():%Y-%m-%d %H:%M} UTC, "
                  f"{usage_df[S.GPUS].sum():,.0f} GPU-hours")
        start = usage_df[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
        config = PlanConfig(start=start, hours=hours)
        with step("forecasting and planning") as say:
            result, fres = plan_from_usage(usage_df, cat, config, progress=say)
            result = with_lookback(result, usage_df, cat, config)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_forecast_csv(fres.forecast, out_dir / "forecast.csv")
        result.plan.write(out_dir / "plan.json")
        data_lines = demo_data_lines(sample)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    window = fres.forecast[fres.forecast[S.TIMESTAMP] >= start]
    emit(forecast_table(window, fres.selection), output_format, out)
    print_notes(result.plan)
    warn = budget_p90_warning(result.plan)
    if warn:
        err.print(f"warning: {warn}", markup=False, highlight=False)
    out.print(summary(result.plan), markup=False, highlight=False)
    for line in data_lines:
        out.print(line, markup=False, highlight=False)
    out.print(f"\nwrote {out_dir / 'forecast.csv'} and {out_dir / 'plan.json'} "
              f"(pipeline took {time.perf_counter() - t0:.0f} s)")


def demo_data_lines(sample: str) -> list[str]:
    """The demo's data-cost lines of a shipped sample: its storage and transfer total, or why there is none."""
    if sample != "synthetic":
        return [f"data costs: the '{sample}' sample has no storage or transfer lines (GPU demand only)"]
    from forecasting.sample_data_costs import DATA_COSTS_FILE, load_sample_data_costs
    from operate.data_costs import summary_line
    from operate.data_savings import SavingsPolicy, find_savings, load_prices

    data_lines = load_sample_data_costs()
    lines = [f"{summary_line(data_lines)} [SYNTHETIC, data_samples/{DATA_COSTS_FILE}]"]
    savings = find_savings(data_lines, load_prices(), SavingsPolicy())
    if not savings:
        return [*lines, "data savings: none found in the latest month (gpuplan data-savings explains why)"]
    top = savings[0]
    month = max(data_lines["month"])
    lines.append(f"top data saving: {top.usd_per_month:,.2f} USD a month, {top.team}: {top.description} "
                 f"({month}; {len(savings)} savings total {sum(x.usd_per_month for x in savings):,.2f} USD a month at "
                 "the shipped us-east-1 prices; each with its assumptions: gpuplan data-savings)")
    return lines


@app.command(name="app")
def app_cmd(
    port: Annotated[int, typer.Option(help="port to serve on")] = 8501,
    host: Annotated[str, typer.Option(help="address to bind (localhost by default)")] = "127.0.0.1",
) -> None:
    """Start the Streamlit planner on http://127.0.0.1:PORT (any other --host requires sign-in settings)."""
    from app.auth import AuthSettingsError, find_auth, needs_sign_in, streamlit_secret_args
    from app.limits import max_upload_mb

    script = ROOT / "app" / "streamlit_app.py"
    try:
        limit = max_upload_mb()
        auth = find_auth()
    except (ValueError, AuthSettingsError) as exc:
        fail(exc)
    if auth is None and needs_sign_in(host):
        fail(UserFacingError(f"--host {host} serves the planner beyond this machine, which needs sign-in: put an "
                              "[auth] section in .streamlit/secrets.toml or set the GPUPLAN_AUTH_* variables "
                              "(README, 'Deploy for your organisation'), or use --host 127.0.0.1"))
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host, "--server.port",
           str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.maxUploadSize", str(limit), "--client.toolbarMode", "minimal"]
    sign_in = "off" if auth is None else f"on, settings from {auth.where}"
    out.print(f"GPU Cost Planner on http://{host}:{port} (sign-in {sign_in})", markup=False, highlight=False)
    from app.launcher import run_forwarding_signals

    # SIGTERM/SIGINT/SIGHUP to this process reach Streamlit too, so stopping `gpuplan app` by its PID frees the port.
    with streamlit_secret_args(auth) as secret_args:
        code = run_forwarding_signals([*cmd, *secret_args])
    raise typer.Exit(code)


# Commands defined in their own modules register themselves on `app` (app.cli_common) when imported; imported after
# this module's commands so that `gpuplan --help` lists the planning commands first.
from app import (  # noqa: E402, F401
    cli_backtest_plan,  # backtest-plan
    cli_commitments,  # commitments
    cli_data,  # data-costs
    cli_operate,  # alerts, chargeback, units, check, report
    cli_policy,  # policy export
    cli_rightsizing,  # pareto
    cli_store,  # audit
)

guard_all_commands()


def main() -> None:
    """Entry point of the ``gpuplan`` script."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()

