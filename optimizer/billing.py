"""Serve hourly GPU demand with a plan and bill it: the one implementation of the serving rule.

Units: demand and served quantities are GPU-hours per hour (GPUs); costs are USD. Commitments are
billed at their effective hourly rate (recurring + upfront amortised over the term) for every hour
they are active, used or not. Spot GPU-hours served are useful GPU-hours; the billed spot GPU-hours
are ``served x (1 + rework_fraction)``.

The serving rule (:data:`optimizer.plan.SERVING_RULE`, written into every plan.json), per GPU model:

1. in each hour, active commitments serve demand first;
2. spot allowances, cheapest per useful GPU-hour first, serve what is left up to ``max_instances`` x
   useful GPUs per instance in each hour;
3. spot share: when the allowances carry ``max_spot_share``, spot may serve at most that share of the
   GPU model's demand GPU-hours over the billed window. If the hourly spot of step 2 adds up to more,
   the dearest allowance is cut first, each allowance by one factor applied to all its hours (the result,
   and so the bill, does not depend on the order of the hours);
4. on-demand serves the rest at the plan's rate per GPU-hour; fractional GPU-hours are billed pro rata.

This is exactly what the purchase MILP (:mod:`optimizer.problem`) models: per cell spot <= the spot cap,
spot + commitments + on-demand >= demand, and the spot GPU-hours of a scenario <= share x its demand
GPU-hours. For given commitments and spot caps the rule's spot is the most the cap and the share allow,
cheapest first, which is the MILP's optimal second stage; so a plan billed on hourly demand costs what
the MILP says for that demand (exactly when the MILP sees every hour; load-duration bins approximate it).
Plans without ``max_spot_share`` (plan.json files from before the rule) skip step 3.

After the window (plans judged over their commitment terms, ``plan.term``; :data:`optimizer.plan.TAIL_RULE`),
the same rule applies month by month with the spot re-decided each month: the ``term.spot`` offers, cheapest first,
each up to its spot capacity (no limit when none is set), held to the spot share of the month's demand
GPU-hours (:func:`tail_cost_arrays`, :func:`bill_term`). The purchase MILP models exactly that.

Savings plans (commitments with ``commitment_usd_per_hour``) link the GPU models, so :func:`model_cost_arrays` serves
all of them together, in AWS's published order: per hour, (1) each GPU model's instance commitments (RIs); then (2)
EC2 Instance Savings Plans and (3) Compute Savings Plans, each plan line in turn (highest discount first: longer
term, more upfront) spending its hourly commitment on the eligible usage left, GPU model with the highest discount
against its on-demand rate first, at the plan line's rate per GPU-hour (``sp_rates``); dollars not spent in the hour
are lost; then spot and on-demand as above. A plan line's hourly charge is attributed to the GPU models by the
dollars each used in that hour (evenly over its eligible models in an hour it serves none); its
``committed_capacity_gpus`` is the GPUs it served plus its unspent dollars at the model's rate. The tail is served
the same way, month by month.

Used by the planner (expected cost over forecast scenarios), backtests, chargeback and the app.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from optimizer.plan import Commitment, Plan, TermSpot
from usage import schema as S

COST_COLUMNS = ("committed_usd", "spot_usd", "on_demand_usd")


class BillingError(ValueError):
    """Demand the plan cannot price (e.g. a GPU model with no on-demand rate in the plan)."""


@dataclass(frozen=True)
class Served:
    """How one GPU model's hourly demand was served (arrays over hours, GPUs)."""

    committed: np.ndarray
    spot: np.ndarray
    on_demand: np.ndarray
    committed_capacity: np.ndarray
    spot_by_allowance: tuple[np.ndarray, ...] = ()   # useful GPUs per allowance, cheapest first


def spot_takes(rest: np.ndarray, spot_caps: list[float], demand: np.ndarray,
               spot_share: float | None = None, segments: np.ndarray | None = None) -> list[np.ndarray]:
    """Useful GPUs served by each spot allowance per hour (steps 2 and 3 of the serving rule).

    Args:
        rest: demand left after commitments, GPUs per hour, shape (..., T).
        spot_caps: useful GPUs available from each spot allowance, cheapest first.
        demand: the GPU model's demand per hour (the spot share is of its sum over the last axis).
        spot_share: max share of the demand GPU-hours on spot over the hours given; None = no share limit.
        segments: start index of each stretch of hours the share holds over separately (e.g. calendar months
            after the window); None = all the hours together.

    Returns:
        One array per allowance, shaped like ``rest``.
    """
    takes = []
    for cap in spot_caps:
        take = np.minimum(rest, cap)
        takes.append(take)
        rest = rest - take
    if spot_share is None or not takes:
        return takes
    demand = np.asarray(demand, dtype=float)
    if segments is None:
        def per_segment(x: np.ndarray) -> np.ndarray:
            return x.sum(axis=-1)[..., None]

        def spread(x: np.ndarray) -> np.ndarray:
            return x
    else:
        lengths = np.diff(np.r_[segments, demand.shape[-1]])

        def per_segment(x: np.ndarray) -> np.ndarray:
            return np.add.reduceat(x, segments, axis=-1)

        def spread(x: np.ndarray) -> np.ndarray:
            return np.repeat(x, lengths, axis=-1)
    budget = spot_share * per_segment(demand)                                 # GPU-hours per segment
    scaled = []
    for take in takes:                                                      # cheapest first keeps its hours
        total = per_segment(take)
        kept = np.minimum(total, budget)
        factor = np.divide(kept, total, out=np.ones_like(total), where=total > kept)
        scaled.append(take * spread(factor))
        budget = budget - kept
    return scaled


def serve(demand: np.ndarray, committed_capacity: np.ndarray, spot_caps: list[float],
          spot_share: float | None = None, segments: np.ndarray | None = None) -> Served:
    """Apply the serving rule (module docstring) to hourly demand.

    Args:
        demand: GPUs needed per hour, shape (..., T); the spot share applies over the last axis.
        committed_capacity: GPUs of active commitments per hour, broadcastable to ``demand``.
        spot_caps: useful GPUs available from each spot allowance, cheapest first.
        spot_share: max share of the demand GPU-hours served by spot (None = no limit).

    Returns:
        GPUs served per hour by commitments, spot (useful GPUs, summed over allowances) and on-demand.
    """
    demand = np.asarray(demand, dtype=float)
    committed = np.minimum(demand, committed_capacity)
    rest = demand - committed
    takes = tuple(spot_takes(rest, spot_caps, demand, spot_share, segments))
    spot = sum(takes, np.zeros_like(demand))
    return Served(committed=committed, spot=spot, on_demand=np.maximum(rest - spot, 0.0),
                  committed_capacity=np.broadcast_to(committed_capacity, demand.shape).astype(float),
                  spot_by_allowance=takes)


@dataclass(frozen=True)
class GpuModelPricing:
    """Everything needed to bill one GPU model's demand under a plan, over a given hour grid."""

    capacity: np.ndarray         # GPUs of active commitments per hour
    commit_usd: np.ndarray       # USD of active commitments per hour (amortised effective rate)
    spot_caps: list[float]       # useful GPUs per spot allowance, cheapest first
    spot_rates: list[float]      # USD per useful GPU-hour per allowance
    od_rate: float               # USD per GPU-hour
    spot_share: float | None = None   # max share of demand GPU-hours on spot over the window (None = no limit)


def pricing_for(plan: Plan, gpu_model: str, hours: pd.DatetimeIndex) -> GpuModelPricing:
    rates = {o.gpu_model: o.usd_per_gpu_hour for o in plan.on_demand}
    if gpu_model not in rates:
        raise BillingError(f"the plan has no on-demand rate for '{gpu_model}' "
                           f"(fix: plan with usage that includes {gpu_model}, or drop that usage)")
    capacity, commit_usd = _commitment_arrays(plan, gpu_model, hours)
    spots = sorted((s for s in plan.spot if s.gpu_model == gpu_model), key=lambda s: s.usd_per_useful_gpu_hour)
    caps = [s.max_instances * s.gpus_per_instance / (1.0 + s.rework_fraction) for s in spots]
    spot_rates = [s.usd_per_useful_gpu_hour for s in spots]
    shares = [s.max_spot_share for s in spots if s.max_spot_share is not None]
    return GpuModelPricing(capacity, commit_usd, caps, spot_rates, rates[gpu_model],
                           min(shares) if shares else None)


def cost_arrays(demand: np.ndarray, pricing: GpuModelPricing, segments: np.ndarray | None = None
                ) -> dict[str, np.ndarray]:
    """Serve ``demand`` (shape (..., T)) and return per-hour quantities (GPUs) and costs (USD); ``segments``: the
    spot share holds over each stretch separately (:func:`spot_takes`)."""
    demand = np.asarray(demand, dtype=float)
    served = serve(demand, pricing.capacity, pricing.spot_caps, pricing.spot_share, segments)
    spot_usd = np.zeros_like(demand)
    for take, rate in zip(served.spot_by_allowance, pricing.spot_rates, strict=True):
        spot_usd += take * rate
    return {
        "demand_gpus": demand,
        "committed_capacity_gpus": served.committed_capacity,
        "committed_used_gpus": served.committed,
        "spot_gpus": served.spot,
        "on_demand_gpus": served.on_demand,
        "committed_usd": np.broadcast_to(pricing.commit_usd, demand.shape).astype(float),
        "spot_usd": spot_usd,
        "on_demand_usd": served.on_demand * pricing.od_rate,
        "all_on_demand_usd": demand * pricing.od_rate,
    }


@dataclass(frozen=True)
class Bill:
    """Hourly bill per GPU model: ``timestamp, gpu_type`` plus the quantities of :func:`cost_arrays`."""

    hourly: pd.DataFrame

    @property
    def total_usd(self) -> float:
        return float(self.hourly[list(COST_COLUMNS)].to_numpy().sum())

    def totals(self) -> dict[str, float]:
        cols = list(COST_COLUMNS) + ["all_on_demand_usd", "demand_gpus", "committed_used_gpus",
                                     "committed_capacity_gpus", "spot_gpus", "on_demand_gpus"]
        out = {c: float(self.hourly[c].sum()) for c in cols}
        out["total_usd"] = sum(out[c] for c in COST_COLUMNS)
        cap = out["committed_capacity_gpus"]
        out["commitment_utilization"] = out["committed_used_gpus"] / cap if cap > 0 else float("nan")
        return out


def window_hours(plan: Plan) -> pd.DatetimeIndex:
    return pd.date_range(plan.window_start, plan.window_end, freq="h", inclusive="left")


def bill(plan: Plan, demand: pd.DataFrame) -> Bill:
    """Bill realised hourly demand under ``plan`` over the plan window.

    Args:
        plan: the plan to apply.
        demand: usage rows ``timestamp, gpu_type, gpus`` (any number of teams; summed per hour and GPU
            model). Hours of the window with no row have zero demand (commitments are still paid);
            rows outside the window are ignored.

    Raises:
        BillingError: a GPU model in the demand has no on-demand rate in the plan.
    """
    hours = window_hours(plan)
    inside = demand[(demand[S.TIMESTAMP] >= plan.window_start) & (demand[S.TIMESTAMP] < plan.window_end)]
    per_hour = inside.groupby([S.GPU_TYPE, S.TIMESTAMP])[S.GPUS].sum()
    per_model = _per_model(per_hour, plan, hours)
    arrays, _ = model_cost_arrays(plan, per_model, hours)
    frames = [pd.DataFrame({S.TIMESTAMP: hours, S.GPU_TYPE: g, **arrays[g]}) for g in per_model]
    return Bill(pd.concat(frames, ignore_index=True))


def _per_model(per_hour: pd.Series, plan: Plan, hours: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """GPU model -> GPUs per hour of ``hours`` (0 where no row), for the models of the demand and the plan."""
    present = set(per_hour.index.get_level_values(0))
    out = {}
    for gpu_model in sorted(present | set(plan.gpu_models)):
        values = per_hour.xs(gpu_model, level=0) if gpu_model in present else None
        out[gpu_model] = (values.reindex(hours, fill_value=0.0).to_numpy(dtype=float) if values is not None
                          else np.zeros(len(hours)))
    return out


def _commitment_arrays(plan: Plan, gpu_model: str, hours: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """GPUs of the plan's active instance commitments of a GPU model per hour, and their USD per hour (effective
    rate). Savings plans are served by :func:`savings_plan_cover`."""
    capacity = np.zeros(len(hours))
    commit_usd = np.zeros(len(hours))
    for c in plan.commitments:
        if c.gpu_model != gpu_model or c.is_savings_plan:
            continue
        active = c.active(hours).to_numpy(dtype=float)
        capacity += active * c.gpus
        commit_usd += active * c.count * c.effective_hourly_usd
    return capacity, commit_usd


def savings_plans(plan: Plan) -> list[Commitment]:
    """The plan's savings-plan lines in serving order: EC2 Instance SPs, then Compute SPs; within each, the highest
    discount first (3-year before 1-year, all upfront before partial before none), then by start."""
    from optimizer.options import parse_savings_plan

    rank = {"all": 0, "partial": 1, "no": 2}

    def key(c: Commitment) -> tuple:
        kind, term, payment = parse_savings_plan(c.purchase_option)
        return (kind != "ec2_instance_sp", term != "3y", rank[payment], c.start)

    return sorted((c for c in plan.commitments if c.is_savings_plan), key=key)


@dataclass(frozen=True)
class SavingsPlanCover:
    """Savings plans applied to usage left after instance commitments, per GPU model (arrays shaped like demand).

    Attributes:
        covered: GPUs each model's usage had covered by savings plans per hour.
        usd: USD per hour of savings-plan charges attributed to the model.
        unused_gpus: unspent savings-plan dollars attributed to the model, at its rate (GPUs).
        used_usd: per plan line (index into ``plan.commitments``), USD spent on usage per hour (summed over models).
    """

    covered: dict[str, np.ndarray]
    usd: dict[str, np.ndarray]
    unused_gpus: dict[str, np.ndarray]
    used_usd: dict[int, np.ndarray]


def savings_plan_cover(plan: Plan, rest: dict[str, np.ndarray], hours: pd.DatetimeIndex) -> SavingsPlanCover:
    """Steps (2)-(3) of the serving rule (module docstring) on ``rest``: per GPU model the demand left after its
    instance commitments, shape (..., len(hours)), all models the same shape."""
    od = {o.gpu_model: o.usd_per_gpu_hour for o in plan.on_demand}
    left = {g: np.array(v, dtype=float) for g, v in rest.items()}
    shape = next(iter(left.values())).shape if left else (len(hours),)
    covered = {g: np.zeros(shape) for g in left}
    usd = {g: np.zeros(shape) for g in left}
    unused = {g: np.zeros(shape) for g in left}
    used_by_line: dict[int, np.ndarray] = {}
    index = {id(c): i for i, c in enumerate(plan.commitments)}
    for c in savings_plans(plan):
        active = c.active(hours).to_numpy(dtype=float)
        budget = np.broadcast_to(active * c.count * c.effective_hourly_usd, shape).astype(float)
        total = budget.copy()
        rates = [r for r in c.sp_rates if r.gpu_model in left and r.usd_per_gpu_hour > 0]
        rates.sort(key=lambda r: (r.usd_per_gpu_hour / od.get(r.gpu_model, np.inf), r.gpu_model))
        spent = {}
        for r in rates:
            take = np.minimum(left[r.gpu_model], budget / r.usd_per_gpu_hour)
            left[r.gpu_model] = left[r.gpu_model] - take
            covered[r.gpu_model] += take
            spent[r.gpu_model] = take * r.usd_per_gpu_hour
            budget = np.maximum(budget - spent[r.gpu_model], 0.0)
        used = sum(spent.values(), np.zeros(shape))
        used_by_line[index[id(c)]] = used
        if not rates:
            continue
        for r in rates:
            share = np.divide(spent[r.gpu_model], used, out=np.full(shape, 1.0 / len(rates)), where=used > 0)
            usd[r.gpu_model] += total * share
            unused[r.gpu_model] += budget * share / r.usd_per_gpu_hour
    return SavingsPlanCover(covered, usd, unused, used_by_line)


def model_cost_arrays(plan: Plan, demand: dict[str, np.ndarray], hours: pd.DatetimeIndex, tail: bool = False
                      ) -> tuple[dict[str, dict[str, np.ndarray]], dict[int, np.ndarray]]:
    """Serve every GPU model's demand together (savings plans link them) and return :func:`cost_arrays`' quantities
    per model, plus per savings-plan line (index into ``plan.commitments``) the USD it spent on usage per hour.

    Args:
        plan: the plan.
        demand: GPU model -> GPUs per hour, shape (..., len(hours)), every model the same shape.
        hours: the hours of the last axis.
        tail: serve by the tail rule (hours after the window: spot re-decided per calendar month).
    """
    demand = {g: np.asarray(v, dtype=float) for g, v in demand.items()}
    pricing = {g: (_tail_pricing(plan, g, hours) if tail else pricing_for(plan, g, hours)) for g in demand}
    segments = None
    if tail and len(hours):
        month = np.asarray(hours.year * 12 + hours.month)
        segments = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    if not any(c.is_savings_plan for c in plan.commitments):
        return {g: cost_arrays(d, pricing[g], segments) for g, d in demand.items()}, {}
    rest = {g: np.maximum(d - pricing[g].capacity, 0.0) for g, d in demand.items()}
    cover = savings_plan_cover(plan, rest, hours)
    out = {}
    for g, d in demand.items():
        p = pricing[g]
        ri_used = np.minimum(d, p.capacity)
        joint = replace(p, capacity=ri_used + cover.covered[g], commit_usd=p.commit_usd + cover.usd[g])
        arrays = cost_arrays(d, joint, segments)
        arrays["committed_capacity_gpus"] = (np.broadcast_to(p.capacity, d.shape) + cover.covered[g]
                                             + cover.unused_gpus[g])
        arrays["sp_covered_gpus"] = cover.covered[g]
        out[g] = arrays
    return out, cover.used_usd


def _tail_pricing(plan: Plan, gpu_model: str, hours: pd.DatetimeIndex) -> GpuModelPricing:
    rates = {o.gpu_model: o.usd_per_gpu_hour for o in plan.on_demand}
    if gpu_model not in rates:
        raise BillingError(f"the plan has no on-demand rate for '{gpu_model}' "
                           f"(fix: plan with usage that includes {gpu_model}, or drop that usage)")
    capacity, commit_usd = _commitment_arrays(plan, gpu_model, hours)
    offers = term_spot(plan, gpu_model)
    caps = [np.inf if t.max_instances is None else t.max_instances * t.gpus_per_instance / (1.0 + t.rework_fraction)
            for t in offers]
    spot_rates = [t.usd_per_useful_gpu_hour for t in offers]
    share = min((t.max_spot_share for t in offers), default=None)
    return GpuModelPricing(capacity, commit_usd, caps, spot_rates, rates[gpu_model], share)


def term_spot(plan: Plan, gpu_model: str) -> list[TermSpot]:
    """The plan's spot offers after the window for a GPU model, cheapest per useful GPU-hour first."""
    if plan.term is None:
        return []
    return sorted((t for t in plan.term.spot if t.gpu_model == gpu_model), key=lambda t: t.usd_per_useful_gpu_hour)


def tail_cost_arrays(demand: np.ndarray, plan: Plan, gpu_model: str, hours: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Serve demand after the window under the tail rule (module docstring) and return per-hour quantities and
    costs like :func:`cost_arrays`, shape (..., len(hours)); the spot share holds per calendar month."""
    demand = np.asarray(demand, dtype=float)
    pricing = _tail_pricing(plan, gpu_model, hours)
    if len(hours) == 0:
        return cost_arrays(demand, pricing)
    month = np.asarray(hours.year * 12 + hours.month)
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    return cost_arrays(demand, pricing, starts)


def tail_hours(plan: Plan) -> pd.DatetimeIndex:
    """Hours after the window to the horizon's end (empty for a plan judged on the window alone)."""
    if plan.term is None or plan.term.horizon_end <= plan.window_end:
        return pd.DatetimeIndex([])
    return pd.date_range(plan.window_end, plan.term.horizon_end, freq="h", inclusive="left")


def bill_term(plan: Plan, demand: pd.DataFrame) -> Bill:
    """Bill realised hourly demand under ``plan`` over its whole horizon: the window by :func:`bill`, then the
    months after it by the tail rule (a plan without a term is billed on its window).

    Args:
        plan: the plan to apply.
        demand: usage rows ``timestamp, gpu_type, gpus`` (teams are summed); hours with no row have zero demand.

    Raises:
        BillingError: a GPU model in the demand has no on-demand rate in the plan.
    """
    window = bill(plan, demand)
    after = tail_hours(plan)
    if len(after) == 0:
        return window
    inside = demand[(demand[S.TIMESTAMP] >= after[0]) & (demand[S.TIMESTAMP] <= after[-1])]
    per_hour = inside.groupby([S.GPU_TYPE, S.TIMESTAMP])[S.GPUS].sum()
    per_model = _per_model(per_hour, plan, after)
    arrays, _ = model_cost_arrays(plan, per_model, after, tail=True)
    frames = [window.hourly, *(pd.DataFrame({S.TIMESTAMP: after, S.GPU_TYPE: g, **arrays[g]}) for g in per_model)]
    return Bill(pd.concat(frames, ignore_index=True))
