"""Optimizer inputs: demand scenarios from a forecast, purchase offers from the catalog, the plan config.

Units: demand in GPUs per hour (GPU-hours per hour) per GPU model; prices in USD per instance-hour
(``usd_per_instance_hour``) or USD per GPU-hour (``usd_per_gpu_hour``); horizons in hours.

Scenarios: the forecast's p10, p50 and p90 paths, summed over the teams of each GPU model, weighted
0.3 / 0.4 / 0.3 (Swanson's rule, the standard three-point approximation of a distribution by its
10th/50th/90th percentiles). Summing team quantiles treats teams as moving together, which widens the
organisation's range; issue-3 sample paths replace this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from optimizer import catalog as C
from optimizer.options import DEFAULT_COMMITMENT_OPTIONS, ON_DEMAND, SPOT, is_savings_plan, term_hours
from optimizer.plan import Commitment
from usage import schema as S

SCENARIO_WEIGHTS = {S.P10: 0.3, S.P50: 0.4, S.P90: 0.3}
PLAN_PATHS = 50
"""Joint sample paths a plan is optimised over when the forecast behind it is at hand."""
PLAN_PATHS_CENTRED = False
"""Plan scenarios use the engine's sample paths as drawn, not shifted onto the point forecast
(:func:`forecasting.engine.centre_on_mean`): the drift of the replayed errors and level shifts carries growth the
flat point forecast of the window lacks. Measured 2026-12-04 (``benchmarks/plan_backtest_term.py --set tuning``,
variant ``centred_paths``): centring raised plan / hindsight from 1.0183 to 1.0212 with spot and from 1.0158 to
1.0214 without. Budget alerts and the forecast table use the centred paths (one expected demand per hour)."""


DEFAULT_COST_OF_CAPITAL = 0.10
"""Annual cost of capital plans discount cash flows at unless told otherwise: a typical corporate hurdle rate
(set your finance team's rate with ``--cost-of-capital``; 0 treats money now and in three years alike)."""


class PlanningError(ValueError):
    """A planning request that cannot be met, with the constraint or input that blocks it (one line)."""


@dataclass(frozen=True)
class PlanConfig:
    """What the platform lead asks for.

    Attributes:
        start: first hour of the plan window (UTC).
        hours: window length in hours.
        region: catalog region.
        instance_types: allowed instance types (None = every type of the demanded GPU models).
        options: commitment purchase options to consider.
        allow_spot: whether spot may serve demand at all.
        max_spot_share: at most this share of each GPU model's GPU-hours, in every scenario, on spot.
        growth: demand multiplier minus one applied to the whole forecast (0.1 = +10%).
        team_growth: per-team growth on top of ``growth``.
        checkpoint_interval_hours / restart_overhead_hours: spot rework model (see catalog.rework_fraction).
        time_limit_s: solver time limit.
        duration_bins: at most this many load-duration-curve bins per scenario in the LP (None = every
            hour); many scenarios get fewer each (``optimizer.problem.bins_per_scenario``). Costs in the
            plan are always billed hour by hour; binning only coarsens the decision (measured in
            docs/benchmarks.md).
        ladder: split the window into calendar months, each of which may start new commitments (a
            commitment started in month m serves months m.. while its term lasts; instances may also start in
            any month after the window, savings plans in the window's months only). False = every commitment
            starts at the window start.
        budget_usd: cap on the plan's expected cost over the window (USD, existing commitments included).
        max_obligation_usd: maximum commitment: cap on the obligation of the new commitments the plan buys, over
            their full terms (USD: upfront plus every recurring hour, paid whether used or not). The one meaning
            of "maximum commitment" everywhere (CLI, app, ``policy.yaml``, ``gpuplan check``).
        max_commit_share: cap on the new commitments' cost over the horizon as a share (0-1) of the plan's
            cost over the horizon (present values).
        needs_approval / approved: instance types that may only be used (any purchase option) once approved.
        spot_share_by_model: per-GPU-model override of ``max_spot_share`` ((gpu_model, share) pairs; 0 = no
            spot, e.g. for latency-bound work).
        spot_capacity: at most this many spot instances of a type at once ((instance_type, count) pairs).
        checkpoint_by_model: per-GPU-model override of ``checkpoint_interval_hours`` ((gpu_model, hours) pairs;
            rightsizing sets it from the workload classes whose spot-tolerant work runs on that model).
        existing: commitments already owned (sunk: billed in their active hours, not optimised).
        cvar_weight: risk weight lambda; the objective is expected cost + lambda * CVaR90 of scenario cost.
        cost_of_capital: annual rate (0.1 = 10%/year) that discounts every cash flow to the window start, so
            paying upfront and choosing a term are real trade-offs (0 = money now and later weigh the same).
        term_horizon: judge each commitment over its whole term (the horizon runs to the end of the longest
            term considered; scenario demand after the window comes from the long-term forecast, see
            :mod:`optimizer.term`). False = the window alone, taken as representative of the term (what hourly
            look-back recommenders assume).
    """

    start: pd.Timestamp
    hours: int
    region: str = "us-east-1"
    instance_types: tuple[str, ...] | None = None
    options: tuple[str, ...] = DEFAULT_COMMITMENT_OPTIONS
    allow_spot: bool = True
    max_spot_share: float = 0.3
    growth: float = 0.0
    team_growth: tuple[tuple[str, float], ...] = ()
    checkpoint_interval_hours: float = 1.0
    restart_overhead_hours: float = 0.25
    time_limit_s: float = 60.0
    duration_bins: int | None = 96
    ladder: bool = False
    budget_usd: float | None = None
    max_obligation_usd: float | None = None
    max_commit_share: float | None = None
    needs_approval: tuple[str, ...] = ()
    approved: tuple[str, ...] = ()
    spot_share_by_model: tuple[tuple[str, float], ...] = ()
    spot_capacity: tuple[tuple[str, int], ...] = ()
    checkpoint_by_model: tuple[tuple[str, float], ...] = ()
    existing: tuple[Commitment, ...] = ()
    cvar_weight: float = 0.0
    cost_of_capital: float = DEFAULT_COST_OF_CAPITAL
    term_horizon: bool = True

    def __post_init__(self) -> None:
        if self.hours < 1:
            raise PlanningError("the plan window must be at least 1 hour (fix: --hours N with N >= 1)")
        if not 0.0 <= self.max_spot_share <= 1.0:
            raise PlanningError("max spot share must be between 0 and 1")
        if not (math.isfinite(self.growth) and self.growth > -1.0):
            raise PlanningError(f"growth must be a number above -100% (got {self.growth})")
        for team, g in self.team_growth:
            if not (math.isfinite(g) and g > -1.0):
                raise PlanningError(f"growth for team {team} must be a number above -100% (got {g})")
        for gpu_model, share in self.spot_share_by_model:
            if not 0.0 <= share <= 1.0:
                raise PlanningError(f"spot share for {gpu_model} must be between 0 and 1 (got {share})")
        for instance_type, count in self.spot_capacity:
            if count < 0 or int(count) != count:
                raise PlanningError(f"spot capacity for {instance_type} must be a whole number >= 0 "
                                    f"(got {count}; fix: --spot-capacity {instance_type}=N)")
        if self.budget_usd is not None and not (math.isfinite(self.budget_usd) and self.budget_usd >= 0):
            raise PlanningError("the budget must be >= 0 USD and finite (fix: --budget AMOUNT)")
        if self.max_obligation_usd is not None and not (math.isfinite(self.max_obligation_usd)
                                                        and self.max_obligation_usd >= 0):
            raise PlanningError("the maximum commitment obligation must be >= 0 USD and finite "
                                "(fix: --max-obligation-usd AMOUNT)")
        if not (math.isfinite(self.cost_of_capital) and 0.0 <= self.cost_of_capital < 1.0):
            raise PlanningError(f"the cost of capital must be an annual rate from 0 to 1 (got {self.cost_of_capital}; "
                                "fix: e.g. --cost-of-capital 0.1 for 10%/year)")
        if self.max_commit_share is not None and not 0.0 <= self.max_commit_share <= 1.0:
            raise PlanningError("the maximum committed share must be between 0 and 1")
        if not (math.isfinite(self.cvar_weight) and self.cvar_weight >= 0):
            raise PlanningError("the CVaR risk weight must be >= 0 and finite (fix: e.g. --cvar-weight 0.5)")
        shortest = min((term_hours(o) for o in self.options), default=None)
        if not self.ladder and shortest is not None and self.hours > shortest:
            # one purchase at the window start would lapse inside the window; only monthly starts can renew it
            raise PlanningError(f"the plan window ({self.hours:,} h) is longer than the shortest commitment term "
                                f"({shortest:,} h) (fix: add --ladder so commitments can start each month, or "
                                "shorten --hours)")

    def spot_share_for(self, gpu_model: str) -> float:
        """Max share of the GPU model's GPU-hours on spot (the per-model override, else ``max_spot_share``)."""
        return dict(self.spot_share_by_model).get(gpu_model, self.max_spot_share)

    def checkpoint_for(self, gpu_model: str) -> float:
        """Hours between checkpoints of the GPU model's spot work (the per-model override, else the default)."""
        return dict(self.checkpoint_by_model).get(gpu_model, self.checkpoint_interval_hours)

    @property
    def coupled(self) -> bool:
        """Whether a constraint or objective term links GPU models so that they must be solved as one MILP.

        A budget alone does not: the cheapest plan of each GPU model together are the cheapest plan, and the
        budget only decides whether that is affordable. With a CVaR weight or a committed-spend cap it does.
        """
        return self.max_obligation_usd is not None or self.max_commit_share is not None or self.cvar_weight > 0

    @property
    def end(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(hours=self.hours)

    @property
    def horizon_end(self) -> pd.Timestamp:
        """End (exclusive) of the hours a plan is judged on: the window, or with ``term_horizon`` the end of the
        longest term considered when that is later (a commitment bought at the window start is judged over its
        whole term)."""
        longest = max((term_hours(o) for o in self.options), default=0)
        if not self.term_horizon or longest == 0:
            return self.end
        return max(self.end, self.start + pd.Timedelta(hours=longest))

    @property
    def horizon_hours(self) -> int:
        return int((self.horizon_end - self.start) / pd.Timedelta(hours=1))


@dataclass(frozen=True)
class Scenarios:
    """Hourly demand per GPU model and scenario over the window, and after it to the horizon's end.

    ``demand[g]`` has shape (n_scenarios, len(hours)) for the window; ``tail[g]`` (n_scenarios,
    len(tail_hours)) carries each scenario on from the window's end to the end of the longest commitment term
    (:mod:`optimizer.term`). Without a tail the plan is judged on the window alone.
    """

    hours: pd.DatetimeIndex
    gpu_models: tuple[str, ...]
    names: tuple[str, ...]
    weights: np.ndarray
    demand: dict[str, np.ndarray] = field(default_factory=dict)
    tail_hours: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))
    tail: dict[str, np.ndarray] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def only(self, gpu_model: str) -> Scenarios:
        """The same scenarios restricted to one GPU model."""
        tail = {gpu_model: self.tail[gpu_model]} if gpu_model in self.tail else {}
        return replace(self, gpu_models=(gpu_model,), demand={gpu_model: self.demand[gpu_model]}, tail=tail)

    def expected(self, gpu_model: str) -> np.ndarray:
        return self.weights @ self.demand[gpu_model]

    @property
    def has_tail(self) -> bool:
        return len(self.tail_hours) > 0

    @property
    def horizon_end(self) -> pd.Timestamp:
        """End (exclusive) of the hours the scenarios cover (window and tail)."""
        last = self.tail_hours[-1] if self.has_tail else self.hours[-1]
        return last + pd.Timedelta(hours=1)

    def tail_of(self, gpu_model: str) -> np.ndarray:
        """Tail demand of a GPU model ((n_scenarios, 0) without a tail; zeros for a model the tail lacks)."""
        if not self.has_tail:
            return np.zeros((len(self.names), 0))
        return self.tail.get(gpu_model, np.zeros((len(self.names), len(self.tail_hours))))


def hourly_demand(usage: pd.DataFrame, hours: pd.DatetimeIndex, gpu_models: tuple[str, ...] | None = None
                  ) -> dict[str, np.ndarray]:
    """Demand per GPU model summed over teams on the hour grid ``hours`` (missing hours are 0 GPUs)."""
    inside = usage[(usage[S.TIMESTAMP] >= hours[0]) & (usage[S.TIMESTAMP] <= hours[-1])]
    per_hour = inside.groupby([S.GPU_TYPE, S.TIMESTAMP])[S.GPUS].sum()
    models = gpu_models if gpu_models is not None else tuple(sorted(inside[S.GPU_TYPE].unique()))
    out = {}
    for g in models:
        values = per_hour.xs(g, level=0) if g in per_hour.index.get_level_values(0) else pd.Series(dtype=float)
        out[g] = values.reindex(hours, fill_value=0.0).to_numpy(dtype=float)
    return out


def scenarios_from_paths(long, config: PlanConfig, n_paths: int = PLAN_PATHS, seed: int = 0,
                         gpu_map: Mapping[tuple[str, str], tuple[str, float]] | None = None) -> Scenarios:
    """Equally weighted demand scenarios from the engine's joint sample paths (``forecasting.engine``).

    Unlike summed quantiles, paths keep how teams moved together in the past, so the organisation's range
    is not overstated. ``long`` is the :class:`forecasting.engine.LongForecast` behind a forecast (its
    ``unique_id`` is ``team|gpu_type``). Growth settings apply as in :func:`scenarios_from_forecast`.
    ``gpu_map`` (rightsizing: ``dict(optimizer.rightsizing.Routing.assignment)``) moves each (team, gpu_type)
    series to another GPU model, its GPUs multiplied by the factor (old / new throughput); series it does not
    name stay where they are.
    """
    from forecasting.engine import sample_paths

    hours = pd.date_range(config.start, periods=config.hours, freq="h")
    paths = sample_paths(long, n_paths, seed, centred=PLAN_PATHS_CENTRED)
    growth = dict(config.team_growth)
    demand: dict[str, np.ndarray] = {}
    covered = None
    for uid, rows in long.forecast.groupby(S.UID, sort=False):
        team, gpu_model = S.split_key(uid)
        ts = pd.DatetimeIndex(rows[S.DS])
        pos = ts.get_indexer(hours)
        covered = (pos >= 0) if covered is None else covered & (pos >= 0)
        mult = (1.0 + config.growth) * (1.0 + growth.get(team, 0.0))
        if gpu_map is not None:
            gpu_model, factor = gpu_map.get((team, gpu_model), (gpu_model, 1.0))
            mult *= factor
        values = np.where(pos >= 0, paths[uid][:, np.clip(pos, 0, None)], 0.0) * mult
        demand[gpu_model] = demand.get(gpu_model, 0.0) + values
    if covered is None or not covered.all():
        n = 0 if covered is None else int(covered.sum())
        raise PlanningError(f"the forecast covers {n} of the {len(hours)} window hours "
                            "(fix: forecast with --horizon-hours at least the window length)")
    names = tuple(f"path{i}" for i in range(n_paths))
    return Scenarios(hours=hours, gpu_models=tuple(sorted(demand)), names=names,
                     weights=np.full(n_paths, 1.0 / n_paths), demand={g: np.asarray(v) for g, v in demand.items()})


HISTORY_DAYS = 60
"""Days of realised demand replayed next to the forecast's paths (:func:`scenarios_with_history`)."""
HISTORY_WEIGHT = 0.35
"""Total scenario weight of the replayed history; the paths keep the rest. Chosen on the synthetic org's
720 h origins 4-12 (weights 0.2-1.0, 60-365 days; docs/benchmarks.md), not on the reported origins."""


def replay_span(history: pd.DataFrame, start: pd.Timestamp, days: int = HISTORY_DAYS,
                weight: float = HISTORY_WEIGHT) -> pd.DatetimeIndex | None:
    """Hours of history replayed before a window starting at ``start``: the last ``days`` whole days (same hour of
    day as ``start``) that end before the history does; None with a ``weight`` of 0, no history or less than a day
    of it.

    Raises:
        PlanningError: ``weight`` outside 0-1 or ``days`` below 1.
    """
    if not 0.0 <= weight <= 1.0:
        raise PlanningError(f"the history weight must be between 0 and 1 (got {weight})")
    if days < 1:
        raise PlanningError(f"the history replay needs at least 1 day (got {days})")
    if history.empty or weight == 0.0:
        return None
    day = pd.Timedelta(days=1)
    after_last = history[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    end = start - day * max(-(-(start - after_last) // day), 0)
    first = max(end - day * days, history[S.TIMESTAMP].min())
    n_days = int((end - first) // day)
    if n_days < 1:
        return None
    return pd.date_range(end - day * n_days, end, freq="h", inclusive="left")


def scenarios_with_history(scenarios: Scenarios, history: pd.DataFrame, config: PlanConfig,
                           days: int = HISTORY_DAYS, weight: float = HISTORY_WEIGHT) -> Scenarios:
    """The scenarios plus the last ``days`` days of realised demand replayed as extra scenarios.

    A commitment is a 1-year decision billed every hour of its term, so the demand it should be sized for
    is the longer-run distribution, not only the next window's paths: a forecast that follows the current
    level cannot see a training run start or stop. Each whole day of the replayed span starts one scenario
    of ``config.hours`` hours, wrapping around the span's end, so every replayed hour weighs the same and
    each scenario keeps the hour of day of the plan window. The replay ends at the last whole day (same
    hour of day as ``config.start``) before the history ends; hours without rows count as 0 GPUs.
    Together the replayed scenarios weigh ``weight``; the given scenarios keep ``1 - weight`` in their
    own proportions. Growth settings apply as in :func:`scenarios_from_forecast`. With ``weight`` 0, no
    history, or less than a day of it, the scenarios come back unchanged.

    Args:
        scenarios: the forecast's scenarios (e.g. :func:`scenarios_from_paths`) on the plan window.
        history: canonical usage before the window (``timestamp, team, gpu_type, gpus``).
        config: the plan window and growth settings.
        days: days of history to replay.
        weight: total weight of the replayed scenarios (0-1).

    Raises:
        PlanningError: ``weight`` outside 0-1 or ``days`` below 1.
    """
    span = replay_span(history, config.start, days, weight)
    if span is None:
        return scenarios
    n_days = len(span) // 24
    rows = history[(history[S.TIMESTAMP] >= span[0]) & (history[S.TIMESTAMP] <= span[-1])]
    mult = np.full(len(rows), 1.0 + config.growth)
    for team, g in config.team_growth:
        mult[(rows[S.TEAM] == team).to_numpy()] *= 1.0 + g
    replay = hourly_demand(rows.assign(**{S.GPUS: rows[S.GPUS].to_numpy(dtype=float) * mult}), span)
    idx = (np.arange(n_days)[:, None] * 24 + np.arange(config.hours)[None, :]) % len(span)
    models = tuple(sorted(set(scenarios.gpu_models) | set(replay)))
    n_paths = len(scenarios.names)
    demand = {}
    for g in models:
        ahead = scenarios.demand.get(g, np.zeros((n_paths, config.hours)))
        past = replay[g][idx] if g in replay else np.zeros((n_days, config.hours))
        demand[g] = np.vstack([ahead, past])
    weights = np.concatenate([np.asarray(scenarios.weights, dtype=float) * (1.0 - weight),
                              np.full(n_days, weight / n_days)])
    names = scenarios.names + tuple(f"history{i}" for i in range(n_days))
    return Scenarios(hours=scenarios.hours, gpu_models=models, names=names, weights=weights, demand=demand)


def scenarios_from_forecast(fc: pd.DataFrame, config: PlanConfig) -> Scenarios:
    """Scenario demand for the plan window from a forecast frame (team, gpu_type, timestamp, quantiles).

    Window hours the forecast does not cover are an error: the plan would silently bill zero demand.
    """
    hours = pd.date_range(config.start, periods=config.hours, freq="h")
    fc = fc[(fc[S.TIMESTAMP] >= hours[0]) & (fc[S.TIMESTAMP] <= hours[-1])].reset_index(drop=True)
    if fc.empty:
        raise PlanningError(f"the forecast does not cover the plan window {hours[0]:%Y-%m-%dT%H}Z-"
                            f"{config.end:%Y-%m-%dT%H}Z (fix: forecast from history that ends just before --start)")
    covered = fc[S.TIMESTAMP].nunique()
    if covered < len(hours):
        raise PlanningError(f"the forecast covers {covered} of the {len(hours)} window hours "
                            "(fix: forecast with --horizon-hours at least the window length)")
    mult = pd.Series(1.0 + config.growth, index=fc.index)
    for team, g in config.team_growth:
        mult[fc[S.TEAM] == team] *= 1.0 + g
    names = tuple(SCENARIO_WEIGHTS)
    demand = {}
    for gpu_model, rows in fc.groupby(S.GPU_TYPE):
        scaled = rows[list(names)].mul(mult[rows.index], axis=0)
        scaled[S.TIMESTAMP] = rows[S.TIMESTAMP]
        per_hour = scaled.groupby(S.TIMESTAMP)[list(names)].sum().reindex(hours, fill_value=0.0)
        demand[gpu_model] = per_hour.to_numpy(dtype=float).T.copy()
    return Scenarios(hours=hours, gpu_models=tuple(sorted(demand)), names=names,
                     weights=np.array([SCENARIO_WEIGHTS[n] for n in names]), demand=demand)


@dataclass(frozen=True)
class Offers:
    """Purchase offers for one GPU model in the region.

    ``commitments`` rows: instance_type, purchase_option, gpu_count, effective_hourly_usd, upfront_usd,
    recurring_hourly_usd, term_hours. ``spot``: the cheapest spot instance type per useful GPU-hour
    (None when spot is not allowed or not offered). ``on_demand``: the cheapest on-demand price per GPU.
    ``spot_options``: the spot types worth using, cheapest per useful GPU-hour first, each with
    ``max_instances`` (its spot capacity, None = unlimited); the list stops at the first unlimited type
    (a dearer one would never be used). ``spot_share``: the GPU model's max spot share.
    """

    gpu_model: str
    commitments: pd.DataFrame
    spot: dict | None
    on_demand_instance_type: str
    on_demand_usd_per_gpu_hour: float
    spot_options: tuple[dict, ...] = ()
    spot_share: float = 0.0


def equivalent_hourly(rows: pd.DataFrame, cost_of_capital: float = 0.0) -> np.ndarray:
    """USD per instance-hour of each commitment row with its upfront payment valued as cash now: the recurring
    rate plus ``upfront / (term_hours x a)``, where ``a`` is the average present-value factor over the term
    (``(1 - (1 + r)^-T) / (T ln(1 + r))`` for a term of T years). With no cost of capital it is the catalog's
    effective rate; with one, paying upfront weighs more than paying the same over the term."""
    term = rows[C.TERM_HOURS_COL].to_numpy(dtype=float)
    rec = rows[C.RECURRING_HOURLY].to_numpy(dtype=float)
    up = rows[C.UPFRONT].to_numpy(dtype=float)
    if cost_of_capital == 0.0:
        return rows[C.EFFECTIVE_HOURLY].to_numpy(dtype=float)
    years = term / 8760.0
    log = math.log1p(cost_of_capital)
    avg = (1.0 - np.power(1.0 + cost_of_capital, -years)) / (years * log)
    return rec + up / (term * avg)


def useful_commitments(rows: pd.DataFrame, od_usd_per_gpu_hour: float, cost_of_capital: float = 0.0) -> pd.DataFrame:
    """Drop commitment offers no cost-minimising plan needs.

    Offers are compared at their :func:`equivalent_hourly` rate (upfront valued at the cost of capital), within
    each term length (a 3-year and a 1-year commitment serve different hours of the horizon). An offer whose rate
    per GPU is not below the on-demand rate never pays off. Among offers of the same instance size and term only
    the cheapest can be chosen (in this model nothing else tells them apart), and a larger instance is only kept
    when it is cheaper per GPU than every smaller one kept (GPU counts per instance are multiples of each other,
    so several small instances can replace a large one at the same capacity). Ties keep the smaller instance,
    then the option listed first.
    """
    rows = rows.assign(_rate=equivalent_hourly(rows, cost_of_capital))
    rows = rows[rows["_rate"] / rows[C.GPU_COUNT] < od_usd_per_gpu_hour]
    kept = []
    for _, part in rows.groupby(C.TERM_HOURS_COL, sort=True):
        part = part.sort_values([C.GPU_COUNT, "_rate", C.PURCHASE_OPTION, C.INSTANCE_TYPE], kind="stable")
        part = part.drop_duplicates(C.GPU_COUNT, keep="first")
        per_gpu = (part["_rate"] / part[C.GPU_COUNT]).to_numpy()
        best_smaller = np.minimum.accumulate(np.concatenate([[np.inf], per_gpu[:-1]]))
        kept.append(part[per_gpu < best_smaller - 1e-12])
    if not kept:
        return rows.drop(columns="_rate").iloc[0:0].reset_index(drop=True)
    out = pd.concat(kept).sort_values([C.GPU_COUNT, "_rate", C.PURCHASE_OPTION, C.INSTANCE_TYPE], kind="stable")
    return out.drop(columns="_rate").reset_index(drop=True)


def offers_for(catalog: C.Catalog, gpu_model: str, config: PlanConfig) -> Offers:
    """Offers of the catalog for a GPU model under the config's region, instance types, options and guardrails.

    Instance types in ``config.needs_approval`` and not in ``config.approved`` are left out entirely.
    """
    rows = catalog.offers(config.region, gpu_model, config.instance_types)
    blocked = set(config.needs_approval) - set(config.approved)
    held_back = sorted(set(rows[C.INSTANCE_TYPE]) & blocked)
    rows = rows[~rows[C.INSTANCE_TYPE].isin(blocked)]
    od = rows[rows[C.PURCHASE_OPTION] == ON_DEMAND]
    if od.empty:
        allowed = f" among {', '.join(config.instance_types)}" if config.instance_types else ""
        if held_back:
            raise PlanningError(f"no on-demand price for {gpu_model} in {config.region}{allowed} without approval "
                                f"(capacity: {', '.join(held_back)} need approval; fix: --approve "
                                f"{held_back[0]})")
        raise PlanningError(f"no on-demand price for {gpu_model} in {config.region}{allowed} "
                            "(capacity: demand of this GPU model cannot be served; fix: allow an instance type "
                            "of that GPU model or choose another region)")
    per_gpu = od[C.EFFECTIVE_HOURLY] / od[C.GPU_COUNT]
    best_od = od.loc[per_gpu.idxmin()]
    instance_options = [o for o in config.options if not is_savings_plan(o)]   # savings plans: savings_plans.py
    commitments = useful_commitments(rows[rows[C.PURCHASE_OPTION].isin(instance_options)], float(per_gpu.min()),
                                     config.cost_of_capital)
    share = config.spot_share_for(gpu_model)
    spot_options: list[dict] = []
    if config.allow_spot and share > 0:
        sp = rows[rows[C.PURCHASE_OPTION] == SPOT].copy()
        if not sp.empty:
            sp["rework"] = [C.rework_fraction(b, config.checkpoint_for(gpu_model), config.restart_overhead_hours)
                            for b in sp[C.INTERRUPTION]]
            sp["useful_gpu_rate"] = sp[C.EFFECTIVE_HOURLY] * (1 + sp["rework"]) / sp[C.GPU_COUNT]
            sp = sp[sp["useful_gpu_rate"] < per_gpu.min()].sort_values(["useful_gpu_rate", C.INSTANCE_TYPE],
                                                                        kind="stable")
            capacity = dict(config.spot_capacity)
            for _, best in sp.iterrows():
                cap = capacity.get(str(best[C.INSTANCE_TYPE]))
                if cap is not None and cap <= 0:
                    continue
                spot_options.append({
                    "instance_type": best[C.INSTANCE_TYPE], "gpu_count": float(best[C.GPU_COUNT]),
                    "usd_per_instance_hour": float(best[C.EFFECTIVE_HOURLY]),
                    "rework_fraction": float(best["rework"]),
                    "interruption_bucket": None if pd.isna(best[C.INTERRUPTION]) else str(best[C.INTERRUPTION]),
                    "usd_per_useful_gpu_hour": float(best["useful_gpu_rate"]),
                    "max_instances": None if cap is None else int(cap)})
                if cap is None:
                    break
    return Offers(gpu_model=gpu_model, commitments=commitments, spot=spot_options[0] if spot_options else None,
                  on_demand_instance_type=str(best_od[C.INSTANCE_TYPE]),
                  on_demand_usd_per_gpu_hour=float(per_gpu.min()), spot_options=tuple(spot_options),
                  spot_share=share if spot_options else 0.0)


# --- provider and region of the usage ---------------------------------------------------------------
USAGE_PROVIDER = S.PROVIDER
USAGE_REGION = S.REGION
"""Optional usage columns naming each row's cloud and region; without them the provider comes from
``instance_type`` (:func:`optimizer.catalog.provider_of_instance_type`)."""


PROVIDER_ALIASES = {"amazon web services": "aws", "amazon": "aws", "google cloud": "gcp", "google": "gcp",
                    "google cloud platform": "gcp", "microsoft": "azure", "microsoft azure": "azure"}
"""Provider names as billing exports write them (FOCUS ``ProviderName``), lower-cased, to the catalog's."""


@dataclass(frozen=True)
class UsagePlacement:
    """The usage rows one plan covers: one provider and one region of the catalog.

    Attributes:
        provider: ``aws``, ``gcp`` or ``azure``.
        region: catalog region the rows are priced in.
        usage: the usage rows (canonical columns).
        reason: how the region was chosen, one phrase for the plan's notes.
    """

    provider: str
    region: str
    usage: pd.DataFrame = field(repr=False)
    reason: str = ""


def _row_providers(usage: pd.DataFrame) -> pd.Series:
    """Provider per usage row: the ``provider`` column, else inferred from ``instance_type``; rows with
    neither inherit the provider their (team, GPU type) series runs on (gap-filled hours have no type)."""
    if USAGE_PROVIDER in usage.columns:
        text = usage[USAGE_PROVIDER].astype("string").str.strip()
        named = text.str.lower().map(lambda v: PROVIDER_ALIASES.get(v, v), na_action="ignore").astype("string")
        bad = named.notna() & ~named.isin(C.PROVIDERS)
        if bad.any():
            raise PlanningError(f"usage provider '{text[bad].iloc[0]}' is not a known cloud (fix: write aws, gcp or "
                                "azure in the provider column, or leave it empty to infer it from instance_type)")
    else:
        named = pd.Series(pd.NA, index=usage.index, dtype="string")
    if S.INSTANCE_TYPE in usage.columns:
        types = usage[S.INSTANCE_TYPE].astype("string")
        names = {t: C.provider_of_instance_type(t) for t in types.dropna().unique()}  # one lookup per type
        named = named.fillna(types.map(names).astype("string"))
    if named.notna().any() and named.isna().any():
        keys = [usage[S.TEAM].astype(str).to_numpy(), usage[S.GPU_TYPE].astype(str).to_numpy()]
        usual = named.groupby(keys).transform(lambda p: p.mode().iloc[0] if p.notna().any() else pd.NA)
        named = named.fillna(usual.astype("string"))
    return named


def place_usage(usage: pd.DataFrame, catalog: C.Catalog, region: str | None = None) -> list[UsagePlacement]:
    """Split usage into the (provider, region) groups that are planned separately, never one cloud's usage at
    another cloud's prices.

    Each row's provider is its ``provider`` column, else its ``instance_type``'s naming scheme (``p5.48xlarge``
    aws, ``a2-highgpu-8g`` gcp, ``Standard_ND96isr_H100_v5`` azure). Its region is the usage's ``region``
    column, else ``region`` (the ``--region`` asked for) when that region is the provider's, else the
    provider's default region (:data:`optimizer.catalog.DEFAULT_REGION`). Usage that names no provider at all
    (only GPU types) is planned in ``region``, or us-east-1.

    Args:
        usage: canonical usage rows.
        catalog: the price catalog (tells which provider a region belongs to).
        region: the region asked for, or None to take it from the usage.

    Returns:
        One placement per (provider, region), AWS first, then GCP, then Azure.

    Raises:
        PlanningError: ``region`` or a usage region is not in the catalog, or rows that name no provider sit
            beside rows of two or more providers (nothing tells which cloud they run on).
    """
    asked = None
    if region is not None:
        asked = catalog.provider_of_region(region)
        if asked is None:
            catalog.region(region)  # raises the catalog's one-line error naming known regions
    providers = _row_providers(usage)
    known = sorted(set(providers.dropna()), key=C.PROVIDERS.index)
    if providers.isna().any():
        fallback = asked or (known[0] if len(known) == 1 else None)
        if fallback is None and not known:
            fallback = "aws"
        if fallback is None:
            raise PlanningError(f"{int(providers.isna().sum()):,} usage rows name no instance_type or provider, "
                                f"beside usage on {' and '.join(known)} (fix: add an instance_type or provider "
                                "column, or plan each cloud's usage with --region)")
        providers = providers.fillna(fallback)
    if USAGE_REGION in usage.columns:
        regions = usage[USAGE_REGION].astype("string").str.strip()
    else:
        regions = pd.Series(pd.NA, index=usage.index, dtype="string")
    out = []
    for provider in sorted(set(providers), key=C.PROVIDERS.index):
        rows = providers == provider
        if asked == provider:
            default, why = str(region), "the region asked for"
        else:
            default = C.DEFAULT_REGION[provider]
            why = f"{provider}'s default region" + (f" (--region {region} is {asked}'s)" if region else "")
        for name in sorted(set(regions[rows].fillna(default))):
            part = rows & regions.fillna(default).eq(name)
            owner = catalog.provider_of_region(name)
            if owner is None:
                catalog.region(name)
            if owner != provider:
                raise PlanningError(f"usage region '{name}' belongs to {owner}, but its rows run on {provider} "
                                    f"instance types (fix: correct the region or the provider column)")
            reason = "the usage's region column" if name != default or regions[part].notna().all() else why
            out.append(UsagePlacement(provider=provider, region=str(name),
                                      usage=usage[part.to_numpy()].reset_index(drop=True), reason=reason))
    return out
