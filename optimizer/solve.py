"""Solve the purchase MILP with HiGHS and turn the solution into a :class:`~optimizer.plan.Plan`.

Units: USD, GPUs, instances, hours (see :mod:`optimizer.problem`). The plan's ``expected`` block is not
the LP objective but the plan billed by :mod:`optimizer.billing` on each demand scenario, so the
numbers users see follow the published serving rule exactly (with p10/p90, CVaR90 in USD and the
break-even month).

GPU models are solved one MILP each unless a CVaR weight or a committed-spend cap links them (then one joint
MILP). An unmeetable budget raises one line naming the binding constraints and the smallest budget that works.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pulp

from optimizer import catalog as C
from optimizer.billing import model_cost_arrays
from optimizer.inputs import Offers, PlanConfig, PlanningError, Scenarios, offers_for, scenarios_from_forecast
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpotAllowance, Term, TermSpot
from optimizer.problem import CVAR_ALPHA, BuiltProblem, GpuModelVars, build_problem
from optimizer.term import discount, month_discounts
from usage import schema as S

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlanResult:
    """A plan and how it was obtained.

    Attributes:
        plan: the purchase plan.
        scenarios: the demand scenarios it was optimised for.
        scenario_costs: per scenario name, the billed totals over the window (USD, GPU-hours).
        lp_objective_usd: the model's expected cost over the window (undiscounted). With every hour a cell the
            billed ``plan.expected.total_usd`` equals it up to the MIP gap (never above it: spot allowances are
            rounded up); with load-duration bins they differ by the binning (0.01% at the scale benchmark).
        build_seconds / solve_seconds: time to build the model and to solve it.
        status: solver status text.
        lp_present_value_usd: the model's objective: expected cost over the horizon in present value (USD).
        horizon_costs: per scenario name, the billed totals over the horizon (window and tail; USD, GPU-hours,
            ``present_value_usd``); equal to ``scenario_costs`` plus a present value for a window-only plan.
    """

    plan: Plan
    scenarios: Scenarios
    scenario_costs: dict[str, dict[str, float]]
    lp_objective_usd: float
    build_seconds: float
    solve_seconds: float
    status: str
    lp_present_value_usd: float | None = None
    horizon_costs: dict[str, dict[str, float]] | None = None


MIP_GAP = 1e-4
"""Relative optimality gap at which HiGHS stops (0.01% of expected cost)."""
JOINT_MIP_GAP = 5e-4
"""The gap for one joint MILP over all GPU models (risk weight or commitment cap): 0.05% of the objective.
At the scale benchmark's size the root cuts close the gap to about 0.02% in 25 s but proving 0.01% takes over
60 s on 2 busy cores (docs/benchmarks.md); plans billed hour by hour differ far more than that from the model."""
_BANNER_SILENCED = False


def _silence_highs_banner() -> None:
    """HiGHS prints a copyright banner to the process's stdout when its first solver object is made,
    whatever the output options; make that first object with stdout pointed at /dev/null."""
    global _BANNER_SILENCED
    if _BANNER_SILENCED:
        return
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_SILENCED = True


class InfeasiblePlan(PlanningError):
    """The solver proved that no plan meets every constraint."""


def solve_problem(built: BuiltProblem, time_limit_s: float, gap: float = MIP_GAP) -> str:
    """Run HiGHS to a relative gap; raise PlanningError naming the blocking constraints when there is no plan."""
    _silence_highs_banner()
    solver = pulp.HiGHS(msg=False, timeLimit=time_limit_s, gapRel=gap)
    built.prob.solve(solver)
    status = pulp.LpStatus[built.prob.status]
    if status == "Optimal":
        # PuLP reports a time-limited solve that found an integer plan as Optimal; the solution status tells.
        if built.prob.sol_status == pulp.LpSolutionIntegerFeasible:
            return "time limit reached (best plan found)"
        return status
    if status == "Infeasible":
        groups = "; ".join(sorted(set(built.constraint_labels.values())))
        raise InfeasiblePlan(f"no plan satisfies all constraints ({groups})")
    if status == "Not Solved" and built.prob.objective.value() is not None:
        return "time limit reached (best plan found)"
    raise PlanningError(f"the solver stopped with status '{status}' (fix: raise the time limit)")


def _spot_max_instances(handle: GpuModelVars) -> list[int]:
    """Spot instances to allow per spot option (cheapest first): the most useful spot GPUs the MILP serves in
    any cell, rounded up to whole instances (within the type's spot capacity, which the MILP respects).

    Rounding up never raises the bill: spot is billed per useful GPU-hour served (pro rata) and the serving
    rule holds spot to the spot share, so a larger allowance serves at least as much of the demand at the
    spot rate and never more than the share; on hourly cells the bill then equals the MILP optimum.
    """
    counts = []
    for opt, cells in zip(handle.offers.spot_options, handle.spot, strict=True):
        useful = opt["gpu_count"] / (1.0 + opt["rework_fraction"])
        used = max((v.value() or 0.0 for v in cells.values()), default=0.0)
        m = math.ceil(used / useful - 1e-6) if used > 1e-6 else 0
        if opt.get("max_instances") is not None:
            m = min(m, int(opt["max_instances"]))
        counts.append(m)
    return counts


@dataclass(frozen=True)
class _Solved:
    handles: tuple[GpuModelVars, ...]
    status: str
    objective: float            # the model's present value over the horizon (USD)
    window_cost: float          # the model's expected cost over the window (USD)
    build_seconds: float
    solve_seconds: float
    savings_plans: tuple = ()   # (SpOffer, commitment USD per hour, start, firm) of each savings plan bought


@dataclass(frozen=True)
class _Owned:
    """Owned commitments of one GPU model over the horizon: GPUs per hour (window then tail) and their sunk cost
    over the window (USD) and over the horizon in present value (USD)."""

    capacity: np.ndarray
    window_usd: float
    present_value_usd: float


def _optimise(scenarios: Scenarios, offers: dict[str, Offers], config: PlanConfig, existing: dict[str, _Owned],
              say: Progress, joint: bool = False, objective: str = "cost", sp: tuple = ()) -> _Solved:
    """Build and solve: one MILP per GPU model when nothing links them, else one joint MILP.

    Savings plans (``sp``, :func:`optimizer.savings_plans.sp_offers`) link the GPU models they cover hour by hour, so
    with any savings plan on offer all GPU models are solved as one joint MILP on joint cells
    (:func:`optimizer.problem.split_cells`).

    A budget alone does not link the models unless ``joint`` (the cheapest plan of each model together is checked
    by :func:`make_plan` against the budget first). ``objective="window"`` minimises the expected cost over the
    window instead (the smallest budget that works).
    """
    joint = joint or config.coupled or bool(sp)
    if joint:
        groups = [scenarios]
    else:
        groups = [scenarios.only(g) for g in scenarios.gpu_models]
        config = replace(config, budget_usd=None)
    handles, statuses, value, window = [], [], 0.0, 0.0
    bought: list = []
    build_s = solve_s = 0.0
    for i, sc in enumerate(groups, 1):
        t0 = time.perf_counter()
        mine = [g for g in sc.gpu_models if g in existing]
        if sp and OWNED_SAVINGS_PLANS in existing:                 # owned savings plans: sunk, in the joint MILP
            mine.append(OWNED_SAVINGS_PLANS)
        built = build_problem(sc, offers, config,
                              existing_capacity={g: existing[g].capacity for g in mine if g in sc.gpu_models},
                              existing_cost_usd=sum(existing[g].present_value_usd for g in mine),
                              existing_window_usd=sum(existing[g].window_usd for g in mine), sp_offers=sp)
        if objective == "window":
            built.prob.setObjective(built.window_cost)
        t1 = time.perf_counter()
        say(f"solving {', '.join(sc.gpu_models)} with HiGHS ({built.prob.numVariables()} variables, "
            f"{built.prob.numConstraints()} constraints) [{i}/{len(groups)}]")
        statuses.append(solve_problem(built, config.time_limit_s, JOINT_MIP_GAP if joint else MIP_GAP))
        solve_s += time.perf_counter() - t1
        build_s += t1 - t0
        handles.extend(built.models)
        bought.extend((o, float(v.value() or 0.0), start, firm) for o, v, start, firm in zip(
            built.sp_offers, built.sp_commit, built.sp_starts, built.sp_firm, strict=True)
            if o.fixed_usd_per_hour is None)
        value += float(built.expected_cost.value() or 0.0)
        window += float(built.window_cost.value() or 0.0)
    status = "Optimal" if all(s == "Optimal" for s in statuses) else "; ".join(sorted(set(statuses)))
    return _Solved(tuple(handles), status, value, window, build_s, solve_s,
                   tuple(b for b in bought if round(b[1], 3) > 0))


def _budget_error(scenarios: Scenarios, offers_of: Callable[[PlanConfig], dict[str, Offers]], config: PlanConfig,
                  existing: dict[str, _Owned], sp: tuple = ()) -> PlanningError:
    """One line naming what holds the window's cost above the budget and the smallest budget that works.

    The smallest budget is the least expected window cost any plan under the other guardrails reaches (a solve
    that minimises the window's cost; on hourly cells the serving rule bills exactly that). Each other guardrail is
    relaxed in turn; one whose relaxation lowers that least cost is binding too.
    """
    quiet: Progress = lambda _m: None  # noqa: E731
    free_config = replace(config, budget_usd=None, cvar_weight=0.0)
    base = _optimise(scenarios, offers_of(free_config), free_config, existing, quiet, objective="window",
                     sp=sp).window_cost
    binding = []
    relaxations = []
    if config.max_obligation_usd is not None or config.max_commit_share is not None:
        limit = (f"{config.max_obligation_usd:,.0f} USD" if config.max_obligation_usd is not None
                 else f"{config.max_commit_share:.0%} of the plan's cost")
        relaxations.append((f"max commitment ({limit})",
                            replace(free_config, max_obligation_usd=None, max_commit_share=None)))
    if config.allow_spot and any(config.spot_share_for(g) < 1.0 for g in scenarios.gpu_models):
        shares = sorted({f"{config.spot_share_for(g):.0%}" for g in scenarios.gpu_models})
        relaxations.append((f"spot cap (max spot share {', '.join(shares)})",
                            replace(free_config, max_spot_share=1.0, spot_share_by_model=())))
    if config.allow_spot and config.spot_capacity:
        caps = ", ".join(f"{t} at most {n}" for t, n in config.spot_capacity)
        relaxations.append((f"spot capacity ({caps} instances)", replace(free_config, spot_capacity=())))
    for label, relaxed in relaxations:
        cost = _optimise(scenarios, offers_of(relaxed), relaxed, existing, quiet, objective="window",
                         sp=sp).window_cost
        if cost < base * (1 - 1e-6) - 1e-6:
            binding.append(label)
    if not binding:
        binding.append("capacity (all demand must be served at the cheapest prices on offer)")
    smallest = math.ceil(base - 1e-6)
    return PlanningError(f"no plan fits the budget of {config.budget_usd:,.0f} USD: binding constraints are the "
                         f"budget and {'; '.join(binding)}; the smallest budget that works is {smallest:,} USD "
                         f"(fix: --budget {smallest} or relax a binding constraint)")


def horizon_index(scenarios: Scenarios) -> pd.DatetimeIndex:
    """Every hour the scenarios cover: the window, then the tail."""
    return scenarios.hours.append(scenarios.tail_hours) if scenarios.has_tail else scenarios.hours


OWNED_SAVINGS_PLANS = "(owned savings plans)"
"""Key of the owned savings plans' sunk cost among the owned commitments per GPU model."""


def _existing(config: PlanConfig, scenarios: Scenarios) -> dict[str, _Owned]:
    """Per GPU model: GPUs of owned commitments per hour of the horizon and their (sunk) cost, as
    :mod:`optimizer.billing` counts them (effective rate per active hour)."""
    if not config.existing:
        return {}
    hours = horizon_index(scenarios)
    w = len(scenarios.hours)
    df = month_discounts(hours, config.start, config.cost_of_capital)
    out = {}
    owned_sp = np.zeros(len(hours))
    for c in config.existing:
        if c.is_savings_plan:
            owned_sp += c.active(hours).to_numpy(dtype=float) * c.count * c.effective_hourly_usd
    if owned_sp.any():
        out[OWNED_SAVINGS_PLANS] = _Owned(np.zeros(len(hours)), float(owned_sp[:w].sum()), float((owned_sp * df).sum()))
    for g in scenarios.gpu_models:
        capacity = np.zeros(len(hours))
        usd = np.zeros(len(hours))
        for c in config.existing:
            if c.gpu_model == g and not c.is_savings_plan:
                active = c.active(hours).to_numpy(dtype=float)
                capacity += active * c.gpus
                usd += active * c.count * c.effective_hourly_usd
        if capacity.any():
            out[g] = _Owned(capacity, float(usd[:w].sum()), float((usd * df).sum()))
    return out


def cvar(values: np.ndarray, weights: np.ndarray, alpha: float = CVAR_ALPHA) -> float:
    """Conditional value at risk: the weighted mean of the worst ``1 - alpha`` of the weight (USD)."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    order = np.argsort(-values, kind="stable")
    v, w = values[order], weights[order] / weights.sum()
    tail = 1.0 - alpha
    take = np.clip(tail - (np.cumsum(w) - w), 0.0, w)
    return float((take * v).sum() / tail)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles of a weighted sample (each value stands for its weight, placed at the middle of its share of
    the cumulative weight; linear in between, the extremes beyond). With equal weights this is numpy's
    ``hazen`` method. The weighted mean always lies between the smallest and the largest value."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order] / weights.sum()
    mid = np.cumsum(w) - w / 2.0
    return [float(np.interp(q, mid, v)) for q in qs]


def break_even_month(plan: Plan, scenarios: Scenarios, flexible_saving: np.ndarray | None = None
                     ) -> tuple[str | None, bool]:
    """First calendar month (``YYYY-MM``) from which the plan's cumulative cash saving against all
    on-demand stays positive, counting each new commitment's upfront payment in its start hour and its
    recurring rate per active hour (owned commitments at their effective rate).

    Returns:
        The month and whether it is projected. With a tail (a plan judged over its terms) the saving is the
        scenarios' expected saving hour by hour to the horizon's end, nothing projected; None when it does not
        turn positive by then. Judged on the window alone, a 1-year all-upfront commitment rarely pays back within
        a window of weeks, so when the saving is still negative at the window's end the month is projected by
        assuming the window's average hourly saving before upfront payments continues until the last new
        commitment's term ends; (None, False) when it never pays back within that term.

    ``flexible_saving`` (:attr:`Money.flexible_saving`) skips billing the scenarios again.
    """
    hours = horizon_index(scenarios)
    saving = (np.array(flexible_saving, dtype=float) if flexible_saving is not None
              else evaluate(plan, scenarios, 0.0).flexible_saving.copy())
    upfront = np.zeros(len(hours))
    term_end = hours[-1] + pd.Timedelta(hours=1)
    for c in plan.commitments:
        if c.gpu_model not in scenarios.gpu_models and not c.is_savings_plan:
            continue
        active = c.active(hours).to_numpy(dtype=float)
        if c.existing:
            saving -= active * c.count * c.effective_hourly_usd
            continue
        saving -= active * c.count * c.hourly_usd_per_instance
        at = hours.get_indexer([c.start])[0]
        if at >= 0:
            upfront[at] += c.count * c.upfront_usd_per_instance
        term_end = max(term_end, c.expiry)
    months = hours.to_period("M")
    monthly = pd.Series(saving - upfront).groupby(np.asarray(months.astype(str))).sum().sort_index()
    cumulative = monthly.cumsum().to_numpy()
    positive = cumulative > 1e-6
    if positive[-1]:
        last_bad = np.flatnonzero(~positive)
        first = 0 if last_bad.size == 0 else int(last_bad[-1]) + 1
        return str(monthly.index[first]), False
    if scenarios.has_tail:
        return None, False
    rate = float(saving.mean())                  # USD per hour saved before upfront payments
    if rate <= 0:
        return None, False
    window_end = hours[-1] + pd.Timedelta(hours=1)
    gap_hours = float(-cumulative[-1] / rate)
    if gap_hours > (term_end - window_end) / pd.Timedelta(hours=1):   # compared in hours: a tiny saving rate
        return None, False                                             # would overflow pd.Timedelta
    return str((window_end + pd.Timedelta(hours=gap_hours)).to_period("M")), True


def _scenarios_assumption(weights: dict[str, float]) -> dict:
    """plan.json's ``assumptions['scenarios']``: a few named scenarios by weight, else the sample paths and the
    replayed history days (``history*`` names, :func:`optimizer.inputs.scenarios_with_history`) with their
    total weights."""
    if len(weights) <= 5:
        return {n: float(x) for n, x in weights.items()}
    past = [n for n in weights if n.startswith("history")]
    if not past:
        return {"sample_paths": len(weights), "weight_each": 1.0 / len(weights)}
    n_paths = len(weights) - len(past)
    history_weight = round(float(sum(weights[n] for n in past)), 9)
    return {"sample_paths": n_paths, "weight_each": round((1.0 - history_weight) / max(n_paths, 1), 9),
            "history_days": len(past), "history_weight": history_weight}


def _uncommitted(plan: Plan, offers: dict[str, Offers], catalog: C.Catalog, config: PlanConfig) -> dict:
    """Why GPU models get no new commitment when the reason is the catalog, not the demand: plan.json's
    ``no_commitment_reason`` (when nothing new is bought; else the optimizer's own choice is the reason) and one
    note per such model."""
    bought = {c.gpu_model for c in plan.commitments if not c.existing and not c.is_savings_plan}
    bought |= {r.gpu_model for c in plan.commitments if c.is_savings_plan and not c.existing for r in c.sp_rates}
    priceless = {}
    for g, o in offers.items():
        if g in bought or not o.commitments.empty:
            continue
        rows = catalog.offers(config.region, g, config.instance_types)
        listed = rows[rows[C.PURCHASE_OPTION].isin(config.options)]
        priceless[g] = (f"the catalog has no commitment price for {g} in {config.region} under the options "
                        "considered" if listed.empty else
                        f"no commitment option for {g} in {config.region} costs less than its on-demand price")
    if not priceless:
        return {}
    out: dict = {"notes": [*plan.assumptions.get("notes", []),
                           *(f"{why}: {g} is served by spot and on-demand only" for g, why in priceless.items())]}
    if not bought:
        rest = [g for g in offers if g not in priceless]
        out["no_commitment_reason"] = "; ".join(
            [*priceless.values(), *([f"for {', '.join(rest)}, demand is too uncertain or too low over the terms "
                                     "for a commitment to pay off"] if rest else [])])
    return out


def make_plan(forecast: pd.DataFrame | None, catalog: C.Catalog, config: PlanConfig, *,
              scenarios: Scenarios | None = None,
              progress: Progress | None = None) -> PlanResult:
    """Choose commitments (laddered by month if asked), spot allowances and on-demand for the window, each
    commitment judged over the scenarios' horizon (its whole term when the scenarios carry a tail).

    Args:
        forecast: forecast frame (``team, gpu_type, timestamp, mean, p10, p50, p90``) covering the window.
        catalog: price catalog.
        config: window, region, allowed types/options, spot policy, guardrails, owned commitments, risk weight,
            cost of capital.
        scenarios: demand scenarios to plan over (default: the forecast's p10/p50/p90 paths, window only;
            :mod:`optimizer.term` builds scenarios over the whole term).
        progress: optional callback receiving one line per step.

    Raises:
        PlanningError: one line naming the blocking input or constraint (for a budget, the binding
            constraints and the smallest budget that works).
    """
    say = progress or (lambda _msg: None)
    if scenarios is None:
        scenarios = scenarios_from_forecast(forecast, config)
    # Owned commitments of a GPU model with no demand are still paid in their active hours: plan that model with
    # zero demand so the plan bills them (and prices it at its cheapest on-demand rate, whatever the allowed types).
    horizon = horizon_index(scenarios)
    idle = sorted({c.gpu_model for c in config.existing if c.active(horizon).any() and not c.is_savings_plan}
                  - set(scenarios.gpu_models))
    if idle:
        zeros = np.zeros((len(scenarios.names), len(scenarios.hours)))
        tail_zeros = np.zeros((len(scenarios.names), len(scenarios.tail_hours)))
        scenarios = replace(scenarios, gpu_models=tuple(sorted((*scenarios.gpu_models, *idle))),
                            demand={**scenarios.demand, **{g: zeros.copy() for g in idle}},
                            tail={**scenarios.tail, **{g: tail_zeros.copy() for g in idle}} if scenarios.has_tail
                            else scenarios.tail)

    def offers_of(cfg: PlanConfig) -> dict[str, Offers]:
        return {g: offers_for(catalog, g, replace(cfg, instance_types=None) if g in idle else cfg)
                for g in scenarios.gpu_models}

    offers = offers_of(config)
    existing = _existing(config, scenarios)
    from optimizer.savings_plans import owned_offers, sp_offers

    sp = sp_offers(catalog, config, scenarios.gpu_models,
                   {g: o.on_demand_usd_per_gpu_hour for g, o in offers.items()})
    sp = (*sp, *owned_offers(config.existing, horizon, scenarios.gpu_models))
    try:
        solved = _optimise(scenarios, offers, config, existing, say, sp=sp)
    except InfeasiblePlan:
        if config.budget_usd is None:
            raise
        raise _budget_error(scenarios, offers_of, config, existing, sp) from None
    budget = config.budget_usd
    if budget is not None and not config.coupled and solved.window_cost > budget + 1e-6 * max(budget, 1.0):
        # The cheapest plan over the horizon costs more than the budget inside the window: another plan may not
        # (e.g. more commitments lower the window's cost), so solve again with the budget as a row of one MILP.
        say("the cheapest plan is above the budget: solving again with the budget as a constraint")
        try:
            solved = _optimise(scenarios, offers, config, existing, say, joint=True, sp=sp)
        except InfeasiblePlan:
            raise _budget_error(scenarios, offers_of, config, existing, sp) from None
    plan, scenario_costs, horizon_costs = _read_plan(solved.handles, scenarios, catalog, config,
                                                     solved.savings_plans)
    plan = replace(plan, assumptions={**plan.assumptions, "model_expected_usd": round(solved.window_cost, 2),
                                      "model_present_value_usd": round(solved.objective, 2),
                                      **_uncommitted(plan, offers, catalog, config)})
    result = PlanResult(plan=plan, scenarios=scenarios, scenario_costs=scenario_costs,
                        lp_objective_usd=solved.window_cost, build_seconds=solved.build_seconds,
                        solve_seconds=solved.solve_seconds, status=solved.status,
                        lp_present_value_usd=solved.objective, horizon_costs=horizon_costs)
    if scenarios.has_tail and plan.commitments:
        from optimizer.finance import payment_choices

        choices = payment_choices(result, catalog, config.options, config.region)
        result = replace(result, plan=replace(plan, assumptions={**plan.assumptions, "payment_choice": choices}))
        plan = result.plan
    if budget is not None and plan.expected.total_usd > budget + 1e-6 * max(budget, 1.0) + 0.01:
        # the model's window cost fits; the bill (hour by hour) is above it only by the binning
        raise _budget_error(scenarios, offers_of, config, existing, sp)
    say(f"plan ready: expected {plan.expected.total_usd:,.0f} USD vs "
        f"{plan.expected.all_on_demand_usd:,.0f} USD all on-demand over the window")
    return result


def _read_plan(handles: tuple[GpuModelVars, ...], scenarios: Scenarios, catalog: C.Catalog,
               config: PlanConfig, savings_plans: tuple = ()
               ) -> tuple[Plan, dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """The solver's counts as a plan: commitments per start month (firm in the first purchase period, tentative
    later), spot allowances (whole instances, carrying the spot share the serving rule enforces), spot after the
    window, on-demand rates; then billed hour by hour on every scenario over the window and the horizon."""
    commitments = list(config.existing)
    rates = []
    term_spot = []
    for handle in handles:
        rows = handle.offers.commitments
        first = handle.periods.purchase[0]
        for (k, m), var in sorted(handle.counts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            count = int(round(var.value() or 0.0))
            if count <= 0:
                continue
            r = rows.iloc[k]
            commitments.append(Commitment(
                instance_type=str(r[C.INSTANCE_TYPE]), purchase_option=str(r[C.PURCHASE_OPTION]), count=count,
                start=handle.periods.start_time(m), hourly_usd_per_instance=float(r[C.RECURRING_HOURLY]),
                upfront_usd_per_instance=float(r[C.UPFRONT]), gpu_model=handle.gpu_model,
                gpus_per_instance=float(r[C.GPU_COUNT]), term_hours=int(r[C.TERM_HOURS_COL]),
                firm=bool(m == first) if scenarios.has_tail or config.ladder else None,
                rate_is_estimate=bool(r.get(C.RATE_IS_ESTIMATE, False))))
        rates.append(OnDemandRate(gpu_model=handle.gpu_model, instance_type=handle.offers.on_demand_instance_type,
                                  usd_per_gpu_hour=handle.offers.on_demand_usd_per_gpu_hour))
        for o in handle.offers.spot_options:
            term_spot.append(TermSpot(gpu_model=handle.gpu_model, instance_type=str(o["instance_type"]),
                                      gpus_per_instance=float(o["gpu_count"]),
                                      usd_per_instance_hour=float(o["usd_per_instance_hour"]),
                                      rework_fraction=float(o["rework_fraction"]),
                                      max_spot_share=float(handle.offers.spot_share),
                                      max_instances=o.get("max_instances")))
    for o, usd, start, first in savings_plans:
        c = round(usd, 3)                  # AWS sells savings plans in steps of 0.001 USD per hour
        commitments.append(Commitment(
            instance_type="", purchase_option=o.option, count=1, start=start,
            hourly_usd_per_instance=c * (1.0 - o.upfront_share), upfront_usd_per_instance=c * o.upfront_share
            * o.term_hours, gpu_model=", ".join(o.gpu_models) if o.family is not None else "any GPU model",
            gpus_per_instance=0.0, term_hours=o.term_hours,
            firm=bool(first) if scenarios.has_tail or config.ladder else None,
            commitment_usd_per_hour=c, instance_family=o.family, sp_rates=o.rates,
            rate_is_estimate=o.rate_is_estimate))
    term = (Term(horizon_end=scenarios.horizon_end, cost_of_capital=config.cost_of_capital, spot=tuple(term_spot))
            if scenarios.has_tail else None)
    committed_only = Plan(window_start=config.start, window_end=config.end, region=config.region,
                          commitments=tuple(commitments), spot=(), on_demand=tuple(rates),
                          expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0), term=term)
    spots = []
    for handle in handles:
        off = handle.offers
        for o, m in zip(off.spot_options, _spot_max_instances(handle), strict=True):
            if m > 0:
                spots.append(SpotAllowance(
                    instance_type=o["instance_type"], max_instances=m, gpu_model=handle.gpu_model,
                    gpus_per_instance=o["gpu_count"], usd_per_instance_hour=o["usd_per_instance_hour"],
                    rework_fraction=o["rework_fraction"], interruption_bucket=o["interruption_bucket"],
                    max_spot_share=off.spot_share))

    draft = replace(committed_only, spot=tuple(spots))
    money = evaluate(draft, scenarios, config.cost_of_capital)
    scenario_costs = money.window
    w = dict(zip(scenarios.names, scenarios.weights, strict=True))

    def expect(key: str, costs: dict[str, dict[str, float]] = scenario_costs) -> float:
        return float(sum(w[s] * costs[s][key] for s in scenarios.names))

    totals = np.array([scenario_costs[n]["total_usd"] for n in scenarios.names])
    if S.P10 in scenario_costs and S.P90 in scenario_costs:
        p10, p90 = scenario_costs[S.P10]["total_usd"], scenario_costs[S.P90]["total_usd"]
    else:
        p10, p90 = weighted_quantiles(totals, scenarios.weights, (0.1, 0.9))
    used = expect("committed_used_gpus")
    capacity = expect("committed_capacity_gpus")
    new = [c for c in commitments if not c.existing]
    # Break-even is when new commitments pay back against on-demand: without any there is nothing to pay back.
    even_month, projected = break_even_month(draft, scenarios, money.flexible_saving) if new else (None, False)
    obligation = float(sum(c.obligation_usd for c in new))
    window_hours = pd.date_range(config.start, config.end, freq="h", inclusive="left")
    in_window = float(sum(c.count * c.effective_hourly_usd * float(c.active(window_hours).sum()) for c in new))
    by_month: dict[str, float] = {}
    for c in new:
        if c.upfront_usd_per_instance > 0:
            key = f"{c.start:%Y-%m}"
            by_month[key] = by_month.get(key, 0.0) + c.count * c.upfront_usd_per_instance
    finance = {}
    if scenarios.has_tail:
        h = money.horizon
        h_totals = np.array([h[n]["total_usd"] for n in scenarios.names])
        hp10, hp90 = weighted_quantiles(h_totals, scenarios.weights, (0.1, 0.9))
        h_cap = expect("committed_capacity_gpus", h)
        finance = dict(horizon_total_usd=expect("total_usd", h), horizon_p10_usd=hp10, horizon_p90_usd=hp90,
                       horizon_all_on_demand_usd=expect("all_on_demand_usd", h),
                       horizon_committed_usd=expect("committed_usd", h), horizon_spot_usd=expect("spot_usd", h),
                       horizon_on_demand_usd=expect("on_demand_usd", h),
                       present_value_usd=expect("present_value_usd", h),
                       present_value_all_on_demand_usd=expect("present_value_all_on_demand_usd", h),
                       horizon_commitment_utilization=(expect("committed_used_gpus", h) / h_cap) if h_cap > 0 else None)
    expected = Expected(
        total_usd=expect("total_usd"), committed_usd=expect("committed_usd"), spot_usd=expect("spot_usd"),
        on_demand_usd=expect("on_demand_usd"), all_on_demand_usd=expect("all_on_demand_usd"),
        total_p10_usd=p10, total_p90_usd=p90,
        upfront_usd=float(sum(c.count * c.upfront_usd_per_instance for c in new)),
        commitment_utilization=(used / capacity) if capacity > 0 else None,
        cvar90_usd=cvar(totals, scenarios.weights), break_even_month=even_month, break_even_projected=projected,
        obligation_total_usd=obligation if new else 0.0, obligation_after_window_usd=max(obligation - in_window, 0.0),
        upfront_by_month=dict(sorted(by_month.items())), **finance)
    draft = replace(draft, commitments=tuple(
        replace(c, expected_utilization=money.utilization.get(i)) for i, c in enumerate(draft.commitments)))
    assumptions = {
        "scenarios": _scenarios_assumption(w),
        "options_considered": list(config.options),
        "allow_spot": config.allow_spot, "max_spot_share": config.max_spot_share,
        "growth": config.growth, "team_growth": dict(config.team_growth),
        "spot_rework": {"checkpoint_interval_hours": config.checkpoint_interval_hours,
                        "restart_overhead_hours": config.restart_overhead_hours},
        "instance_types": list(config.instance_types) if config.instance_types else None,
        "catalog": {"path": catalog.path, "snapshot_dates": list(catalog.snapshot_dates(config.region))},
        "horizon": "term" if scenarios.has_tail else "window",
        "cost_of_capital": config.cost_of_capital,
        "commitment_cost_basis": _cost_basis(config, scenarios),
        "ladder": config.ladder,
        "guardrails": {"budget_usd": config.budget_usd, "max_obligation_usd": config.max_obligation_usd,
                       "max_commit_share": config.max_commit_share,
                       "needs_approval": list(config.needs_approval), "approved": list(config.approved),
                       "spot_share_by_model": dict(config.spot_share_by_model),
                       "spot_capacity": dict(config.spot_capacity),
                       "within_budget": (None if config.budget_usd is None
                                         else bool(expected.total_usd <= config.budget_usd * (1 + 1e-6) + 1e-6))},
        "risk": {"cvar_weight": config.cvar_weight, "cvar_alpha": CVAR_ALPHA},
        "existing_commitments": len(config.existing),
        "notes": list(scenarios.notes),
    }
    return replace(draft, expected=expected, assumptions=assumptions), scenario_costs, money.horizon


def _cost_basis(config: PlanConfig, scenarios: Scenarios) -> str:
    if scenarios.has_tail:
        starts = ("new commitments may start in any month of the horizon (after the first: tentative)"
                  if config.ladder else "new commitments start at the window start")
        return (f"each commitment judged over its whole term to {scenarios.horizon_end:%Y-%m-%d} (the window hour "
                f"by hour, then each month of the long-term forecast); {starts}; cash flows discounted at "
                f"{config.cost_of_capital:.0%} a year")
    return ("effective hourly rate charged for every covered window hour; "
            + ("laddered: new commitments may start at each calendar month" if config.ladder
               else "all commitments start at the window start (window taken as representative of the term)"))


@dataclass(frozen=True)
class Money:
    """A plan billed on scenarios: per scenario name, the window's totals and the horizon's (with
    ``present_value_usd`` and ``present_value_all_on_demand_usd``); per commitment (index into
    ``plan.commitments``), its expected utilisation over its active hours in the horizon."""

    window: dict[str, dict[str, float]]
    horizon: dict[str, dict[str, float]]
    utilization: dict[int, float]
    flexible_saving: np.ndarray
    """Per hour of the horizon, the expected saving of spot and on-demand against all on-demand (USD; what
    commitments make possible before their own charges)."""


def commitment_present_value(c: Commitment, hours: pd.DatetimeIndex, df: np.ndarray, origin: pd.Timestamp,
                             rate: float) -> float:
    """Present value (USD) of one commitment's cash flows inside ``hours``: for a new one its upfront payment at
    its start, pro rata when its term runs past the horizon, and its recurring rate per active hour; for an owned
    one its effective rate per active hour (sunk)."""
    active = c.active(hours).to_numpy(dtype=bool)
    if not active.any():
        return 0.0
    if c.existing:
        return float(c.count * c.effective_hourly_usd * df[active].sum())
    share = float(active.sum()) / c.term_hours
    at = (c.start - origin) / pd.Timedelta(hours=1)
    return float(c.count * (c.upfront_usd_per_instance * share * discount(at, rate)
                            + c.hourly_usd_per_instance * df[active].sum()))


def evaluate(plan: Plan, scenarios: Scenarios, rate: float) -> Money:
    """Bill the plan hour by hour on every scenario, over the window (the serving rule) and the tail (the tail
    rule), with present values at ``rate`` and each commitment's expected utilisation."""
    hours = horizon_index(scenarios)
    w = len(scenarios.hours)
    df = month_discounts(hours, plan.window_start, rate)
    weights = np.asarray(scenarios.weights, dtype=float)
    window = {name: {} for name in scenarios.names}
    horizon = {name: {} for name in scenarios.names}
    used_hour: dict[str, np.ndarray] = {}
    saving = np.zeros(len(hours))
    keys = ("demand_gpus", "committed_capacity_gpus", "committed_used_gpus", "spot_gpus", "on_demand_gpus",
            "committed_usd", "spot_usd", "on_demand_usd", "all_on_demand_usd")
    win_arrays, sp_used = model_cost_arrays(plan, {g: scenarios.demand[g] for g in scenarios.gpu_models},
                                            scenarios.hours)
    tail_arrays, sp_used_tail = (model_cost_arrays(plan, {g: scenarios.tail_of(g) for g in scenarios.gpu_models},
                                                   scenarios.tail_hours, tail=True) if scenarios.has_tail
                                 else ({}, {}))
    for g in scenarios.gpu_models:
        arrays = win_arrays[g]
        tail = tail_arrays.get(g)
        used = weights @ (arrays["committed_used_gpus"] - arrays.get("sp_covered_gpus", 0.0))    # instance
        if tail is not None:                                                                      # commitments'
            used = np.concatenate([used, weights @ (tail["committed_used_gpus"] - tail.get("sp_covered_gpus", 0.0))])
        used_hour[g] = used
        saving[:w] += weights @ (arrays["all_on_demand_usd"] - arrays["spot_usd"] - arrays["on_demand_usd"])
        if tail is not None:
            saving[w:] += weights @ (tail["all_on_demand_usd"] - tail["spot_usd"] - tail["on_demand_usd"])
        for key in keys:
            win = np.broadcast_to(arrays[key], scenarios.demand[g].shape).sum(axis=1)
            full = win + (np.broadcast_to(tail[key], scenarios.tail_of(g).shape).sum(axis=1) if tail is not None
                          else 0.0)
            for si, name in enumerate(scenarios.names):
                window[name][key] = window[name].get(key, 0.0) + float(win[si])
                horizon[name][key] = horizon[name].get(key, 0.0) + float(full if np.isscalar(full) else full[si])
        flexible = arrays["spot_usd"] + arrays["on_demand_usd"]
        pv = flexible @ df[:w]
        pv_od = arrays["all_on_demand_usd"] @ df[:w]
        if tail is not None:
            pv = pv + (tail["spot_usd"] + tail["on_demand_usd"]) @ df[w:]
            pv_od = pv_od + tail["all_on_demand_usd"] @ df[w:]
        for si, name in enumerate(scenarios.names):
            horizon[name]["present_value_usd"] = horizon[name].get("present_value_usd", 0.0) + float(pv[si])
            horizon[name]["present_value_all_on_demand_usd"] = (
                horizon[name].get("present_value_all_on_demand_usd", 0.0) + float(pv_od[si]))
    commit_pv = sum(commitment_present_value(c, hours, df, plan.window_start, rate) for c in plan.commitments
                    if c.gpu_model in scenarios.gpu_models or c.is_savings_plan)
    for name in scenarios.names:
        for totals in (window[name], horizon[name]):
            totals["total_usd"] = totals["committed_usd"] + totals["spot_usd"] + totals["on_demand_usd"]
        horizon[name]["present_value_usd"] = horizon[name].get("present_value_usd", 0.0) + commit_pv
    utilization = {}
    for g, used in used_hour.items():
        lines = [(i, c) for i, c in enumerate(plan.commitments) if c.gpu_model == g]
        if not lines:
            continue
        masks = [c.active(hours).to_numpy(dtype=float) * c.gpus for _, c in lines]
        capacity = np.sum(masks, axis=0)
        share = np.divide(used, capacity, out=np.zeros_like(used), where=capacity > 0)
        for (i, _), mask in zip(lines, masks, strict=True):
            if mask.sum() > 0:
                utilization[i] = float((mask * share).sum() / mask.sum())
    for i, c in enumerate(plan.commitments):
        if not c.is_savings_plan or i not in sp_used:
            continue
        spent = weights @ np.broadcast_to(sp_used[i], (len(weights), len(scenarios.hours)))
        if i in sp_used_tail:
            spent = np.concatenate([spent, weights @ np.broadcast_to(sp_used_tail[i], (len(weights),
                                                                                       len(scenarios.tail_hours)))])
        active = c.active(hours[:len(spent)]).to_numpy(dtype=float)
        if active.sum() > 0:
            utilization[i] = float(spent.sum() / (active.sum() * c.count * c.effective_hourly_usd))
    return Money(window=window, horizon=horizon, utilization=utilization, flexible_saving=saving)


def bill_scenarios(plan: Plan, scenarios: Scenarios) -> dict[str, dict[str, float]]:
    """Bill each scenario's demand under the plan over the window; totals per scenario name."""
    out: dict[str, dict[str, float]] = {name: {} for name in scenarios.names}
    joint, _ = model_cost_arrays(plan, {g: scenarios.demand[g] for g in scenarios.gpu_models}, scenarios.hours)
    for gpu_model in scenarios.gpu_models:
        arrays = joint[gpu_model]
        for si, name in enumerate(scenarios.names):
            for key, values in arrays.items():
                out[name][key] = out[name].get(key, 0.0) + float(values[si].sum())
    for totals in out.values():
        totals["total_usd"] = totals["committed_usd"] + totals["spot_usd"] + totals["on_demand_usd"]
    return out
