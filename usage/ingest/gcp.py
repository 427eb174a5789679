"""Google Cloud billing exports (BigQuery standard usage cost export, flattened to CSV or Parquet) -> GPU-hours.

Google bills a GPU as its own SKU (``Nvidia Tesla A100 GPU running in Americas``, ``Nvidia H100 80GB GPU running
in Americas``, ``Nvidia L4 GPU attached to Spot Preemptible VMs running in EMEA``), separate from the machine
type's vCPU and RAM SKUs. So GPU-hours come from the GPU SKU rows only; vCPU/RAM rows of the same VMs are not
GPU-hours and are not counted.

Units: a GPU SKU row's ``usage.amount`` is GPU-seconds (``usage.unit = 'seconds'``; ``hour``/``hours`` units are
read as GPU-hours); ``usage.amount_in_pricing_units`` with ``usage.pricing_unit = 'hour'`` is used first when the
export has it. GPU-hours are summed per (hour of ``usage_start_time``, team, GPU model); a row covering several
hours is spread evenly over them. ``cost_usd`` is ``cost`` plus the (negative) ``credits`` amounts, in the
export's currency (USD for USD billing accounts).

Columns, matched after name normalisation so ``sku.description`` (a flattened CSV), ``sku_description`` (a query
alias) and a ``sku`` STRUCT (Parquet) all work: ``usage_start_time``, ``usage_end_time`` (optional),
``service.description`` (optional; rows of other services than Compute Engine are dropped), ``sku.description``,
``usage.amount``, ``usage.unit``, ``usage.amount_in_pricing_units``/``usage.pricing_unit`` (optional),
``cost_type`` (optional; only ``regular`` rows are usage), ``labels`` (JSON array of ``{"key", "value"}`` or a
JSON object in CSV, a list of key/value structs in Parquet, or a flat ``labels.team`` column), ``cost`` and
``credits`` (optional).

Which rows count: a SKU description naming an NVIDIA GPU (``... GPU ...``) that is not a commitment fee
(``Commitment v1: Nvidia ...`` rows are the CUD's own charge, read by ``gpuplan commitments``). A GPU model the
catalog does not know is reported by name and row count and left out, never dropped silently.

Purchase option: ``spot`` when the SKU says Spot or Preemptible; ``reserved`` when the row carries a
committed-use-discount credit (``credits`` type or name ``COMMITTED_USAGE_DISCOUNT``); else ``on_demand``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from usage.ingest.readers import (
    ON_DEMAND,
    RESERVED,
    SPOT,
    IngestReport,
    RowSpec,
    aggregate_usage,
    as_double,
    as_text,
    as_timestamptz,
    find_column,
    finish_billing,
    normalize_name,
    read_error,
    scan_sql,
    sql_ident,
    sql_str,
    tag_key_candidates,
)
from usage.schema import INSTANCE_TYPE, UNALLOCATED_TEAM, UsageError

GPU_SKU_MODELS: tuple[tuple[str, str], ...] = (
    ("GB200", "NVIDIA GB200"),
    ("B200", "NVIDIA B200"),
    ("H200", "NVIDIA H200"),
    ("H100", "NVIDIA H100"),
    ("A100", "NVIDIA A100"),
    ("RTX PRO 6000", "NVIDIA RTX PRO 6000"),
    ("L4", "NVIDIA L4"),
    ("T4", "NVIDIA T4 Tensor Core"),
    ("V100", "NVIDIA Tesla V100"),
    ("P100", "NVIDIA Tesla P100"),
    ("P4", "NVIDIA Tesla P4"),
    ("K80", "NVIDIA Tesla K80"),
)
"""Word in a GPU SKU description -> the catalog's GPU model name (first match wins, so ``GB200`` before
``B200`` and ``H100 80GB`` is H100). SKU wording as in the Cloud Billing SKU list of Compute Engine, e.g. ``Nvidia
Tesla A100 80GB GPU running in Americas``; names follow the catalog's spelling (AWS rows), so one GPU on two clouds
is one series."""

REQUIRED = (("usage_start_time",), ("sku_description", "sku"), ("usage_amount", "usage_amount_in_pricing_units",
                                                                "usage"))
GPU_SKU_REGEX = r"(?i)\bnvidia\b.*\bgpus?\b"
COMMITMENT_SKU_REGEX = r"(?i)^\s*commitment\b"
SPOT_SKU_REGEX = r"(?i)\b(spot|preemptible)\b"


def required_columns(columns: Mapping[str, str], source: str
                     ) -> tuple[str, tuple[str, str], tuple[str, str]]:
    """The columns every reading of a GCP billing export needs: ``usage_start_time`` and the (SQL, column named in
    errors) of ``sku.description`` and ``usage.amount`` (see :func:`_field`).

    Raises:
        UsageError: one of them is missing (one line, with the fix).
    """
    start = find_column(columns, "usage_start_time")
    description = _field(columns, "sku", "description")
    amount = _field(columns, "usage", "amount")
    if start is None or description[0] is None or amount[0] is None:
        missing = ("usage_start_time" if start is None else "sku.description" if description[0] is None
                   else "usage.amount")
        raise UsageError(source, f"missing column '{missing}' for a GCP billing export", column=missing,
                         fix="export the standard usage cost table with usage_start_time, sku.description and "
                             "usage.amount")
    return start, description, amount


def _field(columns: Mapping[str, str], name: str, sub: str) -> tuple[str | None, str | None]:
    """(SQL, column named in errors) of ``name.sub``: a flat column or a field of a STRUCT column ``name``."""
    flat = find_column(columns, f"{name}.{sub}", f"{name}_{sub}")
    if flat:
        return f"s.{sql_ident(flat)}", flat
    struct = find_column(columns, name)
    if struct and columns[struct].upper().startswith("STRUCT("):
        fields = columns[struct][len("STRUCT("):-1]
        if any(normalize_name(part.strip().split(" ")[0].strip('"')) == normalize_name(sub)
               for part in fields.split(",")):
            return f"s.{sql_ident(struct)}.{sql_ident(sub)}", f"{struct}.{sub}"
    return None, None


def _model_sql(description: str) -> str:
    """SQL: the GPU model a GPU SKU description names, else NULL."""
    whole = r"(?i)(^|[^A-Za-z0-9])%s([^A-Za-z0-9]|$)"
    whens = " ".join(f"WHEN regexp_matches({description}, {sql_str(whole % word)}) THEN {sql_str(model)}"
                     for word, model in GPU_SKU_MODELS)
    return f"CASE {whens} END"


def _label_sql(columns: Mapping[str, str], tag_key: str) -> tuple[str, str, str | None]:
    """(team SQL, malformed-cell SQL, column) from ``labels`` (JSON text, list of structs) or a flat column."""
    keys = tag_key_candidates(tag_key)
    flat = find_column(columns, *(f"labels.{k}" for k in keys), *(f"labels_{k}" for k in keys),
                       *(f"label_{k}" for k in keys))
    if flat:
        return as_text(f"s.{sql_ident(flat)}"), "FALSE", flat
    labels = find_column(columns, "labels")
    if not labels:
        return "CAST(NULL AS VARCHAR)", "FALSE", None
    ref = f"s.{sql_ident(labels)}"
    key_list = "[" + ", ".join(sql_str(k) for k in keys) + "]"
    col_type = columns[labels].upper()
    if col_type.startswith(("STRUCT(", "MAP(")) or col_type.endswith("[]"):
        if col_type.endswith("[]"):
            value = (f"NULLIF(TRIM(CAST(list_filter({ref}, lambda x: list_contains({key_list}, CAST(x.key AS VARCHAR)))"
                     f"[1].value AS VARCHAR)), '')")
            return value, "FALSE", labels
        text = f"CAST(to_json({ref}) AS VARCHAR)"
    else:
        text = f"CAST({ref} AS VARCHAR)"
    pairs = f"from_json({text}, '[{{\"key\": \"VARCHAR\", \"value\": \"VARCHAR\"}}]')"
    in_array = f"list_filter({pairs}, lambda x: list_contains({key_list}, x.key))[1].value"
    in_object = "COALESCE(" + ", ".join(f"json_extract_string({text}, {sql_str(chr(36) + '.' + chr(34) + k + chr(34))})"
                                        for k in keys) + ")"
    value = (f"CASE WHEN json_valid({text}) AND json_type({text}) = 'ARRAY' THEN NULLIF(TRIM({in_array}), '') "
             f"WHEN json_valid({text}) AND json_type({text}) = 'OBJECT' THEN NULLIF(TRIM({in_object}), '') END")
    bad = f"(NULLIF(TRIM({text}), '') IS NOT NULL AND NOT json_valid({text}))"
    return value, bad, labels


def _credits_sql(columns: Mapping[str, str]) -> tuple[str, str]:
    """(sum of credit amounts SQL, 'has a committed-use credit' SQL) from the ``credits`` column."""
    credits = find_column(columns, "credits")
    if not credits:
        return "0.0", "FALSE"
    ref = f"s.{sql_ident(credits)}"
    if columns[credits].upper().endswith("[]"):
        text = f"CAST(to_json({ref}) AS VARCHAR)"
    else:
        text = f"CAST({ref} AS VARCHAR)"
    amounts = f"from_json({text}, '[{{\"amount\": \"DOUBLE\"}}]')"
    total = (f"COALESCE(CASE WHEN json_valid({text}) AND json_type({text}) = 'ARRAY' THEN "
             f"list_sum(list_transform({amounts}, lambda x: x.amount)) END, 0.0)")
    cud = f"COALESCE(upper({text}) LIKE '%COMMITTED_USAGE_DISCOUNT%', FALSE)"
    return total, cud


def load_gcp(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str,
             columns: dict[str, str], *, tag_key: str = "team",
             known_gpu_types: set[str] | None = None,
             instance_gpus: Mapping[str, tuple[str, float]] | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Read a GCP billing export into a validated canonical usage frame (module docstring).

    Args:
        con: DuckDB connection (see :func:`usage.ingest.readers.connect`).
        files: the export file, or its parts.
        kind: ``csv`` or ``parquet``.
        source: file name for messages.
        columns: column name -> DuckDB type of the export.
        tag_key: label key holding the team.
        known_gpu_types: GPU models the catalog offers; SKUs of other models are reported and left out.
        instance_gpus: unused (GPU SKUs name the GPU model, not the machine type); accepted for a uniform call.

    Returns:
        (usage frame without ``instance_type``: a GPU SKU does not name the machine type; report).

    Raises:
        UsageError: missing columns, unreadable cells in GPU rows, or no GPU SKU rows.
    """
    del instance_gpus
    start, (description, description_col), (amount, amount_col) = required_columns(columns, source)
    end = find_column(columns, "usage_end_time")
    unit, _ = _field(columns, "usage", "unit")
    pricing_amount, _ = _field(columns, "usage", "amount_in_pricing_units")
    pricing_unit, _ = _field(columns, "usage", "pricing_unit")
    service, _ = _field(columns, "service", "description")
    cost_type = find_column(columns, "cost_type")
    cost_col = find_column(columns, "cost")
    notes = ["GCP billing export: GPU-hours from GPU SKU rows (vCPU and RAM rows of the same VMs are not GPU-hours)"]

    desc = as_text(description)
    seconds = f"{as_double(amount)} / 3600.0"
    unit_text = f"lower(COALESCE({as_text(unit)}, 'seconds'))" if unit else "'seconds'"
    by_unit = (f"CASE WHEN {unit_text} IN ('seconds', 's') THEN {seconds} "
               f"WHEN {unit_text} IN ('hour', 'hours', 'h') THEN {as_double(amount)} END")
    if pricing_amount and pricing_unit:
        quantity = (f"CASE WHEN lower(COALESCE({as_text(pricing_unit)}, '')) IN ('hour', 'hours') "
                    f"THEN {as_double(pricing_amount)} ELSE {by_unit} END")
    else:
        quantity = by_unit
    gpu_sku = (f"COALESCE(regexp_matches({desc}, {sql_str(GPU_SKU_REGEX)}) AND NOT "
               f"regexp_matches({desc}, {sql_str(COMMITMENT_SKU_REGEX)}), FALSE)")
    conditions = [gpu_sku, f"{unit_text} IN ('seconds', 's', 'hour', 'hours', 'h')"]
    if service:
        conditions.append(f"COALESCE(lower({as_text(service)}) = 'compute engine', TRUE)")
    if cost_type:
        conditions.append(f"COALESCE(lower({as_text(f's.{sql_ident(cost_type)}')}) = 'regular', TRUE)")
    is_usage = " AND ".join(conditions)

    model = _model_sql(desc)
    known = sorted(known_gpu_types) if known_gpu_types is not None else [m for _, m in GPU_SKU_MODELS]
    frame = pd.DataFrame({"instance_type": known, "gpu_model": known, "gpu_count": 1.0})
    con.register("gpu_instances_src", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE gpu_instances AS SELECT DISTINCT * FROM gpu_instances_src")
    con.unregister("gpu_instances_src")

    team, tags_bad, labels_col = _label_sql(columns, tag_key)
    if labels_col is None:
        notes.append(f"no labels column: all GPU usage is team '{UNALLOCATED_TEAM}'")
    credit_total, cud_credit = _credits_sql(columns)
    option = f"""CASE WHEN COALESCE(regexp_matches({desc}, {sql_str(SPOT_SKU_REGEX)}), FALSE) THEN {sql_str(SPOT)}
        WHEN {cud_credit} THEN {sql_str(RESERVED)} ELSE {sql_str(ON_DEMAND)} END"""
    cost = f"{as_double(f's.{sql_ident(cost_col)}')} + {credit_total}" if cost_col else None

    spec = RowSpec(start=as_timestamptz(f"s.{sql_ident(start)}"), start_column=start,
                   end=as_timestamptz(f"s.{sql_ident(end)}") if end else None,
                   quantity=quantity, quantity_column=amount_col or "usage.amount", is_usage=is_usage,
                   instance_candidates=(model,), team=team, tags_bad=tags_bad, tags_column=labels_col,
                   option=option, cost=cost)
    agg = aggregate_usage(con, files, kind, source, spec)
    try:
        unknown_rows = con.execute(
            f"SELECT m, count(*) FROM (SELECT {model} AS m FROM {scan_sql(files, kind)} AS s WHERE {is_usage}) "
            f"WHERE m IS NULL OR m NOT IN (SELECT gpu_model FROM gpu_instances) GROUP BY m ORDER BY 2 DESC, 1"
        ).fetchall()
    except duckdb.Error as error:
        raise read_error(error, kind, source) from None
    unknown = tuple((str(m) if m is not None else "unrecognised NVIDIA GPU SKU", int(n)) for m, n in unknown_rows)
    agg = type(agg)(**{**agg.__dict__, "unknown_types": unknown})

    def no_rows() -> UsageError:
        return UsageError(source, f"no GPU SKU rows found among {agg.rows_read:,} rows (checked "
                          f"{description_col} for NVIDIA ... GPU SKUs of Compute Engine)", column=description_col,
                          fix="export the months with GPU usage (GPU SKUs such as 'Nvidia Tesla A100 GPU running in "
                              "Americas')")

    usage, report = finish_billing(agg, source, "gcp", known_gpu_types=known_gpu_types, notes=notes,
                                   no_rows_error=no_rows)
    usage = usage.drop(columns=[INSTANCE_TYPE], errors="ignore")
    return usage, report
