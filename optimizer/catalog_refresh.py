"""``gpuplan catalog refresh`` backend: current AWS prices through boto3, as catalog rows.

Units: every price is USD; ``effective_hourly_usd`` and ``recurring_hourly_usd`` are USD per
instance-hour, ``upfront_usd`` is USD per instance for the whole term, ``term_hours`` is 8,760 (1 year)
or 26,280 (3 years) for commitments and 0 for on-demand and spot. The result has exactly the columns of
:data:`optimizer.catalog.CATALOG_COLUMNS`, so it can be written with
:func:`optimizer.catalog.write_atomic_csv` and read back with :func:`optimizer.catalog.load_catalog`.

Where the numbers come from:

* On-demand and reserved prices: the AWS Price List API (``pricing:GetProducts``, service ``AmazonEC2``),
  one query per instance type for Linux, shared tenancy, no pre-installed software, capacity status
  ``Used``. A reserved term's effective rate is ``hourly + upfront / term_hours``; the Price List gives
  both parts, so the upfront/recurring split is exact for every payment option (``upfront_is_estimate``
  is False on every refreshed row, unlike the partial-upfront rows of the shipped snapshot).
* Spot prices: ``ec2:DescribeSpotPriceHistory`` for ``Linux/UNIX`` over the look-back window. Each
  availability zone's price is its time-weighted average over the window (a price holds from its
  timestamp until the next change; a price set before the window counts from the window start; a zone
  whose history has no duration inside the window uses its latest price), and the catalog's spot price
  is the plain mean of those zone prices.
* Savings-plan rates: ``savingsplans:DescribeSavingsPlansOfferingRates`` (Compute and EC2 Instance plans, product
  EC2, Linux/UNIX, shared tenancy, the region and instance types; every ``nextToken`` page). A rate is USD per
  instance-hour of usage under the plan; the payment option splits it as the catalog's savings-plan rows do
  (all upfront: the whole term's rate upfront; partial: half). An instance type with RI prices but no published
  savings-plan rate gets one derived from its refreshed RI rates
  (:func:`optimizer.catalog.with_estimated_savings_plans`, ``rate_is_estimate``); so does every type when no
  savings-plans client is given (injected ``pricing`` and ``ec2`` clients without one).
* GPU model, GPUs per instance, GPU memory and the spot interruption bucket come from the base catalog
  (the shipped snapshot unless another is given): the Price List API carries no interruption buckets
  and no GPU model names.

Credentials come only from boto3's standard chain (``boto3.Session()``: environment, shared config and
credentials files, SSO, container or instance role); they are never logged, stored or put in messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from optimizer.catalog import (
    CATALOG_COLUMNS,
    EFFECTIVE_HOURLY,
    GPU_COUNT,
    GPU_MEMORY,
    GPU_MODEL,
    INSTANCE_TYPE,
    INTERRUPTION,
    PROVIDER,
    PURCHASE_OPTION,
    RATE_IS_ESTIMATE,
    RECURRING_HOURLY,
    REGION,
    SNAPSHOT_DATE,
    SOURCE,
    TERM_HOURS_COL,
    UPFRONT,
    UPFRONT_IS_ESTIMATE,
    Catalog,
    load_catalog,
    with_estimated_savings_plans,
)
from optimizer.options import (
    ON_DEMAND,
    SPOT,
    TERM_HOURS,
    UPFRONT_SHARE,
    commitment_option,
    term_hours,
)

REFRESH_SOURCE = "AWS Price List API + EC2 spot price history"
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
"""Regions that serve the Price List query API (any of them prices every region)."""

_LEASE_TERMS = {"1yr": "1y", "3yr": "3y"}
_OFFERING_KINDS = {"standard": "reserved", "convertible": "convertible"}
_PAYMENTS = {"No Upfront": "no", "Partial Upfront": "partial", "All Upfront": "all"}
_HOUR_UNITS = ("Hrs", "Hours", "Hrs.")
_PERMISSIONS = {"GetProducts": "pricing:GetProducts",
                "DescribeSpotPriceHistory": "ec2:DescribeSpotPriceHistory",
                "DescribeSavingsPlansOfferingRates": "savingsplans:DescribeSavingsPlansOfferingRates"}
_SP_TYPES = {"Compute": "compute_sp", "EC2Instance": "ec2_instance_sp"}
_SP_TERMS = {31536000: "1y", 94608000: "3y"}
SAVINGS_PLANS_REGION = "us-east-1"
"""The Savings Plans API has one endpoint (us-east-1) for every region's rates."""

Progress = Callable[[str], None]


class RefreshError(RuntimeError):
    """A catalog refresh that failed in a way the user can fix (one line, never any credentials)."""


@dataclass(frozen=True)
class RefreshConfig:
    """What to refresh.

    Attributes:
        region: AWS region whose prices are fetched (e.g. ``us-east-1``).
        instance_types: Instance types to price; None means every GPU instance type the base catalog
            lists for ``region``.
        spot_lookback_hours: Length of the spot price history window, in hours, ending at ``end_time``.
        end_time: End of the spot window (timezone-aware, or naive meaning UTC); None means now. Its UTC
            date is the refreshed rows' ``snapshot_date``.
        pricing_region: Endpoint region of the Price List API (one of :data:`PRICING_REGIONS`).
        operating_system: Price List ``operatingSystem`` value (``Linux``: the catalog is Linux prices).
        spot_product_description: Spot history product description matching ``operating_system``.
        page_size: ``MaxResults`` for ``GetProducts`` (at most 100).
        spot_page_size: ``MaxResults`` for ``DescribeSpotPriceHistory`` (at most 1000).
    """

    region: str = "us-east-1"
    instance_types: tuple[str, ...] | None = None
    spot_lookback_hours: int = 24 * 7
    end_time: datetime | None = None
    pricing_region: str = "us-east-1"
    operating_system: str = "Linux"
    spot_product_description: str = "Linux/UNIX"
    page_size: int = 100
    spot_page_size: int = 1000


@dataclass(frozen=True)
class RefreshResult:
    """A refreshed catalog and what happened.

    Attributes:
        catalog: Refreshed rows only (one region, AWS), columns as ``CATALOG_COLUMNS``, sorted like the
            shipped snapshot.
        rows: Number of rows in ``catalog``.
        instance_types: Number of distinct instance types priced.
        spot_prices: Number of instance types that got a spot row.
        notes: Human-readable notes: data sources, the spot method, instance types not priced.
    """

    catalog: pd.DataFrame
    rows: int
    instance_types: int
    spot_prices: int
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class OfferPrice:
    """One purchase option of one Price List product (USD)."""

    option: str
    recurring_hourly_usd: float
    upfront_usd: float = 0.0

    @property
    def effective_hourly_usd(self) -> float:
        hours = term_hours(self.option)
        return self.recurring_hourly_usd + (self.upfront_usd / hours if hours else 0.0)


# --- Price List parsing ---------------------------------------------------------------------------


def _usd(dimension: dict[str, Any]) -> float | None:
    value = (dimension.get("pricePerUnit") or {}).get("USD")
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _hourly_and_upfront(dimensions: dict[str, Any]) -> tuple[float | None, float]:
    """(hourly USD of the first-tier ``Hrs`` dimension, sum of ``Quantity`` upfront fees in USD)."""
    hourly: float | None = None
    upfront = 0.0
    for dim in sorted(dimensions.values(), key=lambda d: float(d.get("beginRange", 0) or 0)):
        price = _usd(dim)
        if price is None:
            continue
        if dim.get("unit") in _HOUR_UNITS:
            if hourly is None:
                hourly = price
        elif dim.get("unit") == "Quantity":
            upfront += price
    return hourly, upfront


def parse_price_list_item(item: str | dict[str, Any]) -> tuple[dict[str, str], list[OfferPrice]]:
    """Attributes and priced purchase options of one ``GetProducts`` PriceList entry.

    Args:
        item: One PriceList entry: a JSON string as the API returns it, or the parsed dict.

    Returns:
        ``(product attributes, offers)``: on-demand from ``terms.OnDemand`` and one offer per reserved
        term (``terms.Reserved``, keyed by LeaseContractLength, OfferingClass and PurchaseOption), named as
        in :mod:`optimizer.options`. Terms without a USD price, or with an unknown term attribute, are
        skipped; if a product lists the same reserved option twice the cheaper effective rate is kept.
    """
    data = json.loads(item) if isinstance(item, str | bytes) else item
    attributes = dict((data.get("product") or {}).get("attributes") or {})
    terms = data.get("terms") or {}
    offers: dict[str, OfferPrice] = {}
    for term in (terms.get("OnDemand") or {}).values():
        hourly, _ = _hourly_and_upfront(term.get("priceDimensions") or {})
        if hourly is not None and ON_DEMAND not in offers:
            offers[ON_DEMAND] = OfferPrice(ON_DEMAND, hourly)
    for term in (terms.get("Reserved") or {}).values():
        attrs = term.get("termAttributes") or {}
        length = _LEASE_TERMS.get(str(attrs.get("LeaseContractLength", "")).strip())
        kind = _OFFERING_KINDS.get(str(attrs.get("OfferingClass", "")).strip().lower())
        payment = _PAYMENTS.get(str(attrs.get("PurchaseOption", "")).strip())
        if length is None or kind is None or payment is None:
            continue
        hourly, upfront = _hourly_and_upfront(term.get("priceDimensions") or {})
        if hourly is None and upfront == 0.0:
            continue
        offer = OfferPrice(commitment_option(kind, length, payment), hourly or 0.0, upfront)
        known = offers.get(offer.option)
        if known is None or offer.effective_hourly_usd < known.effective_hourly_usd:
            offers[offer.option] = offer
    return attributes, list(offers.values())


# --- spot price history ---------------------------------------------------------------------------


def _as_utc(value: datetime | str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def spot_price_by_type(records: Iterable[dict[str, Any]], start: datetime, end: datetime,
                       product_description: str = "Linux/UNIX") -> dict[str, float]:
    """Spot price per instance type: mean over availability zones of each zone's time-weighted price.

    Args:
        records: ``SpotPriceHistory`` entries (InstanceType, AvailabilityZone, SpotPrice, Timestamp,
            ProductDescription), in any order.
        start: Window start (UTC if naive).
        end: Window end (UTC if naive).
        product_description: Entries for other product descriptions are ignored.

    Returns:
        instance_type -> USD per instance-hour. A price holds from its timestamp until the zone's next
        price (or ``end``); only the part inside ``[start, end]`` counts. A zone whose prices have no
        duration inside the window (all at or after ``end``) uses its latest price.
    """
    start, end = _as_utc(start), _as_utc(end)
    series: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    for rec in records:
        if rec.get("ProductDescription", product_description) != product_description:
            continue
        key = (rec["InstanceType"], rec.get("AvailabilityZone") or rec.get("AvailabilityZoneId") or "?")
        series.setdefault(key, []).append((_as_utc(rec["Timestamp"]), float(rec["SpotPrice"])))
    zone_prices: dict[str, list[float]] = {}
    for (itype, _zone), points in sorted(series.items()):
        points.sort(key=lambda p: p[0])
        weighted = total = 0.0
        for i, (ts, price) in enumerate(points):
            until = points[i + 1][0] if i + 1 < len(points) else end
            seconds = (min(until, end) - max(ts, start)).total_seconds()
            if seconds > 0:
                weighted += price * seconds
                total += seconds
        zone_prices.setdefault(itype, []).append(weighted / total if total > 0 else points[-1][1])
    return {itype: sum(prices) / len(prices) for itype, prices in zone_prices.items()}


# --- AWS calls ------------------------------------------------------------------------------------


def _call(client: Any, method: str, api: str, **params: Any) -> dict[str, Any]:
    """One AWS call; any failure becomes a one-line :class:`RefreshError` naming the API call."""
    permission = _PERMISSIONS.get(api, api)
    try:
        return getattr(client, method)(**params)
    except ClientError as exc:
        code = (exc.response.get("Error") or {}).get("Code", "Unknown")
        raise RefreshError(
            f"AWS {api} failed ({code}): check your AWS credentials and permissions "
            f"(the refresh needs {permission}; credentials come from the standard boto3 chain: "
            "AWS_PROFILE or environment variables, ~/.aws files, SSO or an instance role)") from exc
    except NoCredentialsError as exc:
        raise RefreshError(
            f"AWS {api} failed: no AWS credentials found: check your AWS credentials "
            "(set AWS_PROFILE, run aws sso login or aws configure, or use an instance role)") from exc
    except NoRegionError as exc:
        raise RefreshError(f"AWS {api} failed: no AWS region configured (fix: pass --region)") from exc
    except BotoCoreError as exc:
        detail = " ".join(str(exc).split())
        raise RefreshError(f"AWS {api} failed: {detail} (check your network, AWS credentials and "
                           f"permissions; the refresh needs {permission})") from exc


def _pages(client: Any, method: str, api: str, result_key: str, **params: Any) -> Iterator[list[Any]]:
    """Yield each page's ``result_key`` list, following NextToken (stops on a repeated token)."""
    seen: set[str] = set()
    token: str | None = None
    while True:
        page = _call(client, method, api, **params, **({"NextToken": token} if token else {}))
        yield list(page.get(result_key) or [])
        token = page.get("NextToken") or None
        if token is None or token in seen:
            return
        seen.add(token)


def savings_plan_rates(client: Any, config: RefreshConfig, instance_types: list[str],
                       say: Progress = lambda _m: None) -> dict[tuple[str, str], float]:
    """Published savings-plan rates, ``(instance_type, purchase_option) -> USD per instance-hour``, for Linux/UNIX
    shared-tenancy usage of ``instance_types`` in ``config.region`` (Compute and EC2 Instance plans, every page)."""
    filters = [{"name": "region", "values": [config.region]},
               {"name": "instanceType", "values": list(instance_types)},
               {"name": "productDescription", "values": [config.spot_product_description]},
               {"name": "tenancy", "values": ["shared"]}]
    out: dict[tuple[str, str], float] = {}
    seen: set[str] = set()
    token = None
    while True:
        say(f"savings-plan rates for {len(instance_types)} instance types in {config.region}")
        page = _call(client, "describe_savings_plans_offering_rates", "DescribeSavingsPlansOfferingRates",
                     savingsPlanTypes=list(_SP_TYPES), products=["EC2"], serviceCodes=["AmazonEC2"],
                     filters=filters, maxResults=1000, **({"nextToken": token} if token else {}))
        for r in page.get("searchResults") or []:
            offering = r.get("savingsPlanOffering") or {}
            props = {p.get("name"): p.get("value") for p in r.get("properties") or []}
            kind = _SP_TYPES.get(str(offering.get("planType")))
            term = _SP_TERMS.get(int(offering.get("durationSeconds") or 0))
            payment = _PAYMENTS.get(str(offering.get("paymentOption")))
            itype = props.get("instanceType")
            try:
                rate = float(r.get("rate"))
            except (TypeError, ValueError):
                continue
            if (None in (kind, term, payment) or itype not in instance_types or r.get("unit") != "Hrs"
                    or offering.get("currency", "USD") != "USD" or props.get("region", config.region) != config.region
                    or props.get("tenancy", "shared").lower() != "shared" or rate <= 0):
                continue
            out[(itype, f"{kind}_{term}_{payment}_upfront")] = rate
        token = page.get("nextToken") or None
        if token is None or token in seen:
            return out
        seen.add(token)


def _product_filters(config: RefreshConfig, instance_type: str) -> list[dict[str, str]]:
    values = {"instanceType": instance_type, "regionCode": config.region,
              "operatingSystem": config.operating_system, "tenancy": "Shared", "preInstalledSw": "NA",
              "capacitystatus": "Used"}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in values.items()]


def _pick_product(items: list[tuple[dict[str, str], list[OfferPrice]]], instance_type: str,
                  region: str) -> tuple[tuple[dict[str, str], list[OfferPrice]] | None, int]:
    """The product to use among those a query returned, and how many candidates there were."""
    matches = [(a, o) for a, o in items if o and a.get("instanceType", instance_type) == instance_type
               and a.get("regionCode", region) == region
               and a.get("marketoption", "OnDemand") == "OnDemand"]
    box = [m for m in matches if "BoxUsage" in m[0].get("usagetype", "BoxUsage")]
    chosen = box or matches
    return (chosen[0] if chosen else None), len(chosen)


# --- the refresh ----------------------------------------------------------------------------------


def _specs(base: Catalog, region: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any], list[str]]:
    """GPU specs per AWS instance type (any region), interruption bucket per type in ``region``,
    and the GPU instance types the base catalog lists for ``region`` (sorted)."""
    aws = base.table[base.table[PROVIDER] == "aws"]
    specs = {r[INSTANCE_TYPE]: {GPU_MODEL: r[GPU_MODEL], GPU_COUNT: float(r[GPU_COUNT]),
                                GPU_MEMORY: float(r[GPU_MEMORY])}
             for _, r in aws.drop_duplicates(INSTANCE_TYPE).iterrows()}
    in_region = aws[aws[REGION] == region]
    buckets = {}
    for itype, rows in in_region.groupby(INSTANCE_TYPE):
        known = rows[INTERRUPTION].dropna()
        buckets[itype] = str(known.iloc[0]) if len(known) else None
    listed = sorted(in_region.loc[in_region[GPU_COUNT] > 0, INSTANCE_TYPE].unique())
    return specs, buckets, listed


def _make_clients(config: RefreshConfig, pricing_client: Any, ec2_client: Any, session: Any,
                  sp_client: Any = None) -> tuple[Any, Any, Any]:
    if pricing_client is not None and ec2_client is not None:
        return pricing_client, ec2_client, sp_client
    from botocore.config import Config

    retry = Config(retries={"mode": "standard", "max_attempts": 8})
    try:
        if session is None:
            import boto3

            session = boto3.Session()
        if pricing_client is None:
            pricing_client = session.client("pricing", region_name=config.pricing_region, config=retry)
        if ec2_client is None:
            ec2_client = session.client("ec2", region_name=config.region, config=retry)
        if sp_client is None:
            sp_client = session.client("savingsplans", region_name=SAVINGS_PLANS_REGION, config=retry)
    except BotoCoreError as exc:
        detail = " ".join(str(exc).split())
        raise RefreshError(f"cannot create AWS clients: {detail} (check your AWS configuration)") from exc
    return pricing_client, ec2_client, sp_client


def _check(config: RefreshConfig) -> None:
    if not config.region or not str(config.region).strip():
        raise RefreshError("no region given (fix: pass --region, e.g. us-east-1)")
    if config.spot_lookback_hours <= 0:
        raise RefreshError(f"spot look-back must be > 0 hours, got {config.spot_lookback_hours}")
    if config.pricing_region not in PRICING_REGIONS:
        raise RefreshError(f"the Price List API is not served from '{config.pricing_region}' "
                           f"(fix: use one of {', '.join(PRICING_REGIONS)})")
    if not 1 <= config.page_size <= 100 or not 5 <= config.spot_page_size <= 1000:
        raise RefreshError("page sizes out of range (GetProducts 1-100, DescribeSpotPriceHistory 5-1000)")


def _dates(base: Catalog) -> str:
    dates = sorted(base.table[SNAPSHOT_DATE].dropna().astype(str).unique())
    return ", ".join(dates) or "date unknown"


def _short(names: Iterable[str], limit: int = 20) -> str:
    names = list(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def refresh_catalog(config: RefreshConfig, *, pricing_client: Any = None, ec2_client: Any = None,
                    session: Any = None, base: Catalog | None = None,
                    progress: Progress | None = None, savingsplans_client: Any = None) -> RefreshResult:
    """Fetch current on-demand, reserved and spot prices for one region's GPU instance types.

    Args:
        config: Region, instance types and spot look-back.
        pricing_client: A boto3 ``pricing`` client (tests inject a stubbed one); default from ``session``
            in ``config.pricing_region``.
        ec2_client: A boto3 ``ec2`` client for ``config.region``; default from ``session``.
        session: A ``boto3.Session``; default ``boto3.Session()`` (the standard credential chain). Only
            used for clients that are not given.
        base: Catalog supplying GPU specs and interruption buckets (and, when ``config.instance_types``
            is None, the instance types to price); default the shipped snapshot.
        progress: Called with a short message before each AWS request batch (e.g. for a CLI status line).
        savingsplans_client: A boto3 ``savingsplans`` client; default from ``session`` (us-east-1). When
            ``pricing_client`` and ``ec2_client`` are injected without it, no savings-plan rates are read and every
            savings-plan row is derived from the RI rates (flagged ``rate_is_estimate``).

    Returns:
        The refreshed rows (only instance types AWS priced; nothing is invented) and notes naming the
        instance types that could not be priced.

    Raises:
        RefreshError: An AWS call failed (credentials, permissions, network), the configuration is
            invalid, or nothing at all could be priced.
    """
    _check(config)
    say = progress or (lambda _msg: None)
    base = base if base is not None else load_catalog()
    specs, buckets, listed = _specs(base, config.region)
    given = config.instance_types
    requested = list(dict.fromkeys(t.strip() for t in given if t.strip())) if given is not None else listed
    if not requested:
        raise RefreshError(f"{base.path}: no AWS GPU instance types listed for region '{config.region}' "
                           "(fix: pass instance types explicitly, or check the region name)")
    unknown = [t for t in requested if t not in specs]
    wanted = [t for t in requested if t in specs]
    end = _as_utc(config.end_time) if config.end_time is not None else datetime.now(UTC)
    start = end - timedelta(hours=config.spot_lookback_hours)
    notes = [f"GPU model, GPU count, GPU memory and spot interruption buckets come from the base catalog "
             f"({base.path}, snapshot {_dates(base)}): the AWS Price List "
             "API has no interruption buckets or GPU model names"]
    if unknown:
        notes.append(f"not in the base catalog, so no GPU specs are known (skipped): {_short(unknown)}")
    if not wanted:
        raise RefreshError(f"none of the requested instance types is a GPU type the base catalog knows: "
                           f"{_short(unknown)} (fix: choose types from the catalog)")
    pricing, ec2, sp_client = _make_clients(config, pricing_client, ec2_client, session, savingsplans_client)

    offers: dict[str, list[OfferPrice]] = {}
    for i, itype in enumerate(wanted, 1):
        say(f"Price List {itype} in {config.region} ({i}/{len(wanted)})")
        items = []
        for page in _pages(pricing, "get_products", "GetProducts", "PriceList", ServiceCode="AmazonEC2",
                           Filters=_product_filters(config, itype), FormatVersion="aws_v1",
                           MaxResults=config.page_size):
            try:
                items.extend(parse_price_list_item(entry) for entry in page)
            except (ValueError, TypeError, AttributeError) as exc:
                raise RefreshError(f"AWS GetProducts returned an unreadable PriceList entry for {itype} "
                                   f"({type(exc).__name__}); try again later") from exc
        chosen, candidates = _pick_product(items, itype, config.region)
        if chosen is None:
            continue
        if candidates > 1:
            notes.append(f"{itype}: {candidates} Price List products matched; used the first "
                         f"({chosen[0].get('usagetype', 'unknown usage type')})")
        offers[itype] = [o for o in chosen[1] if o.effective_hourly_usd > 0]
        if not offers[itype]:
            del offers[itype]

    say(f"spot price history for {len(wanted)} instance types in {config.region} "
        f"(last {config.spot_lookback_hours} h)")
    records: list[dict[str, Any]] = []
    for page in _pages(ec2, "describe_spot_price_history", "DescribeSpotPriceHistory", "SpotPriceHistory",
                       InstanceTypes=wanted, ProductDescriptions=[config.spot_product_description],
                       StartTime=start, EndTime=end, MaxResults=config.spot_page_size):
        records.extend(page)
        say(f"spot price history: {len(records)} price points")
    spot = spot_price_by_type(records, start, end, config.spot_product_description)
    for itype, price in spot.items():
        if itype in offers and price > 0:  # spot alone, without Price List prices, is not a catalog entry
            offers[itype].append(OfferPrice(SPOT, price))

    sp_rates = (savings_plan_rates(sp_client, config, [t for t in wanted if t in offers], say)
                if sp_client is not None and offers else {})
    for (itype, option), rate in sorted(sp_rates.items()):
        share = UPFRONT_SHARE[option.rsplit("_", 2)[1]]
        offers[itype].append(OfferPrice(option, rate * (1.0 - share), rate * share * term_hours(option)))

    snapshot = end.date().isoformat()
    rows = []
    for itype, priced in offers.items():
        spec = specs[itype]
        for offer in priced:
            rows.append({PROVIDER: "aws", REGION: config.region, INSTANCE_TYPE: itype,
                         PURCHASE_OPTION: offer.option, EFFECTIVE_HOURLY: offer.effective_hourly_usd,
                         UPFRONT: float(offer.upfront_usd),
                         RECURRING_HOURLY: float(offer.recurring_hourly_usd),
                         UPFRONT_IS_ESTIMATE: False, TERM_HOURS_COL: term_hours(offer.option), **spec,
                         INTERRUPTION: buckets.get(itype), SNAPSHOT_DATE: snapshot, SOURCE: REFRESH_SOURCE})
    not_priced = [t for t in wanted if t not in offers]
    if not rows:
        raise RefreshError(f"AWS returned no Linux prices for {_short(wanted, 5)} in region "
                           f"'{config.region}' (check the region name and instance types)")
    catalog = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS)).assign(**{RATE_IS_ESTIMATE: False})
    catalog = with_estimated_savings_plans(catalog)
    catalog = catalog.astype({TERM_HOURS_COL: "int64", UPFRONT_IS_ESTIMATE: bool, RATE_IS_ESTIMATE: bool,
                              INTERRUPTION: "string", SNAPSHOT_DATE: "string"})
    catalog = catalog.sort_values([PROVIDER, REGION, INSTANCE_TYPE, PURCHASE_OPTION]).reset_index(drop=True)

    no_spot = [t for t, priced in offers.items() if not any(o.option == SPOT for o in priced)]
    no_reserved = [t for t, priced in offers.items() if all(o.option in (ON_DEMAND, SPOT) for o in priced)]
    notes.append(f"spot price = mean over availability zones of each zone's time-weighted average "
                 f"{config.spot_product_description} spot price from {start:%Y-%m-%d %H:%M} to "
                 f"{end:%Y-%m-%d %H:%M} UTC ({config.spot_lookback_hours} h)")
    notes.append(f"reserved rows: effective hourly = hourly + upfront / term hours "
                 f"({TERM_HOURS['1y']} for 1 year, {TERM_HOURS['3y']} for 3 years); upfront and recurring "
                 "parts are exact (from the Price List)")
    estimated = sorted(set(catalog.loc[catalog[RATE_IS_ESTIMATE], INSTANCE_TYPE]))
    if sp_client is None:
        notes.append("savings-plan rates not read (no savingsplans client): derived from the RI rates "
                     "(Compute SP ~ convertible RI, EC2 Instance SP ~ standard RI; rate_is_estimate)")
    else:
        notes.append(f"savings-plan rates from DescribeSavingsPlansOfferingRates: {len(sp_rates)} published")
        if estimated:
            notes.append(f"no published savings-plan rate for some options, derived from the RI rates "
                         f"(rate_is_estimate): {_short(estimated)}")
    if not_priced:
        notes.append(f"not priced by the AWS Price List in {config.region} (no rows written): "
                     f"{_short(not_priced)}")
    if no_spot:
        notes.append(f"no spot price history in {config.region} (no spot row): {_short(no_spot)}")
    if no_reserved:
        notes.append(f"no reserved-instance prices in {config.region}: {_short(no_reserved)}")
    missing_bucket = [t for t in offers if buckets.get(t) is None]
    if missing_bucket:
        notes.append(f"no interruption bucket in the base catalog for {config.region} (left empty): "
                     f"{_short(missing_bucket)}")
    return RefreshResult(catalog=catalog, rows=len(catalog),
                         instance_types=int(catalog[INSTANCE_TYPE].nunique()),
                         spot_prices=int(catalog[PURCHASE_OPTION].eq(SPOT).sum()), notes=tuple(notes))
