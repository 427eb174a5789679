"""Baseline purchase plans a forecast-driven plan is judged against: all on-demand, the cloud look-back
recommender and the hindsight optimum. Each is a :class:`~optimizer.plan.Plan`, so it is billed by the
same serving rule (:func:`optimizer.billing.bill`) as the real plan.

Units: demand in GPUs per hour (GPU-hours per hour) per GPU model; costs in USD; rates in USD per
instance-hour or per GPU-hour; look-backs in days (of 24 hours).

* **All on-demand**: no commitment, no spot; every GPU-hour at the cheapest on-demand rate per GPU.
* **Look-back recommender** (what AWS Savings Plans / RI recommendations, Azure's reservation advisor and
  GCP's "optimal" CUD do): take the hourly usage of the last 7, 30 or 60 days and choose, per GPU model,
  the single flat commitment (one instance type, one purchase option, one count) that would have
  minimised the cost of those hours; the rest is on-demand. Its options are those the plan may buy, and
  of them the cheapest effective rate per instance size (``optimizer.inputs.useful_commitments``).
  With spot allowed, the look-back also gets the plan's spot offer under the same spot share cap (the
  most spot instances the cap allows on the look-back's demand, chosen jointly with the commitment), so
  with-spot comparisons are fair. A history shorter than the look-back uses all of it (what a recommender
  does for a young account); ``assumptions["lookback_hours_used"]`` records how many hours it saw.
* **Hindsight optimum**: the optimizer given the realised demand of the window as its only scenario,
  every hour exact (``duration_bins=None``). No plan of the same model billed on the same demand can cost
  less, up to the MIP gap and whole spot instances (so it scores a planner: ``cost / hindsight``).

The ``expected`` block of a look-back or all-on-demand plan is its cost on the look-back hours scaled to
the window length (what the recommender itself would have promised).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from optimizer import catalog as C
from optimizer.billing import bill
from optimizer.catalog import Catalog
from optimizer.inputs import (
    Offers,
    PlanConfig,
    PlanningError,
    Scenarios,
    equivalent_hourly,
    hourly_demand,
    offers_for,
)
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpotAllowance
from optimizer.solve import PlanResult, bill_scenarios, make_plan
from usage import schema as S

LOOKBACK_DAYS = (7, 30, 60)
"""Look-back periods the cloud consoles offer (AWS: 7, 30 and 60 days)."""


def _rate(off: Offers) -> OnDemandRate:
    return OnDemandRate(gpu_model=off.gpu_model, instance_type=off.on_demand_instance_type,
                        usd_per_gpu_hour=off.on_demand_usd_per_gpu_hour)


def _shifted(plan: Plan, start: pd.Timestamp, hours: int) -> Plan:
    """The same purchases over [start, start + hours) (commitments start with the window)."""
    commitments = tuple(dataclasses.replace(c, start=start) for c in plan.commitments)
    return dataclasses.replace(plan, window_start=start, window_end=start + pd.Timedelta(hours=hours),
                               commitments=commitments)


def _expected_from(plan: Plan, reference: pd.DataFrame | None, ref_start: pd.Timestamp | None, ref_hours: int
                   ) -> Expected:
    """The plan billed on the reference (look-back) demand, scaled to the plan's window length."""
    if reference is None or ref_start is None or ref_hours < 1:
        return Expected(0.0, 0.0, 0.0, 0.0, 0.0)
    totals = bill(_shifted(plan, ref_start, ref_hours), reference).totals()
    k = plan.hours / ref_hours
    upfront = float(sum(c.count * c.upfront_usd_per_instance for c in plan.commitments))
    util = totals["commitment_utilization"]
    return Expected(total_usd=k * totals["total_usd"], committed_usd=k * totals["committed_usd"],
                    spot_usd=k * totals["spot_usd"], on_demand_usd=k * totals["on_demand_usd"],
                    all_on_demand_usd=k * totals["all_on_demand_usd"], upfront_usd=upfront,
                    commitment_utilization=None if math.isnan(util) else util)


def _history_span(history: pd.DataFrame, start: pd.Timestamp, lookback_hours: int) -> tuple[pd.Timestamp, int]:
    """First hour and length of the look-back: the ``lookback_hours`` before ``start``, or all the history
    before ``start`` when it is shorter."""
    before = history[history[S.TIMESTAMP] < start]
    if before.empty:
        raise PlanningError(f"no usage before {start:%Y-%m-%dT%H:%M}Z to look back on "
                            "(fix: choose a later start so that history precedes it)")
    first = max(before[S.TIMESTAMP].min(), start - pd.Timedelta(hours=lookback_hours))
    return first, int((start - first) / pd.Timedelta(hours=1))


def all_on_demand_plan(catalog: Catalog, config: PlanConfig, gpu_models: tuple[str, ...],
                       history: pd.DataFrame | None = None, lookback_days: int = 30) -> Plan:
    """Every GPU-hour on demand at the cheapest on-demand rate per GPU of its model.

    Args:
        catalog: price catalog.
        config: window and region (options and spot settings are ignored).
        gpu_models: GPU models the plan must price.
        history: optional usage before the window; when given, ``expected`` is the cost of its last
            ``lookback_days`` scaled to the window.
        lookback_days: see ``history``.
    """
    rates = tuple(_rate(offers_for(catalog, g, config)) for g in sorted(gpu_models))
    plan = Plan(window_start=config.start, window_end=config.end, region=config.region, commitments=(), spot=(),
                on_demand=rates, expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0),
                assumptions={"baseline": "all on-demand"})
    if history is None:
        return plan
    first, n = _history_span(history, config.start, 24 * lookback_days)
    return dataclasses.replace(plan, expected=_expected_from(plan, history, first, n))


def max_spot_gpus(excess_sorted: np.ndarray, limit_gpu_hours: float) -> float:
    """Largest spot cap x (useful GPUs) whose fill-first use ``sum_t min(excess_t, x)`` stays within
    ``limit_gpu_hours``; ``excess_sorted`` ascending. Returns ``inf`` when all the excess fits.

    ``f(x) = sum_t min(e_t, x)`` is increasing and piecewise linear with breakpoints at the sorted e_t,
    so x* is found on the segment where f crosses the limit.
    """
    e = excess_sorted
    n = len(e)
    total = float(e.sum())
    if n == 0 or total <= limit_gpu_hours:
        return math.inf
    prefix = np.concatenate([[0.0], np.cumsum(e)])       # prefix[j] = sum of the j smallest
    at_break = prefix[:-1] + e * (n - np.arange(n))      # f(e_j)
    j = int(np.searchsorted(at_break, limit_gpu_hours, side="right")) - 1
    if j < 0:
        return limit_gpu_hours / n
    return float((limit_gpu_hours - prefix[j + 1]) / (n - j - 1))


def _spot_served(excess_sorted: np.ndarray, cap: float) -> float:
    """``sum_t min(excess_t, cap)`` for ascending excess (GPU-hours)."""
    if cap <= 0:
        return 0.0
    k = int(np.searchsorted(excess_sorted, cap, side="left"))
    return float(excess_sorted[:k].sum() + cap * (len(excess_sorted) - k))


@dataclasses.dataclass(frozen=True)
class LookbackChoice:
    """What the look-back recommender picked for one GPU model (costs over the look-back hours, USD)."""

    gpu_model: str
    offer_row: int | None        # row of ``Offers.commitments`` (None = no commitment)
    count: int
    spot_instances: int
    lookback_cost_usd: float


def candidate_counts(demand_sorted: np.ndarray, owned_gpus: float, gpus_each: float, top: int,
                     exhaustive_up_to: int | None = None) -> np.ndarray:
    """Instance counts the look-back tries for one commitment offer (1 to ``top``).

    Up to ``exhaustive_up_to`` counts (default twice the look-back hours + 2) every count is tried. Beyond
    that only the counts next to a demand value (``floor`` and ``ceil`` of ``(d_t - owned) / gpus_each``)
    and the ends: between two such counts no hour changes from over- to under-served, so the commitment
    and on-demand cost is linear in the count and its minimum lies at one of them. The work is then
    bounded by the number of hours, not by the peak (a peak of a million GPUs costs the same as 10).
    """
    if top < 1:
        return np.zeros(0, dtype=np.int64)
    limit = 2 * len(demand_sorted) + 2 if exhaustive_up_to is None else exhaustive_up_to
    if top <= limit:
        return np.arange(1, top + 1, dtype=np.int64)
    need = (np.unique(demand_sorted) - owned_gpus) / gpus_each
    near = np.concatenate([np.floor(need + 1e-9), np.ceil(need - 1e-9), [1.0, float(top)]])
    near = near[(near >= 1) & (near <= top)]
    return np.unique(near.astype(np.int64))


def choose_lookback(demand: np.ndarray, off: Offers, owned_gpus: float = 0.0,
                    cost_of_capital: float = 0.0, *, exhaustive_up_to: int | None = None) -> LookbackChoice:
    """The single flat commitment (one offer, one count) and spot allowance that would have cost least over
    the look-back demand ``demand`` (GPUs per hour) under the serving rule.

    Every count from 0 to the look-back peak is tried for every commitment offer (for peaks far above the
    number of hours, only the counts where the cost can turn, see :func:`candidate_counts`); for a given commitment
    the best spot allowance is the most instances of the cheapest spot offer that the GPU model's spot
    share cap (and the offer's spot capacity) allows: spot is only offered when it is cheaper per useful
    GPU-hour than on-demand. ``owned_gpus`` are existing commitments (sunk) that serve demand first. Offers are
    compared at their rate with upfront valued at ``cost_of_capital`` (:func:`optimizer.inputs.equivalent_hourly`;
    the effective rate at 0), as the plan compares them.
    """
    d = np.sort(np.asarray(demand, dtype=float))
    n_hours = len(d)
    od = off.on_demand_usd_per_gpu_hour
    spot = off.spot if off.spot_share > 0 else None
    limit = off.spot_share * float(d.sum()) + 1e-6

    def evaluate(row: int | None, count: int, gpus_each: float, rate: float) -> LookbackChoice:
        capacity = owned_gpus + count * gpus_each
        excess = np.maximum(d - capacity, 0.0)   # stays ascending
        m = 0
        spot_gh = 0.0
        spot_usd = 0.0
        if spot is not None and excess[-1] > 0:
            useful = spot["gpu_count"] / (1.0 + spot["rework_fraction"])
            x = max_spot_gpus(excess, limit)
            top = math.ceil(excess[-1] / useful - 1e-9)
            m = top if math.isinf(x) else min(top, int(math.floor(x / useful + 1e-9)))
            if spot.get("max_instances") is not None:
                m = min(m, int(spot["max_instances"]))
            spot_gh = _spot_served(excess, m * useful)
            spot_usd = spot_gh * spot["usd_per_useful_gpu_hour"]
        cost = count * rate * n_hours + spot_usd + (float(excess.sum()) - spot_gh) * od
        return LookbackChoice(off.gpu_model, row, count, m, cost)

    best = evaluate(None, 0, 1.0, 0.0)
    rows = off.commitments
    rates = equivalent_hourly(rows, cost_of_capital) if len(rows) else np.zeros(0)
    for k in range(len(rows)):
        gpus_each = float(rows.iloc[k][C.GPU_COUNT])
        rate = float(rates[k])
        top = math.ceil(max(d[-1] - owned_gpus, 0.0) / gpus_each - 1e-9) if n_hours else 0
        for count in candidate_counts(d, owned_gpus, gpus_each, top, exhaustive_up_to):
            cand = evaluate(k, int(count), gpus_each, rate)
            if cand.lookback_cost_usd < best.lookback_cost_usd - 1e-9:
                best = cand
    return best


def lookback_plan(history: pd.DataFrame, catalog: Catalog, config: PlanConfig, lookback_days: int,
                  gpu_models: tuple[str, ...] | None = None) -> Plan:
    """The cloud look-back recommender's plan for the window of ``config``.

    Args:
        history: usage rows ``timestamp, gpu_type, gpus`` (teams are summed); only hours before
            ``config.start`` are used.
        catalog: price catalog.
        config: window, region, purchase options, spot policy and existing commitments (the plan's own
            settings; existing commitments active at the window start count as owned capacity).
        lookback_days: days of hourly usage to look back on (7, 30 or 60 on AWS).
        gpu_models: GPU models to price (default: those in the look-back).

    Raises:
        PlanningError: no usage before the window.
    """
    if lookback_days < 1:
        raise PlanningError("a look-back must be at least 1 day")
    first, n_hours = _history_span(history, config.start, 24 * lookback_days)
    hours = pd.date_range(first, periods=n_hours, freq="h")
    demand = hourly_demand(history, hours)
    models = tuple(sorted(set(demand) | set(gpu_models or ())))
    commitments, spots, rates, chosen = list(config.existing), [], [], {}
    for g in models:
        off = offers_for(catalog, g, config)
        rates.append(_rate(off))
        d = demand.get(g, np.zeros(n_hours))
        first_hour = pd.DatetimeIndex([config.start])
        owned = sum(c.gpus for c in config.existing if c.gpu_model == g and bool(c.active(first_hour).iloc[0]))
        pick = choose_lookback(d, off, owned, config.cost_of_capital)
        if pick.offer_row is not None and pick.count > 0:
            r = off.commitments.iloc[pick.offer_row]
            commitments.append(Commitment(
                instance_type=str(r[C.INSTANCE_TYPE]), purchase_option=str(r[C.PURCHASE_OPTION]), count=pick.count,
                start=config.start, hourly_usd_per_instance=float(r[C.RECURRING_HOURLY]),
                upfront_usd_per_instance=float(r[C.UPFRONT]), gpu_model=g, gpus_per_instance=float(r[C.GPU_COUNT]),
                term_hours=int(r[C.TERM_HOURS_COL])))
        if pick.spot_instances > 0 and off.spot is not None:
            spots.append(SpotAllowance(
                instance_type=off.spot["instance_type"], max_instances=pick.spot_instances, gpu_model=g,
                gpus_per_instance=off.spot["gpu_count"], usd_per_instance_hour=off.spot["usd_per_instance_hour"],
                rework_fraction=off.spot["rework_fraction"], interruption_bucket=off.spot["interruption_bucket"],
                max_spot_share=off.spot_share))
        chosen[g] = round(pick.lookback_cost_usd, 2)
    draft = Plan(window_start=config.start, window_end=config.end, region=config.region,
                 commitments=tuple(commitments), spot=tuple(spots), on_demand=tuple(rates),
                 expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0))
    assumptions = {"baseline": f"look-back {lookback_days} days", "lookback_days": lookback_days,
                   "lookback_hours_used": n_hours, "lookback_start": f"{first:%Y-%m-%dT%H:%M:%SZ}",
                   "lookback_cost_usd": chosen, "options_considered": list(config.options),
                   "allow_spot": config.allow_spot, "max_spot_share": config.max_spot_share}
    return dataclasses.replace(draft, expected=_expected_from(draft, history, first, n_hours), assumptions=assumptions)


def hindsight_plan(actual: pd.DataFrame, catalog: Catalog, config: PlanConfig,
                   gpu_models: tuple[str, ...] | None = None, term: bool = False) -> Plan:
    """The optimizer's plan knowing the realised demand (one scenario, every window hour exact).

    Args:
        actual: realised usage rows ``timestamp, gpu_type, gpus`` (teams are summed; rows outside the
            window, or outside the horizon with ``term``, are ignored).
        catalog: price catalog.
        config: the plan's settings; ``duration_bins`` is overridden to None (exact hours in the window).
        gpu_models: GPU models to price (default: those with realised demand in the window).
        term: judge commitments over the whole horizon (``config.horizon_end``) on the realised demand after the
            window too (each month's load-duration curve, :data:`optimizer.problem.TAIL_BINS` bins; billed hour
            by hour): the best commitments in hindsight over their whole terms.
    """
    hours = pd.date_range(config.start, periods=config.hours, freq="h")
    demand = hourly_demand(actual, hours, gpu_models)
    if not demand:
        raise PlanningError(f"no realised demand in the window {config.start:%Y-%m-%dT%H:%M}Z + {config.hours} h "
                            "(fix: choose a window covered by the usage)")
    models = tuple(sorted(demand))
    tail_hours = pd.DatetimeIndex([])
    tail = {}
    if term and config.horizon_end > config.end:
        tail_hours = pd.date_range(config.end, config.horizon_end, freq="h", inclusive="left")
        after = hourly_demand(actual, tail_hours, models)
        tail = {g: after[g][None, :] for g in models}
    scenarios = Scenarios(hours=hours, gpu_models=models, names=("realised",),
                          weights=np.array([1.0]), demand={g: v[None, :] for g, v in demand.items()},
                          tail_hours=tail_hours, tail=tail)
    exact = dataclasses.replace(config, duration_bins=None)
    plan = make_plan(None, catalog, exact, scenarios=scenarios).plan
    return dataclasses.replace(plan, assumptions={**plan.assumptions, "baseline": "hindsight optimum"})


def lookback_expected(result: PlanResult, history: pd.DataFrame, catalog: Catalog, config: PlanConfig,
                      days: tuple[int, ...] = LOOKBACK_DAYS) -> dict[str, float]:
    """Expected cost (USD) of each look-back recommender's plan billed on the plan's own demand scenarios.

    The comparison a platform lead needs next to a plan: what the console's recommendation would cost on the
    same forecast, under the same options, spot policy and owned commitments. For a plan judged over its terms
    (``result.plan.term``) the look-back's commitments are billed over the same horizon with the same spot rule
    after the window, in present value (what the plan minimises); otherwise over the window. Keys are ``"7d"``,
    ``"30d"``, ...; a look-back with no usage before the window is left out.
    """
    from optimizer.solve import evaluate

    weights = np.asarray(result.scenarios.weights, dtype=float)
    term = result.plan.term
    out: dict[str, float] = {}
    for d in days:
        try:
            base = lookback_plan(history, catalog, config, d, gpu_models=result.scenarios.gpu_models)
        except PlanningError:
            continue
        if term is not None:
            money = evaluate(dataclasses.replace(base, term=term), result.scenarios, term.cost_of_capital)
            values = [money.horizon[n]["present_value_usd"] for n in result.scenarios.names]
        else:
            costs = bill_scenarios(base, result.scenarios)
            values = [costs[n]["total_usd"] for n in result.scenarios.names]
        out[f"{d}d"] = float(weights @ np.asarray(values))
    return out


def with_lookback(result: PlanResult, history: pd.DataFrame, catalog: Catalog, config: PlanConfig,
                  days: tuple[int, ...] = LOOKBACK_DAYS) -> PlanResult:
    """``result`` with :func:`lookback_expected` recorded in ``plan.assumptions["lookback_expected_usd"]`` and its
    basis (``lookback_basis``: ``term`` = present value over the horizon, ``window``) (plan.json keeps both; the
    summary prints the plan against each)."""
    figures = lookback_expected(result, history, catalog, config, days)
    if not figures:
        return result
    plan = dataclasses.replace(result.plan, assumptions={
        **result.plan.assumptions, "lookback_expected_usd": figures,
        "lookback_basis": "term" if result.plan.term is not None else "window"})
    return dataclasses.replace(result, plan=plan)
