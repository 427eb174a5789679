"""Commitments in use: an inventory from billing exports, and the under-used commitment check.

**Inventory** (``gpuplan commitments --billing FILE``). Every owned RI, Savings Plan, reservation, CUD or capacity
reservation that a billing export shows, per calendar month of use: how much of it was used, how much was not, and
the dollars of the unused part. Read from

* FOCUS 1.0-1.3 rows with a ``CommitmentDiscountId`` and ``ChargeCategory = 'Usage'``: ``CommitmentDiscountStatus``
  ``Used`` rows are the used part, ``Unused`` rows the unused part; the quantity is ``CommitmentDiscountQuantity``
  (in ``CommitmentDiscountUnit``) when the export has it, else ``ConsumedQuantity`` (hours) for usage-based and
  ``EffectiveCost`` (USD) for spend-based commitments; unused dollars are the ``EffectiveCost`` of the ``Unused``
  rows. Purchase rows (``ChargeCategory = 'Purchase'``) are left out, as FOCUS prescribes for utilisation. Rows
  with a ``CapacityReservationId`` and ``CapacityReservationStatus`` ``Used``/``Unused`` make capacity
  reservations the same way (quantity ``ConsumedQuantity`` hours);
* AWS CUR (2.0 or legacy): ``DiscountedUsage`` rows are hours used of the reservation in
  ``reservation_reservation_a_r_n``; its ``RIFee`` row gives the unused hours (``reservation_unused_quantity``),
  the unused dollars (``reservation_unused_recurring_fee`` + ``reservation_unused_amortized_upfront_fee_for_billing_
  period``), the count, the term end and the term/payment (``pricing_*``); ``SavingsPlanRecurringFee`` rows give a
  Savings Plan's commitment of the hour (``savings_plan_total_commitment_to_date``, USD) and the part used
  (``savings_plan_used_commitment``).

Utilisation = used / (used + unused), in the commitment's own unit (hours for RIs, reservations and CUDs; USD for
spend-based plans). A row that covers several hours (a monthly ``RIFee``) counts in a time window pro rata to its
hours inside the window.

**Under-used commitments** (``commitment_utilization:`` in the policy; :func:`under_used`). Over the last N days
(default 14) before the newest billed hour, a commitment whose utilisation is below the threshold (default 0.8)
raises a finding with its unused dollars (also per 30 days) and the teams that could move onto it: teams whose GPU
usage in the same window ran on on-demand or spot on an instance the commitment covers (the same AWS instance
family for an RI or EC2 Instance Savings Plan, any GPU for a Compute Savings Plan, the same GPU model otherwise),
with their GPU-hours. From a plan (:func:`plan_under_used`), each commitment of ``plan.json`` is measured against
the usage the same way the serving rule bills it: per hour the GPU model's demand fills its commitments (shared
pro rata), and teams whose demand overflowed to on-demand or spot in other hours of the window could shift work
into the unused hours.

Units: hours, GPU-hours, USD; utilisation 0-1; times naive UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from usage import schema as S
from usage.ingest.azure import AZURE_GPU_SIZES, meter_size_sql
from usage.ingest.readers import (
    as_double,
    as_text,
    as_timestamptz,
    find_column,
    keyed_value,
    open_export,
    read_error,
    scan_sql,
    sql_ident,
)
from usage.schema import UsageError

LEDGER_COLUMNS = ("commitment_id", "provider", "type", "instance_type", "scope", "term_start", "term_end", "option",
                  "count",
                  "unit", "start", "end", "used_quantity", "unused_quantity", "used_usd", "unused_usd")
INVENTORY_COLUMNS = ("commitment_id", "provider", "type", "instance_type", "gpu_model", "scope", "count", "option",
                     "term_end", "month", "unit", "used_quantity", "unused_quantity", "utilization", "used_usd",
                     "unused_usd")
FINDING_COLUMNS = ("commitment_id", "type", "instance_type", "gpu_model", "window_start", "window_end",
                   "utilization", "unused_quantity", "unit", "unused_gpu_hours", "unused_usd", "unused_usd_per_30_days",
                   "movable_teams", "message")
EXISTING_COLUMNS = ("instance_type", "option", "count", "start", "expiry", "commitment_usd_per_hour", "instance_family")
SP_KINDS = {"compute savings plan": "compute_sp", "ec2 instance savings plan": "ec2_instance_sp"}
"""Savings-plan types of the ledger (lower case) and the prefix of their purchase option."""
DEFAULT_BELOW = 0.8
DEFAULT_LOOKBACK_DAYS = 14
@dataclass(frozen=True)
class UtilizationRule:
    """Alert when a commitment's utilisation over the last ``lookback_days`` is below ``below``."""

    below: float = DEFAULT_BELOW
    lookback_days: int = DEFAULT_LOOKBACK_DAYS


@dataclass(frozen=True)
class Ledger:
    """Commitment rows of a billing export (:data:`LEDGER_COLUMNS`), one per commitment and charge period."""

    rows: pd.DataFrame
    source: str
    format: str
    notes: tuple[str, ...] = ()


def _instance_of(text: str) -> str:
    """SQL: an instance type named at the end of an AWS usage type (``USE1-HeavyUsage:p4d.24xlarge``)."""
    return f"NULLIF(regexp_extract({text}, ':([A-Za-z0-9][A-Za-z0-9.\\-]*)$', 1), '')"


def _family(instance_type: object) -> str | None:
    text = "" if instance_type is None or (isinstance(instance_type, float) and math.isnan(instance_type)) \
        else str(instance_type)
    return text.split(".")[0] if "." in text else None


def _norm_type(text: object, fallback: str) -> str:
    """One name per commitment type from the provider's words (``ComputeSavingsPlans``, ``EC2InstanceSavingsPlans``,
    ``Reserved Instance``, ``Reservation``, ``Committed Use Discount``, ``Savings Plan``)."""
    raw = str(text or "").strip()
    low = re.sub(r"[^a-z0-9]", "", raw.lower())
    if "saving" in low:
        if "ec2instance" in low or "instance" in low:
            return "EC2 Instance Savings Plan"
        return "Compute Savings Plan" if "compute" in low else "Savings Plan"
    if "committeduse" in low or low in ("cud", "commitment"):
        return "Committed Use Discount"
    if "reservedinstance" in low or low == "reserved" or low == "ri":
        return "Reserved Instance"
    if "reservation" in low:
        return "Reservation"
    return raw or fallback


def read_ledger(path: str | Path) -> Ledger:
    """Read the commitment rows of a FOCUS or CUR billing export (module docstring).

    Raises:
        UsageError: unreadable file, a file with neither FOCUS commitment columns nor CUR line items, or no
            commitment rows.
    """
    source = str(path)
    with open_export(path, "gpuplan-commitments-") as ex:
        con, files, kind, columns = ex.con, ex.files, ex.kind, ex.columns
        if find_column(columns, "CommitmentDiscountId", "CapacityReservationId"):
            rows, notes, fmt = _focus_ledger(con, files, kind, source, columns), [], "focus"
        elif find_column(columns, "line_item_line_item_type"):
            rows, notes, fmt = _cur_ledger(con, files, kind, source, columns)
        else:
            raise UsageError(source, "no commitment columns (FOCUS CommitmentDiscountId or CUR "
                             "line_item_line_item_type)", column="CommitmentDiscountId",
                             fix="export FOCUS 1.0+ with the commitment discount columns, or AWS CUR with RI and "
                                 "Savings Plan line items")
    if rows.empty:
        raise UsageError(source, "no commitment rows (no Used/Unused commitment discount or reservation rows)",
                         column="CommitmentDiscountStatus" if fmt == "focus" else "line_item_line_item_type",
                         fix="export a period in which commitments were active")
    return Ledger(rows[list(LEDGER_COLUMNS)], source, fmt, tuple(notes))


def _query(con, sql: str, kind: str, source: str) -> pd.DataFrame:
    try:
        return con.execute(sql).df()
    except Exception as error:  # duckdb.Error: a file DuckDB cannot read
        if type(error).__module__.startswith(("duckdb", "_duckdb")):
            raise read_error(error, kind, source) from None
        raise


def _focus_ledger(con, files: list[Path], kind: str, source: str, columns: dict[str, str]) -> pd.DataFrame:
    def col(*names: str) -> str | None:
        return find_column(columns, *names)

    def ref(name: str | None) -> str:
        return f"s.{sql_ident(name)}" if name else "NULL"

    def text(*names: str) -> str:
        return as_text(ref(col(*names)))

    start, end = col("ChargePeriodStart"), col("ChargePeriodEnd")
    if start is None:
        raise UsageError(source, "missing column 'ChargePeriodStart' for a FOCUS export", column="ChargePeriodStart",
                         fix="export FOCUS with ChargePeriodStart and ChargePeriodEnd")
    candidates = [_instance_of(text(c)) for c in ("SkuMeter", "x_UsageType") if col(c)]
    for d in ("SkuPriceDetails", "x_SkuDetails"):
        if col(d):
            value, _ = keyed_value(ref(col(d)), columns[col(d)], ["InstanceType", "x_InstanceType", "ServiceType"])
            candidates.append(value)
    candidates += [meter_size_sql(text(c)) for c in ("x_SkuMeterName", "SkuMeter") if col(c)]
    itype = f"COALESCE({', '.join(candidates)})" if candidates else "CAST(NULL AS VARCHAR)"
    cost = (f"COALESCE({as_double(ref(col('EffectiveCost')))}, {as_double(ref(col('BilledCost')))}, 0.0)")
    consumed = f"COALESCE({as_double(ref(col('ConsumedQuantity')))}, {as_double(ref(col('PricingQuantity')))})"
    category = f"lower(COALESCE({text('ChargeCategory')}, 'usage'))"
    ccat = f"lower(COALESCE({text('CommitmentDiscountCategory')}, ''))"
    cdq = col("CommitmentDiscountQuantity")
    qty = (f"COALESCE({as_double(ref(cdq))}, CASE WHEN {ccat} = 'spend' THEN {cost} ELSE {consumed} END)"
           if cdq else f"CASE WHEN {ccat} = 'spend' THEN {cost} ELSE {consumed} END")
    unit = (f"COALESCE({text('CommitmentDiscountUnit')}, CASE WHEN {ccat} = 'spend' THEN 'USD' "
            f"ELSE COALESCE({text('ConsumedUnit')}, 'Hours') END)")
    provider = f"COALESCE({text('ServiceProviderName', 'ProviderName')}, '')"
    end_sql = as_timestamptz(ref(end)) if end else "NULL"
    parts = []
    if col("CommitmentDiscountId"):
        status = f"lower(COALESCE({text('CommitmentDiscountStatus')}, ''))"
        ctype = f"COALESCE({text('CommitmentDiscountType')}, CASE WHEN {ccat} = 'spend' THEN 'Savings Plan' " \
                f"ELSE 'Reservation' END)"
        parts.append(f"""SELECT {text('CommitmentDiscountId')} AS commitment_id, {provider} AS provider,
            {ctype} AS type, {itype} AS itype, {status} AS status, {qty} AS qty, {unit} AS unit, {cost} AS cost,
            {as_timestamptz(ref(start))} AS ts, {end_sql} AS te
            FROM {scan_sql(files, kind)} AS s
            WHERE {text('CommitmentDiscountId')} IS NOT NULL AND {category} = 'usage'
              AND {status} IN ('used', 'unused')""")
    if col("CapacityReservationId") and col("CapacityReservationStatus"):
        status = f"lower(COALESCE({text('CapacityReservationStatus')}, ''))"
        parts.append(f"""SELECT {text('CapacityReservationId')} AS commitment_id, {provider} AS provider,
            'Capacity Reservation' AS type, {itype} AS itype, {status} AS status, {consumed} AS qty,
            COALESCE({text('ConsumedUnit')}, 'Hours') AS unit, {cost} AS cost,
            {as_timestamptz(ref(start))} AS ts, {end_sql} AS te
            FROM {scan_sql(files, kind)} AS s
            WHERE {text('CapacityReservationId')} IS NOT NULL AND {category} = 'usage'
              AND {status} IN ('used', 'unused')""")
    if not parts:
        return pd.DataFrame(columns=list(LEDGER_COLUMNS))
    sql = f"""SELECT commitment_id, any_value(provider) AS provider, any_value(type) AS type,
            mode(CASE WHEN status = 'unused' THEN itype END) AS unused_itype, mode(itype) AS any_itype,
            any_value(unit) AS unit, timezone('UTC', ts) AS start, timezone('UTC', te) AS "end",
            COALESCE(sum(CASE WHEN status = 'used' THEN qty END), 0) AS used_quantity,
            COALESCE(sum(CASE WHEN status = 'unused' THEN qty END), 0) AS unused_quantity,
            COALESCE(sum(CASE WHEN status = 'used' THEN cost END), 0) AS used_usd,
            COALESCE(sum(CASE WHEN status = 'unused' THEN cost END), 0) AS unused_usd,
            count(CASE WHEN ts IS NULL THEN 1 END) AS bad_ts
        FROM ({' UNION ALL '.join(parts)}) GROUP BY commitment_id, ts, te"""
    rows = _query(con, sql, kind, source)
    if (rows["bad_ts"] > 0).any():
        raise UsageError(source, "a commitment row has a ChargePeriodStart that is not a time", column=start,
                         fix="use ISO 8601 timestamps such as 2025-11-01T00:00:00Z")
    # the commitment's own instance type: the one its unused rows name, else the one its use names most
    rows["instance_type"] = rows["unused_itype"].fillna(rows["any_itype"])
    first = rows.groupby("commitment_id")["instance_type"].agg(lambda v: v.dropna().mode().iloc[0]
                                                               if v.notna().any() else None)
    rows["instance_type"] = rows["commitment_id"].map(first)
    rows["type"] = rows["type"].map(lambda t: _norm_type(t, "Reservation"))
    rows["scope"] = [_scope(t, i) for t, i in zip(rows["type"], rows["instance_type"], strict=True)]
    rows.loc[rows["scope"] == "any GPU", "instance_type"] = None
    rows["term_start"] = pd.NaT
    rows["term_end"] = pd.NaT
    rows["option"] = None
    rows["count"] = np.nan
    return rows


def _scope(ctype: str, instance_type: object) -> str:
    """What usage a commitment covers: ``any GPU`` (Compute SP), ``family <f>``, ``instance <t>`` or ``unknown``."""
    if ctype == "Compute Savings Plan" or ctype == "Savings Plan":
        return "any GPU"
    if instance_type is None or (isinstance(instance_type, float) and math.isnan(instance_type)):
        return "unknown"
    fam = _family(instance_type)
    return f"family {fam}" if fam else f"instance {instance_type}"


_TERMS = {"1yr": "1y", "1 yr": "1y", "1 year": "1y", "3yr": "3y", "3 yr": "3y", "3 year": "3y", "1y": "1y", "3y": "3y"}
_PAYMENTS = {"no upfront": "no", "partial upfront": "partial", "all upfront": "all", "noupfront": "no",
             "partialupfront": "partial", "allupfront": "all"}


def _option(kind: object, term: object, payment: object, prefix_map: Mapping[str, str]) -> str | None:
    """``reserved_1y_no_upfront`` style name from CUR pricing fields, or None when one is unknown."""
    t = _TERMS.get(str(term or "").strip().lower())
    p = _PAYMENTS.get(str(payment or "").strip().lower())
    k = prefix_map.get(str(kind or "").strip().lower())
    return f"{k}_{t}_{p}_upfront" if t and p and k else None


def _cur_ledger(con, files: list[Path], kind: str, source: str,
                columns: dict[str, str]) -> tuple[pd.DataFrame, list[str], str]:
    def col(*names: str) -> str | None:
        return find_column(columns, *names)

    def num(*names: str) -> str:
        c = col(*names)
        return f"COALESCE({as_double(f's.{sql_ident(c)}')}, 0.0)" if c else "0.0"

    def text(*names: str) -> str:
        c = col(*names)
        return as_text(f"s.{sql_ident(c)}") if c else "CAST(NULL AS VARCHAR)"

    def ts(*names: str) -> str:
        c = col(*names)
        return f"timezone('UTC', {as_timestamptz(f's.{sql_ident(c)}')})" if c else "CAST(NULL AS TIMESTAMP)"

    item = text("line_item_line_item_type")
    usage_type = text("line_item_usage_type")
    start = ts("line_item_usage_start_date")
    end = ts("line_item_usage_end_date")
    ri_arn, sp_arn = text("reservation_reservation_a_r_n"), text("savings_plan_savings_plan_a_r_n")
    sql = f"""
        SELECT {ri_arn} AS commitment_id, 'aws' AS provider, 'Reserved Instance' AS type,
            {_instance_of(usage_type)} AS instance_type, {start} AS start, {end} AS "end",
            CASE WHEN {item} = 'DiscountedUsage' THEN {num('line_item_usage_amount')} ELSE 0.0 END AS used_quantity,
            CASE WHEN {item} = 'RIFee' THEN {num('reservation_unused_quantity')} ELSE 0.0 END AS unused_quantity,
            CASE WHEN {item} = 'DiscountedUsage' THEN {num('reservation_effective_cost')} ELSE 0.0 END AS used_usd,
            CASE WHEN {item} = 'RIFee' THEN {num('reservation_unused_recurring_fee')}
                 + {num('reservation_unused_amortized_upfront_fee_for_billing_period')} ELSE 0.0 END AS unused_usd,
            'Hours' AS unit, {ts('reservation_end_time')} AS term_end,
            CASE WHEN {item} = 'RIFee' THEN TRY_CAST({text('reservation_number_of_reservations')} AS DOUBLE) END
                AS count,
            {text('pricing_offering_class')} AS offering_class, {text('pricing_lease_contract_length')} AS term,
            {text('pricing_purchase_option')} AS payment, {ts('reservation_start_time')} AS term_start,
            {start} IS NULL AS bad_ts
        FROM {scan_sql(files, kind)} AS s
        WHERE {item} IN ('DiscountedUsage', 'RIFee') AND {ri_arn} IS NOT NULL
        UNION ALL
        SELECT {sp_arn}, 'aws', COALESCE({text('savings_plan_offering_type')}, 'Savings Plan'),
            {text('savings_plan_instance_type_family')}, {start}, {end},
            {num('savings_plan_used_commitment')},
            GREATEST({num('savings_plan_total_commitment_to_date')} - {num('savings_plan_used_commitment')}, 0.0),
            {num('savings_plan_used_commitment')},
            GREATEST({num('savings_plan_total_commitment_to_date')} - {num('savings_plan_used_commitment')}, 0.0),
            'USD', {ts('savings_plan_end_time')}, NULL, 'savings plan', {text('savings_plan_purchase_term')},
            {text('savings_plan_payment_option')}, {ts('savings_plan_start_time')}, {start} IS NULL
        FROM {scan_sql(files, kind)} AS s
        WHERE {item} = 'SavingsPlanRecurringFee' AND {sp_arn} IS NOT NULL
    """
    rows = _query(con, sql, kind, source)
    if rows["bad_ts"].any():
        raise UsageError(source, "a commitment line item has a usage start that is not a time",
                         column="line_item_usage_start_date", fix="use ISO 8601 timestamps")
    if rows.empty:
        return rows, [], "cur"
    rows["type"] = rows["type"].map(lambda t: _norm_type(t, "Savings Plan"))
    by_id = rows.groupby("commitment_id")
    for c in ("instance_type", "term_end", "count", "offering_class", "term", "payment", "term_start"):
        rows[c] = rows["commitment_id"].map(by_id[c].agg(lambda v: v.dropna().iloc[0] if v.notna().any() else None))
    rows["option"] = [
        _option(k, t, p, {"standard": "reserved", "convertible": "convertible"}) if ct == "Reserved Instance"
        else _option(ct, t, p, SP_KINDS) if ct.lower() in SP_KINDS else None
        for k, t, p, ct in zip(rows["offering_class"], rows["term"], rows["payment"], rows["type"], strict=True)]
    rows["scope"] = [("any GPU" if ct == "Compute Savings Plan" else f"family {it}" if ct.startswith("EC2") and it
                      else _scope(ct, it)) for ct, it in zip(rows["type"], rows["instance_type"], strict=True)]
    rows.loc[rows["type"] != "Reserved Instance", "instance_type"] = None
    grouped = rows.groupby(["commitment_id", "start", "end"], dropna=False, as_index=False).agg(
        provider=("provider", "first"), type=("type", "first"), instance_type=("instance_type", "first"),
        scope=("scope", "first"), term_start=("term_start", "first"), term_end=("term_end", "first"),
        option=("option", "first"),
        count=("count", "first"), unit=("unit", "first"), used_quantity=("used_quantity", "sum"),
        unused_quantity=("unused_quantity", "sum"), used_usd=("used_usd", "sum"), unused_usd=("unused_usd", "sum"))
    notes = []
    if (rows["type"] == "Reserved Instance").any():
        notes.append("reserved instances: hours used from DiscountedUsage rows, unused hours and dollars from the "
                     "monthly RIFee row (spread evenly over its hours in shorter windows)")
    return grouped, notes, "cur"


def _gpu_model(instance_type: object, instance_gpus: Mapping[str, tuple[str, float]]) -> str | None:
    if instance_type is None or (isinstance(instance_type, float) and math.isnan(instance_type)):
        return None
    found = instance_gpus.get(str(instance_type)) or AZURE_GPU_SIZES.get(str(instance_type))
    return found[0] if found else None


def inventory(ledger: Ledger, instance_gpus: Mapping[str, tuple[str, float]] | None = None) -> pd.DataFrame:
    """One row per commitment and calendar month of use (:data:`INVENTORY_COLUMNS`), newest month first."""
    rows = ledger.rows.copy()
    instance_gpus = instance_gpus or {}
    rows["month"] = pd.to_datetime(rows["start"]).dt.strftime("%Y-%m")
    keys = ["commitment_id", "month"]
    first = ["provider", "type", "instance_type", "scope", "count", "option", "term_end", "unit"]
    out = rows.groupby(keys, as_index=False, dropna=False).agg(
        **{c: (c, "first") for c in first},
        **{c: (c, "sum") for c in ("used_quantity", "unused_quantity", "used_usd", "unused_usd")})
    total = out["used_quantity"] + out["unused_quantity"]
    out["utilization"] = np.divide(out["used_quantity"], total, out=np.full(len(out), np.nan), where=total > 0)
    out["gpu_model"] = out["instance_type"].map(lambda t: _gpu_model(t, instance_gpus))
    out["term_end"] = pd.to_datetime(out["term_end"]).dt.strftime("%Y-%m-%d")
    for c in ("used_quantity", "unused_quantity", "used_usd", "unused_usd"):
        out[c] = out[c].round(4)
    out["utilization"] = out["utilization"].round(4)
    out = out.sort_values(["month", "unused_usd", "commitment_id"], ascending=[False, False, True])
    return out[list(INVENTORY_COLUMNS)].reset_index(drop=True)


def _window_share(start: pd.Series, end: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp) -> np.ndarray:
    """Share of each row's charge period [start, end) inside [lo, hi) (1 hour when the end is missing)."""
    s = pd.to_datetime(start)
    e = pd.to_datetime(end).fillna(s + pd.Timedelta(hours=1))
    e = e.where(e > s, s + pd.Timedelta(hours=1))
    span = (e - s).dt.total_seconds().to_numpy()
    inside = (np.minimum(e, hi) - np.maximum(s, lo)).dt.total_seconds().clip(lower=0).to_numpy()
    return inside / span


def _movers(usage: pd.DataFrame | None, lo: pd.Timestamp, hi: pd.Timestamp, scope: str,
            gpu_model: str | None) -> list[tuple[str, float]]:
    """(team, GPU-hours) of on-demand/spot usage in [lo, hi) that the commitment's scope covers, most first."""
    if usage is None or usage.empty or S.PURCHASE_OPTION not in usage.columns:
        return []
    u = usage[(usage[S.TIMESTAMP] >= lo) & (usage[S.TIMESTAMP] < hi) & (usage[S.GPUS] > 0)
              & usage[S.PURCHASE_OPTION].isin(["on_demand", "spot"])]
    if scope.startswith("family ") and S.INSTANCE_TYPE in u.columns:
        fam = scope.removeprefix("family ")
        u = u[u[S.INSTANCE_TYPE].map(_family) == fam]
    elif scope.startswith("instance ") and S.INSTANCE_TYPE in u.columns:
        u = u[u[S.INSTANCE_TYPE] == scope.removeprefix("instance ")]
    elif scope != "any GPU":
        if gpu_model is None:
            return []
        u = u[u[S.GPU_TYPE] == gpu_model]
    by = u.groupby(S.TEAM)[S.GPUS].sum()
    by = by[by > 0].sort_values(ascending=False, kind="stable")
    return [(str(t), float(v)) for t, v in by.items()]


def _movers_text(movers: list[tuple[str, float]]) -> str:
    return ", ".join(f"{t} ({h:,.1f} GPU-h)" for t, h in movers)


def under_used(ledger: Ledger, rule: UtilizationRule, usage: pd.DataFrame | None = None,
               instance_gpus: Mapping[str, tuple[str, float]] | None = None,
               as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Commitments of the billing export whose utilisation over the last ``rule.lookback_days`` before ``as_of``
    (default: the end of the newest billed period) is below ``rule.below`` (:data:`FINDING_COLUMNS`), most unused
    dollars first. ``usage`` (the canonical usage of the same export) names the teams that could move onto each."""
    rows = ledger.rows
    instance_gpus = instance_gpus or {}
    ends = pd.to_datetime(rows["end"]).fillna(pd.to_datetime(rows["start"]) + pd.Timedelta(hours=1))
    hi = pd.Timestamp(as_of) if as_of is not None else ends.max()
    lo = hi - pd.Timedelta(days=rule.lookback_days)
    share = _window_share(rows["start"], rows["end"], lo, hi)
    w = rows.assign(**{c: rows[c].to_numpy(dtype=float) * share
                       for c in ("used_quantity", "unused_quantity", "used_usd", "unused_usd")})
    w = w[share > 0]
    out = []
    per_30 = 30.0 / rule.lookback_days
    for cid, part in w.groupby("commitment_id", sort=True):
        used, unused = float(part["used_quantity"].sum()), float(part["unused_quantity"].sum())
        if used + unused <= 0:
            continue
        util = used / (used + unused)
        if util >= rule.below:
            continue
        head = part.iloc[0]
        itype = head["instance_type"] if isinstance(head["instance_type"], str) else None
        model = _gpu_model(itype, instance_gpus)
        per = (instance_gpus.get(itype) or AZURE_GPU_SIZES.get(itype or "") or (None, None))[1]
        unused_gpu_h = unused * per if per and str(head["unit"]).lower().startswith("hour") else float("nan")
        unused_usd = float(part["unused_usd"].sum())
        movers = _movers(usage, lo, hi, str(head["scope"]), model)
        what = itype or str(head["scope"])
        message = (f"{head['type']} {cid} ({what}) used {util:.0%} over the last {rule.lookback_days} days (below "
                   f"{rule.below:.0%}): {unused:,.1f} {head['unit']} unused, {unused_usd:,.2f} USD "
                   f"(~{unused_usd * per_30:,.0f} USD per 30 days)")
        message += (f"; could move onto it: {_movers_text(movers)}" if movers
                    else "; no team ran covered usage on on-demand or spot in the window")
        out.append({"commitment_id": cid, "type": head["type"], "instance_type": itype, "gpu_model": model,
                    "window_start": lo, "window_end": hi, "utilization": round(util, 4),
                    "unused_quantity": round(unused, 4), "unit": head["unit"],
                    "unused_gpu_hours": round(unused_gpu_h, 4), "unused_usd": round(unused_usd, 2),
                    "unused_usd_per_30_days": round(unused_usd * per_30, 2), "movable_teams": _movers_text(movers),
                    "message": message})
    frame = pd.DataFrame(out, columns=list(FINDING_COLUMNS))
    return frame.sort_values(["unused_usd", "commitment_id"], ascending=[False, True]).reset_index(drop=True)


def plan_under_used(plan, usage: pd.DataFrame, rule: UtilizationRule,
                    as_of: pd.Timestamp | None = None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Commitments of a plan measured against usage over the last ``rule.lookback_days`` (module docstring).

    Returns:
        (findings in :data:`FINDING_COLUMNS`, notes).
    """
    notes: list[str] = []
    hi = pd.Timestamp(as_of) if as_of is not None else usage[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    lo = hi - pd.Timedelta(days=rule.lookback_days)
    hours = pd.date_range(lo, hi, freq="h", inclusive="left")
    u = usage[(usage[S.TIMESTAMP] >= lo) & (usage[S.TIMESTAMP] < hi)]
    demand_by_model = u.groupby([S.GPU_TYPE, S.TIMESTAMP])[S.GPUS].sum()
    per_30 = 30.0 / rule.lookback_days
    out = []
    by_model: dict[str, list] = {}
    for k, c in enumerate(plan.commitments):
        model, gpus_per = getattr(c, "gpu_model", None), getattr(c, "gpus_per_instance", None)
        if not model or not gpus_per or getattr(c, "count", 0) <= 0:
            notes.append(f"commitment {k + 1} ({c.purchase_option}) is not counted in GPUs: its utilisation is not "
                         "checked from the plan")
            continue
        by_model.setdefault(model, []).append((k, c))
    for model, items in by_model.items():
        demand = (demand_by_model.loc[model].reindex(hours, fill_value=0.0).to_numpy(dtype=float)
                  if model in demand_by_model.index.get_level_values(0) else np.zeros(len(hours)))
        caps = np.array([[c.gpus if c.start <= h < c.expiry else 0.0 for h in hours] for _, c in items])
        total = caps.sum(axis=0)
        used_total = np.minimum(demand, total)
        share = np.divide(used_total, total, out=np.zeros_like(total), where=total > 0)
        overflow = np.maximum(demand - total, 0.0)
        team_over: list[tuple[str, float]] = []
        if overflow.sum() > 0:
            part = u[u[S.GPU_TYPE] == model]
            frac = pd.Series(np.divide(overflow, demand, out=np.zeros_like(demand), where=demand > 0), index=hours)
            moved = part[S.GPUS].to_numpy(dtype=float) * frac.reindex(part[S.TIMESTAMP]).to_numpy()
            by = pd.Series(moved, index=part[S.TEAM].to_numpy()).groupby(level=0).sum()
            team_over = [(str(t), float(v)) for t, v in by.sort_values(ascending=False, kind="stable").items() if v > 0]
        for (k, c), cap in zip(items, caps, strict=True):
            capacity = float(cap.sum())
            if capacity <= 0:
                continue
            used = float((cap * share).sum())
            util = used / capacity
            if util >= rule.below:
                continue
            unused_gpu_h = capacity - used
            unused_usd = unused_gpu_h / c.gpus_per_instance * c.effective_hourly_usd
            cid = f"plan #{k + 1} {c.count} x {c.instance_type} {c.purchase_option}"
            message = (f"{cid} used {util:.0%} over the last {rule.lookback_days} days (below {rule.below:.0%}): "
                       f"{unused_gpu_h:,.1f} GPU-hours unused, {unused_usd:,.2f} USD "
                       f"(~{unused_usd * per_30:,.0f} USD per 30 days)")
            message += (f"; could shift into its idle hours: {_movers_text(team_over)} ran {model} on on-demand or "
                        "spot in other hours" if team_over else f"; no {model} usage overflowed to on-demand or spot")
            out.append({"commitment_id": cid, "type": c.purchase_option, "instance_type": c.instance_type,
                        "gpu_model": model, "window_start": lo, "window_end": hi, "utilization": round(util, 4),
                        "unused_quantity": round(unused_gpu_h, 4), "unit": "GPU-hours",
                        "unused_gpu_hours": round(unused_gpu_h, 4),
                        "unused_usd": round(unused_usd, 2), "unused_usd_per_30_days": round(unused_usd * per_30, 2),
                        "movable_teams": _movers_text(team_over), "message": message})
    frame = pd.DataFrame(out, columns=list(FINDING_COLUMNS))
    return (frame.sort_values(["unused_usd", "commitment_id"], ascending=[False, True]).reset_index(drop=True),
            tuple(notes))


def existing_rows(ledger: Ledger) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Owned commitments in the file format ``gpuplan plan --existing`` reads (:data:`EXISTING_COLUMNS`).

    Only commitments with a known option (term and payment), start and expiry can be written: AWS reserved
    instances (counted in instances) and AWS Savings Plans (their commitment in USD per hour: the median over the
    export's rows of the committed dollars, used and unused, per hour the row covers; an EC2 Instance Savings Plan
    with its instance family) of a CUR export. The notes name every commitment left out and why.
    """
    rows = ledger.rows
    out, notes = [], []
    for cid, part in rows.groupby("commitment_id", sort=True):
        head = part.iloc[0]
        start = head["term_start"] if pd.notna(head["term_start"]) else part["start"].min()
        option = head["option"] if isinstance(head["option"], str) else None
        if head["unit"] == "USD" and option is None:
            notes.append(f"{head['type']} {cid} is not written to the --existing file: the export does not say which "
                         "savings plan it is (term and payment), and plan --existing needs it to price its dollars")
            continue
        family = str(head["scope"])[len("family "):] if str(head["scope"]).startswith("family ") else ""
        checks = (("term and payment option", option), ("term end", head["term_end"]))
        if head["unit"] != "USD":
            checks += (("instance type", head["instance_type"]), ("count", head["count"]))
        elif option.startswith("ec2_instance_sp"):
            checks += (("instance family", family or None),)
        missing = [label for label, value in checks
                   if value is None or (isinstance(value, float) and math.isnan(value)) or
                   (not isinstance(value, str) and pd.isna(value))]
        if missing:
            notes.append(f"{head['type']} {cid} is not written to the --existing file: the export does not say its "
                         f"{', '.join(missing)} (add it by hand: {', '.join(EXISTING_COLUMNS)})")
            continue
        line = {"instance_type": "", "option": option, "count": "", "start": pd.Timestamp(start).strftime("%Y-%m-%d"),
                "expiry": pd.Timestamp(head["term_end"]).strftime("%Y-%m-%dT%H:%MZ"), "commitment_usd_per_hour": "",
                "instance_family": ""}
        if head["unit"] == "USD":
            hours = (part["end"] - part["start"]) / pd.Timedelta(hours=1)
            per_hour = (part["used_quantity"] + part["unused_quantity"]) / hours.where(hours > 0)
            line.update(commitment_usd_per_hour=round(float(per_hour.median()), 3), instance_family=family)
        else:
            line.update(instance_type=head["instance_type"], count=int(head["count"]))
        out.append(line)
    return pd.DataFrame(out, columns=list(EXISTING_COLUMNS)), tuple(notes)


def export_usage(path: str | Path, tag_key: str, instance_gpus: Mapping[str, tuple[str, float]],
                 known_gpu_types: Iterable[str]) -> tuple[pd.DataFrame | None, tuple[str, ...]]:
    """The GPU usage of the same billing export (to name the teams that could move onto a commitment) and the
    notes to show: its ingestion warnings, or why there is none (None when the export has no GPU usage rows)."""
    from usage.ingest import load_usage

    try:
        usage, report = load_usage(path, "auto", tag_key=tag_key, instance_gpus=instance_gpus,
                                   known_gpu_types=known_gpu_types)
    except UsageError as exc:
        return None, (f"no GPU usage read from the export, so no team is named as able to move ({exc.message})",)
    return usage, tuple(line for line in report.lines() if line.startswith("warning:"))


@dataclass(frozen=True)
class CommitmentReview:
    """What ``gpuplan commitments`` and the app's Commitments tab show for one billing export.

    Attributes:
        inventory: one row per commitment and month (:data:`INVENTORY_COLUMNS`).
        findings: the under-used ones (:data:`FINDING_COLUMNS`).
        owned: the owned commitments ``gpuplan plan --existing`` reads (:data:`EXISTING_COLUMNS`).
        notes: the ledger's notes, then the usage's (its ingestion warnings, or why there is none).
        owned_notes: why a commitment is not in ``owned``.
    """

    inventory: pd.DataFrame
    findings: pd.DataFrame
    owned: pd.DataFrame
    notes: tuple[str, ...]
    owned_notes: tuple[str, ...]


def review(path: str | Path, rule: UtilizationRule, instance_gpus: Mapping[str, tuple[str, float]],
           known_gpu_types: Iterable[str], tag_key: str = "team") -> CommitmentReview:
    """Inventory, under-used findings and owned commitments of a billing export (module docstring).

    Raises:
        UsageError: as :func:`read_ledger`.
    """
    ledger = read_ledger(path)
    usage, usage_notes = export_usage(path, tag_key, instance_gpus, known_gpu_types)
    owned, owned_notes = existing_rows(ledger)
    return CommitmentReview(inventory(ledger, instance_gpus), under_used(ledger, rule, usage, instance_gpus), owned,
                            (*ledger.notes, *usage_notes), owned_notes)
