"""Solve the purchase MILP with HiGHS and turn the solution into a :class:`~optimizer.plan.Plan`.

Units: USD, GPUs, instances, hours (see :mod:`optimizer.problem`). The plan's ``expected`` block is not
the LP objective but the plan billed by :mod:`optimizer.billing` on each demand scenario, so the
numbers users see follow the published serving rule exactly.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pulp

from forecasting import schema as S
from optimizer import catalog as C
from optimizer.billing import cost_arrays, pricing_for
from optimizer.inputs import PlanConfig, PlanningError, Scenarios, offers_for, scenarios_from_forecast
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpotAllowance
from optimizer.problem import BuiltProblem, build_problem

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlanResult:
    """A plan and how it was obtained.

    Attributes:
        plan: the purchase plan.
        scenarios: the demand scenarios it was optimised for.
        scenario_costs: per scenario name, the billed totals (USD, GPU-hours).
        lp_objective_usd: the solver's expected cost (a lower bound of ``plan.expected.total_usd``
            up to integer rounding of spot instances).
        build_seconds / solve_seconds: time to build the model and to solve it.
        status: solver status text.
    """

    plan: Plan
    scenarios: Scenarios
    scenario_costs: dict[str, dict[str, float]]
    lp_objective_usd: float
    build_seconds: float
    solve_seconds: float
    status: str


MIP_GAP = 1e-4
"""Relative optimality gap at which HiGHS stops (0.01% of expected cost)."""
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


def solve_problem(built: BuiltProblem, time_limit_s: float) -> str:
    """Run HiGHS; raise PlanningError naming the blocking constraints when there is no plan."""
    _silence_highs_banner()
    solver = pulp.HiGHS(msg=False, timeLimit=time_limit_s, gapRel=MIP_GAP)
    built.prob.solve(solver)
    status = pulp.LpStatus[built.prob.status]
    if status == "Optimal":
        # PuLP reports a time-limited solve that found an integer plan as Optimal; the solution status tells.
        if built.prob.sol_status == pulp.LpSolutionIntegerFeasible:
            return "time limit reached (best plan found)"
        return status
    if status == "Infeasible":
        groups = "; ".join(sorted(set(built.constraint_labels.values())))
        raise PlanningError(f"no plan satisfies all constraints ({groups})")
    if status == "Not Solved" and built.prob.objective.value() is not None:
        return "time limit reached (best plan found)"
    raise PlanningError(f"the solver stopped with status '{status}' (fix: raise the time limit)")


def _spot_max_instances(demand: np.ndarray, capacity: float, spot: dict, share: float, lp_cap: float) -> int:
    """Spot instances to allow: the LP's useful-GPU cap in whole instances, lowered until the serving
    rule's use of it (spot fills everything above the commitments up to the cap) stays within the
    spot share in every scenario."""
    useful = spot["gpu_count"] / (1.0 + spot["rework_fraction"])
    excess = np.maximum(demand - capacity, 0.0)
    if excess.max() <= 0 or lp_cap <= 1e-9:
        return 0
    hi = min(math.ceil(excess.max() / useful - 1e-9), math.ceil(lp_cap / useful - 1e-9))
    limit = share * demand.sum(axis=1) + 1e-6

    def ok(m: int) -> bool:
        return bool(np.all(np.minimum(excess, m * useful).sum(axis=1) <= limit))

    if ok(hi):
        return hi
    lo = 0  # ok(0) is always true
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def make_plan(forecast: pd.DataFrame | None, catalog: C.Catalog, config: PlanConfig, *,
              scenarios: Scenarios | None = None,
              progress: Progress | None = None) -> PlanResult:
    """Choose commitments, spot allowance and on-demand for the forecast demand of the window.

    Args:
        forecast: forecast frame (``team, gpu_type, timestamp, mean, p10, p50, p90``) covering the window.
        catalog: price catalog.
        config: window, region, allowed types/options and spot policy.
        progress: optional callback receiving one line per step.
    """
    say = progress or (lambda _msg: None)
    if scenarios is None:
        scenarios = scenarios_from_forecast(forecast, config)
    offers = {g: offers_for(catalog, g, config) for g in scenarios.gpu_models}
    # GPU models share no constraint yet, so each gets its own (much faster) MILP.
    handles, statuses, objective = [], [], 0.0
    build_s = solve_s = 0.0
    for i, gpu_model in enumerate(scenarios.gpu_models, 1):
        t0 = time.perf_counter()
        built = build_problem(scenarios.only(gpu_model), offers, config)
        t1 = time.perf_counter()
        say(f"solving {gpu_model} with HiGHS ({built.prob.numVariables()} variables, "
            f"{built.prob.numConstraints()} constraints) [{i}/{len(scenarios.gpu_models)}]")
        statuses.append(solve_problem(built, config.time_limit_s))
        solve_s += time.perf_counter() - t1
        build_s += t1 - t0
        handles.extend(built.models)
        objective += float(built.prob.objective.value() or 0.0)
    status = "Optimal" if all(s == "Optimal" for s in statuses) else "; ".join(sorted(set(statuses)))

    commitments, spots, rates = [], [], []
    for handle in handles:
        off = handle.offers
        rows = off.commitments
        cap = 0.0
        for k, var in handle.counts.items():
            count = int(round(var.value() or 0.0))
            if count <= 0:
                continue
            r = rows.iloc[k]
            cap += count * float(r[C.GPU_COUNT])
            commitments.append(Commitment(
                instance_type=str(r[C.INSTANCE_TYPE]), purchase_option=str(r[C.PURCHASE_OPTION]), count=count,
                start=config.start, hourly_usd_per_instance=float(r[C.RECURRING_HOURLY]),
                upfront_usd_per_instance=float(r[C.UPFRONT]), gpu_model=handle.gpu_model,
                gpus_per_instance=float(r[C.GPU_COUNT]), term_hours=int(r[C.TERM_HOURS_COL])))
        if off.spot is not None:
            m = _spot_max_instances(scenarios.demand[handle.gpu_model], cap, off.spot, config.max_spot_share,
                                    float(handle.spot_cap.value() or 0.0))
            if m > 0:
                spots.append(SpotAllowance(
                    instance_type=off.spot["instance_type"], max_instances=m, gpu_model=handle.gpu_model,
                    gpus_per_instance=off.spot["gpu_count"], usd_per_instance_hour=off.spot["usd_per_instance_hour"],
                    rework_fraction=off.spot["rework_fraction"], interruption_bucket=off.spot["interruption_bucket"]))
        rates.append(OnDemandRate(gpu_model=handle.gpu_model, instance_type=off.on_demand_instance_type,
                                  usd_per_gpu_hour=off.on_demand_usd_per_gpu_hour))

    draft = Plan(window_start=config.start, window_end=config.end, region=config.region,
                 commitments=tuple(commitments), spot=tuple(spots), on_demand=tuple(rates),
                 expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0))
    scenario_costs = bill_scenarios(draft, scenarios)
    w = dict(zip(scenarios.names, scenarios.weights, strict=True))

    def expect(key: str) -> float:
        return float(sum(w[s] * scenario_costs[s][key] for s in scenarios.names))

    if S.P10 in scenario_costs and S.P90 in scenario_costs:
        p10, p90 = scenario_costs[S.P10]["total_usd"], scenario_costs[S.P90]["total_usd"]
    else:
        totals = np.array([scenario_costs[n]["total_usd"] for n in scenarios.names])
        p10, p90 = (float(x) for x in np.quantile(totals, [0.1, 0.9]))
    used = expect("committed_used_gpus")
    capacity = expect("committed_capacity_gpus")
    expected = Expected(
        total_usd=expect("total_usd"), committed_usd=expect("committed_usd"), spot_usd=expect("spot_usd"),
        on_demand_usd=expect("on_demand_usd"), all_on_demand_usd=expect("all_on_demand_usd"),
        total_p10_usd=p10, total_p90_usd=p90,
        upfront_usd=float(sum(c.count * c.upfront_usd_per_instance for c in commitments)),
        commitment_utilization=(used / capacity) if capacity > 0 else None)
    assumptions = {
        "scenarios": ({n: float(x) for n, x in w.items()} if len(w) <= 5
                      else {"sample_paths": len(w), "weight_each": 1.0 / len(w)}),
        "options_considered": list(config.options),
        "allow_spot": config.allow_spot, "max_spot_share": config.max_spot_share,
        "growth": config.growth, "team_growth": dict(config.team_growth),
        "spot_rework": {"checkpoint_interval_hours": config.checkpoint_interval_hours,
                        "restart_overhead_hours": config.restart_overhead_hours},
        "instance_types": list(config.instance_types) if config.instance_types else None,
        "catalog": {"path": catalog.path, "snapshot_dates": list(catalog.snapshot_dates(config.region))},
        "commitment_cost_basis": "effective hourly rate charged for every window hour (window taken as "
                                 "representative of the term)",
    }
    plan = Plan(window_start=config.start, window_end=config.end, region=config.region,
                commitments=draft.commitments, spot=draft.spot, on_demand=draft.on_demand, expected=expected,
                assumptions=assumptions)
    say(f"plan ready: expected {expected.total_usd:,.0f} USD vs {expected.all_on_demand_usd:,.0f} USD all on-demand")
    return PlanResult(plan=plan, scenarios=scenarios, scenario_costs=scenario_costs,
                      lp_objective_usd=objective, build_seconds=build_s, solve_seconds=solve_s, status=status)


def bill_scenarios(plan: Plan, scenarios: Scenarios) -> dict[str, dict[str, float]]:
    """Bill each scenario's demand under the plan; totals per scenario name."""
    out: dict[str, dict[str, float]] = {name: {} for name in scenarios.names}
    for gpu_model in scenarios.gpu_models:
        arrays = cost_arrays(scenarios.demand[gpu_model], pricing_for(plan, gpu_model, scenarios.hours))
        for si, name in enumerate(scenarios.names):
            for key, values in arrays.items():
                out[name][key] = out[name].get(key, 0.0) + float(values[si].sum())
    for totals in out.values():
        totals["total_usd"] = totals["committed_usd"] + totals["spot_usd"] + totals["on_demand_usd"]
    return out
