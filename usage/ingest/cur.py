"""AWS Cost and Usage Reports (CUR 2.0 data exports and legacy CUR, CSV or Parquet) -> hourly GPU usage.

Units: ``line_item_usage_amount`` of an instance line item is instance-hours; GPU-hours =
instance-hours x GPUs per instance of the instance type in ``line_item_usage_type``. The usage frame's
``gpus`` is GPU-hours summed per (hour of ``line_item_usage_start_date``, team, GPU model); line items
that span several hours (daily CUR) are spread evenly over them. ``cost_usd`` is USD: the amortised
``reservation_effective_cost`` for ``DiscountedUsage``, ``savings_plan_savings_plan_effective_cost``
for ``SavingsPlanCoveredUsage``, otherwise ``line_item_net_unblended_cost`` when the export has it,
else ``line_item_unblended_cost``.

Column names are matched after normalisation, so the same code reads CUR 2.0
(``line_item_usage_type``), legacy CUR CSV (``lineItem/UsageType``) and legacy CUR through Athena
(``line_item_usage_type`` with flat ``resource_tags_user_team`` columns).

Which rows count: ``line_item_line_item_type`` in ``Usage``, ``DiscountedUsage`` (reserved instance
covered) or ``SavingsPlanCoveredUsage``; ``RIFee``, ``Fee``, ``Tax``, ``Credit``, ``Refund``,
``SavingsPlanNegation``, ``SavingsPlanRecurringFee`` and the rest are charges, not consumption. The usage
type must be instance-hours of a catalog GPU instance type: ``BoxUsage:p4d.24xlarge``,
``SpotUsage:p4d.24xlarge``, ``DedicatedUsage:...`` with or without a region prefix
(``USE2-BoxUsage:g5.xlarge``).

Team: CUR 2.0 ``resource_tags`` (keys ``user_<tag>``; JSON object text in CSV, a MAP in Parquet), else
the CUR 2.0 ``tags`` column (``resourceTags/user:<tag>`` keys), else a flat legacy column
``resourceTags/user:<tag>`` / ``resource_tags_user_<tag>``. Untagged rows go to team ``unallocated``.

Purchase option: ``DiscountedUsage`` -> ``reserved`` (the line item does not say the reservation's term
or payment), ``SavingsPlanCoveredUsage`` -> ``savings_plan``, a ``SpotUsage`` usage type (or
``pricing_term = 'Spot'``) -> ``spot``, anything else -> ``on_demand``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from usage.ingest.readers import (
    ON_DEMAND,
    RESERVED,
    SAVINGS_PLAN,
    SPOT,
    IngestReport,
    RowSpec,
    aggregate_usage,
    as_double,
    as_text,
    as_timestamptz,
    find_column,
    finish_billing,
    keyed_value,
    normalize_name,
    register_instances,
    require_instances,
    sql_ref,
    sql_str,
    tag_key_candidates,
    usage_type_instance,
)
from usage.schema import UNALLOCATED_TEAM, UsageError

USAGE_LINE_ITEM_TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage")
REQUIRED = ("line_item_usage_start_date", "line_item_line_item_type", "line_item_usage_type",
            "line_item_usage_amount")


def cur_variant(columns: Mapping[str, str] | list[str]) -> str:
    """``legacy CUR`` (``lineItem/...`` names), ``CUR 2.0`` or ``legacy CUR via Athena`` (snake names
    with flat ``resource_tags_user_*`` columns)."""
    names = list(columns)
    if any("/" in c for c in names):
        return "legacy CUR"
    if find_column(names, "resource_tags", "tags") is None and any(
            normalize_name(c).startswith("resource_tags_") for c in names):
        return "legacy CUR via Athena"
    return "CUR 2.0"


def load_cur(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str,
             columns: dict[str, str], *, tag_key: str = "team",
             instance_gpus: Mapping[str, tuple[str, float]] | None = None,
             known_gpu_types: set[str] | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Read a CUR 2.0 or legacy CUR export into a validated canonical usage frame.

    Args:
        con: DuckDB connection (see :func:`usage.ingest.readers.connect`).
        files: the export file, or its parts.
        kind: ``csv`` or ``parquet``.
        source: file name for messages.
        columns: column name -> DuckDB type of the export.
        tag_key: cost-allocation tag holding the team (without the ``user:`` prefix).
        instance_gpus: instance_type -> (gpu_model, GPUs per instance).
        known_gpu_types: GPU models the catalog offers (passed to validation).

    Returns:
        (usage frame, report).

    Raises:
        UsageError: missing columns, unreadable cells in GPU rows, or no GPU usage rows.
    """
    instance_gpus = require_instances(instance_gpus, "cur")
    n_types = register_instances(con, instance_gpus)

    def col(*names: str) -> str | None:
        return find_column(columns, *names)

    found = {name: col(name) for name in REQUIRED}
    for name, actual in found.items():
        if actual is None:
            raise UsageError(source, f"missing column '{name}' for an AWS CUR export", column=name,
                             fix="export CUR 2.0 (or legacy CUR) with the line item columns included")
    start, item_type = found["line_item_usage_start_date"], found["line_item_line_item_type"]
    usage_type, amount = found["line_item_usage_type"], found["line_item_usage_amount"]
    end = col("line_item_usage_end_date")

    variant = cur_variant(columns)
    notes: list[str] = [f"{variant} export"]

    type_text = as_text(sql_ref(item_type))
    usage_text = as_text(sql_ref(usage_type))
    type_list = ", ".join(sql_str(t) for t in USAGE_LINE_ITEM_TYPES)
    is_usage = f"{type_text} IN ({type_list})"

    # team tag
    tags_col = None
    tags_bad = "FALSE"
    map_col = col("resource_tags")
    all_tags = col("tags")
    norm_tag = normalize_name(tag_key)
    flat = col(f"resource_tags_user_{norm_tag}", f"resourceTags/user:{tag_key}", f"resource_tags_{norm_tag}")
    if map_col:
        tags_col = map_col
        team, tags_bad = keyed_value(sql_ref(map_col), columns[map_col], tag_key_candidates(tag_key))
    elif all_tags:
        tags_col = all_tags
        team, tags_bad = keyed_value(sql_ref(all_tags), columns[all_tags], tag_key_candidates(tag_key))
    elif flat:
        team = as_text(sql_ref(flat))
    else:
        team = "CAST(NULL AS VARCHAR)"
        notes.append(f"no resource_tags column or resourceTags/user:{tag_key} column: all GPU usage is team "
                     f"'{UNALLOCATED_TEAM}' (activate the cost allocation tag and include it in the export)")

    term = col("pricing_term")
    spot_term = f"lower(COALESCE({as_text(sql_ref(term))}, '')) = 'spot'" if term else "FALSE"
    option = f"""CASE
        WHEN {type_text} = 'DiscountedUsage' THEN {sql_str(RESERVED)}
        WHEN {type_text} = 'SavingsPlanCoveredUsage' THEN {sql_str(SAVINGS_PLAN)}
        WHEN COALESCE({usage_text} LIKE '%SpotUsage%', FALSE) OR {spot_term} THEN {sql_str(SPOT)}
        ELSE {sql_str(ON_DEMAND)} END"""

    unblended = col("line_item_unblended_cost")
    net = col("line_item_net_unblended_cost")
    ri_cost = col("reservation_effective_cost")
    sp_cost = col("savings_plan_savings_plan_effective_cost")
    base_cost = as_double(sql_ref(net)) if net else (as_double(sql_ref(unblended)) if unblended else None)
    if net and unblended:
        base_cost = f"COALESCE({as_double(sql_ref(net))}, {as_double(sql_ref(unblended))})"
    cost = None
    if base_cost or ri_cost or sp_cost:
        fallback = base_cost or "NULL"
        ri = f"COALESCE({as_double(sql_ref(ri_cost))}, {fallback})" if ri_cost else fallback
        sp = f"COALESCE({as_double(sql_ref(sp_cost))}, {fallback})" if sp_cost else fallback
        cost = (f"CASE WHEN {type_text} = 'DiscountedUsage' THEN {ri} "
                f"WHEN {type_text} = 'SavingsPlanCoveredUsage' THEN {sp} ELSE {fallback} END")

    spec = RowSpec(start=as_timestamptz(sql_ref(start)), start_column=start,
                   end=as_timestamptz(sql_ref(end)) if end else None,
                   quantity=as_double(sql_ref(amount)), quantity_column=amount, is_usage=is_usage,
                   instance_candidates=(usage_type_instance(sql_ref(usage_type)),), team=team, tags_bad=tags_bad,
                   tags_column=tags_col, option=option, cost=cost)
    agg = aggregate_usage(con, files, kind, source, spec)

    def no_rows() -> UsageError:
        return UsageError(
            source, f"no GPU instance usage rows found among {agg.rows_read:,} rows ({agg.usage_rows:,} "
            f"Usage/DiscountedUsage/SavingsPlanCoveredUsage rows; checked {usage_type} for "
            f"BoxUsage:/SpotUsage: types of {n_types} catalog GPU instance types)", column=usage_type,
            fix="export the months with GPU instance usage, or refresh the catalog if your instance types "
                "are newer")

    all_untagged = agg.untagged_gpu_hours >= sum(agg.option_hours.values()) - 1e-9
    if (tags_col or flat) and agg.gpu_rows_kept and all_untagged:
        notes.append(f"no GPU row carries tag '{tag_key}' (looked in {tags_col or flat}); pass the tag key "
                     "your teams use")
    return finish_billing(agg, source, "cur", known_gpu_types=known_gpu_types, notes=notes,
                          no_rows_error=no_rows)
