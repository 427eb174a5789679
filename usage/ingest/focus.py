"""FOCUS 1.0 to 1.3 billing exports (CSV or Parquet) -> canonical hourly GPU usage.

Units: ``ConsumedQuantity`` of an instance line item is instance-hours (``PricingQuantity`` when
``ConsumedQuantity`` is absent or empty); GPU-hours = instance-hours x GPUs per instance of the row's
instance type (from the catalog mapping). The usage frame's ``gpus`` is the GPU-hours summed per
(hour of ``ChargePeriodStart``, team, GPU model); rows whose charge period spans several hours are
spread evenly over them. ``cost_usd`` is ``EffectiveCost`` (amortised, USD), or ``BilledCost``.

Which rows count: ``ChargeCategory = 'Usage'``, not an unused commitment
(``CommitmentDiscountStatus = 'Unused'``), measured in hours (``ConsumedUnit`` empty or an hour unit;
Azure's ``10 Hours`` unit multiplies the quantity),
and naming a GPU instance type of the catalog in one of these columns:

* ``SkuMeter`` (FOCUS 1.2+, where AWS writes the usage type that FOCUS 1.0 exports had in
  ``x_UsageType``), e.g. ``USE1-BoxUsage:p4d.24xlarge`` or ``SpotUsage:g5.xlarge``. When the meter is
  an AWS usage type (it contains ``:``) it is the only column consulted, so ``EBSOptimized:`` or
  ``UnusedBox:`` meters never count as instance-hours;
* ``x_UsageType`` (AWS FOCUS 1.0 exports), same format;
* ``SkuPriceDetails`` key ``InstanceType`` (also ``F_InstanceType``, ``x_InstanceType``), JSON text in
  CSV, a map or struct in Parquet;
* ``ResourceType`` when it is itself an instance type name;
* Azure exports: ``x_SkuDetails`` key ``ServiceType`` (``Standard_ND96isr_H100_v5``), or the meter name in
  ``x_SkuMeterName`` / ``SkuMeter`` (``ND96isr H100 v5``) turned into the size name; GPUs per Azure size come from
  the table of :mod:`usage.ingest.azure` when the catalog does not list the size;
* ``ChargeDescription`` (FOCUS 1.0 exports, e.g. ``$1.624 per On Demand Linux g5.4xlarge Instance Hour``): a
  catalog instance type named in the text as a whole word, when the row has no AWS usage-type meter, its
  ``ServiceCategory`` (if present) is ``Compute`` and the text does not speak of EBS or unused capacity.

The report names the FOCUS version the columns show (:func:`focus_version`).

Team: the tag key (default ``team``, also looked up as ``user:team``, ``user_team`` and
``resourceTags/user:team``) inside ``Tags`` (JSON object text in CSV, map or struct in Parquet).
Rows without it go to team ``unallocated``.

Purchase option (documented mapping, commitment details are not on usage rows):

* ``PricingCategory = 'Committed'`` or ``CommitmentDiscountStatus = 'Used'`` -> ``savings_plan`` when
  ``CommitmentDiscountType`` mentions a savings plan or ``CommitmentDiscountCategory = 'Spend'``, else
  ``reserved``;
* ``PricingCategory = 'Dynamic'``, a ``SpotUsage`` meter or an Azure ``... Spot``/``Low Priority`` meter -> ``spot``;
* anything else (``Standard``, ``Other``, empty) -> ``on_demand``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from usage.ingest.azure import azure_instance_gpus, meter_size_sql, spot_meter_sql
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
    register_instances,
    require_instances,
    sql_ref,
    sql_str,
    tag_key_candidates,
    usage_type_instance,
)
from usage.schema import UNALLOCATED_TEAM, UsageError

INSTANCE_TYPE_KEYS = ["InstanceType", "F_InstanceType", "x_InstanceType", "instanceType", "instance_type",
                      "ServiceType"]
HOUR_UNITS = ("hour", "hours", "hr", "hrs", "h", "instance-hours", "instance hours")
MULTI_HOUR_UNIT = "^([0-9]+) ?(hour|hours|hrs?)$"
"""Azure writes units such as ``1 Hour`` and ``10 Hours``: the quantity is in that many hours."""


VERSION_MARKERS = (
    ("1.3", ("ServiceProviderName", "HostProviderName")),
    ("1.2", ("InvoiceId", "PricingCurrency", "BillingAccountType", "SubAccountType")),
    ("1.1", ("SkuMeter", "SkuPriceDetails", "ServiceSubcategory", "CapacityReservationId",
             "CommitmentDiscountQuantity")),
)
"""Columns each FOCUS version added; the newest version whose columns appear is the version reported."""


def focus_version(columns: Mapping[str, str] | list[str]) -> str:
    """The FOCUS version an export's columns show: the newest version of :data:`VERSION_MARKERS` with a
    column present, else ``1.0`` (no column added after 1.0)."""
    return version_evidence(columns)[0]


def version_evidence(columns: Mapping[str, str] | list[str]) -> tuple[str, str | None]:
    """(FOCUS version, the column that shows it or None for 1.0)."""
    for version, markers in VERSION_MARKERS:
        found = find_column(columns, *markers)
        if found:
            return version, found
    return "1.0", None


def description_instance(expr: str, instance_types: list[str]) -> str:
    """SQL: the catalog instance type named as a whole word in a charge description, else NULL."""
    names = sorted((str(t) for t in instance_types), key=lambda t: (-len(t), t))
    if not names:
        return "CAST(NULL AS VARCHAR)"
    alternation = "|".join(re.escape(t) for t in names)
    pattern = f"(?:^|[^A-Za-z0-9_.-])({alternation})(?:$|[^A-Za-z0-9_-]|[.](?:$|[^A-Za-z0-9]))"
    return f"NULLIF(regexp_extract(CAST({expr} AS VARCHAR), {sql_str(pattern)}, 1), '')"


def required_columns(columns: Mapping[str, str], source: str) -> tuple[str, str | None, str | None]:
    """``ChargePeriodStart``, ``ConsumedQuantity`` and ``PricingQuantity`` of a FOCUS export (one of the two
    quantities may be absent).

    Raises:
        UsageError: the start or both quantities are missing (one line, with the fix).
    """
    start = find_column(columns, "ChargePeriodStart")
    consumed, pricing = find_column(columns, "ConsumedQuantity"), find_column(columns, "PricingQuantity")
    if start is None or (consumed is None and pricing is None):
        missing = "ChargePeriodStart" if start is None else "ConsumedQuantity"
        raise UsageError(source, f"missing column '{missing}' for a FOCUS export", column=missing,
                         fix="export FOCUS (1.0 to 1.3) with ChargePeriodStart and ConsumedQuantity")
    return start, consumed, pricing


def load_focus(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str,
               columns: dict[str, str], *, tag_key: str = "team",
               instance_gpus: Mapping[str, tuple[str, float]] | None = None,
               known_gpu_types: set[str] | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Read a FOCUS export into a validated canonical usage frame.

    Args:
        con: DuckDB connection (see :func:`usage.ingest.readers.connect`).
        files: the export file, or its parts.
        kind: ``csv`` or ``parquet``.
        source: file name for messages.
        columns: column name -> DuckDB type of the export.
        tag_key: cost-allocation tag holding the team.
        instance_gpus: instance_type -> (gpu_model, GPUs per instance).
        known_gpu_types: GPU models the catalog offers (passed to validation).

    Returns:
        (usage frame, report).

    Raises:
        UsageError: missing columns, unreadable cells in GPU rows, or no GPU usage rows.
    """
    instance_gpus = require_instances(instance_gpus, "focus")
    instance_gpus = {**azure_instance_gpus(known_gpu_types), **instance_gpus}
    n_types = register_instances(con, instance_gpus)

    def col(*names: str) -> str | None:
        return find_column(columns, *names)

    start, consumed, pricing = required_columns(columns, source)
    end = col("ChargePeriodEnd")
    category, status = col("ChargeCategory"), col("CommitmentDiscountStatus")
    meter, usage_type = col("SkuMeter"), col("x_UsageType")
    details, resource_type = col("SkuPriceDetails"), col("ResourceType")
    sku_details, meter_name = col("x_SkuDetails"), col("x_SkuMeterName")
    description, service_category = col("ChargeDescription"), col("ServiceCategory")
    checked = [c for c in (meter, usage_type, details, sku_details, meter_name, resource_type, description) if c]
    if not checked:
        raise UsageError(source, "no column names the instance type", column="SkuMeter",
                         fix="include SkuMeter, x_UsageType, SkuPriceDetails, ResourceType or ChargeDescription "
                             "in the export")

    version, marker = version_evidence(columns)
    notes: list[str] = [f"FOCUS {version} export" + (f" (by its columns: {marker} is new in {version})" if marker
                                                     else " (no column added after FOCUS 1.0)")]

    # quantity in instance-hours, and its unit
    if consumed and pricing:
        quantity = f"COALESCE({as_double(sql_ref(consumed))}, {as_double(sql_ref(pricing))})"
        unit_col = col("ConsumedUnit")
        unit = (f"COALESCE({as_text(sql_ref(unit_col))}, {as_text(sql_ref(col('PricingUnit')))})" if unit_col
                else as_text(sql_ref(col("PricingUnit"))))
    elif consumed:
        quantity, unit = as_double(sql_ref(consumed)), as_text(sql_ref(col("ConsumedUnit")))
    else:
        quantity, unit = as_double(sql_ref(pricing)), as_text(sql_ref(col("PricingUnit")))
        notes.append("no ConsumedQuantity column: used PricingQuantity as instance-hours")
    hour_units = ", ".join(sql_str(u) for u in HOUR_UNITS)
    factor = (f"CASE WHEN {unit} IS NULL OR lower({unit}) IN ({hour_units}) THEN 1.0 "
              f"WHEN regexp_full_match(lower({unit}), {sql_str(MULTI_HOUR_UNIT)}) "
              f"THEN TRY_CAST(regexp_extract(lower({unit}), {sql_str(MULTI_HOUR_UNIT)}, 1) AS DOUBLE) END")
    quantity = f"({quantity}) * ({factor})"

    conditions = [f"({factor}) IS NOT NULL"]
    if category:
        conditions.append(f"lower({as_text(sql_ref(category))}) = 'usage'")
    else:
        notes.append("no ChargeCategory column: every row was treated as a usage charge")
    if status:
        conditions.append(f"COALESCE(lower({as_text(sql_ref(status))}), '') <> 'unused'")
    is_usage = " AND ".join(conditions)

    # instance type candidates; an AWS usage-type meter (has ':') is authoritative
    meter_texts = [as_text(sql_ref(c)) for c in (meter, usage_type) if c]
    candidates = [usage_type_instance(t) for t in meter_texts]
    aws_meter = " OR ".join(f"COALESCE(strpos({t}, ':') > 0, FALSE)" for t in meter_texts) or "FALSE"
    for d in (details, sku_details):
        if d:
            value, _ = keyed_value(sql_ref(d), columns[d], INSTANCE_TYPE_KEYS)
            candidates.append(f"CASE WHEN NOT ({aws_meter}) THEN {value} END")
    azure_meters = [as_text(sql_ref(c)) for c in (meter_name, meter) if c]
    candidates += [f"CASE WHEN NOT ({aws_meter}) THEN {meter_size_sql(t)} END" for t in azure_meters]
    if resource_type:
        candidates.append(f"CASE WHEN NOT ({aws_meter}) THEN {as_text(sql_ref(resource_type))} END")
    if description:
        text = as_text(sql_ref(description))
        compute = (f"COALESCE(lower({as_text(sql_ref(service_category))}) = 'compute', FALSE)"
                   if service_category else "TRUE")
        candidates.append(f"CASE WHEN NOT ({aws_meter}) AND {compute} AND NOT COALESCE(regexp_matches({text}, "
                          f"'(?i)\\bEBS\\b|unused'), FALSE) "
                          f"THEN {description_instance(sql_ref(description), list(instance_gpus))} END")

    tags = col("Tags")
    if tags:
        team, tags_bad = keyed_value(sql_ref(tags), columns[tags], tag_key_candidates(tag_key))
    else:
        team, tags_bad = "CAST(NULL AS VARCHAR)", "FALSE"
        notes.append(f"no Tags column: all GPU usage is team '{UNALLOCATED_TEAM}'")

    pricing_category = f"lower(COALESCE({as_text(sql_ref(col('PricingCategory')))}, ''))"
    status_text = f"lower(COALESCE({as_text(sql_ref(status))}, ''))"
    ctype = f"lower(COALESCE({as_text(sql_ref(col('CommitmentDiscountType')))}, ''))"
    ccat = f"lower(COALESCE({as_text(sql_ref(col('CommitmentDiscountCategory')))}, ''))"
    spot_meter = " OR ".join([*(f"COALESCE({t} LIKE '%SpotUsage%', FALSE)" for t in meter_texts),
                              *(spot_meter_sql(t) for t in azure_meters)]) or "FALSE"
    option = f"""CASE
        WHEN {pricing_category} = 'committed' OR {status_text} = 'used' THEN
            CASE WHEN {ctype} LIKE '%saving%' OR {ccat} = 'spend' THEN {sql_str(SAVINGS_PLAN)}
                 ELSE {sql_str(RESERVED)} END
        WHEN {pricing_category} = 'dynamic' OR {spot_meter} THEN {sql_str(SPOT)}
        ELSE {sql_str(ON_DEMAND)} END"""

    effective, billed = col("EffectiveCost"), col("BilledCost")
    cost = None
    if effective and billed:
        cost = f"COALESCE({as_double(sql_ref(effective))}, {as_double(sql_ref(billed))})"
    elif effective or billed:
        cost = as_double(sql_ref(effective or billed))

    spec = RowSpec(start=as_timestamptz(sql_ref(start)), start_column=start,
                   end=as_timestamptz(sql_ref(end)) if end else None,
                   quantity=quantity, quantity_column=consumed or pricing or "ConsumedQuantity",
                   is_usage=is_usage, instance_candidates=tuple(candidates), team=team, tags_bad=tags_bad,
                   tags_column=tags, option=option, cost=cost)
    agg = aggregate_usage(con, files, kind, source, spec)

    def no_rows() -> UsageError:
        return UsageError(
            source, f"no GPU instance usage rows found among {agg.rows_read:,} rows "
            f"({agg.usage_rows:,} usage rows; checked {', '.join(checked)} against {n_types} catalog GPU "
            "instance types)",
            column=checked[0],
            fix="export EC2 usage with SkuMeter such as BoxUsage:p4d.24xlarge, or refresh the catalog "
                "if your instance types are newer")

    if tags and agg.gpu_rows_kept and agg.untagged_gpu_hours >= sum(agg.option_hours.values()) - 1e-9:
        keys = ", ".join(tag_key_candidates(tag_key)[:4])
        notes.append(f"no GPU row carries tag '{tag_key}' (looked for keys {keys} in {tags}); "
                     "pass the tag key your teams use")
    return finish_billing(agg, source, "focus", known_gpu_types=known_gpu_types, notes=notes,
                          no_rows_error=no_rows)
