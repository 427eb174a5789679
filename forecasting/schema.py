"""Canonical usage contract: column names, validation and the one-line error every stage raises.

Units: ``gpus`` is the average number of GPUs in use during the hour that starts at ``timestamp``,
which equals the GPU-hours consumed in that hour. Timestamps are hour starts in UTC, stored as
timezone-naive ``datetime64[ns]`` (naive input is taken as UTC, aware input is converted to UTC).

One row per (timestamp, team, gpu_type). This module owns every column name of the usage and
forecast frames; other modules import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# --- usage frame --------------------------------------------------------------------------------
TIMESTAMP = "timestamp"
TEAM = "team"
GPU_TYPE = "gpu_type"
GPUS = "gpus"
PROJECT = "project"
INSTANCE_TYPE = "instance_type"
PURCHASE_OPTION = "purchase_option"
UTILIZATION = "utilization"
COST_USD = "cost_usd"

KEY_COLUMNS = (TIMESTAMP, TEAM, GPU_TYPE)
REQUIRED_COLUMNS = (TIMESTAMP, TEAM, GPU_TYPE, GPUS)
OPTIONAL_COLUMNS = (PROJECT, INSTANCE_TYPE, PURCHASE_OPTION, UTILIZATION, COST_USD)
USAGE_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

UNALLOCATED_TEAM = "unallocated"
"""Team name given to usage that carries no team tag (shown as its own bucket, never dropped)."""

# --- forecast frame -----------------------------------------------------------------------------
MEAN = "mean"
P05 = "p05"
P10 = "p10"
P50 = "p50"
P90 = "p90"
P95 = "p95"
MODEL = "model"
QUANTILE_COLUMNS = (P10, P50, P90)
FORECAST_COLUMNS = (TEAM, GPU_TYPE, TIMESTAMP, MEAN, P10, P50, P90, MODEL)
"""The forecast contract of issue 2 (v1); consumers may rely on these columns."""
FORECAST_COLUMNS_FULL = (TEAM, GPU_TYPE, TIMESTAMP, MEAN, P05, P10, P50, P90, P95, MODEL)
"""v1 plus the compatible extension p05/p95 (written by gpuplan forecast)."""

# statsforecast's long format
UID = "unique_id"
DS = "ds"
Y = "y"
UID_SEP = "|"


class UsageError(ValueError):
    """A user mistake in an input file: one line naming file, row, column and the fix.

    The CLI prints ``str(error)`` and exits with status 2, never a traceback.
    """

    def __init__(self, source: str, message: str, *, row: int | None = None, column: str | None = None,
                 fix: str | None = None, where: list[str] | None = None) -> None:
        """``where`` replaces the ``row R, column 'C'`` location for files that are not tables (e.g.
        ``["key 'classes.a'", "field 'gpus_per_job'"]`` in a YAML file); ``row``/``column`` are kept as
        attributes either way."""
        self.source = source
        self.row = row
        self.column = column
        self.fix = fix
        self.message = message
        if where is None:
            where = ([f"row {row}"] if row is not None else []) + ([f"column '{column}'"] if column is not None else [])
        super().__init__(one_line([str(source), *where], message, fix))


def one_line(where: list[str], message: str, fix: str | None) -> str:
    """``file, row R, column 'C': message (fix: ...)``: the shape of every user-facing error."""
    text = f"{', '.join(where)}: {message}"
    return f"{text} (fix: {fix})" if fix else text


@dataclass(frozen=True)
class ValidationReport:
    """What validation changed or noticed, for the CLI and the app to show."""

    rows_in: int
    rows_out: int
    series: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    aggregated_subhourly_rows: int = 0
    gap_hours_filled: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def csv_row(index: int) -> int:
    """1-based line number in a CSV file with a header for a 0-based data-row index."""
    return int(index) + 2


def shown(value: object) -> str:
    """A cell value as an error message shows it: quoted text or a plain number, ``empty`` for a blank cell."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)) or str(value).strip() == "":
        return "empty"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def bad_value(label: str, value: object, problem: str) -> str:
    """``"<label> is empty"`` for a blank cell, else ``"<label> <value> <problem>"`` (e.g. ``is not a number``)."""
    text = shown(value)
    return f"{label} is empty" if text == "empty" else f"{label} {text} {problem}"


def _first_bad(mask: np.ndarray | pd.Series) -> int | None:
    arr = np.asarray(mask, dtype=bool)
    if not arr.any():
        return None
    return int(np.flatnonzero(arr)[0])


def parse_timestamps(values: pd.Series, source: str, column: str = TIMESTAMP) -> pd.Series:
    """Parse ISO-8601 strings/datetimes to naive UTC; raise UsageError on the first bad value."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = _first_bad(parsed.isna())
    if bad is not None:
        raise UsageError(source, bad_value("timestamp", values.iloc[bad], "cannot be parsed"), row=csv_row(bad),
                         column=column, fix="use ISO 8601 hour starts such as 2025-01-01T13:00:00Z")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def validate_usage(df: pd.DataFrame, source: str = "usage", *, known_gpu_types: set[str] | None = None,
                   fill_gaps: bool = True) -> tuple[pd.DataFrame, ValidationReport]:
    """Check a canonical usage frame and return it cleaned, with a report.

    Args:
        df: raw frame with at least ``timestamp, team, gpu_type, gpus``.
        source: file name used in error messages.
        known_gpu_types: GPU models some catalog instance offers; ``None`` skips that check.
        fill_gaps: fill missing hours of each series between its first and last hour with 0 GPUs.

    Returns:
        The frame sorted by (team, gpu_type, timestamp) with naive-UTC hourly timestamps, and the
        report (sub-hourly rows aggregated, gap hours filled).

    Raises:
        UsageError: one line naming the file, row, column and fix.
    """
    rows_in = len(df)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(source, f"missing column '{missing[0]}'", column=missing[0],
                         fix=f"the header must contain {', '.join(REQUIRED_COLUMNS)}")
    if rows_in == 0:
        raise UsageError(source, "no data rows", fix="provide at least one hour of usage")
    df = df.reset_index(drop=True).copy()
    df[TIMESTAMP] = parse_timestamps(df[TIMESTAMP], source)

    for col in (TEAM, GPU_TYPE):
        blank = df[col].isna() | (df[col].astype(str).str.strip() == "")
        bad = _first_bad(blank)
        if bad is not None:
            raise UsageError(source, f"empty {col}", row=csv_row(bad), column=col,
                             fix=f"give every row a {col}")
        df[col] = df[col].astype(str).str.strip()

    gpus = pd.to_numeric(df[GPUS], errors="coerce")
    bad = _first_bad(gpus.isna() | ~np.isfinite(gpus.to_numpy(dtype=float, na_value=np.nan)))
    if bad is not None:
        raise UsageError(source, bad_value("gpus value", df[GPUS].iloc[bad], "is not a number"), row=csv_row(bad),
                         column=GPUS, fix="write the average GPUs in use in that hour, e.g. 12.5")
    bad = _first_bad(gpus < 0)
    if bad is not None:
        raise UsageError(source, f"gpus value {gpus.iloc[bad]} is negative", row=csv_row(bad), column=GPUS,
                         fix="GPU usage must be >= 0")
    df[GPUS] = gpus.astype(float)

    if UTILIZATION in df.columns:
        util = pd.to_numeric(df[UTILIZATION], errors="coerce")
        bad = _first_bad(df[UTILIZATION].notna() & (util.isna() | (util < 0) | (util > 1)))
        if bad is not None:
            raise UsageError(source, bad_value("utilization", df[UTILIZATION].iloc[bad], "is outside 0-1"),
                             row=csv_row(bad), column=UTILIZATION, fix="write utilisation as a fraction 0-1")
        df[UTILIZATION] = util
    if COST_USD in df.columns:
        cost = pd.to_numeric(df[COST_USD], errors="coerce")
        bad = _first_bad(df[COST_USD].notna() & cost.isna())
        if bad is not None:
            raise UsageError(source, bad_value("cost_usd", df[COST_USD].iloc[bad], "is not a number"), row=csv_row(bad),
                             column=COST_USD, fix="write cost in USD, e.g. 21.96")
        df[COST_USD] = cost

    if known_gpu_types is not None:
        unknown = ~df[GPU_TYPE].isin(known_gpu_types)
        bad = _first_bad(unknown)
        if bad is not None:
            examples = ", ".join(sorted(known_gpu_types)[:6])
            raise UsageError(source, f"gpu_type '{df[GPU_TYPE].iloc[bad]}' is not offered by any catalog "
                             "instance", row=csv_row(bad), column=GPU_TYPE,
                             fix=f"use a catalog gpu_model such as {examples}")

    notes: list[str] = []
    subhourly = df[TIMESTAMP] != df[TIMESTAMP].dt.floor("h")
    n_sub = 0
    if subhourly.any():
        # Sub-hourly samples of GPUs in use: the hourly value is their time-weighted mean. With
        # evenly spaced samples that is the mean over the samples present in the hour.
        df[TIMESTAMP] = df[TIMESTAMP].dt.floor("h")
        n_sub = int(subhourly.groupby([df[c] for c in KEY_COLUMNS]).transform("any").sum())
        notes.append(f"{n_sub} sub-hourly rows aggregated to hourly means of GPUs in use")
        agg = {GPUS: "mean"}
        for col in df.columns:
            if col in KEY_COLUMNS or col == GPUS:
                continue
            agg[col] = "sum" if col == COST_USD else ("mean" if col == UTILIZATION else "first")
        df = df.groupby(list(KEY_COLUMNS), as_index=False, sort=False).agg(agg)
    else:
        dup = df.duplicated(list(KEY_COLUMNS), keep="first")
        bad = _first_bad(dup)
        if bad is not None:
            first = _first_bad(
                (df[TIMESTAMP] == df[TIMESTAMP].iloc[bad]) & (df[TEAM] == df[TEAM].iloc[bad])
                & (df[GPU_TYPE] == df[GPU_TYPE].iloc[bad]))
            raise UsageError(source, f"duplicate (timestamp, team, gpu_type) "
                             f"({df[TIMESTAMP].iloc[bad]:%Y-%m-%dT%H:%M}Z, {df[TEAM].iloc[bad]}, "
                             f"{df[GPU_TYPE].iloc[bad]}) also on row {csv_row(first)}", row=csv_row(bad),
                             column=TIMESTAMP, fix="keep one row per hour, team and gpu_type (sum them)")

    df = df.sort_values([TEAM, GPU_TYPE, TIMESTAMP], kind="stable").reset_index(drop=True)
    filled = 0
    if fill_gaps:
        df, filled = _fill_gaps(df)
        if filled:
            notes.append(f"{filled} missing hours filled with 0 GPUs")
    report = ValidationReport(
        rows_in=rows_in, rows_out=len(df), series=int(df.groupby([TEAM, GPU_TYPE]).ngroups),
        start=df[TIMESTAMP].min(), end=df[TIMESTAMP].max(), aggregated_subhourly_rows=n_sub,
        gap_hours_filled=filled, notes=tuple(notes))
    return df, report


def _fill_gaps(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Insert 0-GPU rows for hours missing inside each series' own span."""
    spans = df.groupby([TEAM, GPU_TYPE], sort=False)[TIMESTAMP].agg(["min", "max", "size"])
    expected = ((spans["max"] - spans["min"]) // pd.Timedelta(hours=1) + 1).astype(int)
    missing = int((expected - spans["size"]).sum())
    if missing == 0:
        return df, 0
    parts = []
    for (team, gpu), row in spans.iterrows():
        hours = pd.date_range(row["min"], row["max"], freq="h")
        parts.append(pd.DataFrame({TEAM: team, GPU_TYPE: gpu, TIMESTAMP: hours}))
    grid = pd.concat(parts, ignore_index=True)
    out = grid.merge(df, on=[TEAM, GPU_TYPE, TIMESTAMP], how="left")
    out[GPUS] = out[GPUS].fillna(0.0)
    out = out[[c for c in df.columns]]
    return out.sort_values([TEAM, GPU_TYPE, TIMESTAMP], kind="stable").reset_index(drop=True), missing


def series_id(team: pd.Series, gpu_type: pd.Series) -> pd.Series:
    """statsforecast ``unique_id`` for a (team, gpu_type) series."""
    return team.astype(str) + UID_SEP + gpu_type.astype(str)


def to_long(usage: pd.DataFrame) -> pd.DataFrame:
    """Usage frame -> statsforecast long format ``unique_id, ds, y``."""
    return pd.DataFrame({UID: series_id(usage[TEAM], usage[GPU_TYPE]).to_numpy(),
                         DS: usage[TIMESTAMP].to_numpy(), Y: usage[GPUS].to_numpy(dtype=float)})


def split_uid(uid: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = uid.astype(str).str.split(UID_SEP, n=1, expand=True, regex=False)
    return parts[0], parts[1]


def format_timestamp(ts: pd.Series) -> pd.Series:
    """Naive-UTC datetimes -> ISO 8601 strings with a ``Z`` suffix (the CSV contract)."""
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
