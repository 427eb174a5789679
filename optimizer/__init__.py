"""Purchase planning: price catalog, the commitment/spot/on-demand MILP, plans, billing and summaries.

Units: USD, USD per instance-hour or per GPU-hour, GPUs, hours (see each module's docstring).
"""

from __future__ import annotations

import pandas as pd

from optimizer.catalog import Catalog, load_catalog
from optimizer.inputs import PlanConfig, PlanningError, scenarios_from_paths
from optimizer.plan import Plan
from optimizer.solve import PlanResult, make_plan
from optimizer.summary import summary
from usage import schema as S


def plan_purchases(forecast, start: str | pd.Timestamp, hours: int, *, catalog: Catalog | None = None,
                   history: pd.DataFrame | None = None, **settings) -> PlanResult:
    """Plan the window [start, start + hours) with the shipped catalog by default.

    Args:
        forecast: a ``forecasting.ForecastResult`` (planned over its joint sample paths, which keep how teams
            move together) or a forecast frame with p10/p50/p90 (planned over those three scenarios).
        start: first hour of the window (UTC).
        hours: window length.
        catalog: price catalog (default: the shipped snapshot).
        history: the usage the forecast was made from. With it, the plan is made as ``gpuplan plan`` makes it
            (:func:`optimizer.term.plan_scenarios`): its last 60 days are replayed next to the sample paths and
            each commitment is judged over its whole term with the long-term forecast of the history. Without
            it, the plan is judged on the window alone.
        **settings: :class:`PlanConfig` fields (region, options, allow_spot, max_spot_share, growth,
            cost_of_capital, ...).
    """
    from dataclasses import replace

    from optimizer.term import plan_scenarios

    ts = pd.Timestamp(start)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    config = PlanConfig(start=ts, hours=hours, **settings)
    catalog = catalog or load_catalog()
    frame = getattr(forecast, "forecast", forecast)
    long = getattr(forecast, "long", None)
    if history is None:
        config = replace(config, term_horizon=False)
        scenarios = scenarios_from_paths(long, config) if long is not None else None
        return make_plan(frame, catalog, config, scenarios=scenarios)
    past = history[history[S.TIMESTAMP] < ts]
    scenarios = plan_scenarios(config, past, long=long, forecast=None if long is not None else frame)
    return make_plan(frame, catalog, config, scenarios=scenarios)


__all__ = ["Catalog", "Plan", "PlanConfig", "PlanResult", "PlanningError", "load_catalog", "make_plan",
           "plan_purchases", "summary"]
