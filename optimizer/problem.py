"""Build the purchase LP (a small MILP: commitment counts are integers) with PuLP, from numpy arrays.

Units: demand in GPUs (GPU-hours per hour), prices in USD per instance-hour or per useful GPU-hour, costs
in USD over the plan window, time in hours.

The window is split into purchase periods ``m``: calendar months when laddering (``PlanConfig.ladder``),
otherwise the whole window. Decision variables, per GPU model g:
- ``n[g,k,m]`` integer instances of commitment offer k (instance type x purchase option) started at the
  start of period m; they serve every later period that ends within their term and are paid their
  effective USD per instance-hour for each hour of those periods (with one period: every window hour);
- ``cap[g,m]`` GPUs of new commitments active in period m;
- ``spot[g,i,j]`` and ``od[g,j]`` useful GPUs served by spot type i and by on-demand in cell j;
- ``spot_cap[g,i]`` useful GPUs of spot type i the plan allows at once (the same in every hour and scenario).

A cell is one bin of the load-duration curve of one scenario in one period (or one hour, exact, with
``PlanConfig.duration_bins=None``): hours are interchangeable within a period, so each scenario's residual
demand (demand minus the GPUs of commitments already owned, hour by hour) is sorted and cut into bins of
consecutive ranks, each standing for its mean level and its number of hours.

Constraints (named, so infeasibilities and shadow prices can be traced):
- ``cover_<g>_<m>_<s>_<t>``: cap[g,m] + sum_i spot + od >= residual demand level of the cell;
- ``cap_def_<g>_<m>``: the committed-GPU definition;
- ``spot_share_<g>_<s>``: sum of useful spot GPU-hours <= the GPU model's spot share x its demand GPU-hours
  (the serving rule holds billed spot to the same share, see :mod:`optimizer.billing`);
- ``spot_cap_<g>_<i>_<m>_<s>_<t>``: spot of type i in a cell <= spot_cap[g,i];
- ``spot_capacity_<g>_<i>``: spot_cap[g,i] <= the type's spot capacity (instances x useful GPUs each);
- coupling rows, when the config asks for them (then all GPU models are in one problem): ``budget``
  (expected cost <= budget), ``max_commit`` (new commitments' window cost <= USD cap), ``max_commit_share``
  (new commitments' window cost <= share x expected cost) and ``cvar_<s>`` (Rockafellar-Uryasev:
  u_s >= spot and on-demand cost of scenario s - eta, u_s >= 0; commitment cost, the same in every scenario,
  enters CVaR directly).

Spot is modelled as billed: for given commitments and caps, the serving rule serves spot up to the caps in every
hour, cheapest type first, then cuts it back to the share; that is the most spot the cap and share rows allow,
cheapest first, which is this LP's optimal second stage. ``optimizer.solve`` rounds each cap up to whole
instances, which cannot raise the bill (spot is billed per useful GPU-hour served, within the share), so with
every hour a cell the billed cost equals the objective up to the MIP gap.

Objective: expected cost in USD over the window = commitment cost + existing commitments' (sunk) cost +
sum_s weight_s * sum_j hours_j * (spot and on-demand USD per GPU-hour x GPUs), plus, with
``cvar_weight`` lambda > 0, lambda * CVaR90 = lambda * (eta + sum_s weight_s u_s / 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pulp

from optimizer import catalog as C
from optimizer.inputs import Offers, PlanConfig, Scenarios

CVAR_ALPHA = 0.9
"""CVaR level: the mean cost of the worst 10% of scenario weight."""


@dataclass(frozen=True)
class GpuModelVars:
    """Handles to one GPU model's variables (for reading the solution back)."""

    gpu_model: str
    offers: Offers
    counts: dict[tuple[int, int], pulp.LpVariable]   # (commitment offer row, period) -> integer count
    period_starts: np.ndarray                          # hour index of each period's start (periods + 1 edges)
    cap: dict[int, pulp.LpVariable]                    # period -> GPUs of new commitments
    spot: tuple[dict[int, pulp.LpVariable], ...]       # per spot option: cell j -> useful spot GPUs
    od: dict[int, pulp.LpVariable]
    spot_caps: tuple[pulp.LpVariable, ...]             # per spot option: useful GPUs allowed at once


@dataclass(frozen=True)
class BuiltProblem:
    prob: pulp.LpProblem
    models: tuple[GpuModelVars, ...]
    constraint_labels: dict[str, str]        # constraint-name prefix -> human meaning
    expected_cost: pulp.LpAffineExpression   # expected cost (USD), existing commitments included
    commit_cost: pulp.LpAffineExpression     # window cost of the new commitments (USD)


CELL_BUDGET = 1200
"""Load-duration cells per GPU model the LP aims for: many scenarios get fewer bins each (50 sample paths x
24 bins bill the same plan as x 96 bins on the synthetic org, at a fifth of the solve time)."""


def bins_per_scenario(max_bins: int | None, n_scenarios: int) -> int | None:
    """Bins per scenario: ``max_bins`` (None = every hour) shared out within :data:`CELL_BUDGET`, at least 12."""
    if max_bins is None:
        return None
    return min(max_bins, max(12, CELL_BUDGET // max(n_scenarios, 1)))


def duration_cells(demand: np.ndarray, bins: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells of the LP for a (scenarios, hours) demand array.

    Returns:
        scenario index, cell index within the scenario, demand level (GPUs) and hours per cell, for the
        cells with positive demand. ``bins=None`` keeps every hour (exact); otherwise each scenario's
        sorted demand is cut into at most ``bins`` groups of consecutive ranks and each group is
        represented by its mean (the plan is then billed hour by hour, so reported costs stay exact).
    """
    n_s, n_t = demand.shape
    if bins is None or bins >= n_t:
        s_idx, t_idx = np.nonzero(demand > 0)
        return s_idx, t_idx, demand[s_idx, t_idx], np.ones(len(s_idx))
    ordered = -np.sort(-demand, axis=1)
    edges = np.linspace(0, n_t, bins + 1).round().astype(int)
    counts = np.diff(edges)
    sums = np.add.reduceat(ordered, edges[:-1], axis=1)
    levels = sums / counts
    s_idx, b_idx = np.nonzero(levels > 0)
    return s_idx, b_idx, levels[s_idx, b_idx], counts[b_idx].astype(float)


def period_starts(hours: pd.DatetimeIndex, ladder: bool) -> np.ndarray:
    """Hour indices where purchase periods start, with ``len(hours)`` appended: calendar months when
    laddering (the first period starts at the window start), else the whole window."""
    n = len(hours)
    if not ladder or n == 0:
        return np.array([0, n])
    month = np.asarray(hours.year * 12 + hours.month)
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    return np.r_[starts, n]


def coverage(edges: np.ndarray, term_hours: np.ndarray) -> np.ndarray:
    """``cover[k, m, m2]``: whether offer k bought at the start of period m serves period m2.

    With a single period a commitment serves the whole window (the window stands for the term, as hourly
    recommenders assume); with several, it serves periods m2 >= m that end within its term.
    """
    n_p = len(edges) - 1
    if n_p == 1:
        return np.ones((len(term_hours), 1, 1), dtype=bool)
    start, end = edges[:-1], edges[1:]
    later = start[None, :] >= start[:, None]                     # (m, m2)
    within = (end[None, None, :] - start[None, :, None]) <= term_hours[:, None, None]
    return later[None, :, :] & within


def _row(prob: pulp.LpProblem, terms: list[tuple[pulp.LpVariable, float]], sense: int, rhs: float,
         name: str) -> None:
    prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms), sense=sense, rhs=rhs, name=name), name)


def _add_gpu_model(prob: pulp.LpProblem, gi: int, gpu_model: str, off: Offers, demand: np.ndarray,
                   existing_capacity: np.ndarray | None, weights: np.ndarray, edges: np.ndarray,
                   config: PlanConfig, labels: dict[str, str], objective: list, commit_terms: list,
                   scen_terms: list[list] | None) -> GpuModelVars:
    """Variables and rows of one GPU model; appends its cost terms to ``objective`` / ``commit_terms`` /
    ``scen_terms`` (per scenario, only when building a coupled problem)."""
    n_s = demand.shape[0]
    n_p = len(edges) - 1
    hours_p = np.diff(edges).astype(float)
    rows = off.commitments
    gpus = rows[C.GPU_COUNT].to_numpy(dtype=float)
    rates = rows[C.EFFECTIVE_HOURLY].to_numpy(dtype=float)
    terms = rows[C.TERM_HOURS_COL].to_numpy(dtype=float)
    cover = coverage(edges, terms)                                   # (k, m, m2)
    # a purchase in period m is possible only if it serves at least that period
    keys = [(k, m) for k in range(len(rows)) for m in range(n_p) if cover[k, m].any()]
    named = prob.add_variable_dict(f"n{gi}", [f"{k}_{m}" for k, m in keys], lowBound=0, cat=pulp.LpInteger)
    counts = {(k, m): named[f"{k}_{m}"] for k, m in keys}
    cap = prob.add_variable_dict(f"cap{gi}", list(range(n_p)), lowBound=0)
    for m2 in range(n_p):
        t = [(counts[k, m], gpus[k]) for (k, m) in keys if cover[k, m, m2]] + [(cap[m2], -1.0)]
        _row(prob, t, pulp.LpConstraintEQ, 0.0, f"cap_def_{gi}_{m2}")
    labels[f"cap_def_{gi}"] = f"committed GPUs of {gpu_model}"
    cost_n = [(counts[k, m], float(rates[k] * (cover[k, m] * hours_p).sum())) for (k, m) in keys]
    objective += cost_n
    commit_terms += cost_n

    residual = demand if existing_capacity is None else np.maximum(demand - existing_capacity[None, :], 0.0)
    bins = bins_per_scenario(config.duration_bins, n_s * n_p)
    parts = [duration_cells(residual[:, edges[m]:edges[m + 1]], bins) for m in range(n_p)]
    cell_s = np.concatenate([p[0] for p in parts]).astype(int)
    cell_t = np.concatenate([p[1] for p in parts]).astype(int)
    level = np.concatenate([p[2] for p in parts])
    n_hours = np.concatenate([p[3] for p in parts])
    cell_m = np.concatenate([np.full(len(p[0]), m) for m, p in enumerate(parts)]).astype(int)
    cells = list(range(len(cell_s)))
    od = prob.add_variable_dict(f"od{gi}", cells, lowBound=0)
    spot_opts = off.spot_options
    spot = tuple(prob.add_variable_dict(f"sp{gi}_{i}", cells, lowBound=0) for i in range(len(spot_opts)))
    spot_caps = tuple(prob.add_variable(f"spot_cap{gi}_{i}", lowBound=0) for i in range(len(spot_opts)))
    for i, opt in enumerate(spot_opts):
        if opt.get("max_instances") is not None:
            useful = opt["gpu_count"] / (1.0 + opt["rework_fraction"])
            _row(prob, [(spot_caps[i], 1.0)], pulp.LpConstraintLE, float(opt["max_instances"] * useful),
                 f"spot_capacity_{gi}_{i}")
            labels[f"spot_capacity_{gi}_{i}"] = (f"spot capacity: at most {opt['max_instances']} x "
                                                 f"{opt['instance_type']} on spot")
    w = weights[cell_s] * n_hours
    od_vars = [od[j] for j in cells]
    objective += list(zip(od_vars, (w * off.on_demand_usd_per_gpu_hour).tolist(), strict=True))
    for i, opt in enumerate(spot_opts):
        objective += list(zip([spot[i][j] for j in cells], (w * opt["usd_per_useful_gpu_hour"]).tolist(),
                              strict=True))
    if scen_terms is not None:
        for j in cells:
            s = cell_s[j]
            scen_terms[s].append((od[j], n_hours[j] * off.on_demand_usd_per_gpu_hour))
            for i, opt in enumerate(spot_opts):
                scen_terms[s].append((spot[i][j], n_hours[j] * opt["usd_per_useful_gpu_hour"]))
    caps = [cap[m] for m in cell_m]
    lv = level.tolist()
    for j in cells:
        t = [(caps[j], 1.0), (od_vars[j], 1.0)]
        name = f"{cell_m[j]}_{cell_s[j]}_{cell_t[j]}"
        for i in range(len(spot_opts)):
            t.append((spot[i][j], 1.0))
            _row(prob, [(spot[i][j], 1.0), (spot_caps[i], -1.0)], pulp.LpConstraintLE, 0.0,
                 f"spot_cap_{gi}_{i}_{name}")
        _row(prob, t, pulp.LpConstraintGE, lv[j], f"cover_{gi}_{name}")
    labels[f"cover_{gi}"] = f"demand of {gpu_model} must be served every hour"
    if spot_opts:
        for s in range(n_s):
            mine = np.flatnonzero(cell_s == s)
            t = [(spot[i][j], float(n_hours[j])) for i in range(len(spot_opts)) for j in mine]
            _row(prob, t, pulp.LpConstraintLE, off.spot_share * float(demand[s].sum()), f"spot_share_{gi}_{s}")
        labels[f"spot_share_{gi}"] = f"spot cap: at most {off.spot_share:.0%} of {gpu_model} GPU-hours on spot"
    return GpuModelVars(gpu_model, off, counts, edges, cap, spot, od, spot_caps)


def build_problem(scenarios: Scenarios, offers: dict[str, Offers], config: PlanConfig, *,
                  existing_capacity: dict[str, np.ndarray] | None = None,
                  existing_cost_usd: float = 0.0) -> BuiltProblem:
    """Assemble the MILP for every GPU model of ``scenarios``.

    Args:
        scenarios: hourly demand per GPU model and scenario.
        offers: purchase offers per GPU model.
        config: window, guardrails and risk weight (coupling rows are added when ``config.coupled``).
        existing_capacity: GPUs of owned commitments per window hour, per GPU model.
        existing_cost_usd: what the owned commitments cost over the window (USD, sunk; a constant).
    """
    prob = pulp.LpProblem("gpu_purchase_plan", pulp.LpMinimize)
    n_s = len(scenarios.names)
    edges = period_starts(scenarios.hours, config.ladder)
    objective: list[tuple[pulp.LpVariable, float]] = []
    commit_terms: list[tuple[pulp.LpVariable, float]] = []
    scen_terms: list[list] | None = [[] for _ in range(n_s)] if config.cvar_weight > 0 else None
    labels: dict[str, str] = {}
    handles = []
    existing_capacity = existing_capacity or {}
    for gi, gpu_model in enumerate(scenarios.gpu_models):
        handles.append(_add_gpu_model(prob, gi, gpu_model, offers[gpu_model], scenarios.demand[gpu_model],
                                      existing_capacity.get(gpu_model), scenarios.weights, edges, config, labels,
                                      objective, commit_terms, scen_terms))
    expected = pulp.LpAffineExpression(objective, constant=existing_cost_usd)
    commit = pulp.LpAffineExpression(commit_terms)
    if config.budget_usd is not None:
        prob.addConstraint(pulp.LpConstraint(expected, pulp.LpConstraintLE, "budget", config.budget_usd), "budget")
        labels["budget"] = f"budget: expected cost at most {config.budget_usd:,.0f} USD"
    if config.max_commit_usd is not None:
        prob.addConstraint(pulp.LpConstraint(commit, pulp.LpConstraintLE, "max_commit", config.max_commit_usd),
                           "max_commit")
        labels["max_commit"] = f"max commitment: new commitments cost at most {config.max_commit_usd:,.0f} USD"
    if config.max_commit_share is not None:
        share_expr = commit - config.max_commit_share * expected
        prob.addConstraint(pulp.LpConstraint(share_expr, pulp.LpConstraintLE, "max_commit_share", 0.0),
                           "max_commit_share")
        labels["max_commit_share"] = (f"max commitment: new commitments at most {config.max_commit_share:.0%} "
                                      "of expected cost")
    total = expected
    if scen_terms is not None:
        # Rockafellar-Uryasev: CVaR_a(X) = min_eta eta + E[(X - eta)^+] / (1 - a). Commitments cost the same in
        # every scenario, and CVaR(c + X) = c + CVaR(X), so the per-scenario rows hold only spot and on-demand.
        eta = prob.add_variable("cvar_eta")
        excess = prob.add_variable_dict("cvar_u", list(range(n_s)), lowBound=0)
        for s in range(n_s):
            cost_s = pulp.LpAffineExpression(scen_terms[s])
            prob.addConstraint(pulp.LpConstraint(excess[s] + eta - cost_s, pulp.LpConstraintGE, f"cvar_{s}", 0.0),
                               f"cvar_{s}")
        labels["cvar"] = "risk: cost above the CVaR threshold per scenario"
        cvar = pulp.LpAffineExpression(commit_terms + [(eta, 1.0)] + [
            (excess[s], float(scenarios.weights[s]) / (1.0 - CVAR_ALPHA)) for s in range(n_s)],
            constant=existing_cost_usd)
        total = expected + config.cvar_weight * cvar
    prob.setObjective(total)
    return BuiltProblem(prob=prob, models=tuple(handles), constraint_labels=labels, expected_cost=expected,
                        commit_cost=commit)
