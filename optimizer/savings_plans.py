"""Savings-plan offers for the purchase MILP: what one USD per hour of a savings plan buys for each GPU model.

Units: a savings plan's commitment is USD per hour of spend for its whole term (``term_hours``); its rates are USD
per GPU-hour (the catalog's savings-plan rate of one instance-hour / the instance's GPUs).

Scope (AWS): a Compute Savings Plan covers any GPU model, instance family and region of its provider (a plan is made
for one region, so: every GPU model of the plan); an EC2 Instance Savings Plan covers the sizes of one instance
family (``p5`` of ``p5.48xlarge``) in one region, so one offer per family. For each GPU model in scope the offer
takes the allowed instance type with the lowest savings-plan rate per GPU (as the plan's on-demand rate is the
cheapest per GPU), and keeps only models whose rate is below their on-demand rate. The payment option fixes the
upfront share of the commitment (:data:`optimizer.options.UPFRONT_SHARE`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from optimizer import catalog as C
from optimizer.inputs import PlanConfig
from optimizer.options import UPFRONT_SHARE, is_savings_plan, parse_savings_plan, term_hours
from optimizer.plan import SpRate


@dataclass(frozen=True)
class SpOffer:
    """One savings plan the MILP may buy (its commitment in USD per hour is a continuous variable).

    Attributes:
        option: purchase option (``compute_sp_1y_no_upfront``, ...).
        family: instance family of an EC2 Instance SP (None for a Compute SP).
        term_hours: term length.
        upfront_share: share of commitment x term paid upfront.
        rates: per eligible GPU model, the rate its usage is covered at.
    """

    option: str
    family: str | None
    term_hours: int
    upfront_share: float
    rates: tuple[SpRate, ...]
    fixed_usd_per_hour: float | None = None
    """Owned savings plans: their commitment (USD per hour; sunk, not optimised)."""
    active: tuple[bool, ...] | None = None
    """Owned savings plans: whether active in each hour of the plan's horizon."""

    @property
    def gpu_models(self) -> tuple[str, ...]:
        return tuple(r.gpu_model for r in self.rates)

    def rate(self, gpu_model: str) -> float | None:
        return next((r.usd_per_gpu_hour for r in self.rates if r.gpu_model == gpu_model), None)

    @property
    def rate_is_estimate(self) -> bool:
        return any(r.rate_is_estimate for r in self.rates)

    @property
    def label(self) -> str:
        return self.option if self.family is None else f"{self.option} ({self.family})"


def instance_family(instance_type: str) -> str:
    """``p5.48xlarge`` -> ``p5``."""
    return str(instance_type).split(".", 1)[0]


def sp_offers(catalog: C.Catalog, config: PlanConfig, gpu_models: tuple[str, ...],
              on_demand_usd_per_gpu_hour: dict[str, float]) -> tuple[SpOffer, ...]:
    """The savings plans among ``config.options`` the catalog prices for the plan's GPU models and region.

    Instance types outside ``config.instance_types`` (when given) and those needing approval without it are left out,
    as for the other offers.
    """
    options = [o for o in config.options if is_savings_plan(o)]
    if not options:
        return ()
    rows = catalog.region(config.region)
    rows = rows[rows[C.PURCHASE_OPTION].isin(options) & rows[C.GPU_MODEL].isin(gpu_models)]
    if config.instance_types:
        rows = rows[rows[C.INSTANCE_TYPE].isin(config.instance_types)]
    blocked = set(config.needs_approval) - set(config.approved)
    rows = rows[~rows[C.INSTANCE_TYPE].isin(blocked)]
    if rows.empty:
        return ()
    rows = rows.assign(_per_gpu=rows[C.EFFECTIVE_HOURLY] / rows[C.GPU_COUNT],
                       _family=rows[C.INSTANCE_TYPE].map(instance_family))
    out = []
    for option in options:
        kind, _, payment = parse_savings_plan(option)
        mine = rows[rows[C.PURCHASE_OPTION] == option]
        scopes = ([(None, mine)] if kind == "compute_sp"
                  else [(f, part) for f, part in mine.groupby("_family", sort=True)])
        for family, part in scopes:
            rates = _rates(part, on_demand_usd_per_gpu_hour)
            if rates:
                out.append(SpOffer(option=option, family=family, term_hours=term_hours(option),
                                   upfront_share=UPFRONT_SHARE[payment], rates=rates))
    return tuple(out)


def _rates(rows: pd.DataFrame, od: dict[str, float]) -> tuple[SpRate, ...]:
    rates = []
    for g, part in rows.groupby(C.GPU_MODEL, sort=True):
        best = part.sort_values(["_per_gpu", C.INSTANCE_TYPE], kind="stable").iloc[0]
        if float(best["_per_gpu"]) < od.get(str(g), 0.0):
            rates.append(SpRate(gpu_model=str(g), instance_type=str(best[C.INSTANCE_TYPE]),
                                usd_per_gpu_hour=float(best["_per_gpu"]),
                                rate_is_estimate=bool(best.get(C.RATE_IS_ESTIMATE, False))))
    return tuple(rates)


def owned_offers(existing, hours: pd.DatetimeIndex, gpu_models: tuple[str, ...]) -> tuple[SpOffer, ...]:
    """Owned savings plans (``PlanConfig.existing`` lines with ``commitment_usd_per_hour``) active in ``hours``, as
    fixed offers: the MILP lets them cover usage in their active hours, in the serving rule's order of kinds only
    as far as a joint LP can (it allocates all plans' dollars at once, at their rates)."""
    out = []
    for c in existing:
        if not c.is_savings_plan:
            continue
        active = c.active(hours).to_numpy(dtype=bool)
        rates = tuple(r for r in c.sp_rates if r.gpu_model in gpu_models)
        if not active.any() or not rates:
            continue
        out.append(SpOffer(option=c.purchase_option, family=c.instance_family, term_hours=c.term_hours,
                           upfront_share=0.0, rates=rates, fixed_usd_per_hour=c.count * c.commitment_usd_per_hour,
                           active=tuple(active.tolist())))
    return tuple(out)
