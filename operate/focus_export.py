"""The chargeback of a plan's bill as FOCUS 1.2 cost and usage rows, so finance tools read the same numbers.

One row per team (``Tags`` = ``{"team": ...}``), GPU model and kind of charge over the billing period:

* ``Committed`` / ``Used``: the team's use of the plan's commitments of that GPU model;
* ``Committed`` / ``Unused``: the team's share of the unused commitment (the chargeback's policy; ``central``
  when nobody used it or with ``--unused-policy central``);
* ``Dynamic``: spot; ``Standard``: on-demand.

Money (USD, ``BillingCurrency`` = ``PricingCurrency`` = ``USD``): the chargeback is the invoice the teams get,
so ``BilledCost`` = ``EffectiveCost`` = the allocated amount (commitments are already charged at their effective
hourly rate, upfront amortised, as the chargeback bills them). Each team's rows are apportioned to the cent with
the chargeback's largest-remainder rule, so per team and column they sum to the chargeback table, and in total
to its bill. ``ListCost`` = ``ContractedCost`` = the GPU-hours at the plan's on-demand rate (spot: its own price,
the list price of a spot hour; unused commitment: 0); there are no negotiated discounts, so the contracted price
is the list price and the commitment saving is ``ListCost - EffectiveCost``.

Quantities: ``ConsumedQuantity`` = ``PricingQuantity`` = instance-hours of the row's instance type (GPU-hours /
GPUs per instance), unit ``Hours``; ``x_GpuHours`` keeps the GPU-hours. The instance type of a row is the plan's:
its largest commitment of the GPU model, its cheapest spot allowance, its on-demand instance type. Unused rows
have no ``ConsumedQuantity`` (FOCUS), their ``PricingQuantity`` is the unused instance-hours (USD / the
commitments' effective rate). ``SkuMeter`` is the AWS-style usage type (``BoxUsage:p4d.24xlarge``,
``SpotUsage:...``), which this repository's own FOCUS ingest reads back to the same GPU-hours per team.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from operate.chargeback import (
    CENTRAL,
    COMMITTED,
    ON_DEMAND,
    SPOT,
    TEAM,
    UNUSED,
    Chargeback,
    apportion_cents,
)
from optimizer.plan import Commitment, Plan

FOCUS_VERSION = "1.2"
FOCUS_COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
)
"""The FOCUS 1.2 columns, in the specification's (alphabetical) order."""
CUSTOM_COLUMNS = ("x_GpuModel", "x_GpuHours", "x_UnusedCommitmentPolicy", "x_Source")
"""Our own columns (FOCUS reserves the ``x_`` prefix for them)."""
COLUMNS = FOCUS_COLUMNS + CUSTOM_COLUMNS
"""The columns of every file :func:`chargeback_focus` makes."""

PROVIDERS = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Microsoft"}
SERVICES = {"aws": "Amazon Elastic Compute Cloud", "gcp": "Compute Engine", "azure": "Virtual Machines"}
INTERNAL_ISSUER = "GPU Cost Planner chargeback"


def _provider(region: str, instance_type: str) -> str:
    if instance_type.startswith("Standard_"):
        return "azure"
    if re.match(r"^(a2|a3|g2)-", instance_type) or re.match(r"^[a-z]+-[a-z]+\d$", region):
        return "gcp"
    return "aws"


def commitment_type(purchase_option: str) -> tuple[str, str]:
    """FOCUS ``CommitmentDiscountType`` and ``CommitmentDiscountCategory`` of a catalog purchase option."""
    if "_sp_" in purchase_option or purchase_option.endswith("_sp"):
        return "Savings Plan", "Spend"
    if purchase_option.startswith("cud") or "committed_use" in purchase_option:
        return "Committed Use Discount", "Usage"
    return "Reserved Instance", "Usage"


def _active_hours(c: Commitment, start: pd.Timestamp, end: pd.Timestamp) -> float:
    lo, hi = max(c.start, start), min(c.expiry, end)
    return max((hi - lo) / pd.Timedelta(hours=1), 0.0)


def _gpus_per_instance(instance_type: str, known: Mapping[str, float], gpu_model: str) -> float:
    gpus = known.get(instance_type)
    if gpus is None or not gpus > 0:
        raise ValueError(f"the catalog does not know how many GPUs {instance_type} ({gpu_model}) has, so its "
                         "instance-hours cannot be written (fix: pass the --catalog the plan was made with)")
    return float(gpus)


def chargeback_focus(cb: Chargeback, plan: Plan, period: tuple[pd.Timestamp, pd.Timestamp],
                     gpus_per_instance: Mapping[str, float], *, account: str = "gpu-cost-planner",
                     source: str = "") -> pd.DataFrame:
    """FOCUS 1.2 rows (columns :data:`COLUMNS`) of a chargeback; see the module docstring.

    Args:
        cb: the chargeback (``operate.chargeback.allocate``) of ``plan`` over ``period``.
        plan: the plan billed.
        period: ``[start, end)`` of the billing period (``operate.chargeback.billing_period``).
        gpus_per_instance: instance type -> GPUs per instance (the catalog's), for the instance-hours.
        account: ``BillingAccountId`` (the organisation the chargeback bills).
        source: where the numbers come from (``x_Source``), e.g. the plan file's name.

    Raises:
        ValueError: an instance type of the plan whose GPU count is unknown (one line, with the fix).
    """
    start, end = period
    known = dict(gpus_per_instance)
    for c in plan.commitments:
        known.setdefault(c.instance_type, c.gpus_per_instance)
    for s in plan.spot:
        known.setdefault(s.instance_type, s.gpus_per_instance)
    od_rate = {o.gpu_model: o.usd_per_gpu_hour for o in plan.on_demand}
    od_type = {o.gpu_model: o.instance_type for o in plan.on_demand}

    hourly = cb.bill.hourly
    models = sorted(set(hourly["gpu_type"]) | set(cb.detail["gpu_type"]))
    per_model = hourly.groupby("gpu_type")[["committed_usd", "committed_capacity_gpus", "committed_used_gpus",
                                            "spot_usd", "spot_gpus"]].sum()
    # unused commitment USD per GPU model, and the part of it nobody was charged for in the detail (central)
    cap = hourly["committed_capacity_gpus"].to_numpy()
    used_frac = np.divide(hourly["committed_used_gpus"].to_numpy(), cap, out=np.zeros_like(cap), where=cap > 0)
    unused_by_model = (hourly["committed_usd"] * (1.0 - used_frac)).groupby(hourly["gpu_type"]).sum()
    detail_unused = cb.detail.groupby("gpu_type")[UNUSED].sum()

    def commitment_of(model: str) -> Commitment | None:
        pool = [c for c in plan.commitments if c.gpu_model == model and _active_hours(c, start, end) > 0]
        return max(pool, key=lambda c: c.gpus * _active_hours(c, start, end)) if pool else None

    def spot_type(model: str) -> str | None:
        pool = sorted((s for s in plan.spot if s.gpu_model == model), key=lambda s: s.usd_per_useful_gpu_hour)
        return pool[0].instance_type if pool else None

    # one unrounded entry per (team, model, kind): USD, GPU-hours
    entries: list[dict] = []
    for _, r in cb.detail.iterrows():
        for kind, usd_col, hours_col in (("committed", COMMITTED, "committed_gpu_hours"), ("spot", SPOT,
                                         "spot_gpu_hours"), ("on_demand", ON_DEMAND, "on_demand_gpu_hours"),
                                         ("unused", UNUSED, None)):
            hours = float(r[hours_col]) if hours_col else 0.0
            usd = float(r[usd_col])
            if hours > 1e-12 or abs(usd) > 1e-12:
                entries.append({"team": r[TEAM], "model": r["gpu_type"], "kind": kind, "col": usd_col,
                                "usd": usd, "gpu_hours": hours})
    for model in models:
        central = float(unused_by_model.get(model, 0.0)) - float(detail_unused.get(model, 0.0))
        if central > 1e-9:
            entries.append({"team": CENTRAL, "model": model, "kind": "unused", "col": UNUSED, "usd": central,
                            "gpu_hours": 0.0})
    frame = pd.DataFrame(entries, columns=["team", "model", "kind", "col", "usd", "gpu_hours"])

    # cents: per team and chargeback column, exactly the chargeback table's cents
    frame["cents"] = 0
    table = cb.table.set_index(TEAM)
    for (team, col), idx in frame.groupby(["team", "col"]).groups.items():
        target = int(round(float(table.loc[team, col]) * 100)) if team in table.index else 0
        frame.loc[idx, "cents"] = apportion_cents(frame.loc[idx, "usd"].to_numpy(), target)
    frame = frame[(frame["gpu_hours"] > 1e-12) | (frame["cents"] != 0)]

    provider_key = _provider(plan.region, plan.on_demand[0].instance_type if plan.on_demand else "")
    rows = []
    for _, e in frame.sort_values(["team", "model", "kind"]).iterrows():
        model, kind = e["model"], e["kind"]
        cost = int(e["cents"]) / 100.0
        commitment = commitment_of(model) if kind in ("committed", "unused") else None
        instance = (commitment.instance_type if commitment is not None
                    else spot_type(model) if kind == "spot" else od_type.get(model))
        if instance is None:  # a kind the plan has no instance for (should not happen): keep the GPU-hours
            instance = od_type.get(model, model)
        gpi = _gpus_per_instance(instance, known, model)
        gpu_hours = float(e["gpu_hours"])
        if kind == "unused":
            rate = (per_model.loc[model, "committed_usd"] / per_model.loc[model, "committed_capacity_gpus"]
                    if model in per_model.index and per_model.loc[model, "committed_capacity_gpus"] > 0 else 0.0)
            unused_gpu_hours = cost / rate if rate > 0 else 0.0
            pricing_qty, consumed_qty = unused_gpu_hours / gpi, None
        else:
            pricing_qty = consumed_qty = gpu_hours / gpi
        if kind == "spot":
            list_cost = cost
        elif kind == "unused":
            list_cost = 0.0
        else:
            list_cost = round(gpu_hours * od_rate.get(model, 0.0), 2)
        list_unit = list_cost / pricing_qty if pricing_qty else None
        category = {"committed": "Committed", "unused": "Committed", "spot": "Dynamic", "on_demand": "Standard"}[kind]
        meter = f"{'SpotUsage' if kind == 'spot' else 'BoxUsage'}:{instance}"
        ctype, ccat = commitment_type(commitment.purchase_option) if commitment is not None else (None, None)
        cid = _commitment_id(plan, commitment) if commitment is not None else None
        cname = (f"{commitment.count} x {commitment.instance_type} {commitment.purchase_option}"
                 if commitment is not None else None)
        what = {"committed": f"used commitment ({cname})", "unused": f"unused commitment ({cname})",
                "spot": "spot", "on_demand": "on-demand"}[kind]
        rows.append({
            "AvailabilityZone": None, "BilledCost": cost, "BillingAccountId": account,
            "BillingAccountName": account, "BillingAccountType": "Internal chargeback",
            "BillingCurrency": "USD", "BillingPeriodEnd": end, "BillingPeriodStart": start,
            "CapacityReservationId": None, "CapacityReservationStatus": None, "ChargeCategory": "Usage",
            "ChargeClass": None, "ChargeDescription": f"{model} GPU-hours of team {e['team']} on {instance}, {what}",
            "ChargeFrequency": "Usage-Based", "ChargePeriodEnd": end, "ChargePeriodStart": start,
            "CommitmentDiscountCategory": ccat, "CommitmentDiscountId": cid, "CommitmentDiscountName": cname,
            "CommitmentDiscountQuantity": pricing_qty if commitment is not None else None,
            "CommitmentDiscountStatus": {"committed": "Used", "unused": "Unused"}.get(kind),
            "CommitmentDiscountType": ctype,
            "CommitmentDiscountUnit": "Hours" if commitment is not None else None,
            "ConsumedQuantity": consumed_qty, "ConsumedUnit": "Hours" if consumed_qty is not None else None,
            "ContractedCost": list_cost, "ContractedUnitPrice": list_unit, "EffectiveCost": cost,
            "InvoiceId": f"chargeback-{start:%Y%m%d%H}-{end:%Y%m%d%H}", "InvoiceIssuerName": INTERNAL_ISSUER,
            "ListCost": list_cost, "ListUnitPrice": list_unit, "PricingCategory": category,
            "PricingCurrency": "USD", "PricingCurrencyContractedUnitPrice": list_unit,
            "PricingCurrencyEffectiveCost": cost, "PricingCurrencyListUnitPrice": list_unit,
            "PricingQuantity": pricing_qty, "PricingUnit": "Hours",
            "ProviderName": PROVIDERS[provider_key], "PublisherName": PROVIDERS[provider_key],
            "RegionId": plan.region, "RegionName": plan.region, "ResourceId": None, "ResourceName": None,
            "ResourceType": instance, "ServiceCategory": "Compute", "ServiceName": SERVICES[provider_key],
            "ServiceSubcategory": "Virtual Machines", "SkuId": f"{instance}:{kind}", "SkuMeter": meter,
            "SkuPriceDetails": json.dumps({"InstanceType": instance, "GpuModel": model, "GpusPerInstance": gpi}),
            "SkuPriceId": f"{plan.region}:{instance}:{kind}", "SubAccountId": e["team"], "SubAccountName": e["team"],
            "SubAccountType": "Team", "Tags": json.dumps({"team": e["team"]}),
            "x_GpuModel": model, "x_GpuHours": round(gpu_hours, 6), "x_UnusedCommitmentPolicy": cb.policy,
            "x_Source": source,
        })
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
        out[col] = pd.to_datetime(out[col], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def _commitment_id(plan: Plan, c: Commitment) -> str:
    return f"{plan.region}/{c.instance_type}/{c.purchase_option}/{c.start:%Y-%m-%dT%H:%MZ}"


def bill_focus(cb: Chargeback, plan: Plan, period: tuple[pd.Timestamp, pd.Timestamp],
               gpus_per_instance: Mapping[str, float], *, account: str = "gpu-cost-planner",
               source: str = "") -> pd.DataFrame:
    """The plan's bill as the provider invoices it, in FOCUS 1.2 rows (columns :data:`COLUMNS`).

    The usage rows are :func:`chargeback_focus`'s (per team, GPU model and charge), except that usage of a
    commitment, used or unused, is not invoiced again: its ``BilledCost`` is 0 and its ``EffectiveCost`` the
    amortised amount. The commitments themselves are ``ChargeCategory = Purchase`` rows without a team: the
    upfront fee of each new commitment starting in the period (``ChargeFrequency = One-Time``) and the recurring
    fee for its active hours in the period (``Recurring``), ``BilledCost`` = the cash, ``EffectiveCost`` = 0. So
    ``EffectiveCost`` sums to the chargeback (the amortised bill) to the cent and ``BilledCost`` to the cash the
    period is invoiced: upfront + recurring + spot + on-demand.
    """
    usage = chargeback_focus(cb, plan, period, gpus_per_instance, account=account, source=source)
    committed = usage["PricingCategory"] == "Committed"
    usage.loc[committed, "BilledCost"] = 0.0
    start, end = period
    template = usage.iloc[0].to_dict() if len(usage) else {c: None for c in COLUMNS}
    purchases = []
    for c in plan.commitments:
        hours = _active_hours(c, start, end)
        ctype, ccat = commitment_type(c.purchase_option)
        name = f"{c.count} x {c.instance_type} {c.purchase_option}"
        fees = []
        if not c.existing and start <= c.start < end and c.upfront_usd_per_instance > 0:
            fees.append(("One-Time", round(c.count * c.upfront_usd_per_instance, 2), None,
                         f"upfront fee of {name}"))
        if hours > 0 and c.hourly_usd_per_instance > 0:
            fees.append(("Recurring", round(c.count * c.hourly_usd_per_instance * hours, 2), c.count * hours,
                         f"recurring fee of {name} for {hours:,.0f} h"))
        for frequency, cash, qty, what in fees:
            row = {k: template.get(k) for k in COLUMNS}
            row.update({
                "BilledCost": cash, "EffectiveCost": 0.0, "PricingCurrencyEffectiveCost": 0.0,
                "ListCost": cash, "ContractedCost": cash, "ListUnitPrice": None, "ContractedUnitPrice": None,
                "PricingCurrencyListUnitPrice": None, "PricingCurrencyContractedUnitPrice": None,
                "ChargeCategory": "Purchase", "ChargeFrequency": frequency, "ChargeDescription": what,
                "PricingCategory": "Committed", "CommitmentDiscountId": _commitment_id(plan, c),
                "CommitmentDiscountName": name, "CommitmentDiscountType": ctype, "CommitmentDiscountCategory": ccat,
                "CommitmentDiscountStatus": None, "CommitmentDiscountQuantity": qty,
                "CommitmentDiscountUnit": "Hours" if qty is not None else None,
                "ConsumedQuantity": None, "ConsumedUnit": None, "PricingQuantity": qty if qty is not None else c.count,
                "PricingUnit": "Hours" if qty is not None else "Commitments",
                "ResourceType": c.instance_type, "SkuId": f"{c.instance_type}:{c.purchase_option}",
                "SkuMeter": f"Commitment:{c.instance_type}", "SkuPriceId": f"{plan.region}:{c.instance_type}:"
                f"{c.purchase_option}", "SkuPriceDetails": json.dumps({"InstanceType": c.instance_type,
                                                                        "GpuModel": c.gpu_model,
                                                                        "GpusPerInstance": c.gpus_per_instance}),
                "SubAccountId": CENTRAL, "SubAccountName": CENTRAL, "Tags": json.dumps({"team": CENTRAL}),
                "x_GpuModel": c.gpu_model, "x_GpuHours": 0.0,
                "ChargePeriodStart": f"{max(c.start, start):%Y-%m-%dT%H:%M:%SZ}",
                "ChargePeriodEnd": f"{min(c.expiry, end):%Y-%m-%dT%H:%M:%SZ}" if frequency == "Recurring"
                else f"{max(c.start, start) + pd.Timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
            })
            purchases.append(row)
    return pd.DataFrame(purchases + usage.astype(object).where(usage.notna(), None).to_dict(orient="records"),
                        columns=list(COLUMNS))
