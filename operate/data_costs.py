"""Data costs (storage and data transfer) beside GPU costs: reading data lines and summing them per team and period.

The data lines are the canonical data-usage frame of :mod:`usage.ingest.data_lines` (``month, team, project,
category, class, quantity, unit, cost_usd``), read either from a CSV in that frame (e.g. the ``--out`` of
``gpuplan data-costs --by-class-out`` is not one; the shipped ``data_samples/synthetic_org_data_costs.csv`` is) or
straight from a billing export (CUR, FOCUS, Google Cloud) with :func:`usage.ingest.data_lines.load_data_lines`.

A data line is billed per calendar month; a period that covers part of a month gets that month's cost pro rata by
hours (``hours of the month inside the period / hours of the month``), so the costs of consecutive periods add up
to the months' cost. ``storage_usd`` is object storage, block volumes and snapshots; ``transfer_usd`` is every
data transfer (internet egress included); ``data_usd = storage_usd + transfer_usd``. Units: USD, GB-month, GB.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from usage import schema as S
from usage.ingest.data_lines import CATEGORIES, DATA_COLUMNS, TRANSFER

STORAGE_USD = "storage_usd"
TRANSFER_USD = "transfer_usd"
DATA_USD = "data_usd"
DATA_MONEY = (STORAGE_USD, TRANSFER_USD, DATA_USD)
"""The data-cost columns of chargeback, budgets and unit costs."""
BASIS_GPU = "GPU cost"
BASIS_GPU_AND_DATA = "GPU cost + data costs (storage and transfer)"


def _bad(source: str, row: int, column: str, value: object, fix: str) -> ValueError:
    return ValueError(f"{source} row {row}, column '{column}': {value!r} {fix}")


def read_data_usage(path: str | Path, *, tag_key: str = "team", project_key: str = "project") -> pd.DataFrame:
    """Read data lines: a CSV in the canonical data-usage frame, else a billing export.

    Args:
        path: a CSV whose header has the columns :data:`~usage.ingest.data_lines.DATA_COLUMNS`, or a billing
            export :func:`~usage.ingest.data_lines.load_data_lines` reads.
        tag_key, project_key: cost-allocation tags of a billing export (ignored for a canonical CSV).

    Returns:
        The canonical data-usage frame (``quantity`` may be NaN; ``team`` never empty: ``unallocated``).

    Raises:
        ValueError: one line naming the file, row (1 = first data row) and column, and the fix. ``OSError``: an
            unreadable file.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
        if set(DATA_COLUMNS) <= {h.strip() for h in header}:
            return _read_canonical(path)
    from usage.ingest.data_lines import load_data_lines

    frame, _ = load_data_lines(path, tag_key=tag_key, project_key=project_key)
    return frame


def _read_canonical(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    raw.columns = [c.strip() for c in raw.columns]
    src = path.name
    month = pd.to_datetime(raw["month"].str.strip(), format="%Y-%m", errors="coerce")
    for col, ok, fix in (("month", month.notna(), "is not a month (fix: YYYY-MM, e.g. 2025-11)"),
                         ("category", raw["category"].str.strip().isin(CATEGORIES),
                          f"is not a data category (fix: one of {', '.join(CATEGORIES)})"),
                         ("class", raw["class"].str.strip() != "", "is empty (fix: the storage class or transfer "
                                                                  "kind, e.g. s3-standard or internet-egress)")):
        bad = np.flatnonzero(~ok.to_numpy())
        if len(bad):
            raise _bad(src, int(bad[0]) + 1, col, raw[col].iloc[bad[0]], fix)
    numbers = {}
    for col, allow_empty in (("quantity", True), ("cost_usd", False)):
        text = raw[col].str.strip()
        num = pd.to_numeric(text, errors="coerce")
        bad_mask = (num.isna() & ((text != "") | (not allow_empty))) | ~np.isfinite(num.fillna(0.0))
        if col == "quantity":
            bad_mask |= num < 0
        bad = np.flatnonzero(bad_mask.to_numpy())
        if len(bad):
            fix = ("is not a quantity (fix: a number >= 0 in the row's unit, or empty)" if col == "quantity"
                   else "is not an amount (fix: a number of USD)")
            raise _bad(src, int(bad[0]) + 1, col, raw[col].iloc[bad[0]], fix)
        numbers[col] = num.astype(float)
    team = raw["team"].str.strip().replace("", S.UNALLOCATED_TEAM)
    project = raw["project"].str.strip().replace("", S.UNALLOCATED_TEAM)
    out = pd.DataFrame({"month": month.dt.strftime("%Y-%m"), "team": team, "project": project,
                        "category": raw["category"].str.strip(), "class": raw["class"].str.strip(),
                        "quantity": numbers["quantity"], "unit": raw["unit"].str.strip(),
                        "cost_usd": numbers["cost_usd"]})
    return out[list(DATA_COLUMNS)]


def _month_hours(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    p = pd.Period(month, freq="M")
    return p.start_time, (p + 1).start_time


def in_period(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The data lines of ``[start, end)``, each cost (and quantity) scaled by the share of its month's hours inside.

    Args:
        frame: data-usage frame.
        start, end: the period (naive UTC or tz-aware; compared in UTC).

    Returns:
        The rows overlapping the period with ``cost_usd`` and ``quantity`` multiplied by the overlap share.
    """
    start, end = _naive_utc(start), _naive_utc(end)
    shares = {}
    for m in frame["month"].unique():
        a, b = _month_hours(m)
        overlap = (min(b, end) - max(a, start)) / pd.Timedelta(hours=1)
        shares[m] = max(0.0, overlap) / ((b - a) / pd.Timedelta(hours=1))
    share = frame["month"].map(shares).astype(float) if len(frame) else pd.Series(dtype=float)
    out = frame.loc[share > 0].copy()
    s = share[share > 0]
    out["cost_usd"] = out["cost_usd"] * s
    out["quantity"] = out["quantity"] * s
    return out.reset_index(drop=True)


def _naive_utc(t: pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def per_team(frame: pd.DataFrame, teams: Iterable[str] | None = None) -> pd.DataFrame:
    """``team, storage_usd, transfer_usd, data_usd`` per team (unrounded USD), for ``teams`` if given (0 if none).

    Args:
        frame: data lines (already restricted to a period with :func:`in_period` if needed).
        teams: teams to report (others dropped); None = every team in the frame.
    """
    f = frame.assign(**{STORAGE_USD: frame["cost_usd"].where(frame["category"] != TRANSFER, 0.0),
                        TRANSFER_USD: frame["cost_usd"].where(frame["category"] == TRANSFER, 0.0)})
    g = f.groupby("team")[[STORAGE_USD, TRANSFER_USD]].sum()
    if teams is not None:
        g = g.reindex(list(teams), fill_value=0.0)
    g[DATA_USD] = g[STORAGE_USD] + g[TRANSFER_USD]
    return g.rename_axis("team").reset_index()


def team_period_cost(frame: pd.DataFrame, team: str, start: pd.Timestamp, end: pd.Timestamp,
                     project: str | None = None) -> float:
    """Data cost (USD) of one team (and project, if given) in ``[start, end)``, months pro rata by hours."""
    f = frame[frame["team"] == team]
    if project is not None:
        f = f[f["project"] == project]
    return float(in_period(f, start, end)["cost_usd"].sum()) if len(f) else 0.0


def summary(frame: pd.DataFrame) -> dict[str, object]:
    """Totals of a data-usage frame: ``data_usd, storage_usd, transfer_usd, first_month, last_month, teams``."""
    transfer = frame["category"] == TRANSFER
    months = sorted(frame["month"].unique())
    return {DATA_USD: float(frame["cost_usd"].sum()), STORAGE_USD: float(frame.loc[~transfer, "cost_usd"].sum()),
            TRANSFER_USD: float(frame.loc[transfer, "cost_usd"].sum()),
            "first_month": months[0] if months else None, "last_month": months[-1] if months else None,
            "teams": int(frame["team"].nunique())}


def summary_line(frame: pd.DataFrame) -> str:
    """One line: ``data costs: 12,345.67 USD over 2024-06..2025-11 (storage ..., transfer ...)``."""
    s = summary(frame)
    if s["first_month"] is None:
        return "data costs: no data lines"
    return (f"data costs: {s[DATA_USD]:,.2f} USD over {s['first_month']}..{s['last_month']} "
            f"(storage {s[STORAGE_USD]:,.2f}, transfer {s[TRANSFER_USD]:,.2f}; {s['teams']} teams)")


def by_team_class_trend(frame: pd.DataFrame) -> pd.DataFrame:
    """Per team and class, month by month: ``month, team, category, class, quantity, unit, cost_usd, change_usd,
    change_pct`` (change against the same team and class in the previous month of the frame; a class absent in a
    month counts 0)."""
    g = frame.groupby(["team", "category", "class", "unit", "month"], as_index=False)[["quantity", "cost_usd"]].sum()
    months = sorted(frame["month"].unique())
    keys = g[["team", "category", "class", "unit"]].drop_duplicates()
    grid = keys.merge(pd.DataFrame({"month": months}), how="cross")
    g = grid.merge(g, on=["team", "category", "class", "unit", "month"], how="left")
    g[["quantity", "cost_usd"]] = g[["quantity", "cost_usd"]].fillna(0.0)
    g = g.sort_values(["team", "category", "class", "unit", "month"], kind="stable")
    prev = g.groupby(["team", "category", "class", "unit"])["cost_usd"].shift(1)
    g["change_usd"] = g["cost_usd"] - prev
    g["change_pct"] = (g["change_usd"] / prev.where(prev != 0)).astype(float)
    cols = ["month", "team", "category", "class", "quantity", "unit", "cost_usd", "change_usd", "change_pct"]
    return g[cols].sort_values(["month", "team", "category", "class"], kind="stable").reset_index(drop=True)


def hourly_cost(frame: pd.DataFrame, team: str, project: str | None, hours: pd.DatetimeIndex) -> np.ndarray:
    """Data cost (USD) of a team (and project) in each of ``hours``: each month's lines spread evenly over its hours.

    Hours in months after the last month with lines carry that month's hourly cost forward (storage stays and
    transfer goes on: data lines are not forecast); hours before the first month with lines, or in a month
    between without lines, cost 0.

    Args:
        frame: data-usage frame.
        team, project: the scope (``project`` None = the whole team).
        hours: hour starts (naive UTC).
    """
    f = frame[frame["team"] == team]
    if project is not None:
        f = f[f["project"] == project]
    if f.empty or len(hours) == 0:
        return np.zeros(len(hours))
    monthly = f.groupby("month")["cost_usd"].sum()
    rate = {}
    for m, usd in monthly.items():
        a, b = _month_hours(m)
        rate[m] = float(usd) / ((b - a) / pd.Timedelta(hours=1))
    last = max(rate)
    months = pd.Index(hours.strftime("%Y-%m"))
    out = months.map(lambda m: rate.get(m, rate[last] if m > last else 0.0)).to_numpy(dtype=float)
    return out


def beside_gpu(gpu_usd: pd.Series, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """GPU and data costs per team over ``[start, end)``: ``team, gpu_usd, storage_usd, transfer_usd, data_usd,
    total_usd, data_share`` (data share of the total, 0-1), largest total first.

    Args:
        gpu_usd: GPU cost per team over the period (index team), USD.
        frame: data-usage frame; months partly inside the period count pro rata by hours (:func:`in_period`).
        start, end: the period.
    """
    data = per_team(in_period(frame, start, end)).set_index("team")
    teams = sorted(set(gpu_usd.index.astype(str)) | set(data.index))
    out = data.reindex(teams, fill_value=0.0)
    out.insert(0, "gpu_usd", gpu_usd.reindex(teams).fillna(0.0).astype(float).to_numpy())
    out["total_usd"] = out["gpu_usd"] + out[DATA_USD]
    out["data_share"] = np.divide(out[DATA_USD], out["total_usd"], out=np.full(len(out), np.nan),
                                  where=out["total_usd"].to_numpy() > 0)
    out = out.rename_axis("team").reset_index()
    return out.sort_values(["total_usd", "team"], ascending=[False, True], kind="stable").reset_index(drop=True)
