"""Data lines of billing exports (storage and data transfer) -> the canonical data-usage frame.

Units: ``quantity`` is **GB-month** for storage (object storage, block volumes, snapshots) and **GB** for data
transfer, in the provider's billed GB (AWS bills GB of 2^30 bytes; GiB and GB units are taken alike). Storage
quantities billed per hour (``GB-Hours``) are divided by 730 hours per month; ``TB`` units are 1,024 GB; a
leading number in a unit (Azure's ``10 GB/Month``) multiplies the quantity. EBS provisioned IOPS and throughput
are block-storage cost in ``IOPS-month`` and ``MiBps-month``. ``cost_usd`` is USD: CUR
``line_item_net_unblended_cost`` (else ``line_item_unblended_cost``), FOCUS ``EffectiveCost`` (else
``BilledCost``).

The frame (:data:`DATA_COLUMNS`), one row per month x team x project x category x class x unit:

* ``month`` (``YYYY-MM`` of the charge period start, UTC), ``team`` (the tag, ``unallocated`` when absent),
  ``project`` (the ``project`` tag, ``unallocated`` when absent);
* ``category``: ``object_storage``, ``block_storage``, ``snapshot`` or ``transfer``;
* ``class``: storage class or transfer kind (:data:`CLASSES`), e.g. ``s3-standard-ia``, ``ebs-gp3``,
  ``inter-region``;
* ``quantity``, ``unit``, ``cost_usd``.

Which rows count: usage rows (CUR ``line_item_line_item_type`` in Usage, DiscountedUsage,
SavingsPlanCoveredUsage; FOCUS ``ChargeCategory = 'Usage'``) whose meter is a data line. The meter is the AWS
usage type (CUR ``line_item_usage_type``, FOCUS ``SkuMeter`` or ``x_UsageType``), e.g.
``TimedStorage-SIA-ByteHrs``, ``EBS:VolumeUsage.gp3``, ``EBS:SnapshotUsage``, ``DataTransfer-Out-Bytes``,
``USE1-USW2-AWS-Out-Bytes``, ``DataTransfer-Regional-Bytes``, ``NatGateway-Bytes`` (a region prefix such as
``USW2-`` is ignored); or, when the meter is not an AWS usage type, the meter name of Azure and Google Cloud FOCUS
exports (``x_SkuMeterName``, ``SkuMeter``, else ``ChargeDescription``): ``Hot LRS Data Stored`` (Azure Blob),
``Nearline Storage US`` (Cloud Storage), ``Standard Data Transfer Out``, ``Network Inter Region Egress ...``.
Everything else (compute, requests, retrieval and early-delete fees, NAT gateway hours, support, tax, credits)
is not in the frame; the report counts those rows. :func:`load_detail_lines` reads the S3 request and retrieval lines
and the EBS volume and snapshot lines with their resource ids separately, for the savings of
:mod:`operate.data_savings`. Team and project tags are read as the GPU ingest reads them
(:mod:`usage.ingest.cur`, :mod:`usage.ingest.focus`, :mod:`usage.ingest.gcp`).

Google Cloud billing exports (``regular`` cost rows): the meter is ``sku.description`` (``Nearline Storage
Iowa``, ``Network Inter Region Data Transfer Out ...``, ``Download Worldwide Destinations ...``), the quantity
``usage.amount_in_pricing_units`` in ``usage.pricing_unit`` (``gibibyte month``, ``gibibyte``), else
``usage.amount`` in ``usage.unit`` (``byte-seconds``: / 2^30 / (730 x 3,600) = GB-month; ``bytes``: / 2^30 = GB);
``cost_usd`` is ``cost`` plus the ``credits``; the project is the ``project`` label, else ``project.id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from usage.ingest import detect_format
from usage.ingest.cur import USAGE_LINE_ITEM_TYPES
from usage.ingest.focus import required_columns as focus_required_columns
from usage.ingest.readers import (
    FORMAT_LABELS,
    as_double,
    as_text,
    as_timestamptz,
    find_column,
    first_in_file_order,
    keyed_value,
    normalize_name,
    open_export,
    read_error,
    scan_sql,
    short,
    sql_ident,
    sql_ref,
    sql_str,
    tag_key_candidates,
)
from usage.schema import UNALLOCATED_TEAM, UsageError, csv_row

OBJECT_STORAGE = "object_storage"
BLOCK_STORAGE = "block_storage"
SNAPSHOT = "snapshot"
TRANSFER = "transfer"
CATEGORIES = (OBJECT_STORAGE, BLOCK_STORAGE, SNAPSHOT, TRANSFER)
GB_MONTH = "GB-month"
GB = "GB"
HOURS_PER_MONTH = 730.0
"""Hours in a billing month as AWS prices GB-month storage (8,760 / 12)."""

DATA_COLUMNS = ("month", "team", "project", "category", "class", "quantity", "unit", "cost_usd")
INTERNET_EGRESS = "internet-egress"

# (pattern on the AWS usage type without its region prefix, category, class); first match wins.
AWS_RULES: tuple[tuple[str, str, str], ...] = (
    (r"TimedStorage-ByteHrs", OBJECT_STORAGE, "s3-standard"),
    (r"TimedStorage-SIA-ByteHrs", OBJECT_STORAGE, "s3-standard-ia"),
    (r"TimedStorage-ZIA-ByteHrs", OBJECT_STORAGE, "s3-onezone-ia"),
    (r"TimedStorage-GIR-ByteHrs", OBJECT_STORAGE, "s3-glacier-instant-retrieval"),
    (r"TimedStorage-Glacier(?:ByteHrs|Staging|-ByteHrs)", OBJECT_STORAGE, "s3-glacier-flexible-retrieval"),
    (r"TimedStorage-GDA-(?:ByteHrs|Staging)", OBJECT_STORAGE, "s3-glacier-deep-archive"),
    (r"TimedStorage-INT-[A-Z]+-ByteHrs", OBJECT_STORAGE, "s3-intelligent-tiering"),
    (r"TimedStorage-RRS-ByteHrs", OBJECT_STORAGE, "s3-reduced-redundancy"),
    (r"EBS:VolumeUsage", BLOCK_STORAGE, "ebs-standard"),
    (r"EBS:VolumeUsage\.piops", BLOCK_STORAGE, "ebs-io1"),
    (r"EBS:VolumeUsage\.(gp2|gp3|io1|io2|st1|sc1)", BLOCK_STORAGE, "ebs-{0}"),
    (r"EBS:VolumeP-IOPS\.(piops|gp3|io2)", BLOCK_STORAGE, "ebs-{0}-iops"),
    (r"EBS:VolumeP-Throughput\.(gp3)", BLOCK_STORAGE, "ebs-{0}-throughput"),
    (r"EBS:SnapshotUsage", SNAPSHOT, "ebs-snapshot"),
    (r"EBS:SnapshotArchiveStorage", SNAPSHOT, "ebs-snapshot-archive"),
    (r"[A-Z]{2,4}[0-9]?-AWS-Out-Bytes", TRANSFER, "inter-region"),
    (r"[A-Z]{2,4}[0-9]?-AWS-In-Bytes", TRANSFER, "inter-region-in"),
    (r"DataTransfer-Out-Bytes", TRANSFER, INTERNET_EGRESS),
    (r"DataTransfer-In-Bytes", TRANSFER, "internet-ingress"),
    (r"DataTransfer-Regional-Bytes|DataTransfer-xAZ-(?:In|Out)-Bytes", TRANSFER, "inter-az"),
    (r"NatGateway-Bytes", TRANSFER, "nat-processing"),
)
REGION_PREFIX = re.compile(r"^(?:[A-Z]{2,4}[0-9]?|EU|CAN1|UGW1)-(?=[A-Za-z])")

# (pattern on the lower-cased meter name of Azure / Google Cloud rows, category, class); first match wins.
NAMED_RULES: tuple[tuple[str, str, str], ...] = (
    (r"\b(hot|cool|cold|archive)\b.*\bdata stored\b", OBJECT_STORAGE, "azure-blob-{0}"),
    (r"^(standard|nearline|coldline|archive) storage\b", OBJECT_STORAGE, "gcs-{0}"),
    (r"^(?:regional|multi-regional|dual-regional) storage\b", OBJECT_STORAGE, "gcs-standard"),
    (r"^(?:storage pd capacity|balanced pd capacity|ssd backed pd capacity)", BLOCK_STORAGE, "gcp-pd"),
    (r"^storage pd snapshot", SNAPSHOT, "gcp-pd-snapshot"),
    (r"inter[- ]?region|intra continent|inter continent", TRANSFER, "inter-region"),
    (r"inter[- ]?zone|inter[- ]availability zone", TRANSFER, "inter-az"),
    (r"internet egress|data transfer out|^download worldwide", TRANSFER, INTERNET_EGRESS),
    (r"data transfer in\b|ingress", TRANSFER, "internet-ingress"),
)

CLASSES = tuple(sorted({c for _, _, c in (*AWS_RULES, *NAMED_RULES) if "{" not in c}
                       | {f"ebs-{t}" for t in ("gp2", "gp3", "io1", "io2", "st1", "sc1")}
                       | {f"azure-blob-{t}" for t in ("hot", "cool", "cold", "archive")}
                       | {f"gcs-{t}" for t in ("standard", "nearline", "coldline", "archive")}))
"""Every class name the classifier can give."""


def classify_aws(usage_type: str | None) -> tuple[str, str] | None:
    """(category, class) of an AWS usage type, or None when it is not a data line.

    >>> classify_aws("USW2-TimedStorage-SIA-ByteHrs")
    ('object_storage', 's3-standard-ia')
    >>> classify_aws("BoxUsage:p4d.24xlarge") is None
    True
    """
    if not usage_type:
        return None
    text = str(usage_type).strip()
    inter_region = re.fullmatch(r"[A-Z]{2,4}[0-9]?-[A-Z]{2,4}[0-9]?-AWS-(Out|In)-Bytes", text)
    if inter_region:
        return TRANSFER, "inter-region" if inter_region.group(1) == "Out" else "inter-region-in"
    bare = REGION_PREFIX.sub("", text, count=1)
    for pattern, category, name in AWS_RULES:
        hit = re.fullmatch(pattern, bare)
        if hit:
            kind = hit.group(1) if hit.groups() else ""
            return category, name.format("io1" if kind == "piops" else kind)
    return None


def classify_named(meter: str | None) -> tuple[str, str] | None:
    """(category, class) of an Azure or Google Cloud meter name, or None when it is not a data line.

    >>> classify_named("Hot LRS Data Stored")
    ('object_storage', 'azure-blob-hot')
    """
    if not meter:
        return None
    text = " ".join(str(meter).lower().split())
    for pattern, category, name in NAMED_RULES:
        hit = re.search(pattern, text)
        if hit:
            return category, name.format(hit.group(1) if hit.groups() else "")
    return None


def unit_factor(unit: str | None, category: str, aws: bool) -> tuple[float, str] | None:
    """(factor to the frame's unit, the frame's unit) of a billed unit, or None when it cannot be converted.

    AWS usage types fix the unit (CUR bills storage in GB-Mo, transfer in GB), so ``aws`` rows take factor 1.
    """
    if category in (OBJECT_STORAGE, BLOCK_STORAGE, SNAPSHOT):
        target = GB_MONTH
    else:
        target = GB
    if aws:
        return 1.0, target
    text = " ".join(str(unit or "").lower().split())
    if not text:
        return None
    factor = 1.0
    lead = re.match(r"^([0-9]+(?:\.[0-9]+)?)\s*", text)
    if lead:
        factor = float(lead.group(1))
        text = text[lead.end():]
    if text in ("byte-seconds", "byte-second"):  # Google Cloud usage.unit of storage
        return (factor / 2**30 / (HOURS_PER_MONTH * 3600.0), target) if target == GB_MONTH else None
    if text in ("bytes", "byte"):  # Google Cloud usage.unit of transfer
        return (factor / 2**30, target) if target == GB else None
    if re.search(r"\b(tb|tib|terabytes?|tebibytes?)\b", text):
        factor *= 1024.0
    elif not re.search(r"\b(gb|gib|gigabytes?|gibibytes?)\b", text):
        return None
    per_hour = re.search(r"hour|\bhrs?\b", text)
    if target == GB_MONTH:
        if per_hour:
            return factor / HOURS_PER_MONTH, target
        return (factor, target) if re.search(r"month|\bmo\b", text) else None
    return (None if per_hour or re.search(r"month|\bmo\b", text) else (factor, target))


@dataclass(frozen=True)
class DataReport:
    """What the data-line ingest read and kept; ``lines()`` is what the CLI prints.

    Attributes:
        source: the file read.
        format: ``cur``, ``focus`` or ``gcp``.
        rows_read: data rows of the file.
        data_rows: rows that went into the data-usage frame.
        cost_usd: their cost, USD.
        untagged_cost_usd: the part without the team tag (team ``unallocated``), USD.
        notes: what was assumed or left out, one sentence each.
    """

    source: str
    format: str
    rows_read: int
    data_rows: int
    cost_usd: float
    untagged_cost_usd: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        share = self.untagged_cost_usd / self.cost_usd if self.cost_usd > 0 else 0.0
        out = [f"{self.source}: {FORMAT_LABELS.get(self.format, self.format)}",
               f"rows read: {self.rows_read:,}; storage and transfer rows kept: {self.data_rows:,}",
               f"data cost: {self.cost_usd:,.2f} USD; untagged share {share:.1%} shown as team '{UNALLOCATED_TEAM}'"]
        return out + [f"note: {n}" for n in self.notes]


@dataclass(frozen=True)
class _Spec:
    """SQL expressions over scan alias ``s`` for one export format."""

    start: str
    start_column: str
    quantity: str
    quantity_column: str
    is_usage: str
    aws_meter: str
    named_meter: str
    unit: str
    cost: str
    cost_column: str | None
    team: str
    project: str
    tags_bad: str
    tags_column: str | None
    resource: str = "CAST(NULL AS VARCHAR)"


def _tags(columns: dict[str, str], fmt: str, key: str) -> tuple[str, str, str | None]:
    """(value, malformed flag, column) of a tag, read as the GPU adapters read it."""
    col = lambda *names: find_column(columns, *names)  # noqa: E731
    if fmt == "focus":
        tags = col("Tags")
        if tags is None:
            return "CAST(NULL AS VARCHAR)", "FALSE", None
        value, bad = keyed_value(sql_ref(tags), columns[tags], tag_key_candidates(key))
        return value, bad, tags
    for name in ("resource_tags", "tags"):
        found = col(name)
        if found:
            value, bad = keyed_value(sql_ref(found), columns[found], tag_key_candidates(key))
            return value, bad, found
    norm = normalize_name(key)
    flat = col(f"resource_tags_user_{norm}", f"resourceTags/user:{key}", f"resource_tags_{norm}")
    if flat:
        return as_text(sql_ref(flat)), "FALSE", flat
    return "CAST(NULL AS VARCHAR)", "FALSE", None


def _resource_sql(column: str | None) -> str:
    """SQL text of the resource id column (S3 bucket, EBS volume or snapshot id), NULL when the export has none."""
    return as_text(sql_ref(column)) if column else "CAST(NULL AS VARCHAR)"


def _cur_spec(columns: dict[str, str], source: str, tag_key: str, project_key: str) -> _Spec:
    col = lambda *names: find_column(columns, *names)  # noqa: E731
    needed = ("line_item_usage_start_date", "line_item_line_item_type", "line_item_usage_type",
              "line_item_usage_amount")
    found = {n: col(n) for n in needed}
    for name, actual in found.items():
        if actual is None:
            raise UsageError(source, f"missing column '{name}' for an AWS CUR export", column=name,
                             fix="export CUR 2.0 (or legacy CUR) with the line item columns included")
    net, unblended = col("line_item_net_unblended_cost"), col("line_item_unblended_cost")
    costs = [as_double(sql_ref(c)) for c in (net, unblended) if c]
    team, bad, tags_col = _tags(columns, "cur", tag_key)
    project, pbad, _ = _tags(columns, "cur", project_key)
    types = ", ".join(sql_str(t) for t in USAGE_LINE_ITEM_TYPES)
    return _Spec(start=as_timestamptz(sql_ref(found["line_item_usage_start_date"])),
                 start_column=found["line_item_usage_start_date"],
                 quantity=as_double(sql_ref(found["line_item_usage_amount"])),
                 quantity_column=found["line_item_usage_amount"],
                 is_usage=f"{as_text(sql_ref(found['line_item_line_item_type']))} IN ({types})",
                 aws_meter=as_text(sql_ref(found["line_item_usage_type"])), named_meter="CAST(NULL AS VARCHAR)",
                 unit="CAST(NULL AS VARCHAR)",
                 cost=f"COALESCE({', '.join(costs)})" if costs else "CAST(NULL AS DOUBLE)",
                 cost_column=net or unblended, team=team, project=project, tags_bad=f"({bad} OR {pbad})",
                 tags_column=tags_col, resource=_resource_sql(col("line_item_resource_id")))


def _focus_spec(columns: dict[str, str], source: str, tag_key: str, project_key: str) -> _Spec:
    col = lambda *names: find_column(columns, *names)  # noqa: E731
    start, consumed, pricing = focus_required_columns(columns, source)
    qty_col = consumed or pricing
    unit_col = col("ConsumedUnit") if consumed else col("PricingUnit")
    category = col("ChargeCategory")
    aws = [as_text(sql_ref(c)) for c in (col("SkuMeter"), col("x_UsageType")) if c]
    aws_meter = f"COALESCE({', '.join(aws)})" if aws else "CAST(NULL AS VARCHAR)"
    named = [as_text(sql_ref(c)) for c in (col("x_SkuMeterName"), col("SkuMeter"), col("ChargeDescription")) if c]
    named_meter = f"COALESCE({', '.join(named)})" if named else "CAST(NULL AS VARCHAR)"
    effective, billed = col("EffectiveCost"), col("BilledCost")
    costs = [as_double(sql_ref(c)) for c in (effective, billed) if c]
    team, bad, tags_col = _tags(columns, "focus", tag_key)
    project, pbad, _ = _tags(columns, "focus", project_key)
    return _Spec(start=as_timestamptz(sql_ref(start)), start_column=start,
                 quantity=as_double(sql_ref(qty_col)), quantity_column=qty_col,
                 is_usage=f"lower({as_text(sql_ref(category))}) = 'usage'" if category else "TRUE",
                 aws_meter=aws_meter, named_meter=named_meter,
                 unit=as_text(sql_ref(unit_col)) if unit_col else "CAST(NULL AS VARCHAR)",
                 cost=f"COALESCE({', '.join(costs)})" if costs else "CAST(NULL AS DOUBLE)",
                 cost_column=effective or billed, team=team, project=project, tags_bad=f"({bad} OR {pbad})",
                 tags_column=tags_col, resource=_resource_sql(col("ResourceId")))


def _gcp_spec(columns: dict[str, str], source: str, tag_key: str, project_key: str) -> _Spec:
    from usage.ingest.gcp import _credits_sql, _field, _label_sql, required_columns

    start, (description, _), (amount, amount_col) = required_columns(columns, source)
    unit, _ = _field(columns, "usage", "unit")
    pricing_amount, _ = _field(columns, "usage", "amount_in_pricing_units")
    pricing_unit, _ = _field(columns, "usage", "pricing_unit")
    if pricing_amount and pricing_unit:
        in_pricing = f"({as_double(pricing_amount)} IS NOT NULL AND {as_text(pricing_unit)} IS NOT NULL)"
        quantity = f"CASE WHEN {in_pricing} THEN {as_double(pricing_amount)} ELSE {as_double(amount)} END"
        unit_sql = (f"CASE WHEN {in_pricing} THEN {as_text(pricing_unit)} ELSE "
                    f"{as_text(unit) if unit else 'CAST(NULL AS VARCHAR)'} END")
    else:
        quantity, unit_sql = as_double(amount), as_text(unit) if unit else "CAST(NULL AS VARCHAR)"
    cost_type = find_column(columns, "cost_type")
    cost_col = find_column(columns, "cost")
    credit_total, _ = _credits_sql(columns)
    team, bad, labels_col = _label_sql(columns, tag_key)
    project, pbad, _ = _label_sql(columns, project_key)
    project_id, _ = _field(columns, "project", "id")
    if project_id:  # the Google Cloud project when no project label
        project = f"COALESCE({project}, {as_text(project_id)})"
    is_usage = (f"COALESCE(lower({as_text(f's.{sql_ident(cost_type)}')}) = 'regular', TRUE)" if cost_type
                else "TRUE")
    return _Spec(start=as_timestamptz(f"s.{sql_ident(start)}"), start_column=start, quantity=quantity,
                 quantity_column=amount_col or "usage.amount", is_usage=is_usage,
                 aws_meter="CAST(NULL AS VARCHAR)", named_meter=as_text(description), unit=unit_sql,
                 cost=(f"{as_double(f's.{sql_ident(cost_col)}')} + {credit_total}" if cost_col
                       else "CAST(NULL AS DOUBLE)"),
                 cost_column=cost_col, team=team, project=project, tags_bad=f"({bad} OR {pbad})",
                 tags_column=labels_col)


def _row_sql(scan: str, spec: _Spec, extra: str = "") -> str:
    return f"""SELECT {extra}
        {spec.start} AS ts, {spec.quantity} AS qty, {spec.cost} AS cost,
        COALESCE({spec.is_usage}, FALSE) AS is_usage, {spec.aws_meter} AS aws_meter,
        {spec.named_meter} AS named_meter, {spec.unit} AS unit, {spec.team} AS team_raw,
        {spec.project} AS project_raw, COALESCE({spec.tags_bad}, FALSE) AS tags_bad,
        {spec.resource} AS resource
        FROM {scan} AS s"""


def load_data_lines(path: str | Path, fmt: str = "auto", *, tag_key: str = "team",
                    project_key: str = "project") -> tuple[pd.DataFrame, DataReport]:
    """Read the storage and data-transfer lines of a billing export into the canonical data-usage frame.

    Args:
        path: ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq`` export, or a folder of its parts.
        fmt: ``auto`` (detect from the header), ``cur``, ``focus`` or ``gcp``.
        tag_key: cost-allocation tag holding the team.
        project_key: cost-allocation tag holding the project.

    Returns:
        (frame with :data:`DATA_COLUMNS`, sorted by month, team, project, category, class; report).

    Raises:
        UsageError: unreadable file, a format without billing lines, no storage or transfer rows, or a data row
            with an unreadable start, quantity, cost or tag cell (one line: file, row, column, fix).
    """
    with open_export(path, "gpuplan-data-") as ex:
        if fmt == "auto":
            fmt = detect_format(list(ex.columns), ex.source)
        if fmt not in ("cur", "focus", "gcp"):
            raise UsageError(ex.source, f"a {FORMAT_LABELS.get(fmt, fmt)} file has no storage or transfer lines",
                             fix="give an AWS CUR (2.0 or legacy), FOCUS or Google Cloud billing export")
        make = {"cur": _cur_spec, "focus": _focus_spec, "gcp": _gcp_spec}[fmt]
        spec = make(ex.columns, ex.source, tag_key, project_key)
        return _load(ex.con, ex.files, ex.kind, ex.source, fmt, spec)


DETAIL_COLUMNS = ("month", "team", "project", "usage_type", "resource_id", "quantity", "cost_usd")
DETAIL_USAGE = re.compile(r"Requests-(?:[A-Z]+-)?Tier[0-9]|Retrieval-[A-Z]+|EBS:SnapshotUsage"
                          r"|EBS:VolumeUsage(?:\.[a-z0-9]+)?")
"""AWS usage types (without region prefix) that :func:`load_detail_lines` keeps: S3 request and retrieval counts,
EBS volume and snapshot GB-months."""


def load_detail_lines(path: str | Path, fmt: str = "auto", *, tag_key: str = "team",
                      project_key: str = "project") -> pd.DataFrame:
    """The per-resource detail the data-usage frame drops: S3 request and retrieval lines, EBS volume and snapshot
    lines with their resource ids (AWS CUR and FOCUS exports of AWS).

    Which S3 storage is read shows only here: ``Requests-Tier2`` (GET and other reads on Standard),
    ``Requests-SIA-Tier2``, ``Retrieval-SIA`` and the like, per month, team and project (the bucket's tags). The
    export cannot tell which objects or prefixes were read, nor an object's last-access date (S3 server access logs
    or Storage Class Analysis can). ``resource_id`` is CUR ``line_item_resource_id`` or FOCUS ``ResourceId`` (the
    bucket, ``vol-...`` or ``snap-...`` id), empty when the export has no such column.

    Args:
        path: the billing export (as :func:`load_data_lines`).
        fmt: ``auto``, ``cur`` or ``focus``; other formats (Google Cloud) give an empty frame.
        tag_key: cost-allocation tag holding the team.
        project_key: cost-allocation tag holding the project.

    Returns:
        Frame with :data:`DETAIL_COLUMNS`: ``usage_type`` without its region prefix; ``quantity`` in the usage
        type's unit (requests, GB retrieved, GB-month); ``cost_usd`` USD. Rows whose start or tags cannot be read are
        left out (:func:`load_data_lines` reports those for the data lines).
    """
    with open_export(path, "gpuplan-data-") as ex:
        if fmt == "auto":
            fmt = detect_format(list(ex.columns), ex.source)
        if fmt not in ("cur", "focus"):
            return pd.DataFrame({c: pd.Series(dtype=float if c in ("quantity", "cost_usd") else object)
                                 for c in DETAIL_COLUMNS})
        make = {"cur": _cur_spec, "focus": _focus_spec}[fmt]
        spec = make(ex.columns, ex.source, tag_key, project_key)
        sql = f"""
            SELECT strftime(date_trunc('month', timezone('UTC', ts)), '%Y-%m') AS month,
                   COALESCE(team_raw, {sql_str(UNALLOCATED_TEAM)}) AS team,
                   COALESCE(project_raw, {sql_str(UNALLOCATED_TEAM)}) AS project,
                   aws_meter, COALESCE(resource, '') AS resource_id,
                   sum(COALESCE(qty, 0)) AS quantity, sum(COALESCE(cost, 0)) AS cost_usd
            FROM ({_row_sql(scan_sql(ex.files, ex.kind), spec)})
            WHERE is_usage AND ts IS NOT NULL AND aws_meter IS NOT NULL AND NOT tags_bad
            GROUP BY ALL"""
        try:
            rows = ex.con.sql(sql).df()
        except duckdb.Error as error:
            raise read_error(error, ex.kind, ex.source) from None
    bare = {m: REGION_PREFIX.sub("", str(m).strip(), count=1) for m in rows["aws_meter"].unique()}
    rows["usage_type"] = rows["aws_meter"].map(bare)
    rows = rows[[DETAIL_USAGE.fullmatch(u) is not None for u in rows["usage_type"]]]
    return (rows[list(DETAIL_COLUMNS)].astype({"quantity": float, "cost_usd": float})
            .sort_values(["month", "team", "project", "usage_type", "resource_id"], kind="stable")
            .reset_index(drop=True))


def _load(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str, fmt: str,
          spec: _Spec) -> tuple[pd.DataFrame, DataReport]:
    scan = scan_sql(files, kind)
    sql = f"""
        SELECT strftime(date_trunc('month', timezone('UTC', ts)), '%Y-%m') AS month,
               COALESCE(team_raw, {sql_str(UNALLOCATED_TEAM)}) AS team, team_raw IS NULL AS untagged,
               COALESCE(project_raw, {sql_str(UNALLOCATED_TEAM)}) AS project,
               is_usage, aws_meter, named_meter, unit,
               ts IS NULL AS bad_start, qty IS NULL AS bad_qty, tags_bad,
               count(*) AS n_rows, sum(qty) AS quantity, sum(cost) AS cost_usd
        FROM ({_row_sql(scan, spec)})
        GROUP BY ALL"""
    try:
        groups = con.sql(sql).df()
    except duckdb.Error as error:
        raise read_error(error, kind, source) from None
    rows_read = int(groups["n_rows"].sum())
    groups = groups[groups["is_usage"].astype(bool)]
    keys = groups[["aws_meter", "named_meter", "unit"]].drop_duplicates()
    classes: dict[tuple, tuple[str, str, float, str] | None] = {}
    unconverted: dict[str, int] = {}
    for aws_meter, named_meter, unit in keys.itertuples(index=False):
        aws_meter = None if pd.isna(aws_meter) else str(aws_meter)
        named_meter = None if pd.isna(named_meter) else str(named_meter)
        unit = None if pd.isna(unit) else str(unit)
        # an AWS usage type (no spaces, with ':' or '-') decides alone; a meter name is read otherwise
        is_aws = fmt == "cur" or (aws_meter is not None and re.fullmatch(r"[^\s]*[:-][^\s]*", aws_meter) is not None)
        found = classify_aws(aws_meter) if is_aws else classify_named(named_meter)
        hit = None
        if found is not None:
            category, name = found
            if name.endswith(("-iops", "-throughput")):
                conv = (1.0, "IOPS-month" if name.endswith("-iops") else "MiBps-month")
            else:
                conv = unit_factor(unit, category, is_aws)
            if conv is None:
                unconverted[str(unit)] = unconverted.get(str(unit), 0) + 1
                conv = (float("nan"), "unknown")
            hit = (category, name, *conv)
        classes[(aws_meter, named_meter, unit)] = hit
    hits = [classes[(None if pd.isna(a) else str(a), None if pd.isna(n) else str(n), None if pd.isna(u) else str(u))]
            for a, n, u in groups[["aws_meter", "named_meter", "unit"]].itertuples(index=False)]
    keep = [h is not None for h in hits]
    data = groups.loc[keep].copy()
    kept_hits = [h for h in hits if h is not None]
    if data.empty:
        raise UsageError(source, f"no storage or data-transfer usage rows found among {rows_read:,} rows",
                         column=spec.quantity_column,
                         fix="export the months with S3, EBS or data transfer usage (usage types such as "
                             "TimedStorage-ByteHrs, EBS:VolumeUsage.gp3, DataTransfer-Out-Bytes)")
    for problem, column in (("bad_start", spec.start_column), ("bad_qty", spec.quantity_column),
                            ("tags_bad", spec.tags_column)):
        if data[problem].astype(bool).any():
            _raise_first(con, files, kind, source, spec, data, problem, column)
    data["category"] = [h[0] for h in kept_hits]
    data["class"] = [h[1] for h in kept_hits]
    data["quantity"] = data["quantity"].astype(float) * [h[2] for h in kept_hits]
    data["unit"] = [h[3] for h in kept_hits]
    data["cost_usd"] = data["cost_usd"].astype(float).fillna(0.0)
    untagged = float(data.loc[data["untagged"].astype(bool), "cost_usd"].sum())
    n_data = int(data["n_rows"].sum())
    frame = (data.groupby(["month", "team", "project", "category", "class", "unit"], as_index=False)
             [["quantity", "cost_usd"]].sum(min_count=1))
    frame = frame[list(DATA_COLUMNS)].sort_values(["month", "team", "project", "category", "class"],
                                                  kind="stable").reset_index(drop=True)
    notes = []
    if rows_read > n_data:
        notes.append(f"{rows_read - n_data:,} rows are not storage or data-transfer usage (compute, requests, "
                     "fees, support, tax, credits) and are not in the data costs")
    if unconverted:
        names = ", ".join(f"{short(u)} ({n} meter{'' if n == 1 else 's'})" for u, n in unconverted.items())
        notes.append(f"units not converted to GB-month or GB, cost kept and quantity left empty: {names}")
    report = DataReport(source=source, format=fmt, rows_read=rows_read, data_rows=n_data,
                        cost_usd=float(frame["cost_usd"].sum()), untagged_cost_usd=untagged, notes=tuple(notes))
    return frame, report


def _raise_first(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str, source: str, spec: _Spec,
                 data: pd.DataFrame, problem: str, column: str | None) -> None:
    """Name the first data row (in file order) with ``problem`` and raise its UsageError."""
    meters = data.loc[data[problem].astype(bool), ["aws_meter", "named_meter"]]
    cond = " OR ".join(
        f"(aws_meter IS NOT DISTINCT FROM {sql_str(a) if isinstance(a, str) else 'NULL'} AND "
        f"named_meter IS NOT DISTINCT FROM {sql_str(n) if isinstance(n, str) else 'NULL'})"
        for a, n in meters.drop_duplicates().itertuples(index=False))
    test = {"bad_start": "ts IS NULL", "bad_qty": "qty IS NULL", "tags_bad": "tags_bad"}[problem]
    raw = f"CAST(s.{sql_ident(column)} AS VARCHAR)" if column else "NULL"
    scan = f"(SELECT row_number() OVER () AS __rn, * FROM {scan_sql(files, kind)})"
    sql = (f"SELECT __rn, __raw FROM ({_row_sql(scan, spec, extra=f's.__rn AS __rn, {raw} AS __raw,')}) "
           f"WHERE is_usage AND ({cond}) AND {test} ORDER BY __rn LIMIT 1")
    found, _ = first_in_file_order(con, sql)
    row = value = None
    if found is not None:
        row = csv_row(int(found[0]) - 1) if kind == "csv" and len(files) == 1 else int(found[0])
        value = found[1]
    if problem == "bad_start":
        raise UsageError(source, f"cannot parse charge period start {short(value)!r}", row=row, column=column,
                         fix="use ISO 8601 timestamps such as 2025-01-01T13:00:00Z")
    if problem == "bad_qty":
        raise UsageError(source, f"usage quantity {short(value)!r} is not a number", row=row, column=column,
                         fix="usage quantities must be numbers such as 1024.0")
    raise UsageError(source, f"tags value {short(value)!r} is not a JSON object", row=row, column=column,
                     fix='write tags as JSON such as {"team": "ml-research"}')


def data_costs(frame: pd.DataFrame) -> pd.DataFrame:
    """Per team and month: storage, egress and other transfer, with the month-on-month change of the total.

    Args:
        frame: the data-usage frame of :func:`load_data_lines`.

    Returns:
        Columns ``month, team, storage_usd, storage_gb_month, egress_usd, egress_gb, transfer_usd, total_usd,
        total_change_usd, total_change_pct`` (USD; GB-month; GB). ``egress`` is internet egress; ``transfer_usd``
        is every other transfer (inter-region, inter-AZ, NAT processing, ingress); storage is object storage,
        block volumes and snapshots. Every team has a row in every month of the frame (0 without data lines); the
        change is against the team's previous month (empty for the first month; the percentage is empty when the
        previous total is 0). Amounts are rounded to 6 decimals (float noise only).
    """
    f = frame.copy()
    storage = f["category"] != TRANSFER
    egress = (f["category"] == TRANSFER) & (f["class"] == INTERNET_EGRESS)
    f["storage_usd"] = f["cost_usd"].where(storage, 0.0)
    f["storage_gb_month"] = f["quantity"].where(storage & (f["unit"] == GB_MONTH), 0.0).fillna(0.0)
    f["egress_usd"] = f["cost_usd"].where(egress, 0.0)
    f["egress_gb"] = f["quantity"].where(egress, 0.0).fillna(0.0)
    f["transfer_usd"] = f["cost_usd"].where(~storage & ~egress, 0.0)
    cols = ["storage_usd", "storage_gb_month", "egress_usd", "egress_gb", "transfer_usd"]
    out = f.groupby(["month", "team"], as_index=False)[cols].sum()
    # every team in every month of the frame, so a month without data lines is a 0 (and its change shows)
    grid = pd.MultiIndex.from_product([sorted(out["month"].unique()), sorted(out["team"].unique())],
                                      names=["month", "team"])
    out = out.set_index(["month", "team"]).reindex(grid, fill_value=0.0).reset_index()
    out[cols] = out[cols].round(6)
    out = out.sort_values(["team", "month"], kind="stable")
    out["total_usd"] = out["storage_usd"] + out["egress_usd"] + out["transfer_usd"]
    prev = out.groupby("team")["total_usd"].shift(1)
    out["total_change_usd"] = out["total_usd"] - prev
    out["total_change_pct"] = (out["total_change_usd"] / prev.where(prev != 0)).astype(float)
    return out.sort_values(["month", "team"], kind="stable").reset_index(drop=True)


def by_class(frame: pd.DataFrame) -> pd.DataFrame:
    """Per team, month, category and class: quantity, unit and cost (the data-usage frame without projects)."""
    return (frame.groupby(["month", "team", "category", "class", "unit"], as_index=False)[["quantity", "cost_usd"]]
            .sum(min_count=1).sort_values(["month", "team", "category", "class"], kind="stable")
            .reset_index(drop=True))


def totals(frame: pd.DataFrame) -> Mapping[str, float]:
    """Cost per category over the whole frame, USD."""
    return {c: float(frame.loc[frame["category"] == c, "cost_usd"].sum()) for c in CATEGORIES}
