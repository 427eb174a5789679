"""Cost versus speed for leadership: the Pareto frontier of backlog cost against expected completion time.

Units: work in reference-GPU-hours (NVIDIA A100 = 1.0, see :mod:`optimizer.rightsizing`); cost in USD;
time in hours.

The backlog is the batch work of the demand (every (team, workload class) unit that is not latency-bound):
``B_u`` reference-GPU-hours, e.g. the next window's forecast. Each unit keeps as many GPUs as it uses today
(``N_u``, mean GPUs in the demand) and runs its backlog on the GPU model rightsizing routes it to, so

    completion time T_u = B_u x (1 + spot share x rework) / (N_u x relative throughput)   [hours]
    cost C_u = B_u x USD per reference-GPU-hour of the routing                               [USD]

(spot interruptions stretch time by the rework they cause; slower GPUs stretch it by 1 / throughput). On the
GPUs a unit uses today T_u equals the demand's window length, so T_u reads as "the same work on the new
GPUs takes T_u hours instead". A sweep of ``speed_priority`` from 0 (cheapest) to 1 (fastest) gives one
routing per value; the organisation's point is (sum of C_u, backlog-weighted mean of T_u), and the makespan
(the slowest unit's T_u) is reported beside it. The frontier keeps the points no other point beats on both
cost and time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer import catalog as C
from optimizer import rightsizing as R
from optimizer.inputs import PlanConfig, PlanningError
from optimizer.workloads import Workloads
from usage import schema as S

SPEED_PRIORITY = "speed_priority"
SPEED_PRIORITY_TO = "speed_priority_to"
"""The last swept speed priority that gives the same routing as ``speed_priority`` (each point covers that range:
the sweep keeps one point per distinct routing and says which priorities it stands for)."""
COST = "cost_usd"
TIME = "completion_hours"
MAKESPAN = "makespan_hours"
MIX = "gpu_mix"
ON_FRONTIER = "on_frontier"


@dataclass(frozen=True)
class ParetoResult:
    """The sweep and its frontier.

    Attributes:
        points: one row per distinct routing of the sweep: speed_priority (the smallest that gives it),
            speed_priority_to (the largest swept priority that gives it), cost_usd, completion_hours
            (backlog-weighted mean), makespan_hours, gpu_mix (reference-GPU-hours share per GPU model),
            on_frontier.
        frontier: the non-dominated points, fastest first (cost never falls as time falls).
        backlog: per unit: team, workload_class, reference_gpu_hours, current_gpus.
        window_hours: hours of demand the backlog was taken from.
    """

    points: pd.DataFrame
    frontier: pd.DataFrame
    backlog: pd.DataFrame
    window_hours: int


def pareto_front(points: pd.DataFrame, cost: str = COST, time: str = TIME) -> np.ndarray:
    """Boolean mask of the points no other point beats on both cost and time (ties on both: first kept)."""
    order = np.lexsort((points[cost].to_numpy(), points[time].to_numpy()))
    keep = np.zeros(len(points), dtype=bool)
    best = np.inf
    for i in order:  # by time ascending, then cost: a point survives if cheaper than every faster one
        c = float(points[cost].iloc[i])
        if c < best - 1e-9:
            keep[i] = True
            best = c
    return keep


def _unit_outcome(table: pd.DataFrame, backlog: pd.DataFrame) -> pd.DataFrame:
    t = table.merge(backlog[[R.TEAM, R.CLASS]], on=[R.TEAM, R.CLASS], how="inner")
    t = t.assign(cost=t[R.REF_HOURS] * t[R.USD_PER_REF],
                 hours=t[R.REF_HOURS] * t[R.TIME_PER_REF] / t[R.FLEET_GPUS])
    return t


def sweep(demand: pd.DataFrame, workloads: Workloads, catalog: C.Catalog, config: PlanConfig, *,
          steps: int = 21, throughput: R.Throughput | None = None, value_column: str = S.GPUS) -> ParetoResult:
    """Cost and completion time of the backlog for ``steps`` speed priorities from 0 to 1, and the frontier.

    Args:
        demand: team, gpu_type, timestamp and ``value_column`` (GPUs per hour) over the backlog window.
        workloads: classes per team; latency-bound classes are not backlog.
        catalog: price catalog.
        config: the plan's region, options, spot policy and approvals.
        steps: number of speed priorities (>= 2, evenly spaced over [0, 1]).
        throughput: relative throughput table (default: the shipped one).
        value_column: the demand column.
    """
    if steps < 2:
        raise PlanningError(f"the sweep needs at least 2 speed priorities, got {steps} (fix: --steps 11)")
    throughput = throughput or R.load_throughput()
    candidates = R.evaluate(demand, workloads, catalog, config, throughput, value_column)
    units = candidates.drop_duplicates([R.TEAM, R.CLASS])
    backlog = units[~units[R.LATENCY_BOUND] & (units[R.REF_HOURS] > 0) & (units[R.FLEET_GPUS] > 0)]
    backlog = backlog[[R.TEAM, R.CLASS, R.REF_HOURS, R.FLEET_GPUS]].reset_index(drop=True)
    if backlog.empty:
        raise PlanningError(f"{workloads.source}: no batch work in the demand (every class with demand is "
                            "latency-bound; fix: mark training classes latency_bound: false)")
    rows, seen = [], {}
    for w in np.linspace(0.0, 1.0, steps):
        routing = R.route(demand, workloads, catalog, config, speed_priority=float(w), throughput=throughput,
                          value_column=value_column, candidates=candidates)
        t = _unit_outcome(routing.table, backlog)
        key = tuple(t[R.GPU_MODEL])
        if key in seen:
            rows[seen[key]][SPEED_PRIORITY_TO] = round(float(w), 6)
            continue
        seen[key] = len(rows)
        work = t[R.REF_HOURS].to_numpy()
        mix = t.groupby(R.GPU_MODEL)[R.REF_HOURS].sum() / work.sum()
        rows.append({SPEED_PRIORITY: round(float(w), 6), SPEED_PRIORITY_TO: round(float(w), 6),
                     COST: float(t["cost"].sum()),
                     TIME: float(np.average(t["hours"], weights=work)), MAKESPAN: float(t["hours"].max()),
                     MIX: ", ".join(f"{R.short_name(g)} {s:.0%}" if s >= 0.005 else f"{R.short_name(g)} <1%"
                                    for g, s in mix.sort_values(ascending=False).items())})
    points = pd.DataFrame(rows)
    points[ON_FRONTIER] = pareto_front(points)
    frontier = points[points[ON_FRONTIER]].sort_values(TIME).reset_index(drop=True)
    window = int(demand[S.TIMESTAMP].nunique())
    return ParetoResult(points=points, frontier=frontier, backlog=backlog, window_hours=window)
