"""``gpuplan data-prices-refresh`` backend: S3, EBS and data-transfer list prices of one region through boto3, as the
rows of the data price file (:data:`operate.data_savings.PRICE_COLUMNS`).

Units: ``usd_per_unit`` is USD per ``unit``: ``GB-month`` (storage), ``GB`` (retrieval, transfer), ``request``
(lifecycle transitions), ``object-month`` (Intelligent-Tiering monitoring).

Where the numbers come from: the AWS Price List API (``pricing:GetProducts``, every ``NextToken`` page) for
``AmazonS3`` (every product of the region), ``AmazonEC2`` (product families ``Storage`` and ``Storage Snapshot``)
and ``AWSDataTransfer`` (transfer from the region). A product is matched by its ``usagetype`` without the region
prefix (:data:`USAGE_ITEMS`); a price is the on-demand price of its first tier (``beginRange`` 0; S3 Standard's
first 50 TB). Inter-region transfer has one price per destination; the lowest is kept (a lower bound of the saving
from removing it). Items the API does not return keep no row (the savings then say a price is missing).

:func:`prices_from_offer_csv` derives the same rows from downloaded offer files in CSV form (the public Price List
files need no credentials), so the shipped file can be re-derived from a raw offer file.

Credentials come only from boto3's standard chain; they are never logged, stored or put in messages. The clients
can be injected (tests use botocore's Stubber and never the internet).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from operate.data_savings import PRICE_COLUMNS
from optimizer.catalog_refresh import RefreshError, _pages
from usage.io import write_csv_atomic

REFRESH_SOURCE = "AWS Price List API"
USAGE_ITEMS: dict[str, tuple[str, str]] = {
    "TimedStorage-ByteHrs": ("s3-standard", "GB-month"),
    "TimedStorage-SIA-ByteHrs": ("s3-standard-ia", "GB-month"),
    "TimedStorage-ZIA-ByteHrs": ("s3-onezone-ia", "GB-month"),
    "TimedStorage-GIR-ByteHrs": ("s3-glacier-instant-retrieval", "GB-month"),
    "TimedStorage-GlacierByteHrs": ("s3-glacier-flexible-retrieval", "GB-month"),
    "TimedStorage-GDA-ByteHrs": ("s3-glacier-deep-archive", "GB-month"),
    "TimedStorage-INT-FA-ByteHrs": ("s3-intelligent-tiering", "GB-month"),
    "TimedStorage-INT-IA-ByteHrs": ("s3-intelligent-tiering-infrequent", "GB-month"),
    "TimedStorage-INT-AIA-ByteHrs": ("s3-intelligent-tiering-archive-instant", "GB-month"),
    "Monitoring-Automation-INT": ("s3-intelligent-tiering-monitoring", "object-month"),
    "Retrieval-SIA": ("retrieval-s3-standard-ia", "GB"),
    "Retrieval-ZIA": ("retrieval-s3-onezone-ia", "GB"),
    "Retrieval-GIR": ("retrieval-s3-glacier-instant-retrieval", "GB"),
    "Standard-Retrieval-Bytes": ("retrieval-s3-glacier-flexible-retrieval", "GB"),
    "Requests-Tier4": ("transition-s3-standard-ia", "request"),
    "EBS:VolumeUsage.gp3": ("ebs-gp3", "GB-month"),
    "EBS:VolumeUsage.gp2": ("ebs-gp2", "GB-month"),
    "EBS:VolumeUsage.piops": ("ebs-io1", "GB-month"),
    "EBS:VolumeUsage.io2": ("ebs-io2", "GB-month"),
    "EBS:VolumeUsage.st1": ("ebs-st1", "GB-month"),
    "EBS:VolumeUsage.sc1": ("ebs-sc1", "GB-month"),
    "EBS:SnapshotUsage": ("ebs-snapshot", "GB-month"),
    "EBS:SnapshotArchiveStorage": ("ebs-snapshot-archive", "GB-month"),
    "DataTransfer-Regional-Bytes": ("transfer-inter-az", "GB"),
}
"""AWS usage type (without region prefix) -> (price-file item, unit)."""
INTER_REGION = re.compile(r"(?:[A-Z]{2,4}[0-9]?-)?[A-Z]{2,4}[0-9]?-AWS-Out-Bytes")
REGION_PREFIX = re.compile(r"^(?:[A-Z]{2,4}[0-9]?|EU|CAN1|UGW1)-(?=[A-Za-z])")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PricesRefreshResult:
    """Refreshed price rows and what happened.

    Attributes:
        table: rows with :data:`operate.data_savings.PRICE_COLUMNS`, sorted by item.
        products: Price List products read (every page).
        notes: items not found, choices made.
    """

    table: pd.DataFrame
    products: int
    notes: tuple[str, ...] = field(default_factory=tuple)


def _first_tier_usd(item: dict[str, Any]) -> float | None:
    """On-demand USD of the first price tier (``beginRange`` 0) of one Price List product."""
    best: tuple[float, float] | None = None
    for term in ((item.get("terms") or {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            raw = (dim.get("pricePerUnit") or {}).get("USD")
            try:
                usd, begin = float(raw), float(dim.get("beginRange", 0) or 0)
            except (TypeError, ValueError):
                continue
            if best is None or begin < best[0]:
                best = (begin, usd)
    return None if best is None else best[1]


def refresh_data_prices(region: str = "us-east-1", *, pricing_client: Any = None, session: Any = None,
                        pricing_region: str = "us-east-1", page_size: int = 100, today: datetime | None = None,
                        say: Progress = lambda _m: None) -> PricesRefreshResult:
    """Read the region's S3, EBS and transfer prices from the Price List API (every page).

    Args:
        region: AWS region to price (e.g. ``us-east-1``).
        pricing_client: a boto3 ``pricing`` client (tests inject a stubbed one); None builds one.
        session: boto3 session for building the client (default chain) when none is given.
        pricing_region: endpoint region of the Price List API.
        page_size: ``MaxResults`` per page (at most 100).
        today: refresh date written to ``source_date`` (default: now, UTC).
        say: progress callback.

    Returns:
        :class:`PricesRefreshResult`.

    Raises:
        RefreshError: AWS refused or failed (one line, no credentials), or no price was found for the region.
    """
    if pricing_client is None:
        import boto3

        pricing_client = (session or boto3.Session()).client("pricing", region_name=pricing_region)
    queries = [
        ("AmazonS3", [("regionCode", region)]),
        ("AmazonEC2", [("regionCode", region), ("productFamily", "Storage")]),
        ("AmazonEC2", [("regionCode", region), ("productFamily", "Storage Snapshot")]),
        ("AWSDataTransfer", [("fromRegionCode", region)]),
    ]
    prices: list[tuple[str, float, bool]] = []
    products = 0
    for service, terms in queries:
        filters = [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in terms]
        say(f"Price List {service} {', '.join(v for _, v in terms)}")
        for page in _pages(pricing_client, "get_products", "GetProducts", "PriceList", ServiceCode=service,
                           Filters=filters, FormatVersion="aws_v1", MaxResults=page_size):
            for entry in page:
                try:
                    item = json.loads(entry) if isinstance(entry, str) else dict(entry)
                    usage = str(((item.get("product") or {}).get("attributes") or {}).get("usagetype", ""))
                except (ValueError, TypeError, AttributeError) as exc:
                    raise RefreshError(f"AWS GetProducts returned an unreadable PriceList entry for {service} "
                                       f"({type(exc).__name__}); try again later") from exc
                products += 1
                usd = _first_tier_usd(item)
                if usd is not None:
                    prices.append((usage, usd, service == "AWSDataTransfer"))
    if not prices:
        raise RefreshError(f"AWS Price List returned no S3, EBS or transfer price for region '{region}' "
                           "(fix: check the region name, e.g. us-east-1)")
    date = (today or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    table, notes = _rows(prices, region, REFRESH_SOURCE, date)
    if table.empty:
        raise RefreshError(f"AWS Price List returned no S3, EBS or transfer price for region '{region}' "
                           "(fix: check the region name, e.g. us-east-1)")
    return PricesRefreshResult(table=table, products=products, notes=tuple(notes))


def _rows(prices: list[tuple[str, float, bool]], region: str, source: str,
          date: str) -> tuple[pd.DataFrame, list[str]]:
    """Price-file rows from ``(usage type, first-tier USD, is a transfer product)`` triples."""
    found: dict[str, tuple[float, str, str]] = {}
    inter_region: list[tuple[float, str]] = []
    for usage, usd, transfer in prices:
        if transfer and INTER_REGION.fullmatch(usage):
            if usd > 0:
                inter_region.append((usd, usage))
            continue
        hit = USAGE_ITEMS.get(REGION_PREFIX.sub("", usage, count=1))
        if hit is not None and hit[0] not in found:
            found[hit[0]] = (usd, hit[1], usage)
    notes = []
    if inter_region:
        usd, usage = min(inter_region)
        found["transfer-inter-region"] = (usd, "GB", usage)
        notes.append(f"inter-region transfer: lowest of {len(inter_region)} destination prices ({usage})")
    wanted = {i for i, _ in USAGE_ITEMS.values()} | {"transfer-inter-region"}
    missing = sorted(wanted - set(found))
    if missing and found:
        notes.append("not in the source (no row written): " + ", ".join(missing))
    rows = [{"region": region, "item": item, "usage_type": usage, "unit": unit, "usd_per_unit": usd,
             "source": source, "source_date": date} for item, (usd, unit, usage) in found.items()]
    table = pd.DataFrame(rows, columns=list(PRICE_COLUMNS)).sort_values("item", kind="stable").reset_index(drop=True)
    return table, notes


def prices_from_offer_csv(path: str | Path, region: str) -> PricesRefreshResult:
    """Price-file rows from AWS offer files in CSV form (the public, credential-free Price List files, e.g.
    ``offers/v1.0/aws/AmazonS3/current/<region>/index.csv``; several files may be joined by calling this per file
    and concatenating the tables).

    The five preamble lines (``FormatVersion`` ... ``OfferCode``) are skipped; ``Publication Date`` becomes
    ``source_date``. Rows: ``TermType`` OnDemand, ``StartingRange`` 0 (first tier), priced by ``usageType``.

    Raises:
        UsageError: unreadable file or no offer header (one line: file and fix).
    """
    from usage.schema import UsageError

    source = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(source, f"cannot read the offer file ({type(exc).__name__})",
                         fix="give an AWS offer file in CSV form (index.csv)") from None
    published, offer, start = "", "", None
    for i, line in enumerate(lines[:10]):
        cells = next(csv.reader([line]), [])
        if cells[:1] == ["Publication Date"] and len(cells) > 1:
            published = cells[1][:10]
        elif cells[:1] == ["OfferCode"] and len(cells) > 1:
            offer = cells[1]
        elif cells[:1] == ["SKU"]:
            start = i
            break
    if start is None:
        raise UsageError(source, "no offer header (a line starting with \"SKU\") in the first 10 lines",
                         fix="give an AWS offer file in CSV form (index.csv) as downloaded")
    reader = csv.DictReader(lines[start:])
    prices: list[tuple[str, float, bool]] = []
    products = 0
    for row in reader:
        products += 1
        if row.get("TermType") != "OnDemand" or (row.get("StartingRange") or "0") not in ("0", "0.0"):
            continue
        try:
            usd = float(row.get("PricePerUnit") or "")
        except ValueError:
            continue
        prices.append((row.get("usageType") or "", usd, offer == "AWSDataTransfer"
                       or (row.get("Product Family") or "") == "Data Transfer"))
    table, notes = _rows(prices, region, f"AWS offer file {offer} {Path(path).name}", published or "undated")
    return PricesRefreshResult(table=table, products=products, notes=tuple(notes))


def write_prices(result: PricesRefreshResult, out: str | Path) -> Path:
    """Write the refreshed rows atomically (spreadsheet-safe CSV, never half-written)."""
    return write_csv_atomic(result.table, out)
