"""Purchase planning: price catalog, the commitment/spot/on-demand MILP, plans, billing and summaries.

Units: USD, USD per instance-hour or per GPU-hour, GPUs, hours (see each module's docstring).
"""

from __future__ import annotations

import pandas as pd

from optimizer.catalog import Catalog, load_catalog
from optimizer.inputs import PlanConfig, PlanningError
from optimizer.plan import Plan
from optimizer.solve import PlanResult, make_plan
from optimizer.summary import summary


def plan_purchases(forecast: pd.DataFrame, start: str | pd.Timestamp, hours: int, *, catalog: Catalog | None = None,
                   **settings) -> PlanResult:
    """Plan the window [start, start + hours) from a forecast frame with the shipped catalog by default.

    ``settings`` are :class:`PlanConfig` fields (region, options, allow_spot, max_spot_share, growth, ...).
    """
    ts = pd.Timestamp(start)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return make_plan(forecast, catalog or load_catalog(), PlanConfig(start=ts, hours=hours, **settings))


__all__ = ["Catalog", "Plan", "PlanConfig", "PlanResult", "PlanningError", "load_catalog", "make_plan",
           "plan_purchases", "summary"]
