"""Self-contained chart HTML for the files the CLI writes (``pareto --chart``, ``backtest --chart``).

Altair's default HTML loads vega, vega-lite and vega-embed from a CDN, so the chart is blank offline or behind
a proxy. Here the three libraries are inlined from the ``vl-convert-python`` package (its bundled copy, no
network at any time), and the chart renders to SVG so it prints and zooms sharply: the file opens anywhere, as
``report.html`` does. Units are the chart's own (the writers' titles state them).
"""

from __future__ import annotations

import re
from pathlib import Path

import altair as alt

from usage.io import write_atomic

REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE)


def standalone_html(chart: alt.TopLevelMixin) -> str:
    """The chart as one HTML page with vega, vega-lite and vega-embed inlined (renders with no network).

    Raises:
        ValueError: ``vl-convert-python`` is not installed (it ships the inlined libraries), with the fix.
    """
    try:
        import vl_convert  # noqa: F401  (altair inlines the JavaScript bundle it ships)
    except ImportError as exc:
        raise ValueError("writing a chart needs the package vl-convert-python, which ships the chart libraries "
                         "the HTML file embeds (fix: pip install vl-convert-python)") from exc
    html = chart.to_html(inline=True, embed_options={"renderer": "svg", "actions": False})
    if REMOTE_SCRIPT.search(html):  # pragma: no cover - guards a change of altair's template
        raise ValueError("the chart HTML would load a script from the network; refusing to write it")
    return html


def write_chart_html(chart: alt.TopLevelMixin, path: Path) -> None:
    """Write :func:`standalone_html` of ``chart`` to ``path`` atomically (temporary file, then rename)."""
    html = standalone_html(chart)
    write_atomic(path, lambda fh: fh.write(html))
