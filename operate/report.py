"""The recurring cost review: one self-contained HTML file (inline SVG charts, no scripts, no CDN) plus CSVs.

One basis leads (issue 15): with a plan (``chargeback``) the top spenders and the idle cost are the plan's bill
over its billing period -- the same numbers as the chargeback table -- and without one they are the usage priced
by :mod:`operate.costing` (list prices, or the file's billed ``cost_usd``) over the last ``lookback_days`` days.
Every section's title names its basis, and the ``top_spenders`` and ``idle_by_team`` CSVs carry it in a ``basis``
column.

Sections (each only when its input is given):

* top spenders: cost per team over the period (priced usage: vs the ``lookback_days`` before);
* idle resources: per team, GPU-hours not utilised and their cost (``cost x (1 - utilization)``) over the
  same period, plus the guardrail's auto-shutdown recommendations; without utilisation the section says idle
  cost is unavailable;
* unit-cost trends: cost per unit by period (:mod:`operate.units`), drawn as an index (first period = 100);
* commitment utilisation and coverage under the plan (:mod:`operate.chargeback`), with the chargeback table;
* forecast vs budget per team (:mod:`operate.alerts`);
* guardrail violations (:mod:`operate.policy`);
* data costs (storage and transfer lines, :mod:`operate.data_costs`): per team the last month's storage and
  transfer cost, the monthly trend of the largest teams, and per team and class the last month with its change
  against the month before (CSVs ``data_costs`` per team and month, ``data_costs_by_class`` per team, class and
  month). With data lines the chargeback (and so the billed top spenders), the budgets and the unit costs include
  them; each title says so.

Units: USD, GPU-hours, fractions shown as percent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from operate import svg
from operate.alerts import AlertReport
from operate.chargeback import Chargeback
from operate.costing import COST
from operate.data_costs import by_team_class_trend
from operate.policy import CheckReport
from usage import schema as S
from usage.io import safe_csv_frame, write_folder_atomic

CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1000px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee}
th{text-align:left;background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:12px}.fired{color:#c00;font-weight:bold}"""


@dataclass(frozen=True)
class Review:
    """The report's HTML and the tables written beside it as CSV (name -> frame)."""

    html: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def top_spenders(priced_usage: pd.DataFrame, lookback_days: int = 30) -> pd.DataFrame:
    """Cost and GPU-hours per team in the last ``lookback_days`` days, share and change vs the days before."""
    end = priced_usage[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    start, prev_start = end - pd.Timedelta(days=lookback_days), end - pd.Timedelta(days=2 * lookback_days)
    ts = priced_usage[S.TIMESTAMP]
    cur = priced_usage[ts >= start].groupby(S.TEAM)[[COST, S.GPUS]].sum()
    prev = priced_usage[(ts >= prev_start) & (ts < start)].groupby(S.TEAM)[COST].sum()
    out = pd.DataFrame({"team": cur.index, "cost_usd": cur[COST].round(2).to_numpy(),
                        "gpu_hours": cur[S.GPUS].round(1).to_numpy()})
    out["share_pct"] = 100.0 * out["cost_usd"] / max(out["cost_usd"].sum(), 1e-9)
    before = out["team"].map(prev).to_numpy(dtype=float)
    out["previous_cost_usd"] = np.round(before, 2)
    out["change_pct"] = np.where(before > 0, 100.0 * (out["cost_usd"] / before - 1.0), np.nan)
    out.attrs["window"] = f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
    return out.sort_values("cost_usd", ascending=False).reset_index(drop=True)


def billed_spenders(chargeback: Chargeback) -> pd.DataFrame:
    """Billed USD and GPU-hours per team (the chargeback's ``total_usd``, ``central`` included) and share."""
    t = chargeback.table
    out = pd.DataFrame({"team": t["team"], "cost_usd": t["total_usd"].to_numpy(dtype=float),
                        "gpu_hours": t["gpu_hours"].round(1).to_numpy()})
    if "data_usd" in t.columns:   # with data lines: the total includes them; show them apart
        out.insert(2, "data_usd", t["data_usd"].to_numpy(dtype=float))
    out["share_pct"] = 100.0 * out["cost_usd"] / max(float(out["cost_usd"].sum()), 1e-9)
    out.attrs["window"] = bill_window(chargeback)
    return out.sort_values("cost_usd", ascending=False, kind="stable").reset_index(drop=True)


def bill_window(chargeback: Chargeback) -> str:
    w = chargeback.bill.hourly[S.TIMESTAMP]
    if w.empty:
        return "no billed hours"
    return f"{w.min():%Y-%m-%d} to {w.max() + pd.Timedelta(hours=1):%Y-%m-%d}"


def billed_idle(chargeback: Chargeback) -> pd.DataFrame | None:
    """The chargeback's idle cost per team in :func:`idle_by_team`'s columns, or None without utilisation."""
    idle = chargeback.idle
    if idle.empty:
        return None
    return pd.DataFrame({"team": idle["team"], "gpu_hours": idle["utilization_known_gpu_hours"],
                         "idle_gpu_hours": idle["idle_gpu_hours"], "idle_usd": idle["idle_usd"],
                         "mean_utilization": idle["mean_utilization"]}).reset_index(drop=True)


def idle_by_team(priced_usage: pd.DataFrame, lookback_days: int = 30) -> pd.DataFrame | None:
    """Idle GPU-hours and cost per team over the last days, or None when the usage has no utilisation."""
    if S.UTILIZATION not in priced_usage.columns or priced_usage[S.UTILIZATION].isna().all():
        return None
    end = priced_usage[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    u = priced_usage[(priced_usage[S.TIMESTAMP] >= end - pd.Timedelta(days=lookback_days))
                     & priced_usage[S.UTILIZATION].notna() & (priced_usage[S.GPUS] > 0)]
    idle = 1.0 - u[S.UTILIZATION]
    frame = pd.DataFrame({"team": u[S.TEAM], "gpu_hours": u[S.GPUS], "idle_gpu_hours": u[S.GPUS] * idle,
                          "idle_usd": u[COST] * idle, "busy": u[S.GPUS] * u[S.UTILIZATION]})
    out = frame.groupby("team", as_index=False).sum()
    out["mean_utilization"] = out["busy"] / out["gpu_hours"]
    return out.drop(columns="busy").sort_values("idle_usd", ascending=False).reset_index(drop=True)


def _table(df: pd.DataFrame, max_rows: int = 25, fired_col: str | None = None) -> str:
    if df.empty:
        return '<p class="note">none</p>'
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.head(max_rows).iterrows():
        cells = []
        for c in df.columns:
            v = row[c]
            if isinstance(v, float | np.floating):
                text = "" if v != v else (f"{v:.4g}" if 0 < abs(v) < 1 else f"{v:,.2f}" if abs(v) < 1000
                                          else f"{v:,.0f}")
                cells.append(f'<td class="n">{text}</td>')
            elif isinstance(v, pd.Timestamp):
                cells.append(f"<td>{v:%Y-%m-%d %H:%M}</td>")
            else:
                cells.append(f"<td>{escape('' if v is None else str(v))}</td>")
        cls = ' class="fired"' if fired_col and bool(row[fired_col]) else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    more = f'<p class="note">{len(df) - max_rows} more rows in the CSV</p>' if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def build_review(priced_usage: pd.DataFrame, *, cost_basis: str, alerts: AlertReport | None = None,
                 chargeback: Chargeback | None = None, unit_costs: pd.DataFrame | None = None,
                 checks: CheckReport | None = None, lookback_days: int = 30,
                 title: str = "GPU cost review", data: pd.DataFrame | None = None) -> Review:
    """Build the report (see the module docstring); ``priced_usage`` comes from :func:`operate.costing.priced`;
    ``data`` is the data-usage frame (storage and transfer lines) or None."""
    tables: dict[str, pd.DataFrame] = {}
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="note">Usage {priced_usage[S.TIMESTAMP].min():%Y-%m-%d} to '
             f'{priced_usage[S.TIMESTAMP].max():%Y-%m-%d %H:%M} UTC; {priced_usage[S.TEAM].nunique()} teams. '
             f"Costs: {escape(cost_basis)}.</p>"]
    note = priced_usage.attrs.get("note")
    if note:
        parts.append(f'<p class="note">{escape(str(note))}</p>')

    if chargeback is not None:
        basis = (f"billed under the plan ({chargeback.policy} unused-commitment policy), {bill_window(chargeback)}"
                 + (", + data costs (storage and transfer)" if chargeback.data is not None else ""))
        parts.append(f'<p class="note">Top spenders and idle cost: the plan\'s bill (commitments, spot and '
                     f"on-demand as billed, reconciled with the chargeback below). Unit costs and budgets: "
                     f"{escape(cost_basis)}.</p>")
        top, idle = billed_spenders(chargeback), billed_idle(chargeback)
        idle_title = f"Idle GPU cost per team, {basis} (USD)"
    else:
        basis = f"{cost_basis}, last {lookback_days} days"
        top, idle = top_spenders(priced_usage, lookback_days), idle_by_team(priced_usage, lookback_days)
        idle_title = f"Idle GPU cost per team, last {lookback_days} days (USD)"
    tables["top_spenders"] = top.assign(basis=basis)
    shown = top.head(12)
    parts += [f"<h2>Top spenders, {escape(basis)}</h2>",
              svg.hbars(list(shown["team"]), {"cost (USD)": list(shown["cost_usd"])},
                        f"Cost per team, {top.attrs['window']} (USD)"),
              _table(top)]

    parts.append(f"<h2>Idle resources, {escape(basis)}</h2>")
    if idle is None:
        parts.append('<p class="note">The usage has no utilization column: idle GPU cost is unavailable.</p>'
                     if S.UTILIZATION not in priced_usage.columns else
                     '<p class="note">The usage has no utilization values in this period: idle GPU cost is '
                     "unavailable.</p>")
    else:
        tables["idle_by_team"] = idle.assign(basis=basis)
        shown = idle.head(12)
        parts += [f'<p class="note">Idle = GPU-hours held but not utilised, cost x (1 - utilisation): '
                  f"{idle['idle_usd'].sum():,.0f} USD in total.</p>",
                  svg.hbars(list(shown["team"]), {"idle cost (USD)": list(shown["idle_usd"])}, idle_title),
                  _table(idle)]
    if checks is not None and not checks.idle.empty:
        tables["idle_runs"] = checks.idle
        parts += ["<p>Auto-shutdown recommendations (idle runs beyond the policy's duration; money at stake = cost "
                  "after the allowed idle hours):</p>", _table(checks.idle)]

    if unit_costs is not None and not unit_costs.empty:
        tables["unit_costs"] = unit_costs
        series: dict[str, list[tuple[str, float]]] = {}
        for (team, project, unit), g in unit_costs.groupby(["team", "project", "unit"], dropna=False, sort=False):
            base = float(g["usd_per_unit"].iloc[0])
            name = f"{team}{'' if project is None or project != project else '/' + str(project)}: {unit}"
            series[name] = [(f"{p:%Y-%m}", 100.0 * v / base if base > 0 else np.nan)
                            for p, v in zip(g["period_start"], g["usd_per_unit"], strict=True)]
        parts += [f"<h2>Unit-cost trends, {escape(cost_basis)}</h2>",
                  svg.lines(series, "Cost per unit, index (first period = 100)"),
                  _table(unit_costs.assign(period_start=unit_costs["period_start"].dt.strftime("%Y-%m-%d"),
                                           period_end=unit_costs["period_end"].dt.strftime("%Y-%m-%d")), 40)]

    if chargeback is not None:
        com = chargeback.commitment
        tables["commitment"] = com
        tables["chargeback"] = chargeback.table
        rec = chargeback.reconciliation()
        w = chargeback.bill.hourly[S.TIMESTAMP]
        parts += [f"<h2>Commitment utilisation and coverage, {w.min():%Y-%m-%d} to "
                  f"{w.max() + pd.Timedelta(hours=1):%Y-%m-%d}</h2>",
                  svg.hbars(list(com[S.GPU_TYPE]), {"utilisation": list(com["utilization"]),
                                                    "coverage": list(com["coverage"])},
                            "Commitment utilisation (used / bought) and coverage (used / demand)",
                            fmt=lambda v: f"{v:.1%}", vmax=1.0),
                  _table(com),
                  f"<h3>Chargeback, billed under the plan ({escape(chargeback.policy)} unused-commitment policy)</h3>",
                  f'<p class="note">Allocated {rec["allocated_total_usd"]:,.2f} USD = bill '
                  f'{rec["bill_total_usd"]:,.2f} USD (committed {rec["bill_committed_usd"]:,.2f}, spot '
                  f'{rec["bill_spot_usd"]:,.2f}, on-demand {rec["bill_on_demand_usd"]:,.2f}'
                  + (f', data costs {rec["bill_data_usd"]:,.2f}' if "bill_data_usd" in rec else "") + ").</p>",
                  _table(chargeback.table, 40)]
        if not chargeback.idle.empty:
            tables["chargeback_idle"] = chargeback.idle

    if alerts is not None:
        frame = alerts.frame()
        tables["budget_vs_forecast"] = frame
        rows = [{"label": f"{a.team}" + (f"/{a.project}" if a.project else ""), "budget": a.budget_usd,
                 "actual": a.actual_to_date_usd, "projected": a.projected_usd, "p10": a.projected_p10_usd,
                 "p90": a.projected_p90_usd, "fired": a.fired} for a in alerts.alerts]
        fired = alerts.fired
        parts += [f"<h2>Forecast vs budget, {escape(alerts.cost_basis)} (as of {alerts.as_of:%Y-%m-%d %H:%M} UTC)"
                  "</h2>",
                  f"<p>{len(fired)} of {len(alerts.alerts)} budgets alert (P(overspend) >= {alerts.threshold:.0%} or "
                  "already over).</p>"]
        parts += [f'<p class="fired">{escape(a.message)}</p>' for a in fired]
        parts += [svg.budget_bars(rows, "Projected spend vs budget per team (USD)"),
                  _table(frame[["team", "project", "period_start", "period_end", "budget_usd", "actual_to_date_usd",
                                "projected_usd", "projected_p10_usd", "projected_p90_usd", "p_overspend",
                                "run_out_date", "status", "fired"]], 60, fired_col="fired")]

    if data is not None:
        parts += _data_section(data, tables)

    if checks is not None:
        tables["violations"] = checks.violations
        parts += ["<h2>Guardrail violations</h2>", _table(checks.violations, 60)]
        parts += [f'<p class="note">{escape(n)}</p>' for n in checks.notes]
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    return Review(html, tables)


def _data_section(data: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> list[str]:
    """The "Data costs" section: last month per team (storage, transfer), monthly trend, per team and class."""
    from usage.ingest.data_lines import data_costs

    if data.empty:
        return ["<h2>Data costs (storage and transfer)</h2>", '<p class="note">No data lines.</p>']
    per_month = data_costs(data)
    trend = by_team_class_trend(data)
    tables["data_costs"] = per_month
    tables["data_costs_by_class"] = trend
    months = sorted(per_month["month"].unique())
    last = months[-1]
    now = per_month[per_month["month"] == last].assign(transfer_all=lambda f: f["egress_usd"] + f["transfer_usd"])
    now = now.sort_values("total_usd", ascending=False, kind="stable")
    prev_total = float(per_month.loc[per_month["month"] == months[-2], "total_usd"].sum()) if len(months) > 1 else None
    total = float(now["total_usd"].sum())
    change = ("" if prev_total is None else f"; {total - prev_total:+,.2f} USD "
              + (f"({(total - prev_total) / prev_total:+.1%}) " if prev_total else "") + f"vs {months[-2]}")
    shown = now.head(12)
    top_teams = list(per_month.groupby("team")["total_usd"].sum().sort_values(ascending=False).head(8).index)
    series = {t: [(m, float(v)) for m, v in zip(g["month"], g["total_usd"], strict=True)]
              for t, g in per_month[per_month["team"].isin(top_teams)].groupby("team", sort=False)}
    latest = trend[trend["month"] == last].sort_values(["cost_usd"], ascending=False, kind="stable")
    latest = latest[latest["cost_usd"].abs() > 0]
    return [f"<h2>Data costs (storage and transfer), {escape(months[0])} to {escape(last)}</h2>",
            f'<p class="note">{escape(last)}: {total:,.2f} USD (storage {float(now["storage_usd"].sum()):,.2f}, '
            f'transfer and egress {float(now["transfer_all"].sum()):,.2f}){escape(change)}. Over all '
            f'{len(months)} months: {float(data["cost_usd"].sum()):,.2f} USD. Storage = object storage, block '
            "volumes and snapshots (GB-month); transfer = internet egress, inter-region, inter-AZ and NAT (GB).</p>",
            svg.hbars(list(shown["team"]), {"storage (USD)": list(shown["storage_usd"]),
                                            "transfer (USD)": list(shown["transfer_all"])},
                      f"Data cost per team, {last} (USD)"),
            svg.lines(series, "Data cost per month, largest teams (USD)"),
            f"<p>Per team and class, {escape(last)}, with the change against the month before:</p>",
            _table(latest[["team", "category", "class", "quantity", "unit", "cost_usd", "change_usd", "change_pct"]],
                   40)]


def write_review(review: Review, out_dir: str | Path) -> list[Path]:
    """Write ``report.html`` and one spreadsheet-safe CSV per table into ``out_dir``; return the paths.

    All files are written into a temporary folder beside ``out_dir`` first (:func:`usage.io.write_folder_atomic`),
    so a failure never leaves a half-written report.
    """
    files = {"report.html": lambda fh: fh.write(review.html)}
    for name, frame in review.tables.items():
        files[f"{name}.csv"] = lambda fh, frame=frame: safe_csv_frame(frame).to_csv(fh, index=False)
    return write_folder_atomic(out_dir, files)
