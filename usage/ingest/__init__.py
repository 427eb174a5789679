"""Ingestion adapters: billing exports and Cost Explorer -> the canonical hourly usage frame.

Units: every adapter returns the canonical usage frame of :mod:`usage.schema`, whose ``gpus`` is
GPU-hours per hour (the average GPUs in use in the hour starting at ``timestamp``, naive UTC). Billing
line items measure instance-hours; adapters multiply them by GPUs per instance from the
``instance_gpus`` mapping (``instance_type -> (gpu_model, gpus per instance)``) that the caller passes
in, usually ``Catalog.instance_gpus()`` wired by the CLI. This package never imports ``optimizer``.

Formats:

* ``canonical``: ``timestamp, team, gpu_type, gpus`` (+ optional columns), CSV or Parquet;
* ``focus``: FOCUS 1.0 to 1.3 billing exports (:mod:`usage.ingest.focus`);
* ``cur``: AWS CUR 2.0 data exports and legacy CUR, including Athena-style column names
  (:mod:`usage.ingest.cur`);
* ``gcp``: Google Cloud billing exports (BigQuery standard usage cost export, flattened to CSV or Parquet),
  GPU-hours from the GPU SKU rows (:mod:`usage.ingest.gcp`);
* ``cost_explorer``: live ``GetCostAndUsage`` through boto3 (:func:`fetch_cost_explorer`).

Files may be ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``, or a folder holding the parts of one export.
Every mistake a user can make in a file raises :class:`usage.schema.UsageError`, one line naming
the file, row, column and fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from usage.ingest.canonical import load_canonical
from usage.ingest.cost_explorer import fetch_cost_explorer
from usage.ingest.cur import load_cur
from usage.ingest.focus import load_focus
from usage.ingest.gcp import load_gcp
from usage.ingest.readers import (
    FORMAT_LABELS,
    FORMATS,
    IngestReport,
    file_columns,
    normalize_name,
    open_export,
    short,
)
from usage.schema import REQUIRED_COLUMNS, UsageError

__all__ = ["FILE_FORMATS", "FORMATS", "IngestReport", "detect_format", "fetch_cost_explorer", "load_usage",
           "missing_columns"]

FILE_FORMATS = ("canonical", "focus", "cur", "gcp")

_EXPECTED = {
    "canonical": "canonical usage (timestamp, team, gpu_type, gpus)",
    "focus": "FOCUS 1.0-1.3 (ChargePeriodStart, ConsumedQuantity or PricingQuantity, ProviderName or "
             "ServiceProviderName)",
    "cur": "AWS CUR 2.0 (line_item_usage_start_date, line_item_usage_type, line_item_usage_amount, "
           "line_item_line_item_type) or legacy CUR (lineItem/UsageStartDate, lineItem/UsageType, ...)",
    "gcp": "GCP billing export (usage_start_time, sku.description, usage.amount)",
}


def missing_columns(fmt: str, columns: list[str]) -> list[str]:
    """Columns (or alternatives joined with ``|``) that ``columns`` lacks for format ``fmt``."""
    if fmt == "canonical":
        present = {str(c).strip() for c in columns}
        return [c for c in REQUIRED_COLUMNS if c not in present]
    names = {normalize_name(c) for c in columns}
    if fmt == "focus":
        needs = [("ChargePeriodStart",), ("ConsumedQuantity", "PricingQuantity"),
                 ("ProviderName", "ServiceProviderName")]
    elif fmt == "cur":
        needs = [("line_item_usage_start_date",), ("line_item_usage_type",), ("line_item_usage_amount",),
                 ("line_item_line_item_type",)]
    elif fmt == "gcp":
        needs = [("usage_start_time",), ("sku_description", "sku"), ("usage_amount", "usage_amount_in_pricing_units",
                                                                     "usage")]
    else:
        raise ValueError(f"unknown file format {fmt!r}; expected one of {', '.join(FILE_FORMATS)}")
    return ["|".join(alts) for alts in needs if not any(normalize_name(a) in names for a in alts)]


def detect_format(columns: list[str], source: str = "input") -> str:
    """Name the format of a file from its header.

    Args:
        columns: the file's column names.
        source: file name for the error message.

    Returns:
        ``canonical``, ``focus``, ``cur`` (CUR 2.0 and legacy CUR alike) or ``gcp``.

    Raises:
        UsageError: no format matches; the message lists what each format needs.
    """
    columns = [str(c) for c in columns]
    for fmt in FILE_FORMATS:
        if not missing_columns(fmt, columns):
            return fmt
    # the nearest format (fewest missing column groups) says what is missing
    scored = sorted(FILE_FORMATS, key=lambda f: len(missing_columns(f, columns)))
    nearest = scored[0]
    lacking = missing_columns(nearest, columns)
    total = {"canonical": 4, "focus": 3, "cur": 4, "gcp": 3}[nearest]
    if nearest == "canonical" and len(lacking) < total:
        # Most of the canonical header is there: name the missing column as validation would.
        raise UsageError(source, f"missing column '{lacking[0]}'", column=lacking[0],
                         fix=f"the header must contain {', '.join(REQUIRED_COLUMNS)}")
    hint = ""
    if len(lacking) < total:
        hint = f"; closest is {nearest}, which lacks {', '.join(lacking)}"
    preview = ", ".join(short(c) for c in columns[:6]) + (f", ... {len(columns)} in all" if len(columns) > 6 else "")
    if len(columns) == 1 and any(d in columns[0] for d in (";", "\t", ",")):
        hint += "; the header reads as one column, so the delimiter was not recognised"
    raise UsageError(source, f"unrecognised columns ({preview}){hint}",
                     fix="expected one of: " + "; ".join(_EXPECTED[f] for f in FILE_FORMATS))


def _check_one_format(con, files: list[Path], kind: str, fmt: str) -> None:
    """Every part of a folder must be the same format; else name the first two files that differ."""
    seen: tuple[Path, str] | None = None
    for path in files:
        names = file_columns(con, path, kind)
        this = detect_format(names, str(path)) if fmt == "auto" else fmt
        if fmt != "auto" and missing_columns(fmt, names):
            lacking = missing_columns(fmt, names)[0]
            raise UsageError(str(path), f"missing column '{lacking}' for {FORMAT_LABELS[fmt]} input",
                             column=lacking, fix="keep the parts of one export (one format) per folder")
        if seen is not None and this != seen[1]:
            raise UsageError(str(path), f"this file is {FORMAT_LABELS[this]} but {seen[0].name} in the same folder "
                             f"is {FORMAT_LABELS[seen[1]]}", fix="keep the parts of one export (one format) per folder")
        seen = seen or (path, this)


def load_usage(path: str | Path, fmt: str = "auto", *, tag_key: str = "team",
               instance_gpus: Mapping[str, tuple[str, float]] | None = None,
               known_gpu_types: set[str] | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Read a usage or billing file into the validated canonical usage frame.

    Args:
        path: ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq`` file, or a folder of export parts.
        fmt: ``auto`` (detect from the header), ``canonical``, ``focus``, ``cur`` or ``gcp``.
        tag_key: cost-allocation tag that holds the team (billing formats).
        instance_gpus: instance_type -> (gpu_model, GPUs per instance); required for ``focus`` and ``cur``.
        known_gpu_types: GPU models the catalog offers; ``None`` skips that check.

    Returns:
        (usage frame sorted by team, gpu_type, timestamp, with gaps filled; report).

    Raises:
        UsageError: unreadable file, unknown format, or bad content (one line: file, row, column, fix).
        ValueError: ``fmt`` is not a known name, or ``instance_gpus`` is missing for a billing format.
    """
    fmt = str(fmt).strip().lower().replace("-", "_")
    if fmt not in ("auto", *FILE_FORMATS):
        raise ValueError(f"unknown format {fmt!r}; expected auto, {', '.join(FILE_FORMATS)}")
    with open_export(path, "gpuplan-ingest-") as ex:
        con, files, kind, source, columns = ex.con, ex.files, ex.kind, ex.source, ex.columns
        names = list(columns)
        if len(files) > 1:
            _check_one_format(con, files, kind, fmt)
        if fmt == "auto":
            fmt = detect_format(names, source)
        else:
            lacking = missing_columns(fmt, names)
            if lacking:
                raise UsageError(source, f"missing column '{lacking[0]}' for {FORMAT_LABELS[fmt]} input",
                                 column=lacking[0], fix=f"a {fmt} file needs {_EXPECTED[fmt]}")
        if fmt == "canonical":
            return load_canonical(con, files, kind, source, columns, known_gpu_types=known_gpu_types)
        loader = {"focus": load_focus, "cur": load_cur, "gcp": load_gcp}[fmt]
        return loader(con, files, kind, source, columns, tag_key=tag_key, instance_gpus=instance_gpus,
                      known_gpu_types=known_gpu_types)
