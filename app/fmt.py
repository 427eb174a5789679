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
    for scale, suffix in ((1e6, "M"), (1e9, "B")):
        if a < 1e3 * scale or suffix == "B":
            v = x / scale
            return f"{v:,.{max(0, 2 - len(str(int(abs(round(v, 2))))) + 1)}f}{suffix}"
    raise AssertionError("unreachable")


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


def parse_number(text: str) -> float:
    """Inverse of :func:`cell` for figures (for tests): ``'+1,234.5'`` -> 1234.5."""
    return float(text.replace(",", "").removeprefix("+"))


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


# --- display tables: one formatting rule for every table the app shows -----------------------------------------
MISSING = "—"
"""What a table cell shows for a missing value (never ``None``/``nan``); a column may name a better word."""

KINDS = ("usd", "usd_cents", "usd_rate", "signed_usd", "pct", "signed_pct", "pct100", "signed_pct100", "gpu_hours",
         "gpus", "count", "hours", "number", "ratio", "datetime", "date", "bool", "option", "quantity", "text")
"""Cell kinds of :func:`display_table`:

- ``usd`` whole dollars from 100 USD up, cents below (``113,819``, ``0.35``); ``usd_cents`` always cents (the
  chargeback reconciles to the cent); ``usd_rate`` prices per hour or per GPU-hour, two decimals; ``signed_usd``
  a change in whole dollars (``+1,234``, ``0`` unsigned). Money never shows more than two decimals.
- ``pct`` a fraction as percent (``0.253`` -> ``25.3``), ``signed_pct`` with its sign; ``pct100`` a value
  already in percent, ``signed_pct100`` with its sign.
- ``gpu_hours``/``count``/``hours`` whole numbers with separators; ``gpus`` GPUs and ``quantity`` counts that
  may be fractional (one decimal unless whole); ``number``/``ratio`` two decimals.
- ``datetime`` ``YYYY-MM-DD HH:MM`` (UTC), ``date`` ``YYYY-MM-DD``; ``bool`` yes/no; ``option`` an identifier
  such as a purchase option with its underscores as spaces (``reserved 1y partial upfront``); ``text`` the text
  itself (:func:`app.view.table` escapes it, so user text stays plain).
"""

_ACRONYMS = {"usd": "USD", "gpu": "GPU", "gpus": "GPUs", "id": "ID", "utc": "UTC", "p10": "p10", "p50": "p50",
             "p90": "p90", "cv": "CV", "mae": "MAE", "mase": "MASE", "sp": "SP", "ri": "RI", "pct": "%"}
_UNIT_SUFFIXES = {"usd": "USD", "pct": "%", "hours": "h", "gpus": "GPUs", "h": "h"}


def label(column: str) -> str:
    """A human column label for a raw (snake_case) column name, unit last in brackets:
    ``actual_to_date_usd`` -> ``Actual to date (USD)``, ``burn_pct`` -> ``Burn (%)``, ``gpu_hours`` ->
    ``GPU-hours``, ``team`` -> ``Team``. A name that already reads as a label (no underscore, and capitalised or of
    several words, e.g. ``p10 cost (USD)``) is kept."""
    if "_" not in column and (" " in column or "(" in column or column[:1] != column[:1].lower()):
        return column
    if column == "gpu_hours":
        return "GPU-hours"
    words = column.split("_")
    unit = None
    if words[-2:] == ["gpu", "hours"]:
        words[-2:] = ["GPU-hours"]
    elif len(words) > 1 and words[-1] in _UNIT_SUFFIXES:
        unit = _UNIT_SUFFIXES[words.pop()]
    text = " ".join(_ACRONYMS.get(w, w) for w in words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def infer_kind(column: str, values: object = None) -> str:
    """The cell kind of a column from its label or raw name (units in the name), else from its dtype."""
    import pandas as pd  # local: fmt stays importable without pandas for the CLI's plain formatting

    name = column.lower()
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    if isinstance(values, pd.Series) and pd.api.types.is_bool_dtype(values):
        return "bool"
    numeric = isinstance(values, pd.Series) and pd.api.types.is_numeric_dtype(values)
    if not numeric:
        return "text"
    if "usd/h" in name or "usd per" in name or "per_gpu_hour" in name or "usd_per" in name:
        return "usd_rate"
    if "(%)" in name or name.endswith("_pct") or name.endswith(" %"):
        return "pct100"
    if name.endswith("_share") or name in ("utilization", "coverage", "utilisation") or name.startswith("p_"):
        return "pct"
    if "usd" in name:
        return "usd"
    if "gpu-hours" in name or "gpu_hours" in name or "gpu hours" in name or "a100-hours" in name:
        return "gpu_hours"
    if "(h)" in name or name.endswith("_hours"):
        return "hours"
    if isinstance(values, pd.Series) and pd.api.types.is_integer_dtype(values):
        return "count"
    return "number"


def cell(value: object, kind: str, missing: str = MISSING) -> str:
    """One table cell as text (see :data:`KINDS`); a missing value (None, NaN, NaT, empty text) is ``missing``."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)) or (isinstance(value, str) and not value):
        return missing
    if kind == "text":
        return str(value)
    if kind == "option":
        return str(value).replace("_", " ")
    if kind == "bool":
        return "yes" if bool(value) else "no"
    if kind in ("datetime", "date"):
        ts = pd.Timestamp(value)
        return f"{ts:%Y-%m-%d}" if kind == "date" else f"{ts:%Y-%m-%d %H:%M}"
    x = float(value)  # type: ignore[arg-type]
    if kind == "usd":
        return f"{x:,.0f}" if abs(x) >= 100 or x == 0 else f"{x:,.2f}"
    if kind == "usd_cents":
        return f"{x:,.2f}"
    if kind == "usd_rate":
        return f"{x:,.2f}"
    if kind == "signed_usd":
        return "0" if round(x) == 0 else f"{x:+,.0f}"
    if kind == "pct":
        return f"{100.0 * x:,.1f}"
    if kind == "signed_pct":
        return "0.0" if round(100.0 * x, 1) == 0 else f"{100.0 * x:+,.1f}"
    if kind == "pct100":
        return f"{x:,.1f}"
    if kind == "signed_pct100":
        return "0.0" if round(x, 1) == 0 else f"{x:+,.1f}"
    if kind in ("gpu_hours", "count", "hours"):
        return f"{x:,.0f}"
    if kind in ("gpus", "quantity"):
        return f"{x:,.0f}" if x == round(x) else f"{x:,.1f}"
    if kind in ("number", "ratio"):
        return f"{x:,.2f}"
    raise ValueError(f"unknown cell kind {kind!r}: one of {', '.join(KINDS)}")


def display_table(frame, kinds: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                  missing: dict[str, str] | None = None, columns: list[str] | None = None):
    """The one way a table reaches the screen: every cell formatted as text by its kind, every column under a
    human label, no missing value shown as ``None``/``nan``.

    Args:
        frame: a pandas DataFrame with raw or labelled columns.
        kinds: column -> cell kind (:data:`KINDS`); columns not named are inferred by :func:`infer_kind`.
        labels: column -> label; columns not named get :func:`label` (a label of an absent column is unused).
        missing: column -> the word a missing cell shows (default :data:`MISSING`), e.g. ``"no commitments"``.
        columns: the columns to show, in order (default all).

    Returns:
        A DataFrame of strings with the labels as columns and a fresh 0..n-1 index. Text cells are the data's
        text unchanged; :func:`app.view.table` escapes them before Streamlit's Markdown renders them.
    """
    import pandas as pd

    kinds, labels, missing = kinds or {}, labels or {}, missing or {}
    cols = list(columns) if columns is not None else list(frame.columns)
    unknown = [c for c in list(kinds) + cols if c not in frame.columns]  # labels may name optional columns
    if unknown:
        raise KeyError(f"display_table: no column(s) {', '.join(map(str, unknown))} in {list(frame.columns)}")
    out = {}
    for c, kind in zip(cols, display_kinds(frame, kinds, cols), strict=True):
        out[labels.get(c) or label(str(c))] = [cell(v, kind, missing.get(c, MISSING)) for v in frame[c].tolist()]
    shown = pd.DataFrame(out, columns=list(out))
    if len(set(shown.columns)) != len(shown.columns):
        raise ValueError(f"display_table: two columns share a label: {list(shown.columns)}")
    return shown


NO_CHANGE = "no change"
"""What a delta that rounds to zero reads (grey, no arrow) instead of a coloured ``+0``."""


def display_kinds(frame, kinds: dict[str, str] | None = None, columns: list[str] | None = None) -> list[str]:
    """The cell kind of each shown column of :func:`display_table` (given, else inferred)."""
    kinds = kinds or {}
    cols = list(columns) if columns is not None else list(frame.columns)
    return [kinds.get(c) or infer_kind(str(c), frame[c]) for c in cols]


def delta(d: float | None, unit: str = " USD", decimals: int = 0, suffix: str = "",
          better: str = "lower") -> tuple[str | None, str]:
    """A metric's change as ``(text, colour)`` for ``st.metric(delta=..., delta_color=...)``: an amount that
    rounds to zero at the shown precision reads ``no change`` in grey (``off``), never a red or green ``+0``; else
    the signed amount, coloured by whether ``lower`` or ``higher`` is better (``inverse`` / ``normal``).

    Args:
        d: the change (None = no delta shown).
        unit: the unit after the number (``" USD"``, ``" GPUs"``, ``" %"``...).
        decimals: decimals shown.
        suffix: text after the unit (``" at p90"``).
        better: ``lower`` (costs), ``higher`` (savings) or ``neither`` (always grey).
    """
    if _missing(d):
        return None, "off"
    if round(float(d), decimals) == 0:  # type: ignore[arg-type]
        return NO_CHANGE + suffix, "off"
    colour = {"lower": "inverse", "higher": "normal", "neither": "off"}[better]
    return f"{d:+,.{decimals}f}{unit}{suffix}", colour
