"""Build the purchase LP (a small MILP: commitment counts are integers) with PuLP, from numpy arrays.

Units: demand in GPUs (GPU-hours per hour), prices in USD per instance-hour or per useful GPU-hour, costs in
USD (the objective in present value at the window start, :func:`optimizer.term.discount`), time in hours.

Horizon and periods. The plan is judged over its horizon: the window, and with a term horizon
(``Scenarios.tail``, :mod:`optimizer.term`) the months after it up to the end of the longest commitment term.
The horizon is split into periods ``m``: the window is one period, or its calendar months when laddering
(``PlanConfig.ladder``); after the window every calendar month is a period (also cut where a term bought at the
window start ends, so a commitment never serves past its term). New commitments may start in the first period,
where a shorter term bought then ends (a renewal, so 1-year and 3-year terms compete over the same horizon), or
with ``ladder`` in any period of the horizon; those after the first are tentative (the plan re-decides them when
their month comes). Decision variables, per GPU model g:
- ``n[g,k,m]`` integer instances of commitment offer k (instance type x purchase option) started at the
  start of period m; they serve every later period that ends within their term (with a single window period
  and no tail: every window hour, the window taken as representative of the term);
- ``cap[g,m]`` GPUs of new commitments active in period m;
- ``spot[g,i,j]`` and ``od[g,j]`` useful GPUs served by spot type i and by on-demand in cell j;
- ``spot_cap[g,i]`` useful GPUs of spot type i the plan allows at once in the window (the same in every hour and
  scenario).

Cells. In the window a cell is one bin of the load-duration curve of one scenario in one period (or one hour,
exact, with ``PlanConfig.duration_bins=None``): hours are interchangeable within a period, so each scenario's
residual demand (demand minus the GPUs of commitments already owned, hour by hour) is sorted and cut into bins of
consecutive ranks, each standing for its mean level and its number of hours. After the window spot is re-decided
each month (no cap shared across scenarios), so a cell is one bin of the month's load-duration curve of a group of
scenarios of similar demand (:data:`TAIL_GROUPS` groups, each hour weighted by its scenario's weight,
:data:`TAIL_BINS` bins of nearly equal weight, :func:`mixture_cells`), and the spot share holds per group and month;
with a risk weight (CVaR needs each scenario's cost) the tail keeps per-scenario cells like the window.

Constraints (named, so infeasibilities and shadow prices can be traced):
- ``cover_<g>_<m>_<s>_<t>``: cap[g,m] + sum_i spot + od >= residual demand level of the window cell;
- ``tail_cover_<g>_<m>_<j>``: the same for cell j of month m after the window;
- ``cap_def_<g>_<m>``: the committed-GPU definition;
- ``spot_share_<g>_<s>``: sum of useful spot GPU-hours <= the GPU model's spot share x its demand GPU-hours
  over the window (the serving rule holds billed spot to the same share, see :mod:`optimizer.billing`);
- ``tail_spot_share_<g>_<m>_g<k>`` (``_<m>_<s>`` with a risk weight): the same for each month after the window, per
  group of scenarios (per scenario);
- ``spot_cap_<g>_<i>_<m>_<s>_<t>``: spot of type i in a window cell <= spot_cap[g,i];
- ``spot_capacity_<g>_<i>``: spot_cap[g,i] <= the type's spot capacity (instances x useful GPUs each); after the
  window the capacity bounds each cell's spot variable directly;
- coupling rows, when the config asks for them (then all GPU models are in one problem): ``budget``
  (expected cost over the window <= budget), ``max_obligation`` (new commitments' obligation over their full
  terms <= USD cap: the maximum commitment), ``max_commit_share`` (new commitments' present value <= share x
  the plan's present value) and ``cvar_<s>`` (Rockafellar-Uryasev: u_s >= spot and on-demand cost of scenario
  s - eta, u_s >= 0; commitment cost, the same in every scenario, enters CVaR directly).

Savings plans (``build_problem(sp_offers=...)``, :mod:`optimizer.savings_plans`): a continuous commitment
``sp_commit_<o>`` in USD per hour per offered plan (fixed for owned ones), bought in the first period, and with
``ladder`` one more, ``sp_commit_<o>_<m>``, for each later calendar month ``m`` of the window (tentative, as laddered
instances); per joint cell ``sp_budget_<slot>_<cell>`` (one slot per such variable): sum over eligible models of rate x
GPUs covered <= commitment x the share of the cell's hours the plan is active, the covered GPUs joining each model's
cover row. Savings plans link the GPU models hour by hour,
so the cells are joint (:func:`split_cells`) and all models are one problem.

Spot is modelled as billed: for given commitments and caps, the serving rule serves spot up to the caps in every
hour, cheapest type first, then cuts it back to the share; that is the most spot the cap and share rows allow,
cheapest first, which is this LP's optimal second stage. ``optimizer.solve`` rounds each cap up to whole
instances, which cannot raise the bill (spot is billed per useful GPU-hour served, within the share), so with
every hour a cell the billed window cost equals the model's up to the MIP gap.

Objective: present value over the horizon = new commitments (upfront at the start of their purchase period, the
recurring rate at each covered period's middle; a term running past the horizon is charged only its part inside
it, upfront pro rata) + owned commitments (sunk) + sum over cells of weight x hours x (spot and on-demand USD
per GPU-hour x GPUs) x the period's discount factor, plus, with ``cvar_weight`` lambda > 0,
lambda * CVaR90 = lambda * (eta + sum_s weight_s u_s / 0.1). With a cost of capital of 0 and no tail this is the
expected cost over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pulp

from optimizer import catalog as C
from optimizer.inputs import Offers, PlanConfig, Scenarios
from optimizer.term import discount

CVAR_ALPHA = 0.9
"""CVaR level: the mean cost of the worst 10% of scenario weight."""
TAIL_BINS = 6
"""Bins of each month's load-duration curve after the window (per group of scenarios)."""
TAIL_GROUPS = 4
"""Groups of scenarios (by their demand after the window) whose hours share a load-duration curve and a spot share
after the window, when spot is allowed: one curve for all scenarios lets the spot share of low scenarios pass to high
ones, which the bill does not (Helios, 168 h with spot: the model 5.4% below the bill with one group, 1.0% with 4; the
synthetic demo 1.3% and 0.2%). 8 groups x 12 bins bill within 0.002% of 4 x 6 on both, at 1.5x the solve time."""


@dataclass(frozen=True)
class Periods:
    """The horizon's periods as hour offsets from the window start.

    Attributes:
        edges: period starts with the horizon's length appended (``len(edges) - 1`` periods).
        n_window: the first ``n_window`` periods are the window's; the rest are months after it.
        purchase: periods in which new commitments may start.
        hours: the horizon's hours (window then tail), for timestamps of period starts.
    """

    edges: np.ndarray
    n_window: int
    purchase: tuple[int, ...]
    hours: pd.DatetimeIndex

    @property
    def count(self) -> int:
        return len(self.edges) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.edges).astype(float)

    def start_time(self, m: int) -> pd.Timestamp:
        return self.hours[0] + pd.Timedelta(hours=int(self.edges[m]))

    def discounts(self, rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Present-value factors at each period's start and middle."""
        start = self.edges[:-1].astype(float)
        return discount(start, rate), discount(start + self.lengths / 2.0, rate)


@dataclass(frozen=True)
class GpuModelVars:
    """Handles to one GPU model's variables (for reading the solution back)."""

    gpu_model: str
    offers: Offers
    counts: dict[tuple[int, int], pulp.LpVariable]   # (commitment offer row, period) -> integer count
    periods: Periods
    cap: dict[int, pulp.LpVariable]                    # period -> GPUs of new commitments
    spot: tuple[dict[int, pulp.LpVariable], ...]       # per spot option: window cell j -> useful spot GPUs
    od: dict[int, pulp.LpVariable]
    spot_caps: tuple[pulp.LpVariable, ...]             # per spot option: useful GPUs allowed at once

    @property
    def period_starts(self) -> np.ndarray:
        return self.periods.edges


@dataclass(frozen=True)
class BuiltProblem:
    prob: pulp.LpProblem
    models: tuple[GpuModelVars, ...]
    constraint_labels: dict[str, str]        # constraint-name prefix -> human meaning
    expected_cost: pulp.LpAffineExpression   # the objective's expected part: present value over the horizon (USD)
    window_cost: pulp.LpAffineExpression     # expected cost over the window, undiscounted (USD)
    obligation: pulp.LpAffineExpression      # new commitments' obligation over their full terms (USD)
    sp_offers: tuple = ()                    # per savings-plan slot: its plan (optimizer.savings_plans.SpOffer)
    sp_commit: tuple = ()                    # per slot: its commitment in USD per hour (continuous variable)
    sp_starts: tuple = ()                    # per slot: when it starts (its purchase period)
    sp_firm: tuple = ()                      # per slot: bought in the first purchase period (else tentative)


CELL_BUDGET = 660
"""Load-duration cells per GPU model the LP aims for in the window: many scenarios get fewer bins each (50 sample
paths x 24 bins bill the same plan as x 96 bins on the synthetic org, at a fifth of the solve time; the demo's 110
scenarios x 6 bins bill within 0.0001% of x 12 and keep a What-if move under a second with the term horizon)."""


MIN_BINS = 6
"""Fewest load-duration bins per (scenario, period) in the window. With 110 scenarios (the demo's paths and replays)
or 20 scenarios x 12 months (the scale benchmark), 6 instead of 12 bill within 0.002% (demo window +19 USD of
1.43 M; scale benchmark +0.002% window, +0.001% present value) at two thirds of the time."""


def bins_per_scenario(max_bins: int | None, n_scenarios: int) -> int | None:
    """Bins per scenario: ``max_bins`` (None = every hour) shared out within :data:`CELL_BUDGET`, at least
    :data:`MIN_BINS`."""
    if max_bins is None:
        return None
    return min(max_bins, max(MIN_BINS, CELL_BUDGET // max(n_scenarios, 1)))


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


MIXTURE_SAMPLE = 4096
"""Values a month's mixture curve places its bin edges from (every k-th hour of every scenario): the bins are then
(nearly) equal in weight, and each bin's level and weight are exact over all its hours."""


def mixture_cells(demand: np.ndarray, weights: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Load-duration cells of all scenarios of a period together.

    Args:
        demand: (scenarios, hours) GPUs.
        weights: scenario weights.
        bins: bins of (nearly) equal weight; the edges are weighted quantiles of a systematic sample of at most
            :data:`MIXTURE_SAMPLE` values (sorting every hour of every scenario is the costly part).

    Returns:
        Level (weighted mean GPUs) and weighted hours (sum of scenario weight x hours) of each bin with positive
        demand; ``sum(weighted hours x level)`` equals the period's weighted GPU-hours exactly.
    """
    n_s, n_t = demand.shape
    values = demand.ravel()
    w = np.repeat(np.asarray(weights, dtype=float), n_t)
    if values.size == 0 or w.sum() <= 0:
        return np.zeros(0), np.zeros(0)
    step = max(1, values.size // MIXTURE_SAMPLE)
    sv, sw = values[::step], w[::step]
    order = np.argsort(sv)
    sv, sw = sv[order], sw[order]
    cum = (np.cumsum(sw) - sw / 2.0) / sw.sum()
    edges = np.interp(np.arange(1, bins) / bins, cum, sv)
    b = np.searchsorted(edges, values, side="right")
    mass = np.bincount(b, weights=w, minlength=bins)
    gh = np.bincount(b, weights=w * values, minlength=bins)
    keep = (mass > 0) & (gh > 0)
    return gh[keep] / mass[keep], mass[keep]


def scenario_groups(totals: np.ndarray, weights: np.ndarray, groups: int) -> list[np.ndarray]:
    """Scenario indices cut into at most ``groups`` groups of (nearly) equal weight, by ``totals`` (e.g. each
    scenario's GPU-hours after the window): scenarios of similar demand together."""
    order = np.argsort(np.asarray(totals, dtype=float), kind="stable")
    w = np.asarray(weights, dtype=float)[order]
    mid = (np.cumsum(w) - w / 2.0) / w.sum()
    k = np.minimum((mid * groups).astype(int), groups - 1)
    return [order[k == g] for g in range(groups) if (k == g).any()]


def period_starts(hours: pd.DatetimeIndex, ladder: bool) -> np.ndarray:
    """Hour indices where purchase periods start, with ``len(hours)`` appended: calendar months when
    laddering (the first period starts at the window start), else the whole window."""
    n = len(hours)
    if not ladder or n == 0:
        return np.array([0, n])
    month = np.asarray(hours.year * 12 + hours.month)
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    return np.r_[starts, n]


def horizon_periods(scenarios: Scenarios, config: PlanConfig, term_hours: np.ndarray) -> Periods:
    """The window's periods (:func:`period_starts`), then each calendar month after the window, cut also where a
    term bought at the window start ends."""
    window = period_starts(scenarios.hours, config.ladder)
    n_window = len(window) - 1
    if not scenarios.has_tail:
        purchase = tuple(range(n_window)) if config.ladder else (0,)
        return Periods(edges=window, n_window=n_window, purchase=purchase, hours=scenarios.hours)
    tail = scenarios.tail_hours
    w = len(scenarios.hours)
    month = np.asarray(tail.year * 12 + tail.month)
    cuts = set((np.flatnonzero(np.r_[True, month[1:] != month[:-1]]) + w).tolist())
    total = w + len(tail)
    for term in set(np.asarray(term_hours, dtype=int).tolist()):
        for k in range(1, total // max(term, 1) + 1):     # where a term bought at the start (or renewed) ends
            if w < k * term < total:
                cuts.add(int(k * term))
    edges = np.array(sorted(set(window[:-1].tolist()) | cuts | {total}))
    n_p = len(edges) - 1
    if config.ladder:
        purchase = tuple(range(n_p))
    else:
        # renewals: a shorter term bought at the start can be bought again when it ends (tentative)
        renew = {int(k * term) for term in set(np.asarray(term_hours, dtype=int).tolist()) if term > 0
                 for k in range(1, total // term + 1) if k * term < total}
        purchase = (0, *(m for m in range(1, n_p) if int(edges[m]) in renew))
    return Periods(edges=edges, n_window=n_window, purchase=purchase, hours=scenarios.hours.append(tail))


def coverage(edges: np.ndarray, term_hours: np.ndarray, representative: bool | None = None) -> np.ndarray:
    """``cover[k, m, m2]``: whether offer k bought at the start of period m serves period m2.

    With a single period and ``representative`` (default: when there is a single period) a commitment serves the
    whole window (the window stands for the term, as hourly recommenders assume); otherwise it serves the periods
    m2 >= m that end within its term.
    """
    n_p = len(edges) - 1
    if representative is None:
        representative = n_p == 1
    if n_p == 1 and representative:
        return np.ones((len(term_hours), 1, 1), dtype=bool)
    start, end = edges[:-1], edges[1:]
    later = start[None, :] >= start[:, None]                     # (m, m2)
    within = (end[None, None, :] - start[None, :, None]) <= np.asarray(term_hours)[:, None, None]
    return later[None, :, :] & within


def _row(prob: pulp.LpProblem, terms: list[tuple[pulp.LpVariable, float]], sense: int, rhs: float,
         name: str) -> None:
    prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms), sense=sense, rhs=rhs, name=name), name)


@dataclass
class _Terms:
    """Linear terms collected while building (lists of (variable, coefficient))."""

    objective: list
    window: list
    commit_pv: list
    obligation: list
    scenario: list[list] | None


def split_cells(x: np.ndarray, w: np.ndarray, max_cells: int) -> np.ndarray:
    """Joint cells of hours for several GPU models at once: a label per hour (0..K-1, K <= ``max_cells``).

    Savings plans link the GPU models hour by hour, so a cell must group hours in which every model's demand is
    similar (per-model load-duration curves would pair one model's peak with another's). Starting from one cell,
    the cell with the largest weighted sum of squares (over models) is split at the weighted mean of the model that
    varies most in it, until ``max_cells`` cells or no cell varies.

    Args:
        x: (models, hours) values, scaled so the models compare (e.g. USD per hour at on-demand rates).
        w: (hours,) weights.
        max_cells: most cells; ``>= hours`` keeps every hour its own cell.
    """
    n = x.shape[1]
    if max_cells >= n:
        return np.arange(n)
    groups = [np.arange(n)]

    def score(idx: np.ndarray) -> tuple[float, int, float]:
        ww = w[idx]
        mass = ww.sum()
        if len(idx) < 2 or mass <= 0:
            return 0.0, 0, 0.0
        mu = (x[:, idx] @ ww) / mass
        ss = ((x[:, idx] - mu[:, None]) ** 2) @ ww
        g = int(np.argmax(ss))
        return float(ss.sum()), g, float(mu[g])

    scores = [score(groups[0])]
    while len(groups) < max_cells:
        k = int(np.argmax([sc[0] for sc in scores]))
        total, g, mu = scores[k]
        if total <= 1e-12:
            break
        idx = groups[k]
        low = x[g, idx] <= mu + 1e-12 * max(abs(mu), 1.0)
        if low.all() or not low.any():
            scores[k] = (0.0, 0, 0.0)
            continue
        groups[k], new = idx[low], idx[~low]
        scores[k] = score(groups[k])
        groups.append(new)
        scores.append(score(new))
    labels = np.empty(n, dtype=int)
    for k, idx in enumerate(groups):
        labels[idx] = k
    return labels


@dataclass(frozen=True)
class _JointCells:
    """Cells shared by linked GPU models (:func:`split_cells`) and the savings-plan terms of their cover rows.

    ``window[g]``: (cell_s, cell_t, level, n_hours, cell_m) of model g's window cells (cells where it has demand);
    ``tail[g][m]``: (level, weighted hours, group or scenario index, hours or None) of month m after the window;
    ``tail_groups``: scenario groups after the window; ``extra[(g, "w" | m, j)]``: terms to add to the cover row of
    model g's cell j."""

    window: dict
    tail: dict
    tail_groups: list
    extra: dict
    periods: Periods


def _joint_cells(prob: pulp.LpProblem, scenarios: Scenarios, offers: dict[str, Offers], sp: tuple,
                 existing_capacity: dict[str, np.ndarray], config: PlanConfig, periods: Periods,
                 slots: list[tuple[int, int]], commit: dict[int, pulp.LpVariable], per_scenario: bool,
                 labels: dict[str, str]) -> _JointCells:
    """Joint window and tail cells of all GPU models, one savings-plan variable per (slot, model, cell) and the
    savings-plan budget rows ``sp_budget_<slot>_<cell>``: sum over models of rate x GPUs covered <= commitment (a
    slot: a plan and the period it is bought in, ``slots[i] = (offer index, period)``)."""
    models = scenarios.gpu_models
    edges, n_w, n_p = periods.edges, periods.n_window, periods.count
    w_len = len(scenarios.hours)
    weights = np.asarray(scenarios.weights, dtype=float)
    n_s = len(weights)
    scale = np.array([offers[g].on_demand_usd_per_gpu_hour for g in models])
    sp_cover = [sp_availability(sp[oi], periods, scenarios.has_tail, m) for oi, m in slots]
    # owned savings plans are active in some hours only: their dollars are one more dimension of the cells
    owned = [(oi, np.asarray(o.active, dtype=float), float(o.fixed_usd_per_hour)) for oi, o in enumerate(sp)
             if o.active is not None]

    def residual(g: str, a: int, b: int, values: np.ndarray) -> np.ndarray:
        own = existing_capacity.get(g)
        return values if own is None else np.maximum(values - own[None, a:b], 0.0)

    window = {g: ([], [], [], [], []) for g in models}
    tail = {g: {} for g in models}
    extra: dict = {}
    cells: list = []                     # (where, m, key, {g: model cell index}, {owned plan: active share})

    def split(vals: list[np.ndarray], act: list[np.ndarray], w: np.ndarray, limit: int) -> np.ndarray:
        rows = [v * scale[i] for i, v in enumerate(vals)] + [a * usd for a, (_, _, usd) in zip(act, owned,
                                                                                               strict=True)]
        return split_cells(np.vstack(rows), w, limit)

    def add_cells(where, m: int, key: str, lab: np.ndarray, vals: list[np.ndarray], w: np.ndarray,
                  hrs_w: np.ndarray | None, out: dict, group: int, act: list[np.ndarray]) -> None:
        k_n = int(lab.max()) + 1 if lab.size else 0
        mass = np.bincount(lab, weights=w, minlength=k_n)
        shares = [np.divide(np.bincount(lab, weights=w * a, minlength=k_n), mass, out=np.zeros(k_n), where=mass > 0)
                  for a in act]
        hrs = np.bincount(lab, weights=hrs_w, minlength=k_n) if hrs_w is not None else None
        index = {}
        for gi, g in enumerate(models):
            lv = np.divide(np.bincount(lab, weights=w * vals[gi], minlength=k_n), mass, out=np.zeros(k_n),
                           where=mass > 0)
            for k in np.flatnonzero(lv > 0):
                index.setdefault(k, {})[g] = out(g, m, group, k, lv[k], mass[k], None if hrs is None else hrs[k])
        for k, by_model in index.items():
            cells.append((where, m, f"{key}_{k}", by_model,
                          {oi: float(sh[k]) for (oi, _, _), sh in zip(owned, shares, strict=True)}))

    def to_window(g, m, s, k, lv, n_h, _):
        cs, ct, lvl, nh, cm = window[g]
        cs.append(s), ct.append(k), lvl.append(lv), nh.append(n_h), cm.append(m)
        return len(cs) - 1

    bins = bins_per_scenario(config.duration_bins, n_s * n_w)
    for m in range(n_w):
        a, b = int(edges[m]), int(edges[m + 1])
        res = [residual(g, a, b, scenarios.demand[g][:, a:b]) for g in models]
        for s in range(n_s):
            vals = [r[s] for r in res]
            act = [x[a:b] for _, x, _ in owned]
            limit = (b - a) if bins is None else bins * (len(models) + len(owned))
            lab = split(vals, act, np.ones(b - a), limit)
            add_cells("w", m, f"{m}_{s}", lab, vals, np.ones(b - a), None, to_window, s, act)
    window = {g: tuple(np.asarray(v, dtype=float if i in (2, 3) else int) for i, v in enumerate(window[g]))
              for g in models}

    groups: list = []
    if n_p > n_w:
        totals = sum(scenarios.tail_of(g).sum(axis=1) * scale[i] for i, g in enumerate(models))
        groups = ([np.array([s]) for s in range(n_s)] if per_scenario
                  else scenario_groups(totals, weights, TAIL_GROUPS))
        t_bins = (bins_per_scenario(config.duration_bins or 96, n_s * (n_p - n_w)) if per_scenario else TAIL_BINS)
        for m in range(n_w, n_p):
            a, b = int(edges[m]), int(edges[m + 1])
            res = [residual(g, a, b, scenarios.tail_of(g)[:, a - w_len:b - w_len]) for g in models]
            acc = {g: ([], [], [], []) for g in models}

            def to_tail(g, m, grp, k, lv, mass, hrs, acc=acc):
                lvl, wh, si, hh = acc[g]
                lvl.append(lv), wh.append(mass), si.append(grp), hh.append(hrs)
                return len(lvl) - 1

            for gk, grp in enumerate(groups):
                vals = [r[grp].ravel() for r in res]
                w = np.repeat(weights[grp], b - a)
                act = [np.tile(x[a:b], len(grp)) for _, x, _ in owned]
                lab = split(vals, act, w, t_bins * (len(models) + len(owned)))
                add_cells(m, m, f"{m}_g{gk}", lab, vals, w, np.ones(len(w)) if per_scenario else None, to_tail,
                          int(grp[0]) if per_scenario else gk, act)
            for g in models:
                lvl, wh, si, hh = acc[g]
                tail[g][m] = (np.asarray(lvl, dtype=float), np.asarray(wh, dtype=float), np.asarray(si, dtype=int),
                              np.asarray(hh, dtype=float) if per_scenario else None)

    for si, (oi, bought_in) in enumerate(slots):
        o = sp[oi]
        eligible = {r.gpu_model: r.usd_per_gpu_hour for r in o.rates}
        for where, m, key, by_model, share in cells:
            available = share.get(oi, float(sp_cover[si][m]))
            if available <= 0:
                continue
            mine = [(g, j) for g, j in by_model.items() if g in eligible]
            if not mine:
                continue
            xs = prob.add_variable_dict(f"spx{si}_{key}", [g.replace(" ", "_") for g, _ in mine], lowBound=0)
            budget = [(commit[si], -available)]
            for g, j in mine:
                v = xs[g.replace(" ", "_")]
                extra.setdefault((g, where, j), []).append((v, 1.0))
                budget.append((v, eligible[g]))
            _row(prob, budget, pulp.LpConstraintLE, 0.0, f"sp_budget_{si}_{key}")
        when = f" bought {periods.start_time(bought_in):%Y-%m-%d}" if bought_in else ""
        labels[f"sp_budget_{si}"] = (f"savings plan {o.label}{when}: usage covered at its rates <= its hourly "
                                     "commitment")
    return _JointCells(window=window, tail=tail, tail_groups=groups, extra=extra, periods=periods)


def sp_availability(offer, periods: Periods, has_tail: bool, bought_in: int = 0) -> np.ndarray:
    """Per period, the share of its hours a savings plan serves: a new one bought at the start of period
    ``bought_in`` serves the periods from it that end within its term (every window hour when the window stands for
    the term); an owned one its active hours (``offer.active``, over the horizon)."""
    if offer.active is not None:
        active = np.asarray(offer.active, dtype=float)
        return np.add.reduceat(active, periods.edges[:-1].astype(int)) / periods.lengths
    return coverage(periods.edges, np.array([offer.term_hours]),
                    representative=not has_tail)[0, bought_in].astype(float)


def _add_gpu_model(prob: pulp.LpProblem, gi: int, gpu_model: str, off: Offers, scenarios: Scenarios,
                   existing_capacity: np.ndarray | None, config: PlanConfig, labels: dict[str, str],
                   terms: _Terms, joint: _JointCells | None = None) -> GpuModelVars:
    """Variables and rows of one GPU model; appends its cost terms to ``terms``. With ``joint`` (savings plans link
    the models) its cells are the joint cells' and their cover rows include the savings-plan terms."""
    demand = scenarios.demand[gpu_model]
    tail = scenarios.tail_of(gpu_model)
    weights = np.asarray(scenarios.weights, dtype=float)
    n_s = demand.shape[0]
    w_len = demand.shape[1]
    rows = off.commitments
    gpus = rows[C.GPU_COUNT].to_numpy(dtype=float)
    rates = rows[C.EFFECTIVE_HOURLY].to_numpy(dtype=float)
    upfront = rows[C.UPFRONT].to_numpy(dtype=float)
    recurring = rows[C.RECURRING_HOURLY].to_numpy(dtype=float)
    term_h = rows[C.TERM_HOURS_COL].to_numpy(dtype=float)
    periods = horizon_periods(scenarios, config, term_h) if joint is None else joint.periods
    edges, n_p, n_w = periods.edges, periods.count, periods.n_window
    hours_p = periods.lengths
    df_start, df_mid = periods.discounts(config.cost_of_capital)
    cover = coverage(edges, term_h, representative=not scenarios.has_tail)        # (k, m, m2)
    # a purchase in period m is possible only if it serves at least that period
    keys = [(k, m) for k in range(len(rows)) for m in periods.purchase if cover[k, m].any()]
    named = prob.add_variable_dict(f"n{gi}", [f"{k}_{m}" for k, m in keys], lowBound=0, cat=pulp.LpInteger)
    counts = {(k, m): named[f"{k}_{m}"] for k, m in keys}
    cap = prob.add_variable_dict(f"cap{gi}", list(range(n_p)), lowBound=0)
    for m2 in range(n_p):
        t = [(counts[k, m], gpus[k]) for (k, m) in keys if cover[k, m, m2]] + [(cap[m2], -1.0)]
        _row(prob, t, pulp.LpConstraintEQ, 0.0, f"cap_def_{gi}_{m2}")
    labels[f"cap_def_{gi}"] = f"committed GPUs of {gpu_model}"
    in_window = np.arange(n_p) < n_w
    for k, m in keys:
        served = cover[k, m] * hours_p                                             # hours per period m2
        pv = float((served * (recurring[k] * df_mid + upfront[k] / term_h[k] * df_start[m])).sum())
        terms.objective.append((counts[k, m], pv))
        terms.commit_pv.append((counts[k, m], pv))
        terms.window.append((counts[k, m], float(rates[k] * (served * in_window).sum())))
        terms.obligation.append((counts[k, m], float(rates[k] * term_h[k])))

    # window cells: per scenario and period, a spot cap shared by all scenarios
    if joint is None:
        residual = demand if existing_capacity is None else np.maximum(demand - existing_capacity[None, :w_len], 0.0)
        bins = bins_per_scenario(config.duration_bins, n_s * n_w)
        parts = [duration_cells(residual[:, edges[m]:edges[m + 1]], bins) for m in range(n_w)]
        cell_s = np.concatenate([p[0] for p in parts]).astype(int)
        cell_t = np.concatenate([p[1] for p in parts]).astype(int)
        level = np.concatenate([p[2] for p in parts])
        n_hours = np.concatenate([p[3] for p in parts])
        cell_m = np.concatenate([np.full(len(p[0]), m) for m, p in enumerate(parts)]).astype(int)
    else:
        cell_s, cell_t, level, n_hours, cell_m = joint.window[gpu_model]
    cells = list(range(len(cell_s)))
    od = prob.add_variable_dict(f"od{gi}", cells, lowBound=0)
    spot_opts = off.spot_options
    spot = tuple(prob.add_variable_dict(f"sp{gi}_{i}", cells, lowBound=0) for i in range(len(spot_opts)))
    spot_caps = tuple(prob.add_variable(f"spot_cap{gi}_{i}", lowBound=0) for i in range(len(spot_opts)))
    useful_cap = [None if o.get("max_instances") is None
                  else float(o["max_instances"] * o["gpu_count"] / (1.0 + o["rework_fraction"])) for o in spot_opts]
    for i, opt in enumerate(spot_opts):
        if useful_cap[i] is not None:
            _row(prob, [(spot_caps[i], 1.0)], pulp.LpConstraintLE, useful_cap[i], f"spot_capacity_{gi}_{i}")
            labels[f"spot_capacity_{gi}_{i}"] = (f"spot capacity: at most {opt['max_instances']} x "
                                                 f"{opt['instance_type']} on spot")
    w = weights[cell_s] * n_hours
    pv_w = w * df_mid[cell_m]
    od_vars = [od[j] for j in cells]
    terms.objective.extend(zip(od_vars, (pv_w * off.on_demand_usd_per_gpu_hour).tolist(), strict=True))
    terms.window.extend(zip(od_vars, (w * off.on_demand_usd_per_gpu_hour).tolist(), strict=True))
    for i, opt in enumerate(spot_opts):
        sv = [spot[i][j] for j in cells]
        terms.objective.extend(zip(sv, (pv_w * opt["usd_per_useful_gpu_hour"]).tolist(), strict=True))
        terms.window.extend(zip(sv, (w * opt["usd_per_useful_gpu_hour"]).tolist(), strict=True))
    if terms.scenario is not None:
        for j in cells:
            s = cell_s[j]
            f = n_hours[j] * df_mid[cell_m[j]]
            terms.scenario[s].append((od[j], f * off.on_demand_usd_per_gpu_hour))
            for i, opt in enumerate(spot_opts):
                terms.scenario[s].append((spot[i][j], f * opt["usd_per_useful_gpu_hour"]))
    caps = [cap[m] for m in cell_m]
    lv = level.tolist()
    for j in cells:
        t = [(caps[j], 1.0), (od_vars[j], 1.0)]
        if joint is not None:
            t.extend(joint.extra.get((gpu_model, "w", j), ()))
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

    # after the window: each month's cells, spot re-decided monthly (capacity bounds each cell)
    if n_p > n_w:
        _add_tail(prob, gi, gpu_model, off, tail, existing_capacity, weights, periods, df_mid, cap, useful_cap,
                  config, labels, terms, joint)
    return GpuModelVars(gpu_model, off, counts, periods, cap, spot, od, spot_caps)


def _add_tail(prob: pulp.LpProblem, gi: int, gpu_model: str, off: Offers, tail: np.ndarray,
              existing_capacity: np.ndarray | None, weights: np.ndarray, periods: Periods, df_mid: np.ndarray,
              cap: dict[int, pulp.LpVariable], useful_cap: list[float | None], config: PlanConfig,
              labels: dict[str, str], terms: _Terms, joint: _JointCells | None = None) -> None:
    """Cells and rows of the months after the window (see the module docstring)."""
    edges, n_w = periods.edges, periods.n_window
    w_len = int(edges[n_w])
    per_scenario = terms.scenario is not None
    n_s = tail.shape[0]
    spot_opts = off.spot_options
    bins = bins_per_scenario(config.duration_bins or 96, n_s * (periods.count - n_w)) if per_scenario else TAIL_BINS
    groups = (None if per_scenario or not spot_opts
              else scenario_groups(tail.sum(axis=1), weights, TAIL_GROUPS))
    if joint is not None:
        groups = None if per_scenario else joint.tail_groups
    for m in range(n_w, periods.count):
        a, b = int(edges[m]) - w_len, int(edges[m + 1]) - w_len
        month = tail[:, a:b]
        if existing_capacity is not None:
            residual = np.maximum(month - existing_capacity[None, w_len + a:w_len + b], 0.0)
        else:
            residual = month
        if joint is not None:
            level, wh, s_idx, hrs = joint.tail[gpu_model][m]
        elif per_scenario:
            s_idx, _, level, hrs = duration_cells(residual, bins)
            wh = weights[s_idx] * hrs
        elif groups is None:
            level, wh = mixture_cells(residual, weights, bins)
            s_idx, hrs = np.zeros(len(level), dtype=int), None
        else:
            parts = [mixture_cells(residual[g], weights[g], bins) for g in groups]
            level = np.concatenate([x[0] for x in parts])
            wh = np.concatenate([x[1] for x in parts])
            s_idx = np.concatenate([np.full(len(x[0]), k) for k, x in enumerate(parts)]).astype(int)
            hrs = None
        n_c = len(level)
        if n_c == 0:
            continue
        ids = [f"{m}_{j}" for j in range(n_c)]
        od = prob.add_variable_dict(f"tod{gi}", ids, lowBound=0)
        spot = [prob.add_variable_dict(f"tsp{gi}_{i}", ids, lowBound=0, upBound=useful_cap[i])
                for i in range(len(spot_opts))]
        pv = wh * df_mid[m]
        od_vars = [od[x] for x in ids]
        terms.objective.extend(zip(od_vars, (pv * off.on_demand_usd_per_gpu_hour).tolist(), strict=True))
        for i, opt in enumerate(spot_opts):
            terms.objective.extend(zip([spot[i][x] for x in ids], (pv * opt["usd_per_useful_gpu_hour"]).tolist(),
                                       strict=True))
        if per_scenario:
            for j, x in enumerate(ids):
                f = hrs[j] * df_mid[m]
                terms.scenario[s_idx[j]].append((od[x], f * off.on_demand_usd_per_gpu_hour))
                for i, opt in enumerate(spot_opts):
                    terms.scenario[s_idx[j]].append((spot[i][x], f * opt["usd_per_useful_gpu_hour"]))
        lv = level.tolist()
        for j, x in enumerate(ids):
            t = [(cap[m], 1.0), (od[x], 1.0)] + [(spot[i][x], 1.0) for i in range(len(spot_opts))]
            if joint is not None:
                t.extend(joint.extra.get((gpu_model, m, j), ()))
            _row(prob, t, pulp.LpConstraintGE, lv[j], f"tail_cover_{gi}_{x}")
        if spot_opts:
            if per_scenario:
                for s in range(n_s):
                    mine = np.flatnonzero(s_idx == s)
                    t = [(spot[i][ids[j]], float(hrs[j])) for i in range(len(spot_opts)) for j in mine]
                    _row(prob, t, pulp.LpConstraintLE, off.spot_share * float(month[s].sum()),
                         f"tail_spot_share_{gi}_{m}_{s}")
            else:
                for k, g in enumerate(groups if groups is not None else [np.arange(n_s)]):
                    if joint is not None and not (s_idx == k).any():
                        continue
                    mine = np.flatnonzero(s_idx == k)
                    t = [(spot[i][ids[j]], float(wh[j])) for i in range(len(spot_opts)) for j in mine]
                    _row(prob, t, pulp.LpConstraintLE, off.spot_share * float(weights[g] @ month[g].sum(axis=1)),
                         f"tail_spot_share_{gi}_{m}_g{k}")
    labels[f"tail_cover_{gi}"] = f"demand of {gpu_model} must be served every hour after the window"
    if spot_opts:
        labels[f"tail_spot_share_{gi}"] = (f"spot cap after the window: at most {off.spot_share:.0%} of "
                                           f"{gpu_model} GPU-hours of each month on spot")


def build_problem(scenarios: Scenarios, offers: dict[str, Offers], config: PlanConfig, *,
                  existing_capacity: dict[str, np.ndarray] | None = None,
                  existing_cost_usd: float = 0.0, existing_window_usd: float | None = None,
                  sp_offers: tuple = ()) -> BuiltProblem:
    """Assemble the MILP for every GPU model of ``scenarios``.

    Args:
        scenarios: hourly demand per GPU model and scenario (with a tail: over the whole horizon).
        offers: purchase offers per GPU model.
        config: window, guardrails, cost of capital and risk weight (coupling rows are added when
            ``config.coupled``).
        existing_capacity: GPUs of owned commitments per hour of the horizon (window then tail), per GPU model.
        existing_cost_usd: what the owned commitments cost over the horizon (USD, sunk; a constant), in present
            value.
        existing_window_usd: their cost over the window (USD; default ``existing_cost_usd``).
        sp_offers: savings plans the plan may buy (:func:`optimizer.savings_plans.sp_offers`); they link the GPU
            models, whose cells are then joint (:func:`split_cells`). Each plan's commitment (USD per hour) is a
            continuous variable, bought in the first period (with ``config.ladder`` also one per later calendar month
            of the window, tentative): it is charged for every period of its term in the horizon (upfront share at
            its purchase, the rest in each period), and in each cell it covers GPU-hours of the eligible models up to
            ``sum rate x GPUs <= commitment`` (``sp_budget_<slot>_<cell>``).
    """
    prob = pulp.LpProblem("gpu_purchase_plan", pulp.LpMinimize)
    n_s = len(scenarios.names)
    terms = _Terms([], [], [], [], [[] for _ in range(n_s)] if config.cvar_weight > 0 else None)
    labels: dict[str, str] = {}
    handles = []
    existing_capacity = existing_capacity or {}
    joint = None
    commit: dict[int, pulp.LpVariable] = {}
    slots: list[tuple[int, int]] = []
    periods = None
    if sp_offers:
        terms_all = {int(t) for g in scenarios.gpu_models for t in offers[g].commitments[C.TERM_HOURS_COL]}
        term_h = np.array(sorted(terms_all | {o.term_hours for o in sp_offers}))
        periods = horizon_periods(scenarios, config, term_h)
        # a new plan may be bought in each purchase period of the window when laddering (like instances), else at
        # its start; an owned one is fixed
        buy = tuple(m for m in periods.purchase if m < periods.n_window) if config.ladder else (periods.purchase[0],)
        slots = [(oi, m) for oi, o in enumerate(sp_offers)
                 for m in ((periods.purchase[0],) if o.fixed_usd_per_hour is not None else buy)]
        commit = {si: prob.add_variable(f"sp_commit_{oi}" if m == periods.purchase[0] else f"sp_commit_{oi}_{m}",
                                        lowBound=sp_offers[oi].fixed_usd_per_hour or 0.0,
                                        upBound=sp_offers[oi].fixed_usd_per_hour) for si, (oi, m) in enumerate(slots)}
        df_start, df_mid = periods.discounts(config.cost_of_capital)
        in_window = np.arange(periods.count) < periods.n_window
        for si, (oi, m) in enumerate(slots):
            o = sp_offers[oi]
            if o.fixed_usd_per_hour is not None:       # owned: sunk (its cost is in existing_cost_usd)
                continue
            served = coverage(periods.edges, np.array([o.term_hours]),
                              representative=not scenarios.has_tail)[0, m] * periods.lengths
            pv = float((served * ((1.0 - o.upfront_share) * df_mid + o.upfront_share * df_start[m])).sum())
            terms.objective.append((commit[si], pv))
            terms.commit_pv.append((commit[si], pv))
            terms.window.append((commit[si], float((served * in_window).sum())))
            terms.obligation.append((commit[si], float(o.term_hours)))
        joint = _joint_cells(prob, scenarios, offers, sp_offers, existing_capacity, config, periods, slots, commit,
                             terms.scenario is not None, labels)
    for gi, gpu_model in enumerate(scenarios.gpu_models):
        handles.append(_add_gpu_model(prob, gi, gpu_model, offers[gpu_model], scenarios,
                                      existing_capacity.get(gpu_model), config, labels, terms, joint))
    expected = pulp.LpAffineExpression(terms.objective, constant=existing_cost_usd)
    window = pulp.LpAffineExpression(terms.window, constant=existing_cost_usd if existing_window_usd is None
                                     else existing_window_usd)
    obligation = pulp.LpAffineExpression(terms.obligation)
    if config.budget_usd is not None:
        prob.addConstraint(pulp.LpConstraint(window, pulp.LpConstraintLE, "budget", config.budget_usd), "budget")
        labels["budget"] = f"budget: expected cost over the window at most {config.budget_usd:,.0f} USD"
    if config.max_obligation_usd is not None:
        prob.addConstraint(pulp.LpConstraint(obligation, pulp.LpConstraintLE, "max_obligation",
                                             config.max_obligation_usd), "max_obligation")
        labels["max_obligation"] = (f"max commitment: new commitments' obligation over their full terms at most "
                                    f"{config.max_obligation_usd:,.0f} USD")
    if config.max_commit_share is not None:
        share_expr = pulp.LpAffineExpression(terms.commit_pv) - config.max_commit_share * expected
        prob.addConstraint(pulp.LpConstraint(share_expr, pulp.LpConstraintLE, "max_commit_share", 0.0),
                           "max_commit_share")
        labels["max_commit_share"] = (f"max commitment share: new commitments at most {config.max_commit_share:.0%} "
                                      "of the plan's cost over the horizon")
    total = expected
    if terms.scenario is not None:
        # Rockafellar-Uryasev: CVaR_a(X) = min_eta eta + E[(X - eta)^+] / (1 - a). Commitments cost the same in
        # every scenario, and CVaR(c + X) = c + CVaR(X), so the per-scenario rows hold only spot and on-demand.
        eta = prob.add_variable("cvar_eta")
        excess = prob.add_variable_dict("cvar_u", list(range(n_s)), lowBound=0)
        for s in range(n_s):
            cost_s = pulp.LpAffineExpression(terms.scenario[s])
            prob.addConstraint(pulp.LpConstraint(excess[s] + eta - cost_s, pulp.LpConstraintGE, f"cvar_{s}", 0.0),
                               f"cvar_{s}")
        labels["cvar"] = "risk: cost above the CVaR threshold per scenario"
        cvar = pulp.LpAffineExpression(terms.commit_pv + [(eta, 1.0)] + [
            (excess[s], float(scenarios.weights[s]) / (1.0 - CVAR_ALPHA)) for s in range(n_s)],
            constant=existing_cost_usd)
        total = expected + config.cvar_weight * cvar
    prob.setObjective(total)
    return BuiltProblem(prob=prob, models=tuple(handles), constraint_labels=labels, expected_cost=expected,
                        window_cost=window, obligation=obligation,
                        sp_offers=tuple(sp_offers[oi] for oi, _ in slots),
                        sp_commit=tuple(commit[i] for i in range(len(slots))),
                        sp_starts=tuple(periods.start_time(m) for _, m in slots),
                        sp_firm=tuple(m == periods.purchase[0] for _, m in slots))
