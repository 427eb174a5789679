"""Reading the operate input files (budgets, units: CSV or YAML; plan.json) with row-exact one-line errors.

A CSV file has a header; its rows are numbered as lines of the file (header = line 1). A YAML file holds
a list of mappings under one top-level key (``budgets:`` or ``units:``), or the list itself; its rows are
numbered as entries 1, 2, ... of that list. Periods are a ``period`` (``2025-12``, ``2025-Q4`` or
``2025``) or ``period_start`` / ``period_end`` dates (UTC, end exclusive).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from optimizer.plan import Plan
from usage.io import read_text
from usage.schema import UsageError, csv_row

PERIOD = "period"
PERIOD_START = "period_start"
PERIOD_END = "period_end"
_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class Records:
    """Rows of an input file as strings-or-values, with how to name a row in errors."""

    frame: pd.DataFrame
    source: str
    yaml: bool

    def row(self, index: int) -> int:
        """The row number users see: the CSV line, or the 1-based YAML list entry."""
        return int(index) + 1 if self.yaml else csv_row(index)

    def error(self, message: str, index: int | None = None, column: str | None = None,
              fix: str | None = None) -> UsageError:
        where = None if index is None else self.row(index)
        if self.yaml and where is not None:
            return UsageError(f"{self.source}, entry {where}", message, column=column, fix=fix)
        return UsageError(self.source, message, row=where, column=column, fix=fix)


def read_records(path: str | Path, key: str) -> Records:
    """Read a CSV or YAML file of records (see the module docstring)."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise UsageError(source, "file not found", fix="check the path")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(read_text(path))
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" at line {line + 1}" if line is not None else ""
            raise UsageError(source, f"not valid YAML{where}", fix="check indentation and quoting") from None
        items = doc.get(key) if isinstance(doc, dict) else doc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise UsageError(source, f"expected a list of entries under '{key}:'",
                             fix=f"write '{key}:' followed by '- team: ...' entries")
        return Records(pd.DataFrame(items), source, yaml=True)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UsageError(source, f"cannot read CSV ({exc.__class__.__name__})",
                         fix="save it as UTF-8 CSV with a header row") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return Records(frame, source, yaml=False)


def blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == ""


def parse_period(rec: Records, i: int, row: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of row ``i``: from ``period`` or ``period_start``/``period_end`` (naive UTC)."""
    if PERIOD in row.index and not blank(row[PERIOD]):
        text = str(row[PERIOD]).strip()
        if m := _QUARTER.match(text):
            start = pd.Timestamp(int(m[1]), 3 * int(m[2]) - 2, 1)
            return start, start + pd.DateOffset(months=3)
        if m := _MONTH.match(text):
            if not 1 <= int(m[2]) <= 12:
                raise rec.error(f"period {text!r} has no month {m[2]}", i, PERIOD, fix="use YYYY-MM, e.g. 2025-12")
            start = pd.Timestamp(int(m[1]), int(m[2]), 1)
            return start, start + pd.DateOffset(months=1)
        if m := _YEAR.match(text):
            start = pd.Timestamp(int(m[1]), 1, 1)
            return start, start + pd.DateOffset(years=1)
        raise rec.error(f"cannot read period {text!r}", i, PERIOD,
                        fix="use YYYY-MM (month), YYYY-Qn (quarter), YYYY (year) or period_start/period_end")
    bounds = []
    for col in (PERIOD_START, PERIOD_END):
        if col not in row.index or blank(row[col]):
            raise rec.error(f"no {PERIOD} and no {col}", i, col,
                            fix="give a period such as 2025-Q4, or period_start and period_end dates")
        try:
            ts = pd.Timestamp(str(row[col]).strip())
        except ValueError:
            raise rec.error(f"cannot parse date {row[col]!r}", i, col, fix="use ISO dates such as 2025-10-01") from None
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        bounds.append(ts)
    if bounds[1] <= bounds[0]:
        raise rec.error(f"period_end {row[PERIOD_END]} is not after period_start {row[PERIOD_START]}", i, PERIOD_END,
                        fix="period_end is exclusive and must be later than period_start")
    return bounds[0], bounds[1]


def number(rec: Records, i: int, row: pd.Series, column: str, *, fix: str) -> float:
    """A finite number from ``row[column]`` or a one-line error."""
    value = row[column] if column in row.index else None
    if blank(value):
        raise rec.error(f"empty {column}", i, column, fix=fix)
    try:
        out = float(str(value).replace(",", "").replace("_", "").strip())
    except ValueError:
        raise rec.error(f"{column} {value!r} is not a number", i, column, fix=fix) from None
    if out != out or out in (float("inf"), float("-inf")):
        raise rec.error(f"{column} {value!r} is not a finite number", i, column, fix=fix)
    return out


def read_plan(path: str | Path) -> Plan:
    """Read a plan.json (gpuplan.plan/v1) or raise one line naming the file and the fix."""
    path = Path(path)
    if not path.exists():
        raise UsageError(str(path), "file not found", fix="check the path, or write one with gpuplan plan")
    try:
        return Plan.read(path)
    except json.JSONDecodeError as exc:
        raise UsageError(str(path), f"not valid JSON (line {exc.lineno})",
                         fix="pass a plan.json written by gpuplan plan") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(str(path), f"not a gpuplan.plan/v1 document ({exc.__class__.__name__}: {exc})",
                         fix="pass a plan.json written by gpuplan plan") from None
