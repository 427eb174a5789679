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
      - {option: compute_sp_1y_no_upfront, commitment_usd_per_hour: 10, start: 2025-06-01, expiry: 2026-06-01}

**Savings plans** commit dollars per hour, not instances: a line whose ``option`` is a savings-plan option
(``compute_sp_1y_no_upfront``, ``ec2_instance_sp_3y_all_upfront``, ...) gives ``commitment_usd_per_hour`` (USD per
hour of spend for the term, as the billing export states it), leaves ``instance_type`` and ``count`` empty, and
gives ``instance_family`` (``p5``) for an EC2 Instance Savings Plan. The rates its dollars buy per GPU model come from
the catalog (:func:`optimizer.savings_plans.savings_plan_commitment`). A CSV header then also has
``commitment_usd_per_hour`` (and ``instance_family``); a file of savings plans only may leave out ``instance_type`` and
``count``.

Every mistake raises :class:`usage.schema.UsageError`: one line naming the file, the row (CSV: the
line number, header = 1; YAML: the item, 1-based), the column and the fix.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from optimizer import catalog as C
from optimizer.options import COMMITMENT_OPTIONS, SAVINGS_PLAN_OPTIONS
from optimizer.plan import Commitment
from usage import schema as S

COLUMNS = ("instance_type", "option", "count", "start", "expiry")
SP_COLUMNS = ("option", "commitment_usd_per_hour", "start", "expiry")
"""The columns of a savings-plan line (``instance_family`` too, for an EC2 Instance Savings Plan)."""


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


def _term(rec: Mapping, row: int, name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A line's ``start`` and ``expiry`` (exclusive), the expiry after the start."""
    start = _timestamp(rec["start"], (name, row, "start"))
    expiry = _timestamp(rec["expiry"], (name, row, "expiry"))
    if expiry <= start:
        raise S.UsageError(name, f"expiry {expiry:%Y-%m-%d %H:%M} is not after start {start:%Y-%m-%d %H:%M}",
                           row=row, column="expiry", fix="write the date the commitment ends (exclusive)")
    return start, expiry


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == ""


def _commitment(rec: Mapping, row: int, name: str, catalog: C.Catalog, region: str) -> Commitment:
    rec = dict(rec)
    if "option" not in rec and "purchase_option" in rec:
        rec["option"] = rec["purchase_option"]
    if not _blank(rec.get("option")) and str(rec["option"]).strip() in SAVINGS_PLAN_OPTIONS:
        return _savings_plan(rec, row, name, catalog, region)
    for col in COLUMNS:
        if _blank(rec.get(col)):
            raise S.UsageError(name, "missing value", row=row, column=col,
                               fix=f"give every commitment {', '.join(COLUMNS)} (a savings plan: "
                                   f"{', '.join(SP_COLUMNS)})")
    instance_type, option = str(rec["instance_type"]).strip(), str(rec["option"]).strip()
    if option not in COMMITMENT_OPTIONS:
        raise S.UsageError(name, f"unknown purchase option '{option}'", row=row, column="option",
                           fix=f"use one of {', '.join(COMMITMENT_OPTIONS)} or a savings plan "
                               "(compute_sp_1y_no_upfront, ec2_instance_sp_3y_all_upfront, ...)")
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
    start, expiry = _term(rec, row, name)
    r = priced.iloc[0]
    return Commitment(instance_type=instance_type, purchase_option=option, count=int(count), start=start,
                      hourly_usd_per_instance=float(r[C.RECURRING_HOURLY]),
                      upfront_usd_per_instance=float(r[C.UPFRONT]), gpu_model=str(r[C.GPU_MODEL]),
                      gpus_per_instance=float(r[C.GPU_COUNT]), term_hours=int(r[C.TERM_HOURS_COL]),
                      end=expiry, existing=True)


def _savings_plan(rec: Mapping, row: int, name: str, catalog: C.Catalog, region: str) -> Commitment:
    """An owned savings plan from its line (module docstring)."""
    from optimizer.savings_plans import savings_plan_commitment

    option = str(rec["option"]).strip()
    for col in SP_COLUMNS:
        if _blank(rec.get(col)):
            raise S.UsageError(name, "missing value", row=row, column=col,
                               fix=f"give a savings plan {', '.join(SP_COLUMNS)}")
    if not _blank(rec.get("instance_type")):
        raise S.UsageError(name, f"a savings plan ({option}) covers no single instance type", row=row,
                           column="instance_type", fix="leave instance_type empty (an EC2 Instance Savings Plan "
                                                       "names its family in instance_family)")
    if not _blank(rec.get("count")) and str(rec["count"]).strip() not in ("1", "1.0"):
        raise S.UsageError(name, f"a savings plan ({option}) is not counted in instances", row=row, column="count",
                           fix="leave count empty and give the whole commitment in commitment_usd_per_hour")
    try:
        usd = float(rec["commitment_usd_per_hour"])
    except (TypeError, ValueError):
        usd = float("nan")
    if not usd > 0 or usd == float("inf"):
        raise S.UsageError(name, f"commitment_usd_per_hour '{rec['commitment_usd_per_hour']}' is not a positive "
                                 "number", row=row, column="commitment_usd_per_hour",
                           fix="write the plan's commitment in USD per hour, e.g. 10.5")
    start, expiry = _term(rec, row, name)
    family = None if _blank(rec.get("instance_family")) else str(rec["instance_family"]).strip()
    try:
        return savings_plan_commitment(catalog, region, option, usd, start, expiry, family=family, existing=True)
    except ValueError as exc:
        if "family" in str(exc):
            raise S.UsageError(name, str(exc), row=row, column="instance_family",
                               fix="write the instance family the plan covers, e.g. p5") from None
        raise S.UsageError(name, str(exc), row=row, column="option",
                           fix="use an option the catalog prices in this region (gpuplan catalog show) or another "
                               "--region") from None


def _suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise S.UsageError(name, f"unsupported file type '{suffix or '(none)'}'",
                           fix="list owned commitments in a .csv, .yaml or .yml file")
    return suffix


def load_existing(path: str | Path, catalog: C.Catalog, region: str) -> tuple[Commitment, ...]:
    """Read and validate a file of owned commitments (``.csv``, ``.yaml`` or ``.yml``).

    Raises:
        usage.schema.UsageError: one line naming the file, row, column and fix.
    """
    path = Path(path)
    _suffix(path.name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise S.UsageError(path.name, f"cannot read the file ({exc.__class__.__name__})",
                           fix="check the path and that it is a UTF-8 text file") from None
    return parse_existing(text, path.name, catalog, region)


def parse_existing(text: str, name: str, catalog: C.Catalog, region: str) -> tuple[Commitment, ...]:
    """Owned commitments from the text of a file called ``name`` (its suffix, ``.csv``, ``.yaml`` or ``.yml``, says
    the format; e.g. an upload in the app), validated as :func:`load_existing` does.

    Raises:
        usage.schema.UsageError: one line naming the file, row, column and fix.
    """
    if _suffix(name) == ".csv":
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise S.UsageError(name, f"not a valid CSV ({str(exc).splitlines()[0]})",
                               fix=f"write a header {','.join(COLUMNS)} and one row per commitment") from None
        cols = set(frame.columns) | ({"option"} if "purchase_option" in frame.columns else set())
        needed = SP_COLUMNS if "commitment_usd_per_hour" in cols else COLUMNS
        for col in needed:
            if col not in cols:
                raise S.UsageError(name, "missing column", row=1, column=col,
                                   fix=f"write the header {','.join(needed)}")
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
