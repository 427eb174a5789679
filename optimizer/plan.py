"""The purchase plan (frozen dataclasses) and its serialised form ``plan.json`` (schema gpuplan.plan/v1).

Units: counts are instances; ``hourly_usd_per_instance`` is the recurring USD per instance-hour,
``upfront_usd_per_instance`` the one-off USD paid at purchase; for each commitment
``hourly_usd_per_instance + upfront_usd_per_instance / term_hours`` equals the catalog's effective
hourly rate. ``usd_per_gpu_hour`` is USD per GPU-hour. Times are UTC, ISO 8601, window end exclusive.

Serving rule (:data:`SERVING_RULE`, written into plan.json as ``serving_rule``; :mod:`optimizer.billing`
implements it and every consumer of plan.json should): demand of a GPU model in an hour is served first by
the active commitments of that model, then by spot, cheapest allowance first, up to ``max_instances`` (each
spot GPU-hour serves ``1 / (1 + rework_fraction)`` GPU-hours of demand), then by on-demand at the plan's
``on_demand`` rate per GPU-hour for that model; fractional GPU-hours are billed pro rata. A spot allowance's
optional ``max_spot_share`` caps the GPU model's spot GPU-hours over the window at that share of its demand
GPU-hours (beyond it, spot is cut back, dearest allowance first, by one factor over all its hours, and
on-demand serves the difference); allowances without it (older files) are limited by ``max_instances`` only.

The v1 contract fields are ``schema, window, region, commitments[instance_type, purchase_option,
count, start, hourly_usd_per_instance, upfront_usd_per_instance], spot[instance_type, max_instances],
expected[total_usd, committed_usd, spot_usd, on_demand_usd, all_on_demand_usd]``; everything else here
is a compatible extension: laddered plans give each commitment its own ``start``; owned commitments carry
``existing: true`` and an explicit ``end``; ``expected`` adds the risk figures ``total_p10_usd``,
``total_p90_usd``, ``cvar90_usd`` (USD), ``break_even_month`` (``YYYY-MM``) and ``break_even_projected``.

Term extension (plans judged over their commitment terms, :mod:`optimizer.term`): a ``term`` block
(``horizon_start``, ``horizon_end``, ``horizon_hours``, ``cost_of_capital``, ``spot`` offers after the window and
``tail_rule``, :data:`TAIL_RULE`); ``expected`` adds the money as finance sees it: ``horizon_total_usd`` (with
``horizon_p10_usd``/``horizon_p90_usd`` and its committed/spot/on-demand parts), ``present_value_usd``,
``obligation_total_usd`` (new commitments over their full terms), ``obligation_after_window_usd``,
``upfront_by_month`` and ``horizon_commitment_utilization``; each commitment adds ``firm`` (buy now) or
tentative, ``expected_utilization`` over its term and ``obligation_usd``. ``expected.total_usd`` and its parts
stay the cost inside the window. Files without them still load.

Savings plans (``compute_sp_*``, ``ec2_instance_sp_*``) are commitment lines too: ``count`` 1,
``commitment_usd_per_hour`` (the USD per hour of spend committed for the term, ``hourly_usd_per_instance +
upfront_usd_per_instance / term_hours``), ``upfront_usd``, ``term_hours``, ``instance_family`` (EC2 Instance SPs),
``gpus_per_instance`` 0, and ``sp_rates``: per GPU model the instance type and the savings-plan rate per GPU-hour the
plan's dollars buy (``rate_is_estimate`` when derived from RI rates); ``obligation_usd`` = commitment x term_hours.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from usage.io import write_json_atomic

SCHEMA = "gpuplan.plan/v1"
SERVING_RULE = (
    "Per GPU model and hour: active commitments serve demand first; then spot allowances, cheapest per useful "
    "GPU-hour first, each up to max_instances x gpus_per_instance / (1 + rework_fraction) useful GPUs; then "
    "on-demand at the on_demand rate. Savings plans (commitments with commitment_usd_per_hour) serve demand after "
    "the instance commitments of every GPU model and before spot: each hour, EC2 Instance Savings Plans first, then "
    "Compute Savings Plans, each plan (highest discount first) spending its hourly commitment on the eligible usage "
    "left with the highest discount against on-demand first, at its sp_rates per GPU-hour; dollars it does not "
    "spend in the hour are lost. Spot share: if the allowances carry max_spot_share, spot serves at most "
    "that share of the GPU model's demand GPU-hours over the window; above it the dearest allowance is cut "
    "first, by one factor over all its hours, and on-demand serves the difference. Fractional GPU-hours are "
    "billed pro rata; commitments are billed at their effective hourly rate for every active hour."
)
"""The serving rule in words (``serving_rule`` in plan.json); :mod:`optimizer.billing` is its implementation."""
TAIL_RULE = (
    "After the window, to the horizon's end, per GPU model, month and hour: active commitments serve demand first "
    "(instance commitments, then savings plans as in the window); "
    "then spot, re-decided each month: the term.spot offers, cheapest per useful GPU-hour first, each up to its "
    "max_instances (no limit when null), at most max_spot_share of the month's demand GPU-hours (cut back by one "
    "factor per offer as in the window); then on-demand at the on_demand rate."
)
"""How the plan serves demand after its window (``term.tail_rule`` in plan.json), :mod:`optimizer.billing`."""


@dataclass(frozen=True)
class SpRate:
    """What a savings plan's dollars buy for one GPU model: the instance type its usage runs on and the
    savings-plan rate per GPU-hour of it (USD; the instance's SP rate / its GPUs)."""

    gpu_model: str
    instance_type: str
    usd_per_gpu_hour: float
    rate_is_estimate: bool = False


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(value: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


@dataclass(frozen=True)
class Commitment:
    """``count`` instances bought with a reserved/convertible option, active for ``term_hours`` from ``start``.

    ``end`` (optional) is an explicit expiry (exclusive) that overrides ``start + term_hours``;
    ``existing`` marks a commitment already owned before the plan (sunk: billed, not bought).
    """

    instance_type: str
    purchase_option: str
    count: int
    start: pd.Timestamp
    hourly_usd_per_instance: float
    upfront_usd_per_instance: float
    gpu_model: str
    gpus_per_instance: float
    term_hours: int
    end: pd.Timestamp | None = None
    existing: bool = False
    firm: bool | None = None
    """New commitments: True = buy now (it starts in the plan's first purchase period); False = tentative (a
    laddered purchase in a later month, re-decided on the forecast of its month). None = not stated (older files,
    owned commitments)."""
    expected_utilization: float | None = None
    """Expected share of the commitment's GPU-hours used over its term (the part inside the plan's horizon),
    weighted over the demand scenarios; commitments of one GPU model share each hour's use pro rata. For a savings
    plan: the expected share of its hourly commitment (USD) spent on usage."""
    commitment_usd_per_hour: float | None = None
    """Savings plans only: USD per hour of spend committed (None for instance commitments)."""
    instance_family: str | None = None
    """EC2 Instance Savings Plans only: the instance family it covers (e.g. ``p5``)."""
    sp_rates: tuple[SpRate, ...] = ()
    """Savings plans only: per eligible GPU model, the savings-plan rate its usage is covered at."""
    rate_is_estimate: bool = False
    """True when the price comes from a catalog row flagged ``rate_is_estimate`` (savings-plan rates derived from
    RI rates)."""

    @property
    def is_savings_plan(self) -> bool:
        return self.commitment_usd_per_hour is not None

    @property
    def effective_hourly_usd(self) -> float:
        """Recurring plus amortised upfront, USD per instance-hour."""
        return self.hourly_usd_per_instance + self.upfront_usd_per_instance / self.term_hours

    @property
    def gpus(self) -> float:
        return self.count * self.gpus_per_instance

    @property
    def expiry(self) -> pd.Timestamp:
        """End of the commitment (exclusive): ``end`` when given, else ``start + term_hours``."""
        return self.end if self.end is not None else self.start + pd.Timedelta(hours=self.term_hours)

    @property
    def obligation_usd(self) -> float:
        """What the commitment costs over its full term, used or not: upfront plus every recurring hour (USD)."""
        return self.count * self.effective_hourly_usd * self.term_hours

    def active(self, hours: pd.DatetimeIndex) -> pd.Series:
        return pd.Series((hours >= self.start) & (hours < self.expiry), index=hours)


@dataclass(frozen=True)
class SpotAllowance:
    """Spot capacity the plan allows: at most ``max_instances`` of ``instance_type`` at once, and (when
    ``max_spot_share`` is set) the GPU model's spot GPU-hours at most that share of its demand GPU-hours."""

    instance_type: str
    max_instances: int
    gpu_model: str
    gpus_per_instance: float
    usd_per_instance_hour: float
    rework_fraction: float
    interruption_bucket: str | None = None
    max_spot_share: float | None = None

    @property
    def usd_per_useful_gpu_hour(self) -> float:
        return self.usd_per_instance_hour * (1.0 + self.rework_fraction) / self.gpus_per_instance


@dataclass(frozen=True)
class OnDemandRate:
    """The on-demand price a GPU model's remaining demand is billed at (cheapest per GPU)."""

    gpu_model: str
    instance_type: str
    usd_per_gpu_hour: float


@dataclass(frozen=True)
class TermSpot:
    """Spot after the window (the term's tail): re-decided each month, at most ``max_spot_share`` of the month's
    demand GPU-hours of the GPU model, at most ``max_instances`` at once (None = no capacity limit), cheapest per
    useful GPU-hour first (see :mod:`optimizer.billing`)."""

    gpu_model: str
    instance_type: str
    gpus_per_instance: float
    usd_per_instance_hour: float
    rework_fraction: float
    max_spot_share: float
    max_instances: int | None = None

    @property
    def usd_per_useful_gpu_hour(self) -> float:
        return self.usd_per_instance_hour * (1.0 + self.rework_fraction) / self.gpus_per_instance


@dataclass(frozen=True)
class Term:
    """The plan's horizon beyond its window (plan.json ``term``).

    Attributes:
        horizon_end: end (exclusive) of the hours the plan was judged on: the end of the longest commitment term
            considered, or the window's end when later.
        cost_of_capital: annual rate the plan's present values discount cash flows at.
        spot: how spot serves demand after the window, per GPU model (cheapest first).
    """

    horizon_end: pd.Timestamp
    cost_of_capital: float
    spot: tuple[TermSpot, ...] = ()


@dataclass(frozen=True)
class Expected:
    """Expected cost of the plan over the window (USD), weighted over the demand scenarios; the ``horizon_*``,
    ``present_value_*`` and ``obligation_*`` fields cover the plan's horizon (its commitment terms)."""

    total_usd: float
    committed_usd: float
    spot_usd: float
    on_demand_usd: float
    all_on_demand_usd: float
    total_p10_usd: float | None = None
    total_p90_usd: float | None = None
    upfront_usd: float = 0.0
    commitment_utilization: float | None = None
    cvar90_usd: float | None = None
    break_even_month: str | None = None
    break_even_projected: bool = False
    """True when ``break_even_month`` lies after the plan's horizon data: projected by assuming the window's
    average hourly saving continues for the rest of the commitment terms (plans judged on the window alone)."""
    horizon_total_usd: float | None = None
    """Expected cost from the window start to the horizon's end (USD, commitments at their effective rate)."""
    horizon_p10_usd: float | None = None
    horizon_p90_usd: float | None = None
    horizon_all_on_demand_usd: float | None = None
    horizon_committed_usd: float | None = None
    horizon_spot_usd: float | None = None
    horizon_on_demand_usd: float | None = None
    present_value_usd: float | None = None
    """Expected cost over the horizon in present value at the plan's cost of capital (upfront counted when paid)."""
    present_value_all_on_demand_usd: float | None = None
    obligation_total_usd: float | None = None
    """New commitments' obligation over their full terms: upfront plus every recurring hour (USD)."""
    obligation_after_window_usd: float | None = None
    """The part of that obligation that falls after the window (the total minus the new commitments' cost
    inside the window, USD)."""
    upfront_by_month: dict[str, float] | None = None
    """Upfront cash of new commitments by calendar month of purchase (``YYYY-MM`` -> USD)."""
    horizon_commitment_utilization: float | None = None
    """Expected share of new and owned commitments' GPU-hours used over the horizon."""

    @property
    def savings_usd(self) -> float:
        return self.all_on_demand_usd - self.total_usd

    @property
    def savings_pct(self) -> float:
        return 100.0 * self.savings_usd / self.all_on_demand_usd if self.all_on_demand_usd else 0.0


@dataclass(frozen=True)
class TeamRoute:
    """Rightsizing (``optimizer.rightsizing``): the GPU model one team's workload class is served on, and why.

    ``reference_gpu_hours`` is the class's work in reference-GPU-hours (NVIDIA A100 = 1.0), ``gpu_hours`` the
    GPU-hours of ``gpu_model`` it takes (spot rework included), ``usd_per_reference_gpu_hour`` the routing's
    stand-alone cost estimate; ``instance_types`` are the types of ``gpu_model`` that fit the class.
    """

    team: str
    workload_class: str
    class_source: str
    from_gpu_types: tuple[str, ...]
    gpu_model: str
    instance_types: tuple[str, ...]
    relative_throughput: float
    reference_gpu_hours: float
    gpu_hours: float
    usd_per_reference_gpu_hour: float
    spot_allowed: bool
    reason: str


@dataclass(frozen=True)
class Plan:
    """A purchase plan for ``region`` and the window [start, end)."""

    window_start: pd.Timestamp
    window_end: pd.Timestamp
    region: str
    commitments: tuple[Commitment, ...]
    spot: tuple[SpotAllowance, ...]
    on_demand: tuple[OnDemandRate, ...]
    expected: Expected
    assumptions: dict[str, Any] = field(default_factory=dict)
    routing: tuple[TeamRoute, ...] = ()
    term: Term | None = None
    capacity_blocks: dict[str, Any] | None = None
    """Capacity Blocks for planned runs (:mod:`optimizer.capacity_blocks`; plan.json ``capacity_blocks``), or None."""

    @property
    def hours(self) -> int:
        return int((self.window_end - self.window_start) / pd.Timedelta(hours=1))

    @property
    def gpu_models(self) -> tuple[str, ...]:
        return tuple(sorted({r.gpu_model for r in self.on_demand}))

    def to_dict(self) -> dict[str, Any]:
        def commitment(c: Commitment) -> dict[str, Any]:
            d = asdict(c)
            if c.is_savings_plan:
                d["upfront_usd"] = round(c.count * c.upfront_usd_per_instance, 2)
                d["sp_rates"] = [asdict(r) for r in c.sp_rates]
            else:
                for k in ("commitment_usd_per_hour", "instance_family", "sp_rates"):
                    d.pop(k)
            d["start"] = _iso(c.start)
            d["end"] = None if c.end is None else _iso(c.end)
            d["effective_hourly_usd_per_instance"] = round(c.effective_hourly_usd, 6)
            d["obligation_usd"] = round(c.obligation_usd, 2)
            return d

        def money(k: str, v: Any) -> Any:
            if isinstance(v, float) and k.endswith("usd"):
                return round(v, 2)
            if isinstance(v, dict) and k.endswith("by_month"):
                return {m: round(float(x), 2) for m, x in v.items()}
            return v

        out = {
            "schema": SCHEMA,
            "window": {"start": _iso(self.window_start), "end": _iso(self.window_end)},
            "region": self.region,
            "commitments": [commitment(c) for c in self.commitments],
            "spot": [asdict(s) for s in self.spot],
            "on_demand": [asdict(o) for o in self.on_demand],
            "expected": {k: money(k, v) for k, v in asdict(self.expected).items()},
            "assumptions": self.assumptions,
            "serving_rule": SERVING_RULE,
        }
        if self.term is not None:  # optional extension: absent from plans judged on the window alone
            out["term"] = {"horizon_start": _iso(self.window_start), "horizon_end": _iso(self.term.horizon_end),
                           "horizon_hours": int((self.term.horizon_end - self.window_start) / pd.Timedelta(hours=1)),
                           "cost_of_capital": self.term.cost_of_capital,
                           "spot": [asdict(t) for t in self.term.spot], "tail_rule": TAIL_RULE}
        if self.routing:  # optional extension: absent from plans made without --workloads
            out["routing"] = [asdict(r) for r in self.routing]
        if self.capacity_blocks:  # optional extension: plans made with planned add events and Capacity Block prices
            out["capacity_blocks"] = self.capacity_blocks
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: str | Path) -> Path:
        return write_json_atomic(self.to_dict(), path)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document (schema={d.get('schema')!r})")
        start = _parse_ts(d["window"]["start"])
        commitments = tuple(Commitment(
            instance_type=c["instance_type"], purchase_option=c["purchase_option"], count=int(c["count"]),
            start=_parse_ts(c.get("start") or d["window"]["start"]),
            hourly_usd_per_instance=float(c["hourly_usd_per_instance"]),
            upfront_usd_per_instance=float(c["upfront_usd_per_instance"]), gpu_model=c["gpu_model"],
            gpus_per_instance=float(c["gpus_per_instance"]), term_hours=int(c["term_hours"]),
            end=_parse_ts(c["end"]) if c.get("end") else None, existing=bool(c.get("existing", False)),
            firm=c.get("firm"), expected_utilization=c.get("expected_utilization"),
            commitment_usd_per_hour=(None if c.get("commitment_usd_per_hour") is None
                                     else float(c["commitment_usd_per_hour"])),
            instance_family=c.get("instance_family"), rate_is_estimate=bool(c.get("rate_is_estimate", False)),
            sp_rates=tuple(SpRate(**{k: r[k] for k in SpRate.__dataclass_fields__ if k in r})
                           for r in c.get("sp_rates") or ()))
            for c in d.get("commitments", []))
        spot = tuple(SpotAllowance(**{k: s[k] for k in SpotAllowance.__dataclass_fields__ if k in s})
                     for s in d.get("spot", []))
        on_demand = tuple(OnDemandRate(**o) for o in d.get("on_demand", []))
        expected = Expected(**{k: v for k, v in d["expected"].items() if k in Expected.__dataclass_fields__})
        term = None
        if isinstance(d.get("term"), dict):
            t = d["term"]
            term = Term(horizon_end=_parse_ts(t["horizon_end"]), cost_of_capital=float(t.get("cost_of_capital", 0.0)),
                        spot=tuple(TermSpot(**{k: x[k] for k in TermSpot.__dataclass_fields__ if k in x})
                                   for x in t.get("spot", [])))
        return cls(window_start=start, window_end=_parse_ts(d["window"]["end"]), region=d["region"],
                   commitments=commitments, spot=spot, on_demand=on_demand, expected=expected,
                   assumptions=d.get("assumptions", {}), term=term,
                   capacity_blocks=d.get("capacity_blocks") if isinstance(d.get("capacity_blocks"), dict) else None,
                   routing=tuple(TeamRoute(**{**r, "from_gpu_types": tuple(r["from_gpu_types"]),
                                              "instance_types": tuple(r["instance_types"])})
                                 for r in d.get("routing", [])))

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))
