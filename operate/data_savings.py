"""Savings that can be acted on in the data costs of AI work: lifecycle transitions of S3 storage nobody reads,
snapshots kept beyond a retention policy, unattached EBS volumes, and transfer that co-locating data with the GPUs
removes.

Units: storage prices are **USD per GB-month**, retrieval and transfer prices **USD per GB**, request fees USD per
request, the Intelligent-Tiering monitoring fee USD per object-month; GB is the billed GB of 2^30 bytes (a TB is
1,024 GB). Every :class:`Saving` is **USD per month**, priced on the latest month of the data-usage frame
(:func:`usage.ingest.data_lines.load_data_lines`); one-off costs (lifecycle transition requests) are
``one_off_usd``, USD, and never netted into the monthly figure.

What a billing export can tell, and what it cannot:

* **Unread storage.** The export has one line per month, team, project and storage class for S3 GET requests
  (``Requests-Tier2`` on Standard) and retrieval (``Retrieval-SIA`` ...), read by
  :func:`usage.ingest.data_lines.load_detail_lines`. A team's and project's Standard storage counts as unread
  for ``unread_days`` when the export covers that many days (``ceil(unread_days / 30)`` months) with Standard
  storage and has no read request in any of them (and the export has S3 request lines at all). The export cannot
  tell which objects or prefixes were read, nor an object's last-access date (S3 server access logs or Storage
  Class Analysis can); a policy ``read_fraction`` (share of the stored GB read each month) replaces the request
  test and prices the retrieval fees of colder classes.
* **Snapshot age.** EBS snapshot lines carry the snapshot id (CUR ``line_item_resource_id``) but no creation date;
  a snapshot's age is counted from the first month it appears in the export (a lower bound). Without resource ids
  the policy's ``snapshot_old_share`` (share of snapshot GB-months older than the retention) is used.
* **Unattached volumes.** No CUR or FOCUS column says whether a volume is attached (``EBS:VolumeUsage`` lines bill
  attached and detached volumes alike), so they come from an inventory CSV ``volume_id, team, size_gb, type,
  attached`` (e.g. ``aws ec2 describe-volumes`` with status ``available`` = not attached).
* **Transfer.** Inter-region (``...-AWS-Out-Bytes``) and inter-AZ (``DataTransfer-Regional-Bytes``, one line per
  direction) GB are in the data-usage frame; co-locating the data with the GPUs in one region and zone removes them.

Prices come from a price file (:func:`load_prices`; the shipped ``data_samples/prices/aws_data_prices.csv`` is
us-east-1 list prices with their sources, ``gpuplan data-prices-refresh`` writes the same columns from the AWS Price
List API). Pure functions and frozen dataclasses; no streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from usage.schema import UsageError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PRICES = ROOT / "data_samples" / "prices" / "aws_data_prices.csv"
PRICE_COLUMNS = ("region", "item", "usage_type", "unit", "usd_per_unit", "source", "source_date")
PRICE_UNITS = ("GB-month", "GB", "request", "object-month")
VOLUME_COLUMNS = ("volume_id", "team", "size_gb", "type", "attached")

LIFECYCLE = "lifecycle"
SNAPSHOT_RETENTION = "snapshot-retention"
UNATTACHED_VOLUME = "unattached-volume"
COLOCATE_TRANSFER = "colocate-transfer"
KINDS = (LIFECYCLE, SNAPSHOT_RETENTION, UNATTACHED_VOLUME, COLOCATE_TRANSFER)

STANDARD = "s3-standard"
INTELLIGENT_TIERING = "s3-intelligent-tiering"
LIFECYCLE_TARGETS = ("s3-standard-ia", "s3-onezone-ia", "s3-glacier-instant-retrieval",
                     "s3-glacier-flexible-retrieval", "s3-glacier-deep-archive", INTELLIGENT_TIERING)
"""Classes a lifecycle rule can move Standard objects to."""
MIN_DAYS = {"s3-standard-ia": 30, "s3-onezone-ia": 30, "s3-glacier-instant-retrieval": 90,
            "s3-glacier-flexible-retrieval": 90, "s3-glacier-deep-archive": 180, INTELLIGENT_TIERING: 0}
"""Minimum storage duration, days: an object deleted or moved earlier is billed the remaining days (AWS S3
pricing; see ``AWS_DATA_PRICES_SOURCE.md``)."""
MIN_OBJECT_KB = {"s3-standard-ia": 128.0, "s3-onezone-ia": 128.0, "s3-glacier-instant-retrieval": 128.0}
"""Minimum billable object size, KB: smaller objects are billed as this size."""
ARCHIVE_OVERHEAD_KB = {"s3-glacier-flexible-retrieval": (8.0, 32.0), "s3-glacier-deep-archive": (8.0, 32.0)}
"""Per archived object, KB billed at the Standard rate and at the archive rate (index and metadata)."""
INSTANT_ACCESS = ("s3-standard-ia", "s3-onezone-ia", "s3-glacier-instant-retrieval", INTELLIGENT_TIERING)
"""Targets read in milliseconds; the others need a restore of hours (Glacier Flexible, Deep Archive)."""
READ_USAGE = ("Requests-Tier2",)
"""Usage types of reads on S3 Standard objects (GET, SELECT and the other non-write requests)."""
KB_PER_GB = 1024.0 * 1024.0
DAYS_PER_MONTH = 30.0
"""Days per month used to turn ``unread_days`` and retention days into whole billing months."""


@dataclass(frozen=True)
class Saving:
    """One saving that can be acted on.

    Attributes:
        team: team the cost belongs to (``unallocated`` for untagged lines).
        kind: one of :data:`KINDS`.
        description: what to do, in one sentence.
        usd_per_month: monthly saving, USD (after retrieval and monitoring fees; before one-off costs).
        assumptions: what the figure rests on, the prices used and what the export cannot tell.
        project: project tag (empty when the saving is per team).
        current_usd_per_month: what the lines concerned cost a month now at the price file's prices, USD.
        one_off_usd: one-off cost of acting (lifecycle transition requests), USD; NaN when unknown.
        quantity: the GB-month (storage) or GB (transfer) concerned.
        unit: ``GB-month`` or ``GB``.
    """

    team: str
    kind: str
    description: str
    usd_per_month: float
    assumptions: str
    project: str = ""
    current_usd_per_month: float = 0.0
    one_off_usd: float = 0.0
    quantity: float = 0.0
    unit: str = "GB-month"


SAVING_COLUMNS = tuple(f.name for f in fields(Saving))


@dataclass(frozen=True)
class DataPrices:
    """A price file: one row per region and item (:data:`PRICE_COLUMNS`).

    Attributes:
        table: the rows, ``usd_per_unit`` as float.
        path: the file read (for messages).
    """

    table: pd.DataFrame
    path: str = ""

    def price(self, item: str, region: str) -> float | None:
        """USD per unit of ``item`` in ``region``, or None when the file has no such row."""
        hit = self.table[(self.table["region"] == region) & (self.table["item"] == item)]
        return None if hit.empty else float(hit["usd_per_unit"].iloc[0])

    def cite(self, item: str, region: str) -> str:
        """``item price (source, date)`` for assumption texts."""
        hit = self.table[(self.table["region"] == region) & (self.table["item"] == item)]
        if hit.empty:
            return f"{item}: no price"
        row = hit.iloc[0]
        return f"{item} {row['usd_per_unit']:g} USD/{row['unit']} ({row['source_date']})"

    def regions(self) -> list[str]:
        """Regions the file prices."""
        return sorted(self.table["region"].unique())


@dataclass(frozen=True)
class SavingsPolicy:
    """What counts as a saving.

    Attributes:
        region: price-file region the data lives in (the export's data lines carry no region).
        unread_days: storage with no read for this many days is moved by a lifecycle rule.
        read_fraction: share of the stored GB read each month, if known; replaces the export's request test and
            prices retrieval fees. None: only storage without any read request in the window is moved.
        lifecycle_targets: classes a lifecycle rule may move Standard objects to (the best saving is proposed).
            The default keeps to classes read in milliseconds.
        avg_object_mb: average object size, MB; needed for transition request fees, the Intelligent-Tiering
            monitoring fee and the minimum billable object size. None: those are not counted (Intelligent-Tiering
            is then not proposed) and the assumptions say so.
        snapshot_retention_days: snapshots older than this are beyond the retention policy.
        snapshot_old_share: share of snapshot GB-months older than the retention, used when the export has no
            snapshot ids. None: no snapshot saving without ids.
        colocate_transfer: propose removing inter-region and inter-AZ transfer by co-locating data and GPUs.
        min_usd_per_month: savings below this are left out, USD per month.
    """

    region: str = "us-east-1"
    unread_days: int = 90
    read_fraction: float | None = None
    lifecycle_targets: tuple[str, ...] = ("s3-standard-ia", "s3-glacier-instant-retrieval", INTELLIGENT_TIERING)
    avg_object_mb: float | None = None
    snapshot_retention_days: int = 90
    snapshot_old_share: float | None = None
    colocate_transfer: bool = True
    min_usd_per_month: float = 0.0

    def __post_init__(self) -> None:
        if self.unread_days < 1:
            raise ValueError(f"unread_days must be at least 1, got {self.unread_days}")
        if self.snapshot_retention_days < 1:
            raise ValueError(f"snapshot_retention_days must be at least 1, got {self.snapshot_retention_days}")
        for name in ("read_fraction", "snapshot_old_share"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.avg_object_mb is not None and not self.avg_object_mb > 0:
            raise ValueError(f"avg_object_mb must be above 0, got {self.avg_object_mb}")
        unknown = [t for t in self.lifecycle_targets if t not in LIFECYCLE_TARGETS]
        if unknown:
            raise ValueError(f"unknown lifecycle target {unknown[0]!r}; choose from {', '.join(LIFECYCLE_TARGETS)}")


# --- files ------------------------------------------------------------------------------------------------


def _read_text_table(path: str | Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A small CSV as text cells (empty = ""), with ``columns`` present.

    Raises:
        UsageError: unreadable file or a missing column (one line: file, column, fix).
    """
    fix = "give a CSV with columns " + ", ".join(columns)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(str(path), f"cannot read {what} ({type(exc).__name__})", fix=fix) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UsageError(str(path), f"missing column '{missing[0]}'", column=missing[0], fix=fix)
    return table


def _non_negative(raw: str, source: str, row: int, column: str, what: str, fix: str) -> float:
    """A text cell as a finite number >= 0, or one :class:`UsageError` line naming the file, row and column."""
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(source, f"{what} {raw!r} is not a number >= 0", row=row, column=column, fix=fix)
    return value


def load_prices(path: str | Path | None = None) -> DataPrices:
    """Read and check a price file (:data:`PRICE_COLUMNS`).

    Raises:
        UsageError: unreadable file, a missing column, a price that is not a number >= 0, an unknown unit or a
            repeated region and item (one line: file, row, column, fix).
    """
    path = Path(path) if path is not None else DEFAULT_PRICES
    source = str(path)
    table = _read_text_table(path, PRICE_COLUMNS, "the price file")
    values = []
    for i, (raw, unit) in enumerate(zip(table["usd_per_unit"], table["unit"], strict=True)):
        row = i + 2  # header is row 1
        value = _non_negative(raw, source, row, "usd_per_unit", "price",
                              "write USD per unit as a plain number such as 0.0125")
        if unit not in PRICE_UNITS:
            raise UsageError(source, f"unknown unit {unit!r}", row=row, column="unit",
                             fix="use one of " + ", ".join(PRICE_UNITS))
        values.append(value)
    table = table.assign(usd_per_unit=values)
    dup = table.duplicated(["region", "item"])
    if dup.any():
        row = int(dup.to_numpy().nonzero()[0][0]) + 2
        raise UsageError(source, f"item {table['item'][row - 2]!r} is priced twice for region "
                                 f"{table['region'][row - 2]!r}", row=row, column="item",
                         fix="keep one row per region and item")
    return DataPrices(table=table[list(PRICE_COLUMNS)].reset_index(drop=True), path=source)


def load_policy(path: str | Path | None, **overrides: Any) -> SavingsPolicy:
    """A :class:`SavingsPolicy` from a YAML mapping (keys as its attributes), then ``overrides`` not None.

    Raises:
        UsageError: unreadable YAML, an unknown key or a bad value (one line naming the key and the fix).
    """
    import yaml

    values: dict[str, Any] = {}
    source = str(path) if path is not None else "policy"
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise UsageError(source, f"cannot read the policy ({type(exc).__name__})",
                             fix="write a YAML mapping such as 'unread_days: 90'") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UsageError(source, "the policy is not a mapping",
                             fix="write a YAML mapping such as 'unread_days: 90'")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in fields(SavingsPolicy)}
    for key in values:
        if key not in names:
            raise UsageError(source, f"unknown key {key!r}", where=[source, f"key '{key}'"],
                             fix="use " + ", ".join(sorted(names)))
    if "lifecycle_targets" in values:
        targets = values["lifecycle_targets"]
        values["lifecycle_targets"] = (targets,) if isinstance(targets, str) else tuple(targets or ())
    try:
        return SavingsPolicy(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(source, " ".join(str(exc).split()), fix="see the data-savings policy keys in the README"
                         ) from None


def load_volumes(path: str | Path) -> pd.DataFrame:
    """Read an EBS volume inventory CSV (:data:`VOLUME_COLUMNS`; ``attached`` true/false, yes/no or 1/0).

    Raises:
        UsageError: unreadable file, a missing column, a size that is not a number >= 0 or an unreadable
            ``attached`` cell (one line: file, row, column, fix).
    """
    source = str(path)
    table = _read_text_table(path, VOLUME_COLUMNS, "the volume inventory")
    sizes, attached = [], []
    for i, (size, att) in enumerate(zip(table["size_gb"], table["attached"], strict=True)):
        row = i + 2
        gb = _non_negative(size, source, row, "size_gb", "size", "write the volume size in GB such as 500")
        flag = att.strip().lower()
        if flag not in ("true", "false", "yes", "no", "1", "0"):
            raise UsageError(source, f"attached value {att!r} is not true or false", row=row, column="attached",
                             fix="write true or false")
        sizes.append(gb)
        attached.append(flag in ("true", "yes", "1"))
    out = table[list(VOLUME_COLUMNS)].assign(size_gb=sizes, attached=attached)
    out["type"] = out["type"].str.strip().str.lower()
    out["team"] = out["team"].str.strip().replace("", "unallocated")
    return out


# --- the savings -------------------------------------------------------------------------------------------


def _months_back(latest: str, n: int) -> list[str]:
    """The ``n`` months ending at ``latest`` (``YYYY-MM``), oldest first."""
    end = pd.Period(latest, freq="M")
    return [str(end - k) for k in range(n - 1, -1, -1)]


def has_request_lines(details: pd.DataFrame | None) -> bool:
    """Whether the detail lines include S3 request lines at all (an export filtered to storage lines has none, and
    then no read request does not mean the storage is unread)."""
    return details is not None and bool(details["usage_type"].astype(str).str.startswith("Requests-").any())


def _need(prices: DataPrices, item: str, region: str) -> float:
    value = prices.price(item, region)
    if value is None:
        raise UsageError(prices.path or "price file", f"no price for {item!r} in region {region!r}",
                         column="item", fix=f"add a row for {item} in {region}, or refresh the prices for that region "
                                            "(gpuplan data-prices-refresh)")
    return value


@dataclass(frozen=True)
class _Option:
    target: str
    usd_per_month: float
    new_usd_per_month: float
    one_off_usd: float
    notes: tuple[str, ...] = field(default_factory=tuple)


def _lifecycle_option(target: str, gb: float, prices: DataPrices, policy: SavingsPolicy,
                      read_fraction: float) -> _Option | None:
    """Monthly cost of ``gb`` GB of Standard storage moved to ``target``, and the saving; None when unpriced."""
    region = policy.region
    p_std = _need(prices, STANDARD, region)
    objects = gb * 1024.0 / policy.avg_object_mb if policy.avg_object_mb else None
    notes: list[str] = []
    if target == INTELLIGENT_TIERING:
        if objects is None:
            return None
        tier = ("s3-intelligent-tiering-archive-instant" if policy.unread_days >= 90
                else "s3-intelligent-tiering-infrequent")
        p_tier, p_freq = prices.price(tier, region), prices.price(INTELLIGENT_TIERING, region)
        p_mon = prices.price("s3-intelligent-tiering-monitoring", region)
        if p_tier is None or p_freq is None or p_mon is None:
            return None
        new = gb * read_fraction * p_freq + gb * (1 - read_fraction) * p_tier + objects * p_mon
        notes.append(f"unread objects sit in the {tier.removeprefix('s3-intelligent-tiering-')} tier after "
                     f"{30 if tier.endswith('infrequent') else 90} days; monitoring {objects:,.0f} objects")
        one_off = math.nan
        fee = prices.price("transition-" + target, region)
        if fee is not None:
            one_off = objects * fee
        return _Option(target, gb * p_std - new, new, one_off, tuple(notes))
    p_t = prices.price(target, region)
    if p_t is None:
        return None
    billed = gb
    if objects is not None and target in MIN_OBJECT_KB:
        billed = max(gb, objects * MIN_OBJECT_KB[target] / KB_PER_GB)
        if billed > gb:
            notes.append(f"objects under {MIN_OBJECT_KB[target]:.0f} KB are billed as {MIN_OBJECT_KB[target]:.0f} KB "
                         f"({billed:,.1f} GB billed)")
    new = billed * p_t
    if objects is not None and target in ARCHIVE_OVERHEAD_KB:
        kb_std, kb_arch = ARCHIVE_OVERHEAD_KB[target]
        new += objects * (kb_std * p_std + kb_arch * p_t) / KB_PER_GB
        notes.append(f"{kb_std:.0f} KB per object billed at Standard and {kb_arch:.0f} KB at the archive rate")
    if read_fraction > 0:
        fee = prices.price("retrieval-" + target, region)
        if fee is None:
            return None
        new += gb * read_fraction * fee
        notes.append(f"retrieval {gb * read_fraction:,.1f} GB a month x {fee:g} USD/GB")
    transition = prices.price("transition-" + target, region)
    one_off = objects * transition if (objects is not None and transition is not None) else math.nan
    return _Option(target, gb * p_std - new, new, one_off, tuple(notes))


def _lifecycle(data: pd.DataFrame, details: pd.DataFrame | None, prices: DataPrices, policy: SavingsPolicy,
               latest: str) -> list[Saving]:
    months_needed = max(1, math.ceil(policy.unread_days / DAYS_PER_MONTH))
    window = _months_back(latest, months_needed)
    std = data[(data["class"] == STANDARD) & (data["unit"] == "GB-month")]
    out: list[Saving] = []
    for (team, project), rows in std.groupby(["team", "project"], sort=True):
        gb = float(rows.loc[rows["month"] == latest, "quantity"].sum())
        if not gb > 0:
            continue
        if policy.read_fraction is not None:
            read_fraction = policy.read_fraction
            how = f"policy read_fraction {read_fraction:g} of the stored GB read each month"
        else:
            if not has_request_lines(details):
                continue  # without request lines in the export, no read is not the same as unread
            stored = set(rows.loc[rows["quantity"] > 0, "month"])
            if not set(window) <= stored:
                continue  # the export does not cover the unread window for this storage
            reads = details[(details["team"] == team) & (details["project"] == project)
                            & details["usage_type"].isin(READ_USAGE) & details["month"].isin(window)]
            if float(reads["quantity"].sum()) > 0:
                continue
            read_fraction = 0.0
            how = (f"no GET request (Requests-Tier2) on Standard for team {team}, project {project} in "
                   f"{window[0]}..{window[-1]} ({months_needed} months >= {policy.unread_days} days); the export "
                   "cannot tell which objects or prefixes were read nor last-access dates")
        options = [o for o in (_lifecycle_option(t, gb, prices, policy, read_fraction)
                               for t in policy.lifecycle_targets) if o is not None]
        best = max(options, key=lambda o: o.usd_per_month, default=None)
        if best is None or best.usd_per_month <= 0:
            continue
        current = gb * _need(prices, STANDARD, policy.region)
        others = "; ".join(f"{o.target} {o.usd_per_month:,.2f}" for o in options if o is not best)
        parts = [how,
                 f"{gb:,.1f} GB in Standard in {latest} (GB = 2^30 bytes)",
                 f"prices {policy.region}: {prices.cite(STANDARD, policy.region)} (first 50 TB tier), "
                 f"{prices.cite(best.target, policy.region)}",
                 *best.notes,
                 f"minimum storage duration {MIN_DAYS[best.target]} days in {best.target} (earlier deletes are "
                 "billed the remaining days)"]
        if best.target not in INSTANT_ACCESS:
            parts.append("reads need a restore taking hours")
        if policy.avg_object_mb is None:
            parts.append("object count unknown (set avg_object_mb): transition request fees and the 128 KB minimum "
                         "billable object size are not counted")
        elif math.isnan(best.one_off_usd):
            parts.append("transition request fee not in the price file (refresh the prices): one-off cost unknown")
        else:
            parts.append(f"one-off transition requests {best.one_off_usd:,.2f} USD "
                         f"({gb * 1024.0 / policy.avg_object_mb:,.0f} objects of {policy.avg_object_mb:g} MB)")
        if others:
            parts.append(f"other targets (USD/month): {others}")
        out.append(Saving(team=str(team), project=str(project), kind=LIFECYCLE,
                          description=(f"Lifecycle rule: move project {project}'s Standard objects to {best.target} "
                                       f"after {policy.unread_days} days without a read"),
                          usd_per_month=best.usd_per_month, assumptions="; ".join(parts),
                          current_usd_per_month=current, one_off_usd=best.one_off_usd, quantity=gb))
    return out


def _snapshots(data: pd.DataFrame, details: pd.DataFrame | None, prices: DataPrices, policy: SavingsPolicy,
               latest: str) -> list[Saving]:
    price = _need(prices, "ebs-snapshot", policy.region)
    retention_months = max(1, math.ceil(policy.snapshot_retention_days / DAYS_PER_MONTH))
    cutoff = str(pd.Period(latest, freq="M") - retention_months)
    snaps = data[(data["class"] == "ebs-snapshot") & (data["month"] == latest)]
    out: list[Saving] = []
    ids = None
    if details is not None:
        ids = details[(details["usage_type"] == "EBS:SnapshotUsage") & (details["resource_id"] != "")]
    for team, rows in snaps.groupby("team", sort=True):
        total_gb = float(rows["quantity"].sum())
        if not total_gb > 0:
            continue
        team_ids = ids[ids["team"] == team] if ids is not None else None
        if team_ids is not None and not team_ids.empty:
            first = team_ids.groupby("resource_id")["month"].min()
            now = team_ids[team_ids["month"] == latest].groupby("resource_id")["quantity"].sum()
            old = [r for r in now.index if first[r] <= cutoff]
            old_gb = float(now[old].sum())
            if not old_gb > 0:
                continue
            how = (f"{len(old)} snapshot ids first billed in or before {cutoff} (age counted from the first month in "
                   f"the export, a lower bound; the export has no creation date), {old_gb:,.1f} of {total_gb:,.1f} "
                   f"GB-month in {latest}")
        elif policy.snapshot_old_share is not None:
            old_gb = total_gb * policy.snapshot_old_share
            how = (f"no snapshot ids in the export: policy snapshot_old_share {policy.snapshot_old_share:g} of "
                   f"{total_gb:,.1f} GB-month in {latest}")
        else:
            continue
        saving = old_gb * price
        if saving <= 0:
            continue
        out.append(Saving(team=str(team), kind=SNAPSHOT_RETENTION,
                          description=(f"Delete EBS snapshots older than {policy.snapshot_retention_days} days "
                                       "(retention policy)"),
                          usd_per_month=saving,
                          assumptions="; ".join([how, f"price {prices.cite('ebs-snapshot', policy.region)}",
                                                 "snapshots are incremental: deleting one frees only blocks no later "
                                                 "snapshot references, so this is an upper bound"]),
                          current_usd_per_month=total_gb * price, one_off_usd=0.0, quantity=old_gb))
    return out


def _volumes(data: pd.DataFrame, volumes: pd.DataFrame | None, prices: DataPrices,
             policy: SavingsPolicy, latest: str) -> list[Saving]:
    if volumes is None:
        return []
    out: list[Saving] = []
    free = volumes[~volumes["attached"].astype(bool)]
    for team, rows in free.groupby("team", sort=True):
        total, gb, unpriced, cites = 0.0, 0.0, [], set()
        for vol in rows.itertuples(index=False):
            item = f"ebs-{vol.type}"
            price = prices.price(item, policy.region)
            origin = prices.cite(item, policy.region)
            if price is None:  # the export's own rate for that volume type
                lines = data[(data["class"] == item) & (data["month"] == latest) & (data["quantity"] > 0)]
                if lines.empty:
                    unpriced.append(str(vol.volume_id))
                    continue
                price = float(lines["cost_usd"].sum() / lines["quantity"].sum())
                origin = f"{item} {price:g} USD/GB-month billed in {latest}"
            total += float(vol.size_gb) * price
            gb += float(vol.size_gb)
            cites.add(origin)
        if not total > 0:
            continue
        listed = [str(v) for v in rows["volume_id"] if str(v) not in unpriced]
        names = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
        parts = ["inventory says not attached (the billing export cannot tell attachment)",
                 f"{gb:,.0f} GB provisioned, billed whether attached or not", "prices " + "; ".join(sorted(cites)),
                 "snapshot a volume first if its data may be needed (snapshot storage is billed)"]
        if unpriced:
            parts.append(f"not priced (no price for their type): {', '.join(unpriced)}")
        out.append(Saving(team=str(team), kind=UNATTACHED_VOLUME,
                          description=f"Delete unattached EBS volumes: {names}", usd_per_month=total,
                          assumptions="; ".join(parts), current_usd_per_month=total, quantity=gb))
    return out


def _transfer(data: pd.DataFrame, prices: DataPrices, policy: SavingsPolicy, latest: str) -> list[Saving]:
    if not policy.colocate_transfer:
        return []
    items = {"inter-region": "transfer-inter-region", "inter-az": "transfer-inter-az"}
    moved = data[data["class"].isin(list(items)) & (data["month"] == latest) & (data["unit"] == "GB")]
    out: list[Saving] = []
    for team, rows in moved.groupby("team", sort=True):
        total, parts, gb = 0.0, [], 0.0
        billed = float(rows["cost_usd"].sum())
        for cls, item in items.items():
            q = float(rows.loc[rows["class"] == cls, "quantity"].sum())
            if not q > 0:
                continue
            price = _need(prices, item, policy.region)
            total += q * price
            gb += q
            parts.append(f"{cls} {q:,.1f} GB x {price:g} USD/GB ({prices.cite(item, policy.region)})")
        if not total > 0:
            continue
        parts += [f"billed {billed:,.2f} USD for these lines in {latest}",
                  "inter-AZ is billed per direction (one export line each way); inter-region at the us-east-1 to "
                  "other US or EU region rate",
                  "co-locating the data with the GPUs (same region and zone) removes this transfer; copying the data "
                  "there once is billed as transfer too"]
        out.append(Saving(team=str(team), kind=COLOCATE_TRANSFER,
                          description="Co-locate data with the GPUs: keep training data in the GPUs' region and zone",
                          usd_per_month=total, assumptions="; ".join(parts), current_usd_per_month=total,
                          quantity=gb, unit="GB"))
    return out


def find_savings(data: pd.DataFrame, prices: DataPrices, policy: SavingsPolicy, *,
                 details: pd.DataFrame | None = None, volumes: pd.DataFrame | None = None) -> list[Saving]:
    """Savings that can be acted on, largest first.

    Args:
        data: the data-usage frame (:func:`usage.ingest.data_lines.load_data_lines`); savings are priced on
            its latest month.
        prices: the price file (:func:`load_prices`).
        policy: what counts (:class:`SavingsPolicy`).
        details: request, retrieval, volume and snapshot lines with resource ids
            (:func:`usage.ingest.data_lines.load_detail_lines`); without it, storage counts as unread only by
            the policy's ``read_fraction`` and snapshot age only by its ``snapshot_old_share``.
        volumes: EBS volume inventory (:func:`load_volumes`) for unattached volumes.

    Returns:
        :class:`Saving` list sorted by ``usd_per_month`` descending (then kind, team, project), each at least
        ``policy.min_usd_per_month``.

    Raises:
        UsageError: the price file lacks a price the data needs (names the item and region).
    """
    if data.empty:
        return []
    latest = str(data["month"].max())
    found = [*_lifecycle(data, details, prices, policy, latest), *_snapshots(data, details, prices, policy, latest),
             *_volumes(data, volumes, prices, policy, latest), *_transfer(data, prices, policy, latest)]
    found = [s for s in found if s.usd_per_month >= policy.min_usd_per_month and s.usd_per_month > 0]
    return sorted(found, key=lambda s: (-s.usd_per_month, s.kind, s.team, s.project))


def savings_frame(savings: list[Saving]) -> pd.DataFrame:
    """The savings as a frame with :data:`SAVING_COLUMNS` (USD rounded to cents, one-off empty when unknown)."""
    frame = pd.DataFrame([{c: getattr(s, c) for c in SAVING_COLUMNS} for s in savings], columns=list(SAVING_COLUMNS))
    for col in ("usd_per_month", "current_usd_per_month", "one_off_usd"):
        frame[col] = frame[col].astype(float).round(2)
    frame["quantity"] = frame["quantity"].astype(float).round(3)
    return frame
