"""Purchase planning: price catalog, the commitment/spot/on-demand MILP, plans, billing and summaries.

Units: USD, USD per instance-hour or per GPU-hour, GPUs, hours (see each module's docstring).
"""

from __future__ import annotations

import pandas as pd

from forecasting import schema as S
from optimizer.catalog import Catalog, load_catalog
from optimizer.inputs import PlanConfig, PlanningError, scenarios_from_paths, scenarios_with_history
from optimizer.plan import Plan
from optimizer.solve import PlanResult, make_plan
from optimizer.summary import summary


def plan_purchases(forecast, start: str | pd.Timestamp, hours: int, *, catalog: Catalog | None = None,
                   history: pd.DataFrame | None = None, **settings) -> PlanResult:
    """Plan the window [start, start + hours) with the shipped catalog by default.

    Args:
        forecast: a ``forecasting.ForecastResult`` (planned over its joint sample paths, which keep how teams
            move together) or a forecast frame with p10/p50/p90 (planned over those three scenarios).
        start: first hour of the window (UTC).
        hours: window length.
        catalog: price catalog (default: the shipped snapshot).
        history: the usage the forecast was made from; with a ``ForecastResult`` its last 60 days are replayed
            next to the sample paths (:func:`optimizer.inputs.scenarios_with_history`), as ``gpuplan plan`` does.
        **settings: :class:`PlanConfig` fields (region, options, allow_spot, max_spot_share, growth, ...).
    """
    ts = pd.Timestamp(start)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    config = PlanConfig(start=ts, hours=hours, **settings)
    catalog = catalog or load_catalog()
    if getattr(forecast, "long", None) is not None:
        scenarios = scenarios_from_paths(forecast.long, config)
        if history is not None:
            scenarios = scenarios_with_history(scenarios, history[history[S.TIMESTAMP] < ts], config)
        return make_plan(forecast.forecast, catalog, config, scenarios=scenarios)
    return make_plan(forecast, catalog, config)


__all__ = ["Catalog", "Plan", "PlanConfig", "PlanResult", "PlanningError", "load_catalog", "make_plan",
           "plan_purchases", "summary"]
