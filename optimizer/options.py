"""Purchase-option names: the one place that defines them.

Names are part of the catalog and plan.json contracts:
``on_demand``, ``spot``, ``reserved_{1y,3y}_{no,partial,all}_upfront`` and
``convertible_{1y,3y}_{no,partial,all}_upfront`` (instance commitments: a count of instances of one type), and the
savings plans ``compute_sp_{1y,3y}_{no,partial,all}_upfront`` and ``ec2_instance_sp_{1y,3y}_{no,partial,all}_upfront``
(a commitment in USD per hour of spend at savings-plan rates: a Compute SP floats across GPU models, instance
families and regions of one provider; an EC2 Instance SP across the sizes of one instance family in one region).
Term lengths are in hours.
"""

from __future__ import annotations

ON_DEMAND = "on_demand"
SPOT = "spot"

KINDS = ("reserved", "convertible")
TERMS = ("1y", "3y")
PAYMENTS = ("no", "partial", "all")
TERM_HOURS = {"1y": 8760, "3y": 26280}
"""AWS counts a 1-year term as 8,760 hours and a 3-year term as 26,280 hours."""


def commitment_option(kind: str, term: str, payment: str) -> str:
    return f"{kind}_{term}_{payment}_upfront"


COMMITMENT_OPTIONS = tuple(commitment_option(k, t, p) for k in KINDS for t in TERMS for p in PAYMENTS)
DEFAULT_COMMITMENT_OPTIONS = tuple(o for o in COMMITMENT_OPTIONS if "_1y_" in o)
"""Plans consider 1-year terms unless asked otherwise: an hourly forecast of weeks to months says
little about demand three years out (pass 3-year options explicitly to consider them)."""


SP_KINDS = ("compute_sp", "ec2_instance_sp")
SAVINGS_PLAN_OPTIONS = tuple(commitment_option(k, t, p) for k in SP_KINDS for t in TERMS for p in PAYMENTS)
"""Savings-plan options (the catalog's ``effective_hourly_usd`` of such a row is the SP rate of one instance-hour)."""
PURCHASABLE_OPTIONS = (*COMMITMENT_OPTIONS, *SAVINGS_PLAN_OPTIONS)
"""Every option a plan may buy: instance commitments and savings plans."""
ALL_OPTIONS = (ON_DEMAND, SPOT, *PURCHASABLE_OPTIONS)
UPFRONT_SHARE = {"no": 0.0, "partial": 0.5, "all": 1.0}
"""Share of a savings plan's commitment over its term paid upfront (AWS: partial upfront pays at least half)."""


def is_commitment(option: str) -> bool:
    return option in COMMITMENT_OPTIONS


def is_savings_plan(option: str) -> bool:
    return option in SAVINGS_PLAN_OPTIONS


def parse_savings_plan(option: str) -> tuple[str, str, str]:
    """``compute_sp_1y_no_upfront`` -> ("compute_sp", "1y", "no")."""
    if option not in SAVINGS_PLAN_OPTIONS:
        raise ValueError(f"not a savings-plan option: {option!r}")
    head, term, payment, _ = option.rsplit("_", 3)
    return head, term, payment


def parse_commitment(option: str) -> tuple[str, str, str]:
    """``reserved_1y_all_upfront`` -> ("reserved", "1y", "all")."""
    if option not in COMMITMENT_OPTIONS:
        raise ValueError(f"not a commitment option: {option!r}")
    kind, term, payment, _ = option.split("_")
    return kind, term, payment


def term_hours(option: str) -> int:
    """Term length in hours of a commitment option (0 for on-demand and spot)."""
    if option in (ON_DEMAND, SPOT):
        return 0
    if option in SAVINGS_PLAN_OPTIONS:
        return TERM_HOURS[parse_savings_plan(option)[1]]
    return TERM_HOURS[parse_commitment(option)[1]]


def validate_options(options: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Check user-given commitment and savings-plan option names; raise ValueError naming the bad one and the
    valid set."""
    out = []
    for o in options:
        o = o.strip()
        if not o:
            continue
        if o not in PURCHASABLE_OPTIONS:
            raise ValueError(f"unknown purchase option '{o}'; valid: {', '.join(PURCHASABLE_OPTIONS)}")
        out.append(o)
    return tuple(out)
