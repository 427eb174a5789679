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


def savings_plan_commitment(catalog: C.Catalog, region: str, option: str, usd_per_hour: float,
                            start: pd.Timestamp, end: pd.Timestamp | None = None, family: str | None = None,
                            existing: bool = True):
    """A savings plan as a plan commitment line (e.g. an owned one for ``PlanConfig.existing``), with the rates its
    dollars buy per GPU model from the catalog (:func:`sp_offers`' rule: per model the type with the lowest rate per
    GPU in scope, below its on-demand rate).

    Args:
        catalog: price catalog.
        region: catalog region.
        option: a savings-plan option (``compute_sp_1y_no_upfront``, ...).
        usd_per_hour: the commitment, USD per hour.
        start: first hour it applies.
        end: expiry (exclusive); default start + term.
        family: the instance family, required for EC2 Instance SPs (``p5``).
        existing: an owned plan (sunk) rather than a new one. The payment option fixes the upfront split.

    Raises:
        ValueError: not a savings-plan option, an EC2 Instance SP without a family, or no rate in the catalog.
    """
    from optimizer.options import ON_DEMAND
    from optimizer.plan import Commitment

    if not is_savings_plan(option):
        raise ValueError(f"not a savings-plan option: {option!r}")
    kind, _, payment = parse_savings_plan(option)
    if kind == "ec2_instance_sp" and not family:
        raise ValueError(f"{option} needs the instance family it covers (e.g. p5)")
    rows = catalog.region(region)
    od = rows[rows[C.PURCHASE_OPTION] == ON_DEMAND]
    od_rate = (od[C.EFFECTIVE_HOURLY] / od[C.GPU_COUNT]).groupby(od[C.GPU_MODEL]).min().to_dict()
    mine = rows[rows[C.PURCHASE_OPTION] == option]
    mine = mine.assign(_per_gpu=mine[C.EFFECTIVE_HOURLY] / mine[C.GPU_COUNT],
                       _family=mine[C.INSTANCE_TYPE].map(instance_family))
    if kind == "ec2_instance_sp":
        mine = mine[mine["_family"] == family]
    rates = _rates(mine, od_rate)
    if not rates:
        scope = f" for family {family}" if family else ""
        raise ValueError(f"the catalog has no {option} rate{scope} in {region}")
    share = UPFRONT_SHARE[payment]
    hours = term_hours(option)
    return Commitment(instance_type="", purchase_option=option, count=1, start=pd.Timestamp(start),
                      hourly_usd_per_instance=usd_per_hour * (1.0 - share),
                      upfront_usd_per_instance=usd_per_hour * share * hours,
                      gpu_model=", ".join(r.gpu_model for r in rates) if family else "any GPU model",
                      gpus_per_instance=0.0, term_hours=hours, end=None if end is None else pd.Timestamp(end),
                      existing=existing, commitment_usd_per_hour=float(usd_per_hour),
                      instance_family=family if kind == "ec2_instance_sp" else None, sp_rates=rates,
                      rate_is_estimate=any(r.rate_is_estimate for r in rates))

