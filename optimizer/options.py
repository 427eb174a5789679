"""Purchase-option names: the one place that defines them.

Names are part of the catalog and plan.json contracts:
``on_demand``, ``spot``, ``reserved_{1y,3y}_{no,partial,all}_upfront`` and
``convertible_{1y,3y}_{no,partial,all}_upfront``. Term lengths are in hours.
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
ALL_OPTIONS = (ON_DEMAND, SPOT, *COMMITMENT_OPTIONS)
DEFAULT_COMMITMENT_OPTIONS = tuple(o for o in COMMITMENT_OPTIONS if "_1y_" in o)
"""Plans consider 1-year terms unless asked otherwise: an hourly forecast of weeks to months says
little about demand three years out (pass 3-year options explicitly to consider them)."""


def is_commitment(option: str) -> bool:
    return option in COMMITMENT_OPTIONS


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
    return TERM_HOURS[parse_commitment(option)[1]]


def validate_options(options: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Check user-given commitment option names; raise ValueError naming the bad one and the valid set."""
    out = []
    for o in options:
        o = o.strip()
        if not o:
            continue
        if o not in COMMITMENT_OPTIONS:
            raise ValueError(f"unknown purchase option '{o}'; valid: {', '.join(COMMITMENT_OPTIONS)}")
        out.append(o)
    return tuple(out)
