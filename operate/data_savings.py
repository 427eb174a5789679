"""Storage lifecycle savings: what moving data that is not read to a cheaper S3 class saves per month.

Units: amounts in GB (the provider's billed GB) and GB-month; money in USD per month, one-off transition charges
in USD. Prices come from a dated snapshot in ``data_samples/prices/`` (:data:`DEFAULT_PRICES`, its source in
``AWS_S3_SOURCE.md``): storage per GB-month, retrieval per GB, lifecycle transition per 1,000 objects, minimum
storage days, Intelligent-Tiering monitoring per 1,000 objects per month.

A move is worth, per month::

    saving = GB x (price of the class now - price of the target class)
             - GB read back per month x retrieval price of the target class
             - objects / 1,000 x monitoring price of the target class

plus one transition charge of ``objects / 1,000 x transition price`` (paid back after
``transition / saving`` months). Intelligent-Tiering's price follows how long the data has not been read (the
Frequent tier below 30 days, Infrequent from 30, Archive Instant from 90). A target class whose minimum storage
duration is longer than the days the data has gone unread is not recommended: that the data is kept as long
again is the assumption, and data unread for fewer days than the minimum has not shown it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecasting.schema import UsageError

DEFAULT_PRICES = Path(__file__).resolve().parents[1] / "data_samples" / "prices" / "aws_s3_storage_prices_us_east_1.csv"
PRICE_COLUMNS = ("class", "storage_usd_per_gb_month", "retrieval_usd_per_gb", "transition_usd_per_1000_objects",
                 "min_storage_days", "monitoring_usd_per_1000_objects_month")
INTELLIGENT_TIERING = "s3-intelligent-tiering"
TARGETS = ("s3-standard-ia", "s3-onezone-ia", "s3-glacier-instant-retrieval", "s3-glacier-flexible-retrieval",
           "s3-glacier-deep-archive", INTELLIGENT_TIERING)


@dataclass(frozen=True)
class StoragePrice:
    """Published prices of one storage class (USD; see the module docstring for units)."""

    storage_usd_per_gb_month: float
    retrieval_usd_per_gb: float
    transition_usd_per_1000_objects: float
    min_storage_days: int
    monitoring_usd_per_1000_objects_month: float


def load_storage_prices(path: str | Path = DEFAULT_PRICES) -> dict[str, StoragePrice]:
    """The price snapshot, class -> prices.

    Raises:
        UsageError: a missing column or a price that is not a number >= 0 (file, row, column, fix).
    """
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in PRICE_COLUMNS:
        if col not in frame.columns:
            raise UsageError(str(path), f"missing column '{col}'", column=col,
                             fix=f"the price file needs {', '.join(PRICE_COLUMNS)}")
    prices = {}
    for i, row in frame.iterrows():
        values = []
        for col in PRICE_COLUMNS[1:]:
            value = pd.to_numeric(row[col], errors="coerce")
            if pd.isna(value) or value < 0:
                raise UsageError(str(path), f"{col} {row[col]!r} is not a number >= 0", row=int(i) + 2, column=col,
                                 fix="write prices as plain numbers such as 0.0125")
            values.append(float(value))
        prices[str(row["class"]).strip()] = StoragePrice(values[0], values[1], values[2], int(values[3]), values[4])
    return prices


@dataclass(frozen=True)
class LifecycleSaving:
    """One lifecycle move and what it saves (USD per month; ``transition_usd`` once)."""

    from_class: str
    to_class: str
    gb: float
    unread_days: int
    cost_now_usd_month: float
    cost_after_usd_month: float
    saving_usd_month: float
    transition_usd: float
    eligible: bool
    assumptions: str


def _target_price(to_class: str, unread_days: int, prices: dict[str, StoragePrice]) -> StoragePrice:
    if to_class != INTELLIGENT_TIERING:
        return prices[to_class]
    tier = ("archive-instant" if unread_days >= 90 else "infrequent" if unread_days >= 30 else "frequent")
    return prices[f"{INTELLIGENT_TIERING}-{tier}"]


def lifecycle_saving(gb: float, unread_days: int, to_class: str, prices: dict[str, StoragePrice], *,
                     from_class: str = "s3-standard", read_gb_per_month: float = 0.0,
                     objects: int = 0) -> LifecycleSaving:
    """What moving ``gb`` of ``from_class`` data, not read for ``unread_days``, to ``to_class`` saves per month.

    Args:
        gb: stored GB (= GB-month per month).
        unread_days: days since the data was last read.
        to_class: a class of the snapshot, or ``s3-intelligent-tiering`` (tier by ``unread_days``).
        prices: :func:`load_storage_prices`.
        from_class: the class the data is in now.
        read_gb_per_month: GB expected to be read back per month after the move (retrieval fees).
        objects: objects moved (transition requests, Intelligent-Tiering monitoring).

    Returns:
        The saving with its assumptions in words.

    Raises:
        ValueError: an unknown class or a negative amount.
    """
    if gb < 0 or read_gb_per_month < 0 or objects < 0 or unread_days < 0:
        raise ValueError("gb, unread_days, read_gb_per_month and objects must be >= 0")
    for name in (from_class, to_class):
        if name not in prices and name != INTELLIGENT_TIERING:
            raise ValueError(f"storage class {name!r} is not in the price snapshot (fix: one of {', '.join(prices)})")
    now = prices[from_class]
    target = _target_price(to_class, unread_days, prices)
    cost_now = gb * now.storage_usd_per_gb_month
    cost_after = (gb * target.storage_usd_per_gb_month + read_gb_per_month * target.retrieval_usd_per_gb
                  + objects / 1000.0 * target.monitoring_usd_per_1000_objects_month)
    transition = objects / 1000.0 * target.transition_usd_per_1000_objects
    eligible = unread_days >= target.min_storage_days and cost_now - cost_after > 0
    assumptions = (f"{gb:,.0f} GB of {from_class} not read for {unread_days} days; {read_gb_per_month:,.0f} GB read "
                   f"back per month at {target.retrieval_usd_per_gb} USD/GB; kept at least "
                   f"{target.min_storage_days} days after the move; {objects:,} objects "
                   f"({transition:,.2f} USD of transitions once); us-east-1 list prices of the dated snapshot")
    return LifecycleSaving(from_class, to_class, float(gb), int(unread_days), cost_now, cost_after,
                           cost_now - cost_after, transition, eligible, assumptions)


def lifecycle_options(gb: float, unread_days: int, prices: dict[str, StoragePrice], **kwargs) -> list[LifecycleSaving]:
    """Every target of :data:`TARGETS`, the eligible ones first, largest monthly saving first."""
    options = [lifecycle_saving(gb, unread_days, t, prices, **kwargs) for t in TARGETS]
    return sorted(options, key=lambda s: (not s.eligible, -s.saving_usd_month))
