"""Unit economics: cost per training run, per 1,000 inferences or per any business unit, with trends.

Units file (CSV, or YAML under ``units:``): ``team``, optional ``project``, ``period`` (``2025-11``,
``2025-Q4``, ``2025``) or ``period_start``/``period_end``, ``unit`` (a name such as ``training run`` or
``1k inferences``) and ``count`` (> 0, units delivered in the period). The cost of a row is the priced usage
(:mod:`operate.costing`) of the team (and project) in the period; cost per unit = cost / count, GPU-hours per
unit likewise, and the trend is the change against the previous period of the same team, project and unit.

With data lines (``data``, the canonical data-usage frame of :mod:`usage.ingest.data_lines`) the cost of a
row also includes the team's (project's) storage and transfer costs in the period (months pro rata by hours,
:func:`operate.data_costs.in_period`), shown apart: ``gpu_cost_usd`` + ``data_usd`` = ``cost_usd``, and
``data_usd_per_unit`` next to ``usd_per_unit`` (:data:`COLUMNS_WITH_DATA`).

Units: USD, GPU-hours, USD per unit, percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from operate.costing import COST
from operate.files import PERIOD, PERIOD_START, blank, number, parse_period, read_records
from usage import schema as S
from usage.schema import UsageError

UNIT = "unit"
COUNT = "count"
COLUMNS = ("team", "project", "unit", "period_start", "period_end", "count", "gpu_hours", "cost_usd",
           "usd_per_unit", "gpu_hours_per_unit", "usd_per_unit_change_pct")
COLUMNS_WITH_DATA = ("team", "project", "unit", "period_start", "period_end", "count", "gpu_hours", "gpu_cost_usd",
                     "data_usd", "cost_usd", "usd_per_unit", "data_usd_per_unit", "gpu_hours_per_unit",
                     "usd_per_unit_change_pct")
"""The unit costs with data costs: ``cost_usd = gpu_cost_usd + data_usd``, ``usd_per_unit`` includes data."""


@dataclass(frozen=True)
class UnitCount:
    """``count`` units named ``unit`` delivered by ``team`` (/``project``) in ``[start, end)``."""

    team: str
    project: str | None
    unit: str
    start: pd.Timestamp
    end: pd.Timestamp
    count: float
    row: int = 0


def load_units(path: str | Path, known_teams: set[str] | None = None) -> tuple[UnitCount, ...]:
    """Read and validate a units file (unknown team, count <= 0, bad or overlapping periods are errors)."""
    rec = read_records(path, "units")
    df = rec.frame
    if df.empty:
        raise UsageError(rec.source, "no rows", fix="add one row per team, unit and period")
    for col in ("team", UNIT, COUNT):
        if col not in df.columns:
            raise UsageError(rec.source, f"missing column '{col}'", column=col,
                             fix="the units file needs team, period, unit and count")
    out: list[UnitCount] = []
    seen: dict[tuple, list[tuple[int, UnitCount]]] = {}
    for i, row in df.reset_index(drop=True).iterrows():
        if blank(row["team"]):
            raise rec.error("empty team", i, "team", fix="name the team that delivered the units")
        team = str(row["team"]).strip()
        if known_teams is not None and team not in known_teams:
            raise rec.error(f"unknown team '{team}' (not in the usage)", i, "team",
                            fix=f"use a team of the usage, e.g. {', '.join(sorted(known_teams)[:4])}")
        if blank(row[UNIT]):
            raise rec.error("empty unit", i, UNIT, fix="name the unit, e.g. 'training run' or '1k inferences'")
        count = number(rec, i, row, COUNT, fix="write how many units were delivered in the period, e.g. 1200")
        if count <= 0:
            raise rec.error(f"count {count:g} is not positive", i, COUNT,
                            fix="count must be > 0 (leave out periods without units)")
        project = None if "project" not in df.columns or blank(row["project"]) else str(row["project"]).strip()
        start, end = parse_period(rec, i, row)
        u = UnitCount(team, project, str(row[UNIT]).strip(), start, end, count, rec.row(i))
        for _, other in seen.get((team, project, u.unit), []):
            if start < other.end and other.start < end:
                raise rec.error(f"period {start:%Y-%m-%d}..{end:%Y-%m-%d} overlaps row {other.row} for the same team "
                                f"and unit", i, PERIOD if PERIOD in df.columns else PERIOD_START,
                                fix="give one count per team, unit and period")
        seen.setdefault((team, project, u.unit), []).append((i, u))
        out.append(u)
    return tuple(out)


def unit_costs(priced_usage: pd.DataFrame, units: tuple[UnitCount, ...],
               data: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cost and GPU-hours per unit for every units row, with the change against the previous period.

    Args:
        priced_usage: usage with ``cost_usd`` (:func:`operate.costing.priced`).
        units: from :func:`load_units`.
        data: data lines whose costs are added (columns :data:`COLUMNS_WITH_DATA`); None = GPU cost only
            (:data:`COLUMNS`).
    """
    ts = priced_usage[S.TIMESTAMP]
    rows = []
    for u in units:
        mask = (priced_usage[S.TEAM] == u.team) & (ts >= u.start) & (ts < u.end)
        if u.project is not None:
            mask &= priced_usage[S.PROJECT] == u.project if S.PROJECT in priced_usage.columns else False
        cost = float(priced_usage.loc[mask, COST].sum())
        gpu_hours = float(priced_usage.loc[mask, S.GPUS].sum())
        row = {"team": u.team, "project": u.project, "unit": u.unit, "period_start": u.start,
               "period_end": u.end, "count": u.count, "gpu_hours": round(gpu_hours, 3)}
        if data is not None:
            from operate.data_costs import team_period_cost

            data_usd = team_period_cost(data, u.team, u.start, u.end, u.project)
            row.update(gpu_cost_usd=round(cost, 2), data_usd=round(data_usd, 2),
                       data_usd_per_unit=data_usd / u.count)
            cost += data_usd
        row.update(cost_usd=round(cost, 2), usd_per_unit=cost / u.count, gpu_hours_per_unit=gpu_hours / u.count)
        rows.append(row)
    columns = COLUMNS if data is None else COLUMNS_WITH_DATA
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "usd_per_unit_change_pct"])
    out = out.sort_values(["team", "project", "unit", "period_start"], na_position="first", kind="stable")
    prev = out.groupby(["team", "project", "unit"], dropna=False)["usd_per_unit"].shift(1)
    out["usd_per_unit_change_pct"] = np.where(prev > 0, 100.0 * (out["usd_per_unit"] / prev - 1.0), np.nan)
    return out.reset_index(drop=True)[list(columns)]


def trends(costs: pd.DataFrame) -> pd.DataFrame:
    """Per team, project and unit: first and last cost per unit and the change over the periods (percent)."""
    g = costs.groupby(["team", "project", "unit"], dropna=False, sort=False)
    out = g.agg(periods=("usd_per_unit", "size"), first_period=("period_start", "first"),
                last_period=("period_start", "last"), first_usd_per_unit=("usd_per_unit", "first"),
                last_usd_per_unit=("usd_per_unit", "last")).reset_index()
    first = out["first_usd_per_unit"]
    out["change_pct"] = np.where(first > 0, 100.0 * (out["last_usd_per_unit"] / first.where(first > 0) - 1.0), np.nan)
    return out
