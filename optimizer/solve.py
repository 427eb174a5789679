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

from forecasting import schema as S
from optimizer import catalog as C
from optimizer.billing import cost_arrays, pricing_for
from optimizer.inputs import Offers, PlanConfig, PlanningError, Scenarios, offers_for, scenarios_from_forecast
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpotAllowance
from optimizer.problem import CVAR_ALPHA, BuiltProblem, GpuModelVars, build_problem

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlanResult:
    """A plan and how it was obtained.

    Attributes:
        plan: the purchase plan.
        scenarios: the demand scenarios it was optimised for.
        scenario_costs: per scenario name, the billed totals (USD, GPU-hours).
        lp_objective_usd: the solver's expected cost. With every hour a cell the billed
            ``plan.expected.total_usd`` equals it up to the MIP gap (never above it: spot allowances are
            rounded up); with load-duration bins they differ by the binning (0.01% at the scale benchmark).
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
    objective: float
    build_seconds: float
    solve_seconds: float


def _optimise(scenarios: Scenarios, offers: dict[str, Offers], config: PlanConfig,
              existing: dict[str, tuple[np.ndarray, float]], say: Progress) -> _Solved:
    """Build and solve: one MILP per GPU model when nothing links them, else one joint MILP.

    A budget alone does not link the models: it is checked by :func:`make_plan` against the billed cost.
    """
    if config.coupled:
        groups = [scenarios]
    else:
        groups = [scenarios.only(g) for g in scenarios.gpu_models]
        config = replace(config, budget_usd=None)
    handles, statuses, objective = [], [], 0.0
    build_s = solve_s = 0.0
    for i, sc in enumerate(groups, 1):
        t0 = time.perf_counter()
        built = build_problem(sc, offers, config,
                              existing_capacity={g: existing[g][0] for g in sc.gpu_models if g in existing},
                              existing_cost_usd=sum(existing[g][1] for g in sc.gpu_models if g in existing))
        t1 = time.perf_counter()
        say(f"solving {', '.join(sc.gpu_models)} with HiGHS ({built.prob.numVariables()} variables, "
            f"{built.prob.numConstraints()} constraints) [{i}/{len(groups)}]")
        statuses.append(solve_problem(built, config.time_limit_s, JOINT_MIP_GAP if config.coupled else MIP_GAP))
        solve_s += time.perf_counter() - t1
        build_s += t1 - t0
        handles.extend(built.models)
        objective += float(built.expected_cost.value() or 0.0)
    status = "Optimal" if all(s == "Optimal" for s in statuses) else "; ".join(sorted(set(statuses)))
    return _Solved(tuple(handles), status, objective, build_s, solve_s)


def _budget_error(scenarios: Scenarios, offers_of: Callable[[PlanConfig], dict[str, Offers]], config: PlanConfig,
                  existing: dict[str, tuple[np.ndarray, float]], free: PlanResult) -> PlanningError:
    """One line naming what holds the cost above the budget and the smallest budget that works.

    ``free`` is the cheapest plan without the budget; its billed expected cost is the smallest budget that
    works (the serving rule's cost, which equals the model's on hourly cells). Each other guardrail is relaxed
    in turn; one whose relaxation lowers the cheapest cost is binding too.
    """
    quiet: Progress = lambda _m: None  # noqa: E731
    base = free.lp_objective_usd
    free_config = replace(config, budget_usd=None, cvar_weight=0.0)
    binding = []
    relaxations = []
    if config.max_commit_usd is not None or config.max_commit_share is not None:
        limit = (f"{config.max_commit_usd:,.0f} USD" if config.max_commit_usd is not None
                 else f"{config.max_commit_share:.0%} of expected cost")
        relaxations.append((f"max commitment ({limit})",
                            replace(free_config, max_commit_usd=None, max_commit_share=None)))
    if config.allow_spot and any(config.spot_share_for(g) < 1.0 for g in scenarios.gpu_models):
        shares = sorted({f"{config.spot_share_for(g):.0%}" for g in scenarios.gpu_models})
        relaxations.append((f"spot cap (max spot share {', '.join(shares)})",
                            replace(free_config, max_spot_share=1.0, spot_share_by_model=())))
    if config.allow_spot and config.spot_capacity:
        caps = ", ".join(f"{t} at most {n}" for t, n in config.spot_capacity)
        relaxations.append((f"spot capacity ({caps} instances)", replace(free_config, spot_capacity=())))
    for label, relaxed in relaxations:
        cost = _optimise(scenarios, offers_of(relaxed), relaxed, existing, quiet).objective
        if cost < base * (1 - 1e-6) - 1e-6:
            binding.append(label)
    if not binding:
        binding.append("capacity (all demand must be served at the cheapest prices on offer)")
    smallest = math.ceil(free.plan.expected.total_usd)
    return PlanningError(f"no plan fits the budget of {config.budget_usd:,.0f} USD: binding constraints are the "
                         f"budget and {'; '.join(binding)}; the smallest budget that works is {smallest:,} USD "
                         f"(fix: --budget {smallest} or relax a binding constraint)")


def _existing(config: PlanConfig, scenarios: Scenarios) -> dict[str, tuple[np.ndarray, float]]:
    """Per GPU model: GPUs of owned commitments per window hour and their (sunk) window cost in USD,
    as :mod:`optimizer.billing` counts them."""
    if not config.existing:
        return {}
    owned = Plan(window_start=config.start, window_end=config.end, region=config.region,
                 commitments=config.existing, spot=(),
                 on_demand=tuple(OnDemandRate(g, "", 0.0) for g in scenarios.gpu_models),
                 expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0))
    out = {}
    for g in scenarios.gpu_models:
        pricing = pricing_for(owned, g, scenarios.hours)
        if pricing.capacity.any():
            out[g] = (pricing.capacity, float(pricing.commit_usd.sum()))
    return out


def cvar(values: np.ndarray, weights: np.ndarray, alpha: float = CVAR_ALPHA) -> float:
    """Conditional value at risk: the weighted mean of the worst ``1 - alpha`` of the weight (USD)."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    order = np.argsort(-values, kind="stable")
    v, w = values[order], weights[order] / weights.sum()
    tail = 1.0 - alpha
    take = np.clip(tail - (np.cumsum(w) - w), 0.0, w)
    return float((take * v).sum() / tail)


def break_even_month(plan: Plan, scenarios: Scenarios) -> tuple[str | None, bool]:
    """First calendar month (``YYYY-MM``) from which the plan's cumulative cash saving against all
    on-demand stays positive, counting each new commitment's upfront payment in its start hour and its
    recurring rate per active hour (owned commitments at their effective rate).

    Returns:
        The month and whether it is projected. A 1-year all-upfront commitment rarely pays back within a
        window of weeks, so when the saving is still negative at the window's end the month is projected
        by assuming the window's average hourly saving before upfront payments continues until the last
        new commitment's term ends; (None, False) when it never pays back within that term.
    """
    hours = scenarios.hours
    saving = np.zeros(len(hours))
    for g in scenarios.gpu_models:
        arrays = cost_arrays(scenarios.demand[g], pricing_for(plan, g, hours))
        saving += scenarios.weights @ (arrays["all_on_demand_usd"] - arrays["spot_usd"] - arrays["on_demand_usd"])
    upfront = np.zeros(len(hours))
    term_end = hours[-1] + pd.Timedelta(hours=1)
    for c in plan.commitments:
        if c.gpu_model not in scenarios.gpu_models:
            continue
        active = c.active(hours).to_numpy(dtype=float)
        if c.existing:
            saving -= active * c.count * c.effective_hourly_usd
            continue
        saving -= active * c.count * c.hourly_usd_per_instance
        at = hours.get_indexer([c.start])[0]
        if at >= 0:
            upfront[at] += c.count * c.upfront_usd_per_instance
        term_end = max(term_end, c.end or c.start + pd.Timedelta(hours=c.term_hours))
    months = hours.to_period("M")
    monthly = pd.Series(saving - upfront).groupby(np.asarray(months.astype(str))).sum().sort_index()
    cumulative = monthly.cumsum().to_numpy()
    positive = cumulative > 1e-6
    if positive[-1]:
        last_bad = np.flatnonzero(~positive)
        first = 0 if last_bad.size == 0 else int(last_bad[-1]) + 1
        return str(monthly.index[first]), False
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


def make_plan(forecast: pd.DataFrame | None, catalog: C.Catalog, config: PlanConfig, *,
              scenarios: Scenarios | None = None,
              progress: Progress | None = None) -> PlanResult:
    """Choose commitments (laddered by month if asked), spot allowances and on-demand for the window.

    Args:
        forecast: forecast frame (``team, gpu_type, timestamp, mean, p10, p50, p90``) covering the window.
        catalog: price catalog.
        config: window, region, allowed types/options, spot policy, guardrails, owned commitments, risk weight.
        scenarios: demand scenarios to plan over (default: the forecast's p10/p50/p90 paths).
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
    idle = sorted({c.gpu_model for c in config.existing if c.active(scenarios.hours).any()}
                  - set(scenarios.gpu_models))
    if idle:
        zeros = np.zeros((len(scenarios.names), len(scenarios.hours)))
        scenarios = Scenarios(hours=scenarios.hours, gpu_models=tuple(sorted((*scenarios.gpu_models, *idle))),
                              names=scenarios.names, weights=scenarios.weights,
                              demand={**scenarios.demand, **{g: zeros.copy() for g in idle}})

    def offers_of(cfg: PlanConfig) -> dict[str, Offers]:
        return {g: offers_for(catalog, g, replace(cfg, instance_types=None) if g in idle else cfg)
                for g in scenarios.gpu_models}

    offers = offers_of(config)
    existing = _existing(config, scenarios)
    try:
        solved = _optimise(scenarios, offers, config, existing, say)
    except InfeasiblePlan:
        if config.budget_usd is None:
            raise
        free = make_plan(forecast, catalog, replace(config, budget_usd=None, cvar_weight=0.0), scenarios=scenarios)
        raise _budget_error(scenarios, offers_of, config, existing, free) from None
    plan, scenario_costs = _read_plan(solved.handles, scenarios, catalog, config)
    plan = replace(plan, assumptions={**plan.assumptions, "model_expected_usd": round(solved.objective, 2)})
    result = PlanResult(plan=plan, scenarios=scenarios, scenario_costs=scenario_costs,
                        lp_objective_usd=solved.objective, build_seconds=solved.build_seconds,
                        solve_seconds=solved.solve_seconds, status=solved.status)
    budget = config.budget_usd
    if budget is not None and not config.coupled and plan.expected.total_usd > budget + 1e-6 * max(budget, 1.0):
        # A budget alone leaves the cheapest plan unchanged, so its billed cost decides (the serving rule's cost,
        # which the model matches up to binning); with a risk weight or a commitment cap it is a row of the joint
        # model.
        raise _budget_error(scenarios, offers_of, config, existing, result)
    say(f"plan ready: expected {plan.expected.total_usd:,.0f} USD vs "
        f"{plan.expected.all_on_demand_usd:,.0f} USD all on-demand")
    return result


def _read_plan(handles: tuple[GpuModelVars, ...], scenarios: Scenarios, catalog: C.Catalog,
               config: PlanConfig) -> tuple[Plan, dict[str, dict[str, float]]]:
    """The solver's counts as a plan: commitments per start month, spot allowances (whole instances, carrying
    the spot share the serving rule enforces), on-demand rates; then billed hour by hour on every scenario."""
    commitments = list(config.existing)
    rates = []
    for handle in handles:
        rows = handle.offers.commitments
        for (k, m), var in sorted(handle.counts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            count = int(round(var.value() or 0.0))
            if count <= 0:
                continue
            r = rows.iloc[k]
            commitments.append(Commitment(
                instance_type=str(r[C.INSTANCE_TYPE]), purchase_option=str(r[C.PURCHASE_OPTION]), count=count,
                start=scenarios.hours[handle.period_starts[m]], hourly_usd_per_instance=float(r[C.RECURRING_HOURLY]),
                upfront_usd_per_instance=float(r[C.UPFRONT]), gpu_model=handle.gpu_model,
                gpus_per_instance=float(r[C.GPU_COUNT]), term_hours=int(r[C.TERM_HOURS_COL])))
        rates.append(OnDemandRate(gpu_model=handle.gpu_model, instance_type=handle.offers.on_demand_instance_type,
                                  usd_per_gpu_hour=handle.offers.on_demand_usd_per_gpu_hour))
    committed_only = Plan(window_start=config.start, window_end=config.end, region=config.region,
                          commitments=tuple(commitments), spot=(), on_demand=tuple(rates),
                          expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0))
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
    scenario_costs = bill_scenarios(draft, scenarios)
    w = dict(zip(scenarios.names, scenarios.weights, strict=True))

    def expect(key: str) -> float:
        return float(sum(w[s] * scenario_costs[s][key] for s in scenarios.names))

    totals = np.array([scenario_costs[n]["total_usd"] for n in scenarios.names])
    if S.P10 in scenario_costs and S.P90 in scenario_costs:
        p10, p90 = scenario_costs[S.P10]["total_usd"], scenario_costs[S.P90]["total_usd"]
    else:
        p10, p90 = (float(x) for x in np.quantile(totals, [0.1, 0.9]))
    used = expect("committed_used_gpus")
    capacity = expect("committed_capacity_gpus")
    even_month, projected = break_even_month(draft, scenarios)
    expected = Expected(
        total_usd=expect("total_usd"), committed_usd=expect("committed_usd"), spot_usd=expect("spot_usd"),
        on_demand_usd=expect("on_demand_usd"), all_on_demand_usd=expect("all_on_demand_usd"),
        total_p10_usd=p10, total_p90_usd=p90,
        upfront_usd=float(sum(c.count * c.upfront_usd_per_instance for c in commitments if not c.existing)),
        commitment_utilization=(used / capacity) if capacity > 0 else None,
        cvar90_usd=cvar(totals, scenarios.weights), break_even_month=even_month, break_even_projected=projected)
    assumptions = {
        "scenarios": _scenarios_assumption(w),
        "options_considered": list(config.options),
        "allow_spot": config.allow_spot, "max_spot_share": config.max_spot_share,
        "growth": config.growth, "team_growth": dict(config.team_growth),
        "spot_rework": {"checkpoint_interval_hours": config.checkpoint_interval_hours,
                        "restart_overhead_hours": config.restart_overhead_hours},
        "instance_types": list(config.instance_types) if config.instance_types else None,
        "catalog": {"path": catalog.path, "snapshot_dates": list(catalog.snapshot_dates(config.region))},
        "commitment_cost_basis": ("effective hourly rate charged for every covered window hour; "
                                  + ("laddered: new commitments may start at each calendar month"
                                     if config.ladder else "all commitments start at the window start (window "
                                                           "taken as representative of the term)")),
        "ladder": config.ladder,
        "guardrails": {"budget_usd": config.budget_usd, "max_commit_usd": config.max_commit_usd,
                       "max_commit_share": config.max_commit_share,
                       "needs_approval": list(config.needs_approval), "approved": list(config.approved),
                       "spot_share_by_model": dict(config.spot_share_by_model),
                       "spot_capacity": dict(config.spot_capacity),
                       "within_budget": (None if config.budget_usd is None
                                         else bool(expected.total_usd <= config.budget_usd * (1 + 1e-6) + 1e-6))},
        "risk": {"cvar_weight": config.cvar_weight, "cvar_alpha": CVAR_ALPHA},
        "existing_commitments": len(config.existing),
    }
    return replace(draft, expected=expected, assumptions=assumptions), scenario_costs


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
