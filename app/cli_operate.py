"""``gpuplan alerts | chargeback | units | check | report``: the Operate commands (thin: they call operate/).

Registered on the main ``app`` of :mod:`app.cli_common` and following its conventions: a user mistake ends with one
``error: ...`` line and exit status 2; files are written atomically. ``alerts`` exits 1 when any budget
alert fires and ``check`` exits 1 when any guardrail is violated, so cron jobs and CI can act on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table
from rich.text import Text

from app.cli_common import (
    USER_ERRORS,
    CatalogOpt,
    FormatOpt,
    TagKeyOpt,
    UsageOpt,
    UserFacingError,
    app,
    err,
    fail,
    load_usage_file,
    out,
    parse_start,
    step,
)
from app.tables import OutputFormatOpt, emit
from operate.files import read_plan
from optimizer.catalog import load_catalog
from usage import schema as S
from usage.io import write_csv_atomic, write_json_atomic

RegionOpt = Annotated[str, typer.Option(help="catalog region whose on-demand prices cost the usage")]
PlanOpt = Annotated[Path, typer.Option("--plan", help="plan.json (gpuplan.plan/v1) in force")]
PolicyChoice = Annotated[str, typer.Option(help="unused commitment cost: proportional (to use) or central")]
NotifyOpt = Annotated[list[str] | None, typer.Option("--notify", help="webhook URL to notify (repeatable); "
                                                                       "sent once per open item, again when worse")]
NotifyFormatOpt = Annotated[str, typer.Option(help="webhook body: slack ({\"text\": ...}) or json (generic)")]
EmailOpt = Annotated[bool, typer.Option("--email", help="also e-mail (GPUPLAN_SMTP_HOST, _PORT, _USER, _PASSWORD, "
                                                        "_FROM, _TO, _TLS from the environment)")]
NotifyStateOpt = Annotated[Path | None, typer.Option("--notify-state", help="notification state JSON (what was "
                                                                          "sent; default gpuplan-notify-state.json)")]
DEFAULT_NOTIFY_STATE = Path("gpuplan-notify-state.json")
DataOpt = Annotated[Path | None, typer.Option("--data", help="data lines (storage and transfer): a canonical "
                                                            "data-usage CSV (month, team, project, category, class, "
                                                            "quantity, unit, cost_usd) or a billing export; their "
                                                            "costs are added beside the GPU costs")]


def _data_lines(path: Path | None, tag_key: str) -> pd.DataFrame | None:
    """The data lines of ``--data`` (None without it); a user mistake raises ``ValueError`` (one line)."""
    if path is None:
        return None
    from operate.data_costs import read_data_usage

    return read_data_usage(path, tag_key=tag_key)


def _projects(usage: pd.DataFrame) -> dict[str, set[str]] | None:
    if S.PROJECT not in usage.columns:
        return {}
    return {t: set(g.dropna().astype(str)) for t, g in usage.groupby(S.TEAM)[S.PROJECT]}


def _usd(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:,.0f}"


def _per_unit(v: float) -> str:
    """USD per unit: cents from 1 USD up (``125,600.00``, never ``1.256e+05``), 4 significant digits below."""
    return "-" if v != v else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}"


def _prepare(usage: Path, fmt: str, tag_key: str, catalog: Path | None, region: str):
    from operate.costing import on_demand_rates

    cat = load_catalog(catalog)
    usage_df = load_usage_file(usage, fmt, tag_key, cat)
    rates = on_demand_rates(cat, set(usage_df[S.GPU_TYPE]), region)
    return cat, usage_df, rates


def _parse_as_of(value: str) -> pd.Timestamp:
    try:
        return parse_start(value)
    except UserFacingError:
        raise UserFacingError(f"--as-of {value!r} is not an ISO 8601 hour start "
                              "(fix: e.g. 2025-12-01T00:00Z)") from None


def _alerts(usage_df: pd.DataFrame, budgets_path: Path, rates, as_of: str | None, threshold: float, paths: int,
            history_hours: int, data: pd.DataFrame | None = None):
    from operate.alerts import compute_alerts, default_as_of, forecast_for_budgets
    from operate.budgets import load_budgets
    from operate.costing import cost_basis

    budgets = load_budgets(budgets_path, set(usage_df[S.TEAM]), _projects(usage_df))
    when = _parse_as_of(as_of) if as_of else default_as_of(usage_df)
    with step("forecasting the rest of the budget periods") as say:
        long = forecast_for_budgets(usage_df, budgets, when, history_hours or None, progress=say)
    report = compute_alerts(usage_df, budgets, rates, long=long, as_of=when, threshold=threshold, n_paths=paths,
                            cost_basis=cost_basis(usage_df, rates), data=data)
    return budgets, report


@app.command()
def alerts(
    usage: UsageOpt,
    budgets: Annotated[Path, typer.Option(help="budgets CSV or YAML (team, project, period, budget_usd, owner)")],
    out_path: Annotated[Path, typer.Option("--out", help="alerts JSON to write")] = Path("alerts.json"),
    as_of: Annotated[str | None, typer.Option(help="first unobserved hour (default: after the last usage)")] = None,
    threshold: Annotated[float, typer.Option(help="alert when P(overspend) reaches this (0-1]")] = 0.5,
    paths: Annotated[int, typer.Option(help="forecast sample paths for P(overspend)", min=10)] = 200,
    history_hours: Annotated[int, typer.Option(help="fit on at most this many recent hours (0 = all)")] = 1344,
    aws_budgets: Annotated[bool, typer.Option("--aws-budgets", help="also create matching AWS Budgets "
                                                                    "(dry run unless --apply)")] = False,
    account_id: Annotated[str | None, typer.Option(help="AWS account id for --aws-budgets")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="really call AWS Budgets (standard credential chain)")] = False,
    notify: NotifyOpt = None,
    notify_format: NotifyFormatOpt = "slack",
    email: EmailOpt = False,
    notify_state_out: NotifyStateOpt = None,
    data: DataOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    region: RegionOpt = "us-east-1",
    output_format: OutputFormatOpt = "table",
) -> None:
    """Forecast-based budget alerts: projected spend, P(overspend), run-out date; exit 1 when any alert fires.
    With --data, a budget's spend is its GPU cost + the team's storage and transfer costs."""
    try:
        if aws_budgets and not account_id:
            raise UserFacingError("--aws-budgets needs --account-id (fix: e.g. --account-id 123456789012)")
        channels = _channels(notify, notify_format, email)
        _, usage_df, rates = _prepare(usage, fmt, tag_key, catalog, region)
        budget_rows, report = _alerts(usage_df, budgets, rates, as_of, threshold, paths, history_hours,
                                      _data_lines(data, tag_key))
        actions = []
        if aws_budgets:
            from operate.aws_budgets import sync_budgets

            actions = sync_budgets(budget_rows, account_id, apply=apply, tag_key=tag_key)
        doc = report.to_dict()
        if actions:
            doc["aws_budgets"] = [{"name": a.name, "action": a.action} for a in actions]
        write_json_atomic(doc, out_path)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    except Exception as exc:  # botocore errors from --apply: one line, not a traceback
        if exc.__class__.__module__.startswith("botocore"):
            fail(RuntimeError(f"AWS Budgets: {exc}"))
        raise
    table = Table(title=f"Budgets as of {report.as_of:%Y-%m-%d %H:%M} UTC (USD; {report.cost_basis})")
    for col in ("team / project", "period", "budget", "actual", "burn %", "projected", "p10-p90", "P(over)",
                "runs out", "status"):
        table.add_column(col, justify="left" if col in ("team / project", "period", "runs out", "status") else "right")
    for a in report.alerts:
        table.add_row(a.team + (f" / {a.project}" if a.project else ""), f"{a.period_start[:10]}..{a.period_end[:10]}",
                      _usd(a.budget_usd), _usd(a.actual_to_date_usd),
                      "-" if a.burn_pct is None else f"{a.burn_pct:.0f}", _usd(a.projected_usd),
                      f"{_usd(a.projected_p10_usd)}-{_usd(a.projected_p90_usd)}", f"{a.p_overspend:.0%}",
                      (a.run_out_date or "-")[:16].replace("T", " "),
                      Text(a.status, style="bold red") if a.fired else a.status)
    emit(table, output_format, out)
    for note in report.notes:
        err.print(f"  {note}", markup=False, highlight=False)
    for a in actions:
        out.print(f"AWS Budgets {a.action}: {a.name}", markup=False, highlight=False)
    for a in report.fired:
        out.print(f"ALERT {a.message}", markup=False, highlight=False)
    out.print(f"wrote {out_path}: {len(report.fired)} of {len(report.alerts)} budgets alert")
    from operate.notify import alert_items

    if not _deliver(channels, alert_items(report.alerts), "alerts", notify_state_out):
        raise typer.Exit(2)
    if report.fired:
        raise typer.Exit(1)


@app.command()
def chargeback(
    usage: UsageOpt,
    plan_path: PlanOpt,
    out_path: Annotated[Path, typer.Option("--out", help="chargeback CSV to write")] = Path("chargeback.csv"),
    unused_policy: PolicyChoice = "proportional",
    idle_out: Annotated[Path | None, typer.Option(help="also write idle GPU cost per team (needs utilization)")] = None,
    focus_out: Annotated[Path | None, typer.Option(help="also write the chargeback as FOCUS 1.2 cost and usage rows "
                                                        "(BilledCost sums to the bill) for finance tools")] = None,
    period: Annotated[str | None, typer.Option(help="billing period inside the plan window: a month (2025-11) or "
                                                    "START/END; default the whole window")] = None,
    data: DataOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """Showback/chargeback of the plan's bill on this usage to teams; sums equal the bill to the cent. With
    --data, storage and transfer costs get their own columns and the bill is GPU bill + data lines."""
    from operate.chargeback import allocate, billing_period, require_usage_in_period

    try:
        cat = load_catalog(catalog)
        plan = read_plan(plan_path)
        usage_df = load_usage_file(usage, fmt, tag_key, cat)
        p_start, p_end = billing_period(plan, period)
        require_usage_in_period(usage_df, plan, period)
        data_df = _data_lines(data, tag_key)
        cb = allocate(usage_df, plan, unused_policy, period, data=data_df)
        write_csv_atomic(cb.table, out_path)
        if idle_out is not None:
            write_csv_atomic(cb.idle, idle_out)
        if focus_out is not None:
            from operate.focus_export import chargeback_focus

            gpus = {k: v[1] for k, v in cat.instance_gpus().items()}
            write_csv_atomic(chargeback_focus(cb, plan, (p_start, p_end), gpus, source=plan_path.name), focus_out)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    rec = cb.reconciliation()
    idle = cb.idle.set_index("team")["idle_usd"] if not cb.idle.empty else None
    table = Table(title=f"Chargeback {p_start:%Y-%m-%d %H:%M} to {p_end:%Y-%m-%d %H:%M} UTC (USD; unused "
                        f"commitment: {unused_policy})")
    with_data = cb.data is not None
    data_cols = ("storage", "transfer", "data") if with_data else ()
    cols = ("team", "GPU-hours", "committed", "spot", "on-demand", "unused commitment", *data_cols, "total",
            "idle cost")
    for col in cols:
        table.add_column(col, justify="left" if col == "team" else "right")
    for _, r in cb.table.iterrows():
        idle_v = "-" if idle is None or r["team"] not in idle.index else f"{idle[r['team']]:,.2f}"
        data_v = [f"{r[c]:,.2f}" for c in ("storage_usd", "transfer_usd", "data_usd")] if with_data else []
        table.add_row(r["team"], f"{r['gpu_hours']:,.1f}", f"{r['committed_usd']:,.2f}", f"{r['spot_usd']:,.2f}",
                      f"{r['on_demand_usd']:,.2f}", f"{r['unused_commitment_usd']:,.2f}", *data_v,
                      f"{r['total_usd']:,.2f}", idle_v)
    emit(table, output_format, out)
    for note in cb.notes:
        err.print(f"  {note}", markup=False, highlight=False)
    if with_data and focus_out is not None:
        err.print("  the FOCUS rows carry the GPU part of the bill only (the data lines are in the provider's "
                  "export already)", markup=False, highlight=False)
    data_part = (f"; GPU bill {rec['bill_gpu_usd']:,.2f} + data costs {rec['bill_data_usd']:,.2f} (storage "
                 f"{cb.table['storage_usd'].sum():,.2f}, transfer {cb.table['transfer_usd'].sum():,.2f})"
                 if with_data else "; GPU costs only (add --data for storage and transfer)")
    out.print(f"allocated {rec['allocated_total_usd']:,.2f} USD = bill {rec['bill_total_usd']:,.2f} USD "
              f"(committed {rec['bill_committed_usd']:,.2f}, spot {rec['bill_spot_usd']:,.2f}, on-demand "
              f"{rec['bill_on_demand_usd']:,.2f}{data_part}); wrote {out_path}"
              + "".join(f" and {p}" for p in (idle_out, focus_out) if p))


@app.command()
def bill(
    usage: UsageOpt,
    plan_path: PlanOpt,
    out_path: Annotated[Path, typer.Option("--out", help="FOCUS 1.2 CSV of the plan's bill to write")] = Path(
        "bill_focus.csv"),
    unused_policy: PolicyChoice = "proportional",
    period: Annotated[str | None, typer.Option(help="billing period inside the plan window: a month (2025-11) or "
                                                    "START/END; default the whole window")] = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """The plan's bill on this usage as the provider invoices it, written as FOCUS 1.2 rows for finance tools:
    commitment fees as Purchase rows (BilledCost = cash), usage per team with its amortised EffectiveCost."""
    from operate.chargeback import allocate, billing_period, require_usage_in_period
    from operate.focus_export import bill_focus

    try:
        cat = load_catalog(catalog)
        plan = read_plan(plan_path)
        usage_df = load_usage_file(usage, fmt, tag_key, cat)
        p_start, p_end = billing_period(plan, period)
        require_usage_in_period(usage_df, plan, period)
        cb = allocate(usage_df, plan, unused_policy, period)
        gpus = {k: v[1] for k, v in cat.instance_gpus().items()}
        rows = bill_focus(cb, plan, (p_start, p_end), gpus, source=plan_path.name)
        write_csv_atomic(rows, out_path)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    kind = rows["ChargeCategory"].where(rows["ChargeCategory"] == "Purchase", rows["PricingCategory"])
    kind = kind.where(rows["CommitmentDiscountStatus"] != "Unused", "Unused")
    table = Table(title=f"Bill {p_start:%Y-%m-%d %H:%M} to {p_end:%Y-%m-%d %H:%M} UTC (USD): invoiced (BilledCost) "
                        "and amortised (EffectiveCost) per GPU model")
    cols = ("GPU model", "GPU-hours", "committed (amortised)", "unused commitment", "spot", "on-demand",
            "effective total", "invoiced")
    for col in cols:
        table.add_column(col, justify="left" if col == "GPU model" else "right")
    for model, g in rows.groupby("x_GpuModel", sort=True):
        k = kind[g.index]
        table.add_row(str(model), f"{g['x_GpuHours'].sum():,.1f}",
                      f"{g.loc[k == 'Committed', 'EffectiveCost'].sum():,.2f}",
                      f"{g.loc[k == 'Unused', 'EffectiveCost'].sum():,.2f}",
                      f"{g.loc[k == 'Dynamic', 'EffectiveCost'].sum():,.2f}",
                      f"{g.loc[k == 'Standard', 'EffectiveCost'].sum():,.2f}",
                      f"{g['EffectiveCost'].sum():,.2f}", f"{g['BilledCost'].sum():,.2f}")
    emit(table, output_format, out)
    out.print(f"effective {rows['EffectiveCost'].sum():,.2f} USD = chargeback {cb.table['total_usd'].sum():,.2f} "
              f"USD; invoiced {rows['BilledCost'].sum():,.2f} USD (upfront and recurring commitment fees, spot, "
              f"on-demand); wrote {len(rows):,} FOCUS 1.2 rows to {out_path}")


@app.command()
def units(
    usage: UsageOpt,
    units_file: Annotated[Path, typer.Option("--units", help="units CSV or YAML (team, project, period, unit, "
                                                             "count)")],
    out_path: Annotated[Path, typer.Option("--out", help="unit costs CSV to write")] = Path("unit_costs.csv"),
    data: DataOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    region: RegionOpt = "us-east-1",
    output_format: OutputFormatOpt = "table",
) -> None:
    """Unit economics: cost and GPU-hours per training run, per 1k inferences or any unit, with trends. With
    --data, the cost per unit includes the team's storage and transfer costs (shown apart in the CSV)."""
    from operate.costing import cost_basis, priced
    from operate.units import load_units, trends, unit_costs

    try:
        _, usage_df, rates = _prepare(usage, fmt, tag_key, catalog, region)
        rows = load_units(units_file, set(usage_df[S.TEAM]))
        data_df = _data_lines(data, tag_key)
        costs = unit_costs(priced(usage_df, rates), rows, data_df)
        out_df = costs.copy()
        for c in ("period_start", "period_end"):
            out_df[c] = out_df[c].dt.strftime("%Y-%m-%d")
        write_csv_atomic(out_df, out_path)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    table = Table(title=f"Cost per unit (USD; {cost_basis(usage_df, rates)}"
                        + (", + data costs (storage and transfer)" if data_df is not None else "") + ")")
    with_data = data_df is not None
    for col in ("team / project", "unit", "periods", "first", "last", "USD per unit (first)", "USD per unit (last)",
                *(("of which data (last)",) if with_data else ()), "change"):
        table.add_column(col, justify="left" if col in ("team / project", "unit") else "right")
    def key(team: str, project: object, unit: str) -> tuple:
        return team, None if project is None or project != project else project, unit

    last_data = ({key(t, p, u): v for t, p, u, v in zip(costs["team"], costs["project"], costs["unit"],
                                                          costs["data_usd_per_unit"], strict=True)}
                 if with_data else {})   # rows are in period order: the last one of each key stays
    for _, r in trends(costs).iterrows():
        scope = r["team"] + ("" if r["project"] is None or r["project"] != r["project"] else f" / {r['project']}")
        data_v = [_per_unit(float(last_data[key(r["team"], r["project"], r["unit"])]))] if with_data else []
        table.add_row(scope, r["unit"], str(r["periods"]), f"{r['first_period']:%Y-%m-%d}",
                      f"{r['last_period']:%Y-%m-%d}", _per_unit(r["first_usd_per_unit"]),
                      _per_unit(r["last_usd_per_unit"]), *data_v,
                      "-" if r["change_pct"] != r["change_pct"] else f"{r['change_pct']:+.1f}%")
    emit(table, output_format, out)
    out.print(f"wrote {len(costs)} rows to {out_path}")


@app.command()
def check(
    policy: Annotated[Path, typer.Option(help="guardrails policy YAML")],
    usage: Annotated[Path | None, typer.Option(help="usage file to check (canonical, FOCUS or CUR)")] = None,
    plan_path: Annotated[Path | None, typer.Option("--plan", help="plan.json to check")] = None,
    billing: Annotated[Path | None, typer.Option(help="billing export with commitment rows (FOCUS or CUR): checks "
                                                      "commitment_utilization on the commitments it shows")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="violations CSV to write")] = None,
    idle_out: Annotated[Path | None, typer.Option(help="auto-shutdown recommendations CSV to write")] = None,
    notify: NotifyOpt = None,
    notify_format: NotifyFormatOpt = "slack",
    email: EmailOpt = False,
    notify_state_out: NotifyStateOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    region: RegionOpt = "us-east-1",
    output_format: OutputFormatOpt = "table",
) -> None:
    """Guardrails: required tags, approval-only instance types, idle GPUs, maximum commitment, under-used
    commitments; exit 1 on violations."""
    from operate.costing import priced
    from operate.policy import check_commitments, check_plan, check_usage, combine, load_policy

    try:
        if usage is None and plan_path is None and billing is None:
            raise UserFacingError("give --usage, --plan or both to check, or --billing (see gpuplan check --help)")
        channels = _channels(notify, notify_format, email)
        reports = []
        teams = None
        if usage is not None:
            _, usage_df, rates = _prepare(usage, fmt, tag_key, catalog, region)
            teams = set(usage_df[S.TEAM])
        pol = load_policy(policy, teams)
        if usage is not None:
            reports.append(check_usage(priced(usage_df, rates), pol))
        the_plan = read_plan(plan_path) if plan_path is not None else None
        if the_plan is not None:
            reports.append(check_plan(the_plan, pol))
        if pol.commitment_utilization is not None:
            from app.cli_common import billing_usage

            cat = load_catalog(catalog)
            parts = []
            if billing is not None:
                parts.append(check_commitments(pol, billing=billing, usage=billing_usage(billing, tag_key, cat),
                                               instance_gpus=cat.instance_gpus()))
            if the_plan is not None and usage is not None:
                parts.append(check_commitments(pol, plan=the_plan, usage=usage_df))
            reports += parts or [check_commitments(pol)]   # neither: the report's note says what to give
        elif billing is not None:
            raise UserFacingError(f"{policy}: --billing is checked by a commitment_utilization section, which the "
                                  "policy lacks (fix: add 'commitment_utilization: {below: 0.8, lookback_days: 14}')")
        result = combine(*reports)
        if out_path is not None:
            write_csv_atomic(result.violations, out_path)
        if idle_out is not None:
            write_csv_atomic(result.idle, idle_out)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    for note in result.notes:
        err.print(f"  {note}", markup=False, highlight=False)
    from operate.notify import violation_items

    delivered = _deliver(channels, violation_items(result.violations), "check", notify_state_out)
    table = Table(title=f"Guardrail violations ({policy})")
    for col in ("check", "on", "scope", "GPU-hours", "USD at stake", "what"):
        table.add_column(col, justify="right" if col in ("GPU-hours", "USD at stake") else "left")
    for _, v in result.violations.iterrows():
        table.add_row(v["check"], v["target"], v["scope"], f"{v['gpu_hours']:,.1f}", f"{v['usd']:,.2f}", v["message"])
    if result.ok:
        out.print("no guardrail violations")
        if output_format != "table":  # csv/json: the (empty) table, so a script always gets its columns
            emit(table, output_format, out)
        if not delivered:
            raise typer.Exit(2)
        return
    emit(table, output_format, out)
    out.print(f"{len(result.violations)} violation(s)" + (f"; wrote {out_path}" if out_path else ""))
    raise typer.Exit(1 if delivered else 2)


@app.command()
def report(
    usage: UsageOpt,
    out_dir: Annotated[Path, typer.Option(help="folder for report.html and its CSVs")] = Path("out/report"),
    budgets: Annotated[Path | None, typer.Option(help="budgets CSV or YAML (forecast vs budget)")] = None,
    units_file: Annotated[Path | None, typer.Option("--units", help="units CSV or YAML (unit-cost trends)")] = None,
    policy: Annotated[Path | None, typer.Option(help="guardrails policy YAML (idle resources, violations)")] = None,
    plan_path: Annotated[Path | None, typer.Option("--plan", help="plan.json (commitment utilisation, "
                                                                  "chargeback)")] = None,
    unused_policy: PolicyChoice = "proportional",
    lookback_days: Annotated[int, typer.Option(help="days for top spenders and idle cost", min=1)] = 30,
    threshold: Annotated[float, typer.Option(help="budget alert threshold on P(overspend)")] = 0.5,
    data: DataOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    region: RegionOpt = "us-east-1",
) -> None:
    """Cost review: self-contained HTML (inline SVG charts) plus CSVs of every table. With --data: a data-costs
    section, and budgets, chargeback and unit costs include storage and transfer costs."""
    from operate.chargeback import allocate, require_usage_in_period
    from operate.costing import cost_basis, priced
    from operate.policy import check_plan, check_usage, combine, load_policy
    from operate.report import build_review, write_review
    from operate.units import load_units, unit_costs

    try:
        _, usage_df, rates = _prepare(usage, fmt, tag_key, catalog, region)
        costed = priced(usage_df, rates)
        data_df = _data_lines(data, tag_key)
        alert_report = (_alerts(usage_df, budgets, rates, None, threshold, 200, 1344, data_df)[1] if budgets
                        else None)
        plan = read_plan(plan_path) if plan_path else None
        if plan is not None:
            require_usage_in_period(usage_df, plan)
        cb = allocate(usage_df, plan, unused_policy, data=data_df) if plan is not None else None
        uc = unit_costs(costed, load_units(units_file, set(usage_df[S.TEAM])), data_df) if units_file else None
        checks = None
        if policy is not None:
            pol = load_policy(policy, set(usage_df[S.TEAM]))
            checks = combine(check_usage(costed, pol), *([check_plan(plan, pol)] if plan is not None else []))
        review = build_review(costed, cost_basis=cost_basis(usage_df, rates), alerts=alert_report, chargeback=cb,
                              unit_costs=uc, checks=checks, lookback_days=lookback_days, data=data_df)
        paths = write_review(review, out_dir)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    out.print(f"wrote {paths[0]} ({len(review.html) / 1024:,.0f} KB, self-contained) and {len(paths) - 1} CSVs: "
              + ", ".join(p.name for p in paths[1:]))



def _channels(notify: list[str] | None, notify_format: str, email: bool):
    """Channels from the options (checked before any work), or None when none is asked for."""
    from operate.notify import Channels, Webhook, smtp_from_env

    hooks = tuple(Webhook(u, notify_format) for u in (notify or ()))
    channels = Channels(hooks, smtp_from_env() if email else None)
    return None if channels.empty else channels


def _deliver(channels, items, source: str, state: Path | None) -> bool:
    """Send the items (de-duplicated through ``state``), print one line; False when a delivery failed."""
    from operate.notify import notify as send

    if channels is None:
        return True
    state = state or DEFAULT_NOTIFY_STATE
    try:
        outcome = send(items, source, channels, state)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    out.print(f"{outcome.summary()} ({state})", markup=False, highlight=False)
    for e in outcome.errors:
        err.print(f"error: {e} (fix: check the channel; unsent items are retried on the next run)", markup=False,
                  highlight=False)
    return not outcome.errors


@app.command()
def anomalies(
    usage: UsageOpt,
    out_path: Annotated[Path, typer.Option("--out", help="anomalies CSV to write")] = Path("anomalies.csv"),
    as_of: Annotated[str | None, typer.Option(help="first hour not searched (default: after the last usage)")] = None,
    lookback_days: Annotated[int, typer.Option(help="days before --as-of searched for anomalies", min=1,
                                               max=366)] = 28,
    threshold: Annotated[float, typer.Option(help="report anomalies whose score reaches this (1 = the tuned "
                                                  "detection level; 2 = twice as strong)")] = 1.0,
    events: Annotated[Path | None, typer.Option(
        help="planned events (YAML or CSV: runs, launches, wind-downs): expected, not anomalies")] = None,
    min_impact_usd: Annotated[float, typer.Option(help="report only anomalies whose impact at list rates is at "
                                                       "least this many USD (0 = every anomaly)", min=0.0)] = 0.0,
    notify: NotifyOpt = None,
    notify_format: NotifyFormatOpt = "slack",
    email: EmailOpt = False,
    notify_state_out: NotifyStateOpt = None,
    fmt: FormatOpt = "auto",
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    region: RegionOpt = "us-east-1",
) -> None:
    """Spikes, drops, level shifts and slow drifts per team x GPU type and per team, against the forecast's ranges;
    exit 1 when any anomaly reaches the threshold."""
    from operate.anomalies import AnomalyConfig, describe, detect, to_csv_frame
    from operate.notify import anomaly_items

    try:
        config = AnomalyConfig(lookback_days=lookback_days, sensitivity=threshold, min_impact_usd=min_impact_usd)
        channels = _channels(notify, notify_format, email)
        cat, usage_df, rates = _prepare(usage, fmt, tag_key, catalog, region)
        when = _parse_as_of(as_of) if as_of else None
        evs = ()
        if events is not None:
            from forecasting.events import load_events

            evs = load_events(events, known_gpu_types=cat.gpu_models())
        with step("forecasting the look-back window week by week") as say:
            rep = detect(usage_df, rates.of, when, config, events=evs, progress=say)
        write_csv_atomic(to_csv_frame(rep.table), out_path)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    for note in rep.notes:
        err.print(f"  {note}", markup=False, highlight=False)
    for _, r in rep.table.iterrows():
        out.print(f"ANOMALY {describe(r)}", markup=False, highlight=False)
    out.print(f"{len(rep.table)} anomalies from {rep.window_start:%Y-%m-%d %H:%M} to {rep.as_of:%Y-%m-%d %H:%M} UTC "
              f"(USD at list rates: {rates.basis}); wrote {out_path}", markup=False, highlight=False)
    delivered = _deliver(channels, anomaly_items(rep.table), "anomalies", notify_state_out)
    if not delivered:
        raise typer.Exit(2)
    if len(rep.table):
        raise typer.Exit(1)


@app.command()
def watch(
    config: Annotated[Path, typer.Option(help="watch.yaml: data source, budgets, policy, thresholds, channels")],
    as_of: Annotated[str | None, typer.Option(help="first unobserved hour (default: after the last usage)")] = None,
) -> None:
    """One scheduled guardrail run (cron-friendly): anomalies, budget alerts, policy check, notifications and a
    dated run record; exit 0 all clear, 1 something is open, 2 an error."""
    from operate.watch import load_watch, record_error, run_watch

    try:
        cfg = load_watch(config)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    try:
        from usage.io import protecting

        with protecting(cfg.inputs):
            cat = load_catalog(cfg.catalog)
            usage_df = load_usage_file(cfg.usage, cfg.format, cfg.tag_key, cat)
            from operate.costing import on_demand_rates

            rates = on_demand_rates(cat, set(usage_df[S.GPU_TYPE]), cfg.region)
            when = _parse_as_of(as_of) if as_of else None
            with step("watch run") as say:
                run = run_watch(cfg, usage_df, rates, as_of=when, progress=say, instance_gpus=cat.instance_gpus())
    except (*USER_ERRORS, UserFacingError) as exc:
        from app.cli_common import error_line

        try:
            path = record_error(cfg, error_line(exc))
            err.print(f"run record: {path}", markup=False, highlight=False)
        except OSError:
            pass
        fail(exc)
    rec = run.record
    for name, sec in rec["sections"].items():
        out.print(f"{name}: {sec['open']} open", markup=False, highlight=False)
    for e in rec["errors"]:
        err.print(f"error: {e} (fix: check the channel; unsent items are retried on the next run)", markup=False,
                  highlight=False)
    out.print(f"wrote {run.path} (exit {run.exit_code})", markup=False, highlight=False)
    if run.exit_code:
        raise typer.Exit(run.exit_code)
