"""What-if levers that are not plain :class:`optimizer.inputs.PlanConfig` fields, as pure functions.

No streamlit here: :mod:`app.state` caches these calls and the pages only draw their results.

- :func:`commitment_options`: allowed terms (1y/3y) x payment options (no/partial/all upfront) as the
  catalog's purchase-option names (reserved and convertible).
- :func:`with_spot_terms`: a catalog whose spot prices are ``on-demand x (1 - discount)`` of the same
  instance type and/or whose spot interruption bucket is overridden (rework follows the bucket).
- :func:`events_from_text`: a planned-events file (YAML or CSV text) validated by :mod:`forecasting.events`.
- :func:`spot_time_overhead`: the extra wall-clock time spot rework adds, as a share of GPU-hours.
- :func:`plan_figures` / :func:`plan_deltas`: a plan's key figures (inside the window and over the commitment
  terms) and their change against the base scenario.

Planned events reach the plan's scenarios through :func:`optimizer.term.plan_scenarios` (``app.state``), the
one recipe ``gpuplan plan`` uses.

Units: demand in GPUs per hour (= GPU-hours per hour), prices in USD per instance-hour, money in USD,
discounts, shares and overheads as fractions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.events import Event, load_events
from optimizer import catalog as C
from optimizer.billing import model_cost_arrays
from optimizer.options import KINDS, ON_DEMAND, PAYMENTS, SPOT, TERMS, commitment_option
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


def spot_time_overhead(result: PlanResult) -> float:
    """Extra GPU-hours of wall-clock work spot rework adds, as a share of all demand (expected, 0..).

    Each useful spot GPU-hour takes ``1 + rework_fraction`` GPU-hours of spot time, so a plan that runs a
    share ``s`` of its GPU-hours on spot with rework ``r`` stretches that work by ``s x r`` on average.
    """
    sc = result.scenarios
    w = np.asarray(sc.weights, dtype=float)
    extra = total = 0.0
    joint, _ = model_cost_arrays(result.plan, {g: sc.demand[g] for g in sc.gpu_models}, sc.hours)  # savings plans
    for gpu in sc.gpu_models:
        arrays = joint[gpu]
        rework = max((s.rework_fraction for s in result.plan.spot if s.gpu_model == gpu), default=0.0)
        extra += float(w @ arrays["spot_gpus"].sum(axis=1)) * rework
        total += float(w @ arrays["demand_gpus"].sum(axis=1))
    return extra / total if total > 0 else 0.0


def plan_figures(result: PlanResult) -> dict[str, float | None]:
    """The figures the What-if compares (USD, GPUs, fractions).

    Inside the window: ``expected_usd`` (the window cost), its p10/p90 and parts, savings vs all on-demand.
    Over the commitment terms: ``obligation_total_usd`` (the new commitments' obligation over their full terms),
    ``obligation_after_window_usd``, ``upfront_usd`` (cash at purchase), ``horizon_total_usd`` and
    ``present_value_usd`` (at the plan's cost of capital); the last two are None for a plan judged on the window
    alone (e.g. no commitment options allowed)."""
    plan = result.plan
    e = plan.expected
    obligation = e.obligation_total_usd if e.obligation_total_usd is not None else commitment_obligation_usd(plan)
    return {"expected_usd": e.total_usd, "p10_usd": e.total_p10_usd or 0.0, "p90_usd": e.total_p90_usd or 0.0,
            "committed_usd": e.committed_usd, "spot_usd": e.spot_usd, "on_demand_usd": e.on_demand_usd,
            "all_on_demand_usd": e.all_on_demand_usd, "savings_usd": e.savings_usd, "upfront_usd": e.upfront_usd,
            "committed_gpus": float(sum(c.gpus for c in plan.commitments if not c.existing)),
            "commitment_obligation_usd": obligation, "obligation_total_usd": obligation,
            "obligation_after_window_usd": (e.obligation_after_window_usd
                                            if e.obligation_after_window_usd is not None else obligation),
            "horizon_total_usd": e.horizon_total_usd, "present_value_usd": e.present_value_usd,
            "spot_time_overhead": spot_time_overhead(result)}


def plan_deltas(base: dict[str, float | None], current: dict[str, float | None]) -> dict[str, float | None]:
    """``current - base`` for every figure both have (None when either is None)."""
    return {k: None if current[k] is None or base[k] is None else current[k] - base[k] for k in current if k in base}
