"""Capacity Blocks for ML: serve a planned run (an ``add`` event of 1-182 days) from a block of reserved instances.

Units: prices are USD; ``usd_per_instance_hour`` is the reservation fee per instance-hour (paid upfront for the whole
block); GPU counts are GPUs; durations are hours or days (UTC). Money compared for one event is the cost of serving
that run's GPU-hours, in USD, expected over the plan's demand scenarios where the plan bills it.

AWS rules (EC2 User Guide, "Capacity Blocks for ML"; also in ``data_samples/prices/AWS_CAPACITY_BLOCKS_SOURCE.md``):

* a block starts and ends at 11:30 UTC and can be booked at most :data:`BOOK_AHEAD_DAYS` (8 weeks) before its start;
* its duration is 1 to 14 days in 1-day steps, then 7-day steps up to 182 days (:func:`allowed_days`);
* at most :data:`MAX_PER_BLOCK` instances per block and :data:`MAX_INSTANCES` across blocks; the fee is all upfront.

For each eligible event (:func:`assess`) the run is priced four ways, and the cheapest feasible is recommended:

* the **base** is the plan the same settings make for the event's GPU model on the scenarios without the run
  (``replan``: one more MILP per event, the run's GPUs taken out of every scenario, exact since an ``add`` is
  additive), or the plan as bought when no ``replan`` is given. Every option's money is its expected bill over the
  plan's window and tail (undiscounted USD, :mod:`optimizer.billing`) minus the base's bill without the run;
* ``capacity_block``: ``ceil(gpus / GPUs per instance)`` instances of the cheapest-per-GPU Capacity Block type of the
  event's GPU model, over the cheapest of the block placements around the run (start at the 11:30 UTC before or after
  the run's start; the allowed duration just covering or just inside its end). Its money is the fee plus the change
  of the base's bill: the block's GPUs serve the GPU model's demand first in its hours (pro rata in the half hours at
  its 11:30 ends), and the base plan serves the rest under the serving rule, so hours of the run it does not cover,
  and spare block capacity that serves other demand of the model, are counted;
* ``on_demand`` and ``spot``: the run's instance-hours (whole instances) of the same type at its catalog rate; spot
  with the rework of its interruption bucket (:func:`optimizer.catalog.rework_fraction`). The whole run on spot is
  feasible only when the plan allows spot without a share cap below 100%;
* ``plan``: the plan made with the run (its commitments, spot up to its allowance and share, on-demand): its bill
  minus the base's. Hours of the run after the plan's horizon are billed at the plan's on-demand rate.

Prices come from a Capacity Block price file (:data:`PRICE_COLUMNS`; the shipped
``data_samples/prices/aws_capacity_block_prices.csv`` or ``gpuplan plan --capacity-block-prices FILE``) or from
``gpuplan catalog refresh --capacity-blocks-out FILE`` (EC2 ``DescribeCapacityBlockOfferings``,
:func:`fetch_offerings`), which writes the same columns plus the offering's details.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from optimizer import catalog as C
from optimizer.billing import cost_arrays, pricing_for, tail_cost_arrays
from optimizer.catalog_refresh import RefreshError
from optimizer.inputs import PlanningError
from optimizer.plan import Plan
from usage import schema as S

BOOK_AHEAD_DAYS = 56
"""A Capacity Block can be booked at most 8 weeks before it starts."""
DAILY_MAX_DAYS = 14
"""Durations go in 1-day steps up to 14 days ..."""
WEEK_DAYS = 7
MAX_DAYS = 182
"""... then in 7-day steps up to 182 days (26 weeks)."""
MIN_EVENT_DAYS = 1.0
"""Events shorter than a day are not offered a block (the shortest block is a day)."""
MAX_PER_BLOCK = 64
MAX_INSTANCES = 256
BLOCK_TIME = pd.Timedelta(hours=11, minutes=30)
"""Every block starts and ends at 11:30 UTC."""
OPTION_ORDER = ("capacity_block", "plan", "on_demand", "spot")
OPTION_NAMES = {"capacity_block": "Capacity Block", "plan": "the plan's commitments, spot and on-demand",
                "on_demand": "on-demand", "spot": "spot"}
"""How each way of serving a planned run is named in a sentence (the plan summary, the app's table)."""

INSTANCE_TYPE, REGION, RATE, SNAPSHOT, SOURCE = "instance_type", "region", "usd_per_instance_hour", "snapshot_date", \
    "source"
PRICE_COLUMNS = (INSTANCE_TYPE, REGION, RATE, SNAPSHOT, SOURCE)
"""Required columns of a Capacity Block price file (one row per instance type and region, or per offering)."""
OFFERING_COLUMNS = ("upfront_fee_usd", "instance_count", "duration_hours", "start_date", "availability_zone")
"""Optional columns written by ``catalog refresh`` for offerings read from EC2."""
DEFAULT_PRICES = C.DATA_DIR / "prices" / "aws_capacity_block_prices.csv"
OFFERINGS_SOURCE = "EC2 DescribeCapacityBlockOfferings"
DEFAULT_TYPES = ("p6-b200.48xlarge", "p5en.48xlarge", "p5e.48xlarge", "p5.48xlarge", "p4de.24xlarge",
                 "p4d.24xlarge", "trn2.48xlarge", "trn1.32xlarge")
"""Instance types AWS sells as Capacity Blocks (EC2 User Guide); ``catalog refresh`` asks for these by default."""


class CapacityBlockPriceError(S.UsageError):
    """A mistake in a Capacity Block price file (one line: file, row, column, fix)."""


@dataclass(frozen=True)
class BlockPrice:
    """A Capacity Block rate: USD per instance-hour of ``instance_type`` in ``region``, as of ``snapshot_date``."""

    instance_type: str
    region: str
    usd_per_instance_hour: float
    snapshot_date: str
    source: str


@dataclass(frozen=True)
class BlockPrices:
    """The rates of a price file (``path`` names it in the plan and the summary)."""

    rows: tuple[BlockPrice, ...]
    path: str

    def for_region(self, region: str) -> dict[str, BlockPrice]:
        """Per instance type, the rate of the latest snapshot date (the cheapest of that date's rows)."""
        out: dict[str, BlockPrice] = {}
        for r in self.rows:
            if r.region != region:
                continue
            best = out.get(r.instance_type)
            if best is None or (r.snapshot_date, -r.usd_per_instance_hour) > (best.snapshot_date,
                                                                               -best.usd_per_instance_hour):
                out[r.instance_type] = r
        return out


def load_prices(path: str | Path | None = None) -> BlockPrices:
    """Read a Capacity Block price file (CSV with :data:`PRICE_COLUMNS`; :data:`OFFERING_COLUMNS` are optional).

    Raises:
        CapacityBlockPriceError: missing file or column, a rate that is not a number > 0, a date that is not
            ``YYYY-MM-DD``, an empty instance type or region, or no rows.
    """
    path = Path(path) if path is not None else DEFAULT_PRICES
    name = str(path)
    if not path.is_file():
        raise CapacityBlockPriceError(name, "Capacity Block price file not found",
                                      fix="give a CSV with columns " + ", ".join(PRICE_COLUMNS))
    from usage.io import read_text

    try:
        table = pd.read_csv(io.StringIO(read_text(path)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CapacityBlockPriceError(name, f"not a readable CSV ({' '.join(str(exc).split())[:120]})",
                                      fix="give a CSV with columns " + ", ".join(PRICE_COLUMNS)) from None
    table.columns = [str(c).strip() for c in table.columns]
    for col in PRICE_COLUMNS:
        if col not in table.columns:
            raise CapacityBlockPriceError(name, f"missing column '{col}'", column=col,
                                          fix="the header must have " + ", ".join(PRICE_COLUMNS))
    if table.empty:
        raise CapacityBlockPriceError(name, "no price rows", fix="add one row per instance type and region")
    rows = []
    for i, r in enumerate(table.to_dict("records")):
        line = i + 2
        for col in (INSTANCE_TYPE, REGION):
            if not str(r[col]).strip():
                raise CapacityBlockPriceError(name, f"empty {col}", row=line, column=col,
                                              fix="name the instance type and region, e.g. p5.48xlarge, us-east-1")
        try:
            rate = float(str(r[RATE]).strip())
        except ValueError:
            rate = float("nan")
        if not (math.isfinite(rate) and rate > 0):
            raise CapacityBlockPriceError(name, f"rate {str(r[RATE])[:40]!r} is not a number > 0", row=line,
                                          column=RATE, fix="give the USD per instance-hour, e.g. 39.33")
        date = str(r[SNAPSHOT]).strip()
        try:
            ok = pd.Timestamp(datetime.strptime(date, "%Y-%m-%d")).strftime("%Y-%m-%d") == date
        except ValueError:
            ok = False
        if not ok:
            raise CapacityBlockPriceError(name, f"snapshot_date {date[:40]!r} is not a date", row=line,
                                          column=SNAPSHOT, fix="write the date the rate was read as YYYY-MM-DD")
        rows.append(BlockPrice(str(r[INSTANCE_TYPE]).strip(), str(r[REGION]).strip(), rate, date,
                               str(r[SOURCE]).strip() or "unknown source"))
    label = "shipped Capacity Block prices" if path.resolve() == DEFAULT_PRICES.resolve() else name
    return BlockPrices(rows=tuple(rows), path=label)


# --- block geometry ---------------------------------------------------------------------------------------------
def allowed_days(days: int) -> tuple[int | None, int | None]:
    """The allowed block durations around ``days``: (the shortest >= days, the longest <= days); None if none."""
    def ok(d: int) -> bool:
        return 1 <= d <= DAILY_MAX_DAYS or (DAILY_MAX_DAYS < d <= MAX_DAYS and d % WEEK_DAYS == 0)

    up = next((d for d in range(max(days, 1), MAX_DAYS + 1) if ok(d)), None)
    down = next((d for d in range(min(days, MAX_DAYS), 0, -1) if ok(d)), None)
    return up, down


def block_starts(start: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The 11:30 UTC at or before ``start`` and the one at or after it."""
    day = start.normalize() + BLOCK_TIME
    before = day if day <= start else day - pd.Timedelta(days=1)
    after = before if before == start else before + pd.Timedelta(days=1)
    return before, after


def split_blocks(count: int) -> list[int]:
    """Instances per block: as few blocks as possible, each at most :data:`MAX_PER_BLOCK`."""
    n = -(-count // MAX_PER_BLOCK)
    return [count // n + (1 if i < count % n else 0) for i in range(n)]


def _overlap_hours(hours: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Share of each hour ``[t, t+1h)`` inside ``[start, end)`` (0-1)."""
    if len(hours) == 0:
        return np.zeros(0)
    t = hours.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    hour = np.int64(3_600_000_000_000)
    lo = np.maximum(t, np.int64(start.value))
    hi = np.minimum(t + hour, np.int64(end.value))
    return np.clip((hi - lo) / hour, 0.0, 1.0)


def _span(start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Hours from ``start`` to ``end`` (0 when ``end`` is not later)."""
    return max(0.0, (end - start) / pd.Timedelta(hours=1))


# --- pricing the run ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grid:
    """The plan's demand of one GPU model over its window and tail, and its expected flexible (spot + on-demand)
    cost under a plan."""

    plan: Plan
    gpu_model: str
    hours: pd.DatetimeIndex
    tail_hours: pd.DatetimeIndex
    window: np.ndarray
    tail: np.ndarray
    weights: np.ndarray

    @property
    def end(self) -> pd.Timestamp:
        last = self.tail_hours[-1] if len(self.tail_hours) else self.hours[-1]
        return last + pd.Timedelta(hours=1)

    def total_usd(self, plan: Plan, window: np.ndarray, tail: np.ndarray) -> float:
        """Expected bill (USD: commitments of the GPU model at their effective rate in their active hours, spot,
        on-demand) of the demand under ``plan`` over the window and tail, undiscounted (the serving rule)."""
        total = 0.0
        for hours, demand, tail_rule in ((self.hours, window, False), (self.tail_hours, tail, True)):
            if not len(hours):
                continue
            a = (tail_cost_arrays(demand, plan, self.gpu_model, hours) if tail_rule
                 else cost_arrays(demand, pricing_for(plan, self.gpu_model, hours)))
            per = (np.broadcast_to(a["committed_usd"], demand.shape) + a["spot_usd"] + a["on_demand_usd"])
            total += float(self.weights @ per.sum(axis=-1))
        return total


def _grid(plan: Plan, scenarios: Any, gpu_model: str) -> _Grid | None:
    if scenarios is None or gpu_model not in scenarios.gpu_models:
        return None
    return _Grid(plan, gpu_model, scenarios.hours, scenarios.tail_hours, np.asarray(scenarios.demand[gpu_model]),
                 np.asarray(scenarios.tail_of(gpu_model)), np.asarray(scenarios.weights, dtype=float))


def _event_label(ev: Any) -> str:
    end = f" to {ev.end:%Y-%m-%d %H:%M}" if ev.end is not None else ""
    return f"{ev.team} / {ev.gpu_type}: +{ev.gpus:g} GPUs from {ev.start:%Y-%m-%d %H:%M}{end} UTC"


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _catalog_rate(rows: pd.DataFrame, instance_type: str, option: str) -> pd.Series | None:
    hit = rows[(rows[C.INSTANCE_TYPE] == instance_type) & (rows[C.PURCHASE_OPTION] == option)]
    return None if hit.empty else hit.iloc[0]


def assess_event(ev: Any, plan: Plan, scenarios: Any, prices: BlockPrices, catalog: C.Catalog,
                 as_of: pd.Timestamp, replan: Callable[[Any], Plan] | None = None) -> dict[str, Any]:
    """Price one ``add`` event four ways (module docstring); a dict for plan.json (``eligible: false`` and
    ``reason`` when no block applies). ``replan`` (scenarios of one GPU model -> plan) gives the plan made without
    the run, the base both the block and the plan's own answer are compared from; without it the plan as bought is
    the base (its commitments taken as given)."""
    base = {"event": _event_label(ev), "team": ev.team, "gpu_type": ev.gpu_type, "gpus": float(ev.gpus or 0.0),
            "start": _iso(ev.start), "end": _iso(ev.end) if ev.end is not None else None, "note": ev.note,
            "source": ev.source + (f", item {ev.item}" if ev.item is not None else "")
            + (f", line {ev.line}" if ev.line is not None else "")}

    def skip(reason: str) -> dict[str, Any]:
        return {**base, "eligible": False, "reason": reason}

    if ev.end is None:
        return skip("open-ended (no end): a Capacity Block serves a run of 1-182 days")
    days = (ev.end - ev.start) / pd.Timedelta(days=1)
    if not MIN_EVENT_DAYS <= days <= MAX_DAYS:
        return skip(f"lasts {days:.1f} days: a Capacity Block serves a run of 1-182 days")
    if not ev.gpus or ev.gpus <= 0:
        return skip("adds no GPUs")
    rows = catalog.offers(plan.region, ev.gpu_type)
    rates = prices.for_region(plan.region)
    types = []
    for itype, p in rates.items():
        od = _catalog_rate(rows, itype, C.ON_DEMAND)
        spec = rows[rows[C.INSTANCE_TYPE] == itype]
        if spec.empty:
            continue
        gpi = float(spec.iloc[0][C.GPU_COUNT])
        if gpi > 0:
            types.append((p.usd_per_instance_hour / gpi, itype, gpi, p, od))
    if not types:
        return skip(f"no Capacity Block price for {ev.gpu_type} in {plan.region} in {prices.path}")
    if ev.start <= as_of:
        return skip(f"starts {ev.start:%Y-%m-%d %H:%M}, not after the plan's start {as_of:%Y-%m-%d %H:%M}: a "
                    "Capacity Block must be booked ahead")
    _, itype, gpi, price, od_row = min(types, key=lambda x: (x[0], x[1]))
    count = math.ceil(ev.gpus / gpi - 1e-9)
    run_hours = (ev.end - ev.start) / pd.Timedelta(hours=1)
    run_gpu_hours = float(ev.gpus) * run_hours
    instance_hours = count * run_hours
    grid = _grid(plan, scenarios, ev.gpu_type)
    od_plan = {o.gpu_model: o.usd_per_gpu_hour for o in plan.on_demand}.get(ev.gpu_type)

    # the run's GPUs per hour, inside the plan's grid and after it
    if grid is not None:
        e_w = float(ev.gpus) * _overlap_hours(grid.hours, ev.start, ev.end)
        e_t = float(ev.gpus) * _overlap_hours(grid.tail_hours, ev.start, ev.end)
        outside_gpu_hours = run_gpu_hours - float(e_w.sum() + e_t.sum())
        without_w, without_t = np.maximum(grid.window - e_w, 0.0), np.maximum(grid.tail - e_t, 0.0)
        base_plan, base_note = plan, "the plan as bought"
        if replan is not None:   # the plan the same inputs give without the run (its commitments may differ)
            try:
                base_plan = replan(replace(scenarios.only(ev.gpu_type), demand={ev.gpu_type: without_w},
                                           tail={ev.gpu_type: without_t} if scenarios.has_tail else scenarios.tail))
                base_note = "the plan made without the run"
            except PlanningError as exc:   # e.g. a budget the smaller plan cannot meet: compare with this plan
                base_note = f"the plan as bought (re-planning without the run failed: {exc})"
        base_usd = grid.total_usd(base_plan, without_w, without_t)
        plan_usd = grid.total_usd(plan, grid.window, grid.tail) - base_usd
    else:  # the plan has no demand of this model on its grid: every hour of the run is outside it
        outside_gpu_hours = run_gpu_hours
        plan_usd = 0.0
        base_usd = 0.0
        base_plan, base_note = plan, "the plan as bought"
    od_gpu = od_plan if od_plan is not None else (float(od_row[C.EFFECTIVE_HOURLY]) / gpi if od_row is not None
                                                  else None)
    plan_usd = plan_usd + (outside_gpu_hours * od_gpu if od_gpu is not None else 0.0)

    # the cheapest block placement around the run
    candidates = []
    for bstart in dict.fromkeys(b for b in block_starts(ev.start) if b >= as_of):   # a block cannot start earlier
        need = math.ceil((ev.end - bstart) / pd.Timedelta(days=1) - 1e-9)
        for d in dict.fromkeys(allowed_days(need)):
            if d is None:
                continue
            bend = bstart + pd.Timedelta(days=d)
            fee = count * price.usd_per_instance_hour * d * 24.0
            uncovered = float(ev.gpus) * (_span(ev.start, ev.end) - _span(max(ev.start, bstart), min(ev.end, bend)))
            if grid is not None:
                # the block serves the model's demand first, pro rata in the hours it covers part of (it starts
                # and ends at 11:30); the base plan serves what is left under the serving rule
                gpus = count * gpi
                rest_w = np.maximum(grid.window - gpus * _overlap_hours(grid.hours, bstart, bend), 0.0)
                rest_t = np.maximum(grid.tail - gpus * _overlap_hours(grid.tail_hours, bstart, bend), 0.0)
                # run hours after the grid that the block does not cover: at on-demand
                after = max(grid.end, ev.start)
                out_unc = float(ev.gpus) * (_span(after, ev.end) - _span(max(after, bstart), min(ev.end, bend)))
                money = fee + grid.total_usd(base_plan, rest_w, rest_t) - base_usd + out_unc * (od_gpu or 0.0)
            else:
                money = fee + uncovered * (od_gpu or 0.0)
            candidates.append((money, fee, bstart, d, uncovered))
    if not candidates:
        return skip(f"lasts {days:.1f} days: no block of 1-{MAX_DAYS} days fits it")
    money, fee, bstart, d, uncovered = min(candidates, key=lambda c: (round(c[0], 6), c[2], c[3]))
    book_from = bstart - pd.Timedelta(days=BOOK_AHEAD_DAYS)
    blocks = split_blocks(count)
    block_ok = count <= MAX_INSTANCES
    cb = {"usd": money, "upfront_usd": fee, "feasible": block_ok,
          "why": ("" if block_ok else f"{count} instances is more than the {MAX_INSTANCES} AWS allows across "
                                      "Capacity Blocks")}

    spot_row = _catalog_rate(rows, itype, C.SPOT)
    allowances = {s.instance_type: s for s in plan.spot}
    spot = None
    if spot_row is not None:
        rework = (allowances[itype].rework_fraction if itype in allowances
                  else C.rework_fraction(spot_row.get(C.INTERRUPTION)))
        a = plan.assumptions or {}
        share = a.get("max_spot_share")
        allowed = bool(a.get("allow_spot", True)) and (share is None or share >= 1.0 - 1e-9)
        why = "" if allowed else ("the plan allows no spot" if not a.get("allow_spot", True) else
                                  f"the plan puts at most {share:.0%} of GPU-hours on spot and spot capacity is "
                                  "not assured for a whole run")
        spot = {"usd": instance_hours * float(spot_row[C.EFFECTIVE_HOURLY]) * (1.0 + rework),
                "usd_per_instance_hour": float(spot_row[C.EFFECTIVE_HOURLY]), "rework_fraction": rework,
                "interruption_bucket": None if pd.isna(spot_row.get(C.INTERRUPTION)) else
                str(spot_row.get(C.INTERRUPTION)), "feasible": allowed, "why": why}
    alternatives: dict[str, dict[str, Any]] = {"capacity_block": cb}
    alternatives["plan"] = {"usd": plan_usd, "feasible": True,
                            "why": "the plan made with the run: its commitments, spot up to its allowance and "
                                   "share, then on-demand"
                                   + (f"; {outside_gpu_hours:,.0f} GPU-hours after its horizon at on-demand"
                                      if outside_gpu_hours > 0.5 else "")}
    if od_row is not None:
        alternatives["on_demand"] = {"usd": instance_hours * float(od_row[C.EFFECTIVE_HOURLY]),
                                     "usd_per_instance_hour": float(od_row[C.EFFECTIVE_HOURLY]), "feasible": True,
                                     "why": ""}
    if spot is not None:
        alternatives["spot"] = spot
    feasible = sorted(((v["usd"], OPTION_ORDER.index(k), k) for k, v in alternatives.items() if v["feasible"]))
    best = feasible[0][2]
    runner = feasible[1] if len(feasible) > 1 else None
    for v in alternatives.values():
        for k in ("usd", "upfront_usd"):
            if k in v:
                v[k] = round(float(v[k]), 2)
    return {**base, "eligible": True, "instance_type": itype, "gpus_per_instance": gpi, "instance_count": count,
            "blocks": blocks, "block_start": _iso(bstart), "block_end": _iso(bstart + pd.Timedelta(days=d)),
            "days": d, "book_from": _iso(max(book_from, as_of)), "book_by": _iso(bstart),
            "bookable_now": book_from <= as_of, "usd_per_instance_hour": price.usd_per_instance_hour,
            "price_date": price.snapshot_date, "price_source": price.source,
            "uncovered_gpu_hours": round(uncovered, 2), "run_gpu_hours": round(run_gpu_hours, 2),
            "run_instance_hours": round(instance_hours, 2), "base": base_note, "alternatives": alternatives,
            "recommended": best,
            "next_best": runner[2] if runner else None,
            "saving_vs_next_best_usd": round(runner[0] - feasible[0][0], 2) if runner else None}


def assess(plan: Plan, scenarios: Any, events: Sequence, prices: BlockPrices, catalog: C.Catalog,
           as_of: pd.Timestamp | None = None, replan: Callable[[Any], Plan] | None = None
           ) -> dict[str, Any] | None:
    """The ``capacity_blocks`` block of plan.json for the ``add`` events of an events list (None without any).

    Args:
        plan: the purchase plan (its region, rates, commitments and spot allowances).
        scenarios: the demand scenarios it was made on (:class:`optimizer.inputs.Scenarios`, events applied), or
            None (the run is then priced against the plan's on-demand rate).
        events: planned events (:class:`forecasting.events.Event`); only ``add`` events are considered.
        prices: Capacity Block rates (:func:`load_prices`).
        catalog: the price catalog (GPUs per instance, on-demand and spot rates, interruption buckets).
        as_of: when the blocks would be booked (default: the plan's window start).
        replan: scenarios of one GPU model -> the plan made on them (the same settings); gives the plan without
            the run that a block would be bought beside. None: the plan as bought is that base.
    """
    adds = [e for e in events if e.kind == "add"]
    if not adds:
        return None
    as_of = plan.window_start if as_of is None else as_of
    rows = [assess_event(e, plan, scenarios, prices, catalog, as_of, replan) for e in adds]
    used = [r for r in rows if r.get("eligible")]
    dates = sorted({r["price_date"] for r in used}) or sorted({p.snapshot_date for p in prices.rows})
    sources = sorted({r["price_source"] for r in used}) or sorted({p.source for p in prices.rows})
    return {"price_file": prices.path, "price_source": "; ".join(sources), "price_date": ", ".join(dates),
            "as_of": _iso(as_of),
            "rule": ("a Capacity Block starts and ends at 11:30 UTC, lasts 1-14 days or 7-day steps to 182 days, "
                     "is booked at most 8 weeks ahead and paid upfront; its GPUs serve the run first, with the "
                     "plan's commitments; each option is the cost of serving the run's GPU-hours, expected over the "
                     "plan's scenarios, from the plan made without the run"
                     + ("" if replan else " (here: the plan as bought)")),
            "events": rows}


def attach(plan: Plan, block: dict[str, Any] | None) -> Plan:
    """The plan with its ``capacity_blocks`` block."""
    return replace(plan, capacity_blocks=block)


def _usd(x: float) -> str:
    return f"{x:,.0f} USD"


def summary_lines(block: dict[str, Any] | None) -> list[str]:
    """The plan summary's Capacity Block lines (empty without a block)."""
    if not block:
        return []
    out = [f"Capacity Blocks for planned runs (prices: {block.get('price_source')}, as of {block.get('price_date')}; "
           f"{block.get('price_file')}):"]
    names = OPTION_NAMES
    for r in block.get("events", []):
        if not r.get("eligible"):
            out.append(f"  {r['event']}: no Capacity Block ({r['reason']})")
            continue
        alt = r["alternatives"]
        cb = alt["capacity_block"]
        book = ("bookable now" if r["bookable_now"] else f"book from {r['book_from'][:10]}") + \
            f", before {r['book_by'][:16].replace('T', ' ')} UTC"
        parts = [f"{names[k]} {_usd(v['usd'])}" + ("" if v["feasible"] else f" (not feasible: {v['why']})")
                 for k, v in alt.items() if k != "capacity_block"]
        line = (f"  Capacity Block for {r['event']}: {r['instance_count']} x {r['instance_type']} from "
                f"{r['block_start'][:16].replace('T', ' ')} UTC for {r['days']} days, {_usd(cb['upfront_usd'])} "
                f"upfront ({r['usd_per_instance_hour']:,.2f} USD/instance-h; {book}); with the rest of the plan it "
                f"costs {_usd(cb['usd'])}" + ("" if cb["feasible"] else f" (not feasible: {cb['why']})")
                + "; " + ", ".join(parts))
        rec = names[r["recommended"]]
        nxt = r.get("next_best")
        line += f". Recommended: {rec}" + (f", {_usd(r['saving_vs_next_best_usd'])} less than {names[nxt]}"
                                           if nxt else "")
        out.append(line)
    return out


# --- prices from EC2 (catalog refresh) ------------------------------------------------------------------------------
def _ec2_call(client: Any, **params: Any) -> dict[str, Any]:
    try:
        return client.describe_capacity_block_offerings(**params)
    except NoCredentialsError as exc:
        raise RefreshError("AWS DescribeCapacityBlockOfferings failed: no AWS credentials found: check your AWS "
                           "credentials (set AWS_PROFILE, run aws sso login or aws configure, or use an instance "
                           "role)") from exc
    except NoRegionError as exc:
        raise RefreshError("AWS DescribeCapacityBlockOfferings failed: no AWS region configured (fix: pass "
                           "--region)") from exc
    except BotoCoreError as exc:
        raise RefreshError(f"AWS DescribeCapacityBlockOfferings failed: {' '.join(str(exc).split())} (check your "
                           "network and AWS credentials; it needs ec2:DescribeCapacityBlockOfferings)") from exc


_NOT_OFFERED = ("InvalidParameterValue", "InvalidInstanceType", "Unsupported", "UnsupportedOperation")


def fetch_offerings(ec2_client: Any, region: str, instance_types: Iterable[str] = DEFAULT_TYPES, *,
                    instance_count: int = 1, duration_hours: int = 24, now: datetime | None = None,
                    progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Capacity Block offerings of each instance type over the next 8 weeks, as price-file rows.

    Calls EC2 ``DescribeCapacityBlockOfferings`` (``InstanceType``, ``InstanceCount``, ``CapacityDurationHours``,
    ``StartDateRange`` = now, ``EndDateRange`` = now + 8 weeks, following ``NextToken``). Each offering becomes a
    row: its ``UpfrontFee`` divided by its instance-hours is ``usd_per_instance_hour``; ``snapshot_date`` is the
    UTC date of ``now``. A type AWS does not offer in the region (an ``InvalidParameterValue``-like error or no
    offering) is named in the notes, not an error.

    Raises:
        RefreshError: any other AWS failure (one line, never credentials).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = now + timedelta(days=BOOK_AHEAD_DAYS)
    rows, notes, missing = [], [], []
    for itype in instance_types:
        if progress:
            progress(f"Capacity Block offerings for {itype}")
        params = {"InstanceType": itype, "InstanceCount": instance_count, "CapacityDurationHours": duration_hours,
                  "StartDateRange": now, "EndDateRange": end}
        found = 0
        seen: set[str] = set()
        token = None
        while True:
            try:
                page = _ec2_call(ec2_client, **params, **({"NextToken": token} if token else {}))
            except ClientError as exc:
                code = (exc.response.get("Error") or {}).get("Code", "Unknown")
                if code in _NOT_OFFERED:
                    break
                raise RefreshError(f"AWS DescribeCapacityBlockOfferings failed ({code}): check your AWS credentials "
                                   "and permissions (it needs ec2:DescribeCapacityBlockOfferings)") from exc
            for o in page.get("CapacityBlockOfferings") or []:
                hours = float(o.get("CapacityBlockDurationHours") or 0) + float(
                    o.get("CapacityBlockDurationMinutes") or 0) / 60.0
                n = int(o.get("InstanceCount") or 0)
                try:
                    fee = float(o.get("UpfrontFee"))
                except (TypeError, ValueError):
                    continue
                if hours <= 0 or n <= 0 or not math.isfinite(fee) or fee <= 0 or \
                        str(o.get("CurrencyCode") or "USD") != "USD":
                    continue
                start = o.get("StartDate")
                rows.append({INSTANCE_TYPE: o.get("InstanceType") or itype, REGION: region, RATE: fee / (n * hours),
                             SNAPSHOT: now.strftime("%Y-%m-%d"), SOURCE: OFFERINGS_SOURCE, "upfront_fee_usd": fee,
                             "instance_count": n, "duration_hours": hours,
                             "start_date": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                             if isinstance(start, datetime) else str(start or ""),
                             "availability_zone": str(o.get("AvailabilityZone") or "")})
                found += 1
            token = page.get("NextToken") or None
            if token is None or token in seen:
                break
            seen.add(token)
        if not found:
            missing.append(itype)
    if missing:
        notes.append(f"no Capacity Block offering in {region} for: {', '.join(missing)}")
    notes.append(f"Capacity Block prices: {len(rows)} offerings from {OFFERINGS_SOURCE} ({instance_count} "
                 f"instance(s), {duration_hours} h, starting within {BOOK_AHEAD_DAYS} days)")
    return pd.DataFrame(rows, columns=[*PRICE_COLUMNS, *OFFERING_COLUMNS]), notes


def refresh_prices(region: str, instance_types: Sequence[str] | None = None, *, ec2_client: Any = None,
                   progress: Callable[[str], None] | None = None, now: datetime | None = None
                   ) -> tuple[pd.DataFrame, list[str]]:
    """:func:`fetch_offerings` with an EC2 client from boto3's standard credential chain when none is given."""
    if ec2_client is None:
        from botocore.config import Config

        try:
            import boto3

            ec2_client = boto3.Session().client("ec2", region_name=region,
                                                config=Config(retries={"mode": "standard", "max_attempts": 8}))
        except BotoCoreError as exc:
            raise RefreshError(f"cannot create the AWS EC2 client: {' '.join(str(exc).split())} (check your AWS "
                               "configuration)") from exc
    types = tuple(instance_types) if instance_types else DEFAULT_TYPES
    return fetch_offerings(ec2_client, region, types, progress=progress, now=now)
