"""Streamlit side of :mod:`app.fmt`: the one function that puts a table on the screen.

Every table of every page goes through :func:`table`: :func:`app.fmt.display_table` formats its cells by kind
(whole dollars, cents, percent, GPU-hours, dates; no ``None``/``nan``) under human labels, and it is drawn as an
HTML table (``st.table``) whose cells wrap instead of being cut, so the browser test can check every cell's text
(a canvas grid such as ``st.dataframe`` cannot be checked for cut text). Streamlit renders ``st.table`` cells as
Markdown, so every cell is escaped with :func:`app.fmt.plain`: text from data shows as itself.
Units: those of the labels (USD, USD/h, %, GPU-hours, h).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import fmt

SCROLL_ROWS = 30
"""Tables longer than this scroll vertically inside a box of about this many rows (never sideways)."""
ROW_PX = 36
DENSE_COLUMNS = 10
"""Tables with more columns than this get tighter cell padding."""
TEXT_MIN_EM = 18
"""Minimum width of a column of sentences (a reason, a finding), in em."""
NOWRAP_CHARS = 20
"""Text columns whose longest cell has at most this many characters never wrap (a name stays whole); figures and
dates never wrap."""


def table(frame: pd.DataFrame, kinds: dict[str, str] | None = None, labels: dict[str, str] | None = None,
          missing: dict[str, str] | None = None, columns: list[str] | None = None, where=None) -> pd.DataFrame:
    """Draw ``frame`` as a formatted table (see :func:`app.fmt.display_table` for the arguments) in ``where``
    (a column or container; default the page) and return the shown, unescaped frame of strings."""
    shown = fmt.display_table(frame, kinds, labels, missing, columns)
    escaped = shown.map(fmt.plain)
    escaped.columns = [fmt.plain(c) for c in shown.columns]
    kinds_shown = fmt.display_kinds(frame, kinds, columns)
    styles = []
    for i, (lab, kind) in enumerate(zip(shown.columns, kinds_shown, strict=True)):
        longest = max((len(v) for v in shown[lab]), default=0)
        if kind not in ("text", "bool", "option") or longest <= NOWRAP_CHARS:
            styles.append({"selector": f"td.col{i}, td.col{i} *", "props": "white-space: nowrap"})
        elif longest > 3 * NOWRAP_CHARS:  # sentences: a readable measure, never a column a word wide
            styles.append({"selector": f"td.col{i}", "props": f"min-width: {TEXT_MIN_EM}em"})
        if kind not in ("text", "bool", "option"):  # figures right-aligned so digits line up
            styles.append({"selector": f"td.col{i}, td.col{i} *, th.col{i}, th.col{i} *",
                           "props": "text-align: right !important"})
    if len(shown.columns) > DENSE_COLUMNS:  # many columns: tighter cells so they fit the page's width
        styles.append({"selector": "td, th", "props": "padding-left: 0.3rem !important; "
                                                      "padding-right: 0.3rem !important"})
    style = escaped.style.hide(axis="index").set_table_styles(styles)
    target = where if where is not None else st
    if len(shown) > SCROLL_ROWS:
        target = target.container(height=ROW_PX * SCROLL_ROWS, border=False)
    target.table(style)
    return shown


def metric_delta(d: float | None, suffix: str = "", better: str = "lower", unit: str = " USD",
                 decimals: int = 0) -> dict[str, str | None]:
    """``st.metric`` delta arguments from :func:`app.fmt.delta`: an unchanged figure reads "no change" in grey
    without an arrow, never a red or green "+0 USD"."""
    text, colour = fmt.delta(d, unit=unit, decimals=decimals, suffix=suffix, better=better)
    unchanged = text is not None and text.startswith(fmt.NO_CHANGE)
    return {"delta": text, "delta_color": colour, "delta_arrow": "off" if unchanged else "auto"}


def shown(value: pd.DataFrame) -> pd.DataFrame:
    """A table element's value as the user reads it (for tests: cells and labels unescaped)."""
    out = value.map(lambda v: fmt.unplain(str(v)))
    out.columns = [fmt.unplain(str(c)) for c in value.columns]
    return out.reset_index(drop=True)


COMMITMENT_KINDS = {"Option": "option", "Count": "count", "GPUs": "gpus", "USD/h per instance": "usd_rate",
                    "Upfront USD per instance": "usd", "Effective USD/h per instance": "usd_rate",
                    "Upfront USD total": "usd", "Start (UTC)": "datetime", "Term (h)": "hours",
                    "Expected use over its term (%)": "pct100", "Obligation over the term (USD)": "usd",
                    "Window cost (USD)": "usd"}
"""Cell kinds of :func:`app.plan_frames.commitments_frame` (Plan and What-if pages)."""
