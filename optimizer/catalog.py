"""Price catalog: instance specs and prices per (instance_type, region, purchase_option).

Units: every ``*_usd`` price is USD; ``effective_hourly_usd`` is USD per instance-hour with any upfront
payment amortised over the term (``recurring_hourly_usd + upfront_usd / term_hours``); ``term_hours`` is
0 for on-demand and spot. ``gpu_count`` is GPUs per instance (fractional for shared-GPU types such as
g6f); ``gpu_memory_gib`` is per GPU.

The shipped snapshot (``data_samples/catalog/gpu_catalog.csv``) is built by :func:`build_snapshot` from
the public AWS (ec2instances.info, 2025-11-30), GCP (Cyclenerd pricing.yml, 2026-07-30) and Azure (SkyPilot
catalog for pay-as-you-go and spot; Azure Retail Prices API reservation totals, 2026-09-27) price files copied
into ``data_samples/prices/``; see ``data_samples/README.md`` and the ``*_SOURCE.md`` files there for sources,
licenses and caveats. Every row names its ``provider``, ``snapshot_date`` and ``source``.
``gpuplan catalog refresh`` writes a newer catalog in the same format through boto3.

Savings plans (``compute_sp_*``, ``ec2_instance_sp_*``): one row per instance type, region and option whose
``effective_hourly_usd`` is the savings-plan rate of one instance-hour (what one USD of the plan's hourly commitment
buys), upfront/recurring split like the RIs. The public price files of the snapshot carry no savings-plan rates, so
the snapshot derives them with the rule AWS publishes (a Compute SP discounts about as much as a convertible RI, an
EC2 Instance SP about as much as a standard RI, same term and payment) and flags those rows ``rate_is_estimate``;
``gpuplan catalog refresh`` reads the published rates (``describe_savings_plans_offering_rates``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.options import (
    ON_DEMAND,
    PURCHASABLE_OPTIONS,
    SPOT,
    UPFRONT_SHARE,
    commitment_option,
    term_hours,
)
from usage.io import write_csv_atomic

# --- catalog columns ------------------------------------------------------------------------------
PROVIDER = "provider"
REGION = "region"
INSTANCE_TYPE = "instance_type"
PURCHASE_OPTION = "purchase_option"
EFFECTIVE_HOURLY = "effective_hourly_usd"
UPFRONT = "upfront_usd"
RECURRING_HOURLY = "recurring_hourly_usd"
UPFRONT_IS_ESTIMATE = "upfront_is_estimate"
TERM_HOURS_COL = "term_hours"
GPU_MODEL = "gpu_model"
GPU_COUNT = "gpu_count"
GPU_MEMORY = "gpu_memory_gib"
INTERRUPTION = "interruption_bucket"
SNAPSHOT_DATE = "snapshot_date"
SOURCE = "source"
RATE_IS_ESTIMATE = "rate_is_estimate"

CATALOG_COLUMNS = (PROVIDER, REGION, INSTANCE_TYPE, PURCHASE_OPTION, EFFECTIVE_HOURLY, UPFRONT, RECURRING_HOURLY,
                   UPFRONT_IS_ESTIMATE, TERM_HOURS_COL, GPU_MODEL, GPU_COUNT, GPU_MEMORY, INTERRUPTION,
                   SNAPSHOT_DATE, SOURCE, RATE_IS_ESTIMATE)
"""New columns are appended; :func:`load_catalog` gives a file without one its default (``rate_is_estimate``:
False)."""

DATA_DIR = Path(os.environ.get("GPUPLAN_DATA_DIR", Path(__file__).resolve().parents[1] / "data_samples"))
DEFAULT_CATALOG = DATA_DIR / "catalog" / "gpu_catalog.csv"

PARTIAL_UPFRONT_SHARE = 0.5
"""AWS partial-upfront RIs pay roughly half of the term's cost upfront. The source only gives the
effective rate, so the upfront/recurring split of partial-upfront rows is this estimate (flagged with
``upfront_is_estimate``); the effective rate itself is exact."""

INTERRUPTION_BUCKETS = ("<5%", "5-10%", "10-15%", "15-20%", ">20%")
_BUCKET_UPPER = {"<5%": 0.05, "5-10%": 0.10, "10-15%": 0.15, "15-20%": 0.20, ">20%": 0.30}

_AWS_RI_COLUMNS = {
    commitment_option("reserved" if k == "Standard" else "convertible", f"{t}y", p):
        f"yrTerm{t}{k}_{p}Upfront_usd_per_hour"
    for k in ("Standard", "Convertible") for t in ("1", "3") for p in ("no", "partial", "all")
}
_GCP_GPU_MODELS = {"A100-40GB": ("NVIDIA A100", 40.0), "A100-80GB": ("NVIDIA A100", 80.0),
                   "H100-80GB": ("NVIDIA H100", 80.0), "H100-80GB (Mega)": ("NVIDIA H100", 80.0),
                   "L4": ("NVIDIA L4", 24.0), "RTX PRO 6000": ("NVIDIA RTX PRO 6000", 96.0)}


# Azure NC/ND GPU sizes: (gpu_model, GPUs per VM, GiB per GPU), from Microsoft's size pages
# (learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/*). The price source's own GPU columns are not
# used: it lists Standard_ND96isr_H100_v5 with 12 GPUs (it has 8). GPU model names match the AWS rows so one GPU
# model's demand can be priced on either cloud.
AZURE_GPU_SIZES: dict[str, tuple[str, float, float]] = {
    "Standard_NC4as_T4_v3": ("NVIDIA T4 Tensor Core", 1, 16.0),
    "Standard_NC8as_T4_v3": ("NVIDIA T4 Tensor Core", 1, 16.0),
    "Standard_NC16as_T4_v3": ("NVIDIA T4 Tensor Core", 1, 16.0),
    "Standard_NC64as_T4_v3": ("NVIDIA T4 Tensor Core", 4, 16.0),
    "Standard_NC6s_v3": ("NVIDIA Tesla V100", 1, 16.0),
    "Standard_NC12s_v3": ("NVIDIA Tesla V100", 2, 16.0),
    "Standard_NC24s_v3": ("NVIDIA Tesla V100", 4, 16.0),
    "Standard_NC24rs_v3": ("NVIDIA Tesla V100", 4, 16.0),
    "Standard_ND40rs_v2": ("NVIDIA Tesla V100", 8, 32.0),
    "Standard_NC24ads_A100_v4": ("NVIDIA A100", 1, 80.0),
    "Standard_NC48ads_A100_v4": ("NVIDIA A100", 2, 80.0),
    "Standard_NC96ads_A100_v4": ("NVIDIA A100", 4, 80.0),
    "Standard_ND96asr_v4": ("NVIDIA A100", 8, 40.0),
    "Standard_ND96amsr_A100_v4": ("NVIDIA A100", 8, 80.0),
    "Standard_NC40ads_H100_v5": ("NVIDIA H100", 1, 94.0),
    "Standard_NC80adis_H100_v5": ("NVIDIA H100", 2, 94.0),
    "Standard_ND96isr_H100_v5": ("NVIDIA H100", 8, 80.0),
}
AZURE_TERMS = {"1 Year": "1y", "3 Years": "3y"}
"""Azure Retail Prices API ``reservationTerm`` values and the catalog term they map to."""

PROVIDERS = ("aws", "gcp", "azure")
DEFAULT_REGION = {"aws": "us-east-1", "gcp": "us-central1", "azure": "eastus"}
"""The region a provider's usage is planned in when neither the usage nor ``--region`` names one."""


def provider_of_instance_type(instance_type: str | None) -> str | None:
    """The cloud an instance type name belongs to, from its naming scheme (None when it follows none).

    AWS types are ``family.size`` (``p5.48xlarge``, ``g6e.xlarge``, ``trn1.32xlarge``); GCP machine types are
    ``series-shape-Ng`` (``a2-highgpu-8g``, ``a3-megagpu-8g``, ``g2-standard-8``, ``g4-standard-48``); Azure VM
    sizes start ``Standard_N`` (``Standard_ND96isr_H100_v5``).
    """
    if instance_type is None or (isinstance(instance_type, float) and np.isnan(instance_type)):
        return None
    name = str(instance_type).strip()
    if name.lower().startswith("standard_n"):
        return "azure"
    if re.fullmatch(r"(a2|a3|a4|g2|g4)-[a-z]+-\d+g?", name.lower()):
        return "gcp"
    if re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9-]+", name.lower()):
        return "aws"
    return None


def interruption_rate_per_hour(bucket: str | float | None) -> float:
    """Expected interruptions per instance-hour from an AWS Spot Advisor monthly bucket.

    The bucket is the share of instances interrupted in a month; we take its upper edge (30% for
    ">20%") as a conservative monthly probability p, so the hourly rate is -ln(1 - p) / 730.
    Unknown buckets are treated as the worst one.
    """
    p = _BUCKET_UPPER.get(str(bucket).strip(), _BUCKET_UPPER[">20%"])
    return float(-np.log1p(-p) / 730.0)


def rework_fraction(bucket: str | float | None, checkpoint_interval_hours: float = 1.0,
                    restart_overhead_hours: float = 0.25) -> float:
    """Extra GPU-hours per useful GPU-hour on spot.

    Each interruption loses on average half a checkpoint interval of work plus the time to get new
    capacity and restore from the checkpoint: rework = rate x (interval / 2 + restart).
    """
    return interruption_rate_per_hour(bucket) * (checkpoint_interval_hours / 2.0 + restart_overhead_hours)


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df[TERM_HOURS_COL] = df[PURCHASE_OPTION].map(term_hours).astype(int)
    df[UPFRONT] = 0.0
    df[UPFRONT_IS_ESTIMATE] = False
    df[RECURRING_HOURLY] = df[EFFECTIVE_HOURLY]
    if RATE_IS_ESTIMATE not in df.columns:
        df[RATE_IS_ESTIMATE] = False
    df[RATE_IS_ESTIMATE] = df[RATE_IS_ESTIMATE].fillna(False).astype(bool)
    for option in PURCHASABLE_OPTIONS:
        payment = option.rsplit("_", 2)[1]
        rows = df[PURCHASE_OPTION] == option
        if payment == "no":
            continue
        share = UPFRONT_SHARE[payment] if payment == "all" else PARTIAL_UPFRONT_SHARE
        total = df.loc[rows, EFFECTIVE_HOURLY] * df.loc[rows, TERM_HOURS_COL]
        df.loc[rows, UPFRONT] = total * share
        df.loc[rows, RECURRING_HOURLY] = df.loc[rows, EFFECTIVE_HOURLY] * (1.0 - share)
        df.loc[rows, UPFRONT_IS_ESTIMATE] = payment == "partial"
    df = df[list(CATALOG_COLUMNS)]
    return df.sort_values([PROVIDER, REGION, INSTANCE_TYPE, PURCHASE_OPTION]).reset_index(drop=True)


def build_aws_rows(specs: pd.DataFrame, prices: pd.DataFrame, snapshot_date: str,
                   source: str = "ec2instances.info via tsaol/aws-gpu@2d0108c") -> pd.DataFrame:
    """Long catalog rows from the AWS specs + wide price table (columns as in data_samples/prices)."""
    specs = specs[specs["gpu_count"] > 0]
    wide = prices.merge(specs[["instance_type", "gpu_model", "gpu_count", "gpu_memory_gib_total"]],
                        on="instance_type", how="inner")
    base = pd.DataFrame({PROVIDER: "aws", REGION: wide["region"], INSTANCE_TYPE: wide["instance_type"],
                         GPU_MODEL: wide["gpu_model"], GPU_COUNT: wide["gpu_count"].astype(float),
                         GPU_MEMORY: wide["gpu_memory_gib_total"] / wide["gpu_count"],
                         INTERRUPTION: wide["spot_interrupt_freq"], SNAPSHOT_DATE: snapshot_date, SOURCE: source})
    parts = []
    columns = {ON_DEMAND: "ondemand_usd_per_hour", SPOT: "spot_avg_usd_per_hour", **_AWS_RI_COLUMNS}
    for option, col in columns.items():
        part = base.assign(**{PURCHASE_OPTION: option, EFFECTIVE_HOURLY: pd.to_numeric(wide[col], errors="coerce")})
        parts.append(part[part[EFFECTIVE_HOURLY] > 0])
    return _finish(with_estimated_savings_plans(pd.concat(parts, ignore_index=True)))


SP_LIKE_RI = {"compute_sp": "convertible", "ec2_instance_sp": "reserved"}
"""AWS's published rule of thumb: a Compute Savings Plan discounts about as much as a convertible RI, an EC2
Instance Savings Plan about as much as a standard RI, for the same term and payment option."""


def with_estimated_savings_plans(rows: pd.DataFrame) -> pd.DataFrame:
    """AWS rows plus a savings-plan row per instance type and SP option the rows do not price yet, at the rate of
    the RI :data:`SP_LIKE_RI` names (same term and payment), flagged ``rate_is_estimate``."""
    from optimizer.options import SAVINGS_PLAN_OPTIONS, parse_savings_plan

    rows = rows.copy()
    if RATE_IS_ESTIMATE not in rows.columns:
        rows[RATE_IS_ESTIMATE] = False
    aws = rows[rows[PROVIDER] == "aws"]
    key = [REGION, INSTANCE_TYPE]
    have = set(map(tuple, aws.loc[aws[PURCHASE_OPTION].isin(SAVINGS_PLAN_OPTIONS), key + [PURCHASE_OPTION]]
                   .to_numpy().tolist()))
    parts = [rows]
    for option in SAVINGS_PLAN_OPTIONS:
        kind, term, payment = parse_savings_plan(option)
        ri = aws[aws[PURCHASE_OPTION] == commitment_option(SP_LIKE_RI[kind], term, payment)]
        if ri.empty:
            continue
        missing = [(r, i, option) not in have for r, i in zip(ri[REGION], ri[INSTANCE_TYPE], strict=True)]
        est = ri[missing].assign(**{PURCHASE_OPTION: option, RATE_IS_ESTIMATE: True})
        parts.append(est)
    return pd.concat(parts, ignore_index=True)


def build_gcp_rows(prices: pd.DataFrame,
                   source: str = "Cyclenerd/google-cloud-pricing-cost-calculator") -> pd.DataFrame:
    """Long catalog rows from the GCP machine-type table.

    GCP resource-based committed-use discounts are billed monthly with nothing upfront, so 1y/3y CUDs
    map to ``reserved_{1y,3y}_no_upfront``. GCP publishes no interruption buckets (left empty).
    """
    model = prices["gpu_model"].map(lambda m: _GCP_GPU_MODELS.get(m, (f"NVIDIA {m}", np.nan)))
    base = pd.DataFrame({PROVIDER: "gcp", REGION: prices["region"], INSTANCE_TYPE: prices["machine_type"],
                         GPU_MODEL: model.str[0], GPU_COUNT: prices["gpu_count"].astype(float),
                         GPU_MEMORY: model.str[1], INTERRUPTION: None,
                         SNAPSHOT_DATE: prices["snapshot_date"].astype(str), SOURCE: source})
    parts = []
    columns = {ON_DEMAND: "ondemand_usd_per_hour", SPOT: "spot_usd_per_hour",
               "reserved_1y_no_upfront": "cud_1y_usd_per_hour", "reserved_3y_no_upfront": "cud_3y_usd_per_hour"}
    for option, col in columns.items():
        part = base.assign(**{PURCHASE_OPTION: option, EFFECTIVE_HOURLY: pd.to_numeric(prices[col], errors="coerce")})
        parts.append(part[part[EFFECTIVE_HOURLY] > 0])
    return _finish(pd.concat(parts, ignore_index=True))


AZURE_PAYG_SOURCE = "skypilot-org/skypilot-catalog@3f5f697 catalogs/v5/azure/vms.csv"
AZURE_PAYG_SNAPSHOT = "undated, 2024-08 or later"
"""The SkyPilot file carries no date; it contains rows its maintainers added on 2024-08-26 (skypilot-catalog PR
#79), so it is no older than that. See data_samples/prices/AZURE_SOURCE.md."""
AZURE_RESERVATION_SOURCE = "Azure Retail Prices API (prices.azure.com), reservation totals read 2026-09-27"


def build_azure_rows(vms: pd.DataFrame, reservations: pd.DataFrame | None = None,
                     snapshot_date: str = "unknown", source: str = AZURE_PAYG_SOURCE,
                     reservation_source: str = AZURE_RESERVATION_SOURCE) -> pd.DataFrame:
    """Long catalog rows for Azure NC/ND GPU VM sizes.

    Args:
        vms: pay-as-you-go and spot prices per VM size and region, in the SkyPilot catalog layout
            (``InstanceType, Price, SpotPrice, Region``; USD per VM-hour, Linux). Only the sizes of
            :data:`AZURE_GPU_SIZES` are kept. A spot price at or above pay-as-you-go is the source's stand-in
            for "no spot offer" and is dropped, as is a blank price.
        reservations: Azure Reserved VM Instance prices (``arm_sku_name, region, reservation_term,
            total_usd_per_term``, plus ``snapshot_date``): the Retail Prices API gives a reservation's price
            as the total for the whole term per VM. Azure bills it upfront or in equal monthly instalments at
            the same total, so each becomes ``reserved_{1y,3y}_all_upfront`` and ``reserved_{1y,3y}_no_upfront``
            rows with one effective rate (total / term hours).
        snapshot_date: date of the pay-as-you-go/spot rows.
        source, reservation_source: ``source`` column of those rows.

    Returns:
        Catalog rows (provider ``azure``). Azure publishes no interruption buckets (left empty).
    """
    vms = vms[vms["InstanceType"].isin(AZURE_GPU_SIZES)]
    spec = vms["InstanceType"].map(AZURE_GPU_SIZES)
    base = pd.DataFrame({PROVIDER: "azure", REGION: vms["Region"].astype(str), INSTANCE_TYPE: vms["InstanceType"],
                         GPU_MODEL: spec.str[0], GPU_COUNT: spec.str[1].astype(float), GPU_MEMORY: spec.str[2],
                         INTERRUPTION: None, SNAPSHOT_DATE: snapshot_date, SOURCE: source})
    on_demand = pd.to_numeric(vms["Price"], errors="coerce")
    spot = pd.to_numeric(vms["SpotPrice"], errors="coerce").where(lambda p: p < on_demand)
    parts = [base.assign(**{PURCHASE_OPTION: ON_DEMAND, EFFECTIVE_HOURLY: on_demand}),
             base.assign(**{PURCHASE_OPTION: SPOT, EFFECTIVE_HOURLY: spot})]
    if reservations is not None and not reservations.empty:
        specs = base.drop_duplicates(INSTANCE_TYPE).set_index(INSTANCE_TYPE)
        res = reservations[reservations["arm_sku_name"].isin(specs.index)
                           & reservations["reservation_term"].isin(AZURE_TERMS)]
        term = res["reservation_term"].map(AZURE_TERMS)
        sku = res["arm_sku_name"]
        for payment in ("no", "all"):
            option = term.map(lambda t, p=payment: commitment_option("reserved", t, p))
            hours = option.map(term_hours).astype(float)
            parts.append(pd.DataFrame({
                PROVIDER: "azure", REGION: res["region"].astype(str), INSTANCE_TYPE: sku,
                GPU_MODEL: sku.map(specs[GPU_MODEL]), GPU_COUNT: sku.map(specs[GPU_COUNT]),
                GPU_MEMORY: sku.map(specs[GPU_MEMORY]), INTERRUPTION: None,
                SNAPSHOT_DATE: res["snapshot_date"].astype(str), SOURCE: reservation_source,
                PURCHASE_OPTION: option, EFFECTIVE_HOURLY: pd.to_numeric(res["total_usd_per_term"]) / hours}))
    out = pd.concat(parts, ignore_index=True)
    return _finish(out[out[EFFECTIVE_HOURLY] > 0])


def build_snapshot(prices_dir: Path = DATA_DIR / "prices") -> pd.DataFrame:
    """The shipped catalog from the copied public price files."""
    aws = build_aws_rows(pd.read_csv(prices_dir / "aws_gpu_instance_specs.csv"),
                         pd.read_csv(prices_dir / "aws_gpu_prices_linux.csv"), snapshot_date="2025-11-30")
    gcp = build_gcp_rows(pd.read_csv(prices_dir / "gcp_gpu_instance_prices.csv"))
    azure = build_azure_rows(pd.read_csv(prices_dir / "azure_gpu_vm_prices_skypilot.csv"),
                             pd.read_csv(prices_dir / "azure_gpu_reservation_prices.csv"),
                             snapshot_date=AZURE_PAYG_SNAPSHOT)
    return pd.concat([aws, gcp, azure], ignore_index=True)


def write_atomic_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a catalog CSV atomically (temporary file, then rename)."""
    write_csv_atomic(df, path)


class CatalogError(ValueError):
    """A catalog file or a catalog query the user can fix (one line)."""


@dataclass(frozen=True)
class Catalog:
    """A loaded price catalog (one row per instance_type x region x purchase_option)."""

    table: pd.DataFrame
    path: str = "built-in snapshot"

    def snapshot_dates(self, region: str | None = None) -> tuple[str, ...]:
        rows = self.table if region is None else self.region(region)
        return tuple(sorted(rows[SNAPSHOT_DATE].astype(str).unique()))

    def region(self, region: str) -> pd.DataFrame:
        rows = self.table[self.table[REGION] == region]
        if rows.empty:
            known = ", ".join(sorted(self.table[REGION].unique())[:8])
            raise CatalogError(f"{self.path}: no prices for region '{region}' (fix: choose one of {known}, ...)")
        return rows

    def provider_of_region(self, region: str) -> str | None:
        """The provider whose rows carry this region name (None when the catalog has no such region)."""
        names = self.table.loc[self.table[REGION] == region, PROVIDER].unique()
        return str(names[0]) if len(names) else None

    def gpu_models(self, region: str | None = None) -> set[str]:
        rows = self.table if region is None else self.region(region)
        return set(rows[GPU_MODEL].dropna().unique())

    def instance_gpus(self) -> dict[str, tuple[str, float]]:
        """instance_type -> (gpu_model, GPUs per instance), for the ingestion adapters."""
        specs = self.table.drop_duplicates(INSTANCE_TYPE)
        return {r[INSTANCE_TYPE]: (r[GPU_MODEL], float(r[GPU_COUNT])) for _, r in specs.iterrows()}

    def offers(self, region: str, gpu_model: str | None = None, instance_types: tuple[str, ...] | None = None,
               options: tuple[str, ...] | None = None) -> pd.DataFrame:
        """Rows for a region, optionally filtered by GPU model, instance types and purchase options."""
        rows = self.region(region)
        if gpu_model is not None:
            rows = rows[rows[GPU_MODEL] == gpu_model]
        if instance_types:
            rows = rows[rows[INSTANCE_TYPE].isin(instance_types)]
        if options is not None:
            rows = rows[rows[PURCHASE_OPTION].isin(options)]
        return rows.reset_index(drop=True)


def merge_catalog(base: pd.DataFrame, refreshed: pd.DataFrame) -> pd.DataFrame:
    """Replace the base rows of every (provider, region, instance_type) the refresh priced; keep the rest.

    A refresh covers one provider and region, so writing it alone would drop every other region and GCP.
    """
    key = [PROVIDER, REGION, INSTANCE_TYPE]
    priced = refreshed[key].drop_duplicates()
    keep = base.merge(priced, on=key, how="left", indicator=True)["_merge"].eq("left_only").to_numpy()
    out = pd.concat([base[keep], refreshed[list(CATALOG_COLUMNS)]], ignore_index=True)
    return out.sort_values([PROVIDER, REGION, INSTANCE_TYPE, PURCHASE_OPTION]).reset_index(drop=True)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load a catalog CSV (the shipped snapshot by default) and check its columns."""
    path = Path(path) if path is not None else DEFAULT_CATALOG
    if not path.exists():
        raise CatalogError(f"{path}: catalog file not found (fix: omit --catalog to use the shipped snapshot)")
    table = pd.read_csv(path, dtype={INTERRUPTION: "string", SNAPSHOT_DATE: "string"})
    if RATE_IS_ESTIMATE not in table.columns:          # catalogs written before savings plans
        table[RATE_IS_ESTIMATE] = False
    missing = [c for c in CATALOG_COLUMNS if c not in table.columns]
    if missing:
        raise CatalogError(f"{path}: missing column '{missing[0]}' (fix: write catalogs with gpuplan catalog refresh)")
    bad = table[EFFECTIVE_HOURLY].isna() | (table[EFFECTIVE_HOURLY] < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise CatalogError(f"{path}, row {row}, column '{EFFECTIVE_HOURLY}': price must be a number >= 0")
    table[UPFRONT_IS_ESTIMATE] = table[UPFRONT_IS_ESTIMATE].astype(str).str.lower().eq("true")
    table[RATE_IS_ESTIMATE] = table[RATE_IS_ESTIMATE].astype(str).str.lower().eq("true")
    label = "built-in snapshot" if path == DEFAULT_CATALOG else str(path)
    return Catalog(table=table, path=label)


# --- completeness: instance types of the specs that no catalog row prices ------------------------------------

SOLD_AS = {
    "p5e.48xlarge": "sold through EC2 Capacity Blocks for ML (us-east-2)",
    "trn2.48xlarge": "sold through EC2 Capacity Blocks for ML (us-east-2)",
    "p6e-gb200.36xlarge": "sold as P6e-GB200 UltraServers through EC2 Capacity Blocks for ML",
}
"""How AWS sells GPU instance types that have no on-demand, spot or RI price, from the EC2 User Guide page
"Capacity Blocks for ML" (supported instance types and Regions; UltraServer Capacity Blocks), read 2026-12."""
MISSING_COLUMNS = ("provider", "instance_type", "gpu_model", "gpu_count", "reason")


def missing_instance_types(table: pd.DataFrame, prices_dir: Path = DATA_DIR / "prices") -> pd.DataFrame:
    """GPU instance types of the shipped AWS specs (``aws_gpu_instance_specs.csv``) that ``table`` (a catalog) has
    no row for, each with the reason (:data:`MISSING_COLUMNS`): how AWS sells it (:data:`SOLD_AS`) and that the
    price snapshot has no price for any purchase option. A type is listed, never silently absent."""
    specs = pd.read_csv(prices_dir / "aws_gpu_instance_specs.csv")
    specs = specs[specs["gpu_count"] > 0]
    listed = set(table.loc[table[PROVIDER] == "aws", INSTANCE_TYPE])
    rows = []
    for _, r in specs.sort_values("instance_type").iterrows():
        if r["instance_type"] in listed:
            continue
        sold = SOLD_AS.get(r["instance_type"])
        why = (f"{sold}; " if sold else "") + ("no price for any purchase option (on-demand, spot, RI, Savings Plan, "
                                               "Capacity Block) in the price snapshot")
        rows.append({"provider": "aws", "instance_type": r["instance_type"], "gpu_model": r["gpu_model"],
                     "gpu_count": float(r["gpu_count"]), "reason": why + "; gpuplan catalog refresh may price it"})
    return pd.DataFrame(rows, columns=list(MISSING_COLUMNS))
