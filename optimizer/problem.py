"""Build the purchase LP (a small MILP: commitment counts are integers) with PuLP.

Decision variables, per GPU model g:
- ``n[g,k]`` integer instances of commitment offer k (instance type x purchase option), paid at the
  offer's effective USD per instance-hour for every hour of the window;
- ``cap[g]`` committed GPUs = sum_k gpus_k * n[g,k];
- ``spot[g,s,t]`` and ``od[g,s,t]`` useful GPUs served by spot and on-demand in cell t of scenario s;
- ``spot_cap[g]`` useful spot GPUs the plan allows at once (the same in every scenario and hour).

Constraints (named, so infeasibilities and shadow prices can be traced):
- ``cover_<g>_<s>_<t>``: cap[g] + spot + od >= demand (GPUs) in cell t of scenario s, where a cell is an
  hour (exact) or a bin of the load-duration curve (``PlanConfig.duration_bins``);
- ``spot_share_<g>_<s>``: sum_t spot <= max_spot_share * sum_t demand;
- ``spot_cap_<g>_<s>_<t>``: spot <= spot_cap[g];
- ``cap_def_<g>``: the committed-GPU definition.

Objective: expected cost in USD over the window = commitment cost + sum_s weight_s * sum_t hours_t *
(spot + on-demand), where hours_t is the number of hours a cell stands for.
The model treats the window as representative of the commitment term (charges the effective hourly
rate for each window hour), which is how hourly commitment recommenders size commitments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pulp

from optimizer import catalog as C
from optimizer.inputs import Offers, PlanConfig, Scenarios


@dataclass(frozen=True)
class GpuModelVars:
    """Handles to one GPU model's variables (for reading the solution back)."""

    gpu_model: str
    offers: Offers
    counts: dict[int, pulp.LpVariable]       # commitment offer row -> integer count
    cap: pulp.LpVariable
    spot: dict[int, pulp.LpVariable]         # cell j -> spot GPUs (cells: load-duration bins or hours, per scenario)
    od: dict[int, pulp.LpVariable]
    spot_cap: pulp.LpVariable | None


@dataclass(frozen=True)
class BuiltProblem:
    prob: pulp.LpProblem
    models: tuple[GpuModelVars, ...]
    constraint_labels: dict[str, str]        # constraint-name prefix -> human meaning


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


def build_problem(scenarios: Scenarios, offers: dict[str, Offers], config: PlanConfig) -> BuiltProblem:
    """Assemble the MILP for every GPU model of ``scenarios``."""
    prob = pulp.LpProblem("gpu_purchase_plan", pulp.LpMinimize)
    hours = len(scenarios.hours)
    n_s = len(scenarios.names)
    objective: list[tuple[pulp.LpVariable, float]] = []
    labels: dict[str, str] = {}
    handles = []
    for gi, gpu_model in enumerate(scenarios.gpu_models):
        off = offers[gpu_model]
        demand = scenarios.demand[gpu_model]
        rows = off.commitments
        counts = prob.add_variable_dict(f"n{gi}", list(range(len(rows))), lowBound=0, cat=pulp.LpInteger)
        cap = prob.add_variable(f"cap{gi}", lowBound=0)
        gpus = rows[C.GPU_COUNT].to_numpy(dtype=float)
        rates = rows[C.EFFECTIVE_HOURLY].to_numpy(dtype=float)
        prob += (pulp.LpAffineExpression([(counts[k], gpus[k]) for k in counts] + [(cap, -1.0)]) == 0,
                 f"cap_def_{gi}")
        labels[f"cap_def_{gi}"] = f"committed GPUs of {gpu_model}"
        objective += [(counts[k], rates[k] * hours) for k in counts]
        # Hours are interchangeable (nothing links one hour to the next), so each scenario's demand is
        # sorted into a load-duration curve and cut into bins of consecutive ranks; a cell is a bin with
        # its mean level and its number of hours. Zero-demand cells need no cover constraint.
        cell_s, cell_t, level, n_hours = duration_cells(demand, bins_per_scenario(config.duration_bins, n_s))
        cells = list(range(len(cell_s)))
        od = prob.add_variable_dict(f"od{gi}", cells, lowBound=0)
        spot, spot_cap = {}, None
        if off.spot is not None:
            spot = prob.add_variable_dict(f"sp{gi}", cells, lowBound=0)
            spot_cap = prob.add_variable(f"spot_cap{gi}", lowBound=0)
        w = scenarios.weights[cell_s] * n_hours
        objective += [(od[j], w[j] * off.on_demand_usd_per_gpu_hour) for j in cells]
        if spot:
            rate = off.spot["usd_per_useful_gpu_hour"]
            objective += [(spot[j], w[j] * rate) for j in cells]
        for j, s, t in zip(cells, cell_s, cell_t, strict=True):
            terms = [(cap, 1.0), (od[j], 1.0)]
            if spot:
                terms.append((spot[j], 1.0))
                prob += (pulp.LpAffineExpression([(spot[j], 1.0), (spot_cap, -1.0)]) <= 0, f"spot_cap_{gi}_{s}_{t}")
            prob += (pulp.LpAffineExpression(terms) >= float(level[j]), f"cover_{gi}_{s}_{t}")
        labels[f"cover_{gi}"] = f"demand of {gpu_model} must be served every hour"
        if spot:
            for s in range(n_s):
                total = float(demand[s].sum())
                terms = [(spot[j], float(n_hours[j])) for j in np.flatnonzero(cell_s == s)]
                prob += (pulp.LpAffineExpression(terms) <= config.max_spot_share * total, f"spot_share_{gi}_{s}")
            labels[f"spot_share_{gi}"] = (f"spot cap: at most {config.max_spot_share:.0%} of {gpu_model} "
                                          "GPU-hours on spot")
        handles.append(GpuModelVars(gpu_model, off, counts, cap, spot, od, spot_cap))
    prob.setObjective(pulp.LpAffineExpression(objective))
    return BuiltProblem(prob=prob, models=tuple(handles), constraint_labels=labels)
