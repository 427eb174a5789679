"""Commitments already owned: read and validate the file that lists them.

Units: ``count`` is instances; ``start``/``expiry`` are UTC instants (a bare date means 00:00 UTC; aware
times are converted to UTC), expiry exclusive. Prices come from the catalog row of the instance type and
purchase option in the plan's region (USD per instance-hour recurring, USD upfront per instance).

Owned commitments are sunk: the plan bills them in their active hours (at their effective hourly rate, as
every commitment) and uses their GPUs first, but never buys or sells them, so they reduce what the plan buys.

File formats: CSV with header ``instance_type,option,count,start,expiry`` (``purchase_option`` is accepted
for ``option``), or YAML: a list of mappings with those keys, or a mapping with a ``commitments:`` list::

    commitments:
      - {instance_type: p4d.24xlarge, option: reserved_1y_no_upfront, count: 2,
         start: 2025-06-01, expiry: 2026-06-01}

Every mistake raises :class:`forecasting.schema.UsageError`: one line naming the file, the row (CSV: the
line number, header = 1; YAML: the item, 1-based), the column and the fix.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from forecasting import schema as S
from optimizer import catalog as C
from optimizer.options import COMMITMENT_OPTIONS
from optimizer.plan import Commitment

COLUMNS = ("instance_type", "option", "count", "start", "expiry")


def _timestamp(value, where: tuple[str, int, str]) -> pd.Timestamp:
    name, row, column = where
    try:
        ts = pd.Timestamp(str(value).strip())
    except (ValueError, TypeError):
        ts = pd.NaT
    if pd.isna(ts):
        raise S.UsageError(name, f"'{value}' is not a date or time", row=row, column=column,
                           fix="write an ISO 8601 date such as 2026-01-01 or 2026-01-01T00:00Z")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _commitment(rec: Mapping, row: int, name: str, catalog: C.Catalog, region: str) -> Commitment:
    rec = dict(rec)
    if "option" not in rec and "purchase_option" in rec:
        rec["option"] = rec["purchase_option"]
    for col in COLUMNS:
        value = rec.get(col)
        if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
            raise S.UsageError(name, "missing value", row=row, column=col,
                               fix=f"give every commitment {', '.join(COLUMNS)}")
    instance_type, option = str(rec["instance_type"]).strip(), str(rec["option"]).strip()
    if option not in COMMITMENT_OPTIONS:
        raise S.UsageError(name, f"unknown purchase option '{option}'", row=row, column="option",
                           fix=f"use one of {', '.join(COMMITMENT_OPTIONS)}")
    offers = catalog.offers(region, instance_types=(instance_type,))
    if offers.empty:
        raise S.UsageError(name, f"instance type '{instance_type}' is not in the catalog for {region}",
                           row=row, column="instance_type",
                           fix="use an instance type the catalog lists (gpuplan catalog show) or another --region")
    priced = offers[offers[C.PURCHASE_OPTION] == option]
    if priced.empty:
        raise S.UsageError(name, f"the catalog has no {option} price for {instance_type} in {region}", row=row,
                           column="option", fix="use the option the commitment was bought with, as the catalog "
                                                "names it")
    try:
        count = float(rec["count"])
    except (TypeError, ValueError):
        count = float("nan")
    if not count >= 1 or count != int(count):
        raise S.UsageError(name, f"count '{rec['count']}' is not a whole number of instances >= 1", row=row,
                           column="count", fix="write how many instances the commitment covers, e.g. 4")
    start = _timestamp(rec["start"], (name, row, "start"))
    expiry = _timestamp(rec["expiry"], (name, row, "expiry"))
    if expiry <= start:
        raise S.UsageError(name, f"expiry {expiry:%Y-%m-%d %H:%M} is not after start {start:%Y-%m-%d %H:%M}",
                           row=row, column="expiry", fix="write the date the commitment ends (exclusive)")
    r = priced.iloc[0]
    return Commitment(instance_type=instance_type, purchase_option=option, count=int(count), start=start,
                      hourly_usd_per_instance=float(r[C.RECURRING_HOURLY]),
                      upfront_usd_per_instance=float(r[C.UPFRONT]), gpu_model=str(r[C.GPU_MODEL]),
                      gpus_per_instance=float(r[C.GPU_COUNT]), term_hours=int(r[C.TERM_HOURS_COL]),
                      end=expiry, existing=True)


def load_existing(path: str | Path, catalog: C.Catalog, region: str) -> tuple[Commitment, ...]:
    """Read and validate a file of owned commitments (``.csv``, ``.yaml`` or ``.yml``).

    Raises:
        forecasting.schema.UsageError: one line naming the file, row, column and fix.
    """
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise S.UsageError(name, f"unsupported file type '{path.suffix or '(none)'}'",
                           fix="list owned commitments in a .csv, .yaml or .yml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise S.UsageError(name, f"cannot read the file ({exc.__class__.__name__})",
                           fix="check the path and that it is a UTF-8 text file") from None
    if suffix == ".csv":
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise S.UsageError(name, f"not a valid CSV ({str(exc).splitlines()[0]})",
                               fix=f"write a header {','.join(COLUMNS)} and one row per commitment") from None
        cols = set(frame.columns) | ({"option"} if "purchase_option" in frame.columns else set())
        for col in COLUMNS:
            if col not in cols:
                raise S.UsageError(name, "missing column", row=1, column=col,
                                   fix=f"write the header {','.join(COLUMNS)}")
        return tuple(_commitment(rec, i + 2, name, catalog, region)
                     for i, rec in enumerate(frame.to_dict("records")))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise S.UsageError(name, "not valid YAML", row=mark.line + 1 if mark is not None else None,
                           fix="check indentation and quote text containing ':' or '#'") from None
    if isinstance(data, Mapping):
        data = data.get("commitments")
    if not isinstance(data, list):
        raise S.UsageError(name, "no list of commitments", fix="put the commitments in a list under 'commitments:'")
    out = []
    for i, rec in enumerate(data, 1):
        if not isinstance(rec, Mapping):
            raise S.UsageError(name, "not a mapping", row=i, fix=f"write each commitment as {{{', '.join(COLUMNS)}}}")
        out.append(_commitment(rec, i, name, catalog, region))
    return tuple(out)
