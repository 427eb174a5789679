"""Plumbing shared by the billing adapters: files, DuckDB scans, the GPU instance table and the report.

Units: billing rows carry instance-hours (``ConsumedQuantity`` in FOCUS, ``line_item_usage_amount`` in
AWS CUR). An adapter multiplies them by the GPUs per instance of the row's instance type, so every
quantity past this module is **GPU-hours**. Summed over the one-hour bucket that starts at a
timestamp, GPU-hours equal the average number of GPUs in use in that hour, which is the ``gpus``
column of the canonical usage frame (see :mod:`usage.schema`).

Large exports (millions of line items) never reach Python row by row: :func:`aggregate_usage` runs one
DuckDB query that reads the file, matches instance types against a small table built from the
catalog mapping, extracts the team tag and groups to (hour, team, GPU type, instance type, purchase
option). Only that grouped result, a few thousand rows, becomes a pandas frame.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from usage.io import UTF8_FIX, decode_text
from usage.schema import (
    COST_USD,
    GPU_TYPE,
    GPUS,
    INSTANCE_TYPE,
    NULL_TEXTS,
    PURCHASE_OPTION,
    TEAM,
    TIMESTAMP,
    UNALLOCATED_TEAM,
    UsageError,
    ValidationReport,
    csv_row,
    validate_usage,
)

FORMATS = ("canonical", "focus", "cur", "gcp", "cost_explorer")
FORMAT_LABELS = {"canonical": "canonical usage", "focus": "FOCUS billing export",
                 "cur": "AWS Cost and Usage Report", "gcp": "GCP billing export", "cost_explorer": "AWS Cost Explorer"}

# Purchase options written by the billing adapters. A usage line item says that a commitment covered
# it, not which term or payment option the commitment has, so commitment-covered usage gets the
# generic names below rather than the catalog's ``reserved_1y_no_upfront`` style names.
ON_DEMAND = "on_demand"
SPOT = "spot"
RESERVED = "reserved"
SAVINGS_PLAN = "savings_plan"

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES

USAGE_TYPE_REGEX = r"^(?:[A-Za-z0-9]+-)?[A-Za-z]*Usage:([A-Za-z0-9.\-]+)$"
"""AWS usage types of instance-hours: ``BoxUsage:p4d.24xlarge``, ``USE2-SpotUsage:g5.xlarge``,
``DedicatedUsage:...``. Other usage types that name an instance type (``EBSOptimized:``,
``CPUCredits:``, ``UnusedBox:`` capacity reservations, ``HeavyUsage:`` RI fees) are not GPU compute
usage and do not match, except ``HeavyUsage``, which only appears on fee line items that the adapters
drop by charge type first."""

GPU_INSTANCE_REGEX = (r"^(?:(?:p[0-9]+[a-z]*(?:-[a-z0-9]+)?|g[0-9]+[a-z]*|gr[0-9]+[a-z]*|trn[0-9]+[a-z]*"
                      r"|inf[0-9]+[a-z]*|dl[0-9]+[a-z]*)\.[0-9]*[a-z0-9]+"
                      r"|(?:a2|a3|a4|a4x|g2|g4)-[a-z0-9-]+|Standard_N[A-Za-z0-9_]+)$")
"""Names that are GPU or accelerator instance types even when the catalog does not list them: AWS GPU and
accelerator families (p*, g*, gr*, trn*, inf*, dl*), GCP accelerator-optimised machine types (a2-, a3-, a4-,
g2-, g4-) and Azure N-series sizes (``Standard_N...``). Usage rows naming such a type that the catalog lacks
are reported by name and row count (:attr:`IngestReport.unknown_instance_types`), never dropped silently."""


@dataclass(frozen=True)
class IngestReport:
    """What an ingestion read, kept and noticed; ``lines()`` is what the CLI prints.

    Attributes:
        source: the file (or Cost Explorer period) read.
        format: ``canonical``, ``focus``, ``cur`` or ``cost_explorer``.
        rows_read: data rows in the file (line items or Cost Explorer groups).
        gpu_rows_kept: rows that were GPU compute usage and went into the usage frame.
        gpu_hours: GPU-hours in the returned usage frame.
        untagged_gpu_hours: GPU-hours without the team tag (team ``unallocated``).
        validation: the report of :func:`usage.schema.validate_usage`.
        notes: what the adapter assumed or dropped, one sentence each.
        unknown_instance_types: (instance type, usage rows) of GPU instance types (:data:`GPU_INSTANCE_REGEX`)
            or GPU models that the file uses but the catalog lacks; their usage is not in the frame.
    """

    source: str
    format: str
    rows_read: int
    gpu_rows_kept: int
    gpu_hours: float
    untagged_gpu_hours: float
    validation: ValidationReport
    notes: tuple[str, ...] = field(default_factory=tuple)
    unknown_instance_types: tuple[tuple[str, int], ...] = ()

    @property
    def untagged_share(self) -> float:
        """Share of GPU-hours without a team tag (0 when there are no GPU-hours)."""
        return self.untagged_gpu_hours / self.gpu_hours if self.gpu_hours > 0 else 0.0

    def lines(self) -> list[str]:
        """Human-readable summary lines: rows read, GPU rows kept, untagged share, notes."""
        v = self.validation
        out = [f"{self.source}: {FORMAT_LABELS.get(self.format, self.format)}",
               f"rows read: {self.rows_read:,}",
               f"GPU compute rows kept: {self.gpu_rows_kept:,}",
               f"GPU-hours: {self.gpu_hours:,.1f} in {v.series} team x GPU series"
               + (f", {v.start:%Y-%m-%d %H:%M} to {v.end:%Y-%m-%d %H:%M} UTC" if v.start is not None else ""),
               f"untagged share: {self.untagged_share:.1%} of GPU-hours ({self.untagged_gpu_hours:,.1f}) "
               f"shown as team '{UNALLOCATED_TEAM}'"]
        out += [f"note: {n}" for n in (*self.notes, *v.notes)]
        out += [unknown_types_warning(self.unknown_instance_types)] if self.unknown_instance_types else []
        return out


def unknown_types_warning(unknown: tuple[tuple[str, int], ...] | list[tuple[str, int]]) -> str:
    """One ``warning:`` line naming the GPU instance types (or GPU models) missing from the catalog, with rows."""
    total = sum(n for _, n in unknown)
    names = ", ".join(f"{name} ({n:,} rows)" for name, n in unknown)
    return (f"warning: {total:,} GPU usage rows name types the catalog lacks and were not counted: {names} "
            "(fix: gpuplan catalog refresh, or a --catalog that lists them)")


def usage_report(source: str, fmt: str, rows_read: int, gpu_rows_kept: int, usage: pd.DataFrame,
                 validation: ValidationReport, untagged_gpu_hours: float | None = None,
                 notes: list[str] | tuple[str, ...] = (),
                 unknown_instance_types: tuple[tuple[str, int], ...] = ()) -> IngestReport:
    """Build the report from a validated usage frame (GPU-hours = sum of hourly ``gpus``)."""
    gpu_hours = float(usage[GPUS].sum())
    if untagged_gpu_hours is None:
        untagged_gpu_hours = float(usage.loc[usage[TEAM] == UNALLOCATED_TEAM, GPUS].sum())
    return IngestReport(source=source, format=fmt, rows_read=int(rows_read), gpu_rows_kept=int(gpu_rows_kept),
                        gpu_hours=gpu_hours, untagged_gpu_hours=float(untagged_gpu_hours),
                        validation=validation, notes=tuple(notes),
                        unknown_instance_types=tuple(unknown_instance_types))


# --- files ------------------------------------------------------------------------------------------

def file_kind(path: Path, source: str) -> str:
    """``csv`` or ``parquet`` from the file name; raise UsageError for anything else."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    suffix = "".join(path.suffixes[-2:]) or "(none)"
    raise UsageError(source, f"unsupported file type '{suffix}'",
                     fix="give a .csv, .csv.gz, .parquet or .pq file, or a folder of them")


def input_files(path: str | Path) -> tuple[list[Path], str]:
    """Resolve a file or a folder of export parts to (files, kind); raise UsageError if unusable."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise UsageError(source, "file not found", fix="check the path")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and p.name.lower().endswith(SUPPORTED_SUFFIXES))
        if not files:
            raise UsageError(source, "folder holds no .csv, .csv.gz, .parquet or .pq files",
                             fix="point at an export file or the folder of its parts")
        kinds = {f: file_kind(f, str(f)) for f in files}
        if len(set(kinds.values())) > 1:
            first_csv = next(f for f, k in kinds.items() if k == "csv")
            first_pq = next(f for f, k in kinds.items() if k == "parquet")
            raise UsageError(source, f"folder mixes CSV and Parquet files ({first_csv.name} is CSV, "
                             f"{first_pq.name} is Parquet)", fix="keep one export (one format) per folder")
        return files, next(iter(kinds.values()))
    kind = file_kind(path, source)
    if path.stat().st_size == 0:
        raise UsageError(source, "file is empty", fix="export the data again; the file has no header or rows")
    return [path], kind


def sql_str(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def literal_path(path: Path | str) -> str:
    """A file path as DuckDB must be given it to read exactly that file: its glob characters
    (``*``, ``?``, ``[``, ``{``) are bracketed, so ``x*.csv`` reads the file named ``x*.csv`` only."""
    return re.sub(r"([*?\[{])", r"[\1]", str(path))


def scan_sql(files: list[Path], kind: str, *, with_filename: bool = False) -> str:
    """DuckDB table expression reading the files. CSV columns are all read as text and cast in SQL,
    so a bad cell becomes NULL that the adapters report with its row instead of a reader error; the
    delimiter (``,``, ``;``, tab, ``|``) is detected, and an empty cell or a literal ``NULL`` is no
    value. Every path is literal (never a glob)."""
    names = "[" + ", ".join(sql_str(literal_path(f)) for f in files) + "]"
    extra = ", filename=true" if with_filename else ""
    if kind == "csv":
        nulls = "[" + ", ".join(sql_str(t) for t in ("", *NULL_TEXTS)) + "]"
        return (f"read_csv({names}, header=true, all_varchar=true, union_by_name=true, nullstr={nulls}, "
                f"encoding='utf-8'{extra})")
    return f"read_parquet({names}, union_by_name=true{extra})"


MEMORY_LIMIT = "256MB"
"""DuckDB's working memory while reading a file; larger sorts and groupings spill to a private temporary
folder, so ingesting 10 million rows stays under 1 GB of process memory (see docs/benchmarks.md)."""


def connect(temp_dir: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that reads naive timestamps as UTC, with a bounded working memory
    (:data:`MEMORY_LIMIT`) that spills to ``temp_dir`` (a private folder the caller removes)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = {sql_str(MEMORY_LIMIT)}")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = {sql_str(str(temp_dir))}")
    return con


@dataclass(frozen=True)
class Export:
    """An export opened for reading: its DuckDB connection, files, file kind, name for messages and columns."""

    con: duckdb.DuckDBPyConnection
    files: list[Path]
    kind: str
    source: str
    columns: dict[str, str]


@contextmanager
def open_export(path: str | Path, prefix: str) -> Iterator[Export]:
    """Open a usage or billing file (or a folder of its parts) on a private DuckDB connection that spills to a
    temporary folder named with ``prefix``; both are closed and removed on exit.

    Raises:
        UsageError: unreadable file or header (one line: file, fix).
    """
    files, kind = input_files(path)
    scratch = tempfile.TemporaryDirectory(prefix=prefix)
    con = connect(scratch.name)
    try:
        yield Export(con, files, kind, str(path), read_schema(con, files, kind, str(path)))
    finally:
        con.close()
        scratch.cleanup()


def first_in_file_order(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[tuple | None, list[str]]:
    """The first row of ``sql`` and its column names, run single-threaded with insertion order kept, so a
    ``row_number()`` over the scan follows the file (for naming the first bad row). The connection's settings
    are those of :func:`connect` again afterwards."""
    con.execute("SET threads = 1")
    con.execute("SET preserve_insertion_order = true")
    try:
        cur = con.execute(sql)
        return cur.fetchone(), [d[0] for d in cur.description]
    finally:
        con.execute("RESET threads")
        con.execute("SET preserve_insertion_order = false")


def duck_error_text(error: Exception) -> str:
    """First line of a DuckDB error without its class prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^[A-Za-z ]+Error: ", "", text)


def read_error(error: Exception, kind: str, source: str) -> UsageError:
    """The UsageError for a DuckDB error while reading a file (an encoding problem is named as such)."""
    text = duck_error_text(error)
    if "unicode" in str(error).lower() or "utf-8" in str(error).lower():
        line = re.search(r"Line: (\d+)", str(error))
        return UsageError(source, "file is not UTF-8 text (it has bytes that are not UTF-8; probably Latin-1 "
                          "or Windows-1252)", row=int(line.group(1)) if line else None, fix=UTF8_FIX)
    return UsageError(source, f"cannot read {kind.upper()} file: {text}",
                      fix=f"check that the file is a complete {kind.upper()} export")


HEAD_BYTES = 1 << 16


def _head_bytes(path: Path, size: int = HEAD_BYTES) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(size)
    except (OSError, EOFError, gzip.BadGzipFile):
        return b""  # DuckDB reports unreadable files with its own message


def check_text(path: Path) -> None:
    """Refuse a CSV file whose start is not UTF-8 text, naming the encoding it appears to have and the fix
    (:func:`usage.io.decode_text`; DuckDB's own check covers the rest of the file)."""
    head = _head_bytes(path, HEAD_BYTES)
    if len(head) == HEAD_BYTES and b"\n" in head:
        head = head[:head.rindex(b"\n") + 1]  # never judge a character cut at the end of the sample
    decode_text(head, str(path))


def csv_header(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """The header names of a CSV file as written (duplicates kept), with the delimiter DuckDB detects."""
    try:
        found = con.execute("SELECT Delimiter, Quote FROM sniff_csv(?, header=true, all_varchar=true)",
                            [literal_path(path)]).fetchone()
    except duckdb.Error:
        return []
    delim = found[0] if found and found[0] and len(found[0]) == 1 else ","
    quote = found[1] if found and found[1] and len(found[1]) == 1 else '"'
    text = _head_bytes(path).decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next(csv.reader(io.StringIO(text), delimiter=delim, quotechar=quote), [])
    return [c.strip() for c in first]


def check_header(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a CSV header that names a column twice (which one would be read is a guess)."""
    names = csv_header(con, path)
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name and name in seen:
            raise UsageError(str(path), f"column '{short(name)}' appears twice in the header (columns "
                             f"{seen[name]} and {i})", row=1, column=short(name),
                             fix="keep one column of each name")
        seen.setdefault(name, i)


def short(text: object, limit: int = 40) -> str:
    """Text cut to ``limit`` characters with an ellipsis, for messages that quote file content."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_schema(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str) -> dict[str, str]:
    """Column name -> DuckDB type of the files; raise UsageError if they cannot be read.

    CSV files are first checked for an encoding other than UTF-8 and for duplicate header names; the
    parts of a folder must all have the same format (see :func:`check_same_format`)."""
    if kind == "csv":
        for path in files:
            check_text(path)
            check_header(con, path)
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {scan_sql(files, kind)}").fetchall()
    except duckdb.Error as error:
        raise read_error(error, kind, source) from None
    return {str(r[0]): str(r[1]) for r in rows}


def file_columns(con: duckdb.DuckDBPyConnection, path: Path, kind: str) -> list[str]:
    """Column names of one file."""
    try:
        return [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {scan_sql([path], kind)}").fetchall()]
    except duckdb.Error as error:
        raise read_error(error, kind, str(path)) from None


def normalize_name(name: str) -> str:
    """``lineItem/UsageStartDate`` and ``line_item_usage_start_date`` -> ``line_item_usage_start_date``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name).strip())
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def sql_ref(name: str | None) -> str:
    """SQL for column ``name`` of the scanned source ``s`` (``NULL`` when the export lacks it)."""
    return f"s.{sql_ident(name)}" if name else "NULL"


def find_column(columns: Mapping[str, str] | list[str], *candidates: str) -> str | None:
    """First actual column matching a candidate name, compared after :func:`normalize_name`."""
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(normalize_name(c), c)
    for cand in candidates:
        hit = by_norm.get(normalize_name(cand))
        if hit is not None:
            return hit
    return None


# --- SQL building blocks ---------------------------------------------------------------------------

def as_text(expr: str) -> str:
    """Trimmed text of a column, NULL when empty."""
    return f"NULLIF(TRIM(CAST({expr} AS VARCHAR)), '')"


def as_double(expr: str) -> str:
    return f"TRY_CAST({expr} AS DOUBLE)"


def as_timestamptz(expr: str) -> str:
    return f"TRY_CAST({expr} AS TIMESTAMPTZ)"


def usage_type_instance(expr: str) -> str:
    """Instance type named in an AWS usage type (``USE2-BoxUsage:g5.xlarge`` -> ``g5.xlarge``), else NULL."""
    return f"NULLIF(regexp_extract(CAST({expr} AS VARCHAR), {sql_str(USAGE_TYPE_REGEX)}, 1), '')"


def keyed_value(expr: str, col_type: str, keys: list[str]) -> tuple[str, str]:
    """Value of the first present key in a key-value column, and a "malformed" flag expression.

    The column may be JSON object text (CSV exports), a MAP (Parquet exports) or a STRUCT.

    Returns:
        (value expression, boolean expression that is true when non-empty text is not valid JSON).
    """
    keys = list(dict.fromkeys(k for k in keys if k))
    upper = col_type.upper()
    if upper.startswith("MAP("):
        # element_at returns a list in every DuckDB version (map[key] became a scalar only in 1.2+)
        parts = [f"NULLIF(TRIM(CAST(element_at({expr}, {sql_str(k)})[1] AS VARCHAR)), '')" for k in keys]
        return f"COALESCE({', '.join(parts)})", "FALSE"
    if upper.startswith("STRUCT("):
        expr = f"CAST(to_json({expr}) AS VARCHAR)"
        upper = "VARCHAR"
    text = f"CAST({expr} AS VARCHAR)"
    paths = ["$." + '"' + k.replace('"', '\\"') + '"' for k in keys]
    parts = [f"NULLIF(TRIM(json_extract_string({text}, {sql_str(p)})), '')" for p in paths]
    value = f"CASE WHEN json_valid({text}) THEN COALESCE({', '.join(parts)}) END"
    bad = f"(NULLIF(TRIM({text}), '') IS NOT NULL AND NOT json_valid({text}))"
    return value, bad


def register_instances(con: duckdb.DuckDBPyConnection, instance_gpus: Mapping[str, tuple[str, float]]) -> int:
    """Create table ``gpu_instances(instance_type, gpu_model, gpu_count)``; return its row count."""
    rows = [(str(k), str(v[0]), float(v[1])) for k, v in instance_gpus.items()
            if v is not None and v[1] is not None and np.isfinite(float(v[1])) and float(v[1]) > 0]
    frame = pd.DataFrame(rows, columns=["instance_type", "gpu_model", "gpu_count"])
    con.register("gpu_instances_src", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE gpu_instances AS SELECT DISTINCT ON (instance_type) "
                "instance_type, gpu_model, gpu_count FROM gpu_instances_src")
    con.unregister("gpu_instances_src")
    return len(rows)


def require_instances(instance_gpus: Mapping[str, tuple[str, float]] | None, fmt: str) -> Mapping:
    if not instance_gpus:
        raise ValueError("instance_gpus (instance_type -> (gpu_model, gpus per instance)) is required to "
                         f"read {FORMAT_LABELS.get(fmt, fmt)} files; pass Catalog.instance_gpus()")
    return instance_gpus


@dataclass(frozen=True)
class RowSpec:
    """SQL expressions (over the scan alias ``s``) that turn one billing line item into GPU usage.

    Attributes:
        start: TIMESTAMPTZ start of the charge period.
        start_column: column named in errors about ``start``.
        end: TIMESTAMPTZ end of the charge period, or None (every row is one hour).
        quantity: instance-hours as DOUBLE.
        quantity_column: column named in errors about ``quantity``.
        is_usage: boolean, true for compute usage line items (before instance matching).
        instance_candidates: text expressions that may hold the instance type, tried in order.
        team: text of the team tag, NULL when untagged.
        tags_bad: boolean, true when the tag cell is malformed.
        tags_column: column named in errors about ``tags_bad``.
        option: purchase option text.
        cost: DOUBLE cost in USD, or None.
    """

    start: str
    start_column: str
    end: str | None
    quantity: str
    quantity_column: str
    is_usage: str
    instance_candidates: tuple[str, ...]
    team: str
    tags_bad: str
    tags_column: str | None
    option: str
    cost: str | None


@dataclass(frozen=True)
class Aggregate:
    """The hourly GPU usage of a billing file before validation, and its counts."""

    usage: pd.DataFrame
    rows_read: int
    gpu_rows_kept: int
    untagged_gpu_hours: float
    usage_rows: int
    multi_hour_rows: int
    option_hours: dict[str, float]
    unknown_types: tuple[tuple[str, int], ...] = ()


def _base_sql(scan: str, spec: RowSpec, *, extra: str = "", row_number_over: str | None = None) -> str:
    """Per-line-item SELECT; ``row_number_over`` adds the file row number ``__rn`` (error path)."""
    joins = []
    itype, model, count = [], [], []
    for i in range(len(spec.instance_candidates)):
        alias = f"gi{i}"
        joins.append(f"LEFT JOIN gpu_instances AS {alias} ON {alias}.instance_type = s.__cand{i}")
        itype.append(f"{alias}.instance_type")
        model.append(f"{alias}.gpu_model")
        count.append(f"{alias}.gpu_count")
    end = spec.end or "NULL"
    cost = spec.cost or "NULL"
    source = scan
    if row_number_over is not None:
        source = f"(SELECT row_number() OVER ({row_number_over}) AS __rn, * FROM {scan})"
    # each instance-type candidate is computed once: joined to the catalog table, and kept as text so a GPU type
    # the catalog lacks can be named (raw_itype)
    cands = ", ".join(f"CAST(({c}) AS VARCHAR) AS __cand{i}" for i, c in enumerate(spec.instance_candidates))
    source = f"(SELECT s.*, {cands} FROM {source} AS s)"
    raw = ", ".join(f"s.__cand{i}" for i in range(len(spec.instance_candidates)))
    return f"""
        SELECT {extra}
            {spec.start} AS ts, {end} AS te, {spec.quantity} AS qty, {spec.team} AS team_raw,
            COALESCE({spec.tags_bad}, FALSE) AS tags_bad, COALESCE({spec.is_usage}, FALSE) AS is_usage,
            COALESCE({', '.join(itype)}) AS itype, COALESCE({', '.join(model)}) AS gpu_model,
            COALESCE({', '.join(count)}) AS gpu_count, {spec.option} AS opt, CAST({cost} AS DOUBLE) AS cost,
            COALESCE({raw}) AS raw_itype
        FROM {source} AS s
        {' '.join(joins)}
    """


def _problem_sql() -> str:
    return ("CASE WHEN ts IS NULL THEN 'start' WHEN qty IS NULL THEN 'quantity' "
            "WHEN tags_bad THEN 'tags' END")


def aggregate_usage(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str,
                    spec: RowSpec) -> Aggregate:
    """Run the grouping query of a billing file and spread it to hourly GPU usage.

    Every line item that is compute usage of a GPU instance type contributes
    ``quantity x GPUs per instance`` GPU-hours. A line item whose charge period spans several hours
    (daily or monthly exports) is spread evenly over those hours.

    Raises:
        UsageError: a GPU usage row with an unreadable start time, quantity or tag cell.
    """
    scan = scan_sql(files, kind)
    keep = "(is_usage AND itype IS NOT NULL)"
    n_hours = ("CASE WHEN te IS NOT NULL AND ts IS NOT NULL AND te > ts "
               "THEN GREATEST(1, CAST(ceil(date_diff('second', ts, te) / 3600.0) AS BIGINT)) ELSE 1 END")
    sql = f"""
        WITH base AS ({_base_sql(scan, spec)}),
        flagged AS (
            SELECT *, {keep} AS keep, CASE WHEN {keep} THEN {_problem_sql()} END AS problem FROM base
        )
        SELECT
            keep, is_usage, problem,
            CASE WHEN keep AND problem IS NULL THEN date_trunc('hour', timezone('UTC', ts)) END AS hour,
            CASE WHEN keep AND problem IS NULL THEN {n_hours} END AS n_hours,
            CASE WHEN keep THEN COALESCE(team_raw, {sql_str(UNALLOCATED_TEAM)}) END AS team,
            CASE WHEN keep THEN team_raw IS NULL END AS untagged,
            CASE WHEN keep THEN gpu_model END AS gpu_type,
            CASE WHEN keep THEN itype END AS instance_type,
            CASE WHEN keep THEN opt END AS purchase_option,
            count(*) AS n_rows,
            sum(CASE WHEN keep AND problem IS NULL THEN qty * gpu_count END) AS gpu_hours,
            sum(CASE WHEN keep AND problem IS NULL THEN cost END) AS cost,
            count(CASE WHEN keep AND problem IS NULL THEN cost END) AS n_cost,
            CASE WHEN is_usage AND itype IS NULL AND COALESCE(regexp_full_match(raw_itype,
                 {sql_str(GPU_INSTANCE_REGEX)}), FALSE) THEN raw_itype END AS unknown_itype
        FROM flagged
        GROUP BY ALL
    """
    try:
        groups = shared_text_frame(con.sql(sql).to_arrow_table())
    except duckdb.Error as error:
        raise read_error(error, kind, source) from None

    keep = groups["keep"].to_numpy(dtype=bool)
    problems = set(groups.loc[keep, "problem"].dropna().astype(str))
    for problem in ("start", "quantity", "tags"):
        if problem in problems:
            _raise_first_problem(con, files, kind, source, spec, problem)

    rows_read = int(groups["n_rows"].sum())
    usage_rows = int(groups.loc[groups["is_usage"].astype(bool), "n_rows"].sum())
    unknown = groups.dropna(subset=["unknown_itype"]).groupby("unknown_itype")["n_rows"].sum()
    unknown_types = tuple((str(k), int(v)) for k, v in sorted(unknown.items(), key=lambda kv: (-kv[1], kv[0])))
    kept = groups.loc[keep, ["hour", "n_hours", "team", "untagged", "gpu_type", "instance_type", "purchase_option",
                             "n_rows", "gpu_hours", "cost", "n_cost"]].reset_index(drop=True)
    del groups
    if kept.empty:
        return Aggregate(pd.DataFrame(), rows_read, 0, 0.0, usage_rows, 0, {}, unknown_types)

    kept["n_hours"] = kept["n_hours"].astype("int64")
    kept["gpu_hours"] = kept["gpu_hours"].astype(float)
    multi_hour_rows = int(kept.loc[kept["n_hours"] > 1, "n_rows"].sum())
    untagged = float(kept.loc[kept["untagged"].astype(bool), "gpu_hours"].sum())
    option_hours = kept.groupby("purchase_option", dropna=False)["gpu_hours"].sum()
    option_hours = {("unknown" if pd.isna(k) else str(k)): float(v) for k, v in option_hours.items()}
    has_cost = spec.cost is not None and int(kept["n_cost"].sum()) > 0
    gpu_rows_kept = int(kept["n_rows"].sum())

    # Spread multi-hour charge periods evenly over their hours (one row per hour).
    reps = kept["n_hours"].to_numpy()
    kept["hour"] = pd.to_datetime(kept["hour"])
    kept["cost"] = kept["cost"].astype(float)
    if (reps == 1).all():
        hourly = kept
    else:
        hourly = kept.loc[kept.index.repeat(reps)].reset_index(drop=True)
        offset = np.arange(len(hourly), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
        hourly["hour"] = hourly["hour"] + pd.to_timedelta(offset, unit="h")
        hourly["gpu_hours"] = hourly["gpu_hours"] / hourly["n_hours"]
        hourly["cost"] = hourly["cost"] / hourly["n_hours"]
    del kept

    usage = _collapse(hourly, has_cost)
    neg = usage[usage[GPUS] < -1e-9]
    if not neg.empty:
        row = neg.iloc[0]
        raise UsageError(source, f"GPU-hours of team '{row[TEAM]}', {row[GPU_TYPE]} in hour "
                         f"{row[TIMESTAMP]:%Y-%m-%dT%H:%M}Z sum to {row[GPUS]:.3f} (< 0)",
                         column=spec.quantity_column,
                         fix="export whole billing periods so refunds and corrections meet the usage they "
                             "correct")
    usage[GPUS] = usage[GPUS].clip(lower=0.0)
    return Aggregate(usage, rows_read, gpu_rows_kept, untagged, usage_rows, multi_hour_rows,
                     option_hours, unknown_types)


def shared_text_frame(table) -> pd.DataFrame:
    """A pandas frame of an Arrow table whose text columns hold one Python string per distinct value (not one
    per row): dictionary-encoded on the way, then expanded to object columns that share those strings."""
    frame = table.to_pandas(strings_to_categorical=True)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            codes = frame[col].cat.codes.to_numpy()
            categories = np.empty(len(frame[col].cat.categories) + 1, dtype=object)
            categories[:-1] = list(frame[col].cat.categories)
            categories[-1] = None
            frame[col] = categories[np.where(codes < 0, len(categories) - 1, codes)]
    return frame


def _collapse(hourly: pd.DataFrame, has_cost: bool) -> pd.DataFrame:
    """One row per (hour, team, GPU type): summed GPU-hours and cost; the instance type and purchase
    option with the most GPU-hours in that hour."""
    keys = ["hour", "team", "gpu_type"]
    if not hourly.duplicated(keys).any():
        # one row per hour, team and GPU type already (one instance type and purchase option each)
        out = pd.DataFrame({"hour": hourly["hour"], "team": hourly["team"], "gpu_type": hourly["gpu_type"],
                            "gpus": hourly["gpu_hours"], "cost": hourly["cost"].fillna(0.0),
                            "instance_type": hourly["instance_type"], "purchase_option": hourly["purchase_option"]})
    else:
        totals = hourly.groupby(keys, as_index=False, sort=False).agg(gpus=("gpu_hours", "sum"),
                                                                       cost=("cost", "sum"))
        dominant = {}
        for col in ("instance_type", "purchase_option"):
            by = hourly.groupby([*keys, col], as_index=False, sort=False, dropna=False)["gpu_hours"].sum()
            by = by.sort_values("gpu_hours", kind="stable").drop_duplicates(keys, keep="last")
            dominant[col] = by[[*keys, col]]
        out = totals.merge(dominant["instance_type"], on=keys, how="left").merge(
            dominant["purchase_option"], on=keys, how="left")
    frame = pd.DataFrame({TIMESTAMP: out["hour"].astype("datetime64[ns]"), TEAM: out["team"].astype(str),
                          GPU_TYPE: out["gpu_type"].astype(str), GPUS: out["gpus"].astype(float),
                          INSTANCE_TYPE: out["instance_type"], PURCHASE_OPTION: out["purchase_option"]})
    if has_cost:
        frame[COST_USD] = out["cost"].astype(float)
    return frame


def _raise_first_problem(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str,
                         spec: RowSpec, problem: str) -> None:
    """Find the first GPU usage row with ``problem`` (single-threaded, so row numbers follow the file)."""
    column = {"start": spec.start_column, "quantity": spec.quantity_column, "tags": spec.tags_column}[problem]
    raw = f"CAST(s.{sql_ident(column)} AS VARCHAR)" if column else "NULL"
    multi = len(files) > 1
    scan = scan_sql(files, kind, with_filename=multi)
    file_expr = "s.filename" if multi else "NULL"
    base = _base_sql(scan, spec, extra=f"s.__rn AS __rn, {file_expr} AS __file, {raw} AS __raw,",
                     row_number_over="PARTITION BY filename" if multi else "")
    sql = (f"SELECT __rn, __file, __raw FROM ({base}) WHERE is_usage AND itype IS NOT NULL "
           f"AND ({_problem_sql()}) = {sql_str(problem)} ORDER BY __file NULLS FIRST, __rn LIMIT 1")
    found, _ = first_in_file_order(con, sql)
    where = source
    row = None
    value = None
    if found is not None:
        index, file_name, value = int(found[0]) - 1, found[1], found[2]
        where = str(file_name) if file_name else source
        row = csv_row(index) if kind == "csv" else index + 1
    if problem == "start":
        raise UsageError(where, f"cannot parse charge period start {short(value)!r}", row=row, column=column,
                         fix="use ISO 8601 timestamps such as 2025-01-01T13:00:00Z")
    if problem == "quantity":
        raise UsageError(where, f"usage quantity {short(value)!r} is not a number", row=row, column=column,
                         fix="usage quantities must be instance-hours such as 1.0")
    raise UsageError(where, f"tags value {short(value)!r} is not a JSON object", row=row, column=column,
                     fix='write tags as JSON such as {"team": "ml-research"}')


def finish_billing(agg: Aggregate, source: str, fmt: str, *, known_gpu_types: set[str] | None,
                   notes: list[str],
                   no_rows_error: Callable[[], UsageError]) -> tuple[pd.DataFrame, IngestReport]:
    """Validate the aggregated usage of a billing file and build its report."""
    if agg.gpu_rows_kept == 0:
        error = no_rows_error()
        if agg.unknown_types:
            names = ", ".join(f"{name} ({n:,} rows)" for name, n in agg.unknown_types)
            raise UsageError(error.source, f"{error.message}; GPU instance types the catalog lacks: {names}",
                             column=error.column, fix="gpuplan catalog refresh, or a --catalog that lists them")
        raise error
    usage, validation = validate_usage(agg.usage, source, known_gpu_types=known_gpu_types, plausible_dates=True)
    notes = list(notes)
    dropped = agg.rows_read - agg.gpu_rows_kept
    if dropped:
        notes.append(f"{dropped:,} rows dropped: not compute usage of a GPU instance type "
                     f"({agg.usage_rows - agg.gpu_rows_kept:,} of them were usage of other instance types "
                     "or services)")
    if agg.multi_hour_rows:
        notes.append(f"{agg.multi_hour_rows:,} GPU rows cover more than one hour (daily or monthly export); "
                     "their GPU-hours were spread evenly over the hours of their charge period")
    total = sum(agg.option_hours.values())
    if total > 0:
        ranked = sorted(agg.option_hours.items(), key=lambda kv: -kv[1])
        parts = ", ".join(f"{k} {v / total:.0%}" for k, v in ranked)
        notes.append(f"GPU-hours by purchase option: {parts}")
    if agg.option_hours.get(SAVINGS_PLAN, 0.0) > 0:
        notes.append(f"{agg.option_hours[SAVINGS_PLAN]:,.1f} GPU-hours were covered by Savings Plans "
                     f"(purchase_option '{SAVINGS_PLAN}')")
    if agg.option_hours.get(RESERVED, 0.0) > 0:
        notes.append(f"purchase_option '{RESERVED}' marks reservation-covered usage; the billing row does "
                     "not say the reservation's term or payment option")
    report = usage_report(source, fmt, agg.rows_read, agg.gpu_rows_kept, usage, validation,
                          untagged_gpu_hours=agg.untagged_gpu_hours, notes=notes,
                          unknown_instance_types=agg.unknown_types)
    return usage, report


def tag_key_candidates(tag_key: str) -> list[str]:
    """Key spellings a tag can have in billing exports: ``team``, ``user:team`` (AWS user-defined tags),
    ``user_team`` (CUR 2.0 ``resource_tags`` keys) and ``resourceTags/...`` (CUR 2.0 ``tags``)."""
    norm = normalize_name(tag_key)
    return list(dict.fromkeys([tag_key, f"user:{tag_key}", f"user_{norm}", f"user_{tag_key}",
                               f"resourceTags/{tag_key}", f"resourceTags/user:{tag_key}", norm]))
