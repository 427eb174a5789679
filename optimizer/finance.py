"""Why each commitment is bought the way it is: its payment option and term against the next best, in money.

Units: USD; present values at the plan's cost of capital (:func:`optimizer.term.discount`), over the plan's
horizon (its commitment terms).

For every new instance commitment line the plan buys (savings plans are not priced here: a savings plan's
alternatives are other plans' coverage, which only a new solve can compare),
each other purchase option the plan considered for the same instance
type (another payment option, the other kind or term) is priced in its place: the same count from the same month.
An alternative of the same term serves the same hours, so its difference is the difference of the two lines' cash
flows in present value (upfront at the purchase hour, pro rata when the term runs past the horizon; the recurring
rate at the middle of each active month). An alternative with another term serves other hours, so the GPU model is
billed again on every scenario over the horizon with the alternative in place (expected present value; only for
lines bought now: tentative ones are re-decided in their month). The cheapest alternative is the "next best"; a
positive difference is what the plan's choice saves against it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from optimizer import catalog as C
from optimizer.plan import Commitment, Plan


def _line_present_value(c: Commitment, hours: pd.DatetimeIndex, df: np.ndarray, rate: float) -> float:
    from optimizer.solve import commitment_present_value

    return commitment_present_value(c, hours, df, hours[0], rate)


def payment_choices(result, catalog: C.Catalog, options: tuple[str, ...], region: str) -> list[dict]:
    """For each new commitment line: the next best purchase option and how much more it would cost.

    Args:
        result: the :class:`optimizer.solve.PlanResult` (its plan and scenarios).
        catalog: price catalog the plan was made with.
        options: purchase options the plan considered.
        region: catalog region.

    Returns:
        One dict per line: ``gpu_model, instance_type, count, start, purchase_option, next_best_option,
        next_best_more_usd`` (present value; None when no other option was considered) and ``alternatives``
        (option -> present value more, USD).
    """
    from optimizer.solve import evaluate, horizon_index
    from optimizer.term import month_discounts

    plan: Plan = result.plan
    sc = result.scenarios
    rate = plan.term.cost_of_capital if plan.term is not None else 0.0
    hours = horizon_index(sc)
    df = month_discounts(hours, plan.window_start, rate)
    prices = catalog.table[(catalog.table[C.REGION] == region) & (catalog.table[C.PURCHASE_OPTION].isin(options))]
    out = []
    base_pv: dict[str, float] = {}
    from optimizer.options import is_savings_plan

    for i, c in enumerate(plan.commitments):
        if c.existing or c.is_savings_plan:      # a savings plan has no per-instance alternative to price
            continue
        rows = prices[prices[C.INSTANCE_TYPE] == c.instance_type]
        own_pv = _line_present_value(c, hours, df, rate)
        alternatives: dict[str, float] = {}
        for _, r in rows.iterrows():
            option = str(r[C.PURCHASE_OPTION])
            if option == c.purchase_option or is_savings_plan(option):
                continue
            alt = replace(c, purchase_option=option, hourly_usd_per_instance=float(r[C.RECURRING_HOURLY]),
                          upfront_usd_per_instance=float(r[C.UPFRONT]), term_hours=int(r[C.TERM_HOURS_COL]),
                          firm=c.firm, expected_utilization=None)
            if alt.term_hours == c.term_hours:
                alternatives[option] = _line_present_value(alt, hours, df, rate) - own_pv
                continue
            if c.firm is False:      # a tentative purchase is re-decided in its month: no re-billing for it
                continue
            only = sc.only(c.gpu_model)
            if c.gpu_model not in base_pv:
                base_pv[c.gpu_model] = _expected_pv(evaluate(plan, only, rate), only)
            swapped = replace(plan, commitments=tuple(alt if j == i else x for j, x in enumerate(plan.commitments)))
            alternatives[option] = _expected_pv(evaluate(swapped, only, rate), only) - base_pv[c.gpu_model]
        best = min(alternatives, key=alternatives.get) if alternatives else None
        out.append({"gpu_model": c.gpu_model, "instance_type": c.instance_type, "count": c.count,
                    "start": f"{c.start:%Y-%m-%dT%H:%M:%SZ}", "purchase_option": c.purchase_option,
                    "next_best_option": best,
                    "next_best_more_usd": None if best is None else round(float(alternatives[best]), 2),
                    "alternatives": {k: round(float(v), 2) for k, v in sorted(alternatives.items(),
                                                                              key=lambda kv: kv[1])}})
    return out


def _expected_pv(money, scenarios) -> float:
    w = dict(zip(scenarios.names, np.asarray(scenarios.weights, dtype=float), strict=True))
    return float(sum(w[n] * money.horizon[n].get("present_value_usd", 0.0) for n in scenarios.names))
