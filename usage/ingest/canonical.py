"""Canonical usage files (CSV or Parquet) -> validated usage frame, streamed through DuckDB.

Units: ``gpus`` is the average number of GPUs in use in the hour starting at ``timestamp``, i.e. the
GPU-hours of that hour (see :mod:`usage.schema`). The file already has the canonical columns
``timestamp, team, gpu_type, gpus`` (optionally ``project, instance_type, purchase_option, provider, region,
utilization, cost_usd``; other columns are ignored).

The file never becomes a pandas frame row by row: DuckDB reads it (CSV cells as text, so a bad cell is
reported with its row instead of failing the reader), checks every cell with the rules of
:func:`usage.schema.validate_usage` in one streaming pass, groups sub-hourly rows to hourly means,
fills the missing hours of each series with 0 GPUs and sorts, spilling to disk under the connection's
memory limit. Only the finished frame reaches Python, its text columns as shared category values, so
10 million rows take a few hundred MB. Errors name the file, the CSV line (header = line 1) or Parquet
row, the column and the fix.

Timestamps: ISO 8601 text (naive = UTC, offsets converted), a Parquet timestamp, or a plain number
read as Unix time with the unit its magnitude implies (:data:`usage.schema.EPOCH_UNIT_LIMITS`).
They must fall between :data:`~usage.schema.EARLIEST_TIMESTAMP` and
:data:`~usage.schema.LATEST_TIMESTAMP`; ``gpus`` must be a finite number in [0,
:data:`~usage.schema.MAX_GPUS`] (a boolean is refused, not read as 1).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from usage.ingest.readers import (
    IngestReport,
    first_in_file_order,
    read_error,
    short,
    sql_ident,
    sql_str,
    usage_report,
)
from usage.ingest.readers import scan_sql as _scan_sql
from usage.schema import (
    COST_USD,
    EARLIEST_TIMESTAMP,
    EPOCH_UNIT_LIMITS,
    GPU_TYPE,
    GPUS,
    INSTANCE_TYPE,
    LATEST_TIMESTAMP,
    MAX_GPUS,
    PROJECT,
    PROVIDER,
    PURCHASE_OPTION,
    REGION,
    REQUIRED_COLUMNS,
    TEAM,
    TIMESTAMP,
    UTILIZATION,
    UsageError,
    ValidationReport,
    bad_value,
    csv_row,
)

TEXT_OPTIONAL = (PROJECT, INSTANCE_TYPE, PURCHASE_OPTION, PROVIDER, REGION)
NUMBER_OPTIONAL = (UTILIZATION, COST_USD)
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")
MAX_FILL_FACTOR = 20
MAX_FILL_HOURS = 5_000_000
"""Gap filling may add at most ``MAX_FILL_FACTOR`` hours per usage row, or ``MAX_FILL_HOURS`` in all if that is
more: a series whose first and last hours lie decades apart is a timestamp mistake, not data to fill."""
BATCH_ROWS = 1_000_000


def _epoch(value: str) -> str:
    """SQL: a number of Unix seconds/ms/us/ns (by magnitude) -> naive UTC TIMESTAMP, NULL if absurd."""
    (s_lim, _), (ms_lim, _), (us_lim, _) = EPOCH_UNIT_LIMITS
    micros = (f"CASE WHEN abs({value}) < {s_lim:.0f} THEN {value} * 1e6 WHEN abs({value}) < {ms_lim:.0f} "
              f"THEN {value} * 1e3 WHEN abs({value}) < {us_lim:.0f} THEN {value} ELSE {value} / 1e3 END")
    return f"make_timestamp(TRY_CAST(round({micros}) AS BIGINT))"


def _timestamp_sql(ref: str, col_type: str) -> str:
    upper = col_type.upper()
    if upper.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"timezone('UTC', {ref})"
    if upper.startswith(("TIMESTAMP", "DATE")):
        return f"CAST({ref} AS TIMESTAMP)"
    if upper.startswith(NUMERIC_TYPES):
        return _epoch(f"CAST({ref} AS DOUBLE)")
    text = f"TRIM(CAST({ref} AS VARCHAR))"
    return (f"CASE WHEN regexp_full_match({text}, '[+-]?[0-9]+([.][0-9]*)?') "
            f"THEN {_epoch(f'TRY_CAST({text} AS DOUBLE)')} "
            f"ELSE timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) END")


def _number_sql(ref: str, col_type: str) -> str:
    if col_type.upper() == "BOOLEAN":
        return "CAST(NULL AS DOUBLE)"
    return f"TRY_CAST(TRIM(CAST({ref} AS VARCHAR)) AS DOUBLE)"


class _Plan:
    """The SQL of one canonical file: typed columns and the problem checks in validation order."""

    def __init__(self, columns: dict[str, str], known: bool) -> None:
        actual: dict[str, str] = {}
        for name in columns:
            actual.setdefault(str(name).strip(), name)
        self.actual = actual
        self.types = {k: columns[v] for k, v in actual.items()}

        def ref(name: str) -> str:
            return f"s.{sql_ident(actual[name])}"

        self.raw = {c: f"CAST({ref(c)} AS VARCHAR)" for c in (*REQUIRED_COLUMNS, *NUMBER_OPTIONAL) if c in actual}
        self.text_opt = [c for c in TEXT_OPTIONAL if c in actual]
        self.num_opt = [c for c in NUMBER_OPTIONAL if c in actual]
        select = {
            "ts": _timestamp_sql(ref(TIMESTAMP), self.types[TIMESTAMP]),
            TEAM: f"NULLIF(TRIM(CAST({ref(TEAM)} AS VARCHAR)), '')",
            GPU_TYPE: f"NULLIF(TRIM(CAST({ref(GPU_TYPE)} AS VARCHAR)), '')",
            GPUS: _number_sql(ref(GPUS), self.types[GPUS]),
            "gpus_text": f"lower(TRIM(CAST({ref(GPUS)} AS VARCHAR)))",
        }
        for c in self.text_opt:
            select[c] = f"NULLIF(TRIM(CAST({ref(c)} AS VARCHAR)), '')"
        for c in self.num_opt:
            select[c] = _number_sql(ref(c), self.types[c])
            select[f"{c}_text"] = f"NULLIF(TRIM(CAST({ref(c)} AS VARCHAR)), '')"
        self.expr = select
        self.select = ", ".join(f"{expr} AS {sql_ident(name)}" for name, expr in select.items())
        bool_gpus = ("TRUE" if self.types[GPUS].upper() == "BOOLEAN"
                     else "gpus_text IN ('true', 'false', 'yes', 'no')")
        lo, hi = sql_str(f"{EARLIEST_TIMESTAMP:%Y-%m-%d}"), sql_str(f"{LATEST_TIMESTAMP:%Y-%m-%d}")
        checks = [
            ("timestamp", TIMESTAMP, "ts IS NULL"),
            ("timestamp_range", TIMESTAMP, f"ts < TIMESTAMP {lo} OR ts >= TIMESTAMP {hi}"),
            ("team", TEAM, f"{TEAM} IS NULL"),
            ("gpu_type", GPU_TYPE, f"{GPU_TYPE} IS NULL"),
            ("gpus_bool", GPUS, bool_gpus),
            ("gpus_nan", GPUS, "gpus IS NULL OR isnan(gpus) OR isinf(gpus)"),
            ("gpus_negative", GPUS, "gpus < 0"),
            ("gpus_large", GPUS, f"gpus > {MAX_GPUS:.0f}"),
        ]
        if UTILIZATION in self.num_opt:
            checks.append(("utilization", UTILIZATION, "utilization_text IS NOT NULL AND (utilization IS NULL "
                           "OR isnan(utilization) OR utilization < 0 OR utilization > 1)"))
        if COST_USD in self.num_opt:
            checks.append(("cost_usd", COST_USD, "cost_usd_text IS NOT NULL AND (cost_usd IS NULL OR "
                           "isnan(cost_usd) OR isinf(cost_usd))"))
        if known:
            checks.append(("unknown_gpu", GPU_TYPE,
                           f"{GPU_TYPE} NOT IN (SELECT gpu_type FROM known_gpu_types)"))
        self.checks = checks


def _message(kind: str, raw: dict[str, object], known: list[str]) -> tuple[str, str]:
    """(message, fix) for the first row with problem ``kind``; ``raw`` holds its cells as text."""
    ts = raw.get(TIMESTAMP)
    if kind == "timestamp":
        return (bad_value("timestamp", ts, "cannot be parsed"),
                "use ISO 8601 hour starts such as 2025-01-01T13:00:00Z, or Unix seconds")
    if kind == "timestamp_range":
        when = raw.get("ts")
        seen = f" (read as {pd.Timestamp(when):%Y-%m-%d %H:%M} UTC)" if when is not None else ""
        return (f"timestamp {short(ts)!r}{seen} is outside {EARLIEST_TIMESTAMP:%Y}-{LATEST_TIMESTAMP.year - 1}",
                "write ISO 8601 times such as 2025-01-01T13:00:00Z; plain numbers are read as Unix seconds "
                "(or ms/us/ns by their size)")
    if kind in (TEAM, GPU_TYPE):
        return f"empty {kind}", f"give every row a {kind}"
    value = raw.get(GPUS)
    if kind == "gpus_bool":
        return (f"gpus value {short(value)!r} is a boolean, not a number of GPUs",
                "write the average GPUs in use in that hour, e.g. 12.5")
    if kind == "gpus_nan":
        finite = str(value).strip().lower().lstrip("+-") not in ("inf", "infinity", "nan")
        return (bad_value("gpus value", short(value) if value is not None else None,
                          "is not a number" if finite else "is not a finite number"),
                "write the average GPUs in use in that hour, e.g. 12.5 (a decimal point, not a comma)")
    if kind == "gpus_negative":
        return f"gpus value {short(value)} is negative", "GPU usage must be >= 0"
    if kind == "gpus_large":
        return (f"gpus value {short(value)} is above the plausible maximum of {MAX_GPUS:,.0f} GPUs",
                "write the average GPUs in use in that hour (check the unit: GPUs, not GPU-seconds)")
    if kind == "utilization":
        return (bad_value("utilization", short(raw.get(UTILIZATION)), "is outside 0-1"),
                "write utilisation as a fraction 0-1")
    if kind == "cost_usd":
        return (bad_value("cost_usd", short(raw.get(COST_USD)), "is not a number"),
                "write cost in USD, e.g. 21.96")
    examples = ", ".join(known[:6])
    return (f"gpu_type '{short(raw.get(GPU_TYPE))}' is not offered by any catalog instance",
            f"use a catalog gpu_model such as {examples}")


def _first_row(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, plan: _Plan, where: str,
               extra: str = "") -> tuple[int, str | None, dict[str, object]] | None:
    """(0-based row index in its file, file name or None, raw cells) of the first row meeting ``where``."""
    multi = len(files) > 1
    scan = _scan_sql(files, kind, with_filename=multi)
    over = "PARTITION BY filename" if multi else ""
    raws = ", ".join(f"{expr} AS {sql_ident('raw_' + c)}" for c, expr in plan.raw.items())
    file_expr = "s.filename" if multi else "NULL"
    sql = (f"SELECT * FROM (SELECT s.__rn AS __rn, {file_expr} AS __file, {raws}, {plan.select} {extra} "
           f"FROM (SELECT row_number() OVER ({over}) AS __rn, * FROM {scan}) AS s) "
           f"WHERE {where} ORDER BY __file NULLS FIRST, __rn LIMIT 1")
    found, names = first_in_file_order(con, sql)
    if found is None:
        return None
    row = dict(zip(names, found, strict=True))
    raw = {c: row[f"raw_{c}"] for c in plan.raw}
    raw["ts"] = row.get("ts")
    raw["__first"] = row.get("__first")
    return int(row["__rn"]) - 1, row["__file"], raw


def _raise_problem(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str, plan: _Plan,
                   problem: str, column: str, where: str, known: list[str]) -> None:
    found = _first_row(con, files, kind, plan, f"({where})")
    row, file_name, raw = (None, None, {}) if found is None else found
    message, fix = _message(problem, raw, known)
    line = None if row is None else (csv_row(row) if kind == "csv" else row + 1)
    raise UsageError(str(file_name) if file_name else source, message, row=line, column=column, fix=fix)


def _raise_duplicate(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str,
                     plan: _Plan) -> None:
    keys = ", ".join(plan.expr[c] for c in ("ts", TEAM, GPU_TYPE))
    part = "s.filename, " if len(files) > 1 else ""
    extra = f", min(s.__rn) OVER (PARTITION BY {part}{keys}) AS __first"
    found = _first_row(con, files, kind, plan, "__rn > __first", extra=extra)
    if found is None:  # the same key in two parts of a folder
        raise UsageError(source, "duplicate (timestamp, team, gpu_type) rows across the files of the folder",
                         column=TIMESTAMP, fix="keep one row per hour, team and gpu_type (sum them)")
    row, file_name, raw = found
    to_line = csv_row if kind == "csv" else (lambda i: i + 1)
    raise UsageError(str(file_name) if file_name else source,
                     f"duplicate (timestamp, team, gpu_type) ({pd.Timestamp(raw['ts']):%Y-%m-%dT%H:%M}Z, "
                     f"{short(str(raw[TEAM]).strip())}, {short(str(raw[GPU_TYPE]).strip())}) also on row "
                     f"{to_line(int(raw['__first']) - 1)}", row=to_line(row), column=TIMESTAMP,
                     fix="keep one row per hour, team and gpu_type (sum them)")


def _categories(con: duckdb.DuckDBPyConnection, column: str) -> np.ndarray:
    values = [r[0] for r in con.execute(f"SELECT DISTINCT {sql_ident(column)} FROM __g "
                                        f"WHERE {sql_ident(column)} IS NOT NULL ORDER BY 1").fetchall()]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def load_canonical(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str,
                   columns: dict[str, str], *,
                   known_gpu_types: set[str] | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Read, validate, aggregate and gap-fill a canonical usage file inside DuckDB.

    Args:
        con: DuckDB connection (see :func:`usage.ingest.readers.connect`).
        files: the file (or the parts of one data set).
        kind: ``csv`` or ``parquet``.
        source: file name for messages.
        columns: column name -> DuckDB type of the file.
        known_gpu_types: GPU models the catalog offers; ``None`` skips that check.

    Returns:
        (usage frame sorted by team, gpu_type, timestamp, report); every row of the file counts as a GPU row.

    Raises:
        UsageError: unreadable file or a validation error naming file, row and column.
    """
    stripped = [str(c).strip() for c in columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in stripped]
    if missing:
        raise UsageError(source, f"missing column '{missing[0]}'", column=missing[0],
                         fix=f"the header must contain {', '.join(REQUIRED_COLUMNS)}")
    known = sorted(known_gpu_types) if known_gpu_types is not None else []
    if known_gpu_types is not None:
        con.register("__known_src", pd.DataFrame({"gpu_type": known}, dtype=object))
        con.execute("CREATE OR REPLACE TEMP TABLE known_gpu_types AS SELECT * FROM __known_src")
        con.unregister("__known_src")
    plan = _Plan(columns, known_gpu_types is not None)
    scan = _scan_sql(files, kind)
    typed = f"(SELECT {plan.select} FROM {scan} AS s)"
    counts = ", ".join(f"count_if({cond})" for _, _, cond in plan.checks)
    try:
        stats = con.execute(f"SELECT count(*), {counts} FROM {typed}").fetchone()
    except duckdb.Error as error:
        raise read_error(error, kind, source) from None
    rows_in = int(stats[0])
    if rows_in == 0:
        raise UsageError(source, "no data rows", fix="provide at least one hour of usage")
    for (problem, column, cond), n in zip(plan.checks, stats[1:], strict=True):
        if n:
            _raise_problem(con, files, kind, source, plan, problem, column, cond, known)

    aggs = ["avg(gpus) AS gpus", "count(*) AS n", "bool_or(ts <> date_trunc('hour', ts)) AS sub"]
    aggs += [f"any_value({sql_ident(c)}) AS {sql_ident(c)}" for c in plan.text_opt]
    if UTILIZATION in plan.num_opt:
        aggs.append(f"avg({UTILIZATION}) AS {UTILIZATION}")
    if COST_USD in plan.num_opt:
        aggs.append(f"sum({COST_USD}) AS {COST_USD}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __g AS SELECT date_trunc('hour', ts) AS hour, team, gpu_type, "
                f"{', '.join(aggs)} FROM {typed} GROUP BY ALL")
    n_groups, n_sub, max_n = con.execute(
        "SELECT count(*), COALESCE(sum(CASE WHEN sub THEN n END), 0), max(n) FROM __g").fetchone()
    n_sub = int(n_sub)
    if n_sub == 0 and int(max_n) > 1:
        _raise_duplicate(con, files, kind, source, plan)

    spans = con.execute("SELECT team, gpu_type, min(hour) AS lo, max(hour) AS hi, "
                        "date_diff('hour', min(hour), max(hour)) + 1 AS hours FROM __g GROUP BY ALL").df()
    spans = spans.sort_values(["team", "gpu_type"], kind="stable").reset_index(drop=True)
    hours = spans["hours"].to_numpy(dtype=np.int64)
    total = int(hours.sum())
    filled = total - int(n_groups)
    if filled > max(MAX_FILL_FACTOR * int(n_groups), MAX_FILL_HOURS):
        widest = spans.iloc[int(np.argmax(hours))]
        raise UsageError(source, f"series {short(widest['team'])} / {short(widest['gpu_type'])} spans "
                         f"{widest['hours']:,} hours ({widest['lo']:%Y-%m-%d} to {widest['hi']:%Y-%m-%d}); "
                         f"filling the gaps of all series would add {filled:,} empty hours to {int(n_groups):,}",
                         column=TIMESTAMP, fix="check the timestamps of that series (a wrong year or unit)")
    # Output position of every hour: series in (team, gpu_type) order, hours in time order. Rows of __g
    # are placed by a join with this small table, so no sort of the whole data is needed.
    offset = np.concatenate([[0], np.cumsum(hours)[:-1]]).astype(np.int64)
    con.register("__spans_src", pd.DataFrame({"team": spans["team"], "gpu_type": spans["gpu_type"],
                                              "lo": spans["lo"], "off": offset}))
    con.execute("CREATE OR REPLACE TEMP TABLE __spans AS SELECT * FROM __spans_src")
    con.unregister("__spans_src")

    cats = {c: _categories(con, c) for c in plan.text_opt}
    joins, outs = [], []
    for c in plan.text_opt:
        table = f"__cat_{c}"
        con.register(f"{table}_src", pd.DataFrame({"v": cats[c], "code": np.arange(len(cats[c]), dtype=np.int32)}))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}_src")
        con.unregister(f"{table}_src")
        joins.append(f"LEFT JOIN {table} ON {table}.v = g.{sql_ident(c)}")
        outs.append(f"COALESCE({table}.code, -1) AS {sql_ident(c)}")
    outs += [f"g.{c} AS {c}" for c in plan.num_opt]
    sql = (f"SELECT sp.off + date_diff('hour', sp.lo, g.hour) AS pos, g.gpus AS gpus"
           f"{''.join(', ' + o for o in outs)} FROM __g AS g JOIN __spans AS sp "
           f"ON sp.team = g.team AND sp.gpu_type = g.gpu_type {' '.join(joins)}")
    data = _scatter(con, sql, total, [GPUS, *plan.text_opt, *plan.num_opt])
    con.execute("DROP TABLE IF EXISTS __g")

    # hour i of the output is lo + (i - offset) hours of its series; built in place (int64 ns)
    first_hour = spans["lo"].to_numpy(dtype="datetime64[h]").astype(np.int64)
    stamp = np.arange(total, dtype=np.int64)
    stamp += np.repeat(first_hour - offset, hours)
    stamp *= 3_600_000_000_000
    data[TIMESTAMP] = stamp.view("datetime64[ns]")
    for c in (TEAM, GPU_TYPE):
        values = np.empty(len(spans), dtype=object)
        values[:] = spans[c].tolist()
        data[c] = np.repeat(values, hours)
    for c in plan.text_opt:
        codes = data.pop(c)
        values = cats[c][np.clip(codes, 0, None)] if len(cats[c]) else np.full(total, None, dtype=object)
        if (codes < 0).any():
            values[codes < 0] = np.nan
        data[c] = values
    order = [TIMESTAMP, TEAM, GPU_TYPE, GPUS, *[c for c in (*TEXT_OPTIONAL, *NUMBER_OPTIONAL)
                                                   if c in plan.text_opt or c in plan.num_opt]]
    usage = pd.DataFrame({c: data.pop(c) for c in order}, copy=False)
    notes = []
    if n_sub:
        notes.append(f"{n_sub} sub-hourly rows aggregated to hourly means of GPUs in use")
    if filled:
        notes.append(f"{filled} missing hours filled with 0 GPUs")
    validation = ValidationReport(
        rows_in=rows_in, rows_out=len(usage), series=len(spans),
        start=usage[TIMESTAMP].min(), end=usage[TIMESTAMP].max(), aggregated_subhourly_rows=n_sub,
        gap_hours_filled=filled, notes=tuple(notes))
    return usage, usage_report(source, "canonical", rows_in, rows_in, usage, validation)


def _scatter(con: duckdb.DuckDBPyConnection, sql: str, total: int, names: list[str]) -> dict[str, np.ndarray]:
    """Stream a query's rows (``pos`` first) into arrays of ``total`` hours, one Arrow batch at a time.

    Hours no row reaches keep their fill: 0 GPUs, no value (NaN) for numbers, code -1 for text."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == GPUS:
            out[name] = np.zeros(total)
        elif name in NUMBER_OPTIONAL:
            out[name] = np.full(total, np.nan)
        else:
            out[name] = np.full(total, -1, dtype=np.int32)
    for batch in con.sql(sql).to_arrow_reader(BATCH_ROWS):
        pos = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)
        for i, name in enumerate(names, start=1):
            col = batch.column(i)
            if out[name].dtype == np.int32:
                out[name][pos] = col.fill_null(-1).to_numpy(zero_copy_only=False)
            else:
                out[name][pos] = col.to_numpy(zero_copy_only=False).astype(float)
    return out
