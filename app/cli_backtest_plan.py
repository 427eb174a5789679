"""``gpuplan backtest-plan``: replay a usage trace and score the plan against all on-demand, the cloud look-back
recommenders (7/30/60 days) and the hindsight optimum, with and without spot.

Thin: the replay is :func:`optimizer.backtest_plan.backtest_plan`. Costs are USD over the billed windows.
Registered on the ``gpuplan`` app by one import at the end of :mod:`app.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from app.cli_common import (
    USER_ERRORS,
    CatalogOpt,
    FormatOpt,
    HistoryOpt,
    TagKeyOpt,
    UserFacingError,
    app,
    err,
    fail,
    load_usage_file,
    out,
    parse_start,
    split_list,
    step,
)
from app.tables import OutputFormatOpt, emit
from optimizer.catalog import load_catalog


def _lookbacks(value: str) -> tuple[int, ...]:
    try:
        days = tuple(int(v) for v in (split_list(value) or ()))
    except ValueError:
        raise UserFacingError(f"--lookbacks {value!r} must be whole days, comma-separated "
                              "(fix: e.g. 7,30,60)") from None
    if not days or min(days) < 1:
        raise UserFacingError(f"--lookbacks {value!r} must be whole days >= 1 (fix: e.g. 7,30,60)")
    return days


def results_table(summary: pd.DataFrame, title: str) -> Table:
    """The replay's summary: one row per spot mode and method."""
    table = Table(title=title)
    for col in ("spot", "method", "billed USD", "÷ hindsight", "savings vs on-demand", "spot share",
                "USD at spot cap", "÷ hindsight at cap", "worst origin ÷ hindsight"):
        table.add_column(col, justify="left" if col in ("spot", "method") else "right")
    for _, r in summary.iterrows():
        table.add_row("yes" if r["spot"] else "no", r["method"], f"{r['billed_usd']:,.0f}", f"{r['vs_hindsight']:.3f}",
                      f"{r['savings_pct']:.1f}%", f"{r['spot_share']:.1%}", f"{r['capped_usd']:,.0f}",
                      f"{r['capped_vs_hindsight']:.3f}", f"{r['worst_vs_hindsight']:.3f}")
    return table


def write_results(result, path: Path, verdict_lines: list[str]) -> None:
    """CSV (per-origin rows, then the totals with ``origin=all``) or JSON (summary, per origin, verdict)."""
    from usage import schema as S
    from usage.io import write_csv_atomic, write_json_atomic

    per = result.per_origin.copy()
    per["origin"] = S.format_timestamp(per["origin"])
    if path.suffix.lower() == ".json":
        doc = {"windows": [f"{w:%Y-%m-%dT%H:%M:%SZ}" for w in result.windows], "verdict": verdict_lines,
               "summary": result.summary.to_dict(orient="records"),
               "per_origin": per.astype(object).where(per.notna(), None).to_dict(orient="records")}
        write_json_atomic(doc, path)
    else:
        totals = result.summary.assign(origin="all")
        write_csv_atomic(pd.concat([per, totals], ignore_index=True), path)


@app.command("backtest-plan")
def backtest_plan_cmd(
    usage: Annotated[Path | None, typer.Option(help="usage file: canonical CSV/Parquet, FOCUS or CUR export")] = None,
    sample: Annotated[str | None, typer.Option(help="replay a shipped sample instead: synthetic or helios")] = None,
    at: Annotated[str | None, typer.Option(help="first hour of the (latest) billed window, ISO 8601; plans are "
                                                "decided on the usage strictly before it (default: the last "
                                                "window of the trace)")] = None,
    hours: Annotated[int, typer.Option(help="billed window length in hours", min=1)] = 168,
    origins: Annotated[int, typer.Option(help="windows to replay, each --hours before the previous", min=1)] = 1,
    spot: Annotated[bool | None, typer.Option("--spot/--no-spot", help="only with / only without spot "
                                                                       "(default: both)")] = None,
    lookbacks: Annotated[str, typer.Option(help="look-back recommender variants in days")] = "7,30,60",
    max_spot_share: Annotated[float, typer.Option(help="max share of GPU-hours on spot (0-1)")] = 0.3,
    options: Annotated[str | None, typer.Option(help="comma-separated commitment options "
                                                     "(default: the 1-year reserved and convertible ones)")] = None,
    region: Annotated[str, typer.Option(help="catalog region")] = "us-east-1",
    full_term: Annotated[bool, typer.Option("--full-term", help="bill every plan's commitments over their whole "
                                                                "terms on the realised demand (the trace must cover "
                                                                "them), next to the window-only plan")] = False,
    step_hours: Annotated[int | None, typer.Option(help="hours between origins (default: --hours)", min=1)] = None,
    cost_of_capital: Annotated[float, typer.Option(help="the plans' annual cost of capital (default 0: the bill is "
                                                        "then what every plan minimises)")] = 0.0,
    out_path: Annotated[Path | None, typer.Option("--out", help="write the results as CSV or JSON")] = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    history_hours: HistoryOpt = 1344,
    catalog: CatalogOpt = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """Replay a trace: plan on the history before --at, bill the next --hours of real demand, compare baselines."""
    from forecasting.samples import SAMPLES, load_sample
    from optimizer.backtest_plan import BacktestPlanConfig, backtest_plan, verdict
    from optimizer.options import DEFAULT_COMMITMENT_OPTIONS, validate_options

    try:
        if (usage is None) == (sample is None):
            raise UserFacingError("give either --usage FILE or --sample NAME (fix: e.g. --sample helios)")
        if sample is not None and sample not in SAMPLES:
            raise UserFacingError(f"unknown sample '{sample}' (fix: choose one of {', '.join(SAMPLES)})")
        if out_path is not None and out_path.suffix.lower() not in (".csv", ".json"):
            raise UserFacingError(f"--out {out_path}: unknown format '{out_path.suffix}' (fix: end the name in "
                                  ".csv or .json)")
        cat = load_catalog(catalog)
        cat.region(region)
        config = BacktestPlanConfig(
            hours=hours, at=parse_start(at, "--at", "2020-05-24T16:00Z") if at else None, origins=origins,
            spot_modes=(True, False) if spot is None else (spot,), lookback_days=_lookbacks(lookbacks),
            region=region, options=validate_options(split_list(options)) if options else DEFAULT_COMMITMENT_OPTIONS,
            max_spot_share=max_spot_share, history_hours=history_hours or None, full_term=full_term,
            step_hours=step_hours, cost_of_capital=cost_of_capital)
        usage_df = load_sample(sample) if sample is not None else load_usage_file(usage, fmt, tag_key, cat)
        with step("replaying") as say:
            result = backtest_plan(usage_df, cat, config, progress=say)
        lines = verdict(result.summary)
        if out_path is not None:
            write_results(result, out_path, lines)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    windows = result.windows
    source = f"sample '{sample}'" if sample else str(usage)
    billed = config.term_hours
    what = f"whole terms of {billed:,} h after" if full_term else f"window(s) of {hours} h from"
    emit(results_table(result.summary, f"Plan backtest on {source}: {len(windows)} origin(s), {what} "
                                       f"{windows[-1]:%Y-%m-%d %H:%M} to {windows[0]:%Y-%m-%d %H:%M} UTC"),
         output_format, out)
    short = result.per_origin.dropna(subset=["lookback_hours_used"])
    for method, rows in short.groupby("method", sort=False):
        days = int(method.split()[-1].rstrip("d"))
        used = int(rows["lookback_hours_used"].min())
        if used < 24 * days:
            err.print(f"  note: {method} saw only {used} h of history at the earliest origin (all there was)",
                      markup=False, highlight=False)
    for line in lines:
        out.print(line, markup=False, highlight=False)
    if out_path is not None:
        out.print(f"wrote {out_path}")
