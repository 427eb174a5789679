"""Replay a usage trace to score purchase plans: decide on the history before a date, bill the real demand after.

For each origin (the first hour of a billed window), the plan is decided on the usage strictly before the
origin (forecast, then the optimizer over joint sample paths, as ``gpuplan plan`` does), and so are the
cloud look-back recommenders; all on-demand needs no decision; the hindsight optimum is given the realised
demand. Every plan is billed on the realised demand of the window by :func:`optimizer.billing.bill`.
``origins`` > 1 steps back by the window length, so windows do not overlap.

Units: costs in USD over the billed windows; demand and spot in GPU-hours; shares are fractions of the
window's GPU-hours; ``hours`` and history lengths in hours.

Full term (``BacktestPlanConfig.full_term``, ``gpuplan backtest-plan --full-term``): each plan is judged over its
commitments' whole terms. The plan is made over its term horizon (:mod:`optimizer.term`); every method, the plan
judged on the window alone included (``plan (window only)``, what ignoring the term costs), is billed on the realised
demand from the origin to the end of the longest term with :func:`optimizer.billing.bill_term` (the window by the
serving rule, then month by month with the term plan's spot offers), and the hindsight optimum knows the realised
demand of the whole term. The trace must cover every origin's whole term.

Spot share: a plan fixes a number of spot instances and, on each allowance, the spot share cap
(``max_spot_share``), which the serving rule enforces on the billed window itself (optimizer.billing), so
the hindsight optimum bounds every plan up to the MIP gap. ``spot_share`` reports the realised share, and
``capped_usd`` bills spot GPU-hours beyond the cap at on-demand instead: the same as the bill for plans
that carry the share, and the cost of holding the policy for plan.json files written without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from optimizer.baselines import LOOKBACK_DAYS, all_on_demand_plan, hindsight_plan, lookback_plan
from optimizer.billing import Bill, bill, bill_term
from optimizer.catalog import Catalog
from optimizer.inputs import PLAN_PATHS, PlanConfig, PlanningError
from optimizer.options import DEFAULT_COMMITMENT_OPTIONS, term_hours
from optimizer.plan import Plan
from optimizer.solve import make_plan
from usage import schema as S

Planner = Callable[[pd.DataFrame, Catalog, list[PlanConfig]], list[Plan]]
"""Decides plans from the usage history (rows strictly before the window) for each config (same window)."""
Progress = Callable[[str], None]

PLAN = "plan"
PLAN_WINDOW_ONLY = "plan (window only)"
ALL_ON_DEMAND = "all on-demand"
HINDSIGHT = "hindsight"


def lookback_name(days: int) -> str:
    return f"look-back {days}d"


@dataclass(frozen=True)
class BacktestPlanConfig:
    """What to replay.

    Attributes:
        hours: billed window length after each origin.
        at: first hour of the latest window (None = the last ``hours`` of the trace).
        origins: number of windows, each ``hours`` before the previous one.
        spot_modes: which variants to run (True = spot allowed, False = no spot).
        lookback_days: look-back recommender variants (days).
        region / options / max_spot_share: the plan settings every plan shares.
        history_hours: hours of history the forecast fits on (None = all).
        min_history_hours: the least history before the earliest origin (the shortest look-back).
        n_paths: joint sample paths the plan is optimised over.
        full_term: bill every method over the whole commitment term after each origin (module docstring).
        step_hours: hours between origins (default: the window length).
        cost_of_capital: the plans' annual cost of capital. 0 by default: the bill is then what every plan
            minimises, so the hindsight optimum bounds it (with a cost of capital plans minimise present value and
            would be judged on cash that is not discounted).
    """

    hours: int = 168
    at: pd.Timestamp | None = None
    origins: int = 1
    spot_modes: tuple[bool, ...] = (True, False)
    lookback_days: tuple[int, ...] = LOOKBACK_DAYS
    region: str = "us-east-1"
    options: tuple[str, ...] = DEFAULT_COMMITMENT_OPTIONS
    max_spot_share: float = 0.3
    history_hours: int | None = 1344
    min_history_hours: int = 168
    n_paths: int = PLAN_PATHS
    full_term: bool = False
    step_hours: int | None = None
    cost_of_capital: float = 0.0

    def __post_init__(self) -> None:
        if self.hours < 1:
            raise PlanningError("the billed window must be at least 1 hour (fix: --hours N with N >= 1)")
        if self.origins < 1:
            raise PlanningError("at least one origin is needed (fix: --origins N with N >= 1)")
        if not self.spot_modes:
            raise PlanningError("no spot variant chosen (fix: --spot, --no-spot or neither for both)")
        if not self.lookback_days or min(self.lookback_days) < 1:
            raise PlanningError("look-backs must be whole days >= 1 (fix: e.g. --lookbacks 7,30,60)")
        if self.step_hours is not None and self.step_hours < 1:
            raise PlanningError("origins must be at least 1 hour apart (fix: --step-hours N with N >= 1)")

    @property
    def step(self) -> int:
        return self.step_hours or self.hours

    @property
    def term_hours(self) -> int:
        """Hours from an origin to the end of the longest term (the window alone without ``full_term``)."""
        longest = max((term_hours(o) for o in self.options), default=0)
        return max(self.hours, longest) if self.full_term else self.hours


@dataclass(frozen=True)
class PlanBacktest:
    """Replay results.

    Attributes:
        per_origin: one row per origin x spot mode x method: ``origin, spot, method, billed_usd,
            capped_usd, all_on_demand_usd, hindsight_usd, vs_hindsight, savings_pct, spot_share,
            commitment_utilization, committed_gpus, lookback_hours_used``.
        summary: per spot mode and method, totals over origins: ``spot, method, billed_usd, vs_hindsight,
            savings_pct, capped_usd, capped_vs_hindsight, worst_vs_hindsight, spot_share, origins``.
        windows: the origins (first hour of each billed window), latest first.
    """

    per_origin: pd.DataFrame
    summary: pd.DataFrame
    windows: tuple[pd.Timestamp, ...]


def forecast_planner(history_hours: int | None = 1344, n_paths: int = PLAN_PATHS,
                     longterm_settings: dict | None = None, history_weight: float | None = None,
                     replay_tail: bool | None = None) -> Planner:
    """The pipeline's planner: forecast the window from the history (default model set), then plan each config
    over the scenarios ``gpuplan plan`` uses (:func:`optimizer.term.plan_scenarios`: joint sample paths plus the
    replayed recent history, carried through the commitment term by the long-term forecast when the config
    judges commitments over their terms; one long-term forecast is shared by the configs). ``longterm_settings``
    override :data:`optimizer.term.LONGTERM_SETTINGS` and ``history_weight`` the replay's weight (for tuning)."""
    from forecasting.engine import ForecastConfig, default_n_jobs, forecast
    from optimizer.inputs import HISTORY_WEIGHT
    from optimizer.term import NEAR_HOURS, plan_scenarios, planner_longterm

    weight = HISTORY_WEIGHT if history_weight is None else history_weight

    def plan(history: pd.DataFrame, catalog: Catalog, configs: list[PlanConfig]) -> list[Plan]:
        last = history[S.TIMESTAMP].max()
        near = max(min(c.hours, NEAR_HOURS) if c.term_horizon else c.hours for c in configs)
        horizon = int((configs[0].start + pd.Timedelta(hours=near) - last) / pd.Timedelta(hours=1)) - 1
        result = forecast(history, ForecastConfig(horizon_hours=horizon, history_hours=history_hours,
                                                  n_jobs=default_n_jobs()))
        longterm = {}
        plans = []
        for c in configs:
            lt = None
            if c.term_horizon and c.horizon_end > c.end:
                key = c.horizon_end
                if key not in longterm:
                    longterm[key] = planner_longterm(history, c, **(longterm_settings or {}))
                lt = longterm[key]
            sc = plan_scenarios(c, history, long=result.long, longterm=lt, n_paths=n_paths, history_weight=weight,
                                replay_tail=replay_tail)
            plans.append(make_plan(result.forecast, catalog, c, scenarios=sc).plan)
        return plans

    return plan


def capped_cost(billed: Bill, config: PlanConfig) -> float:
    """The bill with spot GPU-hours beyond each GPU model's spot share cap (``config.spot_share_for``) of its
    demand re-priced at that model's on-demand rate (USD): the cost of serving the window within the policy."""
    h = billed.hourly
    total = billed.total_usd
    for gpu_model, rows in h.groupby(S.GPU_TYPE):
        spot_gh = float(rows["spot_gpus"].sum())
        share = config.spot_share_for(str(gpu_model)) if config.allow_spot else 0.0
        over = spot_gh - share * float(rows["demand_gpus"].sum())
        if over <= 1e-9 or spot_gh <= 0:
            continue
        demand_gh = float(rows["demand_gpus"].sum())
        od_rate = float(rows["all_on_demand_usd"].sum()) / demand_gh
        spot_rate = float(rows["spot_usd"].sum()) / spot_gh
        total += over * (od_rate - spot_rate)
    return total


def window_origins(usage: pd.DataFrame, config: BacktestPlanConfig) -> tuple[pd.Timestamp, ...]:
    """First hours of the billed windows, latest first, checked against the trace.

    Raises:
        PlanningError: a window (with ``full_term``: a whole term) outside the trace, or too little history before
            the earliest one.
    """
    first, last = usage[S.TIMESTAMP].min(), usage[S.TIMESTAMP].max()
    span_h = pd.Timedelta(hours=config.term_hours)
    step = pd.Timedelta(hours=config.step)
    at = config.at if config.at is not None else last + pd.Timedelta(hours=1) - span_h
    span = f"the trace covers {first:%Y-%m-%dT%H:%M}Z to {last:%Y-%m-%dT%H:%M}Z"
    what = "the whole term" if config.full_term else "the window"
    if at + span_h - pd.Timedelta(hours=1) > last or at <= first:
        raise PlanningError(f"{what} from {at:%Y-%m-%dT%H:%M}Z + {config.term_hours:,} h is outside the trace "
                            f"({span}; fix: --at between "
                            f"{first + pd.Timedelta(hours=config.min_history_hours):%Y-%m-%d} and "
                            f"{last + pd.Timedelta(hours=1) - span_h:%Y-%m-%dT%H:%M}Z, or fewer --hours)")
    origins = tuple(at - i * step for i in range(config.origins))
    have = int((origins[-1] - first) / pd.Timedelta(hours=1))
    if have < config.min_history_hours:
        raise PlanningError(f"only {have} h of history before the earliest window {origins[-1]:%Y-%m-%dT%H:%M}Z "
                            f"({config.origins} origin(s) {config.step} h apart; {span}); at least "
                            f"{config.min_history_hours} h are needed (fix: fewer --origins, fewer --hours or a "
                            "later --at)")
    return origins


def backtest_plan(usage: pd.DataFrame, catalog: Catalog, config: BacktestPlanConfig, *,
                  planner: Planner | None = None, progress: Progress | None = None) -> PlanBacktest:
    """Decide plans before each origin, bill the next ``config.hours`` of realised demand (with ``full_term``: the
    whole term after the origin), compare.

    Args:
        usage: canonical usage frame (validated; ``timestamp, team, gpu_type, gpus``).
        catalog: price catalog.
        config: windows and plan settings.
        planner: decides the plan from the history (default :func:`forecast_planner`).
        progress: optional callback receiving one line per step.

    Raises:
        PlanningError: windows outside the trace, too little history, or an infeasible plan.
    """
    say = progress or (lambda _msg: None)
    origins = window_origins(usage, config)
    if planner is None:
        planner = forecast_planner(config.history_hours, config.n_paths)
    rows = []
    for i, origin in enumerate(origins, 1):
        history = usage[usage[S.TIMESTAMP] < origin]
        end = origin + pd.Timedelta(hours=config.term_hours)
        actual = usage[(usage[S.TIMESTAMP] >= origin) & (usage[S.TIMESTAMP] < end)]
        window_end = origin + pd.Timedelta(hours=config.hours)
        in_window = actual[actual[S.TIMESTAMP] < window_end]
        models = tuple(sorted(set(actual[S.GPU_TYPE]) | set(history[S.GPU_TYPE])))
        configs = [PlanConfig(start=origin, hours=config.hours, region=config.region, options=config.options,
                              allow_spot=spot, max_spot_share=config.max_spot_share, term_horizon=config.full_term,
                              cost_of_capital=config.cost_of_capital) for spot in config.spot_modes]
        if config.full_term:
            configs += [replace(c, term_horizon=False) for c in configs]
        say(f"origin {i}/{len(origins)} {origin:%Y-%m-%dT%H:%M}Z: forecasting and planning")
        plans = planner(history, catalog, configs)
        for k, spot in enumerate(config.spot_modes):
            cfg, plan = configs[k], plans[k]
            say(f"origin {i}/{len(origins)}: baselines ({'with' if spot else 'without'} spot)")
            contenders: list[tuple[str, Plan]] = [(PLAN, plan)]
            if config.full_term:
                contenders.append((PLAN_WINDOW_ONLY, plans[len(config.spot_modes) + k]))
            contenders.append((ALL_ON_DEMAND, all_on_demand_plan(catalog, cfg, models)))
            contenders += [(lookback_name(d), lookback_plan(history, catalog, cfg, d, models))
                           for d in config.lookback_days]
            contenders.append((HINDSIGHT, hindsight_plan(actual if config.full_term else in_window, catalog, cfg,
                                                         models, term=config.full_term)))
            for method, p in contenders:
                if config.full_term:
                    p = replace(p, term=plan.term) if method != HINDSIGHT else p
                    billed = bill_term(p, actual)
                else:
                    billed = bill(p, actual)
                t = billed.totals()
                util = t["commitment_utilization"]
                rows.append({
                    "origin": origin, "spot": spot, "method": method, "billed_usd": t["total_usd"],
                    "capped_usd": capped_cost(billed, cfg),
                    "all_on_demand_usd": t["all_on_demand_usd"],
                    "spot_share": t["spot_gpus"] / t["demand_gpus"] if t["demand_gpus"] > 0 else 0.0,
                    "commitment_utilization": None if np.isnan(util) else util,
                    "committed_gpus": float(sum(c.gpus for c in p.commitments if c.start <= origin)),
                    "lookback_hours_used": p.assumptions.get("lookback_hours_used")})
    per_origin = pd.DataFrame(rows)
    hind = per_origin[per_origin["method"] == HINDSIGHT].set_index(["origin", "spot"])["billed_usd"]
    per_origin["hindsight_usd"] = hind.reindex(pd.MultiIndex.from_frame(per_origin[["origin", "spot"]])).to_numpy()
    per_origin["vs_hindsight"] = per_origin["billed_usd"] / per_origin["hindsight_usd"]
    per_origin["savings_pct"] = 100.0 * (1.0 - per_origin["billed_usd"] / per_origin["all_on_demand_usd"])
    return PlanBacktest(per_origin=per_origin, summary=summarise(per_origin), windows=origins)


def summarise(per_origin: pd.DataFrame) -> pd.DataFrame:
    """Totals over origins per spot mode and method (ratios of sums, so long windows weigh more)."""
    order = {m: i for i, m in enumerate(per_origin["method"].drop_duplicates())}
    g = per_origin.groupby(["spot", "method"], sort=False)
    out = g.agg(billed_usd=("billed_usd", "sum"), capped_usd=("capped_usd", "sum"),
                all_on_demand_usd=("all_on_demand_usd", "sum"), hindsight_usd=("hindsight_usd", "sum"),
                worst_vs_hindsight=("vs_hindsight", "max"), spot_share=("spot_share", "mean"),
                origins=("origin", "nunique")).reset_index()
    out["vs_hindsight"] = out["billed_usd"] / out["hindsight_usd"]
    out["capped_vs_hindsight"] = out["capped_usd"] / out["hindsight_usd"]
    out["savings_pct"] = 100.0 * (1.0 - out["billed_usd"] / out["all_on_demand_usd"])
    out = out.sort_values(["spot", "method"], key=lambda s: s.map(order) if s.name == "method" else ~s.astype(bool),
                          kind="stable").reset_index(drop=True)
    return out[["spot", "method", "billed_usd", "vs_hindsight", "savings_pct", "capped_usd", "capped_vs_hindsight",
                "worst_vs_hindsight", "spot_share", "all_on_demand_usd", "hindsight_usd", "origins"]]


def verdict(summary: pd.DataFrame, target: float = 1.10) -> list[str]:
    """One line per spot mode: does the plan meet ``cost <= target x hindsight`` and beat every look-back?

    With spot, the same question is also answered on the cost held to the spot share cap (``capped_usd``).
    """
    lines = []
    for spot, rows in summary.groupby("spot", sort=False):
        r = rows.set_index("method")
        if PLAN not in r.index:
            continue
        looks = r[r.index.str.startswith("look-back")]
        parts = []
        for col, ratio, label in (("billed_usd", "vs_hindsight", "billed"),
                                  ("capped_usd", "capped_vs_hindsight", "held to the spot cap")):
            plan = r.loc[PLAN]
            lost = [m for m in looks.index if not plan[col] < looks.loc[m, col]]
            ok = plan[ratio] <= target and not lost
            parts.append(f"{label}: plan {plan[ratio]:.3f} x hindsight (target <= {target:.2f}), below "
                         f"{len(looks) - len(lost)}/{len(looks)} look-back variants"
                         + (f" (not below {', '.join(lost)})" if lost else "") + (" -> met" if ok else " -> NOT met"))
            if not spot:
                break
        if PLAN_WINDOW_ONLY in r.index:
            extra = r.loc[PLAN_WINDOW_ONLY, "billed_usd"] - r.loc[PLAN, "billed_usd"]
            parts.append(f"judging commitments on the window alone costs {extra:+,.0f} USD over the terms "
                         f"({100 * extra / r.loc[PLAN, 'billed_usd']:+.1f}%)")
        lines.append(f"{'with' if spot else 'without'} spot, " + "; ".join(parts))
    return lines


__all__ = ["ALL_ON_DEMAND", "HINDSIGHT", "PLAN", "PLAN_WINDOW_ONLY", "BacktestPlanConfig", "PlanBacktest",
           "backtest_plan", "capped_cost", "forecast_planner", "lookback_name", "summarise", "verdict",
           "window_origins"]
