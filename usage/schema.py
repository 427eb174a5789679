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
PROVIDER = "provider"
REGION = "region"
"""Optional text columns naming the cloud (``aws``, ``gcp``, ``azure``) and region a usage row runs in; the
planner prices each provider's usage in its own region (:func:`optimizer.inputs.place_usage`)."""

KEY_COLUMNS = (TIMESTAMP, TEAM, GPU_TYPE)
REQUIRED_COLUMNS = (TIMESTAMP, TEAM, GPU_TYPE, GPUS)
OPTIONAL_COLUMNS = (PROJECT, INSTANCE_TYPE, PURCHASE_OPTION, UTILIZATION, COST_USD)
USAGE_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

MAX_GPUS = 1_000_000.0
"""Plausibility bound on one usage value: no team runs more than a million GPUs of one type in one hour.
Larger values (``1e12``, ``1e308``, ``inf``) are typing or unit mistakes and are refused, so nothing
downstream (forecasts, the optimizer, baselines) sees a number it cannot handle."""

EARLIEST_TIMESTAMP = pd.Timestamp("2000-01-01")
LATEST_TIMESTAMP = pd.Timestamp("2100-01-01")
"""Usage timestamps must fall in [2000-01-01, 2100-01-01) UTC. Anything outside (typically 1970-01-01
from a number read in the wrong unit) is refused with the row that holds it."""

EPOCH_UNIT_LIMITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
"""A timestamp written as a plain number is Unix time; its unit follows from its magnitude: below 1e11
seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds (so 1735689600,
1735689600000 and 1735689600000000000 are all 2025-01-01 00:00 UTC)."""

NULL_TEXTS = ("NULL", "null")
"""Cell texts that mean "no value" in CSV input, like an empty cell (FOCUS sample data writes ``NULL``)."""

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
"""Separates team and GPU type in a series id. A ``|`` or ``%`` inside a name is percent-encoded
(``%7C``, ``%25``) by :func:`series_id`, so every (team, gpu_type) pair round-trips through
:func:`split_uid` whatever its text."""


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


def epoch_timestamps(numbers: pd.Series) -> pd.Series:
    """Unix times -> naive UTC datetimes, each in the unit its magnitude implies (:data:`EPOCH_UNIT_LIMITS`);
    NaT where the number is missing or absurd."""
    v = pd.to_numeric(numbers, errors="coerce").astype(float)
    scale = np.full(len(v), 1e-3)  # nanoseconds -> microseconds
    for limit, factor in zip((lim for lim, _ in reversed(EPOCH_UNIT_LIMITS)), (1.0, 1e3, 1e6), strict=True):
        scale = np.where(np.abs(v) < limit, factor, scale)
    micros = np.round(v.to_numpy() * scale)
    ok = np.isfinite(micros) & (np.abs(micros) < 9e15)
    out = pd.to_datetime(np.where(ok, micros, 0).astype("int64"), unit="us")
    return pd.Series(out, index=numbers.index).where(ok)


def parse_timestamps(values: pd.Series, source: str, column: str = TIMESTAMP, *,
                     plausible_dates: bool = False) -> pd.Series:
    """Parse ISO-8601 strings/datetimes (or Unix times, see :func:`epoch_timestamps`) to naive UTC.

    Raises:
        UsageError: on the first value that cannot be parsed or, with ``plausible_dates`` (user files), lies
            outside [:data:`EARLIEST_TIMESTAMP`, :data:`LATEST_TIMESTAMP`).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_bool_dtype(values):
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    elif pd.api.types.is_numeric_dtype(values):
        parsed = epoch_timestamps(values)
    else:
        text = values.astype("string").str.strip()
        numeric = text.str.fullmatch(r"[+-]?[0-9]+(?:\.[0-9]*)?").fillna(False).to_numpy(dtype=bool)
        parsed = pd.to_datetime(values.where(~numeric), errors="coerce", utc=True, format="mixed")
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
        if numeric.any():
            parsed[numeric] = epoch_timestamps(text[numeric]).astype("datetime64[ns]")
    bad = _first_bad(parsed.isna())
    if bad is not None:
        raise UsageError(source, bad_value("timestamp", values.iloc[bad], "cannot be parsed"), row=csv_row(bad),
                         column=column, fix="use ISO 8601 hour starts such as 2025-01-01T13:00:00Z")
    bad = _first_bad((parsed < EARLIEST_TIMESTAMP) | (parsed >= LATEST_TIMESTAMP)) if plausible_dates else None
    if bad is not None:
        raise UsageError(source, f"timestamp {shown(values.iloc[bad])} (read as {parsed.iloc[bad]:%Y-%m-%d %H:%M} "
                         f"UTC) is outside {EARLIEST_TIMESTAMP:%Y}-{LATEST_TIMESTAMP.year - 1}", row=csv_row(bad),
                         column=column, fix="write ISO 8601 times such as 2025-01-01T13:00:00Z; plain numbers are "
                         "read as Unix seconds (or ms/us/ns by their size)")
    return parsed.astype("datetime64[ns]")


def validate_usage(df: pd.DataFrame, source: str = "usage", *, known_gpu_types: set[str] | None = None,
                   fill_gaps: bool = True, plausible_dates: bool = False) -> tuple[pd.DataFrame, ValidationReport]:
    """Check a canonical usage frame and return it cleaned, with a report.

    Args:
        df: raw frame with at least ``timestamp, team, gpu_type, gpus``.
        source: file name used in error messages.
        known_gpu_types: GPU models some catalog instance offers; ``None`` skips that check.
        fill_gaps: fill missing hours of each series between its first and last hour with 0 GPUs.
        plausible_dates: refuse timestamps outside 2000-2099 (every ingested file is checked so; research traces
            with synthetic 1970-based hours, such as the Alibaba benchmark data, are validated without it).

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
    df[TIMESTAMP] = parse_timestamps(df[TIMESTAMP], source, plausible_dates=plausible_dates)

    for col in (TEAM, GPU_TYPE):
        missing = df[col].isna()
        text = df[col] if pd.api.types.infer_dtype(df[col], skipna=True) == "string" else df[col].astype(str)
        stripped = text.str.strip()   # Python's strip returns the same string when there is nothing to strip
        bad = _first_bad(missing | (stripped == ""))
        if bad is not None:
            raise UsageError(source, f"empty {col}", row=csv_row(bad), column=col,
                             fix=f"give every row a {col}")
        df[col] = stripped

    is_bool = df[GPUS].map(lambda v: isinstance(v, bool | np.bool_)) if df[GPUS].dtype == object else (
        pd.Series(pd.api.types.is_bool_dtype(df[GPUS]), index=df.index))
    bad = _first_bad(is_bool)
    if bad is not None:
        raise UsageError(source, f"gpus value {shown(df[GPUS].iloc[bad])} is a boolean, not a number of GPUs",
                         row=csv_row(bad), column=GPUS, fix="write the average GPUs in use in that hour, e.g. 12.5")
    gpus = pd.to_numeric(df[GPUS], errors="coerce")
    bad = _first_bad(gpus.isna() | ~np.isfinite(gpus.to_numpy(dtype=float, na_value=np.nan)))
    if bad is not None:
        raise UsageError(source, bad_value("gpus value", df[GPUS].iloc[bad], "is not a number"), row=csv_row(bad),
                         column=GPUS, fix="write the average GPUs in use in that hour, e.g. 12.5")
    bad = _first_bad(gpus < 0)
    if bad is not None:
        raise UsageError(source, f"gpus value {gpus.iloc[bad]} is negative", row=csv_row(bad), column=GPUS,
                         fix="GPU usage must be >= 0")
    bad = _first_bad(gpus > MAX_GPUS)
    if bad is not None:
        raise UsageError(source, f"gpus value {gpus.iloc[bad]:g} is above the plausible maximum of {MAX_GPUS:,.0f} "
                         "GPUs", row=csv_row(bad), column=GPUS,
                         fix="write the average GPUs in use in that hour (check the unit: GPUs, not GPU-seconds)")
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


def _escape(text: pd.Series) -> pd.Series:
    text = text.astype(str)
    if not (text.str.contains("%", regex=False).any() or text.str.contains(UID_SEP, regex=False).any()):
        return text
    return text.str.replace("%", "%25", regex=False).str.replace(UID_SEP, "%7C", regex=False)


def _unescape(text: pd.Series) -> pd.Series:
    if not text.str.contains("%", regex=False).any():
        return text
    return text.str.replace("%7C", UID_SEP, regex=False).str.replace("%25", "%", regex=False)


def escape_key(text: str) -> str:
    """One name as it appears inside a series id (``|`` and ``%`` percent-encoded)."""
    return str(text).replace("%", "%25").replace(UID_SEP, "%7C")


def series_id(team: pd.Series, gpu_type: pd.Series) -> pd.Series:
    """statsforecast ``unique_id`` for a (team, gpu_type) series: ``team|gpu_type`` with any ``|`` or ``%``
    inside either name percent-encoded, so :func:`split_uid` gives both names back exactly."""
    return _escape(team) + UID_SEP + _escape(gpu_type)


def to_long(usage: pd.DataFrame) -> pd.DataFrame:
    """Usage frame -> statsforecast long format ``unique_id, ds, y``."""
    return pd.DataFrame({UID: series_id(usage[TEAM], usage[GPU_TYPE]).to_numpy(),
                         DS: usage[TIMESTAMP].to_numpy(), Y: usage[GPUS].to_numpy(dtype=float)})


def split_uid(uid: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(team, gpu_type) of series ids made by :func:`series_id`."""
    parts = uid.astype(str).str.split(UID_SEP, n=1, expand=True, regex=False)
    return _unescape(parts[0]), _unescape(parts[1])


def split_key(uid: str) -> tuple[str, str]:
    """(team, gpu_type) of one series id made by :func:`series_id`."""
    team, gpu = str(uid).split(UID_SEP, 1)
    if "%" in uid:
        team, gpu = (t.replace("%7C", UID_SEP).replace("%25", "%") for t in (team, gpu))
    return team, gpu


def series_label(uid: str) -> str:
    """A series id as people read it: ``team / gpu_type`` (names unescaped)."""
    team, gpu = split_key(uid)
    return f"{team} / {gpu}"


def format_timestamp(ts: pd.Series) -> pd.Series:
    """Naive-UTC datetimes -> ISO 8601 strings with a ``Z`` suffix (the CSV contract)."""
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
