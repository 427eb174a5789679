"""Number formatting and FinOps help texts: the one place every page takes its units and wording from.

Units: ``usd`` formats USD amounts, ``usd_per_hour`` USD per hour, ``gpu_hours`` GPU-hours, ``gpus`` GPUs
(GPUs in use averaged over an hour), ``pct`` percentages given as fractions (0.25 -> ``25.0 %``).
This module never imports streamlit, so reports (``app/summary_html.py``) and tests use it too.
"""

from __future__ import annotations

import math
import re

DASH = "-"


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def usd(x: float | None, decimals: int = 0) -> str:
    """``1,234,567 USD`` (no decimals by default; cents only where they matter)."""
    return DASH if _missing(x) else f"{x:,.{decimals}f} USD"


def signed_usd(x: float | None) -> str:
    """``+1,234 USD`` / ``-1,234 USD`` for deltas."""
    return DASH if _missing(x) else f"{x:+,.0f} USD"


def usd_per_hour(x: float | None, decimals: int = 2) -> str:
    """``12.34 USD/h``."""
    return DASH if _missing(x) else f"{x:,.{decimals}f} USD/h"


def usd_per_gpu_hour(x: float | None) -> str:
    """``3.41 USD/GPU-h``."""
    return DASH if _missing(x) else f"{x:,.3f} USD/GPU-h"


def gpu_hours(x: float | None) -> str:
    """``12,345 GPU-hours``."""
    return DASH if _missing(x) else f"{x:,.0f} GPU-hours"


def gpus(x: float | None, decimals: int = 1) -> str:
    """``123.4 GPUs``."""
    return DASH if _missing(x) else f"{x:,.{decimals}f} GPUs"


def pct(fraction: float | None, decimals: int = 1) -> str:
    """A fraction as percent: ``0.253`` -> ``25.3 %``."""
    return DASH if _missing(fraction) else f"{100.0 * fraction:.{decimals}f} %"


def signed_pct(fraction: float | None, decimals: int = 1) -> str:
    """A signed fraction as percent: ``-0.05`` -> ``-5.0 %``."""
    return DASH if _missing(fraction) else f"{100.0 * fraction:+.{decimals}f} %"


def hours(x: float | None) -> str:
    """``720 h``."""
    return DASH if _missing(x) else f"{x:,.0f} h"


def short(x: float) -> str:
    """A compact amount for tight spaces: ``950``, ``12,300``, ``154k``, ``4.15M``, ``1.20B`` (3 significant digits
    from 100k up)."""
    a = abs(x)
    if a < 1e5:
        return f"{x:,.0f}"
    if a < 1e6:
        return f"{x / 1e3:,.0f}k"
    if a < 1e9:
        return f"{x / 1e6:,.2f}M"
    return f"{x / 1e9:,.2f}B"


def usd_range(lo: float | None, hi: float | None) -> str:
    """A p10-p90 cost range in compact form: ``154k - 189k USD`` (exact values belong in the help text)."""
    return DASH if _missing(lo) or _missing(hi) else f"{short(lo)} - {short(hi)} USD"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=^\"'])")


def plain(text: str) -> str:
    """Text shown as itself where Streamlit renders Markdown (``st.info``, ``st.warning``, captions): every ASCII
    punctuation mark that Markdown, HTML, LaTeX (``$``) or Streamlit's ``:icon:`` / ``:color[...]`` directives
    could read is backslash-escaped (CommonMark shows an escaped mark as the mark), and line breaks become spaces,
    so a team name, file name or note from user data never turns into markup."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def unplain(text: str) -> str:
    """Inverse of :func:`plain` (for tests): the shown text."""
    return re.sub(r"\\(.)", r"\1", text)


def parse_usd(text: str) -> float:
    """Inverse of :func:`usd`/:func:`signed_usd` (for tests and round trips): ``'1,234 USD'`` -> 1234.0."""
    return float(text.removesuffix(" USD").replace(",", ""))


# --- FinOps terms (help texts) ----------------------------------------------------------------------
GLOSSARY: dict[str, str] = {
    "commitment": ("**Commitment** (reserved instance or savings plan): a lower hourly rate in exchange for "
                   "paying for every hour of a 1- or 3-year term, used or not. Sized right it covers the steady "
                   "base of demand; unused commitment is waste."),
    "coverage": ("**Coverage**: the share of GPU-hours served by commitments. High coverage with low "
                 "utilisation means over-buying."),
    "utilisation": ("**Commitment utilisation**: the share of committed GPU-hours that demand actually uses "
                    "(expected over the demand scenarios). Idle committed GPUs are paid for anyway."),
    "rework": ("**Rework**: when spot capacity is taken back, a job redoes the work since its last checkpoint. "
               "The plan adds this share to spot's price (USD per useful GPU-hour = spot price x (1 + rework)) "
               "and to the time a job takes."),
    "spot": ("**Spot**: spare capacity at a deep discount that the cloud can take back at short notice "
             "(interruption rate published per instance type in buckets <5%, 5-10%, 10-15%, 15-20%, >20% a "
             "month). Suits checkpointed training, not latency-bound inference."),
    "upfront": ("**Upfront**: cash paid when a commitment is bought (all-upfront or partial-upfront) instead of "
                "hourly; it buys a lower effective rate. Window costs amortise it over the term; the present value "
                "counts it when it is paid."),
    "term": ("**Term**: the 1 or 3 years a commitment runs. Every hour of it is paid, used or not, so the plan "
             "judges each commitment over its whole term, not only over the plan window."),
    "obligation": ("**Obligation**: what the new commitments cost over their full terms, upfront plus every "
                   "recurring hour, paid whether used or not. The part after the window is money the plan commits "
                   "beyond the window's cost. The maximum commitment caps this amount."),
    "cost_of_capital": ("**Cost of capital** and **present value**: money paid later is worth less than money paid "
                        "now; at an annual cost of capital r, a dollar paid t years from now counts (1 + r)^-t today. "
                        "The present value of the plan adds every payment over the horizon this way, so paying "
                        "upfront and choosing 1 or 3 years are real trade-offs (at 0% upfront payments cost nothing "
                        "extra; at a high rate paying later wins)."),
    "horizon": ("**Horizon**: the hours the plan is judged on, from the window start to the end of the longest "
                "commitment term considered. Demand in the window comes from the hourly forecast and the recent "
                "history, after it from the long-term forecast; the range widens with lead time."),
    "firm": ("**Firm vs tentative**: a firm commitment is bought now, at the window start. A tentative one is a "
             "laddered purchase in a later month: the plan expects to buy it then, but re-decides it on that "
             "month's forecast."),
    "break_even": ("**Break-even**: a commitment pays off when demand uses it more than its discount's share of "
                   "the hours (a 35% discount breaks even at 35% of the hours), the newsvendor rule the "
                   "optimizer applies to the forecast."),
    "on_demand": ("**On-demand**: the list price per instance-hour, paid only for hours used; the fallback for "
                  "bursts above commitments and spot."),
    "idle": ("**Idle GPU cost**: GPU-hours paid for but not used (1 - utilisation), priced at the on-demand "
             "rate; only where the usage data reports utilisation."),
    "untagged": ("**Untagged**: usage that carries no team tag, shown as its own bucket (team "
                 "'unallocated') rather than dropped."),
    "p10_p90": ("**p10-p90**: the range the forecast expects demand (or cost) to fall inside 80% of the time; "
                "p50 is the median."),
}


def term(*names: str) -> str:
    """Help text for one or more FinOps terms, joined into one paragraph."""
    return " ".join(GLOSSARY[n] for n in names)
