"""What-if levers that are not plain :class:`optimizer.inputs.PlanConfig` fields, as pure functions.

No streamlit here: :mod:`app.state` caches these calls and the pages only draw their results.

- :func:`commitment_options`: allowed terms (1y/3y) x payment options (no/partial/all upfront) as the
  catalog's purchase-option names (reserved and convertible).
- :func:`with_spot_terms`: a catalog whose spot prices are ``on-demand x (1 - discount)`` of the same
  instance type and/or whose spot interruption bucket is overridden (rework follows the bucket).
- :func:`events_from_text`: a planned-events file (YAML or CSV text) validated by :mod:`forecasting.events`.
- :func:`scenarios_with_events`: the engine's joint sample paths with planned events applied per series,
  then summed per GPU model (what the optimizer plans over).
- :func:`spot_time_overhead`: the extra wall-clock time spot rework adds, as a share of GPU-hours.
- :func:`plan_deltas`: a plan's key figures minus the base scenario's.

Units: demand in GPUs per hour (= GPU-hours per hour), prices in USD per instance-hour, money in USD,
discounts, shares and overheads as fractions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting import schema as S
from forecasting.engine import LongForecast, sample_paths
from forecasting.events import Event, apply_events, load_events
from optimizer import catalog as C
from optimizer.billing import cost_arrays, pricing_for
from optimizer.inputs import PLAN_PATHS, PlanConfig, Scenarios, scenarios_from_paths
from optimizer.options import KINDS, ON_DEMAND, PAYMENTS, SPOT, TERMS, commitment_option
from optimizer.rightsizing import Routing
from optimizer.solve import PlanResult
from optimizer.summary import commitment_obligation_usd


def commitment_options(terms: tuple[str, ...], payments: tuple[str, ...],
                       kinds: tuple[str, ...] = KINDS) -> tuple[str, ...]:
    """Purchase-option names for the allowed terms and payment options (empty = no commitments at all).

    Args:
        terms: subset of ``optimizer.options.TERMS`` (``1y``, ``3y``).
        payments: subset of ``optimizer.options.PAYMENTS`` (``no``, ``partial``, ``all``).
        kinds: ``reserved`` and/or ``convertible``.
    """
    bad = [t for t in terms if t not in TERMS] + [p for p in payments if p not in PAYMENTS]
    if bad:
        raise ValueError(f"unknown term or payment option '{bad[0]}' (fix: use {', '.join(TERMS)} and "
                         f"{', '.join(PAYMENTS)})")
    return tuple(commitment_option(k, t, p) for k in kinds for t in TERMS if t in terms
                 for p in PAYMENTS if p in payments)


def with_spot_terms(catalog: C.Catalog, discount: float | None = None,
                    interruption_bucket: str | None = None) -> C.Catalog:
    """The catalog with spot prices and/or interruption buckets overridden (the input is not changed).

    Args:
        catalog: the price catalog.
        discount: spot price = on-demand price of the same instance type and region x (1 - discount);
            ``None`` keeps the catalog's spot prices. Spot rows of types without an on-demand price keep
            theirs.
        interruption_bucket: one of ``catalog.INTERRUPTION_BUCKETS`` for every spot row; ``None`` keeps
            the catalog's buckets.
    """
    if discount is None and interruption_bucket is None:
        return catalog
    if discount is not None and not 0.0 <= discount < 1.0:
        raise ValueError(f"spot discount {discount:.0%} must be between 0% and 99%")
    if interruption_bucket is not None and interruption_bucket not in C.INTERRUPTION_BUCKETS:
        raise ValueError(f"unknown interruption bucket '{interruption_bucket}' "
                         f"(fix: use one of {', '.join(C.INTERRUPTION_BUCKETS)})")
    table = catalog.table.copy()
    spot = table[C.PURCHASE_OPTION] == SPOT
    if discount is not None:
        od = table[table[C.PURCHASE_OPTION] == ON_DEMAND].drop_duplicates([C.REGION, C.INSTANCE_TYPE])
        od_price = od.set_index([C.REGION, C.INSTANCE_TYPE])[C.EFFECTIVE_HOURLY]
        keys = pd.MultiIndex.from_frame(table.loc[spot, [C.REGION, C.INSTANCE_TYPE]])
        price = od_price.reindex(keys).to_numpy() * (1.0 - discount)
        has = ~np.isnan(price)
        idx = table.index[spot][has]
        table.loc[idx, C.EFFECTIVE_HOURLY] = price[has]
        table.loc[idx, C.RECURRING_HOURLY] = price[has]
    if interruption_bucket is not None:
        table[C.INTERRUPTION] = table[C.INTERRUPTION].astype("string")
        table.loc[spot, C.INTERRUPTION] = interruption_bucket
    return C.Catalog(table=table, path=catalog.path)


def events_from_text(text: str, name: str, known_gpu_types: set[str] | None = None) -> tuple[Event, ...]:
    """Validate a planned-events file given as text (``name`` ends in .yaml, .yml or .csv).

    The text goes through :func:`forecasting.events.load_events`, so errors name the file, item or line,
    field and fix exactly as ``gpuplan`` reports them.
    """
    if not text.strip():
        return ()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_text(text, encoding="utf-8")
        return load_events(path, known_gpu_types=known_gpu_types)


def scenarios_with_events(long: LongForecast, config: PlanConfig, events: tuple[Event, ...],
                          n_paths: int = PLAN_PATHS, seed: int = 0, routing: Routing | None = None) -> Scenarios:
    """The planner's sample-path scenarios with planned events applied to every path of every series.

    Each (team, GPU type) series' paths are treated as extra quantile columns of the forecast, so an
    ``add`` moves every path up by its GPUs, a ``scale`` multiplies them, a ``set`` fixes them and a
    ``wind_down`` ramps them to zero, exactly as :func:`forecasting.events.apply_events` does for
    quantiles. Series created by events (a new team) join their GPU model's demand. Growth settings
    apply to the event-adjusted demand as in :func:`optimizer.inputs.scenarios_from_paths`. With ``routing``
    (rightsizing, :mod:`optimizer.rightsizing`) every event-adjusted series moves to its routed GPU model, its
    GPUs multiplied by old / new throughput, as ``gpuplan plan --workloads`` routes its forecast.
    """
    gpu_map = dict(routing.assignment) if routing is not None else None
    base = scenarios_from_paths(long, config, n_paths=n_paths, seed=seed, gpu_map=gpu_map)
    if not events:
        return base
    hours = base.hours
    paths = sample_paths(long, n_paths, seed)
    cols = [f"path{i}" for i in range(n_paths)]
    frames = []
    for uid, rows in long.forecast.groupby(S.UID, sort=False):
        team, gpu = str(uid).split(S.UID_SEP, 1)
        ts = pd.DatetimeIndex(rows[S.DS])
        pos = ts.get_indexer(hours)
        frame = pd.DataFrame(paths[uid][:, np.clip(pos, 0, None)].T, columns=cols)
        frame.insert(0, S.MEAN, rows[S.MEAN].to_numpy(dtype=float)[np.clip(pos, 0, None)])
        frame.insert(0, S.TIMESTAMP, hours)
        frame.insert(0, S.GPU_TYPE, gpu)
        frame.insert(0, S.TEAM, team)
        frames.append(frame)
    before = pd.concat(frames, ignore_index=True)
    after, _ = apply_events(before, events, time_col=S.TIMESTAMP, quantile_cols=cols,
                            period=pd.Timedelta(hours=1))
    if gpu_map is not None:
        before, after = _routed(before, gpu_map, cols), _routed(after, gpu_map, cols)
    growth = dict(config.team_growth)

    def per_model(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        mult = (1.0 + config.growth) * frame[S.TEAM].map(lambda t: 1.0 + growth.get(t, 0.0)).to_numpy()
        scaled = frame[cols].to_numpy(dtype=float) * mult[:, None]
        out = {}
        for gpu, idx in frame.groupby(S.GPU_TYPE).indices.items():
            sub = pd.DataFrame(scaled[idx], index=frame[S.TIMESTAMP].to_numpy()[idx])
            out[gpu] = sub.groupby(level=0).sum().reindex(hours, fill_value=0.0).to_numpy().T
        return out

    old, new = per_model(before), per_model(after)
    demand = {g: np.asarray(base.demand.get(g, 0.0) + new[g] - old.get(g, 0.0)) for g in new}
    demand = {g: np.clip(d, 0.0, None) for g, d in demand.items()}
    return Scenarios(hours=hours, gpu_models=tuple(sorted(demand)), names=base.names, weights=base.weights,
                     demand=demand)


def _routed(frame: pd.DataFrame, gpu_map: dict[tuple[str, str], tuple[str, float]], cols: list[str]) -> pd.DataFrame:
    """Series rows moved to their routed GPU model, path columns multiplied by old / new throughput."""
    pairs = list(zip(frame[S.TEAM], frame[S.GPU_TYPE], strict=True))
    target = [gpu_map.get(k, (k[1], 1.0)) for k in pairs]
    out = frame.copy()
    out[S.GPU_TYPE] = [t[0] for t in target]
    out[cols] = frame[cols].to_numpy(dtype=float) * np.array([t[1] for t in target], dtype=float)[:, None]
    return out


def spot_time_overhead(result: PlanResult) -> float:
    """Extra GPU-hours of wall-clock work spot rework adds, as a share of all demand (expected, 0..).

    Each useful spot GPU-hour takes ``1 + rework_fraction`` GPU-hours of spot time, so a plan that runs a
    share ``s`` of its GPU-hours on spot with rework ``r`` stretches that work by ``s x r`` on average.
    """
    sc = result.scenarios
    w = np.asarray(sc.weights, dtype=float)
    extra = total = 0.0
    for gpu in sc.gpu_models:
        arrays = cost_arrays(sc.demand[gpu], pricing_for(result.plan, gpu, sc.hours))
        rework = max((s.rework_fraction for s in result.plan.spot if s.gpu_model == gpu), default=0.0)
        extra += float(w @ arrays["spot_gpus"].sum(axis=1)) * rework
        total += float(w @ arrays["demand_gpus"].sum(axis=1))
    return extra / total if total > 0 else 0.0


def plan_figures(result: PlanResult) -> dict[str, float]:
    """The figures the What-if compares (USD, GPUs, fractions)."""
    e = result.plan.expected
    return {"expected_usd": e.total_usd, "p10_usd": e.total_p10_usd or 0.0, "p90_usd": e.total_p90_usd or 0.0,
            "committed_usd": e.committed_usd, "spot_usd": e.spot_usd, "on_demand_usd": e.on_demand_usd,
            "all_on_demand_usd": e.all_on_demand_usd, "savings_usd": e.savings_usd, "upfront_usd": e.upfront_usd,
            "committed_gpus": float(sum(c.gpus for c in result.plan.commitments)),
            "commitment_obligation_usd": commitment_obligation_usd(result.plan),
            "spot_time_overhead": spot_time_overhead(result)}


def plan_deltas(base: dict[str, float], current: dict[str, float]) -> dict[str, float]:
    """``current - base`` for every figure both have."""
    return {k: current[k] - base[k] for k in current if k in base}
